"""A disk filling up on one node, on a 3-node etcd 3.5.30 lab. The full disk is real: a small tmpfs mounted inside
cp2's mount namespace (only cp2 sees it), filled to its last byte by a dot file at a moment observed on the node.
- During the preparation: cp2's runs dir fills up once the snapshot copy lies on cp2 (after the free-space checks,
  which passed). Refused before the stop: nothing changed, nothing left behind, the cause in the first line.
- During the rollback: cp2's holding dir fills up once cp2's restored etcd.yaml is swapped in, while the lab's kubelet
  fails cp1's etcd on the restored data, so the run rolls back and cp2 cannot hold its etcd.yaml aside. cp1 and cp3
  are a quorum of the old cluster: they serve the old data with their API servers; the first line names cp2 and the
  cause; cp2's state is given as read from it; once the disk has room, restore_abort.yml puts cp2 back.
"""

import pytest

import faulthelpers as f
from faulthelpers import h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 345, "dir": "/tmp/kubeops-faults-345"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-faults-disk/"
NO_SPACE = "no space left on device"


def running_etcd(lab, host):
    return lab.exec(host, ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.split()


@pytest.fixture(scope="module")
def snapshot(lab, run_playbook, tmp_path_factory):
    lab.etcdctl("put", PREFIX + "in-snapshot", "yes")
    return h.backup(run_playbook, lab, str(tmp_path_factory.mktemp("backups")))["snapshot"]


def test_disk_filling_up_while_the_members_are_prepared_is_refused_before_the_stop(lab, run_playbook, snapshot):
    lab.etcdctl("put", PREFIX + "after-backup", "must-survive")
    f.mount_tmpfs(lab, "cp2", h.RUNS_DIR, "1m")
    try:
        before, keys_before, cluster_before = h.node_state(lab), h.keys(lab, with_values=True), h.cluster_id(lab)
        etcd_before = {host: running_etcd(lab, host) for host in h.hosts(lab)}

        def staged():
            return [n for n in h.listdir(lab, "cp2", h.STAGING_DIR) or [] if not n.startswith(".")]
        watcher = f.Watcher(staged, lambda: f.fill(lab, "cp2", h.RUNS_DIR))
        watcher.start()
        try:
            run = h.restore(run_playbook, lab, snapshot)
        finally:
            watcher.stop()
        assert watcher.fired
        assert run.rc != 0, run
        message = run.result(f.REFUSED_TASK, "cp1")["msg"]
        head = f.first_line(message)
        assert head.startswith("The restore was refused before anything was stopped: preparing the members failed "
                               "on cp2 at step prepare"), message
        assert NO_SPACE in head.lower(), message
        assert not run.task_results(h.STOP_TASK)
        # Nothing changed and nothing is left behind: only the filler lies in cp2's full runs dir.
        assert f.node_listing(lab, "cp2", h.RUNS_DIR) == [".kubeops-test-filler"]
        after = h.node_state(lab)
        for host in h.hosts(lab):
            for key in before[host]:
                if key != "containers":
                    assert after[host][key] == before[host][key], (host, key)
        assert {host: running_etcd(lab, host) for host in h.hosts(lab)} == etcd_before
        assert h.cluster_id(lab) == cluster_before
        assert h.keys(lab, with_values=True) == keys_before
    finally:
        f.umount(lab, "cp2", h.RUNS_DIR)


def test_disk_filling_up_during_the_rollback_the_quorum_serves_and_abort_brings_cp2_back(lab, run_playbook, snapshot):
    lab.etcdctl("put", PREFIX + "before-the-failed-restore", "must-survive")
    keys_before, cluster_before = h.keys(lab, with_values=True), h.cluster_id(lab)
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}
    before = {host: f.runs(lab, host) for host in h.hosts(lab)}
    f.mount_tmpfs(lab, "cp2", h.HOLDING_DIR, "1m")
    mounted = True
    try:
        def swapped_and_freed():
            """The prepared etcd.yaml swapped in on cp2 and the original's copy in the holding dir removed: the swap
            moves it across filesystems (copy, rename into replaced/, then unlink), and a fill before the unlink
            would leave the rollback the page the unlink frees."""
            return f.swapped(lab, before, "cp2") and "etcd.yaml" not in f.node_listing(lab, "cp2", h.HOLDING_DIR)
        watcher = f.Watcher(swapped_and_freed, lambda: f.fill(lab, "cp2", h.HOLDING_DIR))
        watcher.start()
        try:
            run = h.restore_with_fault(run_playbook, lab, snapshot, "cp1", "etcd", "etcd cannot open its data dir",
                                       etcd_restore_pod_timeout=20, etcd_restore_health_timeout=60)
        finally:
            watcher.stop()
        assert watcher.fired
        assert run.rc != 0, run
        message = f.final_message(run)
        head = f.first_line(message)
        new_dir = f.journal(lab, "cp2", f.new_runs(lab, before)["cp2"])["member"]["new_data_dir"]

        # cp1 and cp3 are a quorum of the old cluster: the old data, the old manifests, API servers up.
        assert f.cluster_ids(lab, ["cp1", "cp3"]) == {"cp1": cluster_before, "cp3": cluster_before}, message
        assert h.keys(lab, with_values=True, hosts=["cp1", "cp3"]) == keys_before
        for host in ("cp1", "cp3"):
            assert f.held(lab, host) == set(), (host, message)
            assert h.manifests(lab, host) == manifests_before[host], host
            assert h.listdir(lab, host, h.HOLDING_DIR) == [], host
            assert h.readyz(lab, host) == (200, "ok"), (host, message)
        # cp2 as the message says: still on the restored data dir; the first line names both failures and the cause.
        assert h.manifest_data_dir(lab, "cp2") == new_dir, message
        assert ("cp2: etcd.yaml is active in /etc/kubernetes/manifests and points at %s" % new_dir) in message, message
        assert "failed on cp1 at step start_etcd" in head or "FAILED on cp1 at step start_etcd" in head, run
        assert "on cp2 at step rollback" in head and NO_SPACE in head.lower(), message

        # The disk has room again: one command puts cp2 back.
        lab.exec("cp2", ["rm", "-f", h.HOLDING_DIR + "/.kubeops-test-filler"], check=True)
        aborted = run_playbook(lab, f.ABORT_PLAYBOOK)
        assert aborted.rc == 0, aborted
        assert f.node_listing(lab, "cp2", h.HOLDING_DIR) == []
        f.umount(lab, "cp2", h.HOLDING_DIR)
        mounted = False
        assert h.wait_for(lambda: h.readyz_ok(lab, "cp2"), timeout=120)
        h.assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before)
    finally:
        if mounted:
            lab.exec("cp2", ["umount", "-l", h.HOLDING_DIR])
