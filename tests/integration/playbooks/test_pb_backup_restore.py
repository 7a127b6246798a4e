"""playbooks/backup.yml and playbooks/restore.yml on a 3-node etcd 3.5.30 lab, in order on one lab:
back up; restore the backup (round trip); restore again with a node whose restore tool breaks mid-way
(a real failure after the pods are stopped), which must roll every node back.
"""

import hashlib
import json
import os
import stat
import tarfile

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 50}, id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-pb/"


@pytest.fixture(scope="module")
def shared():
    """State handed from one test to the next (they run in file order on the same lab)."""
    return {}


def test_backup_in_check_mode_says_what_it_would_do_and_writes_nothing(lab, run_playbook, tmp_path):
    dest = str(tmp_path / "backups")
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_vars={"etcd_backup_dest_dir": dest}, check=True)
    assert run.rc == 0, run
    assert "Check mode: would snapshot member" in run.result("Say what the backup would do (check mode)", "cp1")["msg"]
    assert not os.path.exists(dest)
    for host in h.hosts(lab):
        assert h.listdir(lab, host, "/var/lib/kubeops-etcd/backups") is None


def test_backup_writes_verified_private_files_to_the_ops_box(lab, run_playbook, tmp_path_factory, shared):
    lab.load(300, 256)
    for name in ("keep-1", "keep-2", "delete-me"):
        lab.etcdctl("put", PREFIX + name, "value-" + name)
    dest = str(tmp_path_factory.mktemp("backups"))
    shared["keys_at_backup"] = h.keys(lab, with_values=True)

    report = h.backup(run_playbook, lab, dest)

    snapshot = report["snapshot"]
    assert os.path.dirname(snapshot) == dest
    base = os.path.basename(snapshot)
    assert base.startswith("kubernetes-") and "-rev%d.db" % int(report["revision"]) in base, base
    files = [snapshot, snapshot + ".meta.json", report["archive"]]
    assert report["archive"] == snapshot[:-len(".db")] + "-pki.tar.gz"
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    meta = json.load(open(snapshot + ".meta.json"))
    with open(snapshot, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == meta["sha256"] == report["sha256"]
    assert meta["size"] == os.path.getsize(snapshot)
    assert meta["cluster_healthy"] is True
    assert int(report["total_key"]) >= len(shared["keys_at_backup"])
    with tarfile.open(report["archive"], "r:gz") as archive:
        names = archive.getnames()
    for wanted in ("etc/kubernetes/pki/ca.key", "etc/kubernetes/pki/etcd/ca.key",
                   "etc/kubernetes/manifests/etcd.yaml", "etc/kubernetes/manifests/kube-apiserver.yaml"):
        assert wanted in names, (wanted, names)
    shared["report"] = report


def test_restore_brings_back_exactly_the_snapshot_under_a_new_cluster_identity(lab, run_playbook, shared):
    report = shared["report"]
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    lab.etcdctl("del", PREFIX + "delete-me")
    before = {host: h.read_node_file(lab, host, "/etc/kubernetes/manifests/etcd.yaml") for host in h.hosts(lab)}
    old_dirs = {host: h.manifest_data_dir(lab, host) for host in h.hosts(lab)}
    old_cluster, old_members = h.cluster_id(lab), h.members(lab)

    run = h.restore(run_playbook, lab, report["snapshot"])
    assert run.rc == 0, run

    result = h.custom_stat(run, "etcd_restore")
    assert h.keys(lab, with_values=True) == shared["keys_at_backup"]
    assert h.cluster_id(lab) != old_cluster
    assert h.cluster_id(lab) == result["cluster_id"]
    new_members = h.members(lab)
    assert sorted(new_members) == sorted(node["member_name"] for node in lab.state["nodes"])
    assert not set(new_members.values()) & set(old_members.values())
    assert h.revision(lab) >= int(report["revision"]) + h.BUMP
    for member in result["members"]:
        host = member["host"]
        assert new_members[member["name"]] == member["member_id"]
        new_dir = member["new_data_dir"]
        assert member["old_data_dir"] == old_dirs[host]
        assert os.path.dirname(new_dir) == os.path.dirname(old_dirs[host])
        assert h.manifest_data_dir(lab, host) == new_dir
        h.only_hostpath_changed(before[host], h.read_node_file(lab, host, "/etc/kubernetes/manifests/etcd.yaml"),
                                old_dirs[host], new_dir)
        assert stat.S_IMODE(os.stat(lab.node_path(host, new_dir)).st_mode) == 0o700
        # The previous data directory is left exactly where it was, with its database and WAL.
        assert os.path.isfile(lab.node_path(host, old_dirs[host] + "/member/snap/db"))
        assert h.listdir(lab, host, old_dirs[host] + "/member/wal")
        assert h.readyz(lab, host) == (200, "ok")
        assert h.listdir(lab, host, h.HOLDING_DIR) == []
    shared["restored_cluster"] = h.cluster_id(lab)


BROKEN_ETCDUTL = """#!/bin/sh
# kubeops test: the real etcdutl, except that "snapshot restore" fails like a full disk would.
for arg in "$@"; do [ "$arg" = --help ] && exec {real} "$@"; done
if [ "$1" = snapshot ] && [ "$2" = restore ]; then
  echo "Error: write /var/lib/etcd-restored/member/snap/db: no space left on device" >&2
  exit 1
fi
exec {real} "$@"
"""


def test_restore_failing_on_one_node_rolls_every_node_back(lab, run_playbook, tmp_path, shared):
    wrapper = "/var/lib/kubeops-test/etcdutl"
    os.makedirs(os.path.dirname(lab.node_path("cp2", wrapper)), exist_ok=True)
    with open(lab.node_path("cp2", wrapper), "w") as handle:
        handle.write(BROKEN_ETCDUTL.format(real=lab.node("cp2")["etcdutl"]))
    os.chmod(lab.node_path("cp2", wrapper), 0o755)
    overlay = h.write_inventory_overlay(str(tmp_path / "overlay.yml"), {"cp2": {"etcd_restore_etcdutl_path": wrapper}})
    lab.etcdctl("put", PREFIX + "written-before-the-failed-restore", "must-survive")
    keys_before = h.keys(lab, with_values=True)
    manifests_before = {host: {name: h.read_node_file(lab, host, "/etc/kubernetes/manifests/" + name)
                               for name in h.MANIFESTS} for host in h.hosts(lab)}
    cluster_before = h.cluster_id(lab)
    assert cluster_before == shared["restored_cluster"]

    run = h.restore(run_playbook, lab, shared["report"]["snapshot"], extra_args=overlay)

    assert run.rc != 0, run
    final = run.result("Fail the restore now that every control plane is back on its previous data", "cp1")
    assert "on cp2 at step restore" in final["msg"], final["msg"]
    assert "no space left on device" in final["msg"]
    assert "ROLLED BACK" in final["msg"]
    # Lockstep: cp1 and cp3 restored fine, yet no node went on to the next restore task once cp2 failed.
    assert run.result("Restore each member from the snapshot into its new data directory", "cp1")["changed"] is True
    assert not run.task_results("Point each held etcd.yaml at its restored data directory")
    # The pods were really stopped before the failure: every node ran the rollback.
    for host in h.hosts(lab):
        stopped = run.result("Stop etcd on every control plane", host)
        assert stopped["changed"] is True
        assert run.result("Rollback: point each held etcd.yaml back at its previous data directory", host)
    assert h.cluster_id(lab) == cluster_before
    assert h.keys(lab, with_values=True) == keys_before
    for host in h.hosts(lab):
        for name in h.MANIFESTS:
            assert h.read_node_file(lab, host, "/etc/kubernetes/manifests/" + name) == manifests_before[host][name], (host, name)
        assert h.listdir(lab, host, h.HOLDING_DIR) == []
        assert h.readyz(lab, host) == (200, "ok")
    # The nodes whose restore had succeeded keep their half-restored directory, moved aside.
    moved = [d for host in ("cp1", "cp3") for d in h.listdir(lab, host, "/var/lib") if ".failed-" in d]
    assert len(moved) == 2, moved
