"""Cases of the fault suite that run on more than one etcd version (test_fault_interrupted.py and
test_fault_port_taken.py on 3.5.30, test_fault_etcd34.py on 3.4.23, where the port taken is the peer port). Each asserts the end state and the first line
of what the operator reads."""

import re

import faulthelpers as f
from faulthelpers import h

HELD_ALL = sorted(h.MANIFESTS)


def refuses_naming_both_ways_out(run_playbook, lab, snapshot, run, first_host_state):
    """A new run, with and without --check, changes nothing and names the state and both commands."""
    state = h.node_state(lab)
    for check in (True, False):
        refused = h.restore(run_playbook, lab, snapshot, check=check)
        assert refused.rc != 0, refused
        message = " | ".join(f.failure_messages(refused))
        assert f.first_line(message).startswith(
            "An earlier restore run (%s) did not finish: cp1 is %s" % (run, first_host_state)), refused
        assert "etcd_restore_resume=true" in message and "playbooks/restore_abort.yml" in message, message
        assert not refused.task_results(h.STOP_TASK)
        assert h.node_state(lab) == state


def interrupt_after_the_stop(lab, snapshot, tmp_path, sig):
    """Run restore.yml and send sig to its process group once every manifest is held on every node and nothing is
    swapped in yet. The stop step is held open from outside: the leader's etcd, which the role stops last, is frozen
    (SIGSTOP) as soon as its node's API server is held, so the kubelet needs its 10 s grace period to kill it.
    Checks what the nodes hold; the run id."""
    before = {host: f.runs(lab, host) for host in h.hosts(lab)}
    leader = f.leader_host(lab)
    # Found before the play starts: once the API server is held, the role stops etcd within a kubelet sync, too
    # soon on a loaded machine to look the process up then.
    frozen = [f.etcd_pid(lab, leader)]
    watcher = f.Watcher(lambda: "kube-apiserver.yaml" in f.held(lab, leader), lambda: f.freeze(frozen))
    watcher.start()
    play = f.Background(lab, tmp_path, {"snapshot": snapshot}, name="interrupted")
    try:
        play.wait_until(lambda: all(sorted(f.held(lab, host)) == HELD_ALL for host in h.hosts(lab)),
                        240, "every manifest held")
        assert not any(f.swapped(lab, before, host) for host in h.hosts(lab))
        play.interrupt(sig)
    finally:
        watcher.stop()
        play.close()
        # The kubelet kills the frozen etcd after its grace period.
        assert h.wait_for(lambda: not lab.exec(leader, ["crictl", "ps", "-q", "--name", "^etcd$"]).stdout.strip(), 60)
        f.thaw(frozen)
    assert watcher.fired
    runs = f.new_runs(lab, before)
    run = runs["cp1"]
    assert set(runs.values()) == {run}, runs
    for host in h.hosts(lab):
        assert f.journal(lab, host, run)["status"] == "running"
        assert sorted(f.held(lab, host)) == HELD_ALL
        assert not f.swapped(lab, before, host)
    return run


def resume_gives_exactly_the_snapshot(lab, run_playbook, snapshot, run, keys_at_backup):
    resumed = run_playbook(lab, h.RESTORE_PLAYBOOK, extra_vars={"etcd_restore_resume": True})
    assert resumed.rc == 0, resumed
    assert h.keys(lab, with_values=True) == keys_at_backup
    plan = f.journal(lab, "cp1", run)["plan"]
    assert h.members(lab) == {m["name"]: m["member_id"] for m in plan["members"]}
    assert h.cluster_id(lab) == plan["cluster_id"] == h.custom_stat(resumed, "etcd_restore")["cluster_id"]
    for host in h.hosts(lab):
        member = f.journal(lab, host, run)["member"]
        assert f.journal(lab, host, run)["status"] == "done"
        assert h.manifest_data_dir(lab, host) == member["new_data_dir"]
        assert h.listdir(lab, host, h.HOLDING_DIR) == []
        assert h.readyz(lab, host) == (200, "ok")
    # Nothing is left for a new run to trip over.
    again = h.restore(run_playbook, lab, snapshot, check=True)
    assert again.rc == 0, again


def killed_after_the_stop_then_resumed(lab, run_playbook, tmp_path, prefix, sig):
    lab.etcdctl("put", prefix + "in-snapshot", "yes")
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    keys_at_backup = h.keys(lab, with_values=True)
    lab.etcdctl("put", prefix + "after-backup", "must-vanish")
    run = interrupt_after_the_stop(lab, snapshot, tmp_path, sig)
    refuses_naming_both_ways_out(run_playbook, lab, snapshot, run, "control plane stopped, etcd.yaml held aside")
    resume_gives_exactly_the_snapshot(lab, run_playbook, snapshot, run, keys_at_backup)


def port_taken_on_cp2(lab, run_playbook, tmp_path, prefix, which="client"):
    """cp2's client (or peer) address is bound by the test right after its etcd stops, and kept until the checks
    are done."""
    lab.etcdctl("put", prefix + "in-snapshot", "yes")
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    lab.etcdctl("put", prefix + "after-backup", "must-survive-the-rollback")
    keys_before, cluster_before = h.keys(lab, with_values=True), h.cluster_id(lab)
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}
    before = {host: f.runs(lab, host) for host in h.hosts(lab)}
    ip, port = f.etcd_address(lab, "cp2", which)
    take, taken = f.port_taker(ip, port)
    watcher = f.Watcher(lambda: "etcd.yaml" in f.held(lab, "cp2") and take(), lambda: None)
    watcher.start()
    try:
        try:
            run = h.restore(run_playbook, lab, snapshot, etcd_restore_pod_timeout=30, etcd_restore_health_timeout=60)
        finally:
            watcher.stop()
        assert taken, "cp2's %s port was never free during the restore:\n%r" % (which, run)
        assert run.rc != 0, run
        message = f.final_message(run)
        head = f.first_line(message)

        # cp1 and cp3 are a quorum of the old cluster: they serve all of its data, their API servers answer.
        for host in ("cp1", "cp3"):
            assert f.held(lab, host) == set(), (host, message)
            assert h.manifests(lab, host) == manifests_before[host], host
            assert h.listdir(lab, host, h.HOLDING_DIR) == [], host
            assert h.readyz(lab, host) == (200, "ok"), (host, message)
        assert f.cluster_ids(lab, ["cp1", "cp3"]) == {"cp1": cluster_before, "cp3": cluster_before}, message
        assert h.keys(lab, with_values=True, hosts=["cp1", "cp3"]) == keys_before
        # The first line names cp2 and the step: the start (etcd never seen running there) or the wait for the
        # restored members (seen running for a moment); the cause is cp2's.
        assert re.match(r"etcd restore FAILED on cp2 at step (start_etcd|wait_quorum) ", head), message
        assert "member cp2" in head or "members missing: cp2" in head, message
        # ... and the cause inside cp2, read from its etcd container's log before the rollback touched it.
        assert re.search(r"etcd on cp2: container \w+ exited \(attempt \d+\), its log ends with: [^;]*"
                         r"bind: address already in use", head), message
        # What became of cp2 is said as read from it: back on its old files with its member down, or its rollback
        # failed with its state.
        assert "MEMBER DOWN on cp2" in message or "NOT ROLLED BACK: cp2, its rollback failed" in message, message
        if "MEMBER DOWN on cp2" in message:
            down = message.split("MEMBER DOWN on cp2", 1)[1].split("MEMBER DOWN", 1)[0]
            assert re.search(r"Its container, read after the wait: etcd on cp2: container \w+ exited \(attempt \d+\), "
                             r"its log ends with: .*?bind: address already in use", down), message
    finally:
        for sock in taken:
            sock.close()

    # The port is free again: one command at most brings cp2 back on its previous data, with the old cluster.
    run_id = f.new_runs(lab, before)["cp1"]
    if "running" in [f.journal(lab, host, run_id)["status"] for host in h.hosts(lab)]:
        aborted = run_playbook(lab, f.ABORT_PLAYBOOK)
        assert aborted.rc == 0, aborted
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp2"), timeout=120)
    h.assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before)
    # cp2's member is a full member again: it holds every key in its own data (a serializable read).
    assert h.wait_for(lambda: h.local_keys(lab, "cp2") == set(keys_before), timeout=60)
    # Nothing of the failed run blocks the next one.
    assert h.restore(run_playbook, lab, snapshot, check=True).rc == 0
