"""Round trip on etcd 3.4.23 (3 nodes): etcdctl is the restore tool and cannot bump the revision,
so the restore says so and goes on without it."""

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.4.23", "ip_base": 55}, id="3-nodes-3.4.23")], indirect=True)

PREFIX = "/kubeops-pb34/"


def test_round_trip_on_etcd_34_without_revision_bump(lab, run_playbook, tmp_path):
    lab.load(200, 256)
    lab.etcdctl("put", PREFIX + "keep", "kept")
    lab.etcdctl("put", PREFIX + "delete-me", "back-after-restore")
    keys_at_backup = h.keys(lab, with_values=True)
    report = h.backup(run_playbook, lab, str(tmp_path))
    assert report["etcd_version"].startswith("3.4.")
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    lab.etcdctl("del", PREFIX + "delete-me")
    old_cluster, old_members = h.cluster_id(lab), h.members(lab)
    before = {host: h.read_node_file(lab, host, "/etc/kubernetes/manifests/etcd.yaml") for host in h.hosts(lab)}

    run = h.restore(run_playbook, lab, "latest", etcd_restore_backup_dir=str(tmp_path))
    assert run.rc == 0, run

    plan = run.result("Show the restore plan", "cp1")["msg"]
    assert any("WARNING: no revision bump" in line for line in plan), plan
    result = h.custom_stat(run, "etcd_restore")
    assert int(result["bump_revision"]) == 0
    assert result["snapshot"] == report["snapshot"]
    assert h.keys(lab, with_values=True) == keys_at_backup
    assert h.cluster_id(lab) != old_cluster
    new_members = h.members(lab)
    assert sorted(new_members) == sorted(old_members)
    assert not set(new_members.values()) & set(old_members.values())
    for member in result["members"]:
        host = member["host"]
        assert member["tool"].startswith("etcdctl 3.4.")
        h.only_hostpath_changed(before[host], h.read_node_file(lab, host, "/etc/kubernetes/manifests/etcd.yaml"),
                                member["old_data_dir"], member["new_data_dir"])
        assert h.readyz(lab, host) == (200, "ok")
        assert h.listdir(lab, host, h.HOLDING_DIR) == []
