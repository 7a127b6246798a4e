"""The backup drill (playbooks/verify.yml) end to end, on a 3-node etcd 3.5.30 lab for the backups and real etcd
binaries from the lab's cache for the throwaway member, with real age and a real S3 server:

a good backup passes with the revision and keys it holds and leaves no process, port or file behind, and the
cluster is untouched; an encrypted backup is drilled with its identity; a backup in object storage is found and
drilled; a drill on a node works on a copy there; a corrupted or truncated copy fails naming the file, and an etcd
that exits or hangs fails naming it too, each leaving nothing behind; an etcd 3.4 snapshot is restored with
etcdctl 3.4. The ops box has no etcd on PATH in CI, so every run passes the binaries' paths.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

import pbhelpers as h
from pbrun import REPO_ROOT
from s3server import s3_server_fixture

import etcdfetch  # tests/lab, on sys.path through pbrun
import lablib

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 142, "dir": "/tmp/kubeops-drill-142"},
                         id="3-nodes-3.5.30")], indirect=True)

s3_server = s3_server_fixture(scope="module")

VERIFY_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "verify.yml")
DRILL_TASK = "Restore the backup into a throwaway etcd on loopback, compare it with the file, then stop and remove it"
MARK = "/kubeops-drill/"
BUCKET = "etcd-drill"


def binaries(version):
    """etcd, etcdctl (and etcdutl from 3.5 on) of that version, from the lab's cache, as role variables."""
    bin_dir = etcdfetch.fetch(lablib.default_cache(), version)
    tools = {"etcd_verify_etcd_path": os.path.join(bin_dir, "etcd"),
             "etcd_verify_etcdctl_path": os.path.join(bin_dir, "etcdctl")}
    if os.path.exists(os.path.join(bin_dir, "etcdutl")):
        tools["etcd_verify_etcdutl_path"] = os.path.join(bin_dir, "etcdutl")
    return tools


@pytest.fixture(scope="module")
def shared():
    return {}


@pytest.fixture(scope="module")
def age_keys(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("age") / "identity.txt")
    subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", path], check=True, capture_output=True, text=True).stdout.strip()
    return recipient, path


def verify(run_playbook, lab, tmp_dir, snapshot, version="3.5.30", check=False, **extra):
    values = dict(binaries(version), snapshot=snapshot, etcd_verify_tmp_dir=tmp_dir, **extra)
    path = os.path.join(tmp_dir, os.pardir, "vars-%s.json" % os.path.basename(tmp_dir))
    with open(path, "w") as handle:
        json.dump(values, handle)
    return run_playbook(lab, VERIFY_PLAYBOOK, check=check, extra_args=["-e", "@" + path])


def drill_result(run, host="localhost", status="ok"):
    for item in run.task_results(DRILL_TASK):
        if item["host"] == host:
            assert item["status"] == status, (item, run)
            return item["result"]
    raise AssertionError("the drill did not run: %r" % run)


def key_count(lab):
    """Keys the cluster holds (the range's count, whatever the limit)."""
    return json.loads(lab.etcdctl("get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json").stdout)["count"]


def assert_left_nothing(drill, tmp_dir):
    """The etcd the drill started is gone (by its PID and its ports), its directory and every temporary file too."""
    member = drill.get("member")
    if member:
        cmdline = "/proc/%d/cmdline" % member["pid"]
        alive = os.path.exists(cmdline) and member["name"].encode() in open(cmdline, "rb").read()
        assert not alive, member
        for url in (member["client_url"], member["peer_url"]):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # Nothing listens there any more (SO_REUSEADDR: the closed connections' TIME_WAIT do not count).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    if drill.get("work_dir"):
        assert not os.path.exists(drill["work_dir"]), drill["work_dir"]
    assert os.listdir(tmp_dir) == [], os.listdir(tmp_dir)


def cluster_state(lab):
    return {"cluster": h.cluster_id(lab), "members": h.members(lab), "keys": h.keys(lab, with_values=True)}


def test_a_good_backup_passes_with_its_revision_and_keys_and_leaves_nothing_behind(
        lab, run_playbook, tmp_path_factory, shared):
    for index in range(30):
        lab.etcdctl("put", "%skey-%02d" % (MARK, index), "value-%02d" % index)
    lab.etcdctl("del", MARK + "key-29")
    dest = str(tmp_path_factory.mktemp("backups"))
    count_at_backup = key_count(lab)
    report = h.backup(run_playbook, lab, dest)
    assert key_count(lab) == count_at_backup
    with open(report["metadata"]) as handle:
        meta = json.load(handle)
    shared.update(dest=dest, snapshot=report["snapshot"], meta=meta)
    backups_before = sorted(os.listdir(dest))
    before = cluster_state(lab)

    tmp_dir = str(tmp_path_factory.mktemp("drill"))
    run = verify(run_playbook, lab, tmp_dir, "latest", etcd_verify_backup_dir=dest, etcd_verify_require_metadata=True)
    assert run.rc == 0, run
    drill = drill_result(run)["drill"]
    assert drill["path"] == report["snapshot"]
    assert drill["metadata_found"] is True
    assert drill["revision"] == drill["served_revision"] == meta["revision"]
    assert drill["total_key"] == meta["total_key"]
    assert drill["served_keys"] == drill["live_keys"] == count_at_backup
    assert drill["restore_tool"] == "etcdutl 3.5.30" and drill["etcd_version"] == "3.5.30"
    assert len(drill["sampled_keys"]) == 20
    assert [k for k in drill["sampled_keys"] if k.startswith("/registry/")], drill["sampled_keys"]
    assert MARK + "key-29" not in drill["sampled_keys"]
    assert drill["stopped"] == "sigterm"
    stats = h.custom_stat(run, "etcd_verify")
    assert stats["success"] is True and stats["snapshot"] == report["snapshot"]
    assert int(stats["served_keys"]) == count_at_backup
    assert "Backup drill passed for %s on localhost:" % report["snapshot"] in run.stdout

    assert_left_nothing(drill, tmp_dir)
    assert sorted(os.listdir(dest)) == backups_before
    assert cluster_state(lab) == before


def test_check_mode_checks_the_file_only(lab, run_playbook, tmp_path_factory, shared):
    tmp_dir = str(tmp_path_factory.mktemp("drill"))
    run = verify(run_playbook, lab, tmp_dir, shared["snapshot"], check=True)
    assert run.rc == 0, run
    drill = drill_result(run)["drill"]
    assert drill["revision"] == shared["meta"]["revision"] and drill["live_keys"] > 0
    assert drill["member"] is None and drill["served_keys"] is None and drill["work_dir"] is None
    assert_left_nothing(drill, tmp_dir)


def test_an_encrypted_backup_is_drilled_with_its_identity(lab, run_playbook, tmp_path_factory, age_keys):
    recipient, identity_file = age_keys
    dest = str(tmp_path_factory.mktemp("encrypted"))
    report = h.backup(run_playbook, lab, dest, etcd_backup_age_recipients=[recipient], etcd_backup_compress=True)
    assert report["snapshot"].endswith(".db.zst.age"), report
    with open(report["metadata"]) as handle:
        meta = json.load(handle)
    tmp_dir = str(tmp_path_factory.mktemp("drill"))

    run = verify(run_playbook, lab, tmp_dir, report["snapshot"], etcd_verify_age_identity_file=identity_file)
    assert run.rc == 0, run
    drill = drill_result(run)["drill"]
    assert drill["revision"] == drill["served_revision"] == meta["revision"]
    assert drill["sha256"] == meta["sha256"]
    assert drill["served_keys"] == drill["live_keys"] > 0
    # The decrypted copy lived in the run's private directory only.
    assert_left_nothing(drill, tmp_dir)
    assert not [name for name in os.listdir(dest) if name.endswith(".db")], os.listdir(dest)

    run = verify(run_playbook, lab, tmp_dir, report["snapshot"])
    assert run.rc != 0, run
    assert "is encrypted with age and no identity was given" in run.stdout, run
    assert os.listdir(tmp_dir) == []


def test_the_latest_backup_in_object_storage_is_drilled(lab, run_playbook, tmp_path_factory, s3_server):
    s3_server.client().create_bucket(Bucket=BUCKET)
    store = {"bucket": BUCKET, "prefix": "kubernetes/", "endpoint_url": s3_server["endpoint_url"],
             "region": s3_server["region"], "path_style": True, "access_key": s3_server["access_key"],
             "secret_key": s3_server["secret_key"]}
    report = h.backup(run_playbook, lab, str(tmp_path_factory.mktemp("s3backups")),
                      **{"etcd_backup_s3_%s" % k: v for k, v in store.items()})
    tmp_dir = str(tmp_path_factory.mktemp("drill"))
    run = verify(run_playbook, lab, tmp_dir, "latest", **{"etcd_verify_s3_%s" % k: v for k, v in store.items()})
    assert run.rc == 0, run
    drill = drill_result(run)["drill"]
    assert os.path.basename(drill["path"]) == os.path.basename(report["snapshot"])
    assert drill["metadata_found"] is True and drill["served_keys"] == drill["live_keys"] > 0
    assert h.custom_stat(run, "etcd_verify")["snapshot"] == "s3://%s/kubernetes/%s" % (
        BUCKET, os.path.basename(report["snapshot"]))
    assert_left_nothing(drill, tmp_dir)
    assert s3_server["secret_key"] not in run.stdout


def test_a_drill_on_a_node_works_on_a_copy_there_and_removes_it(lab, run_playbook, tmp_path_factory, shared):
    host = h.hosts(lab)[1]
    # The lab's nodes share the host's /tmp: the node's private copy lands in tmp_dir, seen from here too.
    tmp_dir = str(tmp_path_factory.mktemp("drill"))
    # The nodes share the host's files, so the test's own interpreter and the cached binaries serve there.
    run = verify(run_playbook, lab, tmp_dir, shared["snapshot"], etcd_verify_host=host,
                 ansible_python_interpreter=sys.executable)
    assert run.rc == 0, run
    drill = drill_result(run, host)["drill"]
    assert run.result("Copy the backup and its metadata to the host that runs the drill", host)["changed"]
    assert drill["path"].startswith(tmp_dir + "/kubeops-etcd-drill-"), drill["path"]
    assert os.path.basename(drill["path"]) == os.path.basename(shared["snapshot"])
    assert drill["revision"] == drill["served_revision"] == shared["meta"]["revision"]
    assert drill["metadata_found"] is True
    assert_left_nothing(drill, tmp_dir)


def damaged_copy(shared, directory, damage):
    """A copy of the backup (with its metadata) with one byte flipped in the middle, or cut in half."""
    os.makedirs(directory)
    path = os.path.join(directory, os.path.basename(shared["snapshot"]))
    with open(shared["snapshot"], "rb") as handle:
        data = bytearray(handle.read())
    if damage == "corrupted":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:len(data) // 2]
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    shutil.copy(shared["snapshot"] + ".meta.json", path + ".meta.json")
    return path


CORRUPTED = "is corrupted or truncated: its last 32 bytes are not the SHA-256 of the rest"


@pytest.mark.parametrize("damage,cause", [("corrupted", CORRUPTED), ("truncated", "is truncated")])
def test_a_damaged_backup_fails_clearly_and_leaves_nothing_behind(lab, run_playbook, tmp_path, shared, damage, cause):
    path = damaged_copy(shared, str(tmp_path / "backups"), damage)
    tmp_dir = str(tmp_path / "drill")
    os.makedirs(tmp_dir)
    before = cluster_state(lab)
    run = verify(run_playbook, lab, tmp_dir, path)
    assert run.rc != 0, run
    result = drill_result(run, status="failed")
    assert result["msg"].startswith("Backup drill failed for %s on " % path), result["msg"]
    assert cause in result["msg"], result["msg"]
    assert "Do not rely on this backup" in result["msg"]
    assert_left_nothing(result["drill"], tmp_dir)
    assert cluster_state(lab) == before


def fake_etcd(directory, real_etcd, behaviour):
    """A stand-in for the etcd binary that answers --version like the real one, then exits or hangs ignoring SIGTERM:
    the faults a drill host can have, injected from outside."""
    path = os.path.join(directory, "etcd")
    body = 'exit 3' if behaviour == "exits" else "trap '' TERM; exec sleep 600"
    with open(path, "w") as handle:
        handle.write('#!/bin/sh\nif [ "$1" = --version ]; then exec %s --version; fi\n'
                     'echo "fake etcd: %s" >&2\n%s\n' % (real_etcd, behaviour, body))
    os.chmod(path, 0o755)
    return path


@pytest.mark.parametrize("behaviour", ["exits", "hangs"])
def test_an_etcd_that_does_not_start_fails_the_drill_and_is_cleaned_up(lab, run_playbook, tmp_path, shared, behaviour):
    tmp_dir = str(tmp_path / "drill")
    os.makedirs(tmp_dir)
    etcd = fake_etcd(str(tmp_path), binaries("3.5.30")["etcd_verify_etcd_path"], behaviour)
    run = verify(run_playbook, lab, tmp_dir, shared["snapshot"], etcd_verify_etcd_path=etcd,
                 etcd_verify_start_timeout=3)
    assert run.rc != 0, run
    result = drill_result(run, status="failed")
    assert result["msg"].startswith("Backup drill failed for %s on " % shared["snapshot"]), result["msg"]
    assert "starting the restored member" in result["msg"] and "fake etcd: %s" % behaviour in result["msg"]
    assert result["drill"]["stopped"] == ("exited" if behaviour == "exits" else "sigkill")
    assert_left_nothing(result["drill"], tmp_dir)


def test_an_etcd_34_snapshot_is_restored_with_etcdctl_34(lab, run_playbook, tmp_path):
    # A real etcd 3.4.23 snapshot (tests/unit/fixtures, written by etcdctl 3.4.23 snapshot save on a 3.4.23 lab).
    path = str(tmp_path / "etcd-34.db")
    shutil.copy(os.path.join(REPO_ROOT, "tests", "unit", "fixtures", "snapshots", "secrets-3.4.23.db"), path)
    tmp_dir = str(tmp_path / "drill")
    os.makedirs(tmp_dir)
    run = verify(run_playbook, lab, tmp_dir, path, version="3.4.23")
    assert run.rc == 0, run
    drill = drill_result(run)["drill"]
    assert drill["restore_tool"] == "etcdctl 3.4.23" and drill["etcd_version"] == "3.4.23"
    assert drill["metadata_found"] is False
    assert drill["revision"] == drill["served_revision"]
    # What make_secret_snapshots.py wrote: 1000 ConfigMaps, 14 live Secrets (one deleted), 4 near misses, plus the
    # lab's own keys.
    assert drill["served_keys"] == drill["live_keys"] >= 1018
    assert "/registry/secrets/ns1/deleted" not in drill["sampled_keys"]
    assert_left_nothing(drill, tmp_dir)
