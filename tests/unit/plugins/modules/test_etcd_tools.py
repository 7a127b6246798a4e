# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""etcd_tools with external etcd: no etcd.yaml on the control plane, the members say the cluster's version."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.kubeops.etcd.plugins.modules import etcd_tools

from unit_helpers import FIXTURES, fakes, run_module

EXTERNAL_SERVERS = ['https://192.0.2.21:2379', 'https://192.0.2.22:2379', 'https://192.0.2.23:2379']


@pytest.fixture
def node(tmp_path, tls):
    """A control plane of an external etcd cluster: kube-apiserver.yaml only, its etcd client files from tls."""
    with open(os.path.join(FIXTURES, 'manifests', 'kubeadm-kube-apiserver.yaml')) as handle:
        text = handle.read()
    text = text.replace('--etcd-servers=https://127.0.0.1:2379', '--etcd-servers=%s' % ','.join(EXTERNAL_SERVERS))
    text = text.replace('/etc/kubernetes/pki/etcd/ca.crt', tls['cacert'])
    text = text.replace('/etc/kubernetes/pki/apiserver-etcd-client.crt', tls['cert'])
    text = text.replace('/etc/kubernetes/pki/apiserver-etcd-client.key', tls['key'])
    apiserver = tmp_path / 'kube-apiserver.yaml'
    apiserver.write_text(text)
    return {'tmp': tmp_path, 'tls': tls, 'apiserver': str(apiserver)}


def external_args(node, fake=None, **more):
    args = dict(topology='external', purpose='backup', apiserver_manifest_path=node['apiserver'],
                manifest_path=str(node['tmp'] / 'etcd.yaml'), crictl_path=str(node['tmp'] / 'no-crictl'))
    args.update(fake.path_args() if fake else {})
    args.update(more)
    return dict((key, value) for key, value in args.items() if value is not None)


def lowest_reported(version):
    versions = [entry['Status']['version'] for entry in json.loads(fakes.read(version, 'endpoint_status.stdout'))]
    return min(versions, key=lambda text: tuple(int(part) for part in text.split('.')))


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_external_version_comes_from_the_members_through_the_api_servers_flags(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    ok, result = run_module(etcd_tools, external_args(node, fake))
    assert ok, result
    assert result['etcd_version'] == lowest_reported(version)
    assert result['version_source'] == 'the lowest version the members at %s report' % ', '.join(EXTERNAL_SERVERS)
    assert result['source'] == 'host' and result['etcdctl'] == fake.paths['etcdctl']
    assert result['image'] is None and result['container_id'] is None and result['container_exec'] is None
    assert result['module_options']['tools_source'] == 'host' and result['module_options']['crictl_path'] is None
    assert result['module_options']['etcdctl_path'] == fake.paths['etcdctl']
    status = [call['argv'] for call in fake.calls('etcdctl') if 'status' in call['argv']]
    assert status == [['--endpoints=%s' % ','.join(EXTERNAL_SERVERS), '--cacert=%s' % node['tls']['cacert'],
                       '--cert=%s' % node['tls']['cert'], '--key=%s' % node['tls']['key'],
                       'endpoint', 'status', '-w', 'json']]


def test_external_etcd_version_option_is_used_without_asking_the_members(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run_module(etcd_tools, external_args(node, fake, etcd_version='3.5.30'))
    assert ok, result
    assert result['etcd_version'] == '3.5.30' and result['version_source'] == 'the etcd_version option'
    assert [call for call in fake.calls('etcdctl') if 'status' in call['argv']] == []


def test_external_members_that_do_not_answer_fail_naming_them_and_the_fix(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    fake.scenario('all_down')
    ok, result = run_module(etcd_tools, external_args(node, fake))
    assert not ok
    assert 'No member of the external etcd cluster answered' in result['msg']
    assert EXTERNAL_SERVERS[0] in result['msg'] and node['apiserver'] in result['msg']
    assert 'etcd_version' in result['msg']


def test_external_without_etcdctl_on_the_host_says_to_install_it_or_set_the_version(node, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False, opt_dirs=None: None)
    ok, result = run_module(etcd_tools, external_args(node))
    assert not ok
    assert result['msg'].startswith('No etcdctl on ') and 'set etcd_version' in result['msg']
    assert EXTERNAL_SERVERS[0] in result['msg']


def test_external_without_kube_apiserver_yaml_fails_naming_it(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    os.remove(node['apiserver'])
    ok, result = run_module(etcd_tools, external_args(node, fake))
    assert not ok and node['apiserver'] in result['msg'] and 'control plane' in result['msg']
