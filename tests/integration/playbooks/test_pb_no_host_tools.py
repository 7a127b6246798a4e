"""backup.yml and restore.yml on control planes with no etcd tools on the host, as kubeadm leaves them.

etcd 3.5.30 runs etcd's official image (etcdctl and etcdutl, no shell): both playbooks use the etcd container's
own tools through `crictl exec`, files passing through the data dir's hostPath volume, and nothing is installed.
The older versions are in test_pb_no_host_tools_old.py."""

import json
import os

import pytest

import pbhelpers as h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 1, "no_tools": "all",
                          "dir": "/tmp/kubeops-notools-1"}, id="3-nodes-3.5.30-official-image")], indirect=True)

PREFIX = "/kubeops-notools/"
INSTALL_ROOT = "/var/lib/kubeops-etcd/tools"
TOOLS_TASK = "Find etcd tools on each control plane (the host's, else the etcd container's, else the mirror's)"


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def assert_no_scratch_left(lab):
    """No .kubeops-xfer-* dir stays in any data dir (old or restored) and nothing was installed."""
    for host in h.hosts(lab):
        for entry in h.listdir(lab, host, "/var/lib"):
            if entry.startswith("etcd"):
                assert not [e for e in h.listdir(lab, host, "/var/lib/" + entry) if e.startswith(".kubeops-xfer-")]
        assert not os.path.exists(lab.node_path(host, INSTALL_ROOT))


def test_backup_and_restore_with_the_etcd_containers_tools(lab, run_playbook, tmp_path):
    for host in h.hosts(lab):
        assert lab.exec(host, ["sh", "-c", "command -v etcdctl etcdutl"], check=False).returncode != 0

    lab.etcdctl("put", PREFIX + "in-snapshot", "yes")
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_vars={"etcd_backup_dest_dir": str(tmp_path)})
    assert run.rc == 0, run
    report = h.custom_stat(run, "etcd_backup")
    found = run.result(TOOLS_TASK, "cp1")
    assert found["source"] == "container" and found["module_options"]["tools_source"] == "container"
    assert found["plan_line"].startswith("etcdctl 3.5.30 from the running etcd container ")
    # the snapshot is complete and verified like any other: its metadata names the cluster and its keys
    meta = read_json(report["snapshot"] + ".meta.json")
    assert meta["cluster_id"] == h.cluster_id(lab)
    assert meta["total_key"] > 0 and meta["etcd_version"] == "3.5.30"
    assert os.stat(report["snapshot"]).st_mode & 0o777 == 0o600
    assert_no_scratch_left(lab)

    old_members = h.members(lab)
    run = h.restore_round_trip(run_playbook, lab, report["snapshot"], PREFIX)
    for host in h.hosts(lab):
        found = run.result(TOOLS_TASK, host)
        assert found["source"] == "container", found
        assert found["plan_line"].startswith("etcdctl and etcdutl 3.5.30 from the running etcd container "), found
    stat = h.custom_stat(run, "etcd_restore")
    assert [m["name"] for m in stat["members"]] == ["cp1", "cp2", "cp3"]
    for member in stat["members"]:
        assert h.manifest_data_dir(lab, member["host"]) == member["new_data_dir"]
        restored = lab.node_path(member["host"], member["new_data_dir"])
        assert os.stat(restored).st_mode & 0o777 == 0o700
        marker = read_json(os.path.join(restored, ".kubeops-restore.json"))
        assert marker["tool"] == "etcdutl" and marker["tool_version"] == "3.5.30"
    assert sorted(h.members(lab)) == sorted(old_members) == ["cp1", "cp2", "cp3"]
    assert h.keys(lab, with_values=True)[PREFIX + "in-snapshot"] == b"yes"
    assert h.readyz(lab, "cp1") == (200, "ok")
    assert_no_scratch_left(lab)
