"""etcd 3.4.23 (3 nodes): restore tooling of another minor version is refused; the round trip uses
etcdctl 3.4, which cannot bump the revision, so the restore says so and goes on without it."""

import os

import etcdfetch
import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.4.23", "ip_base": 55}, id="3-nodes-3.4.23")], indirect=True)

PREFIX = "/kubeops-pb34/"


@pytest.fixture(scope="module")
def backed_up(lab, run_playbook, tmp_path_factory):
    lab.load(200, 256)
    lab.etcdctl("put", PREFIX + "keep", "kept")
    lab.etcdctl("put", PREFIX + "delete-me", "back-after-restore")
    keys_at_backup = h.keys(lab, with_values=True)
    dest = str(tmp_path_factory.mktemp("backups34"))
    return h.backup(run_playbook, lab, dest), keys_at_backup, dest


def test_restore_tool_of_another_minor_version_is_refused(lab, run_playbook, backed_up, tmp_path):
    report = backed_up[0]
    etcdutl_35 = os.path.join(etcdfetch.fetch(lab.cache, "3.5.30"), "etcdutl")
    before, keys_before = h.node_state(lab), h.keys(lab, with_values=True)

    run = h.restore(run_playbook, lab, report["snapshot"], etcd_restore_etcdutl_path=etcdutl_35)

    assert run.rc != 0, run
    messages = " | ".join(r["result"].get("msg", "") for r in run.failed())
    for host in h.hosts(lab):
        assert ("%s: etcdutl_path %s on %s is etcdutl 3.5.30, but the cluster runs etcd 3.4.23"
                % (host, etcdutl_35, host)) in messages, messages
    assert "point it at etcdutl of etcd 3.4.x, or unset it" in messages and "etcd_restore_etcdutl_path" in messages
    assert h.node_state(lab) == before
    assert h.keys(lab, with_values=True) == keys_before


def test_round_trip_on_etcd_34_without_revision_bump(lab, run_playbook, backed_up):
    report, keys_at_backup, dest = backed_up
    assert report["etcd_version"].startswith("3.4.")
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    lab.etcdctl("del", PREFIX + "delete-me")
    old_cluster, old_members = h.cluster_id(lab), h.members(lab)
    before = {host: h.read_node_file(lab, host, "/etc/kubernetes/manifests/etcd.yaml") for host in h.hosts(lab)}

    run = h.restore(run_playbook, lab, "latest", etcd_restore_backup_dir=dest)
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
