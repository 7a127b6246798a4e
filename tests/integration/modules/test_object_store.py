"""etcd_object_store through real ansible-playbook against a real S3-protocol server (moto_server on loopback).

Most tests run the module on localhost (the ops box case); one runs it on a lab node over SSH (the "upload
straight from the node" case). Every playbook runs with -vvv and every run is checked for the credentials.

Credentials: moto accepts any keys by default, which would make the wrong-credentials tests pass for the
wrong reason. tests/integration/s3server.py turns moto's IAM authentication on after creating a user with
an access key (and a role for session credentials), so unknown keys and wrong secrets are really refused.
"""

import datetime
import hashlib
import os
import stat
import sys

import pytest
import yaml

from pbrun import run_ansible_playbook
from s3server import free_port, s3_server_fixture

s3_server = s3_server_fixture()

MIB = 1024 * 1024
TASK = "Move etcd backups through object storage"


@pytest.fixture(scope="module")
def localhost_inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inventory") / "localhost.ini"
    path.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    return str(path)


def object_store_play(args, hosts="localhost", interpreter=None, environment=None):
    task = {"name": TASK, "kubeops.etcd.etcd_object_store": args}
    if environment:
        task["environment"] = environment
    play = {"name": "kubeops.etcd integration: object storage", "hosts": hosts, "gather_facts": False,
            "tasks": [task]}
    if interpreter:
        play["vars"] = {"ansible_python_interpreter": interpreter}
    return yaml.safe_dump([play], sort_keys=False)


def run_module(inventory, server, args, check=False, host="localhost", secrets=(), **play):
    """Run the module once with -vvv; returns (run, result). No credential may appear in the output."""
    run = run_ansible_playbook(inventory, object_store_play(args, hosts=host, **play), check=check,
                               extra_args=["-vvv"])
    output = run.stdout + run.stderr
    for secret in list(server.secrets()) + list(secrets):
        assert secret not in output, "a credential appears in the ansible-playbook output"
    return run, run.result(TASK, host)


@pytest.fixture(scope="module")
def bucket(s3_server):
    s3_server.client().create_bucket(Bucket="etcd-backups")
    return "etcd-backups"


@pytest.fixture(scope="module")
def locked_bucket(s3_server):
    s3_server.client().create_bucket(Bucket="etcd-locked", ObjectLockEnabledForBucket=True)
    return "etcd-locked"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "kubernetes-20261122T013500Z-rev4242.db"
    block = os.urandom(MIB)
    with open(path, "wb") as handle:
        for index in range(20):
            handle.write(block[index:] + block[:index])
    return str(path)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def test_put_uploads_20mb_in_5mb_parts_with_sha256_metadata_and_a_reput_changes_nothing(
        s3_server, bucket, big_file, localhost_inventory):
    args = s3_server.module_args(mode="put", bucket=bucket, prefix="prod", src=big_file, multipart_chunk_size_mb=5)
    results = []
    for check in (True, False, False, True):
        run, result = run_module(localhost_inventory, s3_server, args, check=check)
        assert run.rc == 0, run
        results.append(result)
    assert [r["changed"] for r in results] == [True, True, False, False]
    key = "prod/" + os.path.basename(big_file)
    expected = sha256_of(big_file)
    head = s3_server.client().head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 20 * MIB
    assert head["Metadata"] == {"sha256": expected}
    assert head["ETag"].strip('"').endswith("-4"), head["ETag"]  # 4 parts of 5 MiB: a multipart upload
    real = results[1]
    assert (real["key"], real["size"], real["sha256"], real["verified"]) == (key, 20 * MIB, expected, True)
    assert real["etag"] == head["ETag"].strip('"')
    assert results[2]["etag"] == real["etag"]


def test_get_downloads_byte_identical_file_0600_in_a_new_0700_dir(
        s3_server, bucket, big_file, localhost_inventory, tmp_path):
    key = "get/" + os.path.basename(big_file)
    s3_server.client().upload_file(big_file, bucket, key, ExtraArgs={"Metadata": {"sha256": sha256_of(big_file)}})
    dest = tmp_path / "restore" / "nested" / "snapshot.db"
    args = s3_server.module_args(mode="get", bucket=bucket, key=key, dest=str(dest))

    run, result = run_module(localhost_inventory, s3_server, args, check=True)
    assert run.rc == 0 and result["changed"] is True, run
    assert not (tmp_path / "restore").exists()

    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"] is True, run
    assert dest.read_bytes() == open(big_file, "rb").read()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "restore").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(dest.parent).st_mode) == 0o700
    assert (result["dest"], result["size"], result["sha256"]) == (str(dest), 20 * MIB, sha256_of(big_file))
    assert sorted(os.listdir(dest.parent)) == ["snapshot.db"]

    for check in (False, True):
        run, result = run_module(localhost_inventory, s3_server, args, check=check)
        assert run.rc == 0 and result["changed"] is False, run


def replace_keeping_metadata(server, bucket, key, data):
    """Overwrite an object with other bytes, keeping its sha256 metadata (what bit rot or tampering looks like)."""
    client = server.client()
    metadata = client.head_object(Bucket=bucket, Key=key)["Metadata"]
    client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_damaged_object_is_refused_and_dest_untouched(s3_server, bucket, localhost_inventory, tmp_path, damage):
    good = os.urandom(3 * MIB)
    key = "damaged/%s.db" % damage
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=good,
                                  Metadata={"sha256": hashlib.sha256(good).hexdigest()})
    bad = good[:MIB] + b"\0" + good[MIB + 1:] if damage == "corrupted" else good[:2 * MIB]
    replace_keeping_metadata(s3_server, bucket, key, bad)

    fresh = tmp_path / "fresh.db"
    run, result = run_module(localhost_inventory, s3_server,
                             s3_server.module_args(mode="get", bucket=bucket, key=key, dest=str(fresh)))
    assert run.rc != 0 and run.failed(), run
    assert "is corrupted or truncated" in result["msg"] and hashlib.sha256(good).hexdigest() in result["msg"]
    assert result["reason"] == "checksum_mismatch"
    assert os.listdir(tmp_path) == []  # neither dest nor its .part

    existing = tmp_path / "existing.db"
    existing.write_bytes(b"the previous download")
    before = (existing.read_bytes(), os.stat(existing).st_mtime_ns)
    run, result = run_module(localhost_inventory, s3_server,
                             s3_server.module_args(mode="get", bucket=bucket, key=key, dest=str(existing), force=True))
    assert run.rc != 0 and "is corrupted or truncated" in result["msg"], run
    assert (existing.read_bytes(), os.stat(existing).st_mtime_ns) == before
    assert sorted(os.listdir(tmp_path)) == ["existing.db"]


def test_get_with_force_moves_a_different_dest_aside(s3_server, bucket, localhost_inventory, tmp_path):
    data = b"snapshot bytes " * 1000
    s3_server.client().put_object(Bucket=bucket, Key="force/a.db", Body=data,
                                  Metadata={"sha256": hashlib.sha256(data).hexdigest()})
    dest = tmp_path / "a.db"
    dest.write_bytes(b"older")
    args = s3_server.module_args(mode="get", bucket=bucket, key="force/a.db", dest=str(dest))
    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc != 0 and "Set force: true" in result["msg"] and dest.read_bytes() == b"older", run

    run, result = run_module(localhost_inventory, s3_server, dict(args, force=True))
    assert run.rc == 0 and result["changed"], run
    assert dest.read_bytes() == data
    assert open(result["moved_aside"], "rb").read() == b"older"
    assert os.path.basename(result["moved_aside"]).startswith("a.db.replaced-")


@pytest.mark.parametrize("wrong", ["unknown_access_key", "wrong_secret_key"])
def test_wrong_credentials_are_refused_with_the_cause_named(s3_server, bucket, big_file, localhost_inventory, wrong):
    if wrong == "unknown_access_key":
        credentials = {"access_key": "AKIAKUBEOPSUNKNOWN01", "secret_key": "kubeops-unknown-secret-e3b0c442"}
        cause = "does not know the access key from the options access_key/secret_key"
    else:
        credentials = {"access_key": s3_server["access_key"], "secret_key": "kubeops-wrong-secret-98fc1c14"}
        cause = "rejected the request signature"
    args = s3_server.module_args(mode="put", bucket=bucket, key="creds/x.db", src=big_file, **credentials)
    run, result = run_module(localhost_inventory, s3_server, args, secrets=credentials.values())
    assert run.rc != 0 and run.failed(), run
    assert cause in result["msg"], result["msg"]
    assert s3_server["endpoint_url"] in result["msg"] and "s3://%s/creds/x.db" % bucket in result["msg"]
    assert s3_server.client().list_objects_v2(Bucket=bucket, Prefix="creds/").get("KeyCount") == 0


def test_unreachable_endpoint_is_refused_with_the_cause_named(s3_server, bucket, localhost_inventory, tmp_path):
    closed = "http://127.0.0.1:%d" % free_port()
    args = s3_server.module_args(mode="get", bucket=bucket, key="x.db", dest=str(tmp_path / "x.db"),
                                 endpoint_url=closed)
    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc != 0, run
    assert result["msg"].startswith("Cannot reach the object store %s from " % closed), result["msg"]
    assert "Check endpoint_url" in result["msg"]
    assert result["reason"] == "unreachable"
    assert os.listdir(tmp_path) == []


def test_list_returns_keys_sizes_times_and_sha256(s3_server, bucket, localhost_inventory):
    client = s3_server.client()
    for name, data in (("b.db", b"bbbb"), ("a.db", b"aa")):
        client.put_object(Bucket=bucket, Key="listing/" + name, Body=data,
                          Metadata={"sha256": hashlib.sha256(data).hexdigest()})
    client.put_object(Bucket=bucket, Key="listing/foreign.txt", Body=b"x")
    client.put_object(Bucket=bucket, Key="listing-not-below/a.db", Body=b"x")
    run, result = run_module(localhost_inventory, s3_server,
                             s3_server.module_args(mode="list", bucket=bucket, prefix="listing", with_sha256=True))
    assert run.rc == 0 and result["changed"] is False, run
    assert [(o["key"], o["size"], o["sha256"]) for o in result["objects"]] == [
        ("listing/a.db", 2, hashlib.sha256(b"aa").hexdigest()),
        ("listing/b.db", 4, hashlib.sha256(b"bbbb").hexdigest()),
        ("listing/foreign.txt", 1, None)]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert all(o["last_modified"].startswith(today) and o["last_modified"].endswith("Z") for o in result["objects"])


def test_object_lock_mode_and_retain_until_reach_the_object(s3_server, bucket, locked_bucket, tmp_path,
                                                            localhost_inventory):
    src = tmp_path / "kubernetes-20261122T013500Z-rev1.db"
    src.write_bytes(os.urandom(6 * MIB))
    until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)).replace(microsecond=0)
    args = s3_server.module_args(mode="put", bucket=locked_bucket, prefix="lock", src=str(src),
                                 multipart_chunk_size_mb=5, object_lock_mode="GOVERNANCE",
                                 object_lock_retain_until=until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"], run
    head = s3_server.client().head_object(Bucket=locked_bucket, Key="lock/" + src.name)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    assert result["object"]["object_lock_mode"] == "GOVERNANCE"
    assert result["object"]["object_lock_retain_until"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result["version_id"] == head["VersionId"] and result["verified"] is True

    run, result = run_module(localhost_inventory, s3_server, dict(args, bucket=bucket, key="lock/x.db",
                                                                  prefix=""))
    assert run.rc != 0 and "has no object lock configuration" in result["msg"], run


def test_sse_aes256_reaches_the_object_with_session_credentials(s3_server, bucket, tmp_path, localhost_inventory):
    src = tmp_path / "kubernetes-20261122T013500Z-rev2.db"
    src.write_bytes(b"encrypted at rest" * 100)
    args = s3_server.module_args(mode="put", bucket=bucket, key="sse/snapshot.db", src=str(src), sse="AES256",
                                 **s3_server.session_credentials)
    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"], run
    head = s3_server.client().head_object(Bucket=bucket, Key="sse/snapshot.db")
    assert head["ServerSideEncryption"] == "AES256"
    assert result["object"]["sse"] == "AES256"


def test_credentials_from_the_aws_environment_variables(
        s3_server, bucket, tmp_path, localhost_inventory, monkeypatch):
    """The controller's AWS_* variables reach a module running on localhost (how AWX injects cloud credentials)."""
    src = tmp_path / "env.db"
    src.write_bytes(b"from the environment")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret_key"])
    args = {"mode": "put", "bucket": bucket, "key": "env/env.db", "src": str(src),
            "endpoint_url": s3_server["endpoint_url"], "region": s3_server["region"], "path_style": True}
    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"] and result["verified"], run
    assert s3_server.client().head_object(Bucket=bucket, Key="env/env.db")["ContentLength"] == len(b"from the environment")

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "kubeops-env-wrong-secret-5d41402a")
    run, result = run_module(localhost_inventory, s3_server, dict(args, key="env/other.db"),
                             secrets=["kubeops-env-wrong-secret-5d41402a"])
    assert run.rc != 0, run
    assert "the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment variables" in result["msg"], result["msg"]


def backup_names(cluster, taken, revision, with_metadata=True):
    stem = "%s-%s-rev%d" % (cluster, taken.strftime("%Y%m%dT%H%M%SZ"), revision)
    names = [stem + ".db", stem + "-pki.tar.gz"]
    if with_metadata:
        names.append(stem + ".db.meta.json")
    return names


def put_backup_set(client, bucket, prefix, names):
    for name in names:
        body = ("%s contents" % name).encode()
        metadata = {"sha256": hashlib.sha256(body).hexdigest()}
        client.put_object(Bucket=bucket, Key=prefix + name, Body=body, Metadata=metadata)


def keys_under(client, bucket, prefix=""):
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_prune_deletes_exactly_the_pruned_sets_and_never_foreign_keys(s3_server, bucket, localhost_inventory):
    client = s3_server.client()
    prefix = "prune/"
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    sets = {}
    for days in range(6):
        taken = now - datetime.timedelta(days=days, hours=1)
        sets[days] = backup_names("kubernetes", taken, 100 - days)
        put_backup_set(client, bucket, prefix, sets[days])
    # An old set without metadata (unverified): pruned too; a newer unverified one would be kept.
    old_unverified = backup_names("kubernetes", now - datetime.timedelta(days=30), 10, with_metadata=False)
    put_backup_set(client, bucket, prefix, old_unverified)
    foreign = [prefix + "other-%s-rev1.db" % now.strftime("%Y%m%dT%H%M%SZ"), prefix + "README",
               prefix + "kubernetes-20200101T000000Z-rev1.db.part", prefix + "nested/kubernetes-20200101T000000Z.db",
               "kubernetes-20200101T000000Z-rev1.db"]
    for key in foreign:
        client.put_object(Bucket=bucket, Key=key, Body=b"not ours")
    before = keys_under(client, bucket)

    args = s3_server.module_args(mode="prune", bucket=bucket, prefix="prune", cluster_name="kubernetes",
                                 policy={"keep_last": 2})
    run, result = run_module(localhost_inventory, s3_server, args, check=True)
    assert run.rc == 0 and result["changed"] is True, run
    assert keys_under(client, bucket) == before
    pruned_keys = sorted(prefix + name for days in (2, 3, 4, 5) for name in sets[days]) + sorted(
        prefix + name for name in old_unverified)
    assert sorted(key for entry in result["pruned"] for key in entry["keys"]) == sorted(pruned_keys)
    assert [entry["verified"] for entry in result["pruned"]] == [True, True, True, True, False]
    assert [entry["id"] for entry in result["kept"]] == [
        "kubernetes-" + (now - datetime.timedelta(days=days, hours=1)).strftime("%Y%m%dT%H%M%SZ") for days in (0, 1)]
    assert "newest verified backup" in result["kept"][0]["reasons"]
    assert all(entry["reasons"] for entry in result["pruned"])
    assert "README" in result["ignored"] and "nested/kubernetes-20200101T000000Z.db" in result["ignored"]

    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"] is True, run
    assert keys_under(client, bucket) == sorted(set(before) - set(pruned_keys))
    assert sorted(item["key"] for item in result["deleted"]) == sorted(pruned_keys)
    assert result["remaining"] == []
    for key in foreign:
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"not ours"

    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"] is False and result["pruned"] == [], run


def test_prune_with_delete_versions_reports_locked_versions_and_deletes_the_rest(
        s3_server, locked_bucket, localhost_inventory):
    client = s3_server.client()
    prefix = "prune-locked/"
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    newest = backup_names("kubernetes", now - datetime.timedelta(hours=1), 3)
    locked = backup_names("kubernetes", now - datetime.timedelta(days=2), 2)
    unlocked = backup_names("kubernetes", now - datetime.timedelta(days=3), 1)
    for names in (newest, locked, unlocked):
        put_backup_set(client, locked_bucket, prefix, names)
    locked_snapshot = prefix + locked[0]
    client.put_object_retention(Bucket=locked_bucket, Key=locked_snapshot, Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": now + datetime.timedelta(days=1)})

    args = s3_server.module_args(mode="prune", bucket=locked_bucket, prefix="prune-locked", cluster_name="kubernetes",
                                 policy={"keep_last": 1}, delete_versions=True)
    run, result = run_module(localhost_inventory, s3_server, args)
    assert run.rc == 0 and result["changed"] is True, run
    assert [(item["key"], item["code"]) for item in result["remaining"]] == [(locked_snapshot, "AccessDenied")]
    assert "lock" in result["remaining"][0]["message"]
    versions = client.list_object_versions(Bucket=locked_bucket, Prefix=prefix)
    left = sorted(item["Key"] for item in versions.get("Versions", []) + versions.get("DeleteMarkers", []))
    assert left == sorted([prefix + name for name in newest] + [locked_snapshot])
    assert "1 refused (see remaining)" in result["msg"]


@pytest.mark.parametrize("lab", [{"nodes": 1, "etcd_version": "3.5.30", "ip_base": 40,
                                  "dir": "/tmp/kubeops-s3-40"}], indirect=True)
def test_put_and_get_run_on_a_lab_node_and_need_boto3_there(lab, s3_server, bucket, tmp_path):
    src = tmp_path / "node.db"
    src.write_bytes(os.urandom(7 * MIB))
    dest = "/var/lib/kubeops-etcd/s3-test/node.db"
    put = s3_server.module_args(mode="put", bucket=bucket, prefix="node", src=str(src), multipart_chunk_size_mb=5)
    run, result = run_module(lab.inventory, s3_server, put, host="cp1", interpreter=sys.executable)
    assert run.rc == 0 and result["changed"] and result["verified"], run

    get = s3_server.module_args(mode="get", bucket=bucket, key="node/node.db", dest=dest)
    run, result = run_module(lab.inventory, s3_server, get, host="cp1", interpreter=sys.executable)
    assert run.rc == 0 and result["changed"], run
    on_host = lab.node_path("cp1", dest)  # /var/lib is private to the node: its tree lives in the lab dir
    with open(on_host, "rb") as handle:
        assert handle.read() == src.read_bytes()
    assert stat.S_IMODE(os.stat(on_host).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(on_host)).st_mode) == 0o700
    assert result["sha256"] == sha256_of(str(src))

    # The node's own /usr/bin/python3 has no boto3: the module says so instead of a traceback.
    run, result = run_module(lab.inventory, s3_server, get, host="cp1", interpreter="/usr/bin/python3")
    assert run.rc != 0, run
    assert "boto3" in result["msg"] and "Failed to import the required Python library" in result["msg"]
