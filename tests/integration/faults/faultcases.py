"""Cases of the fault suite that run on more than one etcd version (test_fault_interrupted.py and
test_fault_port_taken.py on 3.5.30, test_fault_etcd34.py on 3.4.23). Each asserts the end state and the first line
of what the operator reads."""

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
