"""One control plane: restore; an API server that does not come up once etcd runs on the restored data
rolls it back to the data it had before; a rollback that itself fails (etcd fails on any data) describes
the node's state, and its hand steps finish the job. Faults come from the lab's kubelet, not the role."""

import os

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 1, "etcd_version": "3.5.30", "ip_base": 60}, id="1-node")], indirect=True)

PREFIX = "/kubeops-pb1/"


@pytest.fixture(scope="module")
def snapshot(lab, run_playbook, tmp_path_factory):
    return h.backup_with_marker(run_playbook, lab, str(tmp_path_factory.mktemp("backups")), PREFIX)


def test_single_node_restore(lab, run_playbook, snapshot):
    run = h.restore_round_trip(run_playbook, lab, snapshot, PREFIX)

    member = h.custom_stat(run, "etcd_restore")["members"][0]
    assert h.manifest_data_dir(lab, "cp1") == member["new_data_dir"]
    assert h.readyz(lab, "cp1") == (200, "ok")


def test_single_node_rollback_after_etcd_started_on_the_restored_data(lab, run_playbook, snapshot):
    lab.etcdctl("put", PREFIX + "written-before-the-failed-restore", "must-survive")
    keys_before = h.keys(lab, with_values=True)
    cluster_before = h.cluster_id(lab)
    manifests_before = {name: h.read_node_file(lab, "cp1", "/etc/kubernetes/manifests/" + name) for name in h.MANIFESTS}

    # The API server fails while etcd.yaml points at the data dir this restore prepares.
    run = h.restore_with_fault(run_playbook, lab, snapshot, "cp1", "kube-apiserver", "kube-apiserver cannot start",
                               etcd_restore_pod_timeout=15, etcd_restore_apiserver_timeout=15)

    assert run.rc != 0, run
    # etcd really ran on the restored data before the failure.
    healthy = run.result("Wait until every restored member is healthy, with one leader and the planned member list",
                         "cp1")
    assert healthy["cluster"]["healthy"] is True and healthy["cluster"]["cluster_id"] != cluster_before
    message = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
    assert message.startswith("etcd restore FAILED on cp1 at step start_apiserver"), message
    assert "ROLLED BACK" in message
    assert h.cluster_id(lab) == cluster_before
    assert h.keys(lab, with_values=True) == keys_before
    for name in h.MANIFESTS:
        assert h.read_node_file(lab, "cp1", "/etc/kubernetes/manifests/" + name) == manifests_before[name], name
    assert h.listdir(lab, "cp1", h.HOLDING_DIR) == []
    assert h.readyz(lab, "cp1") == (200, "ok")
    assert [d for d in h.listdir(lab, "cp1", "/var/lib") if ".failed-" in d]


def test_incomplete_rollback_describes_each_node_and_its_hand_steps_work(lab, run_playbook, snapshot):
    keys_before = h.keys(lab, with_values=True)
    cluster_before = h.cluster_id(lab)
    old_dir = h.manifest_data_dir(lab, "cp1")
    manifests_before = {name: h.read_node_file(lab, "cp1", "/etc/kubernetes/manifests/" + name) for name in h.MANIFESTS}

    # etcd fails on any data from now on: on the restored data, and again when the rollback starts it on the old.
    run = h.restore_with_fault(run_playbook, lab, snapshot, "cp1", "etcd", "etcd cannot start", when_next_restore=False,
                               etcd_restore_pod_timeout=10)
    assert run.rc != 0, run
    message = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
    assert message.startswith("ROLLBACK INCOMPLETE. The restore failed on cp1 at step start_etcd"), message
    assert "then the rollback failed on cp1 at step rollback" in message, message
    assert ("cp1: etcd.yaml is active in /etc/kubernetes/manifests and points at %s (previous %s, restored %s-restored-"
            % (old_dir, old_dir, old_dir.split("-restored-")[0])) in message, message
    assert "held manifests: kube-apiserver.yaml, kube-controller-manager.yaml, kube-scheduler.yaml" in message, message
    assert "To finish by hand" in message
    # Finish by hand as the message says: etcd.yaml is the original again, so move the held manifests back.
    for name in h.MANIFESTS[1:]:
        os.rename(lab.node_path("cp1", h.HOLDING_DIR + "/" + name),
                  lab.node_path("cp1", "/etc/kubernetes/manifests/" + name))
    assert h.wait_for(lambda: lab.etcdctl("endpoint", "health", check=False).returncode == 0, timeout=120)
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp1"), timeout=120)
    assert h.cluster_id(lab) == cluster_before
    assert h.keys(lab, with_values=True) == keys_before
    for name in h.MANIFESTS:
        assert h.read_node_file(lab, "cp1", "/etc/kubernetes/manifests/" + name) == manifests_before[name], name
