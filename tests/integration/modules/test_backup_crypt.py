"""etcd_backup_crypt on the lab: a real etcd snapshot encrypted with age on the node, decrypted on the ops box.

Real etcd, real SSH, real ansible-playbook (at -vvv where a secret is in play), real age and zstd. The node only
ever gets the public key; the identity reaches the localhost play as a variable from a vars file, and the test
greps the whole output and the recorded results for it.
"""

import hashlib
import json
import os
import stat
import subprocess

import pytest
import yaml

from modhelpers import four_runs, tree_state

BACKUP_DIR = "/var/lib/kubeops-age-it/backups"   # node-private (/var/lib is bind-mounted per node)
SNAPSHOT = BACKUP_DIR + "/etcd.db"
ENCRYPTED = SNAPSHOT + ".zst.age"
KEY = "/registry/secrets/kubeops-it/age-roundtrip"

pytestmark = pytest.mark.parametrize(
    "lab", [{"nodes": 1, "ip_base": 44, "dir": "/tmp/kubeops-age-44"}], indirect=True, scope="module")


def keygen(directory, name):
    path = os.path.join(str(directory), name)
    subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
    with open(path) as handle:
        identity = handle.read()
    public = [line.split(": ", 1)[1].strip() for line in identity.splitlines() if line.startswith("# public key: ")][0]
    secret = [line for line in identity.splitlines() if line.startswith("AGE-SECRET-KEY-1")][0]
    return {"identity": identity, "public": public, "secret": secret}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("age-keys")
    return {"right": keygen(directory, "right.key"), "wrong": keygen(directory, "wrong.key")}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def play(name, hosts, tasks):
    entry = {"name": name, "hosts": hosts, "gather_facts": False, "tasks": tasks}
    if hosts == "localhost":
        entry["connection"] = "local"
    return yaml.safe_dump([entry], sort_keys=False)


def vars_file(tmp_path, identity):
    """The identity as an operator would keep it (an AWX credential or vault renders to the same variable)."""
    path = tmp_path / "restore-vars.yml"
    path.write_text(yaml.safe_dump({"etcd_restore_age_identity": identity}))
    os.chmod(str(path), 0o600)
    return str(path)


def assert_secret_absent(run, secret):
    assert "ESTABLISH LOCAL CONNECTION" in run.stdout, "the run was not at -vvv"
    everything = run.stdout + run.stderr + json.dumps(run.results)
    assert secret not in everything
    assert secret[16:48] not in everything   # not even a part of it


def test_snapshot_encrypted_on_the_node_decrypted_on_the_ops_box(lab, run_playbook, keys, tmp_path):
    lab.etcdctl("put", KEY, "k8s-plaintext-secret-value")
    taken = run_playbook(lab, play("snapshot", "cp1", [
        {"name": "Take an etcd snapshot", "kubeops.etcd.etcd_snapshot": {"dest": SNAPSHOT}}]))
    assert taken.rc == 0, taken
    snapshot = taken.result("Take an etcd snapshot", "cp1")
    snapshot_sha256 = snapshot["sha256"]
    backup_dir = lab.node_path("cp1", BACKUP_DIR)
    assert sha256(lab.node_path("cp1", SNAPSHOT)) == snapshot_sha256

    # check, real, again, again in check: the plaintext is gone after the real run, so the later runs change nothing.
    args = {"mode": "encrypt", "src": SNAPSHOT, "recipients": [keys["right"]["public"]], "compress": True,
            "remove_src": True}
    checked, encrypted, again, again_checked = four_runs(
        run_playbook, lab, "Encrypt the snapshot for the backup recipients", "etcd_backup_crypt", args)
    assert checked["plaintext_sha256"] is None and checked["src_removed"] is True
    assert encrypted["dest"] == ENCRYPTED and encrypted["plaintext_sha256"] == snapshot_sha256
    assert encrypted["plaintext_size"] == snapshot["size"] and encrypted["compressed"] is True
    assert encrypted["compression_ratio"] == round(float(snapshot["size"]) / encrypted["compressed_size"], 3)
    assert encrypted["src_removed"] is True and encrypted["age_version"].startswith("1.")
    assert again["encrypted_sha256"] == encrypted["encrypted_sha256"]
    assert again_checked["encrypted_sha256"] == encrypted["encrypted_sha256"]

    # On the node: only the encrypted file, private, holding no plaintext.
    assert sorted(os.listdir(backup_dir)) == ["etcd.db.meta.json", "etcd.db.zst.age"]
    node_copy = lab.node_path("cp1", ENCRYPTED)
    assert mode_of(node_copy) == 0o600 and mode_of(backup_dir) == 0o700
    assert sha256(node_copy) == encrypted["encrypted_sha256"] and os.path.getsize(node_copy) == encrypted["encrypted_size"]
    with open(node_copy, "rb") as handle:
        ciphertext = handle.read()
    assert ciphertext.startswith(b"age-encryption.org/v1\n") and b"k8s-plaintext-secret-value" not in ciphertext

    # On the ops box: fetch, then decrypt with the identity from a variable, at -vvv.
    ops_dir = tmp_path / "ops"
    restore = str(ops_dir / "restore" / "etcd.db")
    fetched = run_playbook(lab, play("fetch", "cp1", [
        {"name": "Fetch the encrypted backup", "ansible.builtin.fetch": {
            "src": ENCRYPTED, "dest": str(ops_dir) + "/", "flat": True}}]))
    assert fetched.rc == 0, fetched
    local_copy = str(ops_dir / "etcd.db.zst.age")
    assert sha256(local_copy) == encrypted["encrypted_sha256"]

    decrypt = play("decrypt", "localhost", [{"name": "Decrypt the backup", "kubeops.etcd.etcd_backup_crypt": {
        "mode": "decrypt", "src": local_copy, "dest": restore, "identity": "{{ etcd_restore_age_identity }}",
        "expected_sha256": snapshot_sha256, "expected_encrypted_sha256": encrypted["encrypted_sha256"]}}])
    run = run_playbook(lab, decrypt, extra_args=["-vvv", "-e", "@" + vars_file(tmp_path, keys["right"]["identity"])])
    assert run.rc == 0, run
    result = run.result("Decrypt the backup", "localhost")
    assert result["changed"] is True and result["dest"] == restore
    assert result["plaintext_sha256"] == snapshot_sha256 == sha256(restore)   # byte-identical to the snapshot
    assert result["encrypted_sha256"] == encrypted["encrypted_sha256"]
    assert mode_of(restore) == 0o600 and mode_of(os.path.dirname(restore)) == 0o700
    assert os.listdir(os.path.dirname(restore)) == ["etcd.db"]
    assert_secret_absent(run, keys["right"]["secret"])

    # Again: the plaintext is already there, nothing changes.
    state = tree_state(str(ops_dir))
    run = run_playbook(lab, decrypt, extra_args=["-vvv", "-e", "@" + vars_file(tmp_path, keys["right"]["identity"])])
    assert run.rc == 0, run
    assert run.result("Decrypt the backup", "localhost")["changed"] is False
    assert tree_state(str(ops_dir)) == state
    assert_secret_absent(run, keys["right"]["secret"])


def test_verify_only_with_a_wrong_identity_fails_and_writes_nothing(lab, run_playbook, keys, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    source = backups / "etcd.db"
    source.write_bytes(os.urandom(4096))
    encrypted = str(backups / "etcd.db.age")
    subprocess.run(["age", "-r", keys["right"]["public"], "-o", encrypted, str(source)], check=True)
    source.unlink()
    before = tree_state(str(backups))
    name = "Prove that the identity opens the backup"
    verify = play("verify", "localhost", [{"name": name, "ignore_errors": True, "kubeops.etcd.etcd_backup_crypt": {
        "mode": "decrypt", "src": encrypted, "identity": "{{ etcd_restore_age_identity }}", "verify_only": True}}])
    run = run_playbook(lab, verify, extra_args=["-vvv", "-e", "@" + vars_file(tmp_path, keys["wrong"]["identity"])])
    assert run.rc == 0, run
    assert run.task_results(name, "localhost")[-1]["status"] in ("failed", "ignored")
    result = run.result(name, "localhost")
    assert result["msg"].startswith("The identity given does not match any recipient of %s on " % encrypted)
    assert result["msg"].endswith("use the age identity whose public key was in etcd_backup_age_recipients when it "
                                  "was written.")
    assert tree_state(str(backups)) == before
    assert_secret_absent(run, keys["wrong"]["secret"])

    # The right identity passes the same check, still without writing anything.
    run = run_playbook(lab, verify, extra_args=["-e", "@" + vars_file(tmp_path, keys["right"]["identity"])])
    assert run.rc == 0, run
    result = run.result(name, "localhost")
    assert result["changed"] is False and result["verified_only"] is True and result["plaintext_size"] == 4096
    assert tree_state(str(backups)) == before
