"""etcd_cluster_health on the lab over SSH, every etcd version: healthy cluster, member down, waiting until a
stopped member is back (polling), expectations, and connection failures."""

import json
import subprocess
import threading
import time

import pytest
import yaml

from modhelpers import labs, wait_healthy

HELD = "/etc/kubernetes/kubeops-it-held-etcd.yaml"
MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"

pytestmark = pytest.mark.parametrize("lab", labs(190, nodes=3), indirect=True, scope="module")


def playbook(name, args, hosts="cp1"):
    return yaml.safe_dump([{"name": "kubeops.etcd integration: cluster health", "hosts": hosts, "gather_facts": False,
                            "tasks": [{"name": name, "kubeops.etcd.etcd_cluster_health": args,
                                       "ignore_errors": True}]}], sort_keys=False)


def check(run_playbook, lab, args, name="Check etcd health", host="cp1", **kwargs):
    run = run_playbook(lab, playbook(name, args), **kwargs)
    assert run.rc == 0, run
    item = run.task_results(name, host)[-1]
    return item["status"] == "ok", item["result"]


def etcd_facts(lab):
    statuses = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)
    members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    names = {m["ID"]: m["name"] for m in members["members"]}
    leader = [s["Status"]["leader"] for s in statuses if s["Status"]["leader"] == s["Status"]["header"]["member_id"]]
    return {"leader": leader[0], "leader_name": names[leader[0]], "cluster_id": members["header"]["cluster_id"],
            "ids": sorted("%x" % i for i in names), "revision": max(s["Status"]["header"]["revision"] for s in statuses)}


def stop_member(lab, host):
    lab.exec(host, ["mv", MANIFEST, HELD], check=True)
    deadline = time.time() + 60
    while lab.exec(host, ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.strip():
        assert time.time() < deadline, "etcd on %s did not stop" % host
        time.sleep(0.5)


def start_member_once_probed(lab, host, timeout=120):
    """Start the member once the module has probed it twice: two etcdctl processes (two PIDs) naming its client
    URL were seen, so the first probe - one attempt of the module - ended while the member was down."""
    url = lab.node(host)["client_url"]
    seen = set()
    deadline = time.time() + timeout
    while len(seen) < 2 and time.time() < deadline:
        found = subprocess.run(["pgrep", "-f", "etcdctl.*" + url.replace(".", "[.]")], capture_output=True,
                               text=True, check=False)
        seen.update(found.stdout.split())
        time.sleep(0.05)
    start_member(lab, host)


def start_member(lab, host):
    lab.exec(host, ["mv", HELD, MANIFEST], check=True)


def test_healthy_cluster_seen_alike_from_every_node(lab, run_playbook):
    facts = etcd_facts(lab)
    name = "Check etcd health"
    run = run_playbook(lab, playbook(name, {"expected_members": ["cp1", "cp2", "cp3"]}, hosts="kube_control_plane"),
                       check=True)
    assert run.rc == 0, run
    for host in ("cp1", "cp2", "cp3"):
        item = run.task_results(name, host)[-1]
        assert item["status"] == "ok", item
        result = item["result"]
        cluster = result["cluster"]
        assert result["changed"] is False and result["attempts"] == 1
        assert cluster["healthy"] is True and cluster["problems"] == []
        assert cluster["leader"] == "%x" % facts["leader"] and cluster["leader_name"] == facts["leader_name"]
        assert cluster["cluster_id"] == "%x" % facts["cluster_id"]
        assert sorted(m["id"] for m in cluster["members"]) == facts["ids"]
        assert cluster["revision"] >= facts["revision"]
        assert [e["healthy"] for e in cluster["endpoints"]] == [True, True, True]
        assert [e["is_leader"] for e in cluster["endpoints"]].count(True) == 1
        assert {e["version"] for e in cluster["endpoints"]} == {lab.state["nodes"][0]["etcd_version"]}


def test_expectations_not_met(lab, run_playbook):
    revision = etcd_facts(lab)["revision"]
    ok, result = check(run_playbook, lab, {"expected_members": ["cp1", "cp2", "cp4"], "min_revision": revision + 10 ** 9})
    assert not ok
    assert result["cluster"]["healthy"] is True
    assert "expected members missing: cp4" in result["msg"]
    assert "unexpected members present: cp3" in result["msg"]
    assert "is below the expected minimum %d" % (revision + 10 ** 9) in result["msg"]


def test_member_down_then_waiting_until_it_is_back(lab, run_playbook):
    stop_member(lab, "cp3")
    try:
        ok, result = check(run_playbook, lab, {})
        assert not ok
        assert "member cp3 is unreachable" in result["msg"] and "after 1 attempt(s)" in result["msg"]
        assert result["cluster"]["healthy"] is False

        ok, result = check(run_playbook, lab, {"fail_unhealthy": False})
        assert ok and result["cluster"]["healthy"] is False
        assert [p.split(" (")[0] for p in result["cluster"]["problems"]] == ["member cp3 is unreachable"]

        # Start waiting while cp3 is down and bring it back only once the module has probed it twice: the module
        # must poll more than one round before it sees the cluster healthy, however long SSH takes to set up.
        timer = threading.Thread(target=start_member_once_probed, args=(lab, "cp3"))
        timer.start()
        started = time.time()
        ok, result = check(run_playbook, lab, {"wait_timeout": 120, "expected_members": ["cp1", "cp2", "cp3"]})
        timer.join()
        assert ok, result
        assert result["cluster"]["healthy"] is True and result["cluster"]["problems"] == []
        assert result["attempts"] > 1
        assert result["elapsed_seconds"] <= time.time() - started
    finally:
        if lab.exec("cp3", ["test", "-e", HELD]).returncode == 0:
            start_member(lab, "cp3")
        wait_healthy(lab)


def test_connection_failures_are_explained(lab, run_playbook):
    node = lab.state["nodes"][0]
    ok, result = check(run_playbook, lab, {"cacert": "/etc/kubernetes/pki/etcd/missing-ca.crt"})
    assert not ok and "cacert file /etc/kubernetes/pki/etcd/missing-ca.crt does not exist on cp1" in result["msg"]

    ok, result = check(run_playbook, lab, {"endpoints": ["https://%s:1" % node["ip"]], "wait_timeout": 2})
    assert not ok
    assert "Listing etcd members at https://%s:1 failed on cp1" % node["ip"] in result["msg"]
    assert result["elapsed_seconds"] >= 2  # it kept trying until wait_timeout

    # A client certificate from another CA: TLS verification is on, so etcd refuses.
    ok, result = check(run_playbook, lab, {"cacert": "/etc/kubernetes/pki/ca.crt"})
    assert not ok and "Listing etcd members" in result["msg"]
