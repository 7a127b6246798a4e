"""etcd_restore on the lab, the real flow: snapshot, change the data, stop the control plane, restore into a new
directory, repoint the manifest, start etcd again and read exactly the snapshot's keys back.

Every etcd version the lab offers; ansible-playbook over SSH; the IDs etcd_restore computes must be the ones the
restarted etcd reports.
"""

import hashlib
import json
import os
import shutil
import tempfile

import pytest

from modhelpers import ALL_VERSIONS, BUMP_SUPPORTED, four_runs, labs, run_task, tree_state, wait_healthy

BUMP = 1000000000
PREFIX = "/kubeops-it/"
SNAPSHOT_KEYS = {PREFIX + "a": "one", PREFIX + "b": "two", PREFIX + "c": "three"}


def get_prefix(lab):
    output = lab.etcdctl("get", "--prefix", PREFIX).stdout.splitlines()
    return dict(zip(output[0::2], output[1::2]))


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="kubeops-it-restore-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def snapshot_then_change(lab, workdir):
    for key, value in SNAPSHOT_KEYS.items():
        lab.etcdctl("put", key, value)
    snapshot = os.path.join(workdir, "etcd-snapshot.db")
    lab.etcdctl("snapshot", "save", snapshot, node="cp1")
    # After the snapshot: change, add and delete keys; none of this may survive the restore.
    lab.etcdctl("put", PREFIX + "a", "changed")
    lab.etcdctl("put", PREFIX + "d", "added later")
    lab.etcdctl("del", PREFIX + "b")
    assert get_prefix(lab) != SNAPSHOT_KEYS
    return snapshot


@pytest.mark.parametrize("lab", labs(230, versions=ALL_VERSIONS), indirect=True)
def test_restore_round_trip_reads_back_exactly_the_snapshot(lab, run_playbook, workdir):
    node = lab.state["nodes"][0]
    version = node["etcd_version"]
    snapshot = snapshot_then_change(lab, workdir)
    old_data_dir = node["data_dir_host_path"]
    new_data_dir = "/var/lib/etcd-restored-it"
    held_manifest = "/etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml"
    manifest_host_path = lab.node_path("cp1", "/etc/kubernetes/manifests/etcd.yaml")
    with open(manifest_host_path, "rb") as handle:
        manifest_before = handle.read()

    four_runs(run_playbook, lab, "Stop the API server, then etcd", "static_pod",
              {"names": ["kube-apiserver", "etcd"], "state": "stopped", "timeout": 60})

    restore_args = {
        "snapshot": snapshot,
        "data_dir": new_data_dir,
        "name": node["member_name"],
        "initial_cluster": "%s=%s" % (node["member_name"], node["peer_url"]),
        "initial_cluster_token": "kubeops-it-%s" % version,
        "initial_advertise_peer_urls": [node["peer_url"]],
        "owner_from": old_data_dir,
    }

    # Refusals first: nothing on disk may change.
    live_before = tree_state(lab.node_path("cp1", old_data_dir))
    run, refused = run_task(run_playbook, lab, "Restore into the live data dir", "etcd_restore",
                            dict(restore_args, data_dir=old_data_dir, force=True))
    assert run.rc != 0
    assert "is not empty" in refused["msg"] and "was not written by etcd_restore" in refused["msg"]
    assert old_data_dir in refused["msg"] and "cp1" in refused["msg"]
    assert tree_state(lab.node_path("cp1", old_data_dir)) == live_before

    # A snapshot that is not the one checked before (here: one byte changed) is refused before anything is written.
    with open(snapshot, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    wrong = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    for check in (True, False):
        run, refused = run_task(run_playbook, lab, "Restore a snapshot with another SHA-256", "etcd_restore",
                                dict(restore_args, expected_sha256=wrong), check=check)
        assert run.rc != 0
        assert refused["msg"].startswith("cp1: %s has sha256 %s, expected %s (" % (snapshot, digest, wrong))
        assert refused["msg"].endswith("; copy it again.")
        assert not [n for n in os.listdir(lab.node_path("cp1", "/var/lib")) if n.startswith("etcd-restored-it")]
    restore_args["expected_sha256"] = digest

    if BUMP_SUPPORTED[version]:
        restore_args.update(bump_revision=BUMP, mark_compacted=True)
    else:
        run, refused = run_task(run_playbook, lab, "Restore with a revision bump", "etcd_restore",
                                dict(restore_args, bump_revision=BUMP, mark_compacted=True))
        assert run.rc != 0
        tool = "etcdctl" if version.startswith("3.4") else "etcdutl"
        assert "%s %s on cp1" % (tool, version) in refused["msg"]
        assert "has no --bump-revision/--mark-compacted" in refused["msg"]
        assert "3.4.27+" in refused["msg"] and "3.5.10+" in refused["msg"]
        assert not os.path.exists(lab.node_path("cp1", new_data_dir))

    restored = four_runs(run_playbook, lab, "Restore the snapshot into a new data dir", "etcd_restore", restore_args)
    real = restored[1]
    assert real["snapshot_sha256"] == digest
    status = json.loads(lab.etcdctl("snapshot", "status", snapshot, "-w", "json").stdout)
    assert [r["snapshot_total_key"] for r in restored] == [status["totalKey"]] * 4
    assert real["tool"] == ("etcdctl" if version.startswith("3.4") else "etcdutl")
    assert real["tool_version"] == version
    assert real["data_dir"] == new_data_dir
    assert restored[0]["member_id"] == real["member_id"] == restored[2]["member_id"]
    assert restored[0]["cluster_id"] == real["cluster_id"] == restored[2]["cluster_id"]
    assert os.path.isfile(lab.node_path("cp1", new_data_dir + "/member/snap/db"))
    assert oct(os.stat(lab.node_path("cp1", new_data_dir)).st_mode & 0o777) == "0o700"
    siblings = [n for n in os.listdir(lab.node_path("cp1", "/var/lib")) if n.startswith("etcd-restored-it")]
    assert siblings == ["etcd-restored-it"]

    repointed = four_runs(run_playbook, lab, "Point the held etcd manifest at the restored data dir",
                          "etcd_manifest_datadir", {"path": held_manifest, "data_dir": new_data_dir})
    assert repointed[1]["previous_data_dir"] == old_data_dir
    with open(lab.node_path("cp1", held_manifest), "rb") as handle:
        manifest_after = handle.read()
    assert manifest_after == manifest_before.replace(
        ("      path: %s\n" % old_data_dir).encode(), ("      path: %s\n" % new_data_dir).encode(), 1)

    four_runs(run_playbook, lab, "Start etcd, then the API server", "static_pod",
              {"names": ["etcd", "kube-apiserver"], "state": "started", "timeout": 90})
    wait_healthy(lab)

    assert get_prefix(lab) == SNAPSHOT_KEYS
    members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    assert [("%x" % m["ID"], m["name"]) for m in members["members"]] == [(real["member_id"], node["member_name"])]
    assert "%x" % members["header"]["cluster_id"] == real["cluster_id"]
    status = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)[0]["Status"]
    if BUMP_SUPPORTED[version]:
        assert real["revision"] == real["snapshot_revision"] + BUMP
        assert status["header"]["revision"] >= real["revision"]
    else:
        assert real["revision"] == real["snapshot_revision"]


@pytest.mark.parametrize("lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 246}, id="3-members")],
                         indirect=True)
def test_three_member_restore_ids_are_the_ones_etcd_reports(lab, run_playbook, workdir):
    """Every member from the same snapshot with the full initial cluster and one new token (the recovery guide)."""
    snapshot = snapshot_then_change(lab, workdir)
    nodes = lab.state["nodes"]
    initial_cluster = ",".join("%s=%s" % (n["member_name"], n["peer_url"]) for n in nodes)
    stop = """
- name: Stop the control plane everywhere
  hosts: kube_control_plane
  gather_facts: false
  tasks:
    - name: Stop the API server, then etcd
      kubeops.etcd.static_pod:
        names: [kube-apiserver, etcd]
        state: stopped
        timeout: 60
"""
    assert run_playbook(lab, stop).rc == 0
    restore = """
- name: Restore every member and start it
  hosts: kube_control_plane
  gather_facts: false
  vars:
    peer_urls: %s
  tasks:
    - name: Restore the snapshot into a new data dir
      kubeops.etcd.etcd_restore:
        snapshot: %s
        data_dir: /var/lib/etcd-restored-3m
        name: "{{ inventory_hostname }}"
        initial_cluster: %s
        initial_cluster_token: kubeops-it-three-members
        initial_advertise_peer_urls: ["{{ peer_urls[inventory_hostname] }}"]
        bump_revision: %d
        mark_compacted: true
    - name: Point the held etcd manifest at it
      kubeops.etcd.etcd_manifest_datadir:
        path: /etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml
        data_dir: /var/lib/etcd-restored-3m
    - name: Start etcd, then the API server
      kubeops.etcd.static_pod:
        names: [etcd, kube-apiserver]
        state: started
        timeout: 90
""" % (json.dumps(dict((n["host"], n["peer_url"]) for n in nodes)), snapshot, initial_cluster, BUMP)
    run = run_playbook(lab, restore)
    assert run.rc == 0, run
    wait_healthy(lab)
    results = dict((n["host"], run.result("Restore the snapshot into a new data dir", n["host"])) for n in nodes)
    assert len(set(r["cluster_id"] for r in results.values())) == 1
    members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    assert sorted(("%x" % m["ID"], m["name"]) for m in members["members"]) == \
        sorted((r["member_id"], host) for host, r in results.items())
    assert "%x" % members["header"]["cluster_id"] == results["cp1"]["cluster_id"]
    assert results["cp2"]["member_ids"] == dict((host, r["member_id"]) for host, r in results.items())
    assert get_prefix(lab) == SNAPSHOT_KEYS
