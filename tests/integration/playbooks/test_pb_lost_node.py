"""A control plane that stops answering after the stop: the others roll back and serve with their quorum; the lost
node is named with the step, and restore_abort.yml puts it back once it answers again.

The fault comes from the lab, the way it happens: as soon as cp3's etcd.yaml is held (the stop step), every sshd
process of cp3 is killed, which cuts the SSH session that runs the step there. The node's init restarts its sshd a
second later, but Ansible counts cp3 unreachable for the rest of the play."""

import json
import os
import signal
import threading
import time

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 104, "dir": "/tmp/kubeops-lost-104"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-lost/"
ABORT_PLAYBOOK = os.path.join(os.path.dirname(h.RESTORE_PLAYBOOK), "restore_abort.yml")


def sshd_pids(lab, host):
    """Every sshd process of a node: its listener and the sessions it forked (same mount namespace)."""
    node_ns = os.readlink("/proc/%d/ns/mnt" % lab._pid(lab.node(host)["init_pidfile"]))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry) as handle:
                comm = handle.read().strip()
            if comm == "sshd" and os.readlink("/proc/%s/ns/mnt" % entry) == node_ns:
                found.append(int(entry))
        except OSError:
            continue
    return found


def cut_ssh_when_held(lab, host, held_name, done):
    """Kill every sshd of host once held_name lies in its holding dir (the stop step is running there)."""
    held = lab.node_path(host, h.HOLDING_DIR + "/" + held_name)
    deadline = time.time() + 600
    while time.time() < deadline and not done.is_set():
        if os.path.exists(held):
            for pid in sshd_pids(lab, host):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            done.set()
            return
        time.sleep(0.05)


def restore_cutting_ssh(lab, run_playbook, snapshot, host):
    """restore.yml, while every sshd of host is killed once its etcd.yaml is held (the stop step runs there)."""
    done = threading.Event()
    watcher = threading.Thread(target=cut_ssh_when_held, args=(lab, host, "etcd.yaml", done))
    watcher.start()
    try:
        return h.restore(run_playbook, lab, snapshot)
    finally:
        done.set()
        watcher.join()


def test_lost_node_after_the_stop_others_serve_then_abort_brings_it_back(lab, run_playbook, tmp_path):
    snapshot = h.backup_with_marker(run_playbook, lab, str(tmp_path), PREFIX)
    lab.etcdctl("put", PREFIX + "after-backup", "must-survive")
    keys_before = h.keys(lab, with_values=True)
    cluster_before = h.cluster_id(lab)
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}

    run = restore_cutting_ssh(lab, run_playbook, snapshot, "cp3")
    assert run.rc != 0, run
    message = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
    first = message.split(". ")[0]
    assert first.startswith("etcd restore FAILED on cp3 at step "), message
    assert "it stopped answering (SSH to it failed" in first, message
    assert "ROLLED BACK on cp1, cp2:" in message, message
    assert "2 of 3 members up (cp3 down)" in message, message
    assert "NOT ROLLED BACK: cp3." in message and "run playbooks/restore_abort.yml" in message, message

    # cp1 and cp2 serve the old cluster with all its data, their API servers answer
    for host in ("cp1", "cp2"):
        assert h.manifests(lab, host) == manifests_before[host], host
        assert h.readyz(lab, host) == (200, "ok")
    serving = [lab.node(host)["client_url"] for host in ("cp1", "cp2")]
    statuses = json.loads(lab.etcdctl("endpoint", "status", "-w", "json", endpoints=serving).stdout)
    assert {format(s["Status"]["header"]["cluster_id"], "x") for s in statuses} == {cluster_before}
    assert sum(1 for s in statuses if s["Status"]["leader"] == s["Status"]["header"]["member_id"]) == 1
    assert h.keys(lab, with_values=True) == keys_before

    # cp3 answers again: the abort finds this run in its journal and puts it back
    assert h.wait_for(lambda: run_playbook(lab, "- hosts: cp3\n  gather_facts: false\n  tasks:\n"
                                                "    - ansible.builtin.ping:\n").rc == 0, timeout=60)
    run = run_playbook(lab, ABORT_PLAYBOOK)
    assert run.rc == 0, run
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp3"), timeout=120)
    assert h.manifests(lab, "cp3") == manifests_before["cp3"]
    assert sorted(h.members(lab)) == ["cp1", "cp2", "cp3"]
    assert h.cluster_id(lab) == cluster_before
    assert h.keys(lab, with_values=True) == keys_before
    assert h.listdir(lab, "cp3", h.HOLDING_DIR) == []


def init_pid(lab, host):
    return lab._pid(lab.node(host)["init_pidfile"])


def test_a_node_gone_for_good_keeps_the_others_serving_and_an_abort_waits_for_it(lab, run_playbook, tmp_path):
    """cp2's sshd is killed once its etcd.yaml is held and stays dead (the node's init, which would restart it, is
    frozen from outside): the restore and a first restore_abort.yml both run while cp2 cannot be reached. Neither
    may touch cp1 and cp3, which serve the old cluster; the abort says what it could not do and keeps cp2's run
    open. Once cp2 answers, the abort brings it back."""
    snapshot = h.backup_with_marker(run_playbook, lab, str(tmp_path), PREFIX + "gone/")
    lab.etcdctl("put", PREFIX + "gone/after-backup", "must-survive")
    keys_before, cluster_before = h.keys(lab, with_values=True), h.cluster_id(lab)
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}
    runs_dir = lab.node_path("cp2", h.RUNS_DIR)
    runs_before = set(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else set()

    init = init_pid(lab, "cp2")
    os.kill(init, signal.SIGSTOP)
    try:
        run = restore_cutting_ssh(lab, run_playbook, snapshot, "cp2")
        assert run.rc != 0, run
        assert not sshd_pids(lab, "cp2"), "cp2's sshd came back while its init was frozen"
        message = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
        assert message.startswith("etcd restore FAILED on cp2 at step "), message
        assert "ROLLED BACK on cp1, cp3:" in message and "NOT ROLLED BACK: cp2." in message, message
        served = {host: h.manifests(lab, host) for host in ("cp1", "cp3")}

        # The abort, while cp2 is still gone: it cannot undo cp2, says so, and leaves the serving nodes alone.
        aborted = run_playbook(lab, ABORT_PLAYBOOK)
        assert aborted.rc != 0, aborted
        said = " | ".join(r["result"].get("msg", "") for r in aborted.failed())
        assert "cp2" in said, aborted
        assert [r["host"] for r in aborted.results if r["status"] == "unreachable"] == ["cp2"], aborted
        for host in ("cp1", "cp3"):
            assert h.manifests(lab, host) == served[host] == manifests_before[host], host
            assert h.readyz(lab, host) == (200, "ok"), host
            assert h.listdir(lab, host, h.HOLDING_DIR) == [], host
        assert h.keys(lab, with_values=True, hosts=["cp1", "cp3"]) == keys_before
        # cp2's run is still open in its journal: the one thing that can finish it later.
        [run_id] = sorted(set(os.listdir(runs_dir)) - runs_before)
        with open(os.path.join(runs_dir, run_id, "journal.json")) as handle:
            assert json.load(handle)["status"] == "running"
    finally:
        os.kill(init, signal.SIGCONT)

    # cp2 answers again (its init restarts sshd): the abort finds the run in its journal and puts it back.
    assert h.wait_for(lambda: run_playbook(lab, "- hosts: cp2\n  gather_facts: false\n  tasks:\n"
                                                "    - ansible.builtin.ping:\n").rc == 0, timeout=60)
    aborted = run_playbook(lab, ABORT_PLAYBOOK)
    assert aborted.rc == 0, aborted
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp2"), timeout=120)
    h.assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before)
    with open(os.path.join(runs_dir, run_id, "journal.json")) as handle:
        assert json.load(handle)["status"] == "aborted"
