"""A disk filling up on one node, on a 3-node etcd 3.5.30 lab. The full disk is real: a small tmpfs mounted inside
cp2's mount namespace (only cp2 sees it), filled to its last byte by a dot file at a moment observed on the node.
- During the preparation: cp2's runs dir fills up once the snapshot copy lies on cp2 (after the free-space checks,
  which passed). Refused before the stop: nothing changed, nothing left behind, the cause in the first line.
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
