"""playbooks/member.yml on the lab: replace one etcd member while the others keep the quorum, no snapshot.

* 3 nodes, etcd 3.5.30: cp3 is destroyed (its etcd.yaml held so the pod stops, its data dir moved away on the
  node); the playbook brings it back as a new member with the same name (learner, then promoted) that has every
  key; a second run refuses the healthy cp3 and changes nothing; check mode with etcd_member_replace=true prints
  the plan and changes nothing.
* On the same lab: an unknown host and a member name clash are refused, nothing changes; a run that stopped
  between the add and the start (an unstarted learner) is finished by the next run; a failure before the removal
  (an etcdctl that refuses `member remove`) puts cp3 back as it was.
* 5 nodes, etcd 3.5.30: a healthy cp4 is replaced (etcd_member_replace=true) while every API server's /readyz
  is polled: the API servers of the other four nodes never stop answering.
* 3 nodes, etcd 3.4.23: the member is added back as a voting member (no learners), nothing to promote.
"""

import json
import os
import threading
import time

import pytest

import pbhelpers as h
from pbrun import REPO_ROOT

MEMBER_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "member.yml")
PREFIX = "/kubeops-member/"
PLAN_TASK = "Plan the member change, or refuse it with every reason"
SHOW_PLAN_TASK = "Show the member plan"
VERIFY_TASK = "Verify the members, the leader and the new member's revision against the plan"

THREE = pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 310, "dir": "/tmp/kubeops-member-310"},
                     id="3-nodes-3.5.30")
FIVE = pytest.param({"nodes": 5, "etcd_version": "3.5.30", "ip_base": 300, "dir": "/tmp/kubeops-member-300"},
                    id="5-nodes-3.5.30")


def member(run_playbook, lab, host, check=False, **extra_vars):
    return run_playbook(lab, MEMBER_PLAYBOOK, extra_vars=dict({"etcd_member_host": host}, **extra_vars), check=check)


def member_list(lab):
    """{name: (id hex, is learner)} of the cluster."""
    data = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    return {m.get("name", ""): (format(m["ID"], "x"), bool(m.get("isLearner"))) for m in data["members"]}


def cluster_of(lab):
    """Cluster ID (hex) from the member list, which any running member answers."""
    return format(json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)["header"]["cluster_id"], "x")


def all_started(lab):
    try:
        return len(h.endpoint_status(lab)) == len(h.hosts(lab))
    except Exception:  # a member still starting
        return False


def etcd_running(lab, host):
    return bool(lab.exec(host, ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.split())


def destroy(lab, host):
    """What a lost disk looks like: etcd stopped (its manifest held aside) and its data dir gone from the node."""
    lab.exec(host, ["mkdir", "-p", "-m", "0700", h.HOLDING_DIR], check=True)
    lab.exec(host, ["mv", "/etc/kubernetes/manifests/etcd.yaml", h.HOLDING_DIR + "/etcd.yaml"], check=True)
    assert h.wait_for(lambda: not etcd_running(lab, host), timeout=120)
    lab.exec(host, ["mv", "--no-target-directory", "/var/lib/etcd", "/var/lib/etcd.lost-by-the-test-%d" % time.time()],
             check=True)


def state(lab):
    """What a refused or check-mode run must leave as it is."""
    return {"members": member_list(lab), "cluster": cluster_of(lab),
            "manifests": {host: {name: h.read_node_file_if_exists(lab, host, "/etc/kubernetes/manifests/" + name)
                                 for name in h.MANIFESTS} for host in h.hosts(lab)},
            "held_etcd": {host: h.read_node_file_if_exists(lab, host, h.HOLDING_DIR + "/etcd.yaml")
                          for host in h.hosts(lab)},
            "var_lib": {host: h.listdir(lab, host, "/var/lib") for host in h.hosts(lab)},
            "held": {host: h.listdir(lab, host, h.HOLDING_DIR) or [] for host in h.hosts(lab)}}


@pytest.mark.parametrize("lab", [THREE], indirect=True)
def test_destroyed_member_comes_back_with_its_name_and_every_key_then_a_rerun_is_refused(lab, run_playbook):
    lab.etcdctl("put", PREFIX + "before", "yes")
    members_before = member_list(lab)
    cluster_before = h.cluster_id(lab)
    manifest_before = h.read_node_file(lab, "cp3", "/etc/kubernetes/manifests/etcd.yaml")
    destroy(lab, "cp3")
    lab.etcdctl("put", PREFIX + "while-cp3-was-gone", "yes")

    run = member(run_playbook, lab, "cp3")
    assert run.rc == 0, run
    plan = run.result(PLAN_TASK, "cp1")["plan"]
    assert plan["state"] == "voting-down" and plan["helper"] == "cp1"
    assert [step for step, todo in plan["steps"].items() if not todo] == ["move_aside"]  # the dir was gone already
    assert run.result(VERIFY_TASK, "cp3")["member_id"] == member_list(lab)["cp3"][0]

    after = member_list(lab)
    assert sorted(after) == sorted(members_before)
    assert all(not learner for _id, learner in after.values()), after
    assert {name: after[name] for name in ("cp1", "cp2")} == {name: members_before[name] for name in ("cp1", "cp2")}
    assert after["cp3"][0] != members_before["cp3"][0]  # a new member, with the old name
    assert h.cluster_id(lab) == cluster_before
    assert h.local_keys(lab, "cp3") >= {PREFIX + "before", PREFIX + "while-cp3-was-gone"}
    assert h.local_keys(lab, "cp3") == h.local_keys(lab, "cp1")
    # Only --initial-cluster(-state) changed in cp3's etcd.yaml; the held one went to the run dir.
    manifest_after = h.read_node_file(lab, "cp3", "/etc/kubernetes/manifests/etcd.yaml").decode()
    changed = sorted(set(manifest_after.splitlines()) ^ set(manifest_before.decode().splitlines()))
    assert all("--initial-cluster" in line for line in changed), changed
    assert "--initial-cluster-state=existing" in manifest_after
    assert h.listdir(lab, "cp3", h.HOLDING_DIR) == []
    replaced = h.read_node_file_if_exists(lab, "cp3", plan["run_dir"] + "/replaced/etcd.yaml")
    if manifest_after.encode() == manifest_before:
        # cp3 had joined with the same --initial-cluster (same member order): the held file went back as it was.
        assert replaced is None
    else:
        assert replaced == manifest_before
    assert h.readyz(lab, "cp3") == (200, "ok")

    # Again: cp3 is a healthy voting member now; refused, nothing changes.
    before = state(lab)
    again = member(run_playbook, lab, "cp3")
    assert again.rc != 0, again
    message = again.result(PLAN_TASK, "cp1")["msg"]
    assert "- cp3: its etcd runs as a healthy, started voting member cp3" in message, message
    assert "etcd_member_replace=true" in message, message
    assert state(lab) == before

    # Check mode with etcd_member_replace=true: the whole plan is shown, nothing changes.
    checked = member(run_playbook, lab, "cp3", check=True, etcd_member_replace=True)
    assert checked.rc == 0, checked
    lines = checked.result(SHOW_PLAN_TASK, "cp1")["msg"]
    assert any("stop etcd on cp3" in line for line in lines), lines
    assert any("move the data dir /var/lib/etcd aside to /var/lib/etcd.replaced-" in line for line in lines), lines
    assert any("remove member cp3 (%s)" % before["members"]["cp3"][0] in line for line in lines), lines
    assert state(lab) == before


@pytest.mark.parametrize("lab", [THREE], indirect=True)
def test_unknown_host_and_a_name_clash_are_refused_before_anything_changes(lab, run_playbook):
    before = state(lab)
    run = member(run_playbook, lab, "cp9")
    assert run.rc != 0, run
    assert "- cp9: it is not a host of the play (the inventory group has: cp1, cp2, cp3)." \
        in run.result(PLAN_TASK, "cp1")["msg"]

    # cp2's etcd.yaml names its member otherwise than the member that has its peer URL.
    path = "/etc/kubernetes/manifests/etcd.yaml"
    original = h.read_node_file(lab, "cp2", path)
    lab.exec("cp2", ["mkdir", "-p", "-m", "0700", h.HOLDING_DIR], check=True)
    lab.exec("cp2", ["mv", path, h.HOLDING_DIR + "/etcd.yaml"], check=True)
    lab.exec("cp2", ["sed", "-i", "s/--name=cp2$/--name=cp2-new/", h.HOLDING_DIR + "/etcd.yaml"], check=True)
    try:
        held_before = state(lab)
        run = member(run_playbook, lab, "cp2")
        assert run.rc != 0, run
        message = run.result(PLAN_TASK, "cp1")["msg"]
        assert "- cp2: etcd member cp2 (%s) has the peer URL" % before["members"]["cp2"][0] in message, message
        assert "names its member cp2-new" in message and "--name=cp2" in message, message
        assert state(lab) == held_before
    finally:
        lab.exec("cp2", ["sed", "-i", "s/--name=cp2-new$/--name=cp2/", h.HOLDING_DIR + "/etcd.yaml"], check=True)
        lab.exec("cp2", ["mv", h.HOLDING_DIR + "/etcd.yaml", path], check=True)
    assert h.read_node_file(lab, "cp2", path) == original
    assert h.wait_for(lambda: all_started(lab), 120)
    assert h.cluster_id(lab) == before["cluster"] and member_list(lab) == before["members"]


@pytest.mark.parametrize("lab", [THREE], indirect=True)
def test_a_rerun_finishes_the_learner_an_interrupted_run_left_behind(lab, run_playbook):
    """The state a run leaves when it stops between the add and the start: cp3 stopped, its data gone, its old
    member removed and a learner added that never started."""
    members_before = member_list(lab)
    destroy(lab, "cp3")
    lab.etcdctl("member", "remove", members_before["cp3"][0], endpoints=[lab.node("cp1")["client_url"]])
    # etcd refuses a member add until the leader has been connected to every voting member for 5 s.
    assert h.wait_for(lambda: lab.etcdctl("member", "add", "cp3", "--peer-urls=" + lab.node("cp3")["peer_url"],
                                          "--learner", endpoints=[lab.node("cp1")["client_url"]],
                                          check=False).returncode == 0, timeout=60)
    lab.etcdctl("put", PREFIX + "while-cp3-was-a-learner", "yes", endpoints=[lab.node("cp1")["client_url"]])

    run = member(run_playbook, lab, "cp3")
    assert run.rc == 0, run
    plan = run.result(PLAN_TASK, "cp1")["plan"]
    assert plan["state"] == "learner-unstarted"
    assert [step for step, todo in plan["steps"].items() if todo] == [
        "stop", "add", "manifest", "start", "promote", "verify"]

    after = member_list(lab)
    assert sorted(after) == ["cp1", "cp2", "cp3"]
    assert all(not learner for _id, learner in after.values()), after
    assert {n: after[n] for n in ("cp1", "cp2")} == {n: members_before[n] for n in ("cp1", "cp2")}
    assert PREFIX + "while-cp3-was-a-learner" in h.local_keys(lab, "cp3")


FLAKY_ETCDCTL = "/var/lib/kubeops-member-test/etcdctl"


def install_etcdctl_that_refuses_member_remove(lab):
    """An etcdctl on every node that fails `member remove` and runs the real one for everything else."""
    for host in h.hosts(lab):
        path = lab.node_path(host, FLAKY_ETCDCTL)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write('#!/bin/sh\nfor arg in "$@"; do\n  if [ "$arg" = remove ]; then\n'
                         '    echo "Error: injected fault: member remove refused" >&2; exit 1\n  fi\ndone\n'
                         'exec %s "$@"\n' % lab.node(host)["etcdctl"])
        os.chmod(path, 0o755)


@pytest.mark.parametrize("lab", [THREE], indirect=True)
def test_a_failure_before_the_removal_puts_the_node_back_as_it_was(lab, run_playbook):
    install_etcdctl_that_refuses_member_remove(lab)
    assert h.wait_for(lambda: all_started(lab), 120)
    before = state(lab)
    data_before = h.listdir(lab, "cp3", "/var/lib/etcd/member")

    run = member(run_playbook, lab, "cp3", etcd_member_replace=True, etcd_member_etcdctl_path=FLAKY_ETCDCTL)
    assert run.rc != 0, run
    message = run.result("Fail the member change with what was done and what to run next", "cp3")["msg"]
    assert message.startswith('etcd member change of cp3 FAILED at "Remove the old member from the cluster'), message
    assert "injected fault: member remove refused" in message, message
    assert "Done before the failure: stop, move_aside." in message, message
    assert "PUT BACK: cp3 has its original etcd.yaml and its data dir /var/lib/etcd again" in message, message

    assert h.wait_for(lambda: all_started(lab), 120)
    assert member_list(lab) == before["members"]
    assert cluster_of(lab) == before["cluster"]
    assert {host: h.manifests(lab, host) for host in h.hosts(lab)} == \
        {host: before["manifests"][host] for host in h.hosts(lab)}
    assert h.listdir(lab, "cp3", h.HOLDING_DIR) == []
    assert h.listdir(lab, "cp3", "/var/lib/etcd/member") == data_before
    assert not [name for name in h.listdir(lab, "cp3", "/var/lib") if name.startswith("etcd.replaced-")]
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp3"), 120)


def probe_readyz(lab, hosts, failures, counts, done):
    """Poll /readyz of every host until done; count the probes and the failed ones per host."""
    while not done.is_set():
        for host in hosts:
            counts[host] += 1
            if not h.readyz_ok(lab, host):
                failures[host] += 1
        time.sleep(0.2)


@pytest.mark.parametrize("lab", [FIVE], indirect=True)
def test_replacing_a_healthy_member_of_five_keeps_every_other_api_server_answering(lab, run_playbook):
    lab.etcdctl("put", PREFIX + "five", "yes")
    members_before = member_list(lab)
    cluster_before = h.cluster_id(lab)
    hosts = h.hosts(lab)
    failures = dict.fromkeys(hosts, 0)
    counts = dict.fromkeys(hosts, 0)
    done = threading.Event()
    prober = threading.Thread(target=probe_readyz, args=(lab, hosts, failures, counts, done))
    prober.start()
    try:
        run = member(run_playbook, lab, "cp4", etcd_member_replace=True)
    finally:
        done.set()
        prober.join()
    assert run.rc == 0, run
    assert run.result(PLAN_TASK, "cp1")["plan"]["state"] == "voting-healthy"
    others = [host for host in hosts if host != "cp4"]
    assert all(counts[host] > 0 for host in others), counts
    assert {host: failures[host] for host in others} == dict.fromkeys(others, 0), (failures, counts)

    after = member_list(lab)
    assert sorted(after) == sorted(members_before)
    assert all(not learner for _id, learner in after.values()), after
    assert after["cp4"][0] != members_before["cp4"][0]
    assert {n: after[n] for n in others} == {n: members_before[n] for n in others}
    assert h.cluster_id(lab) == cluster_before
    assert PREFIX + "five" in h.local_keys(lab, "cp4")
    # The old data dir was renamed, not deleted.
    moved = [name for name in h.listdir(lab, "cp4", "/var/lib") if name.startswith("etcd.replaced-")]
    assert len(moved) == 1, moved
    assert os.path.isdir(lab.node_path("cp4", "/var/lib/%s/member" % moved[0]))
    assert h.readyz(lab, "cp4") == (200, "ok")


@pytest.mark.parametrize("lab", [pytest.param({"nodes": 3, "etcd_version": "3.4.23", "ip_base": 320,
                                               "dir": "/tmp/kubeops-member-320"}, id="3-nodes-3.4.23")],
                         indirect=True)
def test_etcd_34_adds_the_member_back_as_a_voting_member_without_a_learner(lab, run_playbook):
    lab.etcdctl("put", PREFIX + "on-3.4", "yes")
    members_before = member_list(lab)
    cluster_before = h.cluster_id(lab)
    destroy(lab, "cp2")

    run = member(run_playbook, lab, "cp2")
    assert run.rc == 0, run
    plan = run.result(PLAN_TASK, "cp1")["plan"]
    assert (plan["as_learner"], plan["steps"]["promote"], plan["version"]) == (False, False, "3.4")
    assert "as a voting member" in run.result("Add the member again (a learner on etcd 3.5+, a voting member on 3.4)",
                                              "cp2")["msg"]

    after = member_list(lab)
    assert sorted(after) == sorted(members_before)
    assert all(not learner for _id, learner in after.values()), after
    assert after["cp2"][0] != members_before["cp2"][0]
    assert h.cluster_id(lab) == cluster_before
    assert PREFIX + "on-3.4" in h.local_keys(lab, "cp2")
    assert h.local_keys(lab, "cp2") == h.local_keys(lab, "cp1")
