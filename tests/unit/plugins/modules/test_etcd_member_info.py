# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible.module_utils import basic

from ansible_collections.kubeops.etcd.plugins.modules import etcd_member_info

from unit_helpers import FakeSystemd, RESTORE_TOOLS, fakes, kubeadm_apiserver_facts, run_module


MANIFEST = '''apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.11:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.0.0.11:2380
    - --initial-cluster=cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380
    - --initial-cluster-state=existing
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379
    - --name=cp1
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:@IMAGE@
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: @DATA@
      type: DirectoryOrCreate
    name: etcd-data
'''


@pytest.fixture
def node(tmp_path, tls):
    data = tmp_path / 'var-lib-etcd'
    (data / 'member' / 'snap').mkdir(parents=True)
    (data / 'member' / 'snap' / 'db').write_bytes(b'\0' * 8192)
    (data / 'member' / 'wal').mkdir()
    (data / 'member' / 'wal' / '0.wal').write_bytes(b'\0' * 1000)
    os.symlink('/etc/passwd', str(data / 'member' / 'link'))
    os.chmod(str(data), 0o700)
    manifest = tmp_path / 'etcd.yaml'
    return {'tmp': tmp_path, 'data': data, 'manifest': manifest, 'tls': tls}


def write_manifest(node, image='3.5.16-0', data=None):
    node['manifest'].write_text(MANIFEST.replace('@IMAGE@', image).replace('@DATA@', str(data or node['data'])))


def run(args):
    return run_module(etcd_member_info, args)


@pytest.mark.parametrize('version, restore_tool, bump', RESTORE_TOOLS)
def test_describes_member_data_dir_and_tools(node, monkeypatch, module_exits, version, restore_tool, bump):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    write_manifest(node)
    ok, result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert ok and result['changed'] is False
    member = result['member']
    assert member == {
        'name': 'cp1',
        'data_dir': '/var/lib/etcd',
        'data_dir_host_path': str(node['data']),
        'data_volume_name': 'etcd-data',
        'peer_urls': ['https://10.0.0.11:2380'],
        'advertise_client_urls': ['https://10.0.0.11:2379'],
        'listen_client_urls': ['https://127.0.0.1:2379', 'https://10.0.0.11:2379'],
        'initial_cluster': 'cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380',
        'initial_cluster_state': 'existing',
        'cert_file': '/etc/kubernetes/pki/etcd/server.crt',
        'key_file': '/etc/kubernetes/pki/etcd/server.key',
        'trusted_ca_file': '/etc/kubernetes/pki/etcd/ca.crt',
        'peer_cert_file': '/etc/kubernetes/pki/etcd/peer.crt',
        'peer_key_file': '/etc/kubernetes/pki/etcd/peer.key',
        'peer_trusted_ca_file': '/etc/kubernetes/pki/etcd/ca.crt',
        'image': 'registry.k8s.io/etcd:3.5.16-0',
        'image_version': '3.5.16',
        'manifest_path': str(node['manifest']),
        'kind': 'static_pod', 'unit': None, 'units': [], 'user': None, 'group': None, 'data_dir_location': None,
    }
    info = os.stat(str(node['data']))
    assert result['data_dir_stat'] == {
        'exists': True, 'mode': '0700', 'uid': info.st_uid, 'gid': info.st_gid,
        'owner': result['data_dir_stat']['owner'], 'group': result['data_dir_stat']['group'],
        'size_bytes': 8192 + 1000,  # the symlink is not followed
    }
    assert result['data_dir_stat']['owner']
    statvfs = os.statvfs(str(node['tmp']))
    assert abs(result['free_bytes'] - statvfs.f_bavail * statvfs.f_frsize) < 64 * 1024 * 1024
    expected_version = '3.6.5' if version.startswith('3.6') else version
    assert result['tools'] == {
        'etcdctl': fake.paths['etcdctl'],
        'etcdctl_version': expected_version,
        'etcdutl': fake.paths.get('etcdutl'),
        'etcdutl_version': None if version == '3.4.23' else expected_version,
        'restore_tool': restore_tool,
        'supports_bump_revision': bump,
        'source': 'host',
        'container_id': None,
    }
    assert 'cluster' not in result
    assert module_exits == []
    # Without live, nothing talks to etcd.
    assert not [call for call in fake.calls() if 'member' in call['argv'] or 'endpoint' in call['argv']]


def test_missing_data_dir_and_free_space_of_nearest_parent(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node, data=str(node['tmp'] / 'not' / 'yet' / 'etcd'))
    ok, result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert ok
    assert result['data_dir_stat']['exists'] is False and result['data_dir_stat']['mode'] is None
    assert result['free_bytes'] > 0


def test_old_image_warns(node, monkeypatch, module_exits):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node, image='3.5.1-0')
    ok, _result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert ok
    assert len(module_exits) == 1
    assert str(node['manifest']) in module_exits[0] and 'data-inconsistency' in module_exits[0]


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_live_adds_the_cluster(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    write_manifest(node)
    ok, result = run(dict(node['tls'], manifest_path=str(node['manifest']), live=True, **fake.path_args()))
    assert ok
    assert result['cluster']['healthy'] is True
    assert result['cluster']['leader'] == '%x' % fakes.expected_leader(version)[1]
    # Endpoints come from the manifest's --advertise-client-urls.
    assert fake.calls('etcdctl')[-3]['argv'][0] == '--endpoints=https://10.0.0.11:2379'


def test_live_with_unreachable_cluster_reports_instead_of_failing(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    fake.scenario('member_list_fails')
    write_manifest(node)
    ok, result = run(dict(node['tls'], manifest_path=str(node['manifest']), live=True, **fake.path_args()))
    assert ok and result['cluster']['healthy'] is False
    assert 'context deadline exceeded' in result['cluster']['problems'][0]


def test_missing_manifest_fails_naming_it(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(dict(manifest_path=str(node['tmp'] / 'nope.yaml'), **fake.path_args()))
    assert not ok and str(node['tmp'] / 'nope.yaml') in result['msg']


def test_no_tools_installed_is_reported_not_fatal(node, monkeypatch):
    write_manifest(node)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False, opt_dirs=None: None)
    ok, result = run(dict(manifest_path=str(node['manifest'])))
    assert ok
    assert result['tools'] == {'etcdctl': None, 'etcdctl_version': None, 'etcdutl': None, 'etcdutl_version': None,
                               'restore_tool': None, 'supports_bump_revision': False, 'source': 'host',
                               'container_id': None}


APISERVER_FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'manifests')


def copy_apiserver_fixture(name, dest):
    with open(os.path.join(APISERVER_FIXTURES, name), 'rb') as handle:
        dest.write_bytes(handle.read())


def test_apiserver_is_read_from_kube_apiserver_yaml_beside_the_etcd_manifest(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    copy_apiserver_fixture('kubeadm-kube-apiserver.yaml', node['tmp'] / 'kube-apiserver.yaml')
    ok, result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert ok
    assert result['apiserver'] == kubeadm_apiserver_facts(str(node['tmp'] / 'kube-apiserver.yaml'))


def test_apiserver_manifest_path_option_ipv6_and_encryption_config(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    other = node['tmp'] / 'elsewhere.yaml'
    copy_apiserver_fixture('kube-apiserver-ipv6-encryption.yaml', other)
    ok, result = run(dict(manifest_path=str(node['manifest']), apiserver_manifest_path=str(other),
                          **fake.path_args()))
    assert ok
    apiserver = result['apiserver']
    assert apiserver['manifest_path'] == str(other) and apiserver['present'] is True
    assert apiserver['readyz_url'] == 'https://[fd00:10::11]:8443/readyz'
    assert apiserver['encryption_provider_config'] == '/etc/kubernetes/enc/encryption-config.yaml'


def test_no_kube_apiserver_yaml_is_reported_as_absent(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    ok, result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert ok
    assert result['apiserver']['present'] is False
    assert result['apiserver']['manifest_path'] == str(node['tmp'] / 'kube-apiserver.yaml')
    assert result['apiserver']['readyz_url'] is None and result['apiserver']['etcd_servers'] == []


def test_broken_kube_apiserver_yaml_fails_naming_file_and_fix(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    (node['tmp'] / 'kube-apiserver.yaml').write_text('kind: Pod\nspec: {containers: [\n')
    ok, result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert not ok
    assert str(node['tmp'] / 'kube-apiserver.yaml') in result['msg'] and 'is not valid YAML' in result['msg']
    assert 'apiserver_manifest_path' in result['msg']


def test_free_space_of_each_path_at_its_nearest_existing_directory(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    existing = node['data']
    missing = node['tmp'] / 'not' / 'yet' / 'etcd-restored'
    a_file = node['data'] / 'member' / 'snap' / 'db'
    paths = [str(existing), str(missing), str(a_file)]
    ok, result = run(dict(manifest_path=str(node['manifest']), free_space_paths=paths, **fake.path_args()))
    assert ok
    assert [entry['path'] for entry in result['free_space']] == paths
    assert [entry['checked_path'] for entry in result['free_space']] == [
        str(existing), str(node['tmp']), str(node['data'] / 'member' / 'snap')]
    device = os.stat(str(node['tmp'])).st_dev
    statvfs = os.statvfs(str(node['tmp']))
    for entry in result['free_space']:
        assert entry['device'] == device
        assert abs(entry['free_bytes'] - statvfs.f_bavail * statvfs.f_frsize) < 64 * 1024 * 1024
    # The free_bytes key keeps its own rule: the filesystem of the data dir's parent.
    assert abs(result['free_bytes'] - statvfs.f_bavail * statvfs.f_frsize) < 64 * 1024 * 1024


def test_free_space_of_a_path_on_another_filesystem_has_its_device(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    ok, result = run(dict(manifest_path=str(node['manifest']), free_space_paths=['/proc/self', str(node['tmp'])],
                          **fake.path_args()))
    assert ok
    proc, tmp = result['free_space']
    assert proc['device'] == os.stat('/proc').st_dev != tmp['device'] == os.stat(str(node['tmp'])).st_dev


def test_relative_free_space_path_is_refused(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    ok, result = run(dict(manifest_path=str(node['manifest']), free_space_paths=['var/lib'], **fake.path_args()))
    assert not ok and 'free_space_paths entry var/lib is not an absolute path' in result['msg']


# External etcd: this control plane has no etcd.yaml, only kube-apiserver.yaml pointing at the etcd hosts.
EXTERNAL_SERVERS = ['https://192.0.2.21:2379', 'https://192.0.2.22:2379', 'https://192.0.2.23:2379']


def write_external_apiserver(node):
    """kubeadm-kube-apiserver.yaml with --etcd-servers on three etcd hosts and --etcd-* files from the tls fixture."""
    with open(os.path.join(APISERVER_FIXTURES, 'kubeadm-kube-apiserver.yaml')) as handle:
        text = handle.read()
    text = text.replace('--etcd-servers=https://127.0.0.1:2379', '--etcd-servers=%s' % ','.join(EXTERNAL_SERVERS))
    text = text.replace('/etc/kubernetes/pki/etcd/ca.crt', node['tls']['cacert'])
    text = text.replace('/etc/kubernetes/pki/apiserver-etcd-client.crt', node['tls']['cert'])
    text = text.replace('/etc/kubernetes/pki/apiserver-etcd-client.key', node['tls']['key'])
    (node['tmp'] / 'kube-apiserver.yaml').write_text(text)


def external_args(node, fake, **more):
    return dict(manifest_path=str(node['manifest']), etcd_group='etcd', etcd_group_hosts=['etcd1', 'etcd2', 'etcd3'],
                **dict(fake.path_args(), **more))


def test_stacked_by_default_reports_its_topology(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_manifest(node)
    ok, result = run(dict(manifest_path=str(node['manifest']), **fake.path_args()))
    assert ok and result['topology']['name'] == 'stacked' and result['member']['name'] == 'cp1'


def test_external_etcd_needs_no_etcd_manifest_and_reads_the_api_server(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_external_apiserver(node)
    ok, result = run(external_args(node, fake, free_space_paths=[str(node['tmp'])]))
    assert ok, result
    assert result['topology']['name'] == 'external' and result['topology']['etcd_hosts'] == ['etcd1', 'etcd2', 'etcd3']
    assert result['member'] is None and result['data_dir_stat'] is None and result['free_bytes'] is None
    assert result['data_dir_free_space'] is None and result['free_space'][0]['path'] == str(node['tmp'])
    apiserver = result['apiserver']
    assert apiserver['present'] is True and apiserver['etcd_servers'] == EXTERNAL_SERVERS
    assert (apiserver['etcd_cafile'], apiserver['etcd_certfile'], apiserver['etcd_keyfile']) == (
        node['tls']['cacert'], node['tls']['cert'], node['tls']['key'])
    assert result['tools']['etcdctl'] == fake.paths['etcdctl'] and 'cluster' not in result
    # Without live the cluster is not asked: etcdctl/etcdutl only say their versions.
    assert fake.commands() and all(command == ['version'] for command in fake.commands())


def test_external_etcd_live_queries_the_cluster_through_the_api_servers_flags(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    write_external_apiserver(node)
    ok, result = run(external_args(node, fake, live=True))
    assert ok and result['cluster']['healthy'] is True
    member_list = [call for call in fake.calls('etcdctl') if 'member' in call['argv']][0]['argv']
    assert member_list[:4] == ['--endpoints=%s' % ','.join(EXTERNAL_SERVERS), '--cacert=%s' % node['tls']['cacert'],
                               '--cert=%s' % node['tls']['cert'], '--key=%s' % node['tls']['key']]


def test_external_etcd_without_kube_apiserver_yaml_fails_saying_where_to_run(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(external_args(node, fake))
    assert not ok
    assert str(node['tmp'] / 'kube-apiserver.yaml') in result['msg'] and 'Run this on a control plane' in result['msg']


# External etcd run by systemd: the member comes from the unit when the host has no etcd.yaml (units option).
ETCD_UNIT = '''[Service]
User=etcd
ExecStart=@ETCD@ --name=etcd1 --data-dir=@DATA@ \\
  --listen-client-urls=https://10.0.0.21:2379 --advertise-client-urls=https://10.0.0.21:2379 \\
  --initial-advertise-peer-urls=https://10.0.0.21:2380 --cert-file=/etc/etcd/pki/server.crt \\
  --key-file=/etc/etcd/pki/server.key --trusted-ca-file=/etc/etcd/pki/ca.crt
'''
EVENTS_UNIT = '''[Service]
ExecStart=@ETCD@ --name=events1 --data-dir=/var/lib/etcd-events \\
  --listen-client-urls=https://10.0.0.21:2383 --advertise-client-urls=https://10.0.0.21:2383
'''


def etcd_binary(node, version='3.5.16'):
    path = node['tmp'] / 'etcd'
    path.write_text('#!/bin/sh\n[ "$1" = --version ] || exit 2\necho "etcd Version: %s"\necho "Git SHA: x"\n' % version)
    os.chmod(str(path), 0o755)
    return str(path)


def test_an_etcd_host_without_etcd_yaml_is_read_from_the_systemd_unit_with_its_binarys_version(node, monkeypatch):
    systemd = FakeSystemd(node['tmp'], monkeypatch)
    paths = systemd.add('etcd.service', ETCD_UNIT.replace('@ETCD@', etcd_binary(node)).replace('@DATA@', str(node['data'])))
    ok, result = run(dict(manifest_path=str(node['manifest']), units=[]))
    assert ok, result
    member = result['member']
    assert (member['kind'], member['unit'], member['units'], member['user']) == (
        'systemd', 'etcd.service', ['etcd.service'], 'etcd')
    assert member['name'] == 'etcd1' and member['data_dir_host_path'] == str(node['data'])
    assert member['peer_urls'] == ['https://10.0.0.21:2380']
    assert member['image_version'] == '3.5.16' and member['manifest_path'] is None
    assert member['data_dir_location'] == {'kind': 'flag', 'file': paths[0], 'line': 3}
    assert result['data_dir_stat']['exists'] is True and result['data_dir_stat']['mode'] == '0700'


def test_of_two_etcd_units_the_one_serving_the_api_servers_is_read_and_none_serving_names_them_all(node, monkeypatch):
    systemd = FakeSystemd(node['tmp'], monkeypatch)
    binary = etcd_binary(node)
    systemd.add('etcd.service', ETCD_UNIT.replace('@ETCD@', binary).replace('@DATA@', str(node['data'])))
    systemd.add('etcd-events.service', EVENTS_UNIT.replace('@ETCD@', binary))
    ok, result = run(dict(manifest_path=str(node['manifest']), units=[],
                          etcd_servers=['https://10.0.0.21:2379', 'https://10.0.0.22:2379']))
    assert ok, result
    assert result['member']['unit'] == 'etcd.service'
    assert result['member']['units'] == ['etcd-events.service', 'etcd.service']
    ok, result = run(dict(manifest_path=str(node['manifest']), units=[]))
    assert not ok
    assert 'runs several etcd units (etcd-events.service, etcd.service)' in result['msg']
    assert 'etcd_restore_etcd_units' in result['msg']


def test_a_host_that_keeps_etcd_yaml_is_a_static_pod_even_with_units(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.16')
    write_manifest(node)
    ok, result = run(dict(manifest_path=str(node['manifest']), units=['etcd.service'], **fake.path_args()))
    assert ok, result
    assert result['member']['kind'] == 'static_pod' and result['member']['name'] == 'cp1'


def test_an_etcd_host_with_neither_etcd_yaml_nor_an_etcd_unit_fails_saying_so(node, monkeypatch):
    FakeSystemd(node['tmp'], monkeypatch)
    ok, result = run(dict(manifest_path=str(node['manifest']), units=[]))
    assert not ok
    assert result['msg'].startswith('No etcd unit (etcd*.service) is installed on ')
