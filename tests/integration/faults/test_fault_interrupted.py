"""Ctrl-C (SIGINT to the process group) and SIGKILL of ansible-playbook during restore.yml, at two moments observed
on the nodes, on a 3-node etcd 3.5.30 lab. Each time a new run refuses and names both ways out; one run is finished
with -e etcd_restore_resume=true (exactly the snapshot), the other undone with restore_abort.yml (exactly the old data,
old cluster ID, every manifest byte for byte).

Two more moments, each then undone with restore_abort.yml: Ctrl-C half-way through the stop step (the leader's API
server frozen once its manifest is held, so the stop waits for the kubelet's grace period before it moves etcd.yaml;
the abort starts at once, while the interrupted stop still runs on the leader), and SIGKILL during the rollback itself
(cp3's etcd fails on the restored data; the play is killed once a node has moved its restored data dir aside).

Before the stop, SIGKILL once every node has the run's journal while the stop step waits for the static_pod lock,
which the test holds on every node (as another static_pod run would): every member prepared, nothing stopped. Then
restore_abort.yml stops nothing and only closes the journals (aborted); or the next restore closes them (abandoned)
and restores exactly its snapshot. Either way prune.yml offers what the killed run prepared.

The moments (test_pb_interrupted.py covers a SIGKILL while etcd waits to start on the restored data):
- after the stop, before the swap: every manifest held on every node, no prepared etcd.yaml swapped in. The stop step
  is held open from outside: the leader's etcd (stopped last) is frozen (SIGSTOP) as soon as its API server is held,
  so the kubelet needs its 10 s grace period to kill it - the way a hung etcd stops.
- after the start step began: every etcd runs on the restored data and the API servers' manifests are back, while the
  lab's kubelet fails cp3's API server on the restored data (the play waits for it).
"""

import glob
import os
import signal

import pytest

import faultcases
import faulthelpers as f
from faulthelpers import h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 330, "dir": "/tmp/kubeops-faults-330"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-faults-interrupted/"


def test_ctrl_c_after_the_stop_before_the_swap_then_resume_gives_exactly_the_snapshot(lab, run_playbook, tmp_path):
    faultcases.killed_after_the_stop_then_resumed(lab, run_playbook, tmp_path, PREFIX, signal.SIGINT)


def test_sigkill_after_the_start_step_began_then_abort_gives_exactly_the_old_data(lab, run_playbook, tmp_path):
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    lab.etcdctl("put", PREFIX + "before-the-killed-run", "must-stay")
    cluster_before, keys_before = h.cluster_id(lab), h.keys(lab, with_values=True)
    members_before = h.members(lab)
    manifests_before = {host: h.manifests(lab, host) for host in h.hosts(lab)}
    before = {host: f.runs(lab, host) for host in h.hosts(lab)}
    lab.set_fault("cp3", "kube-apiserver", when_manifests_match=h.next_restore_pattern(lab, "cp3"),
                  message="apiserver cannot start")
    play = f.Background(lab, tmp_path, {"snapshot": snapshot}, name="killed")
    try:
        # etcd runs on the restored data everywhere and every API server manifest is back: the play waits for them.
        play.wait_until(lambda: all(f.swapped(lab, before, host) and not f.held(lab, host) for host in h.hosts(lab)),
                        300, "the API servers started on the restored data")
        play.interrupt(signal.SIGKILL)
    finally:
        play.close()
        lab.clear_faults("cp3")
    # With the fault gone the lab's kubelet starts cp3's API server again, on the restored data: wait for it, so
    # that the refusals below compare the nodes with a state the kubelet is not still changing.
    assert h.wait_for(lambda: h.readyz_ok(lab, "cp3"), timeout=120)
    run = f.new_runs(lab, before)["cp1"]
    for host in h.hosts(lab):
        assert f.journal(lab, host, run)["status"] == "running"
        assert h.manifest_data_dir(lab, host) == f.journal(lab, host, run)["member"]["new_data_dir"]

    faultcases.refuses_naming_both_ways_out(run_playbook, lab, snapshot, run, "running on the restored data dir")

    aborted = run_playbook(lab, f.ABORT_PLAYBOOK)
    assert aborted.rc == 0, aborted
    assert "the operator asked to undo the unfinished restore run %s" % run in aborted.stdout
    h.assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before)
    assert h.members(lab) == members_before
    for host in h.hosts(lab):
        member = f.journal(lab, host, run)["member"]
        assert f.journal(lab, host, run)["status"] == "aborted"
        assert glob.glob(lab.node_path(host, member["new_data_dir"]) + ".failed-*"), host
        assert h.manifest_data_dir(lab, host) == member["old_data_dir"]


def abort_gives_exactly_the_old_data(lab, run_playbook, run, before):
    """restore_abort.yml: every node on its old data dir, the old members, cluster ID, keys and manifests; the run's
    journals aborted."""
    aborted = run_playbook(lab, f.ABORT_PLAYBOOK)
    assert aborted.rc == 0, aborted
    assert "the operator asked to undo the unfinished restore run %s" % run in aborted.stdout
    h.assert_back_on_old_cluster(lab, before["cluster"], before["keys"], before["manifests"])
    assert h.members(lab) == before["members"]
    for host in h.hosts(lab):
        member = f.journal(lab, host, run)["member"]
        assert f.journal(lab, host, run)["status"] == "aborted"
        assert h.manifest_data_dir(lab, host) == member["old_data_dir"]
    return aborted


def state_before(lab):
    return {"cluster": h.cluster_id(lab), "keys": h.keys(lab, with_values=True), "members": h.members(lab),
            "manifests": dict((host, h.manifests(lab, host)) for host in h.hosts(lab)),
            "runs": dict((host, f.runs(lab, host)) for host in h.hosts(lab))}


def test_ctrl_c_half_way_through_the_stop_then_abort_at_once_gives_exactly_the_old_data(lab, run_playbook, tmp_path):
    """The modules a killed ansible-playbook started keep running on the nodes: the leader's stop goes on after the
    Ctrl-C. The abort, started at once, waits for it (one static_pod run at a time per node) instead of racing it."""
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    lab.etcdctl("put", PREFIX + "before-the-stop-was-cut", "must-stay")
    before = state_before(lab)
    leader = f.leader_host(lab)
    # The leader's API server hangs once its manifest is held: its stop step waits for the kubelet's grace period
    # with etcd.yaml still in the manifests dir.
    frozen = [h.container_pid(lab, leader, "kube-apiserver")]
    watcher = f.Watcher(lambda: "kube-apiserver.yaml" in f.held(lab, leader), lambda: f.freeze(frozen))
    watcher.start()
    play = f.Background(lab, tmp_path, {"snapshot": snapshot}, name="cut-in-the-stop")
    try:
        try:
            play.wait_until(lambda: watcher.fired and "etcd.yaml" not in f.held(lab, leader), 240,
                            "the leader's API server held and frozen, its etcd.yaml not yet")
            # What the cut leaves, read just before it: the leader's stop goes on after the cut (and after
            # ansible-playbook's exit, which interrupt waits for), so the state is not read again later.
            held_at_the_cut = f.held(lab, leader)
            play.interrupt(signal.SIGINT)
        finally:
            watcher.stop()
            play.close()
        run = f.new_runs(lab, before["runs"])["cp1"]
        for host in h.hosts(lab):
            assert f.journal(lab, host, run)["status"] == "running"
            assert not f.swapped(lab, before["runs"], host)
        # Cut half way: the leader's API server held, its etcd.yaml not yet (its stop goes on after the cut, and
        # the kubelet kills the frozen API server after its grace period, so later reads may find etcd.yaml held).
        assert "kube-apiserver.yaml" in held_at_the_cut and "etcd.yaml" not in held_at_the_cut, held_at_the_cut
        abort_gives_exactly_the_old_data(lab, run_playbook, run, before)
    finally:
        f.thaw(frozen)


def test_sigkill_during_the_rollback_then_abort_gives_exactly_the_old_data(lab, run_playbook, tmp_path):
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    lab.etcdctl("put", PREFIX + "before-the-rollback-was-cut", "must-stay")
    before = state_before(lab)
    lab.set_fault("cp3", "etcd", when_manifests_match=h.next_restore_pattern(lab, "cp3"),
                  message="etcd cannot open its data dir")

    def moved_aside():
        """The nodes of the new run whose restored data dir the rollback has moved aside."""
        found = []
        for host, run in f.new_runs(lab, before["runs"]).items():
            try:
                new_dir = f.journal(lab, host, run)["member"]["new_data_dir"] if run else None
            except (OSError, ValueError):
                new_dir = None
            if new_dir and glob.glob(lab.node_path(host, new_dir) + ".failed-*"):
                found.append(host)
        return found
    play = f.Background(lab, tmp_path, {"snapshot": snapshot, "etcd_restore_pod_timeout": 15}, name="cut-rollback")
    try:
        play.wait_until(moved_aside, 300, "a node moving its restored data dir aside (the rollback)")
        play.interrupt(signal.SIGKILL)
    finally:
        play.close()
        lab.clear_faults("cp3")
    run = f.new_runs(lab, before["runs"])["cp1"]
    for host in h.hosts(lab):
        assert f.journal(lab, host, run)["status"] == "running"

    refused = h.restore(run_playbook, lab, snapshot, check=True)
    assert refused.rc != 0, refused
    assert f.first_line(" | ".join(f.failure_messages(refused))).startswith(
        "An earlier restore run (%s) did not finish: " % run), refused

    abort_gives_exactly_the_old_data(lab, run_playbook, run, before)
    for host in h.hosts(lab):
        member = f.journal(lab, host, run)["member"]
        assert glob.glob(lab.node_path(host, member["new_data_dir"]) + ".failed-*"), host


def killed_with_nothing_stopped(lab, tmp_path, snapshot, before):
    """restore.yml killed (SIGKILL) once every node has the run's journal and its stop step waits there for the
    static_pod lock, which the test holds on every node as another static_pod run would: every member prepared,
    nothing stopped. The modules the killed play leaves waiting on the nodes are killed before the locks go (left
    alone, they would stop the pods once they get the lock: that is the Ctrl-C-half-way case). The run."""
    namespaces = dict((host, f.mount_namespace(lab, host)) for host in h.hosts(lab))
    etcd_before = dict((host, f.etcd_pid(lab, host)) for host in h.hosts(lab))
    locks = f.hold_static_pod_locks(lab)
    try:
        play = f.Background(lab, tmp_path, {"snapshot": snapshot}, name="killed-before-the-stop")
        try:
            def waiting_on_every_node():
                found = f.new_runs(lab, before["runs"])
                return all(found[host] and os.path.exists(f.run_path(lab, host, found[host], "journal.json"))
                           and f.lock_waiters(namespaces[host]) for host in h.hosts(lab))
            play.wait_until(waiting_on_every_node, 300, "every node's journal written and its stop step waiting")
            play.interrupt(signal.SIGKILL)
        finally:
            play.close()
        for host in h.hosts(lab):
            for pid in f.lock_waiters(namespaces[host]):
                os.kill(pid, signal.SIGKILL)
    finally:
        f.release_locks(locks)
    run = f.new_runs(lab, before["runs"])["cp1"]
    for host in h.hosts(lab):
        assert f.journal(lab, host, run)["status"] == "running"
        assert f.held(lab, host) == set()
        assert not f.swapped(lab, before["runs"], host)
        # The same etcd process serves: nothing was stopped.
        assert f.etcd_pid(lab, host) == etcd_before[host]
    return run


def pruning_lists_what_it_prepared(run_playbook, lab, run):
    """prune.yml (listing only) offers the run's restored data dir and its run dir on every node, unprotected."""
    listing = run_playbook(lab, f.PRUNE_PLAYBOOK)
    assert listing.rc == 0, listing
    for host in h.hosts(lab):
        member = f.journal(lab, host, run)["member"]
        found = dict((c["path"], c) for c in listing.result(f.PRUNE_LIST_TASK, host)["candidates"])
        assert found[member["new_data_dir"]]["kind"] == "data-dir", found
        assert found[member["new_data_dir"]]["protected"] is None, found
        run_dir = os.path.join(h.RUNS_DIR, run)
        assert found[run_dir]["kind"] == "run-dir" and found[run_dir]["protected"] is None, found
        assert listing.result(f.PRUNE_LIST_TASK, host)["removed"] == []


def test_a_run_killed_before_the_stop_is_aborted_without_stopping_anything(lab, run_playbook, tmp_path):
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    lab.etcdctl("put", PREFIX + "before-the-run-killed-before-the-stop", "must-stay")
    before = state_before(lab)
    run = killed_with_nothing_stopped(lab, tmp_path, snapshot, before)
    h.assert_back_on_old_cluster(lab, before["cluster"], before["keys"], before["manifests"])
    etcd_before = dict((host, f.etcd_pid(lab, host)) for host in h.hosts(lab))

    # The plan of a new run says so, and --check changes nothing.
    checked = h.restore(run_playbook, lab, snapshot, check=True)
    assert checked.rc == 0, checked
    assert ("An earlier restore run (%s) was interrupted before anything was stopped; nothing it left is in use."
            % run) in checked.stdout, checked
    for host in h.hosts(lab):
        assert f.journal(lab, host, run)["status"] == "running"

    aborted = run_playbook(lab, f.ABORT_PLAYBOOK)
    assert aborted.rc == 0, aborted
    assert ("The unfinished restore run %s was interrupted before anything was stopped: every pod is in place and "
            "every etcd.yaml points at its previous data dir, so nothing is stopped or put back." % run) in \
        aborted.stdout, aborted
    # No pod was stopped or started: no rollback or stop task ran (they were all skipped).
    assert not [r["task"] for r in aborted.results if r["status"] != "skipped" and (
        "Rollback" in r["task"] or r["task"].endswith(h.STOP_TASK))], aborted
    for host in h.hosts(lab):
        assert f.journal(lab, host, run)["status"] == "aborted"
        assert f.etcd_pid(lab, host) == etcd_before[host]
    h.assert_back_on_old_cluster(lab, before["cluster"], before["keys"], before["manifests"])
    assert h.members(lab) == before["members"]
    pruning_lists_what_it_prepared(run_playbook, lab, run)


def test_a_run_killed_before_the_stop_is_closed_by_the_next_restore_which_gives_exactly_the_snapshot(
        lab, run_playbook, tmp_path):
    lab.etcdctl("put", PREFIX + "in-the-snapshot-of-the-next-run", "yes")
    snapshot = h.backup(run_playbook, lab, str(tmp_path / "backups"))["snapshot"]
    keys_at_backup = h.keys(lab, with_values=True)
    lab.etcdctl("put", PREFIX + "after-the-backup-of-the-next-run", "must-vanish")
    before = state_before(lab)
    killed = killed_with_nothing_stopped(lab, tmp_path, snapshot, before)

    restored = h.restore(run_playbook, lab, snapshot)
    assert restored.rc == 0, restored
    assert "An earlier restore run (%s) was interrupted before anything was stopped" % killed in restored.stdout
    assert h.keys(lab, with_values=True) == keys_at_backup
    report = h.custom_stat(restored, "etcd_restore")
    assert h.cluster_id(lab) == report["cluster_id"] != before["cluster"]
    new = [r for r in f.runs(lab, "cp1") - before["runs"]["cp1"] if r != killed]
    assert len(new) == 1, new
    for host in h.hosts(lab):
        assert f.journal(lab, host, killed)["status"] == "abandoned"
        assert f.journal(lab, host, new[0])["status"] == "done"
        assert h.manifest_data_dir(lab, host) == f.journal(lab, host, new[0])["member"]["new_data_dir"]
        assert h.readyz(lab, host) == (200, "ok")
    # Nothing unfinished is left for a later run to trip over.
    again = h.restore(run_playbook, lab, snapshot, check=True)
    assert again.rc == 0, again
    assert "interrupted before anything was stopped" not in again.stdout
    pruning_lists_what_it_prepared(run_playbook, lab, killed)
