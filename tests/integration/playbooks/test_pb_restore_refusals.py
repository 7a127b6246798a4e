"""Restores that must be refused in preflight, and --check: each changes nothing at all (manifests byte
for byte, the same containers running, no new directory, etcd data unchanged). The lab's cp2 has no
etcd tools on the host (no_tools): it uses its etcd container's, or the etcdutl that some tests point
etcd_restore_etcdutl_path at, as an operator would."""

import json
import os
import shutil
import signal

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 70, "no_tools": "cp2"},
                         id="3-nodes-cp2-without-tools")], indirect=True)


@pytest.fixture(scope="module")
def snapshot(lab, run_playbook, tmp_path_factory):
    # cp2 cannot take a snapshot without etcdctl: take it from cp1.
    return h.backup(run_playbook, lab, str(tmp_path_factory.mktemp("backups")), etcd_backup_member="cp1")["snapshot"]


@pytest.fixture
def tools_on_cp2(lab, tmp_path):
    """etcdutl for cp2 through etcd_restore_etcdutl_path, as an operator would set it."""
    return h.write_inventory_overlay(str(tmp_path / "overlay.yml"),
                                     {"cp2": {"etcd_restore_etcdutl_path": lab.node("cp1")["etcdutl"]}})


def failure_messages(run):
    return [r["result"].get("msg", "") for r in run.failed()]


def refused(run_playbook, lab, snapshot, extra_args=None, **extra_vars):
    before, keys_before = h.node_state(lab), h.keys(lab, with_values=True)
    run = h.restore(run_playbook, lab, snapshot, extra_args=extra_args, **extra_vars)
    assert run.rc != 0, run
    assert not run.task_results(h.STOP_TASK), run
    assert h.node_state(lab) == before
    assert h.keys(lab, with_values=True) == keys_before
    return " | ".join(failure_messages(run))


def test_missing_snapshot_is_refused(lab, run_playbook, snapshot, tmp_path):
    message = refused(run_playbook, lab, str(tmp_path / "no-such-backup.db"))
    assert "the ops box: " in message and "no-such-backup.db does not exist" in message, message


def test_snapshot_not_matching_its_metadata_is_refused(lab, run_playbook, snapshot, tmp_path):
    copy = str(tmp_path / os.path.basename(snapshot))
    shutil.copy(snapshot, copy)
    shutil.copy(snapshot + ".meta.json", copy + ".meta.json")
    with open(copy, "r+b") as handle:
        handle.seek(os.path.getsize(copy) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    message = refused(run_playbook, lab, copy)
    assert "is corrupt or not the file its metadata describes" in message, message


def test_a_restore_tool_path_that_is_not_a_tool_is_refused_on_its_node(lab, run_playbook, snapshot, tmp_path):
    # cp2 has no tools on the host, so without a path it would use its etcd container's; a path set by hand
    # that is wrong is bad input, refused before anything changes.
    overlay = h.write_inventory_overlay(str(tmp_path / "overlay.yml"),
                                        {"cp2": {"etcd_restore_etcdutl_path": "/usr/local/bin/no-such-etcdutl"}})
    message = refused(run_playbook, lab, snapshot, extra_args=overlay)
    assert message.startswith("cp2: etcdutl_path /usr/local/bin/no-such-etcdutl on cp2 is not an executable file"), message
    assert "etcd_restore_etcdutl_path" in message
    assert "cp1:" not in message and "cp3:" not in message


def test_not_enough_disk_space_is_refused(lab, run_playbook, snapshot, tools_on_cp2):
    message = refused(run_playbook, lab, snapshot, extra_args=tools_on_cp2,
                      etcd_restore_disk_margin_bytes=2 ** 62)
    for host in h.hosts(lab):
        assert host + ": only " in message, message
    assert "etcd_restore_disk_margin_bytes" in message


def test_manifest_left_held_by_an_interrupted_run_is_refused(lab, run_playbook, snapshot, tools_on_cp2):
    held = lab.node_path("cp3", h.HOLDING_DIR + "/kube-scheduler.yaml")
    os.makedirs(os.path.dirname(held), mode=0o700, exist_ok=True)
    shutil.copy(lab.node_path("cp3", "/etc/kubernetes/manifests/kube-scheduler.yaml"), held)
    try:
        message = refused(run_playbook, lab, snapshot, extra_args=tools_on_cp2)
    finally:
        os.remove(held)
    assert "kube-scheduler.yaml is both in /etc/kubernetes/manifests and held in " + h.HOLDING_DIR in message, message


def test_restore_of_only_some_control_planes_is_refused(lab, run_playbook, snapshot):
    before, keys_before = h.node_state(lab), h.keys(lab, with_values=True)
    run = run_playbook(lab, h.RESTORE_PLAYBOOK, extra_vars={"snapshot": snapshot}, limit="cp1,cp3")
    assert run.rc != 0, run
    messages = " | ".join(failure_messages(run))
    assert "member(s) cp2 of the running cluster are not hosts of this play" in messages, messages
    assert h.node_state(lab) == before
    assert h.keys(lab, with_values=True) == keys_before


PLAY_WITH_A_TASK_AFTER_THE_RESTORE = """
- name: Restore, then carry on in the same play
  hosts: kube_control_plane
  gather_facts: false
  tasks:
    - name: Restore etcd
      ansible.builtin.include_role:
        name: kubeops.etcd.etcd_restore
    - name: A task of the caller after the restore
      ansible.builtin.debug:
        msg: the play went on
"""


def test_check_mode_prints_the_plan_changes_nothing_and_the_play_goes_on(lab, run_playbook, snapshot, tools_on_cp2):
    before, keys_before = h.node_state(lab), h.keys(lab, with_values=True)
    run = run_playbook(lab, PLAY_WITH_A_TASK_AFTER_THE_RESTORE, extra_vars={"snapshot": snapshot}, check=True,
                       extra_args=tools_on_cp2)
    assert run.rc == 0, run
    plan = run.result("Show the restore plan", "cp1")["msg"]
    assert "CHECK MODE" in plan[0]
    text = "\n".join(plan)
    assert "initial cluster cp1=https://127.0.0.71:2380,cp2=https://127.0.0.72:2380,cp3=https://127.0.0.73:2380" in text
    assert "new cluster token kubeops-" in text and "revision bump +1000000000" in text
    for host in h.hosts(lab):
        assert "%s: member %s id " % (host, host) in text
        assert "/var/lib/etcd -> /var/lib/etcd-restored-" in text
    assert "restore with etcdutl 3.5.30" in text
    for host in h.hosts(lab):
        assert run.result("A task of the caller after the restore", host)["msg"] == "the play went on"
    # Everything after the plan is skipped in check mode, then the caller's own task runs.
    for name in ("Copy the snapshot from the ops box to every node that restores a member", h.STOP_TASK):
        results = run.task_results(name)
        assert results and all(r["status"] == "skipped" for r in results), results
    assert h.node_state(lab) == before
    assert h.keys(lab, with_values=True) == keys_before


def test_backup_refuses_an_unhealthy_cluster_unless_forced(lab, run_playbook, tmp_path):
    # An outage of one member: cp3's etcd process is frozen (SIGSTOP), its pod and manifest stay in place.
    etcd_pid = h.container_pid(lab, "cp3", "etcd")
    os.kill(etcd_pid, signal.SIGSTOP)
    try:
        dest = str(tmp_path / "refused")
        run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_vars={"etcd_backup_dest_dir": dest, "etcd_backup_member": "cp1"})
        assert run.rc != 0, run
        assert any("is not healthy" in m and "etcd_backup_force_unhealthy" in m for m in failure_messages(run)), run
        assert not os.path.exists(dest)

        report = h.backup(run_playbook, lab, str(tmp_path / "forced"), etcd_backup_member="cp1",
                          etcd_backup_force_unhealthy=True)
        assert report["cluster_healthy"] is False
        with open(report["metadata"]) as handle:
            assert json.load(handle)["cluster_healthy"] is False
    finally:
        os.kill(etcd_pid, signal.SIGCONT)
        assert h.wait_for(lambda: lab.etcdctl("endpoint", "health", check=False).returncode == 0, timeout=90, interval=0.5)
