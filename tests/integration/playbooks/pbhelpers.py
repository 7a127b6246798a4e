"""Helpers for the playbook suites: run backup/restore, read the lab's state, compare before/after."""

import base64
import json
import os
import ssl
import time
import urllib.request

import yaml

from pbrun import REPO_ROOT

BACKUP_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "backup.yml")
RESTORE_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "restore.yml")
BUMP = 1000000000
MANIFESTS = ("etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml")
HOLDING_DIR = "/etc/kubernetes/kubeops-etcd/held-manifests"
STAGING_DIR = "/var/lib/kubeops-etcd/restore"
RUNS_DIR = "/etc/kubernetes/kubeops-etcd/runs"
STOP_TASK = "Stop kube-apiserver, kube-controller-manager and kube-scheduler, then etcd, on every control plane"
ROLLED_BACK_TASK = "Fail the restore, saying what the rollback did on every control plane"
# Keys the API server, controller-manager and scheduler stand-ins rewrite all the time.
VOLATILE_PREFIXES = ("/registry/leases/", "/registry/masterleases/")


def custom_stat(run, key):
    """set_stats data (per_host: false lands under _run)."""
    stats = run.stats or {}
    return (stats.get("_run") or stats).get(key)


def backup(run_playbook, lab, dest_dir, **extra_vars):
    run = run_playbook(lab, BACKUP_PLAYBOOK, extra_vars=dict({"etcd_backup_dest_dir": dest_dir}, **extra_vars))
    assert run.rc == 0, run
    report = custom_stat(run, "etcd_backup")
    assert report, run
    return report


def restore(run_playbook, lab, snapshot, check=False, extra_args=None, **extra_vars):
    return run_playbook(lab, RESTORE_PLAYBOOK, extra_vars=dict({"snapshot": snapshot}, **extra_vars), check=check,
                        extra_args=extra_args)


def backup_with_marker(run_playbook, lab, dest_dir, prefix):
    """Write ``<prefix>in-snapshot`` and take a backup: the snapshot's path."""
    lab.etcdctl("put", prefix + "in-snapshot", "yes")
    return backup(run_playbook, lab, dest_dir)["snapshot"]


def restore_round_trip(run_playbook, lab, snapshot, prefix):
    """Write a key the snapshot lacks, restore: the snapshot's keys exactly, under a new cluster id. The run."""
    keys_at_backup = keys(lab, with_values=True)
    lab.etcdctl("put", prefix + "after-backup", "must-vanish")
    old_cluster = cluster_id(lab)

    run = restore(run_playbook, lab, snapshot)
    assert run.rc == 0, run

    restored_keys = keys(lab, with_values=True)
    assert restored_keys == keys_at_backup, (restored_keys, keys_at_backup)
    assert cluster_id(lab) != old_cluster, old_cluster
    return run


def wait_for(predicate, timeout, interval=1):
    """Whether predicate() came true within timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def hosts(lab):
    return [node["host"] for node in lab.state["nodes"]]


def keys(lab, with_values=False, hosts=None):
    """Every key (and value) of the cluster except the ones the stand-ins keep rewriting; with hosts, read through
    those hosts' members only (a quorum read)."""
    endpoints = [lab.node(host)["client_url"] for host in hosts] if hosts else None
    out = lab.etcdctl("get", "", "--prefix", "-w", "json", endpoints=endpoints).stdout
    data = json.loads(out)
    result = {}
    for kv in data.get("kvs", []):
        key = base64.b64decode(kv["key"]).decode("utf-8", "replace")
        if key.startswith(VOLATILE_PREFIXES):
            continue
        result[key] = base64.b64decode(kv.get("value", "")) if with_values else None
    return result if with_values else set(result)


def local_keys(lab, host):
    """Every key the member of host holds itself (a serializable read answered from its own data)."""
    out = lab.etcdctl("get", "", "--prefix", "--keys-only", "--consistency=s", "-w", "json",
                      endpoints=[lab.node(host)["client_url"]]).stdout
    names = (base64.b64decode(kv["key"]).decode("utf-8", "replace") for kv in json.loads(out).get("kvs", []))
    return set(name for name in names if not name.startswith(VOLATILE_PREFIXES))


def endpoint_status(lab):
    return json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)


def cluster_id(lab):
    ids = {format(entry["Status"]["header"]["cluster_id"], "x") for entry in endpoint_status(lab)}
    assert len(ids) == 1, ids
    return ids.pop()


def members(lab):
    """{name: member id hex}"""
    data = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    return {m["name"]: format(m["ID"], "x") for m in data["members"]}


def revision(lab):
    return max(entry["Status"]["header"]["revision"] for entry in endpoint_status(lab))


def read_node_file(lab, host, path):
    with open(lab.node_path(host, path), "rb") as handle:
        return handle.read()


def read_node_file_if_exists(lab, host, path):
    """The file's bytes, or None when it is not there (a manifest held aside)."""
    return read_node_file(lab, host, path) if os.path.exists(lab.node_path(host, path)) else None


def manifest_data_dir(lab, host, path="/etc/kubernetes/manifests/etcd.yaml"):
    doc = yaml.safe_load(read_node_file(lab, host, path))
    container = doc["spec"]["containers"][0]
    data_dir = [a.split("=", 1)[1] for a in container["command"] if a.startswith("--data-dir=")][0]
    mount = [m for m in container["volumeMounts"] if data_dir == m["mountPath"] or data_dir.startswith(m["mountPath"] + "/")][0]
    return [v["hostPath"]["path"] for v in doc["spec"]["volumes"] if v["name"] == mount["name"]][0]


def container_ids(lab, host):
    proc = lab.exec(host, ["crictl", "ps", "-q"])
    assert proc.returncode == 0, proc
    return sorted(proc.stdout.split())


def listdir(lab, host, path):
    full = lab.node_path(host, path)
    return sorted(os.listdir(full)) if os.path.isdir(full) else None


def node_state(lab):
    """What a refused restore must leave untouched, per node."""
    state = {}
    for host in hosts(lab):
        state[host] = {
            "manifests": {name: read_node_file_if_exists(lab, host, "/etc/kubernetes/manifests/" + name)
                          for name in MANIFESTS},
            "containers": container_ids(lab, host),
            "var_lib": listdir(lab, host, "/var/lib"),
            "held": listdir(lab, host, HOLDING_DIR) or [],
            "staged": listdir(lab, host, STAGING_DIR) or [],
            "runs": listdir(lab, host, RUNS_DIR) or [],
        }
    return state


def readyz(lab, host):
    node = lab.node(host)
    context = ssl.create_default_context(cafile=lab.state["k8s_ca"])
    with urllib.request.urlopen(node["apiserver_url"] + "/readyz", context=context, timeout=10) as response:
        return response.status, response.read().decode()


def only_hostpath_changed(before, after, old_path, new_path):
    """The manifest differs in exactly one line: the data volume's hostPath, old -> new."""
    old_lines = before.decode().splitlines(True)
    new_lines = after.decode().splitlines(True)
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert len(changed) == 1, changed
    line_before, line_after = changed[0]
    assert line_before.replace(old_path, new_path) == line_after, changed
    assert "path:" in line_before


def write_inventory_overlay(path, host_vars):
    """A second inventory (-i) that adds host variables to the lab's hosts."""
    data = {"kube_control_plane": {"hosts": {host: dict(values) for host, values in host_vars.items()}}}
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    return ["-i", path]


def container_pid(lab, host, name):
    ids = lab.exec(host, ["crictl", "ps", "--name", "^%s$" % name, "--state", "running", "-q"]).stdout.split()
    assert len(ids) == 1, ids
    return json.loads(lab.exec(host, ["crictl", "inspect", ids[0]]).stdout)["info"]["pid"]


def manifests(lab, host):
    return {name: read_node_file(lab, host, "/etc/kubernetes/manifests/" + name) for name in MANIFESTS}


def assert_back_on_old_cluster(lab, cluster_before, keys_before, manifests_before):
    """After a rollback: the old cluster with its data, every manifest byte for byte, nothing held, API up."""
    assert cluster_id(lab) == cluster_before
    assert keys(lab, with_values=True) == keys_before
    for host in hosts(lab):
        assert manifests(lab, host) == manifests_before[host], host
        assert listdir(lab, host, HOLDING_DIR) == []
        assert readyz(lab, host) == (200, "ok")


def next_restore_pattern(lab, host):
    """A regex for the lab kubelet's faults that matches a manifest pointing at a data dir the next restore
    prepares (a sibling `<dir>-restored-<new timestamp>`), and not at the data dir the node runs on now."""
    current = manifest_data_dir(lab, host)
    base, _sep, suffix = current.partition("-restored-")
    return "path: %s-restored-%s" % (base, "(?!%s)" % suffix if suffix else "")


def restore_with_fault(run_playbook, lab, snapshot, host, pod, message, when_next_restore=True, **extra_vars):
    """Restore while the lab's kubelet on `host` fails every start of `pod` (only while a manifest points at the
    data dir this restore prepares, unless when_next_restore is false); the fault is cleared afterwards."""
    pattern = next_restore_pattern(lab, host) if when_next_restore else ""
    lab.set_fault(host, pod, when_manifests_match=pattern, message=message)
    try:
        return restore(run_playbook, lab, snapshot, **extra_vars)
    finally:
        lab.clear_faults(host)


def readyz_ok(lab, host):
    try:
        return readyz(lab, host) == (200, "ok")
    except OSError:
        return False
