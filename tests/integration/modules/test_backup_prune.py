"""etcd_backup_prune on the lab: a policy applied through ansible-playbook to two months of backups in a node's private
directory. Check mode lists exactly what would go and removes nothing; the real run removes exactly those files and
frees their bytes, leaves the foreign entries (other clusters, .part files, a symbolic link, a directory, a README)
alone; a second run changes nothing; a bad policy is refused with nothing removed; a missing directory is reported."""

import datetime
import hashlib
import json
import os
import shutil

import pytest

from modhelpers import run_task, tree_state

CLUSTER = "prod.eu-1"
NODE_DIR = "/var/lib/kubeops-ret-it/backups"
TASK = "Prune etcd backups by the retention policy"
POLICY = {"keep_last": 3, "daily": 5, "weekly": 3, "monthly": 6}

UTC = datetime.timezone.utc


def at(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def set_id(when):
    return "%s-%s" % (CLUSTER, when.strftime("%Y%m%dT%H%M%SZ"))


def write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


def write_set(directory, index, when, metadata=True):
    """One backup set in one of the shapes the collection writes; returns its file names."""
    stamp = set_id(when)
    snapshot_data = hashlib.sha256(stamp.encode()).digest() * (64 + 7 * index)
    if index % 3 == 0:       # node staging dir: no revision
        prefix, snapshot, pki = stamp, stamp + ".db", stamp + "-pki.tar.gz"
        checksums = {"sha256": hashlib.sha256(snapshot_data).hexdigest()}
    elif index % 3 == 1:     # ops box, plain, with the run report
        prefix = "%s-rev%d" % (stamp, 1000 + index)
        snapshot, pki = prefix + ".db", prefix + "-pki.tar.gz"
        write(os.path.join(directory, prefix + ".report.json"), b'{"ok": true}')
        checksums = {"sha256": hashlib.sha256(snapshot_data).hexdigest()}
    else:                    # ops box, compressed and encrypted
        prefix = "%s-rev%d" % (stamp, 1000 + index)
        snapshot, pki = prefix + ".db.zst.age", prefix + "-pki.tar.gz.age"
        checksums = {"sha256": hashlib.sha256(b"plaintext").hexdigest(),
                     "encrypted_sha256": hashlib.sha256(snapshot_data).hexdigest()}
    write(os.path.join(directory, snapshot), snapshot_data)
    write(os.path.join(directory, pki), b"pki" * (100 + index))
    if metadata:
        write(os.path.join(directory, prefix + ".db.meta.json"),
              json.dumps(dict({"format": 1, "file": snapshot}, **checksums)).encode())
    return sorted(name for name in os.listdir(directory) if name.startswith(stamp))


def backup_times():
    """Two sets a day (06:00, 18:00) every third day, 2024-01-01 .. 2024-02-27: 40 sets over two months."""
    times = []
    for offset in range(0, 60, 3):
        day = at("2024-01-01 00:00") + datetime.timedelta(days=offset)
        times += [day + datetime.timedelta(hours=6), day + datetime.timedelta(hours=18)]
    return times


# Worked out by hand for POLICY (2024-01-01 is a Monday, so ISO week N starts on day 7 * (N - 1) of the year):
KEPT = [
    ("2024-02-27 23:00", ["newer than the newest verified backup: kept for inspection"]),
    ("2024-02-27 18:00", ["newest verified backup", "one of the last 3", "daily: newest of 2024-02-27",
                          "weekly: newest of ISO week 2024-W09", "monthly: newest of 2024-02"]),
    ("2024-02-27 06:00", ["one of the last 3"]),
    ("2024-02-24 18:00", ["one of the last 3", "daily: newest of 2024-02-24", "weekly: newest of ISO week 2024-W08"]),
    ("2024-02-21 18:00", ["daily: newest of 2024-02-21"]),
    ("2024-02-18 18:00", ["daily: newest of 2024-02-18", "weekly: newest of ISO week 2024-W07"]),
    ("2024-02-15 18:00", ["daily: newest of 2024-02-15"]),
    ("2024-01-31 18:00", ["monthly: newest of 2024-01"]),
]


@pytest.fixture(scope="module")
def backups(lab):
    """The backup dir on cp1 (host path), {set id: file names} and the foreign entries."""
    directory = lab.node_path("cp1", NODE_DIR)
    parent = os.path.dirname(directory)
    shutil.rmtree(parent, ignore_errors=True)
    os.makedirs(directory)
    sets = {}
    for index, when in enumerate(backup_times()):
        sets[set_id(when)] = write_set(directory, index, when)
    # Unverified sets: the newest (a run that died before its metadata) and one among the old ones.
    sets[set_id(at("2024-02-27 23:00"))] = write_set(directory, 40, at("2024-02-27 23:00"), metadata=False)
    sets[set_id(at("2024-01-02 12:00"))] = write_set(directory, 41, at("2024-01-02 12:00"), metadata=False)
    write(os.path.join(parent, "outside.db"), b"the target of a symbolic link")
    foreign = {
        "README.txt": "file",
        "%s-rev1040.db.part" % set_id(at("2024-02-28 06:00")): "file",
        "prod-eu-1-20240110T060000Z.db": "file",            # '.' in the cluster name is no wildcard
        "prod.eu-10-20240110T060000Z.db": "file",           # a cluster whose name starts alike
        "other-20240110T060000Z-rev5.db": "file",
        "other-20240110T060000Z-rev5.db.meta.json": "file",
        "%s.db" % set_id(at("2024-01-03 06:00")): "symlink",
        "%s.db" % set_id(at("2024-01-03 07:00")): "dir",
    }
    for name, kind in foreign.items():
        full = os.path.join(directory, name)
        if kind == "file":
            write(full, b"not ours")
        elif kind == "symlink":
            os.symlink("../outside.db", full)
        else:
            os.mkdir(full)
            write(os.path.join(full, "inside"), b"never entered")
    yield directory, sets, sorted(foreign)
    shutil.rmtree(parent, ignore_errors=True)


def prune(run_playbook, lab, args, check=False):
    return run_task(run_playbook, lab, TASK, "etcd_backup_prune", args, check=check)


@pytest.mark.parametrize("lab", [{"nodes": 1, "ip_base": 36, "dir": "/tmp/kubeops-ret-36"}], indirect=True)
def test_policy_prunes_exactly_what_it_says_on_the_node(lab, run_playbook, backups):
    directory, sets, foreign = backups
    assert len(sets) == 42
    args = {"path": NODE_DIR, "cluster_name": CLUSTER, "policy": POLICY, "verify_checksums": True}
    kept_ids = [set_id(at(text)) for text, _reasons in KEPT]
    pruned_ids = sorted((key for key in sets if key not in kept_ids), reverse=True)
    pruned_files = [name for key in pruned_ids for name in sets[key]]
    freed = sum(os.lstat(os.path.join(directory, name)).st_size for name in pruned_files)
    before = tree_state(os.path.dirname(directory))

    run, checked = prune(run_playbook, lab, args, check=True)
    assert run.rc == 0, run
    assert checked["changed"] is True
    assert tree_state(os.path.dirname(directory)) == before
    assert [(entry["id"], entry["reasons"]) for entry in checked["kept"]] == [
        (set_id(at(text)), reasons) for text, reasons in KEPT]
    assert [entry["id"] for entry in checked["pruned"]] == pruned_ids
    assert [entry["files"] for entry in checked["pruned"]] == [sets[key] for key in pruned_ids]
    assert checked["ignored"] == foreign
    assert checked["freed_bytes"] == freed
    old_unverified = [entry for entry in checked["pruned"] if entry["id"] == set_id(at("2024-01-02 12:00"))][0]
    assert old_unverified["verified"] is False
    assert old_unverified["verification"] == "no metadata file (.db.meta.json)"
    assert old_unverified["taken"] == "2024-01-02T12:00:00Z"
    assert checked["msg"].startswith("Would keep 8 and prune 34 backup sets of cluster prod.eu-1 in %s on " % NODE_DIR)

    run, real = prune(run_playbook, lab, args)
    assert run.rc == 0, run
    assert real["changed"] is True
    assert [entry["id"] for entry in real["pruned"]] == pruned_ids
    assert real["freed_bytes"] == freed
    assert sorted(os.listdir(directory)) == sorted(foreign + [name for key in kept_ids for name in sets[key]])
    assert os.path.islink(os.path.join(directory, "%s.db" % set_id(at("2024-01-03 06:00"))))
    with open(os.path.join(os.path.dirname(directory), "outside.db"), "rb") as handle:
        assert handle.read() == b"the target of a symbolic link"
    with open(os.path.join(directory, "%s.db" % set_id(at("2024-01-03 07:00")), "inside"), "rb") as handle:
        assert handle.read() == b"never entered"
    after = tree_state(os.path.dirname(directory))

    for check in (False, True):
        run, again = prune(run_playbook, lab, args, check=check)
        assert run.rc == 0, run
        assert again["changed"] is False
        assert again["pruned"] == [] and again["freed_bytes"] == 0
        assert [entry["id"] for entry in again["kept"]] == kept_ids
        assert tree_state(os.path.dirname(directory)) == after


@pytest.mark.parametrize("lab", [{"nodes": 1, "ip_base": 36, "dir": "/tmp/kubeops-ret-36"}], indirect=True)
def test_bad_policy_and_missing_dir(lab, run_playbook, backups):
    directory, _sets, _foreign = backups
    before = tree_state(os.path.dirname(directory))
    run, refused = prune(run_playbook, lab, {"path": NODE_DIR, "cluster_name": CLUSTER,
                                             "policy": {"daily": -7, "keep_last": 1}})
    assert run.rc != 0
    assert [(item["host"], item["status"]) for item in run.failed()] == [("cp1", "failed")]
    assert "Bad retention policy for %s on " % NODE_DIR in refused["msg"]
    assert "daily=-7 is negative: give a whole number >= 0" in refused["msg"]
    assert tree_state(os.path.dirname(directory)) == before

    missing = NODE_DIR + "-missing"
    run, result = prune(run_playbook, lab, {"path": missing, "cluster_name": CLUSTER, "policy": {"keep_last": 1}})
    assert run.rc == 0, run
    assert result["changed"] is False and result["path_exists"] is False
    assert result["msg"].startswith("%s does not exist on " % missing)
    assert not os.path.exists(lab.node_path("cp1", missing))
