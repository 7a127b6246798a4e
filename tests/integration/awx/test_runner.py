"""playbooks/backup.yml and playbooks/restore.yml run the way AWX runs them: through ansible-runner, from a private
data dir laid out as AWX writes it, on a 3-node etcd 3.5.30 lab.

The private data dir of each job (a fresh one per job, as AWX makes):
  env/extravars   the job's extra vars (AWX: template extra vars, survey answers, extra_vars injectors)
  env/ssh_key     the machine credential's private key: ansible-runner hands it to ssh-agent through a fifo, so
                  the inventory names no key file (the lab's own inventory does; this one does not)
  env/envvars     the job's environment (AWX: settings and env injectors); here the collections path, as a
                  project's collections/requirements.yml would install the collection into AWX's
                  /runner/requirements_collections
  inventory/hosts the lab's nodes, user and interpreter only
  project/        the project checkout: a copy of the repository's playbooks/ (a copy, not a link: a link would
                  make playbook_dir the repository, which is not what AWX does)
ansible_runner.run() runs the playbook relative to project/, as AWX's job template does.
"""

import json
import os
import shutil
import sys

import pytest
import yaml

import ansible_runner

import pbrun

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "playbooks"))
import pbhelpers as h  # noqa: E402  (tests/integration/playbooks)

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 96, "dir": "/tmp/kubeops-awx-96"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-awx/"
SNAPSHOT_TASK = "Take a verified snapshot of etcd (the leader unless etcd_backup_member names a member)"
REFUSAL_TASK = "Refuse a destination on the ops box that is deleted with the job unless object storage keeps a copy"
NODE_STAGING = "/var/lib/kubeops-etcd/backups"


@pytest.fixture(scope="module")
def shared():
    """State handed from one test to the next (they run in file order on the same lab)."""
    return {}


class Job(object):
    """One ansible-runner job and what it left behind."""

    def __init__(self, private_data_dir, ident, runner):
        self.private_data_dir = private_data_dir
        self.ident = ident
        self.runner = runner
        self.artifact_dir = os.path.join(private_data_dir, "artifacts", ident)
        self.events = list(runner.events)

    def artifact(self, name):
        with open(os.path.join(self.artifact_dir, name)) as handle:
            return handle.read()

    def task_events(self, event, task):
        return [e for e in self.events if e["event"] == event and e.get("event_data", {}).get("task") == task]

    def stats_event(self):
        """The playbook_on_stats event, read from the job_events artifact AWX stores (set_stats: artifact_data)."""
        found = [e for e in self.events if e["event"] == "playbook_on_stats"]
        assert len(found) == 1, [e["event"] for e in self.events]
        files = os.listdir(os.path.join(self.artifact_dir, "job_events"))
        assert [name for name in files if name.endswith("-%s.json" % found[0]["uuid"])], files
        return found[0]["event_data"]

    def __repr__(self):
        return "Job(%s, status=%s, rc=%s)\n--- stdout ---\n%s" % (
            self.ident, self.runner.status, self.runner.rc, self.artifact("stdout")[-20000:])


def write(path, content, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)


def private_data_dir(base, lab, extravars):
    """A private data dir as AWX writes one for a job of a template on project + inventory + machine credential."""
    os.makedirs(base)
    write(os.path.join(base, "env", "extravars"), yaml.safe_dump(extravars))
    with open(lab.state["ssh_key"]) as handle:
        write(os.path.join(base, "env", "ssh_key"), handle.read())
    write(os.path.join(base, "env", "envvars"), yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": pbrun.COLLECTIONS_ROOT,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_NOCOLOR": "1",
        # AWX gives every job its own ControlPath dir inside the private data dir.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(base, "cp"),
        "PATH": pbrun.BIN_DIR + os.pathsep + os.environ.get("PATH", ""),
    }))
    hosts = {node["host"]: {"ansible_host": node["ip"], "ansible_port": node["ssh_port"]}
             for node in lab.state["nodes"]}
    write(os.path.join(base, "inventory", "hosts"), yaml.safe_dump({"all": {
        "vars": {"ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                            "-o LogLevel=ERROR"},
        "children": {"kube_control_plane": {"hosts": hosts}}}}))
    shutil.copytree(os.path.join(pbrun.REPO_ROOT, "playbooks"), os.path.join(base, "project", "playbooks"))
    return base


def run_job(tmp_path_factory, lab, playbook, extravars, ident):
    base = private_data_dir(str(tmp_path_factory.mktemp("awx-job") / "private"), lab, extravars)
    runner = ansible_runner.run(private_data_dir=base, playbook=playbook, ident=ident, quiet=True,
                                settings={"job_timeout": 1200})
    return Job(base, ident, runner)


def assert_finished(job, status, rc):
    assert job.runner.status == status, job
    assert job.runner.rc == rc, job
    assert job.artifact("status") == status
    assert job.artifact("rc") == str(rc)
    assert job.artifact("stdout").strip(), "no stdout artifact"
    # The key came through env/ssh_key: ansible-runner wrapped the job in ssh-agent.
    command = json.loads(job.artifact("command"))
    assert command["command"][0] == "ssh-agent", command
    assert "ansible_ssh_private_key_file" not in open(os.path.join(job.private_data_dir, "inventory", "hosts")).read()


def test_backup_job_whose_only_destination_is_the_project_checkout_is_refused_before_any_snapshot(
        lab, tmp_path_factory):
    job = run_job(tmp_path_factory, lab, "playbooks/backup.yml", {}, "refused")

    assert_finished(job, "failed", 2)
    dest = os.path.join(job.private_data_dir, "project", "etcd-backups")
    refused = job.task_events("runner_on_failed", REFUSAL_TASK)
    assert len(refused) == 1, job
    msg = refused[0]["event_data"]["res"]["msg"]
    assert msg.startswith("The backup would be written only to %s on the ops box, inside %s, the private data dir "
                          "of this ansible-runner job (AWX_ISOLATED_DATA_DIR=%s is its artifacts dir)."
                          % (dest, job.private_data_dir, job.artifact_dir)), msg
    assert "No snapshot was taken and nothing was changed." in msg
    assert "an absolute path on persistent storage" in msg and "etcd_backup_s3_bucket" in msg
    # The play ends with the same reason, and nothing was snapshotted or written anywhere.
    final = [e for e in job.events if e["event"] == "runner_on_failed" and e["event_data"]["res"].get("msg") == msg]
    assert len(final) == 2, [e["event_data"].get("task") for e in job.events if e["event"] == "runner_on_failed"]
    assert not [e for e in job.events if e.get("event_data", {}).get("task") == SNAPSHOT_TASK]
    assert not os.path.exists(dest)
    for host in h.hosts(lab):
        assert h.listdir(lab, host, NODE_STAGING) is None, host
    stats = job.stats_event()
    assert stats["failures"] and "etcd_backup" not in stats["artifact_data"]


def test_backup_job_reports_events_artifacts_and_set_stats(lab, tmp_path_factory, shared):
    lab.load(200, 256)
    lab.etcdctl("put", PREFIX + "in-backup", "kept")
    dest = str(tmp_path_factory.mktemp("persistent") / "etcd-backups")
    shared["keys_at_backup"] = h.keys(lab, with_values=True)

    job = run_job(tmp_path_factory, lab, "playbooks/backup.yml", {"etcd_backup_dest_dir": dest}, "backup")

    assert_finished(job, "successful", 0)
    passed = job.task_events("runner_on_ok", REFUSAL_TASK)
    assert len(passed) == 1 and passed[0]["event_data"]["res"]["vanishes"] is False, job
    assert passed[0]["event_data"]["res"]["job_dirs"] == [job.private_data_dir]
    snapshots = job.task_events("runner_on_ok", SNAPSHOT_TASK)
    assert len(snapshots) == 1, job
    snapshot = snapshots[0]["event_data"]["res"]
    assert snapshot["changed"] is True and snapshot["cluster_healthy"] is True
    stats = job.stats_event()
    assert not stats["failures"] and not stats["dark"], stats
    assert sorted(stats["ok"]) == sorted(h.hosts(lab))

    # set_stats lands in the stats event's artifact_data, which AWX stores as the job's artifacts.
    report = stats["artifact_data"]["etcd_backup"]
    assert os.path.dirname(report["snapshot"]) == dest
    assert report["sha256"] == snapshot["sha256"] and int(report["revision"]) == snapshot["revision"]
    for path in (report["snapshot"], report["metadata"], report["archive"]):
        assert os.path.isfile(path), path
    with open(report["metadata"]) as handle:
        assert json.load(handle)["sha256"] == report["sha256"]
    assert report["report"]["outcome"] == "success"
    assert "Take a verified snapshot of etcd" in job.artifact("stdout")
    shared["backup"] = report


def test_restore_job_brings_back_the_backups_keys_and_reports_set_stats(lab, tmp_path_factory, shared):
    report = shared["backup"]
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    old_cluster = h.cluster_id(lab)

    job = run_job(tmp_path_factory, lab, "playbooks/restore.yml", {"snapshot": report["snapshot"]}, "restore")

    assert_finished(job, "successful", 0)
    stats = job.stats_event()
    assert not stats["failures"] and not stats["dark"], stats
    restored = stats["artifact_data"]["etcd_restore"]
    assert h.keys(lab, with_values=True) == shared["keys_at_backup"]
    assert h.cluster_id(lab) != old_cluster
    assert h.cluster_id(lab) == restored["cluster_id"]
    assert sorted(member["host"] for member in restored["members"]) == sorted(h.hosts(lab))
    assert restored["status"] == "restored"
    assert restored["snapshot"] == report["snapshot"] and restored["snapshot_sha256"] == report["sha256"]
    assert restored["old_cluster_id"] == old_cluster
