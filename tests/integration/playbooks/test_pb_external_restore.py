"""playbooks/restore.yml against external etcd (issue 10): 2 control planes (API server stand-ins, no etcd) + 3 etcd
hosts, one lab per style (kubeadm static pods on the etcd hosts, systemd with flags and User=etcd, systemd with
kubespray's /etc/etcd.env and User=root), and a fourth lab whose etcd1 also runs etcd-events.service.

Each etcd host keeps its member name and peer URL and gets exactly the snapshot's keys under a new cluster ID, in a new
data dir beside the old one (0700, owned by the unit's service user); only the line that says where the data dir is
(--data-dir= in ExecStart, ETCD_DATA_DIR= in the environment file, the etcd-data hostPath of etcd.yaml) changes, and
the control planes' manifests not at all. A truncated snapshot is refused with every etcd process still the same. An
etcd that cannot start on etcd2 (its client port taken from outside once the restore stopped it) rolls every host
back: etcd1 and etcd3 serve the old data with every file as before, and etcd2 comes back once the port is free.
"""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

import pbhelpers as h

FAULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults")
if FAULTS_DIR not in sys.path:
    sys.path.insert(0, FAULTS_DIR)
import faulthelpers as f  # noqa: E402  (tests/integration/faults: take_port, etcd_address, first_line)


def lab_param(style, base, events=False):
    return pytest.param({"topology": "external", "nodes": 2, "etcd_hosts": 3, "etcd_style": style, "ip_base": base,
                         "etcd_events": events, "dir": "/tmp/kubeops-extrestore-%d" % base},
                        id=style + ("-with-etcd-events" if events else ""))


STYLE_LABS = pytest.mark.parametrize("lab", [lab_param("static", 480), lab_param("systemd-flags", 490),
                                             lab_param("systemd-env", 500)], indirect=True)
# Base 510 cannot work: its first node would be 127.0.1.255 (lablib refuses addresses ending in .0 or .255).
EVENTS_LAB = pytest.mark.parametrize("lab", [lab_param("systemd-flags", 513, events=True)], indirect=True)

PREFIX = "/kubeops-extrestore/"
EVENTS_PREFIX = "/kubeops-extrestore-events/"
ETCD_HOSTS = ["etcd1", "etcd2", "etcd3"]
CONTROL_PLANES = ["cp1", "cp2"]
UNIT = "/etc/systemd/system/etcd.service"
DROP_IN = "/etc/systemd/system/etcd.service.d/10-lab.conf"
ETCD_YAML = "/etc/kubernetes/manifests/etcd.yaml"
# The files that define each style's member, and the one of them (and its line) that says where the data dir is.
CONFIG_FILES = {"static": (ETCD_YAML,), "systemd-flags": (UNIT, DROP_IN),
                "systemd-env": (UNIT, DROP_IN, "/etc/etcd.env")}
DATA_DIR_FILE = {"static": ETCD_YAML, "systemd-flags": UNIT, "systemd-env": "/etc/etcd.env"}
DATA_DIR_SETTING = {"static": "path: ", "systemd-flags": "--data-dir=", "systemd-env": "ETCD_DATA_DIR="}
RESTORED_DIR = re.compile(r"-restored-[0-9]{8}T[0-9]{6}Z$")


# --- reading the etcd hosts ---------------------------------------------------------------------------------------

def node_bytes(lab, host, path):
    """The file's bytes as the node sees it (its private /etc overlay included), or None when it is not there."""
    proc = lab.exec(host, ["cat", path], text=False)
    if proc.returncode != 0:
        assert b"No such file" in proc.stderr, (host, path, proc.stderr)
        return None
    return proc.stdout


def ssh(lab, host, *argv):
    """A command on the node over ssh, as an operator runs it."""
    return subprocess.run(lab.ssh_argv(host) + list(argv), capture_output=True, text=True, timeout=120, check=False)


def systemctl_cat(lab, host, unit="etcd.service"):
    proc = ssh(lab, host, "systemctl", "cat", unit)
    assert proc.returncode == 0, (host, unit, proc.stderr)
    return proc.stdout


def unit_property(lab, host, name, unit="etcd.service"):
    return lab.exec(host, ["systemctl", "show", "-p", name, "--value", unit], check=True).stdout.strip()


def unit_pid(lab, host, unit="etcd.service"):
    """The main pid of a unit, checked in /proc to be an etcd process."""
    pid = int(unit_property(lab, host, "MainPID", unit))
    assert pid > 1, (host, unit, pid)
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = handle.read().split(b"\0")
    assert os.path.basename(argv[0]) == b"etcd", (host, unit, argv)
    return pid


def etcd_pid(lab, host):
    """The pid of the etcd process of the member on host: its static pod's container, or etcd.service's."""
    return f.etcd_pid(lab, host) if lab.state["etcd_style"] == "static" else unit_pid(lab, host)


def configured_data_dir(lab, host):
    """The data dir the host's etcd is told to use, read where its style defines it."""
    style = lab.state["etcd_style"]
    if style == "static":
        return h.manifest_data_dir(lab, host)
    text = node_bytes(lab, host, DATA_DIR_FILE[style]).decode()
    pattern = r"--data-dir=(\S+)" if style == "systemd-flags" else r"(?m)^ETCD_DATA_DIR=(\S+)$"
    [found] = re.findall(pattern, text)
    return found


def running_data_dir(lab, host, pid):
    """The data dir the running etcd process was given (None for a static pod: its --data-dir is the container's
    path, the manifest's hostPath says which host dir it is)."""
    style = lab.state["etcd_style"]
    if style == "systemd-flags":
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            flags = [a.decode() for a in handle.read().split(b"\0") if a.startswith(b"--data-dir=")]
        return flags[0].split("=", 1)[1] if flags else None
    if style == "systemd-env":
        with open("/proc/%d/environ" % pid, "rb") as handle:
            env = [a.decode() for a in handle.read().split(b"\0") if a.startswith(b"ETCD_DATA_DIR=")]
        return env[0].split("=", 1)[1] if env else None
    return None


def etcd_host_files(lab, host):
    """Every file that defines the host's member (byte for byte), what systemd reads of its unit (systemctl cat over
    ssh), and the listing of the kubelet's manifests dir."""
    style = lab.state["etcd_style"]
    files = {path: node_bytes(lab, host, path) for path in CONFIG_FILES[style]}
    if style != "static":
        files["systemctl cat etcd.service"] = systemctl_cat(lab, host).encode()
    files["ls /etc/kubernetes/manifests"] = h.listdir(lab, host, "/etc/kubernetes/manifests")
    return files


def assert_only_the_data_dir_changed(lab, host, before, after, old_dir, new_dir):
    """Where the data dir is defined changes from old_dir to new_dir, in that one line, and nothing else does."""
    style = lab.state["etcd_style"]
    where = DATA_DIR_FILE[style]
    changed = [key for key in before if before[key] != after[key]]
    expected = [where] + (["systemctl cat etcd.service"] if style == "systemd-flags" else [])
    assert sorted(changed) == sorted(expected), (host, changed)
    for key in expected:
        only_line_changed(before[key], after[key], old_dir, new_dir, DATA_DIR_SETTING[style])
    if style == "static":
        h.only_hostpath_changed(before[where], after[where], old_dir, new_dir)


def only_line_changed(before, after, old, new, setting):
    """before and after differ in one line only: the one holding `setting`, where old became new."""
    old_lines, new_lines = before.decode().splitlines(True), after.decode().splitlines(True)
    assert len(old_lines) == len(new_lines), (before, after)
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert len(changed) == 1, changed
    line_before, line_after = changed[0]
    assert setting + old in line_before, changed
    assert line_before.replace(setting + old, setting + new) == line_after, changed


def assert_dir_belongs_to_the_service_user(lab, host, path):
    """0700, and the dir with everything in it owned by the user (and group) etcd runs as."""
    uid, gid = ((lab.state["etcd_uid"], lab.state["etcd_gid"]) if lab.state["etcd_style"] == "systemd-flags"
                else (0, 0))
    top = lab.node_path(host, path)
    info = os.stat(top)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700, (host, path, oct(info.st_mode))
    wrong = []
    for root, dirs, files in os.walk(top):
        for name in [root] + [os.path.join(root, x) for x in dirs + files]:
            entry = os.lstat(name)
            if (entry.st_uid, entry.st_gid) != (uid, gid):
                wrong.append((name, entry.st_uid, entry.st_gid))
    assert not wrong, (host, (uid, gid), wrong)
    assert os.path.isfile(os.path.join(top, "member", "snap", "db")), (host, path)


# --- reading the clusters -----------------------------------------------------------------------------------------

def member_urls(lab):
    """{member name: (peer URLs, client URLs)} of the running cluster."""
    data = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    return {m["name"]: (sorted(m.get("peerURLs") or []), sorted(m.get("clientURLs") or [])) for m in data["members"]}


def healthy(lab, hosts):
    """Whether the members on hosts all answer a health check (a quorum read)."""
    proc = lab.etcdctl("endpoint", "health", "-w", "json", endpoints=[lab.node(x)["client_url"] for x in hosts],
                       check=False)
    try:
        entries = json.loads(proc.stdout or "[]")
    except ValueError:
        return False
    return len(entries) == len(hosts) and all(entry.get("health") for entry in entries)


def control_plane_manifests(lab):
    return {host: {name: h.read_node_file_if_exists(lab, host, "/etc/kubernetes/manifests/" + name)
                   for name in h.MANIFESTS} for host in CONTROL_PLANES}


def events_cluster(lab):
    """(cluster id, member ids, {key: value}) of etcd1's etcd-events cluster."""
    url = [lab.state["etcd_events"]["client_url"]]
    [status] = json.loads(lab.etcdctl("endpoint", "status", "-w", "json", endpoints=url).stdout)
    members = json.loads(lab.etcdctl("member", "list", "-w", "json", endpoints=url).stdout)["members"]
    kvs = json.loads(lab.etcdctl("get", "", "--prefix", "-w", "json", endpoints=url).stdout).get("kvs", [])
    return (format(status["Status"]["header"]["cluster_id"], "x"),
            sorted((m["name"], format(m["ID"], "x"), tuple(m["peerURLs"])) for m in members),
            {kv["key"]: kv.get("value") for kv in kvs})


def final_message(run):
    """The message the failed play ends with: the last failure's (the rollback's or the refusal's)."""
    messages = f.failure_messages(run)
    assert messages, run
    return messages[-1]


# --- the cases ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backup(lab, run_playbook, tmp_path_factory):
    """One backup per lab, with a marker key in it, and the cluster's keys when it was taken."""
    assert [node["host"] for node in lab.etcd_nodes()] == ETCD_HOSTS
    lab.etcdctl("put", PREFIX + "in-snapshot", "yes")
    keys = h.keys(lab, with_values=True)
    report = h.backup(run_playbook, lab, str(tmp_path_factory.mktemp("backups")))
    assert report["topology"] == "external", report
    return {"snapshot": report["snapshot"], "revision": int(report["revision"]), "keys": keys}


def restore_round_trip(lab, run_playbook, backup):
    """Write a key the snapshot lacks, restore, and check every outcome of a restore of external etcd. The report."""
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    old_cluster, old_members = h.cluster_id(lab), h.members(lab)
    old_dirs = {host: configured_data_dir(lab, host) for host in ETCD_HOSTS}
    files_before = {host: etcd_host_files(lab, host) for host in ETCD_HOSTS}
    pids_before = {host: etcd_pid(lab, host) for host in ETCD_HOSTS}
    manifests_before = control_plane_manifests(lab)

    run = h.restore(run_playbook, lab, backup["snapshot"])
    assert run.rc == 0, run
    report = h.custom_stat(run, "etcd_restore")
    assert report, run

    # Exactly the snapshot's keys, in the cluster and in each member's own data.
    restored = h.keys(lab, with_values=True)
    assert PREFIX + "in-snapshot" in restored and PREFIX + "after-backup" not in restored, sorted(restored)
    assert restored == backup["keys"]
    for host in ETCD_HOSTS:
        assert h.local_keys(lab, host) == set(backup["keys"]), host
    # A new cluster ID and member IDs; every etcd host keeps its member name, peer URL and client URL.
    new_cluster, new_members = h.cluster_id(lab), h.members(lab)
    assert new_cluster != old_cluster
    assert not set(new_members.values()) & set(old_members.values()), (old_members, new_members)
    assert member_urls(lab) == {host: ([lab.node(host)["peer_url"]], [lab.node(host)["client_url"]])
                                for host in ETCD_HOSTS}
    assert h.revision(lab) >= backup["revision"] + h.BUMP
    # The report, published as for stacked etcd, says external.
    assert report["topology"] == "external", report
    assert report["cluster_id"] == new_cluster and report["old_cluster_id"] == old_cluster, report
    by_host = {member["host"]: member for member in report["members"]}
    assert sorted(by_host) == ETCD_HOSTS, report

    for host, member in sorted(by_host.items()):
        old_dir, new_dir = old_dirs[host], member["new_data_dir"]
        assert member["name"] == host and member["member_id"] == new_members[host], member
        assert member["old_data_dir"] == old_dir, member
        # A sibling named after this run: /var/lib/etcd-restored-<UTC timestamp> (a previous run's suffix replaced).
        assert RESTORED_DIR.search(new_dir) and RESTORED_DIR.sub("", new_dir) == RESTORED_DIR.sub("", old_dir), member
        assert_dir_belongs_to_the_service_user(lab, host, new_dir)
        # The old data dir is left in place with its database and WAL.
        assert os.path.isfile(lab.node_path(host, old_dir + "/member/snap/db")), (host, old_dir)
        assert h.listdir(lab, host, old_dir + "/member/wal"), (host, old_dir)
        # Only where the data dir is defined changed, and etcd runs on the new one.
        assert configured_data_dir(lab, host) == new_dir
        assert_only_the_data_dir_changed(lab, host, files_before[host], etcd_host_files(lab, host), old_dir, new_dir)
        pid = etcd_pid(lab, host)
        assert pid != pids_before[host], host
        if lab.state["etcd_style"] != "static":
            assert running_data_dir(lab, host, pid) == new_dir, host
            assert unit_property(lab, host, "ActiveState") == "active", host
            assert unit_property(lab, host, "NeedDaemonReload") == "no", host
        assert h.listdir(lab, host, h.HOLDING_DIR) in (None, []), host
    # The control planes' manifests are untouched and their API servers answer.
    assert control_plane_manifests(lab) == manifests_before
    for host in CONTROL_PLANES:
        assert h.listdir(lab, host, h.HOLDING_DIR) in (None, []), host
        assert h.readyz(lab, host) == (200, "ok"), host
    return report


@STYLE_LABS
def test_restore_of_external_etcd_gives_exactly_the_snapshot_under_a_new_cluster_id_repointing_only_the_data_dir(
        lab, run_playbook, backup):
    restore_round_trip(lab, run_playbook, backup)


@STYLE_LABS
def test_a_bad_snapshot_is_refused_before_anything_changes_on_any_host(lab, run_playbook, backup, tmp_path):
    # A copy cut in the middle, as an interrupted transfer leaves it, with the metadata of the whole file beside it.
    copy = str(tmp_path / os.path.basename(backup["snapshot"]))
    with open(backup["snapshot"], "rb") as src, open(copy, "wb") as dst:
        data = src.read()
        dst.write(data[:len(data) // 2])
    with open(backup["snapshot"] + ".meta.json", "rb") as src, open(copy + ".meta.json", "wb") as dst:
        dst.write(src.read())

    def everything():
        return {"nodes": h.node_state(lab), "cluster": h.cluster_id(lab), "members": h.members(lab),
                "keys": h.keys(lab, with_values=True), "manifests": control_plane_manifests(lab),
                "pids": {host: etcd_pid(lab, host) for host in ETCD_HOSTS},
                "files": {host: etcd_host_files(lab, host) for host in ETCD_HOSTS}}

    before = everything()
    run = h.restore(run_playbook, lab, copy)

    assert run.rc != 0, run
    message = final_message(run)
    assert copy in message and "truncated" in message, message
    after = everything()
    for key in before:
        assert after[key] == before[key], key
    for host in CONTROL_PLANES:
        assert h.readyz(lab, host) == (200, "ok"), host


@STYLE_LABS
def test_a_member_that_cannot_start_is_rolled_back_and_the_old_cluster_serves_until_it_comes_back(
        lab, run_playbook, backup):
    lab.etcdctl("put", PREFIX + "written-before-the-failed-restore", "must-survive")
    keys_before, cluster_before = h.keys(lab, with_values=True), h.cluster_id(lab)
    files_before = {host: etcd_host_files(lab, host) for host in ETCD_HOSTS}
    manifests_before = control_plane_manifests(lab)
    # etcd2's client address, bound by the test as soon as the restore stopped etcd there (while etcd2 runs, its
    # listener keeps the port) and kept until the checks are done, as another process on the host would.
    ip, port = f.etcd_address(lab, "etcd2")
    take, taken = f.port_taker(ip, port)
    watcher = f.Watcher(take, lambda: None)
    watcher.start()
    try:
        try:
            run = h.restore(run_playbook, lab, backup["snapshot"], etcd_restore_health_timeout=30,
                            etcd_restore_pod_timeout=30)
        finally:
            watcher.stop()
        assert taken, "etcd2's client port was never free during the restore:\n%r" % run
        assert run.rc != 0, run
        # The first line names etcd2 and the cause read there (its container's log, or its unit's journal); what
        # follows says it is down and how to bring it back once the cause is gone.
        message = final_message(run)
        first = f.first_line(message)
        assert re.match(r"etcd restore FAILED on etcd2 ", first), message
        assert "bind: address already in use" in first, message
        assert "MEMBER DOWN on etcd2" in message, message
        down = message.split("MEMBER DOWN on etcd2", 1)[1]
        if lab.state["etcd_style"] == "static":
            assert "crictl ps -a --name etcd" in down, message
        else:
            assert first.startswith("etcd restore FAILED on etcd2 at step wait_quorum (task \"Wait until every "
                                    "restored member is healthy, with one leader and the planned member list\"): "
                                    "etcd on etcd2: unit etcd.service is "), message
            assert "systemctl restart etcd.service" in down, message

        # etcd1 and etcd3 are a quorum of the old cluster: the old data, the key written after the backup included.
        assert healthy(lab, ["etcd1", "etcd3"]), message
        assert f.cluster_ids(lab, ["etcd1", "etcd3"]) == {"etcd1": cluster_before, "etcd3": cluster_before}, message
        assert h.keys(lab, with_values=True, hosts=["etcd1", "etcd3"]) == keys_before
        for host in CONTROL_PLANES:
            assert h.readyz(lab, host) == (200, "ok"), (host, message)
        assert control_plane_manifests(lab) == manifests_before
        # Every etcd host is back on the files it had (etcd2's too: its etcd will start once the port is free).
        for host in ETCD_HOSTS:
            assert etcd_host_files(lab, host) == files_before[host], (host, message)
            assert h.listdir(lab, host, h.HOLDING_DIR) in (None, []), host
    finally:
        for sock in taken:
            sock.close()

    # The port is free again: what the message tells the operator brings etcd2 back (for a static pod the kubelet
    # restarts it by itself).
    if lab.state["etcd_style"] != "static":
        proc = ssh(lab, "etcd2", "systemctl", "restart", "etcd.service")
        assert proc.returncode == 0, proc.stderr
    assert h.wait_for(lambda: healthy(lab, ["etcd2"]), timeout=120), message
    assert f.cluster_ids(lab, ETCD_HOSTS) == {host: cluster_before for host in ETCD_HOSTS}
    assert h.wait_for(lambda: h.local_keys(lab, "etcd2") == h.local_keys(lab, "etcd1"), timeout=60)
    assert h.local_keys(lab, "etcd2") == set(keys_before)
    assert h.keys(lab, with_values=True) == keys_before


@EVENTS_LAB
def test_with_two_etcd_units_on_one_host_only_the_api_servers_cluster_is_restored(lab, run_playbook, backup):
    events = lab.state["etcd_events"]
    assert events["host"] == "etcd1"
    unit = "/etc/systemd/system/" + events["unit"]
    lab.etcdctl("put", EVENTS_PREFIX + "written-before-the-restore", "must-stay", endpoints=[events["client_url"]])
    cluster_before = events_cluster(lab)
    pid_before = unit_pid(lab, "etcd1", events["unit"])
    files_before = {path: node_bytes(lab, "etcd1", path) for path in (unit, unit + ".d/10-lab.conf")}
    cat_before = systemctl_cat(lab, "etcd1", events["unit"])
    assert "--data-dir=%s " % events["data_dir"] in cat_before, cat_before

    report = restore_round_trip(lab, run_playbook, backup)

    assert events["member_name"] not in [member["name"] for member in report["members"]], report
    # etcd-events.service was never stopped, nor repointed: the same process on the same cluster, data and unit.
    assert unit_pid(lab, "etcd1", events["unit"]) == pid_before
    assert events_cluster(lab) == cluster_before
    assert {path: node_bytes(lab, "etcd1", path) for path in files_before} == files_before
    assert systemctl_cat(lab, "etcd1", events["unit"]) == cat_before
    assert unit_property(lab, "etcd1", "NeedDaemonReload", events["unit"]) == "no"
    assert [d for d in h.listdir(lab, "etcd1", "/var/lib") if d.startswith("etcd-events")] == ["etcd-events"]
