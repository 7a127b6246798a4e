# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_cluster_health

from unit_helpers import ETCD_MANIFEST, fakes, run_module


def run(args):
    return run_module(etcd_cluster_health, args)


def health_args(tls, fake, **overrides):
    args = dict(tls, endpoints=['https://seed:2379'], **fake.path_args())
    args.update(overrides)
    return dict((key, value) for key, value in args.items() if value is not None)


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_healthy_cluster(tmp_path, monkeypatch, tls, module_exits, version):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    ok, result = run(health_args(tls, fake, expected_members=['m1', 'm2', 'm3'], min_revision=51))
    assert ok and result['changed'] is False
    cluster = result['cluster']
    leader_endpoint, leader_id = fakes.expected_leader(version)
    member_list = json.loads(fakes.read(version, 'member_list.stdout'))
    assert cluster['healthy'] is True and cluster['problems'] == []
    assert cluster['leader'] == '%x' % leader_id
    assert cluster['leader_name'] == fakes.member_names(version)[leader_id]
    assert cluster['leader_client_url'] == leader_endpoint
    assert cluster['cluster_id'] == '%x' % member_list['header']['cluster_id']
    assert sorted(member['id'] for member in cluster['members']) == sorted('%x' % m['ID'] for m in member_list['members'])
    assert cluster['revision'] == 51
    assert [endpoint['is_leader'] for endpoint in cluster['endpoints']].count(True) == 1
    assert all(endpoint['version'] == version for endpoint in cluster['endpoints'])
    assert result['attempts'] == 1
    assert ('data-inconsistency' in ' '.join(module_exits)) is (version == '3.5.1')


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_member_down_fails_with_the_problem(tmp_path, monkeypatch, tls, version):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    fake.scenario('one_down')
    ok, result = run(health_args(tls, fake))
    assert not ok
    assert 'is not as expected after 1 attempt(s)' in result['msg'] and 'member m3 is unreachable' in result['msg']
    assert result['cluster']['healthy'] is False


def test_member_down_reported_without_failing(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    fake.scenario('one_down')
    ok, result = run(health_args(tls, fake, fail_unhealthy=False))
    assert ok and result['cluster']['healthy'] is False
    assert result['cluster']['problems'][0].startswith('member m3 is unreachable')


def test_waits_with_a_cheap_health_probe_and_reads_the_cluster_in_full_once_at_the_end(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    fake.scenario('one_down')
    ok, result = run(health_args(tls, fake, wait_timeout=2))
    assert not ok
    assert result['cluster']['problems'][0].startswith('member m3 is unreachable')
    # A member down fails the probe (endpoint health) every round; the full read (member list, status, health) runs
    # only once, when the wait is over, to report what is wrong.
    assert fake.commands().count(['member', 'list']) == 1
    probes = [c for c in fake.commands() if c[:2] == ['endpoint', 'health']]
    assert len(probes) == result['attempts'] >= 3


def test_after_quorum_after_a_member_still_down_is_tolerated_while_the_others_are_a_quorum(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    fake.scenario('one_down')
    ok, result = run(health_args(tls, fake, expected_members=['m1', 'm2', 'm3'], wait_timeout=30, quorum_after=1))
    assert ok, result
    assert result['cluster']['problems'] == [] and result['cluster']['tolerated_down'] == ['m3']
    # Every member was waited for first: the cheap probe (which wants all of them) ran until quorum_after had passed.
    assert result['attempts'] >= 2
    assert [c for c in fake.commands() if c != ['version']][0][:2] == ['endpoint', 'health']


def test_quorum_after_never_settles_for_less_than_a_quorum(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.4.23')
    fake.scenario('all_down')
    ok, result = run(health_args(tls, fake, expected_members=['m1', 'm2', 'm3'], wait_timeout=2, quorum_after=0))
    assert not ok
    assert result['cluster']['healthy'] is False


def test_quorum_after_needs_the_expected_members(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    ok, result = run(health_args(tls, fake, quorum_after=5))
    assert not ok and 'quorum_after' in result['msg'] and 'expected_members' in result['msg']


def test_wait_ends_at_first_success(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.16')
    ok, result = run(health_args(tls, fake, wait_timeout=30))
    assert ok and result['attempts'] == 1 and result['elapsed_seconds'] < 10


def test_expected_members_and_min_revision(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    ok, result = run(health_args(tls, fake, expected_members=['m1', 'm2'], min_revision=52))
    assert not ok
    assert result['cluster']['healthy'] is True
    assert result['cluster']['problems'] == ['unexpected members present: m3', 'revision 51 is below the expected minimum 52']


def test_all_down_is_unhealthy_not_a_crash(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.4.23')
    fake.scenario('all_down')
    ok, result = run(health_args(tls, fake, fail_unhealthy=False))
    assert ok
    assert result['cluster']['healthy'] is False and result['cluster']['members'] == []
    assert result['cluster']['problems'][0].startswith('Listing etcd members at https://seed:2379 failed')


def test_missing_key_file_fails_naming_it(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    os.unlink(tls['key'])
    ok, result = run(health_args(tls, fake))
    assert not ok and tls['key'] in result['msg'] and 'Set key' in result['msg']
    assert fake.commands() == [['version']]


def test_endpoints_from_kubeadm_manifest(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    manifest = tmp_path / 'etcd.yaml'
    manifest.write_text(ETCD_MANIFEST)
    args = health_args(tls, fake, manifest_path=str(manifest))
    del args['endpoints']
    ok, result = run(args)
    assert ok
    first = fake.calls('etcdctl')[1]
    assert first['argv'][0] == '--endpoints=https://10.0.0.11:2379'


def test_missing_manifest_without_endpoints(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    args = health_args(tls, fake, manifest_path=str(tmp_path / 'missing.yaml'))
    del args['endpoints']
    ok, result = run(args)
    assert not ok and str(tmp_path / 'missing.yaml') in result['msg']


def test_check_mode_is_supported(tmp_path, monkeypatch, tls):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    ok, result = run(dict(health_args(tls, fake), _ansible_check_mode=True))
    assert ok and result['cluster']['healthy'] is True
