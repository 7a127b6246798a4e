"""Five control planes whose etcd member names differ from the host names, with the data volume at a
non-default host path: restore, then an API server that does not come up on cp4 (a fault of the lab's
kubelet) rolls all five back."""

import os

import pytest

import pbhelpers as h

NAMES = ["etcd-a", "etcd-b", "etcd-c", "etcd-d", "etcd-e"]
pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 5, "etcd_version": "3.5.30", "ip_base": 65, "member_names": ",".join(NAMES),
                          "data_dir": "/var/lib/etcd-data"}, id="5-nodes-named")], indirect=True)

PREFIX = "/kubeops-pb5/"


@pytest.fixture(scope="module")
def snapshot(lab, run_playbook, tmp_path_factory):
    lab.load(200, 256)
    return h.backup_with_marker(run_playbook, lab, str(tmp_path_factory.mktemp("backups")), PREFIX)


def test_five_named_members_restore_into_siblings_of_their_data_dir(lab, run_playbook, snapshot):
    run = h.restore_round_trip(run_playbook, lab, snapshot, PREFIX)

    result = h.custom_stat(run, "etcd_restore")
    assert sorted(h.members(lab)) == NAMES
    by_host = {m["host"]: m for m in result["members"]}
    for index, host in enumerate(h.hosts(lab)):
        assert by_host[host]["name"] == NAMES[index]
        assert by_host[host]["old_data_dir"] == "/var/lib/etcd-data"
        assert by_host[host]["new_data_dir"].startswith("/var/lib/etcd-data-restored-")
        assert h.manifest_data_dir(lab, host) == by_host[host]["new_data_dir"]
        assert os.path.isfile(lab.node_path(host, "/var/lib/etcd-data/member/snap/db"))
        assert h.readyz(lab, host) == (200, "ok")


def test_five_nodes_roll_back_after_a_failure_once_the_api_servers_are_up(lab, run_playbook, snapshot):
    lab.etcdctl("put", PREFIX + "written-before-the-failed-restore", "must-survive")
    keys_before = h.keys(lab, with_values=True)
    cluster_before = h.cluster_id(lab)
    members_before = h.members(lab)
    manifests_before = {host: {name: h.read_node_file(lab, host, "/etc/kubernetes/manifests/" + name)
                               for name in h.MANIFESTS} for host in h.hosts(lab)}

    run = h.restore_with_fault(run_playbook, lab, snapshot, "cp4", "kube-apiserver", "kube-apiserver cannot start",
                               etcd_restore_pod_timeout=20, etcd_restore_apiserver_timeout=20)

    assert run.rc != 0, run
    message = run.result(h.ROLLED_BACK_TASK, "cp1")["msg"]
    assert message.startswith("etcd restore FAILED on cp4 at step start_apiserver"), message
    assert "ROLLED BACK" in message
    assert h.cluster_id(lab) == cluster_before
    assert h.members(lab) == members_before
    assert h.keys(lab, with_values=True) == keys_before
    for host in h.hosts(lab):
        for name in h.MANIFESTS:
            assert h.read_node_file(lab, host, "/etc/kubernetes/manifests/" + name) == manifests_before[host][name]
        assert h.listdir(lab, host, h.HOLDING_DIR) == []
        assert h.readyz(lab, host) == (200, "ok")
