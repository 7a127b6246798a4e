"""Outcome of the restore on every control plane (testinfra, over molecule's SSH inventory)."""

import json

import yaml

ETCDCTL = ("etcdctl --endpoints=https://{ip}:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key ")


def etcdctl(host, args):
    ip = host.ansible.get_variables()["ansible_host"]
    return host.check_output(ETCDCTL.format(ip=ip) + args)


def data_dir(host):
    doc = yaml.safe_load(host.file("/etc/kubernetes/manifests/etcd.yaml").content_string)
    return [v["hostPath"]["path"] for v in doc["spec"]["volumes"] if v["name"] == "etcd-data"][0]


def test_manifest_points_at_a_restored_data_dir(host):
    assert data_dir(host).startswith("/var/lib/etcd-restored-")


def test_restored_data_dir_is_private_and_the_old_one_is_kept(host):
    restored = host.file(data_dir(host))
    assert restored.is_directory
    assert restored.mode == 0o700
    assert host.file("/var/lib/etcd/member/snap/db").is_file


def test_member_is_healthy(host):
    health = json.loads(etcdctl(host, "endpoint health -w json"))
    assert health[0]["health"] is True


def test_keys_are_those_of_the_backup(host):
    assert etcdctl(host, "get /kubeops-molecule/in-backup --print-value-only").strip() == "yes"
    assert etcdctl(host, "get /kubeops-molecule/after-backup --print-value-only").strip() == ""


def test_no_manifest_is_left_held(host):
    assert host.file("/etc/kubernetes/kubeops-etcd/held-manifests").listdir() == []
