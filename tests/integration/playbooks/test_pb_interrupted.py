"""A restore cut short after the stop (ansible-playbook killed with SIGKILL, as when an SSH session drops or
an AWX job is cancelled) on a 3-node etcd 3.5.30 lab: a new run refuses and names both ways out; the run is
then finished with one command (etcd_restore_resume). Undoing such a run with restore_abort.yml is proved by the
fault suite (tests/integration/faults/test_fault_interrupted.py), at the same moment.

The moment is made by the lab, the way it happens on a node: the kubelet stand-in fails etcd's start on cp2
once its manifest points at the data dir this restore prepares, so the play waits in the start step with
every manifest swapped; the test kills ansible-playbook's whole process group there.
"""

import json
import os
import signal
import subprocess
import time

import pytest

import pbhelpers as h
from pbrun import BIN_DIR, REPO_ROOT, ansible_env

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 250}, id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-interrupted/"


@pytest.fixture(scope="module")
def backup(lab, run_playbook, tmp_path_factory):
    lab.etcdctl("put", PREFIX + "in-snapshot", "yes")
    snapshot = h.backup(run_playbook, lab, str(tmp_path_factory.mktemp("backups")))["snapshot"]
    return snapshot, h.keys(lab, with_values=True)


def runs(lab, host):
    return set(os.listdir(lab.node_path(host, h.RUNS_DIR))) if os.path.isdir(lab.node_path(host, h.RUNS_DIR)) else set()


def journal(lab, host, run):
    with open(lab.node_path(host, os.path.join(h.RUNS_DIR, run, "journal.json"))) as handle:
        return json.load(handle)


def kill_after_the_swap(lab, snapshot, tmp_path):
    """Start restore.yml, wait until every node has swapped in its prepared etcd.yaml, SIGKILL the play. The run."""
    before = dict((host, runs(lab, host)) for host in h.hosts(lab))
    lab.set_fault("cp2", "etcd", when_manifests_match=h.next_restore_pattern(lab, "cp2"), message="disk I/O error")
    log = open(str(tmp_path / "killed-run.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN_DIR, "ansible-playbook"), "-i", lab.inventory, h.RESTORE_PLAYBOOK,
                             "-e", json.dumps({"snapshot": snapshot})], cwd=REPO_ROOT, env=ansible_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while True:
            swapped = [host for host in h.hosts(lab)
                       if [r for r in runs(lab, host) - before[host]
                           if os.path.exists(lab.node_path(host, os.path.join(h.RUNS_DIR, r, "replaced", "etcd.yaml")))]]
            if len(swapped) == len(h.hosts(lab)):
                break
            assert proc.poll() is None, open(str(tmp_path / "killed-run.log")).read()
            assert time.time() < deadline, "the restore never reached the swap"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    [run] = runs(lab, "cp1") - before["cp1"]
    return run


def test_a_run_killed_after_the_swap_blocks_a_new_run_then_resumes_to_exactly_the_snapshot(
        lab, run_playbook, backup, tmp_path):
    snapshot, keys_at_backup = backup
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    run = kill_after_the_swap(lab, snapshot, tmp_path)
    for host in h.hosts(lab):
        assert journal(lab, host, run)["status"] == "running"
        assert sorted(h.listdir(lab, host, h.HOLDING_DIR)) == [
            "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]

    # A new run (with or without --check) changes nothing and names the state and both commands.
    state = h.node_state(lab)
    for check in (True, False):
        refused = h.restore(run_playbook, lab, snapshot, check=check)
        assert refused.rc != 0, refused
        message = " | ".join(r["result"].get("msg", "") for r in refused.failed())
        assert message.startswith("An earlier restore run (%s) did not finish: cp1 is etcd started on the restored "
                                  "data dir" % run), message
        assert "etcd_restore_resume=true" in message and "playbooks/restore_abort.yml" in message
        assert not refused.task_results(h.STOP_TASK)
        assert h.node_state(lab) == state

    # The disk on cp2 is fixed; one command finishes the run.
    lab.clear_faults("cp2")
    resumed = run_playbook(lab, h.RESTORE_PLAYBOOK, extra_vars={"etcd_restore_resume": True})
    assert resumed.rc == 0, resumed
    assert h.keys(lab, with_values=True) == keys_at_backup
    planned = journal(lab, "cp1", run)["plan"]
    assert h.members(lab) == dict((m["name"], m["member_id"]) for m in planned["members"])
    report = h.custom_stat(resumed, "etcd_restore")
    assert report["cluster_id"] == journal(lab, "cp1", run)["plan"]["cluster_id"] == h.cluster_id(lab)
    for host in h.hosts(lab):
        assert journal(lab, host, run)["status"] == "done"
        assert h.listdir(lab, host, h.HOLDING_DIR) == []
        assert h.readyz(lab, host) == (200, "ok")
    # Nothing is left for a new run to trip over.
    again = h.restore(run_playbook, lab, snapshot, check=True)
    assert again.rc == 0, again
