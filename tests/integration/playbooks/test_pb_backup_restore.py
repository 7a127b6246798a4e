"""playbooks/backup.yml and playbooks/restore.yml on a 3-node etcd 3.5.30 lab, in order on one lab:
back up; restore the backup (round trip); a restore tool that breaks on one node while the members are
prepared is refused without stopping anything; an etcd that does not come up on one node after the
swap rolls every node back (the fault is injected in the lab's kubelet, not in the role).
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
        run_dir = h.RUNS_DIR + "/" + os.path.basename(member["run_dir"])
        assert member["run_dir"] == run_dir
        assert stat.S_IMODE(os.stat(lab.node_path(host, run_dir)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(lab.node_path(host, h.RUNS_DIR)).st_mode) == 0o700
        # The etcd.yaml it replaced is kept, byte for byte, outside the manifests dir.
        assert h.read_node_file(lab, host, run_dir + "/replaced/etcd.yaml") == before[host]
        assert h.read_node_file(lab, host, run_dir + "/etcd.yaml.orig") == before[host]
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


def test_restore_tool_failing_on_one_node_is_refused_before_anything_stops(lab, run_playbook, tmp_path, shared):
    wrapper = "/var/lib/kubeops-test/etcdutl"
    os.makedirs(os.path.dirname(lab.node_path("cp2", wrapper)), exist_ok=True)
    with open(lab.node_path("cp2", wrapper), "w") as handle:
        handle.write(BROKEN_ETCDUTL.format(real=lab.node("cp2")["etcdutl"]))
    os.chmod(lab.node_path("cp2", wrapper), 0o755)
    overlay = h.write_inventory_overlay(str(tmp_path / "overlay.yml"), {"cp2": {"etcd_restore_etcdutl_path": wrapper}})
    lab.etcdctl("put", PREFIX + "written-before-the-refused-restore", "must-survive")
    before, keys_before, cluster_before = h.node_state(lab), h.keys(lab, with_values=True), h.cluster_id(lab)

    run = h.restore(run_playbook, lab, shared["report"]["snapshot"], extra_args=overlay)

    assert run.rc != 0, run
    final = run.result("Refuse the restore; the cluster kept serving", "cp1")["msg"]
    assert final.startswith("The restore was refused before anything was stopped: preparing the members failed on cp2"), final
    assert "no space left on device" in final
    # cp1 and cp3 had restored their members; what they wrote is gone, and no pod was ever stopped.
    assert run.result("Restore every member into its new data dir while the cluster still serves (the copy is "
                      "verified first)", "cp1")["changed"] is True
    assert not run.task_results(h.STOP_TASK)
    assert h.node_state(lab) == before
    assert h.cluster_id(lab) == cluster_before
    assert h.keys(lab, with_values=True) == keys_before


def test_etcd_not_coming_up_on_one_node_rolls_every_node_back(lab, run_playbook, shared):
    lab.etcdctl("put", PREFIX + "written-before-the-failed-restore", "must-survive")
    keys_before, cluster_before = h.keys(lab, with_values=True), h.cluster_id(lab)
    assert cluster_before == shared["restored_cluster"]
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}
    # The kubelet on cp2 fails every etcd container whose manifest points at another restored data dir than
    # the one it runs on now (the first restore's): the one this restore prepares.
    run = h.restore_with_fault(run_playbook, lab, shared["report"]["snapshot"], "cp2", "etcd",
                               "etcd cannot open its data dir", etcd_restore_pod_timeout=20)

    assert run.rc != 0, run
    final = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
    assert final.startswith("etcd restore FAILED on cp2 at step start_etcd"), final
    assert "ROLLED BACK" in final
    for host in h.hosts(lab):
        assert run.result(h.STOP_TASK, host)["changed"] is True
        assert run.result("Rollback: put the original etcd.yaml back and start etcd on every control plane", host)
    h.assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before)
    # Every node's restored data dir is kept, moved aside, and the etcd.yaml that pointed at it is in the run dir.
    for host in h.hosts(lab):
        moved = [d for d in h.listdir(lab, host, "/var/lib") if ".failed-" in d]
        assert len(moved) == 1, (host, moved)
