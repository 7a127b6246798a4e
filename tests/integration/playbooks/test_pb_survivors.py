"""Control planes gone for good, on a 3-node etcd 3.5.30 lab, in file order on one lab: restore.yml onto the
survivors (etcd_restore_lost_hosts) restores exactly the snapshot's data as a 2-member cluster and never contacts
the lost node; member.yml brings it back; a full restore works afterwards; then two of three are destroyed and
-e snapshot=survivor recovers the survivor's data without a snapshot.

cp3 is destroyed the way a dead VM looks from outside: its control-plane pods stop (every manifest taken away
from its kubelet), its etcd data is gone, and SSH to it fails (the inventory points at a port where nothing
listens, so any attempt to reach it would fail the play)."""

import json
import os
import shutil

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 400, "dir": "/tmp/kubeops-survivors-400"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-survivors/"
MEMBER_PLAYBOOK = os.path.join(os.path.dirname(h.RESTORE_PLAYBOOK), "member.yml")
GONE = "/root/destroyed-manifests"
REPORT_TASK = "Report the restore of each member"
DECLARED_TASK = "Check what the inventory declares (stacked or external etcd; the control planes declared lost)"


def survivors(lab):
    return [node["client_url"] for node in lab.state["nodes"] if node["host"] != "cp3"]


def keys(lab):
    out = lab.etcdctl("get", "", "--prefix", "--keys-only", endpoints=survivors(lab)).stdout
    return set(line for line in out.splitlines() if line)


def destroy(lab, host):
    """Stop every control-plane pod of host (its manifests leave the kubelet's dir) and delete its etcd data."""
    lab.exec(host, ["mkdir", "-p", GONE], check=True)
    for name in h.MANIFESTS:
        if os.path.exists(lab.node_path(host, "/etc/kubernetes/manifests/" + name)):
            lab.exec(host, ["mv", "/etc/kubernetes/manifests/" + name, GONE + "/" + name], check=True)
    h.wait_for(lambda: h.container_ids(lab, host) == [], 60)
    for entry in os.listdir(lab.node_path(host, "/var/lib")):
        if entry.startswith("etcd"):
            shutil.rmtree(lab.node_path(host, "/var/lib/" + entry))


def unreachable(tmp_path, *hosts):
    """An inventory overlay that sends SSH for these hosts to a port where nothing listens."""
    return h.write_inventory_overlay(str(tmp_path / "gone.yml"), dict((host, {"ansible_port": 1}) for host in hosts))


@pytest.fixture(scope="module")
def destroyed(lab, run_playbook, tmp_path_factory):
    """A backup of the healthy 3-node cluster, a key written after it, then cp3 destroyed."""
    snapshot = h.backup_with_marker(run_playbook, lab, str(tmp_path_factory.mktemp("backups")), PREFIX)
    keys_at_backup = h.keys(lab, with_values=True)
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    old_cluster = h.cluster_id(lab)
    destroy(lab, "cp3")
    overlay = unreachable(tmp_path_factory.mktemp("inventory"), "cp3")
    return {"snapshot": snapshot, "keys": keys_at_backup, "cluster_id": old_cluster, "overlay": overlay}


def status(lab):
    """{member name: cluster id} of the members that answer, asked at the survivors only."""
    out = lab.etcdctl("endpoint", "status", "-w", "json", endpoints=survivors(lab)).stdout
    return json.loads(out)


def test_a_typo_in_the_lost_hosts_or_every_host_lost_is_refused_before_anything_changes(lab, run_playbook, destroyed):
    before = h.node_state(lab)
    run = h.restore(run_playbook, lab, destroyed["snapshot"], extra_args=destroyed["overlay"],
                    etcd_restore_lost_hosts="cp03")
    assert run.rc != 0
    assert "cp03: etcd_restore_lost_hosts names cp03, which is not a control plane of this play (cp1, cp2, cp3)" in \
        run.result(DECLARED_TASK, "cp1")["msg"], run
    run = h.restore(run_playbook, lab, destroyed["snapshot"], etcd_restore_lost_hosts=["cp1", "cp2", "cp3"])
    assert run.rc != 0
    assert "every control plane of the play is declared lost" in run.result(DECLARED_TASK, "cp1")["msg"], run
    assert h.node_state(lab) == before


def test_check_mode_shows_the_smaller_cluster_and_the_quorum_arithmetic_and_changes_nothing(
        lab, run_playbook, destroyed):
    before = h.node_state(lab)
    run = h.restore(run_playbook, lab, destroyed["snapshot"], check=True, extra_args=destroyed["overlay"],
                    etcd_restore_lost_hosts="cp3")
    assert run.rc == 0, run
    plan = run.result("Show the restore plan", "cp1")["msg"]
    assert "declared lost: cp3 (member cp3, peer https://%s:2380, from the running cluster), left out of the new " \
           "cluster; nothing is done on it" % lab.node("cp3")["ip"] in plan, plan
    assert "quorum: 3 -> 2 members: quorum 2, tolerates no failure (before: 1 failure)" in plan, plan
    assert "initial cluster cp1=https://%s:2380,cp2=https://%s:2380" % (lab.node("cp1")["ip"], lab.node("cp2")["ip"]) \
        in plan, plan
    assert h.node_state(lab) == before
    assert set(entry["Status"]["header"]["cluster_id"] for entry in status(lab)) == {int(destroyed["cluster_id"], 16)}


def test_restore_onto_the_survivors_serves_exactly_the_snapshot_as_two_members_and_never_touches_the_lost_node(
        lab, run_playbook, destroyed):
    cp3_before = {path: h.listdir(lab, "cp3", path) for path in ("/var/lib", "/etc/kubernetes", h.HOLDING_DIR, GONE)}
    run = h.restore(run_playbook, lab, destroyed["snapshot"], extra_args=destroyed["overlay"],
                    etcd_restore_lost_hosts="cp3")
    assert run.rc == 0, run

    assert h.keys(lab, with_values=True) == destroyed["keys"]
    assert PREFIX + "after-backup" not in keys(lab)
    members = json.loads(lab.etcdctl("member", "list", "-w", "json", endpoints=survivors(lab)).stdout)["members"]
    assert sorted(m["name"] for m in members) == ["cp1", "cp2"]
    assert not any(m.get("isLearner") for m in members)
    report = h.custom_stat(run, "etcd_restore")
    assert report["lost_hosts"] == ["cp3"]
    assert report["cluster_id"] != destroyed["cluster_id"]
    assert {format(e["Status"]["header"]["cluster_id"], "x") for e in status(lab)} == {report["cluster_id"]}
    assert sorted(m["name"] for m in report["members"]) == ["cp1", "cp2"]
    assert ("cp3: declared lost, not a member of the restored cluster; nothing was done on it. Keep it off until you "
            "bring it back: ansible-playbook playbooks/member.yml -i <inventory> -e etcd_member_host=cp3") in \
        run.result(REPORT_TASK, "cp1")["msg"]
    for host in ("cp1", "cp2"):
        assert h.readyz(lab, host) == (200, "ok")
        assert h.manifest_data_dir(lab, host).startswith("/var/lib/etcd-restored-")
    # cp3 was never contacted: no run dir, no staged snapshot, nothing moved
    assert {path: h.listdir(lab, "cp3", path) for path in cp3_before} == cp3_before
    assert h.listdir(lab, "cp3", h.RUNS_DIR) is None
    assert run.failed() == []
    # the argument check runs on the controller; nothing else ran for cp3
    assert [r["task"] for r in run.results if r["host"] == "cp3" and r["status"] != "skipped"
            and r["action"] != "ansible.builtin.validate_argument_spec"] == [], run.results


def rebuild(lab, host):
    """The node is back (its /etc/kubernetes restored, its kubelet running) with an empty /var/lib: its etcd.yaml
    waits in the holding dir, as an operator keeps it stopped until member.yml rejoins it."""
    lab.exec(host, ["mkdir", "-p", "-m", "0700", h.HOLDING_DIR], check=True)
    lab.exec(host, ["mv", GONE + "/etcd.yaml", h.HOLDING_DIR + "/etcd.yaml"], check=True)
    for name in h.MANIFESTS[1:]:
        lab.exec(host, ["mv", GONE + "/" + name, "/etc/kubernetes/manifests/" + name], check=True)


def test_member_yml_brings_the_lost_node_back_into_the_restored_cluster(lab, run_playbook, destroyed):
    restored = h.members(lab)
    cluster = format(status(lab)[0]["Status"]["header"]["cluster_id"], "x")
    rebuild(lab, "cp3")
    run = run_playbook(lab, MEMBER_PLAYBOOK, extra_vars={"etcd_member_host": "cp3"})
    assert run.rc == 0, run
    members = json.loads(lab.etcdctl("member", "list", "-w", "json", endpoints=survivors(lab)).stdout)
    assert sorted(m["name"] for m in members["members"]) == ["cp1", "cp2", "cp3"]
    assert not any(m.get("isLearner") for m in members["members"])
    assert format(members["header"]["cluster_id"], "x") == cluster
    assert {name: member_id for name, member_id in h.members(lab).items() if name != "cp3"} == restored
    assert h.local_keys(lab, "cp3") == h.local_keys(lab, "cp1")
    assert h.keys(lab, with_values=True) == destroyed["keys"]
    assert h.listdir(lab, "cp3", h.HOLDING_DIR) == []
    h.wait_for(lambda: h.readyz_ok(lab, "cp3"), 120)


def test_a_full_restore_of_every_control_plane_works_afterwards(lab, run_playbook, destroyed):
    run = h.restore(run_playbook, lab, destroyed["snapshot"])
    assert run.rc == 0, run
    assert h.keys(lab, with_values=True) == destroyed["keys"]
    assert sorted(h.members(lab)) == ["cp1", "cp2", "cp3"]
    assert h.custom_stat(run, "etcd_restore")["lost_hosts"] == []
    for host in h.hosts(lab):
        assert h.readyz(lab, host) == (200, "ok")


def test_survivor_recovery_is_refused_while_the_cluster_has_a_quorum(lab, run_playbook, destroyed, tmp_path):
    before = h.node_state(lab)
    run = h.restore(run_playbook, lab, "survivor", extra_args=unreachable(tmp_path, "cp3"), etcd_restore_lost_hosts="cp3")
    assert run.rc != 0
    message = run.result("Choose the most advanced survivor, or refuse (a quorum still there, a member that does not "
                         "answer)", "cp1")["msg"]
    assert "the etcd cluster still lists its members (leader " in message, message
    assert "replace the broken or lost members with playbooks/member.yml" in message
    assert h.node_state(lab) == before


def test_quorum_lost_with_two_of_three_destroyed_recovers_the_survivors_data_without_a_snapshot(
        lab, run_playbook, destroyed, tmp_path):
    lab.etcdctl("put", PREFIX + "only-on-the-survivor", "written after every backup", endpoints=survivors(lab))
    lab.etcdctl("put", PREFIX + "after-backup", "kept too", endpoints=survivors(lab))
    survivor_keys = h.keys(lab, with_values=True)
    assert survivor_keys[PREFIX + "only-on-the-survivor"] == b"written after every backup"
    cluster_before = json.loads(lab.etcdctl("endpoint", "status", "-w", "json", node="cp1").stdout)[0]["Status"]
    lost = [host for host in h.hosts(lab) if host != "cp1"]
    for host in lost:
        destroy(lab, host)
    # cp1 alone has no quorum: it answers its own status, but no member list
    assert lab.etcdctl("member", "list", node="cp1", check=False, timeout=20).returncode != 0

    run = h.restore(run_playbook, lab, "survivor", extra_args=unreachable(tmp_path, *lost),
                    etcd_restore_lost_hosts=",".join(lost))
    assert run.rc == 0, run
    choice = run.result("Say which survivor the data comes from, and what is kept and lost", "cp1")["msg"]
    assert choice[0] == "NO QUORUM: recovering from the surviving member with the highest raft index, without a snapshot"
    assert "chosen: cp1 (member %x of cluster %x)" % (cluster_before["header"]["member_id"],
                                                      cluster_before["header"]["cluster_id"]) in choice[2], choice
    plan = run.result("Show the restore plan", "cp1")["msg"]
    assert any(line.startswith("WARNING: recovering without a snapshot from cp1's data") for line in plan), plan
    assert "quorum: 3 -> 1 members: quorum 1, tolerates no failure (before: 1 failure)" in plan, plan

    assert h.keys(lab, with_values=True) == survivor_keys
    members = json.loads(lab.etcdctl("member", "list", "-w", "json", node="cp1").stdout)["members"]
    assert [m["name"] for m in members] == ["cp1"]
    report = h.custom_stat(run, "etcd_restore")
    assert report["lost_hosts"] == lost
    assert report["snapshot_origin"] == "survivor"
    assert report["cluster_id"] != "%x" % cluster_before["header"]["cluster_id"]
    assert h.readyz(lab, "cp1") == (200, "ok")
    # the survivor's snapshot is kept on cp1 beside the restore: the data it had, if anything needs comparing
    kept = h.listdir(lab, "cp1", h.STAGING_DIR)
    assert [name for name in kept if name.startswith("survivor-cp1-") and name.endswith(".db")], kept
    assert run.failed() == []
