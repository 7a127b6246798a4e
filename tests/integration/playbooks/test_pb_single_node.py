"""One control plane: restore; a failure after etcd is back up on the restored data rolls it back to the
data it had before (test hook etcd_restore_fail_after_step=start_etcd); a rollback that itself fails
(test hook etcd_restore_fail_in_rollback) describes the node's state, and its hand steps finish the job."""

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

    run = h.restore(run_playbook, lab, snapshot, etcd_restore_fail_after_step="start_etcd")

    assert run.rc != 0, run
    # etcd really ran on the restored data before the failure.
    assert run.result("Wait until every restored member is healthy, with one leader and the planned member list", "cp1")
    message = run.result("Fail the restore now that every control plane is back on its previous data", "cp1")["msg"]
    assert "on cp1 at step start_etcd" in message and "ROLLED BACK" in message, message
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

    run = h.restore(run_playbook, lab, snapshot, etcd_restore_fail_after_step="manifest",
                    etcd_restore_fail_in_rollback=True)

    assert run.rc != 0, run
    message = run.result("Rollback failed: stop, and describe the state of every control plane", "cp1")["msg"]
    assert message.startswith("ROLLBACK INCOMPLETE. The restore failed on cp1 at step manifest"), message
    assert "Injected failure in the rollback on cp1" in message
    assert ("cp1: etcd.yaml is HELD in %s (etcd stopped) and points at %s (previous %s, restored %s-restored-"
            % (h.HOLDING_DIR, old_dir, old_dir, old_dir.split("-restored-")[0])) in message, message
    assert ("held manifests: etcd.yaml, kube-apiserver.yaml, kube-controller-manager.yaml, kube-scheduler.yaml"
            in message), message
    assert "To finish by hand" in message
    # Finish by hand as the message says: etcd.yaml already points at the previous directory, so move the
    # held manifests back, etcd first.
    for name in h.MANIFESTS:
        os.rename(lab.node_path("cp1", h.HOLDING_DIR + "/" + name),
                  lab.node_path("cp1", "/etc/kubernetes/manifests/" + name))
    assert h.wait_for(lambda: lab.etcdctl("endpoint", "health", check=False).returncode == 0, timeout=120)
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp1"), timeout=120)
    assert h.cluster_id(lab) == cluster_before
    assert h.keys(lab, with_values=True) == keys_before
    for name in h.MANIFESTS:
        assert h.read_node_file(lab, "cp1", "/etc/kubernetes/manifests/" + name) == manifests_before[name], name
