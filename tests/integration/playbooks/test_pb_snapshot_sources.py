"""restore.yml takes any etcd snapshot (3 nodes, etcd 3.5.30): a plain `etcdctl snapshot save` file on the
ops box (no metadata) and a snapshot that lies on a control plane (`snapshot=cp2:/path`) each restore
exactly their data; corrupt, truncated, `.part` and non-etcd files are refused, on the ops box and on a
node, before anything changes."""

import os
import shutil

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 76}, id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-sources/"
NODE_SNAPSHOT = "/var/backups/etcd/plain-on-cp2.db"


@pytest.fixture(scope="module")
def plain_snapshot(lab, tmp_path_factory):
    """What a cron job or the CKA procedure leaves: `etcdctl snapshot save` of one member, nothing beside it."""
    lab.load(100, 256)
    lab.etcdctl("put", PREFIX + "in-plain-snapshot", "yes")
    path = str(tmp_path_factory.mktemp("plain") / "etcd-snapshot.db")
    lab.etcdctl("snapshot", "save", path, endpoints=[lab.node("cp1")["client_url"]])
    return path, h.keys(lab, with_values=True)


def refused(run_playbook, lab, snapshot):
    before, keys_before = h.node_state(lab), h.keys(lab, with_values=True)
    run = h.restore(run_playbook, lab, snapshot)
    assert run.rc != 0, run
    assert not run.task_results(h.STOP_TASK), run
    assert not run.task_results("Restore every member into its new data dir while the cluster still serves (the copy "
                                "is verified first)"), run
    assert h.node_state(lab) == before
    assert h.keys(lab, with_values=True) == keys_before
    return " | ".join(r["result"].get("msg", "") for r in run.failed())


def test_a_plain_etcdctl_snapshot_restores_exactly_its_data_and_the_plan_says_its_origin_is_unchecked(
        lab, run_playbook, plain_snapshot):
    path, keys_at_snapshot = plain_snapshot
    lab.etcdctl("put", PREFIX + "after-snapshot", "must-vanish")
    old_cluster = h.cluster_id(lab)

    run = h.restore(run_playbook, lab, path)

    assert run.rc == 0, run
    plan = "\n".join(run.result("Show the restore plan", "cp1")["msg"])
    assert "has no metadata (a plain etcdctl snapshot save file): its origin cannot be checked" in plan, plan
    assert "revision and keys read when staged" in plan
    assert h.keys(lab, with_values=True) == keys_at_snapshot
    assert h.cluster_id(lab) not in (old_cluster, None)
    report = h.custom_stat(run, "etcd_restore")
    assert report["snapshot_kind"] == "local" and report["snapshot"] == os.path.realpath(path)
    assert int(report["snapshot_revision"]) > 0
    assert h.revision(lab) >= int(report["snapshot_revision"]) + h.BUMP


def test_a_snapshot_on_a_control_plane_is_used_there_and_carried_to_the_others(lab, run_playbook, plain_snapshot):
    lab.etcdctl("put", PREFIX + "in-node-snapshot", "yes")
    keys_at_snapshot = h.keys(lab, with_values=True)
    on_cp2 = lab.node_path("cp2", NODE_SNAPSHOT)
    os.makedirs(os.path.dirname(on_cp2), mode=0o700, exist_ok=True)
    lab.etcdctl("snapshot", "save", on_cp2, endpoints=[lab.node("cp2")["client_url"]])
    with open(on_cp2, "rb") as handle:
        content = handle.read()
    lab.etcdctl("put", PREFIX + "after-node-snapshot", "must-vanish")

    run = h.restore(run_playbook, lab, "cp2:" + NODE_SNAPSHOT)

    assert run.rc == 0, run
    plan = "\n".join(run.result("Show the restore plan", "cp1")["msg"])
    assert "snapshot %s on cp2: revision " % NODE_SNAPSHOT in plan, plan
    assert h.keys(lab, with_values=True) == keys_at_snapshot
    report = h.custom_stat(run, "etcd_restore")
    assert report["snapshot_kind"] == "node" and report["snapshot_host"] == "cp2"
    # The node's own file is left exactly as it was; the copies on cp1 and cp3 were removed after the restore.
    with open(on_cp2, "rb") as handle:
        assert handle.read() == content
    for host in h.hosts(lab):
        assert os.path.basename(NODE_SNAPSHOT) not in (h.listdir(lab, host, h.STAGING_DIR) or [])


def corrupt_copies(source, directory):
    """A truncated copy, a copy with a flipped byte, a .part file and random bytes."""
    with open(source, "rb") as handle:
        data = handle.read()
    copies = {}
    copies["truncated"] = os.path.join(directory, "truncated.db")
    with open(copies["truncated"], "wb") as handle:
        handle.write(data[:len(data) // 2])
    copies["flipped"] = os.path.join(directory, "flipped.db")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    with open(copies["flipped"], "wb") as handle:
        handle.write(bytes(flipped))
    copies["part"] = os.path.join(directory, "etcd-snapshot.db.part")
    shutil.copy(source, copies["part"])
    copies["random"] = os.path.join(directory, "random.db")
    with open(copies["random"], "wb") as handle:
        handle.write(os.urandom(512 * 40 + 32))
    return copies


@pytest.mark.parametrize("kind,expected", [
    ("truncated", "is not a complete etcd snapshot"),
    ("flipped", "does not end with the SHA-256 that etcdctl snapshot save appends"),
    ("part", "is a .part file"),
    ("random", "is not an etcd snapshot: it does not start with a bbolt database header"),
])
def test_a_bad_file_on_the_ops_box_is_refused_before_anything_changes(
        lab, run_playbook, plain_snapshot, tmp_path, kind, expected):
    bad = corrupt_copies(plain_snapshot[0], str(tmp_path))[kind]
    message = refused(run_playbook, lab, bad)
    assert expected in message, message
    assert "The restore was refused before anything was changed: the ops box: " in message, message


@pytest.mark.parametrize("kind,expected", [
    ("truncated", "is truncated"),
    ("random", "is corrupted or truncated: its last 32 bytes are not the SHA-256 of the rest"),
    ("part", "is an unfinished snapshot"),
])
def test_a_bad_file_on_a_control_plane_is_refused_before_anything_changes(
        lab, run_playbook, plain_snapshot, tmp_path, kind, expected):
    bad = corrupt_copies(plain_snapshot[0], str(tmp_path))[kind]
    on_node = "/var/backups/etcd/bad-" + os.path.basename(bad)
    os.makedirs(os.path.dirname(lab.node_path("cp1", on_node)), mode=0o700, exist_ok=True)
    shutil.copy(bad, lab.node_path("cp1", on_node))
    try:
        message = refused(run_playbook, lab, "cp1:" + on_node)
    finally:
        os.remove(lab.node_path("cp1", on_node))
    assert expected in message and "cp1" in message, message


def test_a_snapshot_of_another_cluster_is_refused_and_restores_only_when_acknowledged(
        lab, run_playbook, tmp_path_factory):
    """Another cluster's backup: its metadata records other member names and peers. The lab's own snapshot
    with such metadata stands in for it (the data it restores is then checkable)."""
    import json
    dest = str(tmp_path_factory.mktemp("foreign"))
    lab.etcdctl("put", PREFIX + "in-foreign-snapshot", "yes")
    snapshot = h.backup(run_playbook, lab, dest)["snapshot"]
    keys_at_backup = h.keys(lab, with_values=True)
    with open(snapshot + ".meta.json") as handle:
        meta = json.load(handle)
    meta["cluster_id"] = "aaaaaaaaaaaaaaaa"
    for index, member in enumerate(meta["members"]):
        member["name"] = "prod-%d" % index
        member["peer_urls"] = ["https://10.20.0.%d:2380" % (index + 1)]
    with open(snapshot + ".meta.json", "w") as handle:
        json.dump(meta, handle)

    message = refused(run_playbook, lab, snapshot)
    assert message.startswith("The restore was refused before anything was changed: cp1, cp2, cp3: the snapshot was "
                              "taken "), message
    assert "from ANOTHER cluster: cluster aaaaaaaaaaaaaaaa with members prod-0=https://10.20.0.1:2380" in message
    assert "member prod-0 is not in this cluster" in message and "etcd_restore_allow_other_cluster=true" in message

    lab.etcdctl("put", PREFIX + "after-foreign-backup", "must-vanish")
    run = h.restore(run_playbook, lab, snapshot, etcd_restore_allow_other_cluster=True)
    assert run.rc == 0, run
    assert h.keys(lab, with_values=True) == keys_at_backup
    assert h.custom_stat(run, "etcd_restore")["snapshot_origin"] == "other"
    assert "restoring a snapshot of another cluster, as acknowledged" in run.stdout
