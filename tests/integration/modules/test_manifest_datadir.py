"""etcd_manifest_datadir on the lab: the kubelet really restarts etcd on the new data dir, the manifest changes in
one line only, the backup lands outside the manifests dir, a manifest prepared in ``dest`` leaves the running one (and
etcd) alone, and refusals leave every file as it was."""

import os
import shutil
import stat
import time

import pytest
import yaml

from modhelpers import four_runs, labs, read, run_task

MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
BACKUP_DIR = "/etc/kubernetes/kubeops-etcd/manifest-backups"
TASK = "Point etcd at another data dir"
KEY = "/kubeops-it/manifest-datadir"


def run_module(run_playbook, lab, args, check=False, diff=False):
    return run_task(run_playbook, lab, TASK, "etcd_manifest_datadir", args, check=check, diff=diff)


def running_etcd(lab):
    return lab.exec("cp1", ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.split()


def wait_for_new_etcd(lab, old_ids, timeout=60):
    """Until the kubelet has replaced the etcd container and the new one answers."""
    deadline = time.time() + timeout
    while True:
        ids = running_etcd(lab)
        if ids and ids != old_ids and lab.etcdctl("endpoint", "health", check=False, timeout=20).returncode == 0:
            return ids
        assert time.time() < deadline, "the kubelet did not restart etcd (containers %s)" % ids
        time.sleep(0.5)


def backups(lab):
    path = lab.node_path("cp1", BACKUP_DIR)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


@pytest.mark.parametrize("lab", labs(206), indirect=True)
def test_repoint_data_dir_and_back(lab, run_playbook):
    lab.etcdctl("put", KEY, "in the old data dir")
    manifest_path = lab.node_path("cp1", MANIFEST)
    original = read(manifest_path)
    old_dir = lab.state["nodes"][0]["data_dir_host_path"]
    new_dir = "/var/lib/etcd-fresh"
    etcd_before = running_etcd(lab)
    args = {"data_dir": new_dir, "allow_empty": True}

    run, checked = run_module(run_playbook, lab, args, check=True, diff=True)
    assert run.rc == 0, run
    assert checked["changed"] is True
    assert checked["diff"]["before"].encode() == original
    assert checked["diff"]["after"].encode() == original.replace(
        ("      path: %s\n" % old_dir).encode(), ("      path: %s\n" % new_dir).encode())
    assert read(manifest_path) == original
    assert backups(lab) == []

    run, real = run_module(run_playbook, lab, args)
    assert run.rc == 0, run
    assert real["changed"] is True
    assert real["previous_data_dir"] == old_dir and real["data_dir"] == new_dir
    assert real["volume_name"] == "etcd-data"
    edited = read(manifest_path)
    before_lines, after_lines = original.splitlines(True), edited.splitlines(True)
    assert len(before_lines) == len(after_lines)
    assert [(a, b) for a, b in zip(before_lines, after_lines) if a != b] == [
        (("      path: %s\n" % old_dir).encode(), ("      path: %s\n" % new_dir).encode())]
    assert stat.S_IMODE(os.stat(manifest_path).st_mode) == 0o600
    # The backup is the old manifest, outside the manifests dir; the kubelet sees only its four pods.
    assert real["backup_file"].startswith(BACKUP_DIR + "/etcd.yaml.")
    backup_host_path = lab.node_path("cp1", real["backup_file"])
    assert read(backup_host_path) == original
    assert stat.S_IMODE(os.stat(backup_host_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(lab.node_path("cp1", BACKUP_DIR)).st_mode) == 0o700
    assert sorted(os.listdir(os.path.dirname(manifest_path))) == [
        "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]

    for check in (False, True):
        run, again = run_module(run_playbook, lab, args, check=check, diff=True)
        assert run.rc == 0, run
        assert again["changed"] is False and "diff" not in again
        assert again["backup_file"] is None
    assert read(manifest_path) == edited
    assert len(backups(lab)) == 1

    # The kubelet restarted etcd on the new, empty data dir: a new cluster without the key.
    etcd_fresh = wait_for_new_etcd(lab, etcd_before)
    assert lab.etcdctl("get", KEY).stdout == ""
    assert os.path.isdir(lab.node_path("cp1", new_dir + "/member"))

    run, back = run_module(run_playbook, lab, {"data_dir": old_dir, "backup": False})
    assert run.rc == 0, run
    assert back["changed"] is True and back["previous_data_dir"] == new_dir and back["backup_file"] is None
    assert read(manifest_path) == original
    wait_for_new_etcd(lab, etcd_fresh)
    assert lab.etcdctl("get", KEY, "--print-value-only").stdout.strip() == "in the old data dir"


@pytest.mark.parametrize("lab", labs(206), indirect=True)
def test_refusals_name_the_problem_and_change_nothing(lab, run_playbook):
    manifest_path = lab.node_path("cp1", MANIFEST)
    original = read(manifest_path)
    existing_backups = backups(lab)

    missing = "/etc/kubernetes/manifests/etcd-missing.yaml"
    run, result = run_module(run_playbook, lab, {"path": missing, "data_dir": "/var/lib/etcd-x"})
    assert run.rc != 0
    assert "Static pod manifest %s does not exist on cp1" % missing in result["msg"]

    # A manifest whose data mount has no volume, kept outside the manifests dir so the kubelet ignores it.
    broken = yaml.safe_load(original)
    broken["spec"]["volumes"] = [v for v in broken["spec"]["volumes"] if v["name"] != "etcd-data"]
    broken_path = "/etc/kubernetes/kubeops-it/etcd-novolume.yaml"
    broken_host_path = lab.node_path("cp1", broken_path)
    os.makedirs(os.path.dirname(broken_host_path), exist_ok=True)
    with open(broken_host_path, "w") as handle:
        yaml.safe_dump(broken, handle, sort_keys=False)
    broken_text = read(broken_host_path)
    run, result = run_module(run_playbook, lab, {"path": broken_path, "data_dir": "/var/lib/etcd-x"})
    assert run.rc != 0
    assert "mounts volume etcd-data at /var/lib/etcd" in result["msg"]
    assert "spec.volumes has no volume of that name" in result["msg"] and broken_path in result["msg"]
    assert read(broken_host_path) == broken_text

    run, result = run_module(run_playbook, lab, {"data_dir": "/var/lib/etcd-typo"})
    assert run.rc != 0
    assert "data_dir /var/lib/etcd-typo on cp1 holds no etcd data" in result["msg"]
    assert "allow_empty=true" in result["msg"]
    assert not os.path.exists(lab.node_path("cp1", "/var/lib/etcd-typo"))

    run, result = run_module(run_playbook, lab, {"data_dir": "var/lib/etcd-relative"})
    assert run.rc != 0
    assert "relative path" in result["msg"]

    run, result = run_module(run_playbook, lab, {"data_dir": "/var/lib/etcd-x",
                                                 "backup_dir": "/etc/kubernetes/manifests/backups"})
    assert run.rc != 0
    assert "second etcd pod" in result["msg"]

    assert read(manifest_path) == original
    assert backups(lab) == existing_backups
    assert sorted(os.listdir(os.path.dirname(manifest_path))) == [
        "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]


@pytest.mark.parametrize("lab", labs(206), indirect=True)
def test_dest_prepares_the_new_manifest_while_etcd_keeps_running(lab, run_playbook):
    manifest_path = lab.node_path("cp1", MANIFEST)
    original = read(manifest_path)
    manifest_stat = os.stat(manifest_path)
    old_dir = yaml.safe_load(original)["spec"]["volumes"]
    old_dir = [v for v in old_dir if v["name"] == "etcd-data"][0]["hostPath"]["path"]
    new_dir = "/var/lib/etcd-prepared-it"
    prepared_dir = "/etc/kubernetes/kubeops-it-prepared"
    dest = prepared_dir + "/etcd.yaml"
    etcd_before = running_etcd(lab)
    existing_backups = backups(lab)
    os.makedirs(lab.node_path("cp1", new_dir + "/member"))
    args = {"data_dir": new_dir, "dest": dest}
    try:
        run, checked = run_module(run_playbook, lab, args, check=True, diff=True)
        assert run.rc == 0, run
        assert checked["changed"] is True and checked["dest"] == dest and checked["dest_replaced"] is False
        assert checked["diff"][0]["before"].encode() == original
        assert checked["diff"][0]["after"].encode() == original.replace(
            ("      path: %s\n" % old_dir).encode(), ("      path: %s\n" % new_dir).encode())
        assert checked["diff"][0]["after_header"] == dest and len(checked["diff"]) == 1
        assert not os.path.exists(lab.node_path("cp1", dest))

        results = four_runs(run_playbook, lab, TASK, "etcd_manifest_datadir", args)
        real = results[1]
        assert (real["path"], real["dest"], real["backup_file"]) == (MANIFEST, dest, dest + ".orig")
        # The missing directory was created private, and the running manifest's bytes were kept beside dest.
        assert stat.S_IMODE(os.stat(lab.node_path("cp1", prepared_dir)).st_mode) == 0o700
        assert read(lab.node_path("cp1", dest + ".orig")) == original
        assert real["previous_data_dir"] == old_dir and real["data_dir"] == new_dir
        written = read(lab.node_path("cp1", dest))
        before_lines, after_lines = original.splitlines(True), written.splitlines(True)
        assert len(before_lines) == len(after_lines)
        assert [(a, b) for a, b in zip(before_lines, after_lines) if a != b] == [
            (("      path: %s\n" % old_dir).encode(), ("      path: %s\n" % new_dir).encode())]
        info = os.stat(lab.node_path("cp1", dest))
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, 0, 0)
        # The running manifest is untouched (same bytes, same inode, same mtime), so etcd was not restarted.
        assert read(manifest_path) == original
        after = os.stat(manifest_path)
        assert (after.st_ino, after.st_mtime_ns) == (manifest_stat.st_ino, manifest_stat.st_mtime_ns)
        assert running_etcd(lab) == etcd_before
        assert backups(lab) == existing_backups
        assert sorted(os.listdir(os.path.dirname(manifest_path))) == [
            "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]

        # Something else in dest (an older run's output) is replaced, and the diff shows what it held.
        with open(lab.node_path("cp1", dest), "w") as handle:
            handle.write("stale\n")
        run, replaced = run_module(run_playbook, lab, args, diff=True)
        assert run.rc == 0, run
        assert replaced["changed"] is True and replaced["dest_replaced"] is True
        assert replaced["diff"][1]["before"] == "stale\n" and replaced["diff"][1]["after"].encode() == written
        assert read(lab.node_path("cp1", dest)) == written

        for bad, message in ((MANIFEST.replace("etcd.yaml", "etcd-prepared.yaml"), "in the kubelet's manifests directory"),
                             (prepared_dir, "exists and is not a regular file")):
            run, refused = run_module(run_playbook, lab, dict(args, dest=bad))
            assert run.rc != 0
            assert message in refused["msg"]
            assert not os.path.isfile(lab.node_path("cp1", bad))
        assert read(manifest_path) == original
        assert running_etcd(lab) == etcd_before
    finally:
        shutil.rmtree(lab.node_path("cp1", prepared_dir), ignore_errors=True)
        shutil.rmtree(lab.node_path("cp1", new_dir), ignore_errors=True)
