"""backup.yml and restore.yml without etcd tools on the host, on the lab's Kubernetes-built etcd images
(etcdctl and /bin/sh, no etcdutl): the backup uses the container's etcdctl; a 3.4 restore too (3.4's etcdctl
restores); a 3.5 restore needs etcdutl, so it installs the release from the lab's loopback mirror, checked
against SHA256SUMS. Without a mirror, or with a corrupted tarball, the restore is refused before anything
changes. One node per version: the multi-node path is test_pb_no_host_tools.py."""

import json
import os
import sys

import pytest

import pbhelpers as h

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lab"))
import mirror as lab_mirror  # noqa: E402

pytestmark = pytest.mark.parametrize("lab", [
    pytest.param({"nodes": 1, "etcd_version": "3.5.16", "ip_base": 5, "no_tools": "all",
                  "dir": "/tmp/kubeops-notools-5"}, id="3.5.16"),
    pytest.param({"nodes": 1, "etcd_version": "3.5.1", "ip_base": 7, "no_tools": "all",
                  "dir": "/tmp/kubeops-notools-7"}, id="3.5.1"),
    pytest.param({"nodes": 1, "etcd_version": "3.4.23", "ip_base": 24, "no_tools": "all",
                  "dir": "/tmp/kubeops-notools-24"}, id="3.4.23"),
], indirect=True, scope="module")

PREFIX = "/kubeops-notools-old/"
INSTALL_ROOT = "/var/lib/kubeops-etcd/tools"
TOOLS_TASK = "Find etcd tools on each control plane (the host's, else the etcd container's, else the mirror's)"
REFUSAL_TASK = "Refuse a new restore on a control plane without etcd tools of the cluster's minor version"


@pytest.fixture(scope="module")
def release_mirror(lab, tmp_path_factory):
    server = lab_mirror.Mirror(str(tmp_path_factory.mktemp("mirror")))
    server.add(lab.state["nodes"][0]["etcd_version"])
    server.start()
    yield server
    server.stop()


def version_of(lab):
    return lab.state["nodes"][0]["etcd_version"]


def test_backup_with_the_containers_etcdctl_and_restore_with_its_or_the_mirrors_tools(
        lab, run_playbook, release_mirror, tmp_path):
    version = version_of(lab)
    lab.etcdctl("put", PREFIX + "in-snapshot", "yes")
    run = run_playbook(lab, h.BACKUP_PLAYBOOK, extra_vars={"etcd_backup_dest_dir": str(tmp_path)})
    assert run.rc == 0, run
    found = run.result(TOOLS_TASK, "cp1")
    assert found["source"] == "container", found
    assert found["container_tools"] == {"etcdctl": version, "etcdutl": None}
    snapshot = h.custom_stat(run, "etcd_backup")["snapshot"]
    with open(snapshot + ".meta.json") as handle:
        meta = json.load(handle)
    assert meta["cluster_id"] == h.cluster_id(lab) and meta["etcd_version"] == version
    assert not [e for e in h.listdir(lab, "cp1", "/var/lib/etcd") if e.startswith(".kubeops-xfer-")]

    install_dir = "%s/etcd-v%s-linux-amd64" % (INSTALL_ROOT, version)
    if version.startswith("3.4"):
        # 3.4's etcdctl restores: the container serves the restore as well, nothing is installed
        run = h.restore_round_trip(run_playbook, lab, snapshot, PREFIX)
        found = run.result(TOOLS_TASK, "cp1")
        assert found["source"] == "container" and found["plan_line"].startswith("etcdctl 3.4.23 from the running")
        member = h.custom_stat(run, "etcd_restore")["members"][0]
        with open(lab.node_path("cp1", os.path.join(member["new_data_dir"], ".kubeops-restore.json"))) as handle:
            assert json.load(handle)["tool"] == "etcdctl"
        assert not os.path.exists(lab.node_path("cp1", INSTALL_ROOT))
        return

    # no mirror: refused before anything changes, naming the node, what was tried and the variable to set
    before, keys_before = h.node_state(lab), h.keys(lab, with_values=True)
    run = h.restore(run_playbook, lab, snapshot)
    assert run.rc != 0, run
    message = run.result(REFUSAL_TASK, "cp1")["msg"]
    assert message.startswith("cp1: No etcdctl and etcdutl tools for etcd %s on this node" % version), message
    assert "a Kubernetes-built image has no etcdutl" in message and "etcd_restore_tools_mirror_url" in message
    assert not run.task_results(h.STOP_TASK)
    assert h.node_state(lab) == before and h.keys(lab, with_values=True) == keys_before

    # a corrupted tarball: refused the same way, nothing unpacked
    run = h.restore(run_playbook, lab, snapshot, etcd_restore_tools_mirror_url=release_mirror.template("corrupt"))
    assert run.rc != 0, run
    assert "the download is corrupt or the mirror holds another file" in run.result(REFUSAL_TASK, "cp1")["msg"]
    assert not run.task_results(h.STOP_TASK)
    assert h.node_state(lab) == before and h.keys(lab, with_values=True) == keys_before
    assert not os.path.exists(lab.node_path("cp1", install_dir))

    # the good mirror: the release is installed before anything else changes, and restores
    keys_at_backup = keys_before
    lab.etcdctl("put", PREFIX + "after-backup", "must-vanish")
    run = h.restore(run_playbook, lab, snapshot, etcd_restore_tools_mirror_url=release_mirror.template("good"))
    assert run.rc == 0, run
    found = run.result(TOOLS_TASK, "cp1")
    assert found["source"] == "mirror" and found["etcdutl"] == install_dir + "/etcdutl", found
    assert h.keys(lab, with_values=True) == keys_at_backup
    member = h.custom_stat(run, "etcd_restore")["members"][0]
    with open(lab.node_path("cp1", os.path.join(member["new_data_dir"], ".kubeops-restore.json"))) as handle:
        marker = json.load(handle)
    assert (marker["tool"], marker["tool_version"]) == ("etcdutl", version)
    assert marker["tool_path"] == install_dir + "/etcdutl"
    installed = sorted(os.listdir(lab.node_path("cp1", install_dir)))
    assert installed == [".kubeops-install.json", "etcd", "etcdctl", "etcdutl"]
    assert h.readyz(lab, "cp1") == (200, "ok")
