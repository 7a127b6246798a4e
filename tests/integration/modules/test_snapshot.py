"""etcd_snapshot and etcd_snapshot_info on the lab: real etcd, real SSH, real ansible-playbook, every etcd version.

The round trip writes a key, takes a snapshot through ansible-playbook, checks the file and its metadata on the
node's disk against etcd itself, and restores the file with the version's own tool into a throwaway etcd to read
the key back. The failure cases check the error text and that nothing on disk changed.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest
import yaml

from modhelpers import labs, tree_state, wait_healthy

BACKUP_DIR = "/var/lib/kubeops-it/backups"   # node-private (/var/lib is bind-mounted per node)
DEST = BACKUP_DIR + "/etcd.db"
BAD_DIR = "/var/lib/kubeops-it/bad"
KEY = "/registry/kubeops-it/roundtrip"

pytestmark = pytest.mark.parametrize("lab", labs(150, nodes=3), indirect=True, scope="module")


def playbook(tasks, hosts="cp1"):
    return yaml.safe_dump([{"name": "kubeops.etcd integration: snapshot", "hosts": hosts, "gather_facts": False,
                            "tasks": tasks}], sort_keys=False)


def task(name, module, args, ignore_errors=False):
    entry = {"name": name, "kubeops.etcd." + module: args}
    if ignore_errors:
        entry["ignore_errors"] = True
    return entry


def failed(run, name):
    """Whether the task failed on cp1 (failures are ignored so the play goes on)."""
    return run.task_results(name, "cp1")[-1]["status"] in ("failed", "ignored")


def run_one(run_playbook, lab, name, module, args, check=False, expect_ok=True):
    run = run_playbook(lab, playbook([task(name, module, args, ignore_errors=not expect_ok)]), check=check)
    assert run.rc == 0, run
    result = run.result(name, "cp1")
    assert failed(run, name) is (not expect_ok), (result, run)
    return result


def version_of(lab):
    return lab.state["nodes"][0]["etcd_version"]


def cluster_status(lab):
    """(leader member name, max revision, cluster id hex, members by name) straight from etcdctl."""
    statuses = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)
    members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    names = {member["ID"]: member["name"] for member in members["members"]}
    leader = [names[s["Status"]["header"]["member_id"]] for s in statuses
              if s["Status"].get("leader") == s["Status"]["header"]["member_id"]]
    assert len(leader) == 1, statuses
    revision = max(s["Status"]["header"]["revision"] for s in statuses)
    return leader[0], revision, "%x" % members["header"]["cluster_id"], members["members"]


def host_path(lab, path):
    return lab.node_path("cp1", path)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_key_from_snapshot(lab, snapshot, key):
    """Restore the snapshot with the version's own tool into a throwaway etcd and read key back."""
    node = lab.state["nodes"][0]
    bin_dir = node["etcd_bin_dir"]
    restore_tool = node.get("etcdutl") or os.path.join(bin_dir, "etcdctl")
    client, peer = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="kubeops-it-restore-")
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        subprocess.run([restore_tool, "snapshot", "restore", snapshot, "--name", "readback",
                        "--data-dir", os.path.join(work, "data"),
                        "--initial-cluster", "readback=http://127.0.0.1:%d" % peer,
                        "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer],
                       check=True, capture_output=True, env=env, cwd=work, timeout=120)
        etcd = subprocess.Popen([os.path.join(bin_dir, "etcd"), "--name", "readback",
                                 "--data-dir", os.path.join(work, "data"),
                                 "--listen-client-urls", "http://127.0.0.1:%d" % client,
                                 "--advertise-client-urls", "http://127.0.0.1:%d" % client,
                                 "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
                                 "--listen-metrics-urls", "http://127.0.0.1:%d" % free_port()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            deadline = time.time() + 30
            while True:
                got = subprocess.run([os.path.join(bin_dir, "etcdctl"), "--endpoints=127.0.0.1:%d" % client,
                                      "get", key, "--print-value-only"],
                                     capture_output=True, text=True, env=env, timeout=20, check=False)
                if got.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(0.3)
            assert got.returncode == 0, got.stderr
            return got.stdout.strip()
        finally:
            etcd.kill()
            etcd.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_snapshot_round_trip_check_real_again_again_in_check(lab, run_playbook):
    version = version_of(lab)
    value = "value-%s-%d" % (version, time.time())
    lab.etcdctl("put", KEY, value)
    leader, revision_before, cluster_id, members = cluster_status(lab)
    backup_dir = host_path(lab, BACKUP_DIR)
    shutil.rmtree(backup_dir, ignore_errors=True)
    args = {"dest": DEST}

    checked = run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot", args, check=True)
    assert checked["changed"] is True
    assert checked["member_name"] == leader and checked["etcd_version"] == version
    # The one read that chose the member also judged the cluster.
    assert checked["cluster"]["healthy"] is True and checked["cluster"]["problems"] == []
    assert checked["cluster"]["leader_name"] == leader and checked["cluster"]["cluster_id"] == cluster_id
    assert sorted(m["name"] for m in checked["cluster"]["members"]) == sorted(m["name"] for m in members)
    assert not os.path.exists(backup_dir), "check mode wrote to disk"

    taken = run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot", args)
    _leader, revision_after, _cluster_id, _members = cluster_status(lab)
    assert taken["changed"] is True
    snapshot = host_path(lab, DEST)
    metadata_file = snapshot + ".meta.json"
    assert sorted(os.listdir(backup_dir)) == ["etcd.db", "etcd.db.meta.json"]  # no .part left
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(snapshot).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(metadata_file).st_mode) == 0o600

    with open(metadata_file) as handle:
        metadata = json.load(handle)
    size = os.path.getsize(snapshot)
    assert metadata["sha256"] == sha256(snapshot) == taken["sha256"]
    assert metadata["size"] == size == taken["size"] and size % 512 == 32
    assert revision_before <= metadata["revision"] <= revision_after
    assert metadata["format"] == 1 and metadata["file"] == "etcd.db"
    assert metadata["member_name"] == leader
    assert metadata["endpoint"] == [n["client_url"] for n in lab.state["nodes"] if n["member_name"] == leader][0]
    assert metadata["cluster_id"] == cluster_id
    assert sorted(m["name"] for m in metadata["members"]) == sorted(m["name"] for m in members)
    assert sorted(m["id"] for m in metadata["members"]) == sorted("%x" % m["ID"] for m in members)
    assert metadata["etcd_version"] == version and metadata["storage_version"] is None
    assert metadata["node"] == "cp1" and metadata["cluster_healthy"] is True
    assert taken["cluster"]["healthy"] is True and taken["cluster"]["leader_name"] == leader
    assert metadata["created"].endswith("Z") and metadata["duration_seconds"] >= 0
    assert ("data-inconsistency" in " ".join(taken.get("warnings", []))) is (version == "3.5.1")

    # The snapshot really holds what etcd held.
    assert read_key_from_snapshot(lab, snapshot, KEY) == value

    state = tree_state(backup_dir)
    again = run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot", args)
    assert again["changed"] is False and again["sha256"] == metadata["sha256"]
    again_checked = run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot", args, check=True)
    assert again_checked["changed"] is False
    assert tree_state(backup_dir) == state

    info = run_one(run_playbook, lab, "Verify the etcd snapshot", "etcd_snapshot_info",
                   {"path": DEST, "require_metadata": True})
    assert info["changed"] is False
    assert info["snapshot"]["sha256"] == metadata["sha256"]
    assert info["snapshot"]["has_trailing_hash"] is True
    assert info["snapshot"]["metadata_matches"] is True
    assert info["snapshot"]["status"]["revision"] == metadata["revision"]
    assert info["snapshot"]["status_tool"].split()[0] == ("etcdctl" if version == "3.4.23" else "etcdutl")
    assert tree_state(backup_dir) == state


def test_snapshot_from_named_member_and_force_moves_aside(lab, run_playbook):
    backup_dir = host_path(lab, BACKUP_DIR)
    leader, _revision, _cluster_id, members = cluster_status(lab)
    follower = sorted(m["name"] for m in members if m["name"] != leader)[0]
    dest = BACKUP_DIR + "/follower.db"
    first = run_one(run_playbook, lab, "Snapshot a follower", "etcd_snapshot", {"dest": dest, "member_name": follower})
    assert first["changed"] is True and first["member_name"] == follower
    assert first["endpoint"] == [n["client_url"] for n in lab.state["nodes"] if n["member_name"] == follower][0]

    # Someone overwrote the file: without force the module refuses and touches nothing.
    with open(host_path(lab, dest), "ab") as handle:
        handle.write(b"tampered")
    state = tree_state(backup_dir)
    refused = run_one(run_playbook, lab, "Snapshot a follower", "etcd_snapshot",
                      {"dest": dest, "member_name": follower}, expect_ok=False)
    assert "is not a verified snapshot of this module" in refused["msg"] and "force: true" in refused["msg"]
    assert tree_state(backup_dir) == state

    forced = run_one(run_playbook, lab, "Snapshot a follower", "etcd_snapshot",
                     {"dest": dest, "member_name": follower, "force": True})
    assert forced["changed"] is True and len(forced["moved_aside"]) == 2
    for moved in forced["moved_aside"]:
        assert os.path.exists(host_path(lab, moved))
    with open(host_path(lab, forced["moved_aside"][0]), "rb") as handle:
        assert handle.read().endswith(b"tampered")
    assert sha256(host_path(lab, dest)) == forced["sha256"]


def test_broken_files_are_refused_and_left_alone(lab, run_playbook):
    good = host_path(lab, DEST)
    if not os.path.exists(good):
        run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot", {"dest": DEST})
    bad_dir = host_path(lab, BAD_DIR)
    shutil.rmtree(bad_dir, ignore_errors=True)
    os.makedirs(bad_dir)
    with open(good, "rb") as handle:
        data = handle.read()
    samples = {
        "truncated.db": (data[:8192], "is truncated"),
        "random.db": (os.urandom(65536), "is not an etcd snapshot"),
        "flipped.db": (data[:6000] + bytes([data[6000] ^ 0xFF]) + data[6001:], "corrupted or truncated"),
        "etcd.db.part": (data, "is an unfinished snapshot"),
    }
    for name, (content, _message) in samples.items():
        with open(os.path.join(bad_dir, name), "wb") as handle:
            handle.write(content)
    state = tree_state(bad_dir)
    tasks = [task("Inspect " + name, "etcd_snapshot_info", {"path": BAD_DIR + "/" + name}, ignore_errors=True)
             for name in sorted(samples)]
    run = run_playbook(lab, playbook(tasks))
    assert run.rc == 0, run
    for name, (_content, message) in samples.items():
        result = run.result("Inspect " + name, "cp1")
        assert failed(run, "Inspect " + name), result
        assert message in result["msg"] and BAD_DIR + "/" + name in result["msg"] and "cp1" in result["msg"], result
    assert tree_state(bad_dir) == state


def test_snapshot_failures_change_nothing_on_disk(lab, run_playbook):
    base = "/var/lib/kubeops-it/failures"
    base_host = host_path(lab, base)
    shutil.rmtree(base_host, ignore_errors=True)
    os.makedirs(base_host + "/leftover")
    with open(base_host + "/leftover/etcd.db.part", "wb") as handle:
        handle.write(b"half a snapshot")
    node = lab.state["nodes"][0]
    state = tree_state(base_host)
    cases = {
        "leftover part file": ({"dest": base + "/leftover/etcd.db"}, ["etcd.db.part exists on cp1", "did not finish"]),
        "missing certificate": ({"dest": base + "/certs/etcd.db", "cert": "/etc/kubernetes/pki/etcd/missing.crt"},
                                ["cert file /etc/kubernetes/pki/etcd/missing.crt does not exist on cp1"]),
        "unreachable endpoints": ({"dest": base + "/unreachable/etcd.db", "endpoints": ["https://%s:1" % node["ip"]]},
                                  ["Listing etcd members at https://%s:1 failed on cp1" % node["ip"]]),
        "unreachable source endpoint": ({"dest": base + "/source/etcd.db", "endpoint": "https://%s:1" % node["ip"]},
                                        ["Reading the status of etcd at https://%s:1 failed on cp1" % node["ip"]]),
        "unknown member": ({"dest": base + "/member/etcd.db", "member_name": "nobody"},
                           ["No etcd member named nobody"]),
    }
    tasks = [task(name, "etcd_snapshot", args, ignore_errors=True) for name, (args, _texts) in cases.items()]
    run = run_playbook(lab, playbook(tasks))
    assert run.rc == 0, run
    for name, (_args, texts) in cases.items():
        result = run.result(name, "cp1")
        assert failed(run, name), (name, result)
        for text in texts:
            assert text in result["msg"], (name, result["msg"])
    assert tree_state(base_host) == state


def etcd_pid(lab, host):
    ids = lab.exec(host, ["crictl", "ps", "--name", "^etcd$", "--state", "running", "-q"]).stdout.split()
    assert len(ids) == 1, ids
    return json.loads(lab.exec(host, ["crictl", "inspect", ids[0]]).stdout)["info"]["pid"]


def test_unhealthy_cluster_is_refused_unless_forced(lab, run_playbook):
    leader, _revision, _cluster_id, _members = cluster_status(lab)
    frozen = [node for node in lab.state["nodes"][1:] if node["member_name"] != leader][-1]
    base = "/var/lib/kubeops-it/unhealthy"
    base_host = host_path(lab, base)
    shutil.rmtree(base_host, ignore_errors=True)
    os.makedirs(base_host)
    pid = etcd_pid(lab, frozen["host"])
    os.kill(pid, signal.SIGSTOP)  # the member stops answering; its pod and manifest stay in place
    try:
        for check in (True, False):
            refused = run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot",
                              {"dest": base + "/etcd.db"}, check=check, expect_ok=False)
            assert refused["msg"].startswith("The etcd cluster is not healthy (read from cp1 through "), refused
            assert "member %s is unreachable" % frozen["member_name"] in refused["msg"]
            assert "force: true" in refused["msg"] and refused["cluster_healthy"] is False
            assert refused["cluster"]["leader_name"] == leader
        assert os.listdir(base_host) == []

        forced = run_one(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot",
                         {"dest": base + "/etcd.db", "force": True})
        assert forced["changed"] is True and forced["member_name"] == leader
        assert forced["cluster_healthy"] is False
        assert forced["problems"][0].startswith("member %s is unreachable" % frozen["member_name"])
        with open(os.path.join(base_host, "etcd.db.meta.json")) as handle:
            metadata = json.load(handle)
        assert metadata["cluster_healthy"] is False and metadata["sha256"] == sha256(os.path.join(base_host, "etcd.db"))
    finally:
        os.kill(pid, signal.SIGCONT)
        wait_healthy(lab)


def test_full_disk_leaves_no_part_file(lab, run_playbook):
    """A real ENOSPC: a 16 KiB tmpfs mounted in cp1's mount namespace is smaller than any etcd database."""
    full = "/var/lib/kubeops-it/full"
    os.makedirs(host_path(lab, full), exist_ok=True)
    lab.exec("cp1", ["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", full], check=True)
    try:
        result = run_one(run_playbook, lab, "Snapshot onto a full disk", "etcd_snapshot",
                         {"dest": full + "/etcd.db"}, expect_ok=False)
        assert "no space left on device" in result["msg"], result["msg"]
        assert "Free space on the filesystem of %s" % full in result["msg"]
        listing = lab.exec("cp1", ["ls", "-A", full], check=True).stdout.split()
        assert listing == [], listing
    finally:
        lab.exec("cp1", ["umount", full], check=True)
