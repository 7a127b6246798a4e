# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils import parsers

from unit_helpers import fakes


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_member_list_keeps_uint64_ids_exact(version):
    raw = json.loads(fakes.read(version, 'member_list.stdout'))
    parsed = parsers.parse_member_list(fakes.read(version, 'member_list.stdout'))
    assert parsed['cluster_id'] == raw['header']['cluster_id']
    assert [member['id'] for member in parsed['members']] == [member['ID'] for member in raw['members']]
    assert sorted(member['name'] for member in parsed['members']) in (['m1', 'm2', 'm3'], ['cp1', 'cp2', 'cp3'])
    for member in parsed['members']:
        assert isinstance(member['id'], int)
        assert member['peer_urls'] and member['client_urls']


def test_member_ids_above_2_to_the_53_survive_parsing():
    # 18057175601458760684 (from the 3.4.23 capture) is not representable as a float.
    parsed = parsers.parse_member_list(fakes.read('3.4.23', 'member_list.stdout'))
    ids = [member['id'] for member in parsed['members']]
    assert 18057175601458760684 in ids
    assert float(18057175601458760684) != 18057175601458760684


def test_member_id_hex_matches_etcdctl_table_output():
    # The same member list printed by etcdctl 3.5.30 as JSON and as a table.
    parsed = parsers.parse_member_list(fakes.read('3.5.30', 'member_list_table_pair.json'))
    table_ids = {}
    for line in fakes.read('3.5.30', 'member_list_table_pair.table').splitlines():
        cells = [cell.strip() for cell in line.strip('\u2502|').split('\u2502')]
        if len(cells) >= 3 and cells[1] == 'started':
            table_ids[cells[2]] = cells[0]
    assert len(table_ids) == 3
    for member in parsed['members']:
        assert parsers.member_id_hex(member['id']) == table_ids[member['name']]


@pytest.mark.parametrize('value, expected', [(1, '1'), (0xabc, 'abc'), (2 ** 64 - 1, 'f' * 16), (None, None)])
def test_member_id_hex_is_lowercase_unpadded(value, expected):
    assert parsers.member_id_hex(value) == expected


def test_learner_flag_from_36_member_list():
    parsed = parsers.parse_member_list(fakes.read('3.6-upstream', 'member_list.stdout'))
    learners = [member['name'] for member in parsed['members'] if member['is_learner']]
    assert learners == ['cp3']


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_endpoint_status_finds_exactly_the_leader(version):
    statuses = parsers.parse_endpoint_status(fakes.read(version, 'endpoint_status.stdout'))
    endpoint, member_id = fakes.expected_leader(version)
    leaders = [status for status in statuses if status['is_leader']]
    assert [(status['endpoint'], status['member_id']) for status in leaders] == [(endpoint, member_id)]
    assert len(statuses) == 3
    for status in statuses:
        assert status['revision'] > 0
        assert status['version'].startswith(version.split('-')[0][:3])


def test_endpoint_status_36_fields():
    statuses = parsers.parse_endpoint_status(fakes.read('3.6-upstream', 'endpoint_status.stdout'))
    assert set(status['storage_version'] for status in statuses) == {'3.6.0'}
    assert [status['is_learner'] for status in statuses] == [False, False, True]
    assert statuses[0]['db_size_quota'] == 2147483648


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_endpoint_status_before_36_has_no_storage_version(version):
    statuses = parsers.parse_endpoint_status(fakes.read(version, 'endpoint_status.stdout'))
    assert all(status['storage_version'] is None for status in statuses)


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_endpoint_status_with_a_member_down_lists_the_others_and_the_failure(version):
    statuses = parsers.parse_endpoint_status(fakes.read(version, 'endpoint_status_one_down.stdout'))
    failures = parsers.parse_endpoint_status_failures(fakes.read(version, 'endpoint_status_one_down.stderr'))
    assert len(statuses) == 2
    assert len(failures) == 1
    down = list(failures)[0]
    assert down not in [status['endpoint'] for status in statuses]
    assert 'deadline' in failures[down]


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_endpoint_status_all_down_is_an_empty_list(version):
    assert parsers.parse_endpoint_status(fakes.read(version, 'endpoint_status_all_down.stdout')) == []
    assert len(parsers.parse_endpoint_status_failures(fakes.read(version, 'endpoint_status_all_down.stderr'))) == 3


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_endpoint_health_lowercase_keys(version):
    healths = parsers.parse_endpoint_health(fakes.read(version, 'endpoint_health.stdout'))
    assert len(healths) == 3
    assert all(health['healthy'] and health['error'] is None for health in healths)


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_endpoint_health_reports_the_unhealthy_member_error(version):
    healths = parsers.parse_endpoint_health(fakes.read(version, 'endpoint_health_one_down.stdout'))
    unhealthy = [health for health in healths if not health['healthy']]
    assert len(unhealthy) == 1
    assert unhealthy[0]['error'] == 'context deadline exceeded'


@pytest.mark.parametrize('version, tool', [
    (version, tool) for version in fakes.ALL_SHAPES for tool in ('etcdctl', 'etcdutl')
    if fakes.has_output(version, 'snapshot_status_%s.stdout' % tool)])
def test_snapshot_status(version, tool):
    raw = json.loads(fakes.read(version, 'snapshot_status_%s.stdout' % tool))
    status = parsers.parse_snapshot_status(fakes.read(version, 'snapshot_status_%s.stdout' % tool))
    assert status['hash'] == raw['hash']
    assert status['revision'] == raw['revision'] > 0
    assert status['total_key'] == raw['totalKey']
    assert status['total_size'] == raw['totalSize']
    assert status['version'] == ('3.6.0' if version.startswith('3.6') else None)


@pytest.mark.parametrize('text', ['', 'Error: invalid database', '{"revision": 3}', '[1, 2]'])
def test_snapshot_status_rejects_non_status_output(text):
    with pytest.raises(EtcdModuleError):
        parsers.parse_snapshot_status(text)


def test_load_json_tolerates_a_notice_line_before_the_document():
    assert parsers.load_json('Deprecated: something\n{"a": 1}', 'x') == {'a': 1}


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_parse_version_output_of_every_tool(version):
    expected = version.split('-')[0] if not version.startswith('3.6') else '3.6.5'
    for tool in fakes.tools_of(version):
        assert parsers.parse_version_output(fakes.read(version, '%s_version.stdout' % tool)) == expected


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_parse_version_output_of_etcd_server(version):
    assert parsers.parse_version_output(fakes.read(version, 'etcd_version.stdout')) == version


@pytest.mark.parametrize('text', ['', 'command not found', 'API version: 3.5'])
def test_parse_version_output_unknown(text):
    assert parsers.parse_version_output(text) is None


@pytest.mark.parametrize('version, expected', [
    ('3.5.0', 'data-inconsistency'), ('3.5.1', 'data-inconsistency'), ('3.5.2', 'data-inconsistency'),
    ('3.5.3', 'production-ready'), ('3.5.5', 'production-ready'), ('3.4.21', 'production-ready'),
    ('3.3.17', 'production-ready'),
    ('3.5.6', None), ('3.4.22', None), ('3.4.23', None), ('3.5.30', None), ('3.6.5', None), (None, None), ('x', None),
])
def test_version_warnings(version, expected):
    warnings = parsers.version_warnings(version)
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and expected in warnings[0]


def _assess(version, status='endpoint_status', health='endpoint_health', **kwargs):
    member_list = parsers.parse_member_list(fakes.read(version, 'member_list.stdout'))
    statuses = parsers.parse_endpoint_status(fakes.read(version, status + '.stdout'))
    failures = parsers.parse_endpoint_status_failures(
        fakes.read(version, status + '.stderr') if fakes.has_output(version, status + '.stderr') else '')
    healths = parsers.parse_endpoint_health(fakes.read(version, health + '.stdout'))
    return parsers.assess_cluster(member_list, statuses, healths, failures, **kwargs)


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_assess_healthy_cluster(version):
    cluster = _assess(version, expected_members=['m1', 'm2', 'm3'], min_revision=51)
    endpoint, member_id = fakes.expected_leader(version)
    assert cluster['healthy'] is True
    assert cluster['problems'] == []
    assert cluster['leader'] == '%x' % member_id
    assert cluster['leader_client_url'] == endpoint
    assert cluster['leader_name'] == fakes.member_names(version)[member_id]
    assert cluster['revision'] == 51
    assert cluster['cluster_id'] == '%x' % json.loads(fakes.read(version, 'member_list.stdout'))['header']['cluster_id']
    assert len(cluster['endpoints']) == 3 and all(endpoint['healthy'] for endpoint in cluster['endpoints'])


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_assess_member_down(version):
    cluster = _assess(version, status='endpoint_status_one_down', health='endpoint_health_one_down')
    assert cluster['healthy'] is False
    assert len(cluster['problems']) == 1
    assert cluster['problems'][0].startswith('member m3 is unreachable')
    assert cluster['leader_name'] in ('m1', 'm2')
    down = [endpoint for endpoint in cluster['endpoints'] if not endpoint['healthy']]
    assert len(down) == 1 and 'deadline' in down[0]['error']


def test_assess_expectations_do_not_change_healthy():
    cluster = _assess('3.5.30', expected_members=['m1', 'm2', 'm4'], min_revision=100)
    assert cluster['healthy'] is True
    assert cluster['problems'] == [
        'expected members missing: m4',
        'unexpected members present: m3',
        'revision 51 is below the expected minimum 100',
    ]


def test_assess_learner_is_a_problem():
    cluster = _assess('3.6-upstream')
    assert cluster['problems'] == ['member cp3 is a learner, not a voting member']
    assert cluster['leader_name'] == 'cp1'


def test_assess_no_leader():
    member_list = parsers.parse_member_list(fakes.read('3.5.30', 'member_list.stdout'))
    statuses = parsers.parse_endpoint_status(fakes.read('3.5.30', 'endpoint_status.stdout'))
    for status in statuses:
        status['leader'] = 0
        status['is_leader'] = False
    cluster = parsers.assess_cluster(member_list, statuses, [])
    assert cluster['healthy'] is False
    assert cluster['leader'] is None
    assert any(problem.startswith('no leader') for problem in cluster['problems'])


def test_assess_two_leaders():
    member_list = parsers.parse_member_list(fakes.read('3.5.30', 'member_list.stdout'))
    statuses = parsers.parse_endpoint_status(fakes.read('3.5.30', 'endpoint_status.stdout'))
    for status in statuses[:2]:
        status['leader'] = status['member_id']
        status['is_leader'] = True
    cluster = parsers.assess_cluster(member_list, statuses, [])
    assert cluster['healthy'] is False
    assert any(problem.startswith('more than one leader') for problem in cluster['problems'])
    assert any(problem.startswith('members disagree about the leader') for problem in cluster['problems'])


def test_assess_unstarted_member():
    member_list = parsers.parse_member_list(fakes.read('3.5.30', 'member_list.stdout'))
    member_list['members'].append({'id': 0x1234, 'name': '', 'peer_urls': ['http://x:2380'], 'client_urls': [],
                                   'is_learner': False})
    statuses = parsers.parse_endpoint_status(fakes.read('3.5.30', 'endpoint_status.stdout'))
    cluster = parsers.assess_cluster(member_list, statuses, [])
    assert cluster['problems'] == ['member 1234 (1234) has not started: it has no name or client URLs']


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_assess_a_tolerated_member_down_leaves_a_healthy_quorum(version):
    cluster = _assess(version, status='endpoint_status_one_down', health='endpoint_health_one_down',
                      expected_members=['m1', 'm2', 'm3'], tolerate_down=['m3'])
    assert cluster['healthy'] is True and cluster['problems'] == []
    assert cluster['tolerated_down'] == ['m3']
    assert cluster['leader_name'] in ('m1', 'm2')
    # tolerating a member that is up changes nothing; tolerating the two others would leave no quorum
    up = _assess(version, tolerate_down=['m3'])
    assert up['healthy'] is True and up['tolerated_down'] == []
    assert 'tolerated_down' not in _assess(version)


def test_assess_tolerating_a_majority_down_is_no_quorum():
    member_list = {'cluster_id': 1, 'members': [
        {'id': i, 'name': 'm%d' % i, 'peer_urls': ['https://10.0.0.%d:2380' % i],
         'client_urls': ['https://10.0.0.%d:2379' % i], 'is_learner': False} for i in (1, 2, 3)]}
    statuses = [{'endpoint': 'https://10.0.0.1:2379', 'member_id': 1, 'leader': 1, 'is_leader': True, 'revision': 5,
                 'db_size': 1, 'version': '3.5.30', 'raft_term': 2, 'cluster_id': 1, 'errors': []}]
    cluster = parsers.assess_cluster(member_list, statuses, [], {'https://10.0.0.2:2379': 'refused',
                                                                 'https://10.0.0.3:2379': 'refused'},
                                     tolerate_down=['m2', 'm3'])
    assert cluster['healthy'] is False
    assert cluster['problems'] == ['only 1 of 3 voting members are up (m2, m3 down): no quorum']


def test_a_tolerated_member_answering_as_a_member_of_another_cluster_is_down_not_a_split():
    member_list = {'cluster_id': 1, 'members': [
        {'id': i, 'name': 'm%d' % i, 'peer_urls': ['https://10.0.0.%d:2380' % i],
         'client_urls': ['https://10.0.0.%d:2379' % i], 'is_learner': False} for i in (1, 2, 3)]}

    def status(i, member_id, cluster_id, leader):
        return {'endpoint': 'https://10.0.0.%d:2379' % i, 'member_id': member_id, 'leader': leader,
                'is_leader': leader == member_id, 'revision': 5, 'db_size': 1, 'version': '3.5.30', 'raft_term': 2,
                'cluster_id': cluster_id, 'errors': []}
    # m2's URL answers for member 0x77 of cluster 9 (a node still on restored data), without a leader.
    statuses = [status(1, 1, 1, 1), status(2, 0x77, 9, 0), status(3, 3, 1, 1)]
    tolerated = parsers.assess_cluster(member_list, statuses, [], tolerate_down=['m1', 'm2', 'm3'])
    assert tolerated['problems'] == [] and tolerated['tolerated_down'] == ['m2']
    # Not tolerated, the same answer is a problem: two clusters behind the endpoints.
    strict = parsers.assess_cluster(member_list, statuses, [])
    assert 'endpoints belong to different clusters: 1, 9' in strict['problems']
