"""etcd_member on a real 3-node lab (etcd 3.5.30): replace a lost member the way an operator would - stop it, move its
data aside, remove it, add it back as a learner, start it with the returned --initial-cluster, promote it - and check
that its data came back and the cluster is one again."""

import json
import re
import time

import pytest
import yaml

MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
HELD_DIR = "/etc/kubernetes/kubeops-it-held"
HELD = HELD_DIR + "/etcd.yaml"
KEYS = dict(("/kubeops-it/member/key-%d" % index, "value-%d" % index) for index in range(5))

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 26, "dir": "/tmp/kubeops-member-26"},
                         id="3.5.30")], indirect=True, scope="module")


def member_tasks(*tasks):
    """A play on cp1 running etcd_member tasks: (task name, module args, check mode, may fail)."""
    return yaml.safe_dump([{
        "name": "kubeops.etcd integration: etcd members",
        "hosts": "cp1",
        "gather_facts": False,
        "tasks": [dict({"name": name, "kubeops.etcd.etcd_member": args, "check_mode": check},
                       **({"ignore_errors": True} if may_fail else {}))
                  for name, args, check, may_fail in tasks],
    }], sort_keys=False)


def run_members(run_playbook, lab, *tasks):
    """Each task's result on cp1, with the task's status ("ok", "ignored" for a refusal) as "status"."""
    run = run_playbook(lab, member_tasks(*tasks))
    assert run.rc == 0, run
    results = []
    for task in tasks:
        item = run.task_results(task[0], "cp1")[-1]
        results.append(dict(item["result"], status=item["status"]))
    return results


def member_list(lab):
    data = json.loads(lab.etcdctl("member", "list", "-w", "json", node="cp1").stdout)
    return data["header"]["cluster_id"], dict((m.get("name", ""), m) for m in data["members"])


def wait_until(what, probe, timeout=90):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.time() < deadline, "timed out waiting until %s" % what
        time.sleep(0.5)


def etcd_running(lab, host):
    return lab.exec(host, ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.strip()


def statuses(lab):
    return json.loads(lab.etcdctl("endpoint", "status", "-w", "json", check=False).stdout or "[]")


def settled(lab):
    """endpoint status of every member when all three answer with one leader and one revision, else None."""
    found = statuses(lab)
    leaders = set(s["Status"]["leader"] for s in found)
    revisions = set(s["Status"]["header"]["revision"] for s in found)
    if len(found) == 3 and len(leaders) == 1 and 0 not in leaders and len(revisions) == 1:
        return found
    return None


def test_replace_a_lost_member_keeping_quorum(lab, run_playbook):
    cp3 = lab.node("cp3")
    for key, value in KEYS.items():
        lab.etcdctl("put", key, value)
    cluster_id, before = member_list(lab)
    assert sorted(before) == ["cp1", "cp2", "cp3"]

    # 1. cp3 is lost: its manifest held outside the manifests dir, its data dir moved aside (never deleted).
    lab.exec("cp3", ["mkdir", "-p", HELD_DIR], check=True)
    lab.exec("cp3", ["mv", MANIFEST, HELD], check=True)
    wait_until("etcd on cp3 stopped", lambda: not etcd_running(lab, "cp3"), timeout=60)
    lab.exec("cp3", ["mv", "/var/lib/etcd", "/var/lib/etcd.lost-%d" % int(time.time())], check=True)

    # 2. Removing a healthy member while cp3 is down would leave cp1 alone among 2 voters: refused. cp3 is removed;
    # then cp1 alone is a quorum of the one voter left, so removing cp2 would be allowed (shown in check mode only).
    refused, removed, removed_again, would_remove_cp2 = run_members(
        run_playbook, lab,
        ("Remove cp2 while cp3 is down", {"name": "cp2", "state": "absent"}, False, True),
        ("Remove the lost member cp3", {"name": "cp3", "state": "absent"}, False, False),
        ("Remove cp3 again", {"name": "cp3", "state": "absent"}, False, False),
        ("Removing cp2 from the two left", {"name": "cp2", "state": "absent"}, True, False))
    assert refused["status"] == "ignored", refused
    assert "Refusing to remove etcd member cp2" in refused["msg"]
    assert "only 1 of them (cp1) are started and healthy" in refused["msg"] and "Bring cp3 back first" in refused["msg"]
    assert removed["changed"] is True and removed["member"]["name"] == "cp3"
    assert removed["member"]["id"] == "%x" % before["cp3"]["ID"] and removed["member"]["is_learner"] is False
    assert sorted(m["name"] for m in removed["members"]) == ["cp1", "cp2"]
    assert removed_again["changed"] is False and removed_again["member"] is None
    assert would_remove_cp2["changed"] is True and would_remove_cp2["msg"] == "would remove cp2 (%x)" % before["cp2"]["ID"]
    after_remove = member_list(lab)[1]
    assert sorted(after_remove) == ["cp1", "cp2"]
    assert [after_remove[n]["ID"] for n in ("cp1", "cp2")] == [before[n]["ID"] for n in ("cp1", "cp2")]

    # 3. cp3 comes back as a learner; a second run changes nothing.
    args = {"name": "cp3", "peer_urls": [cp3["peer_url"]]}
    added, added_again = run_members(run_playbook, lab, ("Add cp3", args, False, False),
                                     ("Add cp3 again", args, False, False))
    assert added["changed"] is True and added["member"]["is_learner"] is True
    assert added["member"]["peer_urls"] == [cp3["peer_url"]] and added["initial_cluster_state"] == "existing"
    expected = dict((n, lab.node(n)["peer_url"]) for n in ("cp1", "cp2", "cp3"))
    pairs = added["initial_cluster"].split(",")
    assert sorted(pairs) == sorted("%s=%s" % item for item in expected.items())
    assert added["cluster_id"] == "%x" % cluster_id
    assert added_again["changed"] is False and added_again["member"] == added["member"]
    assert added_again["initial_cluster"] == added["initial_cluster"]
    with_learner = member_list(lab)[1]
    learner = with_learner[""]  # added, not started: no name yet
    assert "%x" % learner["ID"] == added["member"]["id"] and learner["isLearner"] is True

    # 4. cp3's manifest from the held copy, with the returned --initial-cluster, back in the manifests dir.
    held_path = lab.node_path("cp3", HELD)
    with open(held_path) as handle:
        text = handle.read()
    text, count = re.subn(r"(?m)^(\s*- --initial-cluster=).*$", lambda m: m.group(1) + added["initial_cluster"], text)
    assert count == 1
    if "--initial-cluster-state=existing" not in text:
        text, count = re.subn(r"(?m)^(\s*)- --initial-cluster=.*$",
                              lambda m: m.group(0) + "\n" + m.group(1) + "- --initial-cluster-state=existing", text)
        assert count == 1
    with open(held_path, "w") as handle:
        handle.write(text)
    lab.exec("cp3", ["mv", HELD, MANIFEST], check=True)
    wait_until("etcd on cp3 answering", lambda: lab.etcdctl("endpoint", "status", endpoints=[cp3["client_url"]],
                                                            check=False, timeout=10).returncode == 0)

    # 5. Promote; cp3 votes, serves the keys written before it was lost, and agrees with the others.
    promoted, promoted_again = run_members(
        run_playbook, lab, ("Promote cp3", {"name": "cp3", "state": "promoted", "promote_timeout": 120}, False, False),
        ("Promote cp3 again", {"name": "cp3", "state": "promoted"}, False, False))
    assert promoted["changed"] is True and promoted["member"]["is_learner"] is False
    assert promoted["member"]["id"] == added["member"]["id"] and promoted["member"]["name"] == "cp3"
    assert promoted_again["changed"] is False
    final_id, final = member_list(lab)
    assert final_id == cluster_id
    assert sorted(final) == ["cp1", "cp2", "cp3"] and not any(m.get("isLearner") for m in final.values())
    assert "%x" % final["cp3"]["ID"] == added["member"]["id"]
    for key, value in KEYS.items():
        got = lab.etcdctl("get", key, "--print-value-only", endpoints=[cp3["client_url"]]).stdout.strip()
        assert got == value
    found = wait_until("every member at one revision with one leader", lambda: settled(lab))
    assert set(s["Status"]["header"]["cluster_id"] for s in found) == {cluster_id}
    assert [s["Status"]["leader"] == s["Status"]["header"]["member_id"] for s in found].count(True) == 1
