"""Backups that survive the disaster, end to end on a 3-node etcd 3.5.30 lab and a real S3-protocol server
(moto's server mode on loopback, IAM auth on, reached by boto3 over HTTP), with real age and zstd:

a scheduled-style backup.yml (object storage, age encryption with zstd, retention over a simulated
month of earlier backups, metrics) -> restore.yml -e snapshot=latest from the bucket; then every way the
download can go wrong is refused before anything changes: a corrupted object, a truncated one, a wrong
identity, wrong credentials, an unreachable endpoint. No credential or identity ever appears in the
output, even at -vvv. Runs in file order on one lab.
"""

import datetime
import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

import pbhelpers as h
from s3server import free_port, s3_server_fixture

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 88}, id="3-nodes-3.5.30")], indirect=True)

s3_server = s3_server_fixture(scope="module")

BUCKET = "etcd-offsite"
PREFIX = "kubernetes/"
MARK = "/kubeops-offsite/"
POLICY = {"daily": 7, "weekly": 4, "monthly": 6}
PLAIN_SECRETS = 5
ENCRYPTED_SECRETS = 3


@pytest.fixture(scope="module")
def shared():
    return {}


@pytest.fixture(scope="module")
def age_keys(tmp_path_factory):
    """A real age key pair: (recipient, identity file, identity text)."""
    path = str(tmp_path_factory.mktemp("age") / "identity.txt")
    subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
    with open(path) as handle:
        identity = handle.read()
    recipient = subprocess.run(["age-keygen", "-y", path], check=True, capture_output=True, text=True).stdout.strip()
    return recipient, path, identity


def s3_vars(server, role, **more):
    values = {"bucket": BUCKET, "prefix": PREFIX, "endpoint_url": server["endpoint_url"], "region": server["region"],
              "path_style": True, "access_key": server["access_key"], "secret_key": server["secret_key"]}
    values.update(more)
    return {"etcd_%s_s3_%s" % (role, key): value for key, value in values.items()}


def objects(server):
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def stamp(when):
    return when.strftime("%Y%m%dT%H%M%SZ")


def seed_month(server, now):
    """Earlier backup sets as etcd_backup uploads them (snapshot with its sha256 metadata, then .meta.json): one a
    day at 01:00 for 70 days, and one every hour of the last 6 hours; plus objects that are not ours."""
    client = server.client()
    taken = [now.replace(hour=1, minute=0, second=0, microsecond=0) - datetime.timedelta(days=d) for d in range(1, 71)]
    taken += [now - datetime.timedelta(hours=n, minutes=5) for n in range(1, 7)]
    ids = []
    for i, when in enumerate(sorted(taken)):
        set_id = "kubernetes-%s" % stamp(when)
        body = ("snapshot %d" % i).encode()
        client.put_object(Bucket=BUCKET, Key="%s%s-rev%d.db.age" % (PREFIX, set_id, 100 + i), Body=body,
                          Metadata={"sha256": hashlib.sha256(body).hexdigest()})
        meta = json.dumps({"sha256": "0" * 64, "created": when.isoformat()}).encode()
        client.put_object(Bucket=BUCKET, Key="%s%s-rev%d.db.meta.json" % (PREFIX, set_id, 100 + i), Body=meta,
                          Metadata={"sha256": hashlib.sha256(meta).hexdigest()})
        ids.append((set_id, when))
    for foreign in ("notes.txt", "staging-20200101T000000Z-rev1.db", "kubernetes-latest.db"):
        client.put_object(Bucket=BUCKET, Key=PREFIX + foreign, Body=b"not ours")
    return ids


def expected_kept(sets):
    """The GFS rule, written out independently of module_utils/retention.py: the newest set of each of the N most
    recent days, ISO weeks and months that have one."""
    keep = set()
    newest_first = sorted(sets, key=lambda s: s[1], reverse=True)
    for count, period in ((POLICY["daily"], lambda t: t.date()), (POLICY["weekly"], lambda t: t.isocalendar()[:2]),
                          (POLICY["monthly"], lambda t: (t.year, t.month))):
        seen = []
        for set_id, when in newest_first:
            if period(when) not in seen:
                if len(seen) == count:
                    break
                seen.append(period(when))
                keep.add(set_id)
    return keep


def set_ids(keys):
    """Backup set ids of this cluster's sets (the foreign objects are not sets)."""
    return {os.path.basename(k).split("-rev")[0] for k in keys if k.startswith(PREFIX + "kubernetes-2") and "-rev" in k}


def with_vars_file(tmp_path, values):
    """Credentials and identities go in a vars file (-e @file), so that not even the test's argv holds them."""
    path = str(tmp_path / ("vars-%d.json" % len(os.listdir(str(tmp_path)))))
    with open(path, "w") as handle:
        json.dump(values, handle)
    os.chmod(path, 0o600)
    return ["-e", "@" + path]


def assert_no_secret_in(run, values):
    for value in values:
        for line in value.strip().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            assert line.strip() not in run.stdout and line.strip() not in run.stderr, "a secret value was printed"


def test_scheduled_backup_encrypts_uploads_prunes_and_reports(lab, run_playbook, s3_server, age_keys, tmp_path_factory,
                                                              shared):
    recipient, _identity_file, identity = age_keys
    s3_server.client().create_bucket(Bucket=BUCKET)
    now = datetime.datetime.now(datetime.timezone.utc)
    seeded = seed_month(s3_server, now)
    for i in range(PLAIN_SECRETS):
        lab.etcdctl("put", "/registry/secrets/default/plain-%d" % i, '{"kind":"Secret","data":{"k":"cGxhaW4="}}')
    for i in range(ENCRYPTED_SECRETS):
        lab.etcdctl("put", "/registry/secrets/default/sealed-%d" % i, "k8s:enc:aescbc:v1:key1:opaque-%d" % i)
    lab.etcdctl("put", MARK + "in-snapshot", "yes")
    shared["keys_at_backup"] = h.keys(lab, with_values=True)
    live = lab.etcdctl("get", "--prefix", "/registry/secrets/", "--print-value-only").stdout.splitlines()
    plaintext_live = len([v for v in live if v and not v.startswith("k8s:enc:")])
    dest = str(tmp_path_factory.mktemp("backups"))
    metrics = str(tmp_path_factory.mktemp("textfile"))

    extra = dict(s3_vars(s3_server, "backup"), etcd_backup_dest_dir=dest, etcd_backup_age_recipients=[recipient],
                 etcd_backup_compress=True, etcd_backup_retention_s3=POLICY, etcd_backup_metrics_dir=metrics,
                 etcd_backup_keep_on_node=True)
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_args=with_vars_file(tmp_path_factory.mktemp("vars"), extra) + ["-vvv"])
    assert run.rc == 0, run
    assert_no_secret_in(run, s3_server.secrets())
    report = h.custom_stat(run, "etcd_backup")

    # The new set, encrypted and compressed, in the bucket: snapshot, archive, metadata.
    keys = objects(s3_server)
    snapshot_key = PREFIX + os.path.basename(report["snapshot"])
    assert snapshot_key.endswith(".db.zst.age"), snapshot_key
    base = snapshot_key[:-len(".db.zst.age")]
    for key in (snapshot_key, base + "-pki.tar.gz.age", base + ".db.meta.json"):
        assert key in keys, (key, keys)
    body = s3_server.client().get_object(Bucket=BUCKET, Key=snapshot_key)
    data = body["Body"].read()
    assert body["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    meta = json.loads(s3_server.client().get_object(Bucket=BUCKET, Key=base + ".db.meta.json")["Body"].read())
    assert meta["encryption"]["encrypted_sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["encryption"]["compression"] == "zstd"
    # Decrypted with the real identity, it is exactly the snapshot the metadata describes.
    plain = subprocess.run(["sh", "-c", "age -d -i \"$0\" | zstd -d -q -c", age_keys[1]], input=data,
                           capture_output=True, check=True).stdout
    assert hashlib.sha256(plain).hexdigest() == meta["sha256"]
    assert plain.startswith(b"\x00") or len(plain) == meta["size"]
    assert len(plain) == meta["size"]
    # Plaintext Secrets counted in the snapshot: the ones that do not start with k8s:enc:.
    assert meta["secrets"]["secrets_plaintext"] == plaintext_live >= PLAIN_SECRETS, meta["secrets"]
    assert meta["secrets"]["secrets_encrypted"] == ENCRYPTED_SECRETS
    # Nothing readable stays on the node: only encrypted files and the metadata.
    staged = h.listdir(lab, report["node"], "/var/lib/kubeops-etcd/backups")
    assert not [n for n in staged if n.endswith(".db") or n.endswith(".tar.gz")], staged
    # The ops box copy is private and is the very object.
    with open(report["snapshot"], "rb") as handle:
        assert handle.read() == data
    assert stat.S_IMODE(os.stat(report["snapshot"]).st_mode) == 0o600

    # Retention: exactly the sets the policy keeps, the foreign objects untouched.
    new_id = os.path.basename(base).split("-rev")[0]
    assert set_ids(keys) == expected_kept(seeded + [(new_id, now)]), sorted(set_ids(keys))
    for foreign in ("notes.txt", "staging-20200101T000000Z-rev1.db", "kubernetes-latest.db"):
        assert PREFIX + foreign in keys

    # Monitoring: metrics for node_exporter, the report beside the backup.
    with open(os.path.join(metrics, "kubeops_etcd_backup.prom")) as handle:
        text = handle.read()
    assert 'kubeops_etcd_backup_success{cluster="kubernetes"} 1' in text, text
    assert 'kubeops_etcd_backup_plaintext_secrets{cluster="kubernetes"} %d' % plaintext_live in text, text
    shared.update(snapshot_key=snapshot_key, meta=meta, dest=dest)


def test_restore_latest_from_object_storage_downloads_decrypts_and_restores_exactly(
        lab, run_playbook, s3_server, age_keys, tmp_path_factory, shared):
    lab.etcdctl("put", MARK + "after-backup", "must-vanish")
    old_cluster = h.cluster_id(lab)
    downloads = str(tmp_path_factory.mktemp("downloads"))
    extra = dict(s3_vars(s3_server, "restore"), etcd_restore_age_identity=age_keys[2],
                 etcd_restore_download_dir=downloads)
    run = h.restore(run_playbook, lab, "latest", extra_args=with_vars_file(tmp_path_factory.mktemp("vars"), extra) + ["-vvv"])
    assert run.rc == 0, run
    assert_no_secret_in(run, s3_server.secrets() + [age_keys[2]])
    assert h.keys(lab, with_values=True) == shared["keys_at_backup"]
    assert h.cluster_id(lab) != old_cluster
    # The encrypted download stays; no plaintext copy of the snapshot is left on the ops box.
    left = sorted(os.listdir(downloads))
    assert os.path.basename(shared["snapshot_key"]) in left, left
    assert not [n for n in left if n.endswith(".db")], left
    assert stat.S_IMODE(os.stat(downloads).st_mode) == 0o700


def refused_before_any_change(lab, run_playbook, snapshot, cause, tmp_path, **extra):
    before = h.node_state(lab)
    cluster = h.cluster_id(lab)
    run = h.restore(run_playbook, lab, snapshot, extra_args=with_vars_file(tmp_path, extra))
    assert run.rc != 0, run
    assert cause in run.stdout, (cause, run)
    assert h.STOP_TASK not in run.stdout
    assert h.node_state(lab) == before
    assert h.cluster_id(lab) == cluster
    return run


def test_a_wrong_identity_is_refused_before_anything_changes(lab, run_playbook, s3_server, tmp_path, shared):
    other = str(tmp_path / "other.txt")
    subprocess.run(["age-keygen", "-o", other], check=True, capture_output=True)
    refused_before_any_change(lab, run_playbook, "s3://%s/%s" % (BUCKET, shared["snapshot_key"]),
                              "does not match any recipient", tmp_path,
                              **dict(s3_vars(s3_server, "restore"), etcd_restore_age_identity_file=other,
                                     etcd_restore_download_dir=str(tmp_path / "dl")))


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_a_damaged_object_is_refused_before_anything_changes(lab, run_playbook, s3_server, age_keys, tmp_path, shared,
                                                             damage):
    client = s3_server.client()
    original = client.get_object(Bucket=BUCKET, Key=shared["snapshot_key"])
    data, sha = original["Body"].read(), original["Metadata"]["sha256"]
    bad = data[:len(data) // 2] if damage == "truncated" else data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
    client.put_object(Bucket=BUCKET, Key=shared["snapshot_key"], Body=bad, Metadata={"sha256": sha})
    try:
        refused_before_any_change(lab, run_playbook, "s3://%s/%s" % (BUCKET, shared["snapshot_key"]), "sha256", tmp_path,
                                  **dict(s3_vars(s3_server, "restore"), etcd_restore_age_identity_file=age_keys[1],
                                         etcd_restore_download_dir=str(tmp_path / "dl")))
        assert not os.path.exists(str(tmp_path / "dl" / os.path.basename(shared["snapshot_key"])))
    finally:
        client.put_object(Bucket=BUCKET, Key=shared["snapshot_key"], Body=data, Metadata={"sha256": sha})


@pytest.mark.parametrize("where", ["wrong credentials", "unreachable endpoint"])
def test_the_object_store_unusable_is_refused_before_anything_changes(lab, run_playbook, s3_server, age_keys, tmp_path,
                                                                      where):
    if where == "wrong credentials":
        extra = s3_vars(s3_server, "restore", secret_key="wrong-" + s3_server["secret_key"][6:])
        cause = "SignatureDoesNotMatch"
    else:
        extra = s3_vars(s3_server, "restore", endpoint_url="http://127.0.0.1:%d" % free_port())
        cause = "127.0.0.1"
    run = refused_before_any_change(lab, run_playbook, "latest", cause, tmp_path,
                                    **dict(extra, etcd_restore_age_identity_file=age_keys[1],
                                           etcd_restore_download_dir=str(tmp_path / "dl")))
    assert_no_secret_in(run, s3_server.secrets())


def test_check_mode_lists_what_retention_would_prune_and_changes_nothing(
        lab, run_playbook, s3_server, age_keys, tmp_path, shared):
    before = objects(s3_server)
    extra = dict(s3_vars(s3_server, "backup"), etcd_backup_dest_dir=shared["dest"],
                 etcd_backup_age_recipients=[age_keys[0]], etcd_backup_retention_s3={"keep_last": 2})
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, check=True, extra_args=with_vars_file(tmp_path, extra))
    assert run.rc == 0, run
    listed = run.result("Say what the retention policies pruned or would prune, and why", "cp1")["msg"]
    would = {entry["id"] for entry in listed["object_store"]}
    assert would == set_ids(before) - set(sorted(set_ids(before))[-2:]), listed
    assert all(entry["reasons"] for entry in listed["object_store"])
    assert objects(s3_server) == before


def test_a_node_uploads_straight_to_the_store_and_a_failed_upload_is_counted(
        lab, run_playbook, s3_server, age_keys, tmp_path, shared):
    metrics = str(tmp_path / "textfile")
    # The staging node runs the upload itself: it needs boto3 for the Python Ansible uses there (the lab's
    # nodes share the host's files, so the test's own interpreter serves).
    extra = dict(s3_vars(s3_server, "backup"), etcd_backup_dest_dir=shared["dest"],
                 etcd_backup_age_recipients=[age_keys[0]], etcd_backup_s3_upload_from="node",
                 etcd_backup_metrics_dir=metrics, etcd_backup_keep_on_node=False,
                 ansible_python_interpreter=sys.executable)
    before = set(objects(s3_server))
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_args=with_vars_file(tmp_path, extra))
    assert run.rc == 0, run
    report = h.custom_stat(run, "etcd_backup")
    new = sorted(set(objects(s3_server)) - before)
    assert [os.path.basename(k) for k in new] == sorted(os.path.basename(p) for p in (
        report["snapshot"], report["archive"], report["metadata"])), new
    assert run.result("Upload the snapshot, the archive and then the metadata from the node that staged them",
                      report["node"])["changed"]
    # keep_on_node false: the node's staging files are gone once the store holds verified copies.
    staged = h.listdir(lab, report["node"], "/var/lib/kubeops-etcd/backups")
    assert not [n for n in staged if n.startswith(os.path.basename(report["snapshot"]).split("-rev")[0])], staged

    # The store unreachable: the run fails naming the endpoint, the ops box keeps its verified copy, and the
    # metrics count the failure while keeping the last success.
    closed = "http://127.0.0.1:%d" % free_port()
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_args=with_vars_file(tmp_path, dict(
        extra, etcd_backup_s3_endpoint_url=closed, etcd_backup_s3_upload_from="controller")))
    assert run.rc != 0, run
    assert closed in run.stdout, run
    with open(os.path.join(metrics, "kubeops_etcd_backup.prom")) as handle:
        text = handle.read()
    assert 'kubeops_etcd_backup_success{cluster="kubernetes"} 0' in text, text
    assert 'kubeops_etcd_backup_failures_total{cluster="kubernetes"} 1' in text, text
    assert 'kubeops_etcd_backup_last_success_timestamp_seconds{cluster="kubernetes"} 0' not in text, text
