"""Quorum not reached within etcd_restore_health_timeout, on a 3-node etcd 3.5.30 lab: the restored etcd starts on
every node (the start step passes), then hangs on cp2 and cp3 - frozen from outside with SIGSTOP as soon as their new
containers run, the way etcd hangs on a dead disk. A pod the kubelet fails to start is caught by the start step
instead (test_pb_backup_restore.py); only a member that runs but does not serve reaches the quorum wait.
Expected: the wait ends after the timeout and every node is rolled back to the old data, old cluster ID, every
manifest byte for byte, every API server answering."""

import pytest

import faulthelpers as f
from faulthelpers import h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 340, "dir": "/tmp/kubeops-faults-340"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-faults-quorum/"
HEALTH_TIMEOUT = 30


def running_etcd(lab, host):
    return lab.exec(host, ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.split()


def test_quorum_not_reached_within_the_timeout_rolls_every_node_back(lab, run_playbook, tmp_path):
    lab.etcdctl("put", PREFIX + "in-snapshot", "yes")
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    lab.etcdctl("put", PREFIX + "after-backup", "must-survive")
    keys_before, cluster_before, members_before = h.keys(lab, with_values=True), h.cluster_id(lab), h.members(lab)
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}
    before = {host: f.runs(lab, host) for host in h.hosts(lab)}
    old_containers = {host: set(running_etcd(lab, host)) for host in ("cp2", "cp3")}
    frozen = {}

    def new_etcd_runs_on_both():
        for host in ("cp2", "cp3"):
            if host not in frozen:
                fresh = f.swapped(lab, before, host) and set(running_etcd(lab, host)) - old_containers[host]
                if fresh:
                    frozen[host] = f.etcd_pid(lab, host)
                    f.freeze([frozen[host]])
        return len(frozen) == 2

    watcher = f.Watcher(new_etcd_runs_on_both, lambda: None)
    watcher.start()
    try:
        run = h.restore(run_playbook, lab, snapshot, etcd_restore_health_timeout=HEALTH_TIMEOUT)
    finally:
        watcher.stop()
        f.thaw(frozen.values())
    assert sorted(frozen) == ["cp2", "cp3"], frozen
    assert run.rc != 0, run
    message = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
    head = f.first_line(message)
    for host in h.hosts(lab):
        assert run.result(h.STOP_TASK, host)["changed"] is True
        member = f.journal(lab, host, f.new_runs(lab, before)[host])
        assert member["status"] == "rolled_back"
        assert h.manifest_data_dir(lab, host) == member["member"]["old_data_dir"]
    h.assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before)
    assert h.members(lab) == members_before
    # The first line names the step, the members that did not come up and the timeout.
    assert "ROLLED BACK: every control plane runs its previous data directory again" in message, message
    assert head.startswith("etcd restore FAILED on "), run
    assert "at step wait_quorum" in head, message
    assert "cp2" in head and "cp3" in head, message
