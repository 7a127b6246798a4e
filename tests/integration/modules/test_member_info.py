"""etcd_member_info on the lab over SSH, every etcd version.

The labs rename the members (etcd-a, etcd-b, etcd-c: host names say nothing), move the data volume's hostPath to
/var/lib/etcd-data and leave cp3 without etcd tools, so every fact must come from the manifest and the node.
"""

import json
import os
import stat

import pytest
import yaml

from modhelpers import BUMP_SUPPORTED, labs

MEMBER_NAMES = ["etcd-a", "etcd-b", "etcd-c"]
DATA_DIR = "/var/lib/etcd-data"

pytestmark = pytest.mark.parametrize(
    "lab", labs(170, nodes=3, no_tools="cp3", member_names=",".join(MEMBER_NAMES), data_dir=DATA_DIR),
    indirect=True, scope="module")


def playbook(tasks, hosts="kube_control_plane"):
    return yaml.safe_dump([{"name": "kubeops.etcd integration: member info", "hosts": hosts, "gather_facts": False,
                            "tasks": tasks}], sort_keys=False)


def tree_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def test_member_info_from_manifest_and_node(lab, run_playbook):
    version = lab.state["nodes"][0]["etcd_version"]
    name = "Describe the local etcd member"
    run = run_playbook(lab, playbook([{"name": name, "kubeops.etcd.etcd_member_info": {}}]), check=True)
    assert run.rc == 0, run
    for node in lab.state["nodes"]:
        result = run.result(name, node["host"])
        assert result["changed"] is False
        member = result["member"]
        assert member["name"] == node["member_name"] and member["name"] in MEMBER_NAMES
        assert member["data_dir"] == "/var/lib/etcd"
        assert member["data_dir_host_path"] == DATA_DIR
        assert member["data_volume_name"] == "etcd-data"
        assert member["advertise_client_urls"] == [node["client_url"]]
        assert member["peer_urls"] == [node["peer_url"]]
        assert member["image_version"] == version
        assert member["trusted_ca_file"] == "/etc/kubernetes/pki/etcd/ca.crt"
        assert member["manifest_path"] == "/etc/kubernetes/manifests/etcd.yaml"
        assert node["member_name"] + "=" + node["peer_url"] in member["initial_cluster"]

        data_host = lab.node_path(node["host"], DATA_DIR)
        info = os.stat(data_host)
        data_stat = result["data_dir_stat"]
        assert data_stat["exists"] is True
        assert data_stat["mode"] == "%04o" % stat.S_IMODE(info.st_mode)
        assert (data_stat["uid"], data_stat["gid"], data_stat["owner"]) == (info.st_uid, info.st_gid, "root")
        # etcd keeps writing; the size read by the module lies between two reads here.
        assert 0 < data_stat["size_bytes"] <= tree_size(data_host) + 64 * 1024 * 1024
        vfs = os.statvfs(os.path.dirname(data_host))
        assert abs(result["free_bytes"] - vfs.f_bavail * vfs.f_frsize) < 512 * 1024 * 1024

        tools = result["tools"]
        if node["has_tools"]:
            assert tools["etcdctl"] == "/usr/local/sbin/etcdctl" and tools["etcdctl_version"] == version
            if version == "3.4.23":
                assert tools["etcdutl"] is None and tools["restore_tool"] == "etcdctl"
            else:
                assert tools["etcdutl_version"] == version and tools["restore_tool"] == "etcdutl"
            assert tools["supports_bump_revision"] is BUMP_SUPPORTED[version]
        else:
            assert tools == {"etcdctl": None, "etcdctl_version": None, "etcdutl": None, "etcdutl_version": None,
                             "restore_tool": None, "supports_bump_revision": False, "source": "host",
                             "container_id": None}
        assert ("data-inconsistency" in " ".join(result.get("warnings", []))) is (version == "3.5.1")


def test_member_info_live(lab, run_playbook):
    name = "Describe the etcd member and the live cluster"
    run = run_playbook(lab, playbook([{"name": name, "kubeops.etcd.etcd_member_info": {"live": True},
                                       "ignore_errors": True}]))
    assert run.rc == 0, run
    statuses = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)
    leader_id = [s["Status"]["leader"] for s in statuses][0]
    for node in lab.state["nodes"]:
        item = run.task_results(name, node["host"])[-1]
        result = item["result"]
        if not node["has_tools"]:
            assert item["status"] == "ignored"
            assert result["msg"].startswith("etcdctl (needed to query the live cluster) not found on cp3")
            continue
        assert item["status"] == "ok", result
        cluster = result["cluster"]
        assert cluster["healthy"] is True and cluster["problems"] == []
        assert cluster["leader"] == "%x" % leader_id
        assert sorted(m["name"] for m in cluster["members"]) == MEMBER_NAMES


def test_member_info_missing_manifest(lab, run_playbook):
    name = "Describe a member without manifest"
    run = run_playbook(lab, playbook([{"name": name, "kubeops.etcd.etcd_member_info": {
        "manifest_path": "/etc/kubernetes/manifests/missing.yaml"}, "ignore_errors": True}], hosts="cp1"))
    assert run.rc == 0, run
    item = run.task_results(name, "cp1")[-1]
    assert item["status"] == "ignored"
    assert "/etc/kubernetes/manifests/missing.yaml" in item["result"]["msg"] and "cp1" in item["result"]["msg"]


def test_member_info_reads_the_api_server_manifest_and_free_space(lab, run_playbook):
    name = "Describe the member, its API server and free space"
    paths = ["/var/lib/etcd-restored-not-yet", "/etc/kubernetes/manifests"]
    run = run_playbook(lab, playbook([{"name": name, "kubeops.etcd.etcd_member_info": {"free_space_paths": paths}}]),
                       check=True)
    assert run.rc == 0, run
    for node in lab.state["nodes"]:
        result = run.result(name, node["host"])
        assert result["changed"] is False
        # The lab writes --advertise-address=<node ip>, --secure-port and --etcd-servers=<its own client URL>.
        assert result["apiserver"] == {
            "manifest_path": "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "present": True,
            "advertise_address": node["ip"],
            "secure_port": lab.state["apiserver_port"],
            "readyz_url": node["apiserver_url"] + "/readyz",
            "encryption_provider_config": None,
            "etcd_servers": [node["client_url"]],
            "etcd_cafile": "/etc/kubernetes/pki/etcd/ca.crt",
            "etcd_certfile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
            "etcd_keyfile": "/etc/kubernetes/pki/apiserver-etcd-client.key",
        }
        checked = ["/var/lib", "/etc/kubernetes/manifests"]
        assert [(e["path"], e["checked_path"]) for e in result["free_space"]] == list(zip(paths, checked))
        for entry in result["free_space"]:
            on_host = lab.node_path(node["host"], entry["checked_path"])
            assert entry["device"] == os.stat(on_host).st_dev
            vfs = os.statvfs(on_host)
            assert abs(entry["free_bytes"] - vfs.f_bavail * vfs.f_frsize) < 512 * 1024 * 1024


def test_member_info_without_or_with_a_wrong_api_server_manifest(lab, run_playbook):
    missing, wrong = "Describe a member without an API server", "Describe a member with a wrong API server manifest"
    run = run_playbook(lab, playbook([
        {"name": missing, "kubeops.etcd.etcd_member_info": {
            "apiserver_manifest_path": "/etc/kubernetes/manifests/no-such-apiserver.yaml"}},
        {"name": wrong, "kubeops.etcd.etcd_member_info": {
            "apiserver_manifest_path": "/etc/kubernetes/manifests/etcd.yaml"}, "ignore_errors": True},
    ], hosts="cp1"))
    assert run.rc == 0, run
    apiserver = run.result(missing, "cp1")["apiserver"]
    assert apiserver["present"] is False and apiserver["readyz_url"] is None
    assert apiserver["manifest_path"] == "/etc/kubernetes/manifests/no-such-apiserver.yaml"
    item = run.task_results(wrong, "cp1")[-1]
    assert item["status"] == "ignored"
    message = item["result"]["msg"]
    assert "No kube-apiserver container in /etc/kubernetes/manifests/etcd.yaml on cp1" in message
    assert "apiserver_manifest_path" in message
