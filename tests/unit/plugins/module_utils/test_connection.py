# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import connection
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner

from unit_helpers import ETCD_MANIFEST, FIXTURES, FakeModule, fakes


class FakeManifest(object):
    def __init__(self, urls, path='/etc/kubernetes/manifests/etcd.yaml'):
        self.advertise_client_urls = urls
        self.path = path


def params(tls, **overrides):
    values = dict((name, spec.get('default')) for name, spec in connection.connection_argument_spec().items())
    values.update(tls)
    values.update(overrides)
    return values


def test_argument_spec_defaults_follow_kubeadm():
    spec = connection.connection_argument_spec()
    assert spec['cacert']['default'] == '/etc/kubernetes/pki/etcd/ca.crt'
    assert spec['cert']['default'] == '/etc/kubernetes/pki/etcd/healthcheck-client.crt'
    assert spec['key']['default'] == '/etc/kubernetes/pki/etcd/healthcheck-client.key'
    assert spec['manifest_path']['default'] == '/etc/kubernetes/manifests/etcd.yaml'
    assert spec['command_timeout'] == {'type': 'int', 'default': 60}
    assert spec['endpoints'] == {'type': 'list', 'elements': 'str'}
    # The key option is a path, so it is explicitly not a secret.
    assert spec['key']['no_log'] is False
    assert all(spec[name]['type'] == 'path' for name in ('cacert', 'cert', 'key', 'etcdctl_path', 'etcdutl_path'))


def test_argument_spec_is_a_fresh_copy_each_time():
    first = connection.connection_argument_spec()
    first['endpoints']['required'] = True
    assert 'required' not in connection.connection_argument_spec()['endpoints']


def test_resolve_uses_given_endpoints_without_manifest(tls):
    conn = connection.resolve_connection(FakeModule(params(tls, endpoints=['https://a:2379', ' '])))
    assert conn.endpoints == ['https://a:2379']
    assert conn.source == 'endpoints'
    assert conn.args() == ['--endpoints=https://a:2379', '--cacert=%s' % tls['cacert'],
                           '--cert=%s' % tls['cert'], '--key=%s' % tls['key']]
    assert conn.args(['https://b:2379'])[0] == '--endpoints=https://b:2379'


def test_resolve_takes_advertise_client_urls_from_manifest(tls):
    manifest = FakeManifest(['https://10.0.0.11:2379'])
    conn = connection.resolve_connection(FakeModule(params(tls)), manifest)
    assert conn.endpoints == ['https://10.0.0.11:2379']
    assert conn.source == manifest.path
    assert conn.as_dict()['endpoints_source'] == manifest.path


def test_resolve_without_any_endpoint_source(tls):
    with pytest.raises(EtcdModuleError) as caught:
        connection.resolve_connection(FakeModule(params(tls)))
    assert 'set endpoints' in caught.value.msg
    with pytest.raises(EtcdModuleError) as caught:
        connection.resolve_connection(FakeModule(params(tls)), FakeManifest([]))
    assert 'no --advertise-client-urls' in caught.value.msg


@pytest.mark.parametrize('option', ['cacert', 'cert', 'key'])
def test_resolve_names_a_missing_tls_file_and_the_fix(tls, option):
    os.unlink(tls[option])
    with pytest.raises(EtcdModuleError) as caught:
        connection.resolve_connection(FakeModule(params(tls, endpoints=['https://a:2379'])))
    assert tls[option] in caught.value.msg
    assert 'Set %s' % option in caught.value.msg
    assert caught.value.details['file'] == tls[option]


def test_needs_manifest():
    assert connection.needs_manifest(FakeModule({'endpoints': None}))
    assert not connection.needs_manifest(FakeModule({'endpoints': ['https://a:2379']}))


def test_load_manifest_reads_kubeadm_manifest(tmp_path):
    manifest_path = tmp_path / 'etcd.yaml'
    manifest_path.write_text(ETCD_MANIFEST)
    manifest = connection.load_manifest(FakeModule({'manifest_path': str(manifest_path)}))
    assert manifest.advertise_client_urls == ['https://10.0.0.11:2379']


def _query(tmp_path, monkeypatch, tls, version, *scenario):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    fake.scenario(*scenario)
    conn = connection.resolve_connection(FakeModule(params(tls, endpoints=['https://seed:2379'])))
    cluster, raw = connection.query_cluster(Runner(FakeModule({})), fake.paths['etcdctl'], conn,
                                            expected_members=None)
    return fake, cluster, raw


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_query_cluster_one_round_trip_over_every_member(tmp_path, monkeypatch, tls, version):
    fake, cluster, raw = _query(tmp_path, monkeypatch, tls, version)
    commands = fake.commands()
    assert commands == [['member', 'list'], ['endpoint', 'status'], ['endpoint', 'health']]
    member_urls = sorted(url for member in raw['member_list']['members'] for url in member['client_urls'])
    calls = fake.calls('etcdctl')
    assert calls[0]['argv'][0] == '--endpoints=https://seed:2379'
    for call in calls[1:]:
        assert sorted(call['argv'][0][len('--endpoints='):].split(',')) == member_urls
    endpoint, member_id = fakes.expected_leader(version)
    assert cluster['leader'] == '%x' % member_id and cluster['leader_client_url'] == endpoint
    if version.startswith('3.6'):
        assert cluster['problems'] == ['member cp3 is a learner, not a voting member']
    else:
        assert cluster['healthy'] is True and cluster['problems'] == []


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_query_cluster_member_down_is_a_problem_not_an_error(tmp_path, monkeypatch, tls, version):
    fake, cluster, raw = _query(tmp_path, monkeypatch, tls, version, 'one_down')
    assert cluster['healthy'] is False
    assert [problem.split(' (')[0] for problem in cluster['problems']] == ['member m3 is unreachable']
    assert len(raw['statuses']) == 2


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_query_cluster_without_member_list_raises_with_fix(tmp_path, monkeypatch, tls, version):
    with pytest.raises(EtcdModuleError) as caught:
        _query(tmp_path, monkeypatch, tls, version, 'member_list_fails')
    message = caught.value.msg
    assert message.startswith('Listing etcd members at https://seed:2379 failed on ')
    assert 'context deadline exceeded' in message and tls['cacert'] in message


def test_unreachable_cluster_shape_matches_assess_cluster(tmp_path, monkeypatch, tls):
    _fake, cluster, _raw = _query(tmp_path, monkeypatch, tls, '3.5.30')
    assert set(connection.unreachable_cluster('x')) == set(cluster)
    assert connection.unreachable_cluster('why')['problems'] == ['why']


# External etcd: kubeadm's kube-apiserver.yaml pointing at three etcd hosts, with its etcd client files.
EXTERNAL_SERVERS = ['https://192.0.2.21:2379', 'https://192.0.2.22:2379', 'https://192.0.2.23:2379']


def external_apiserver(tmp_path, tls, drop=None):
    """kubeadm-kube-apiserver.yaml with --etcd-servers on the etcd hosts and --etcd-* files from tls."""
    servers = EXTERNAL_SERVERS
    with open(os.path.join(FIXTURES, 'manifests', 'kubeadm-kube-apiserver.yaml')) as handle:
        text = handle.read()
    text = text.replace('--etcd-servers=https://127.0.0.1:2379', '--etcd-servers=%s' % ','.join(servers))
    text = text.replace('/etc/kubernetes/pki/etcd/ca.crt', tls['cacert'])
    text = text.replace('/etc/kubernetes/pki/apiserver-etcd-client.crt', tls['cert'])
    text = text.replace('/etc/kubernetes/pki/apiserver-etcd-client.key', tls['key'])
    if drop:
        text = '\n'.join(line for line in text.splitlines() if drop not in line) + '\n'
    path = tmp_path / 'kube-apiserver.yaml'
    path.write_text(text)
    return connection.load_apiserver_manifest(str(path))


def test_apiserver_connection_takes_etcd_servers_and_the_api_servers_client_certificate(tmp_path, tls):
    conn = connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls))
    assert conn.endpoints == EXTERNAL_SERVERS
    assert (conn.cacert, conn.cert, conn.key) == (tls['cacert'], tls['cert'], tls['key'])
    assert conn.source == str(tmp_path / 'kube-apiserver.yaml')
    assert conn.args() == ['--endpoints=%s' % ','.join(EXTERNAL_SERVERS), '--cacert=%s' % tls['cacert'],
                           '--cert=%s' % tls['cert'], '--key=%s' % tls['key']]


def test_apiserver_connection_given_endpoints_win_over_etcd_servers(tmp_path, tls):
    conn = connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls), [' https://e1:2379 ', ''])
    assert conn.endpoints == ['https://e1:2379'] and conn.source == 'endpoints' and conn.cert == tls['cert']


def test_apiserver_connection_names_a_missing_client_file_and_the_manifest(tmp_path, tls):
    os.remove(tls['key'])
    with pytest.raises(EtcdModuleError) as caught:
        connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls))
    assert '--etcd-keyfile %s' % tls['key'] in caught.value.msg and 'does not exist' in caught.value.msg
    assert str(tmp_path / 'kube-apiserver.yaml') in caught.value.msg


def test_apiserver_connection_refuses_https_servers_without_a_client_certificate(tmp_path, tls):
    with pytest.raises(EtcdModuleError) as caught:
        connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls, drop='--etcd-certfile'))
    assert 'has no --etcd-certfile' in caught.value.msg


def test_apiserver_connection_without_etcd_servers_says_to_set_endpoints(tmp_path, tls):
    with pytest.raises(EtcdModuleError) as caught:
        connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls, drop='--etcd-servers'))
    assert 'has no --etcd-servers' in caught.value.msg and 'set endpoints' in caught.value.msg


def test_missing_apiserver_manifest_says_where_external_backups_run(tmp_path):
    with pytest.raises(EtcdModuleError) as caught:
        connection.load_apiserver_manifest(str(tmp_path / 'kube-apiserver.yaml'))
    assert str(tmp_path / 'kube-apiserver.yaml') in caught.value.msg and 'Run this on a control plane' in caught.value.msg


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_endpoint_versions_are_what_every_member_reports(tmp_path, monkeypatch, tls, version):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    conn = connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls))
    versions, unreachable = connection.endpoint_versions(Runner(FakeModule({})), fake.paths['etcdctl'], conn)
    expected = [entry['Status']['version'] for entry in json.loads(fakes.read(version, 'endpoint_status.stdout'))]
    assert versions == expected and unreachable == {}
    assert fake.commands() == [['endpoint', 'status']]
    assert fake.calls('etcdctl')[0]['argv'][0] == '--endpoints=%s' % ','.join(EXTERNAL_SERVERS)


def test_endpoint_versions_lists_members_that_did_not_answer(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    fake.scenario('all_down')
    conn = connection.resolve_apiserver_connection(external_apiserver(tmp_path, tls))
    versions, unreachable = connection.endpoint_versions(Runner(FakeModule({})), fake.paths['etcdctl'], conn)
    assert versions == [] and unreachable
