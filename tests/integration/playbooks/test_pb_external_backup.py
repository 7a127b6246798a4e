"""playbooks/backup.yml against external etcd (issue 10): 2 control planes + 3 etcd hosts, one lab per style
(kubeadm static pods on the etcd hosts, systemd with flags and User=etcd, systemd with kubespray's /etc/etcd.env).

The inventory's non-empty `etcd` group makes the backup external: the control planes have no etcd.yaml and reach
the cluster through kube-apiserver.yaml's --etcd-servers and etcd client certificate. One backup per style: the
snapshot on the ops box holds exactly the cluster's keys at its revision (read with the collection's bbolt reader,
compared with a revision-pinned read of the live cluster), the metadata names the etcd hosts' members, the
cluster ID, `topology: external` and the etcd servers; files 0600, directory 0700.
"""

import base64
import json
import os
import stat
import sys
import tarfile

import pytest

import pbhelpers as h
from pbrun import REPO_ROOT

# The collection's read-only bbolt reader (unit tested against real snapshots) lists the snapshot's keys.
sys.path.insert(0, os.path.join(REPO_ROOT, "build", "collections"))
from ansible_collections.kubeops.etcd.plugins.module_utils.bbolt import iterate_bucket  # noqa: E402
from ansible_collections.kubeops.etcd.plugins.module_utils.secrets_scan import (  # noqa: E402
    KEY_BUCKET, decode_key_value, is_tombstone)

STYLES = [("static", 420), ("systemd-flags", 430), ("systemd-env", 440)]
pytestmark = pytest.mark.parametrize("lab", [
    pytest.param({"topology": "external", "nodes": 2, "etcd_hosts": 3, "etcd_style": style, "ip_base": base,
                  "dir": "/tmp/kubeops-extbackup-%d" % base}, id=style)
    for style, base in STYLES], indirect=True)

PREFIX = "/kubeops-extbackup/"
TOPOLOGY_TASK = "Say whether etcd is stacked on the control planes or external"
TRAILING_HASH = 32  # etcdctl snapshot save appends the SHA-256 of the database


def snapshot_keys(path):
    """{key: value} of the snapshot file at path, its latest revision of each key (deletions applied)."""
    latest = {}
    for revision, data in iterate_bucket(path, KEY_BUCKET, os.path.getsize(path) - TRAILING_HASH):
        kv = decode_key_value(data, ("key", "value"))
        if is_tombstone(revision):
            latest.pop(kv["key"], None)
        else:
            latest[kv["key"]] = kv["value"]
    return latest


def cluster_keys_at(lab, revision):
    """{key: value} of the live cluster at revision (every key, also those the stand-ins keep rewriting)."""
    data = json.loads(lab.etcdctl("get", "", "--prefix", "--rev=%d" % revision, "-w", "json").stdout)
    return {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in data.get("kvs", [])}


def test_backup_of_external_etcd_holds_the_clusters_keys_and_says_it_is_external(lab, run_playbook, tmp_path):
    etcd_hosts = [node["host"] for node in lab.etcd_nodes()]
    assert sorted(etcd_hosts) == ["etcd1", "etcd2", "etcd3"]
    lab.etcdctl("put", PREFIX + "marker", "before-backup")
    dest = str(tmp_path / "backups")

    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_vars={"etcd_backup_dest_dir": dest})
    assert run.rc == 0, run
    report = h.custom_stat(run, "etcd_backup")
    assert report, run
    assert run.result(TOPOLOGY_TASK, "cp1")["msg"].startswith(
        "external etcd: the inventory group 'etcd' lists etcd1, etcd2, etcd3;")

    snapshot = report["snapshot"]
    meta_path = snapshot + ".meta.json"
    with open(meta_path) as handle:
        meta = json.load(handle)
    # Exactly the cluster's keys and values at the snapshot's revision.
    revision = int(meta["revision"])
    keys = snapshot_keys(snapshot)
    assert (PREFIX + "marker").encode() in keys
    assert keys == cluster_keys_at(lab, revision)
    assert meta["total_key"] >= len(keys)

    assert meta["topology"] == "external" and report["topology"] == "external"
    servers = ["https://%s:2379" % node["ip"] for node in lab.etcd_nodes()]
    assert sorted(meta["etcd_servers"]) == sorted(servers) == sorted(report["etcd_servers"])
    assert sorted(member["name"] for member in meta["members"]) == ["etcd1", "etcd2", "etcd3"]
    assert meta["member_name"] in etcd_hosts and meta["endpoint"] in servers
    assert meta["cluster_id"] == h.cluster_id(lab) == report["cluster_id"]
    assert meta["cluster_healthy"] is True and meta["node"] in ("cp1", "cp2")
    assert meta["etcd_version"] == lab.etcd_nodes()[0]["etcd_version"]

    files = [snapshot, meta_path, report["archive"]]
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    # The control plane's PKI and manifests (no etcd.yaml there: etcd runs elsewhere).
    with tarfile.open(report["archive"], "r:gz") as archive:
        names = archive.getnames()
    for wanted in ("etc/kubernetes/pki/ca.key", "etc/kubernetes/pki/apiserver-etcd-client.key",
                   "etc/kubernetes/pki/etcd/ca.crt", "etc/kubernetes/manifests/kube-apiserver.yaml"):
        assert wanted in names, (wanted, names)
    assert "etc/kubernetes/manifests/etcd.yaml" not in names


def test_restore_check_of_external_etcd_shows_the_plan_and_a_limit_without_an_etcd_host_is_refused(
        lab, run_playbook, tmp_path):
    """restore.yml --check of external etcd plans on the etcd hosts with the control planes' API servers and changes
    nothing; run with --limit leaving an etcd host out, it is refused at its first task, naming that host, and so is
    restore_abort.yml (no journal to undo from). The
    cluster's keys and ID, every etcd host's state and the control planes' manifests are unchanged."""
    report = h.backup(run_playbook, lab, str(tmp_path / "backups"))
    keys, cluster = h.keys(lab, with_values=True), h.cluster_id(lab)
    manifests = {host: [h.read_node_file(lab, host, "/etc/kubernetes/manifests/" + name) for name in h.MANIFESTS[1:]]
                 for host in ("cp1", "cp2")}
    state = h.node_state(lab)

    run = h.restore(run_playbook, lab, report["snapshot"], check=True)
    assert run.rc == 0, run
    plan = run.result("Show the restore plan of external etcd", "cp1")["msg"]
    assert plan[0] == "Restore plan for 3 etcd host(s) of external etcd, with control plane(s) cp1, cp2 (CHECK MODE: " \
                      "nothing will be changed):"
    for host in ("etcd1", "etcd2", "etcd3"):
        assert any(line.startswith("%s: member %s id " % (host, host)) for line in plan), plan

    run = h.restore(run_playbook, lab, report["snapshot"], extra_args=["--limit", "cp1,cp2,etcd1,etcd2"])
    assert run.rc != 0, run
    [failed] = run.failed()
    assert failed["task"].endswith("Check what the inventory declares (stacked or external etcd; the control planes "
                                   "declared lost)"), failed
    assert failed["result"]["msg"].startswith(
        "The restore was refused before anything was changed: etcd3: the inventory group 'etcd' lists etcd3, which is "
        "not in this play (cp1, cp2, etcd1, etcd2); every member is restored at once"), failed
    # No journal is written for external etcd: an abort (restore_abort.yml) is refused at the same first task.
    run = run_playbook(lab, os.path.join(REPO_ROOT, "playbooks", "restore_abort.yml"))
    assert run.rc != 0, run
    [failed] = run.failed()
    assert failed["result"]["msg"].startswith(
        "The restore was refused before anything was changed: etcd1, etcd2, etcd3, cp1, cp2: etcd_restore_rollback "
        "(playbooks/restore_abort.yml) finishes or undoes an unfinished run from the journals on the nodes, and a "
        "restore of external etcd writes none"), failed
    assert h.keys(lab, with_values=True) == keys and h.cluster_id(lab) == cluster
    assert h.node_state(lab) == state
    assert {host: [h.read_node_file(lab, host, "/etc/kubernetes/manifests/" + name) for name in h.MANIFESTS[1:]]
            for host in ("cp1", "cp2")} == manifests
