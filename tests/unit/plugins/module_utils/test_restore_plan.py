# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore planner: every decision and every refusal, from facts shaped like what the modules return."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import restore_plan as planner
from ansible_collections.kubeops.etcd.plugins.module_utils.identity import bootstrap_identity, id_hex

TS = '20261203T040000Z'
SHA = 'a' * 64
SIZE = 20 * 2 ** 20
GiB = 2 ** 30
OPTIONS = {
    'timestamp': TS, 'bump_revision': 1000000000, 'disk_margin_bytes': 256 * 2 ** 20,
    'staging_dir': '/var/lib/kubeops-etcd/restore', 'runs_dir': '/etc/kubernetes/kubeops-etcd/runs',
    'manifests_dir': '/etc/kubernetes/manifests', 'holding_dir': '/etc/kubernetes/kubeops-etcd/held-manifests',
    'restart_kubelet': True,
}
TOOLS = {
    '3.4.23': {'etcdctl': '/usr/bin/etcdctl', 'etcdctl_version': '3.4.23', 'etcdutl': None, 'etcdutl_version': None,
               'restore_tool': 'etcdctl', 'supports_bump_revision': False},
    '3.5.1': {'etcdctl': '/usr/bin/etcdctl', 'etcdctl_version': '3.5.1', 'etcdutl': '/usr/bin/etcdutl',
              'etcdutl_version': '3.5.1', 'restore_tool': 'etcdutl', 'supports_bump_revision': False},
    '3.5.30': {'etcdctl': '/usr/bin/etcdctl', 'etcdctl_version': '3.5.30', 'etcdutl': '/usr/bin/etcdutl',
               'etcdutl_version': '3.5.30', 'restore_tool': 'etcdutl', 'supports_bump_revision': True},
    # etcd 3.6: etcdctl has no snapshot restore/status any more (EtcdTools then reports no restore tool for it).
    '3.6.5': {'etcdctl': '/usr/bin/etcdctl', 'etcdctl_version': '3.6.5', 'etcdutl': '/usr/bin/etcdutl',
              'etcdutl_version': '3.6.5', 'restore_tool': 'etcdutl', 'supports_bump_revision': True},
    '3.6.5-etcdctl-only': {'etcdctl': '/usr/bin/etcdctl', 'etcdctl_version': '3.6.5', 'etcdutl': None,
                           'etcdutl_version': None, 'restore_tool': None, 'supports_bump_revision': False},
    'none': {'etcdctl': None, 'etcdctl_version': None, 'etcdutl': None, 'etcdutl_version': None,
             'restore_tool': None, 'supports_bump_revision': False},
}


def node(index, name=None, version='3.5.30', tools=None, data_dir='/var/lib/etcd', peer_port=2380, client_port=2379,
         free=50 * GiB, same_fs=True, peer_urls=None, apiserver=True):
    ip = '10.0.0.%d' % (10 + index)
    info = {
        'member': {
            'name': name if name is not None else 'cp%d' % index,
            'data_dir': '/var/lib/etcd', 'data_dir_host_path': data_dir,
            'peer_urls': peer_urls if peer_urls is not None else ['https://%s:%d' % (ip, peer_port)],
            'advertise_client_urls': ['https://%s:%d' % (ip, client_port)],
            'image': 'registry.k8s.io/etcd:%s-0' % version, 'image_version': version,
            'manifest_path': '/etc/kubernetes/manifests/etcd.yaml',
        },
        'data_dir_stat': {'exists': True, 'mode': '0700'},
        'free_bytes': free,
        'tools': copy.deepcopy(TOOLS[tools or version]),
        'free_space': [
            {'path': OPTIONS['staging_dir'], 'checked_path': '/var/lib', 'device': 1 if same_fs else 2, 'free_bytes': free},
        ],
        'data_dir_free_space': {'path': data_dir.rsplit('/', 1)[0] or '/', 'checked_path': data_dir.rsplit('/', 1)[0] or '/',
                                'device': 1, 'free_bytes': free},
    }
    if apiserver:
        info['apiserver'] = {'present': True, 'readyz_url': 'https://%s:6443/readyz' % ip, 'secure_port': 6443}
    return {'info': info, 'held': [], 'pods_error': '', 'address': ip}


def cluster(count, **kwargs):
    hosts = ['cp%d' % i for i in range(1, count + 1)]
    return hosts, dict((host, node(i, **kwargs)) for i, host in enumerate(hosts, 1))


def snapshot(**overrides):
    facts = {'kind': 'local', 'host': None, 'path': '/srv/backups/kubernetes-20261203T030000Z-rev500.db',
             'exists': True, 'is_regular': True, 'size': SIZE, 'sha256': SHA, 'has_trailing_hash': True,
             'bolt_error': None, 'metadata_error': None,
             'metadata': {'sha256': SHA, 'size': SIZE, 'revision': 500, 'total_key': 42,
                          'created': '2026-12-03T03:00:00Z', 'cluster_id': 'e07ff96dc481154f', 'etcd_version': '3.5.30',
                          'members': [{'name': 'cp%d' % i, 'peer_urls': ['https://10.0.0.%d:2380' % (10 + i)]}
                                      for i in (1, 2, 3)]}}
    facts.update(overrides)
    return facts


def old_cluster(names, learners=(), unnamed=0, healthy=True, leader=None):
    members = [{'name': n, 'id': '%x' % (i + 1), 'is_learner': n in learners} for i, n in enumerate(names)]
    members += [{'name': '', 'id': 'f%d' % i, 'is_learner': True} for i in range(unnamed)]
    return {'cluster_id': 'e07ff96dc481154f', 'healthy': healthy, 'members': members, 'problems': [], 'revision': 600,
            'leader_name': leader}


def snapshot_of(hosts, nodes, **overrides):
    """A backup of the cluster these nodes form: its metadata records their member names and peer URLs."""
    facts = snapshot(**overrides)
    facts['metadata'] = dict(facts['metadata'], members=[
        {'name': nodes[h]['info']['member']['name'] or 'default', 'peer_urls': nodes[h]['info']['member']['peer_urls']}
        for h in hosts if nodes.get(h, {}).get('info')])
    return facts


def plan_for(hosts, nodes, snap=None, old=None, **options):
    opts = dict(OPTIONS, **options)
    return planner.plan_restore(hosts, nodes, snap or snapshot_of(hosts, nodes), old if old is not None else old_cluster(
        [n['info']['member']['name'] or 'default' for n in nodes.values()]), opts)


def causes(decided):
    return ' | '.join('%s: %s' % (r['host'], r['cause']) for r in decided['refusals'])


@pytest.mark.parametrize('count', [1, 3, 5, 7])
def test_every_member_gets_its_name_the_full_initial_cluster_and_the_ids_etcd_will_compute(count):
    hosts, nodes = cluster(count)
    decided = plan_for(hosts, nodes)
    assert decided['refusals'] == []
    plan = decided['plan']
    expected_ic = ','.join('cp%d=https://10.0.0.%d:2380' % (i, 10 + i) for i in range(1, count + 1))
    assert plan['initial_cluster'] == expected_ic
    assert plan['token'] == 'kubeops-' + TS
    assert plan['names'] == hosts
    for member in plan['members']:
        ids = bootstrap_identity(expected_ic, plan['token'], member['name'], member['peer_urls'])
        assert member['member_id'] == id_hex(ids['member_id'])
        assert plan['cluster_id'] == id_hex(ids['cluster_id'])
        assert member['new_data_dir'] == '/var/lib/etcd-restored-' + TS
        assert member['run_dir'] == '/etc/kubernetes/kubeops-etcd/runs/' + TS
        assert member['prepared_manifest'] == member['run_dir'] + '/etcd.yaml'
        assert member['staged_snapshot'] == '/var/lib/kubeops-etcd/restore/kubernetes-20261203T030000Z-rev500.db'
        assert member['stage_copy'] is True
        assert member['bump_revision'] == 1000000000
    assert plan['min_revision'] == 500 + 1000000000
    assert len(set(m['member_id'] for m in plan['members'])) == count
    assert [m['start_delay'] for m in plan['members']] == [round(0.3 * i, 1) for i in range(count)]


def test_member_names_that_differ_from_host_names_custom_dirs_and_ports():
    hosts = ['node-a', 'node-b', 'node-c']
    nodes = {'node-a': node(1, name='etcd-a', data_dir='/data/etcd', peer_port=12380, client_port=12379),
             'node-b': node(2, name='etcd-b', data_dir='/data/etcd', peer_port=12380, client_port=12379),
             'node-c': node(3, name='etcd-c', data_dir='/data/etcd', peer_port=12380, client_port=12379)}
    decided = plan_for(hosts, nodes, old=old_cluster(['etcd-a', 'etcd-b', 'etcd-c']))
    plan = decided['plan']
    assert plan['initial_cluster'] == ('etcd-a=https://10.0.0.11:12380,etcd-b=https://10.0.0.12:12380,'
                                       'etcd-c=https://10.0.0.13:12380')
    assert plan['endpoints'] == ['https://10.0.0.%d:12379' % i for i in (11, 12, 13)]
    assert [m['new_data_dir'] for m in plan['members']] == ['/data/etcd-restored-' + TS] * 3
    lines = '\n'.join(planner.plan_lines(plan))
    assert 'node-b: member etcd-b id %s (peer https://10.0.0.12:12380)' % plan['members'][1]['member_id'] in lines


def test_a_previous_restore_suffix_is_replaced_not_stacked():
    hosts, nodes = cluster(1, data_dir='/var/lib/etcd-restored-20261101T000000Z')
    plan = plan_for(hosts, nodes)['plan']
    assert plan['members'][0]['new_data_dir'] == '/var/lib/etcd-restored-' + TS


def test_a_manifest_without_name_restores_member_default_and_says_so():
    hosts, nodes = cluster(1, name='')
    decided = plan_for(hosts, nodes, old=old_cluster(['default']))
    assert decided['refusals'] == []
    assert decided['plan']['members'][0]['name'] == 'default'
    assert decided['plan']['initial_cluster'] == 'default=https://10.0.0.11:2380'
    assert any('has no --name' in w and '"default"' in w for w in decided['warnings'])


def test_two_nameless_manifests_collide_on_the_default_name():
    hosts, nodes = cluster(2, name='')
    decided = plan_for(hosts, nodes, old=old_cluster(['default']))
    assert 'cp1, cp2: these control planes all run etcd member "default"' in causes(decided)


def test_mixed_tools_without_bump_support_turn_the_bump_off_everywhere_with_a_warning():
    hosts, nodes = cluster(3)
    nodes['cp2']['info']['tools']['supports_bump_revision'] = False
    decided = plan_for(hosts, nodes)
    plan = decided['plan']
    assert plan['bump_revision'] == 0 and plan['min_revision'] == 500
    assert all(m['bump_revision'] == 0 for m in plan['members'])
    assert any('no revision bump: the restore tool on cp2' in w for w in decided['warnings'])
    assert 'WARNING: no revision bump' in '\n'.join(planner.plan_lines(plan))


@pytest.mark.parametrize('version,tool', [('3.4.23', 'etcdctl'), ('3.5.1', 'etcdutl'), ('3.6.5', 'etcdutl')])
def test_the_restore_tool_of_each_etcd_minor(version, tool):
    hosts, nodes = cluster(3, version=version)
    plan = plan_for(hosts, nodes)['plan']
    assert [m['restore_tool'] for m in plan['members']] == [tool] * 3
    assert plan['bump_revision'] == (1000000000 if TOOLS[version]['supports_bump_revision'] else 0)


def test_etcd_36_with_only_etcdctl_is_refused_because_etcdctl_36_cannot_restore():
    hosts, nodes = cluster(1, version='3.6.5', tools='3.6.5-etcdctl-only')
    decided = plan_for(hosts, nodes)
    assert 'cp1: no etcd restore tool' in causes(decided)
    assert 'install the etcd tools of version 3.6.x' in decided['refusals'][0]['fix']


def test_a_tool_of_another_minor_is_refused_naming_the_tool_to_install():
    hosts, nodes = cluster(3)
    nodes['cp3']['info']['tools'] = copy.deepcopy(TOOLS['3.4.23'])
    decided = plan_for(hosts, nodes)
    assert decided['plan'] is None
    [item] = decided['refusals']
    assert item['host'] == 'cp3'
    assert 'the restore tool is etcdctl 3.4.23, but the cluster runs etcd 3.5.30' in item['cause']
    assert 'install etcdutl 3.5.x' in item['fix'] and 'etcd_restore_etcdutl_path' in item['fix']


def test_a_node_without_tools_is_refused_and_the_others_are_not_named():
    hosts, nodes = cluster(3)
    nodes['cp2']['info']['tools'] = copy.deepcopy(TOOLS['none'])
    decided = plan_for(hosts, nodes)
    assert [r['host'] for r in decided['refusals']] == ['cp2']
    assert 'etcd_restore_etcdutl_path' in decided['refusals'][0]['fix']


def test_learners_in_the_old_cluster_become_voting_members_and_the_plan_says_so():
    hosts, nodes = cluster(3)
    decided = plan_for(hosts, nodes, old=old_cluster(['cp1', 'cp2', 'cp3'], learners=['cp3'], unnamed=1))
    assert decided['refusals'] == []
    assert any('cp3 is a learner' in w for w in decided['warnings'])
    assert any('never started' in w for w in decided['warnings'])


def test_members_of_the_running_cluster_outside_the_play_are_refused():
    hosts, nodes = cluster(2)
    decided = plan_for(hosts, nodes, old=old_cluster(['cp1', 'cp2', 'cp3']))
    assert 'member(s) cp3 of the running cluster are not hosts of this play' in causes(decided)


def test_etcd_stops_last_on_the_old_leader_so_it_does_not_wait_for_a_leadership_hand_over():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes, old=old_cluster(['cp1', 'cp2', 'cp3'], leader='cp2'))['plan']
    assert [m['stop_etcd_last'] for m in plan['members']] == [False, True, False]
    assert [m['stop_etcd_after_closed'] for m in plan['members']] == [
        [], ['https://10.0.0.11:2380', 'https://10.0.0.13:2380'], []]
    assert 'then etcd, everywhere (on cp2, the leader, last)' in '\n'.join(planner.plan_lines(plan))
    # No leader known (cluster down), or a single member: no order.
    plan = plan_for(hosts, nodes, old=old_cluster(['cp1', 'cp2', 'cp3']))['plan']
    assert not any(m['stop_etcd_last'] for m in plan['members'])
    hosts, nodes = cluster(1)
    plan = plan_for(hosts, nodes, old=old_cluster(['cp1'], leader='cp1'))['plan']
    assert plan['members'][0]['stop_etcd_last'] is False


def test_an_unreachable_old_cluster_is_recorded_not_required():
    hosts, nodes = cluster(3)
    unreachable = {'cluster_id': None, 'members': [], 'healthy': False, 'problems': ['connection refused']}
    decided = plan_for(hosts, nodes, old=unreachable)
    assert decided['refusals'] == []
    assert 'current cluster: not reachable (connection refused)' in planner.plan_lines(decided['plan'])


def test_duplicate_peer_urls_and_a_bad_peer_url_are_refused_before_the_stop():
    hosts, nodes = cluster(3)
    nodes['cp2']['info']['member']['peer_urls'] = ['https://10.0.0.11:2380']
    nodes['cp3']['info']['member']['peer_urls'] = ['https://10.0.0.13']
    decided = plan_for(hosts, nodes)
    text = causes(decided)
    assert 'cp1, cp2: both advertise the peer URL https://10.0.0.11:2380' in text
    assert "cp3: /etc/kubernetes/manifests/etcd.yaml: --initial-advertise-peer-urls has 'https://10.0.0.13'" in text


def test_a_manifest_without_peer_urls_is_refused():
    hosts, nodes = cluster(1, peer_urls=[])
    assert 'has no --initial-advertise-peer-urls' in causes(plan_for(hosts, nodes))


def test_free_space_one_rule_counts_the_restored_dir_and_the_staged_copy_on_the_same_filesystem():
    # Enough for the restored dir alone but not for it and the staged copy on the same filesystem.
    needed_dir = int(SIZE * 1.1) + 64 * 2 ** 20
    hosts, nodes = cluster(1, free=needed_dir + SIZE // 2)
    decided = plan_for(hosts, nodes, disk_margin_bytes=0)
    assert 'and the staged copy of the snapshot' in causes(decided)
    # On separate filesystems each has room for its part.
    hosts, nodes = cluster(1, free=needed_dir + SIZE // 2, same_fs=False)
    assert plan_for(hosts, nodes, disk_margin_bytes=0)['refusals'] == []


def test_without_filesystem_facts_the_staged_copy_is_counted_on_the_data_dirs_filesystem():
    # Facts of an older etcd_member_info: only free_bytes beside the data dir; the cautious reading is one filesystem.
    needed_dir = int(SIZE * 1.1) + 64 * 2 ** 20
    hosts, nodes = cluster(1, free=needed_dir + SIZE // 2)
    del nodes['cp1']['info']['free_space']
    del nodes['cp1']['info']['data_dir_free_space']
    decided = plan_for(hosts, nodes, disk_margin_bytes=0)
    assert 'and the staged copy of the snapshot' in causes(decided)
    hosts, nodes = cluster(1, free=needed_dir + SIZE)
    del nodes['cp1']['info']['free_space']
    del nodes['cp1']['info']['data_dir_free_space']
    assert plan_for(hosts, nodes, disk_margin_bytes=0)['refusals'] == []


def test_the_disk_margin_is_part_of_the_rule_and_named_in_the_refusal():
    hosts, nodes = cluster(3, free=GiB)
    decided = plan_for(hosts, nodes, disk_margin_bytes=2 * GiB)
    assert [r['host'] for r in decided['refusals']] == hosts
    assert all('etcd_restore_disk_margin_bytes 2147483648' in r['cause'] for r in decided['refusals'])


def test_static_pods_held_or_duplicated_by_an_interrupted_run_are_refused():
    hosts, nodes = cluster(3)
    nodes['cp1']['held'] = ['etcd.yaml']
    nodes['cp3']['pods_error'] = 'Nothing was moved on cp3: kube-scheduler.yaml is both in /etc/kubernetes/manifests and held'
    text = causes(plan_for(hosts, nodes))
    assert 'cp1: etcd.yaml is already held in /etc/kubernetes/kubeops-etcd/held-manifests' in text
    assert 'cp3: Nothing was moved on cp3: kube-scheduler.yaml is both' in text


def test_a_node_without_facts_is_refused():
    hosts, nodes = cluster(2)
    nodes['cp2'] = {}
    assert 'cp2: no facts were gathered' in causes(plan_for(hosts, nodes, old=old_cluster(['cp1'])))


def test_colliding_member_ids_are_refused_before_the_stop(monkeypatch):
    hosts, nodes = cluster(2)

    def colliding(initial_cluster, token):
        raise ValueError('two members of the initial cluster would get the same ID 1')
    monkeypatch.setattr(planner, 'cluster_member_ids', colliding)
    assert 'the new cluster cannot be formed: two members' in causes(plan_for(hosts, nodes))


def test_every_refusal_is_reported_at_once_with_host_cause_and_fix():
    hosts, nodes = cluster(3, free=GiB)
    nodes['cp2']['info']['tools'] = copy.deepcopy(TOOLS['none'])
    decided = plan_for(hosts, nodes, disk_margin_bytes=2 * GiB)
    text = planner.refusal_text(decided['refusals'])
    first = text.splitlines()[0]
    assert first.startswith('The restore was refused before anything was changed: cp1: only ')
    assert '(and 3 more problems, below)' in first
    assert text.count('\n- ') == 4 and 'Fix: install the etcd tools' in text
    assert text.endswith('Nothing was stopped or changed in the cluster.')


# --- the snapshot ---------------------------------------------------------------------------------

@pytest.mark.parametrize('spec,expected', [
    ('latest', ('latest', None, None)),
    ('cp2:/var/backups/etcd.db', ('node', 'cp2', '/var/backups/etcd.db')),
    ('/srv/a:b.db', ('local', None, '/srv/a:b.db')),
    ('cp9:/x.db', ('local', None, 'cp9:/x.db')),
    ('cp2:relative.db', ('local', None, 'cp2:relative.db')),
    ('s3://bkt/k8s/prod-20261203T010000Z-rev9.db.zst.age', ('s3', 'bkt', 'k8s/prod-20261203T010000Z-rev9.db.zst.age')),
])
def test_snapshot_spec_forms(spec, expected):
    assert planner.parse_snapshot_spec(spec, ['cp1', 'cp2']) == expected


def test_no_snapshot_given_says_how_to_give_one():
    with pytest.raises(ValueError, match='-e snapshot=latest'):
        planner.parse_snapshot_spec(' ', ['cp1'])


def test_latest_is_the_newest_db_with_metadata():
    found = [{'path': '/b/k-1.db', 'mtime': 10}, {'path': '/b/k-1.db.meta.json', 'mtime': 10},
             {'path': '/b/k-2.db', 'mtime': 20}, {'path': '/b/k-2.db.meta.json', 'mtime': 20},
             {'path': '/b/plain-3.db', 'mtime': 30}]
    assert planner.choose_latest(found) == '/b/k-2.db'
    assert planner.choose_latest([{'path': '/b/plain.db', 'mtime': 1}]) is None


@pytest.mark.parametrize('spec', ['s3://', 's3://bkt', 's3://bkt/', 's3://bkt/dir/'])
def test_an_s3_url_must_name_an_object(spec):
    with pytest.raises(ValueError, match='is not an object'):
        planner.parse_snapshot_spec(spec, ['cp1'])


@pytest.mark.parametrize('name,plain,encrypted,compressed', [
    ('k-1.db', 'k-1.db', False, False),
    ('k-1.db.age', 'k-1.db', True, False),
    ('k-1.db.zst.age', 'k-1.db', True, True),
    ('/x/k-1-pki.tar.gz.age', 'k-1-pki.tar.gz', True, False),
])
def test_stored_name_tells_the_plain_name_and_the_metadata(name, plain, encrypted, compressed):
    form = planner.stored_name(name)
    assert (form['plain'], form['encrypted'], form['compressed']) == (plain, encrypted, compressed)
    assert form['metadata'] == plain + '.meta.json'


def test_latest_counts_encrypted_backups_with_their_metadata():
    found = [{'path': '/b/k-1.db', 'mtime': 10}, {'path': '/b/k-1.db.meta.json', 'mtime': 10},
             {'path': '/b/k-2.db.zst.age', 'mtime': 20}, {'path': '/b/k-2.db.meta.json', 'mtime': 20},
             {'path': '/b/k-3.db.age', 'mtime': 30}]
    assert planner.choose_latest(found) == '/b/k-2.db.zst.age'


def test_latest_object_is_the_newest_complete_set():
    objects = [{'key': 'p/k-1.db.age', 'last_modified': '2026-12-01T00:00:00Z'},
               {'key': 'p/k-1.db.meta.json', 'last_modified': '2026-12-01T00:00:01Z'},
               {'key': 'p/k-2.db.age', 'last_modified': '2026-12-02T00:00:00Z'},
               {'key': 'p/k-2.db.meta.json', 'last_modified': '2026-12-02T00:00:01Z'},
               # uploaded, but its metadata (uploaded last) never arrived: incomplete
               {'key': 'p/k-3.db.age', 'last_modified': '2026-12-03T00:00:00Z'},
               {'key': 'p/other.txt', 'last_modified': '2026-12-04T00:00:00Z'}]
    assert planner.choose_latest_object(objects) == 'p/k-2.db.age'
    assert planner.choose_latest_object(objects[4:]) is None


def test_source_of_latest_in_object_storage():
    objects = [{'key': 'p/k-2.db.zst.age', 'last_modified': 2}, {'key': 'p/k-2.db.meta.json', 'last_modified': 3}]
    source = planner.resolve_source('latest', ['cp1'], objects=objects, bucket='bkt', prefix='p/')
    assert source == {'kind': 's3', 'host': None, 'path': None, 'bucket': 'bkt', 'key': 'p/k-2.db.zst.age',
                      'metadata_key': 'p/k-2.db.meta.json', 'encrypted': True, 'compressed': True, 'plain': 'k-2.db'}
    with pytest.raises(ValueError, match=r'^snapshot=latest, but s3://bkt/p/ holds no complete backup'):
        planner.resolve_source('latest', ['cp1'], objects=objects[:1], bucket='bkt', prefix='p/')


def test_source_of_latest_on_the_ops_box_and_of_paths():
    files = [{'path': '/b/k-1.db.age', 'mtime': 1}, {'path': '/b/k-1.db.meta.json', 'mtime': 1}]
    assert planner.resolve_source('latest', ['cp1'], backup_dir_files=files)['path'] == '/b/k-1.db.age'
    assert planner.resolve_source('latest', ['cp1'], backup_dir_files=[])['kind'] == 'latest'
    node = planner.resolve_source('cp1:/x/k.db', ['cp1'])
    assert (node['kind'], node['host'], node['path'], node['encrypted']) == ('node', 'cp1', '/x/k.db', False)


def test_an_encrypted_snapshot_needs_an_identity_and_never_lies_on_a_node():
    with pytest.raises(ValueError, match=r'^/b/k\.db\.age is encrypted with age and no identity was given'):
        planner.resolve_source('/b/k.db.age', ['cp1'], identity_given=False)
    with pytest.raises(ValueError, match=r'^/x/k\.db\.age on cp1 is encrypted'):
        planner.resolve_source('cp1:/x/k.db.age', ['cp1'])


@pytest.mark.parametrize('overrides,expected', [
    ({'path': '/srv/x.db.part'}, 'is a .part file'),
    ({'exists': False}, 'does not exist'),
    ({'is_regular': False}, 'is not a regular file'),
    ({'bolt_error': '/x is truncated: its database needs 8192 bytes'}, 'is not a complete etcd snapshot: /x is truncated'),
    ({'has_trailing_hash': False}, 'does not end with the SHA-256 that etcdctl snapshot save appends'),
    ({'sha256': 'b' * 64}, 'is corrupt or not the file its metadata describes'),
    ({'metadata_error': 'Expecting value: line 1'}, 'cannot be read: Expecting value'),
])
def test_bad_snapshots_are_refused(overrides, expected):
    refusals = planner.check_snapshot(snapshot(**overrides))
    assert refusals and expected in refusals[0]['cause'], refusals


def test_a_plain_snapshot_is_accepted_and_the_plan_says_its_origin_cannot_be_checked():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes, snap=snapshot(metadata=None))['plan']
    assert plan['snapshot']['has_metadata'] is False and plan['snapshot']['revision'] is None
    lines = '\n'.join(planner.plan_lines(plan))
    assert 'its origin cannot be checked against metadata' in lines
    assert 'revision and keys read when staged' in lines


def test_a_snapshot_on_a_node_is_used_in_place_there_and_copied_to_the_others():
    hosts, nodes = cluster(3)
    snap = snapshot(kind='node', host='cp2', path='/var/backups/etcd.db', metadata=None,
                    status={'revision': 77, 'total_key': 9})
    plan = plan_for(hosts, nodes, snap=snap)['plan']
    by_host = dict((m['host'], m) for m in plan['members'])
    assert by_host['cp2']['staged_snapshot'] == '/var/backups/etcd.db' and by_host['cp2']['stage_copy'] is False
    assert by_host['cp1']['staged_snapshot'] == '/var/lib/kubeops-etcd/restore/etcd.db'
    assert by_host['cp1']['stage_copy'] is True
    assert plan['snapshot']['revision'] == 77
    assert 'snapshot /var/backups/etcd.db on cp2: revision 77, 9 keys' in planner.plan_lines(plan)[1]


def test_check_mode_plan_says_so_and_lists_each_member():
    hosts, nodes = cluster(3)
    lines = planner.plan_lines(plan_for(hosts, nodes)['plan'], check_mode=True)
    assert 'CHECK MODE' in lines[0]
    assert sum(1 for line in lines if ': member cp' in line) == 3


# --- prepared members, report, rollback texts -----------------------------------------------------

def prepared_results(plan, **changes):
    results = {}
    for m in plan['members']:
        results[m['host']] = dict({'member_id': m['member_id'], 'cluster_id': plan['cluster_id'], 'snapshot_sha256': SHA,
                                   'snapshot_revision': 500, 'snapshot_total_key': 42, 'revision': 1000000500,
                                   'duration_seconds': 1.5}, **changes.get(m['host'], {}))
    return results


def test_prepared_members_matching_the_plan_pass():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    assert planner.check_prepared(plan, prepared_results(plan))['refusals'] == []


def test_a_prepared_member_with_other_ids_sha_or_revision_is_refused_before_the_stop():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    results = prepared_results(plan, cp1={'member_id': 'ffff'}, cp2={'snapshot_sha256': 'c' * 64},
                               cp3={'snapshot_revision': 499})
    text = ' | '.join('%s: %s' % (r['host'], r['cause']) for r in planner.check_prepared(plan, results)['refusals'])
    assert 'cp1: the prepared member cp1 has id ffff' in text
    assert 'cp2: the staged snapshot' in text and 'has sha256 cccc' in text
    assert 'cp3: the staged snapshot has revision 499; the metadata says 500' in text


def test_a_plain_snapshot_takes_its_revision_from_the_staged_copies_which_must_agree():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes, snap=snapshot(metadata=None))['plan']
    checked = planner.check_prepared(plan, prepared_results(plan))
    assert checked['refusals'] == [] and checked['snapshot'] == {'revision': 500, 'total_key': 42}
    checked = planner.check_prepared(plan, prepared_results(plan, cp3={'snapshot_revision': 501}))
    assert 'the staged copies differ in revision' in checked['refusals'][0]['cause']


def final_cluster(plan, **overrides):
    data = {'cluster_id': plan['cluster_id'], 'revision': 1000000510, 'leader_name': 'cp2', 'healthy': True,
            'members': [{'name': m['name'], 'id': m['member_id']} for m in plan['members']],
            'endpoints': [{'member_id': m['member_id'], 'revision': 1000000510} for m in plan['members']]}
    data.update(overrides)
    return data


def test_the_report_names_every_member_and_the_downtime():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    built = planner.build_report(plan, prepared_results(plan), final_cluster(plan),
                                 {'started': 100.0, 'prepared': 110.0, 'downtime_started': 112.0,
                                  'downtime_ended': 118.5, 'finished': 120.0})
    report = built['report']
    assert report['downtime_seconds'] == 6.5 and report['duration_seconds'] == 20.0 and report['prepare_seconds'] == 10.0
    assert report['cluster_id'] == plan['cluster_id'] and report['old_cluster_id'] == 'e07ff96dc481154f'
    assert [m['revision_now'] for m in report['members']] == [1000000510] * 3
    assert built['lines'][0].endswith('the API servers were down for 6.5 s')
    assert 'cluster ID e07ff96dc481154f -> %s' % plan['cluster_id'] in built['lines'][1]


def test_a_running_cluster_with_other_ids_is_named_a_stale_member():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    problems = planner.verify_identity(plan, final_cluster(plan, cluster_id='dead'))
    assert 'etcd runs as cluster dead' in problems[0] and 'stale member' in problems[-1]
    assert planner.verify_identity(plan, final_cluster(plan)) == []


def test_rollback_texts_name_the_host_step_and_cause_first():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    failures = [{'host': 'cp2', 'step': 'start_etcd', 'task': 'Swap in the prepared etcd.yaml',
                 'msg': 'Static pod etcd on cp2 did not run within 20 seconds\nlog...'}]
    text = planner.rolled_back_text(plan, failures, {'cluster_id': 'e07ff96dc481154f', 'healthy': True,
                                                     'members': [{'name': 'cp1'}]}, ['cp1:/var/lib/etcd-restored-x.failed'])
    assert text.startswith('etcd restore FAILED on cp2 at step start_etcd (task "Swap in the prepared etcd.yaml"): '
                           'Static pod etcd on cp2 did not run within 20 seconds [...] log...')
    assert 'ROLLED BACK' in text and 'cp1:/var/lib/etcd-restored-x.failed' in text
    states = {'cp1': {'answered': True, 'active': ['etcd.yaml'], 'held': ['kube-apiserver.yaml'],
                      'etcd_data_dir': '/var/lib/etcd'}}
    incomplete = planner.rollback_incomplete_text(plan, failures, [], states, OPTIONS)
    lines = incomplete.splitlines()
    assert lines[0].startswith('ROLLBACK INCOMPLETE. The restore failed on cp2 at step start_etcd')
    assert lines[1].startswith('cp1: etcd.yaml is active in /etc/kubernetes/manifests and points at /var/lib/etcd')
    assert lines[2].startswith('cp2: did not answer; its state is unknown')
    discarded = planner.discarded_text(plan, failures)
    assert discarded.startswith('The restore was refused before anything was stopped: preparing the members failed '
                                'on cp2')


def health_of(plan, down, tolerated=()):
    """A cluster_health result where the members of the hosts in `down` did not answer."""
    endpoints = [{'endpoint': m['client_urls'][0], 'healthy': m['host'] not in down,
                  'error': 'context deadline exceeded' if m['host'] in down else None} for m in plan['members']]
    return {'cluster_id': 'e07ff96dc481154f', 'healthy': True, 'members': [{'name': m['name']} for m in plan['members']],
            'endpoints': endpoints, 'problems': [], 'tolerated_down': list(tolerated)}


def test_a_failed_wait_for_the_restored_members_names_the_members_down_not_the_node_that_checked():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    failure = {'host': 'cp1', 'step': 'wait_quorum', 'task': 'Wait until every restored member is healthy',
               'msg': 'etcd cluster checked from cp1 is not as expected after 30 attempt(s) in 30.1s: member cp2 ...',
               'cluster': health_of(plan, ['cp2', 'cp3'])}
    [attributed] = planner.attribute_failures(plan, [failure])
    assert attributed['host'] == 'cp2, cp3'
    assert planner.failure_text([attributed]).startswith('on cp2, cp3 at step wait_quorum (task "Wait until')
    # No member answered at all: every node is named; other failures are kept as they are.
    nothing = dict(failure, cluster={'endpoints': [], 'problems': ['no member list']})
    start = {'host': 'cp2', 'step': 'start_etcd', 'task': 't', 'msg': 'm'}
    assert [f['host'] for f in planner.attribute_failures(plan, [nothing, start])] == ['cp1, cp2, cp3', 'cp2']


def test_a_rollback_that_failed_on_one_node_while_a_quorum_serves_names_both_failures_and_reads_that_nodes_state():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    failures = [{'host': 'cp1', 'step': 'start_etcd', 'task': 'Swap in the prepared etcd.yaml', 'msg': 'etcd failed'}]
    rollback_failures = [{'host': 'cp2', 'step': 'rollback', 'task': 'Rollback: stop',
                          'msg': 'cannot copy: [Errno 28] No space left on device'}]
    cp2 = plan['members'][1]
    states = {'cp2': {'answered': True, 'active': ['etcd.yaml', 'kube-apiserver.yaml'], 'held': [],
                      'etcd_data_dir': cp2['new_data_dir']}}
    text = planner.rolled_back_text(plan, failures, health_of(plan, ['cp2'], tolerated=['cp2']), [], None,
                                    rollback_failures, states, OPTIONS)
    first = text.split(' ROLLED BACK', 1)[0]
    assert first == ('etcd restore FAILED on cp1 at step start_etcd (task "Swap in the prepared etcd.yaml"): etcd '
                     'failed; then the rollback failed on cp2 at step rollback (task "Rollback: stop"): cannot copy: '
                     '[Errno 28] No space left on device.')
    assert 'ROLLED BACK on cp1, cp3: they run their previous data directories again' in text
    assert 'serves with a quorum, 2 of 3 members up (cp2 down)' in text
    assert ('NOT ROLLED BACK: cp2, its rollback failed (see above). As read from it: cp2: etcd.yaml is active in '
            '/etc/kubernetes/manifests and points at %s' % cp2['new_data_dir']) in text
    assert 'run playbooks/restore_abort.yml with the same inventory' in text


def test_a_member_that_does_not_come_back_after_the_rollback_is_named_with_where_to_look():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    failure = {'host': 'cp1', 'step': 'wait_quorum', 'task': 'Wait', 'msg': 'member cp2 is unreachable',
               'cluster': health_of(plan, ['cp2'])}
    text = planner.rolled_back_text(plan, planner.attribute_failures(plan, [failure]),
                                    health_of(plan, ['cp2'], tolerated=['cp2']), ['cp1:/x.failed'], None, [], {},
                                    OPTIONS)
    assert text.startswith('etcd restore FAILED on cp2 at step wait_quorum (task "Wait"): member cp2 is unreachable.')
    assert 'ROLLED BACK on cp1, cp2, cp3' in text and '2 of 3 members up (cp2 down)' in text
    assert 'MEMBER DOWN on cp2: its original etcd.yaml is back and points at /var/lib/etcd' in text
    assert '(context deadline exceeded)' in text and '`crictl ps -a --name etcd`' in text
    # Every member back: the message is the one it always was.
    whole = planner.rolled_back_text(plan, [failure], health_of(plan, []), [], None, [], {}, OPTIONS)
    assert 'ROLLED BACK: every control plane runs its previous data directory again' in whole


BIND = 'discovery failed: listen tcp 127.0.1.2:2379: bind: address already in use'


def test_the_cause_read_in_the_etcd_container_of_each_member_down_leads_the_first_line():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    containers = {'cp1': 'etcd on cp1: container aaa is running (attempt 1)',
                  'cp2': 'etcd on cp2: container bbb exited (attempt 3), its log ends with: ' + BIND}
    failure = {'host': 'cp1', 'step': 'wait_quorum', 'task': 'Wait', 'msg': 'expected members missing: cp2',
               'cluster': health_of(plan, ['cp2'])}
    text = planner.rolled_back_text(plan, planner.attribute_failures(plan, [failure], containers),
                                    health_of(plan, []), [], None, [], {}, OPTIONS)
    # Only the member down is described (cp1, where the check ran, is healthy); the check's words follow.
    assert text.startswith('etcd restore FAILED on cp2 at step wait_quorum (task "Wait"): etcd on cp2: container bbb '
                           'exited (attempt 3), its log ends with: %s; expected members missing: cp2. ROLLED BACK'
                           % BIND), text
    # A failed start on one node carries that node's container; two members down carry both, in plan order.
    start = {'host': 'cp2', 'step': 'start_etcd', 'task': 'Swap', 'msg': 'Static pod etcd on cp2 did not run'}
    [attributed] = planner.attribute_failures(plan, [start], containers)
    assert attributed['cause'] == containers['cp2']
    both = dict(failure, cluster=health_of(plan, ['cp1', 'cp2']))
    assert planner.attribute_failures(plan, [both], containers)[0]['cause'] == '%s; %s' % (containers['cp1'],
                                                                                           containers['cp2'])
    # Other steps (the stop, the API servers) are not about etcd coming up: no container is quoted.
    stop = {'host': 'cp2', 'step': 'stop', 'task': 'Stop', 'msg': 'timeout'}
    assert 'cause' not in planner.attribute_failures(plan, [stop], containers)[0]


def test_a_member_still_down_after_the_rollback_quotes_its_container_read_after_the_wait():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    failure = {'host': 'cp1', 'step': 'wait_quorum', 'task': 'Wait', 'msg': 'member cp2 is unreachable',
               'cluster': health_of(plan, ['cp2'])}
    after = {'cp2': 'etcd on cp2: container ccc exited (attempt 5), its log ends with: ' + BIND}
    text = planner.rolled_back_text(plan, [failure], health_of(plan, ['cp2'], tolerated=['cp2']), [], None, [], {},
                                    OPTIONS, after)
    assert ('did not become healthy again within the wait (context deadline exceeded). Its container, read after the '
            'wait: etcd on cp2: container ccc exited (attempt 5), its log ends with: %s. The cluster does not need it'
            % BIND) in text, text


# --- where the snapshot comes from ---------------------------------------------------------------

def test_a_backup_of_this_cluster_is_recognised_by_its_members_and_peers_even_under_another_cluster_id():
    hosts, nodes = cluster(3)
    snap = snapshot_of(hosts, nodes)
    snap['metadata']['cluster_id'] = 'aaaaaaaaaaaaaaaa'
    decided = plan_for(hosts, nodes, snap=snap)
    assert decided['refusals'] == []
    assert decided['plan']['snapshot']['origin'] == 'same'
    line = [l for l in planner.plan_lines(decided['plan']) if 'from this cluster' in l][0]
    assert 'cluster aaaaaaaaaaaaaaaa' in line
    assert 'the running cluster has another ID (e07ff96dc481154f): it was restored or re-created since' in line


def test_a_snapshot_of_another_cluster_is_refused_before_anything_changes_naming_the_difference():
    hosts, nodes = cluster(3)
    other_hosts, other_nodes = cluster(3, peer_port=2390)
    snap = snapshot_of(other_hosts, other_nodes)
    snap['metadata']['members'][2]['name'] = 'db3'
    decided = plan_for(hosts, nodes, snap=snap)
    assert decided['plan'] is None
    [refusal] = decided['refusals']
    assert refusal['host'] == 'cp1, cp2, cp3'
    assert refusal['cause'].startswith('the snapshot was taken 2026-12-03T03:00:00Z from ANOTHER cluster: cluster '
                                       'e07ff96dc481154f with members cp1=https://10.0.0.11:2390')
    assert 'member cp1 has peer URL https://10.0.0.11:2390 there, https://10.0.0.11:2380 here' in refusal['cause']
    assert 'member db3 is not in this cluster' in refusal['cause']
    assert "this cluster's member cp3 is not in the snapshot's" in refusal['cause']
    assert refusal['fix'].endswith('run again with -e etcd_restore_allow_other_cluster=true.')


def test_another_clusters_snapshot_restores_when_acknowledged_and_the_plan_and_report_say_so():
    hosts, nodes = cluster(3)
    snap = snapshot_of(*cluster(3, peer_port=2390))
    decided = plan_for(hosts, nodes, snap=snap, allow_other_cluster=True)
    assert decided['refusals'] == []
    plan = decided['plan']
    assert plan['snapshot']['origin'] == 'other'
    assert any(l.startswith('WARNING: restoring a snapshot of another cluster, as acknowledged')
               for l in planner.plan_lines(plan))
    report = planner.build_report(plan, {}, {'endpoints': [], 'cluster_id': plan['cluster_id']}, {})
    assert report['report']['snapshot_origin'] == 'other'
    assert any('restoring a snapshot of another cluster' in l for l in report['lines'])


def test_a_plain_snapshot_has_an_unknown_origin_and_the_plan_says_to_make_sure():
    hosts, nodes = cluster(3)
    decided = plan_for(hosts, nodes, snap=snapshot(metadata=None))
    assert decided['plan']['snapshot']['origin'] == 'unknown'
    assert any('its origin cannot be checked' in l for l in planner.plan_lines(decided['plan']))


def test_source_messages_name_the_variables_of_the_role_that_asks():
    with pytest.raises(ValueError, match='set etcd_verify_age_identity_file to'):
        planner.resolve_source('/b/k.db.age', ['cp1'], identity_given=False, role='etcd_verify')
    with pytest.raises(ValueError, match='Check etcd_verify_s3_bucket and etcd_verify_s3_prefix'):
        planner.resolve_source('latest', ['cp1'], objects=[], bucket='bkt', role='etcd_verify')


def test_a_lost_minority_is_named_first_and_the_others_serve():
    hosts, nodes = cluster(3)
    plan = plan_for(hosts, nodes)['plan']
    answered = {'cp1': {'step': 'start_etcd'}, 'cp2': {'step': 'start_etcd'}}
    lost = planner.lost_members(plan, answered)
    assert lost == {'hosts': ['cp3'], 'names': ['cp3'], 'step': 'start_etcd', 'up': 2, 'total': 3, 'quorum': True}
    assert planner.lost_members(plan, {'cp1': {'step': 'stop'}})['quorum'] is False
    assert planner.lost_members(plan, dict(answered, cp3={'step': 'start_etcd'}))['hosts'] == []

    text = planner.rolled_back_text(plan, [], {'cluster_id': 'e07ff96dc481154f', 'healthy': True}, [], lost)
    assert text.startswith('etcd restore FAILED on cp3 at step start_etcd: it stopped answering (SSH to it failed; '
                           'no task error was reported).')
    assert 'ROLLED BACK on cp1, cp2: they run their previous data directories again' in text
    assert 'etcd cluster e07ff96dc481154f serves with a quorum, 2 of 3 members up (cp3 down)' in text
    cp3 = [m for m in plan['members'] if m['host'] == 'cp3'][0]
    assert ('NOT ROLLED BACK: cp3. Its state is unknown, not assumed' in text
            and 'pointing at %s' % cp3['new_data_dir'] in text and 'copy %s to' % cp3['original_manifest'] in text)
    # nobody lost: the usual text
    assert planner.rolled_back_text(plan, [], {'healthy': True}, [], planner.lost_members(
        plan, dict(answered, cp3={'step': 'x'}))).startswith('etcd restore FAILED a control plane failed')


# --- control planes declared lost (etcd_restore_lost_hosts) ----------------------------------------

@pytest.mark.parametrize('given', ['cp3', ' cp3 ,', ['cp3'], ['cp3', 'cp3']])
def test_declared_lost_hosts_are_checked_against_the_play_and_kept_in_play_order(given):
    assert planner.declared_lost(['cp1', 'cp2', 'cp3'], given) == {'lost': ['cp3'], 'refusals': []}
    assert planner.declared_lost(['cp1', 'cp2', 'cp3'], 'cp3,cp1')['lost'] == ['cp1', 'cp3']
    assert planner.declared_lost(['cp1', 'cp2', 'cp3'], []) == {'lost': [], 'refusals': []}


def test_a_lost_host_that_is_not_in_the_play_or_every_host_lost_is_refused():
    [typo] = planner.declared_lost(['cp1', 'cp2', 'cp3'], ['cp03'])['refusals']
    assert typo['host'] == 'cp03'
    assert typo['cause'] == 'etcd_restore_lost_hosts names cp03, which is not a control plane of this play (cp1, cp2, cp3)'
    [everyone] = planner.declared_lost(['cp1', 'cp2'], 'cp1,cp2')['refusals']
    assert everyone['cause'].startswith('every control plane of the play is declared lost')


def survivors_of(count, lost, **kwargs):
    """The hosts and nodes that answer, the old cluster (every member, the lost ones down) and a backup of it."""
    hosts, nodes = cluster(count, **kwargs)
    snap = snapshot_of(hosts, nodes)
    old = old_cluster(hosts)
    for member in old['members']:
        member['peer_urls'] = list(nodes[member['name']]['info']['member']['peer_urls'])
    old['endpoints'] = [{'endpoint': 'https://%s:2379' % nodes[h]['address'], 'name': h, 'healthy': h not in lost}
                        for h in hosts]
    declared = [{'host': h, 'address': nodes[h]['address']} for h in hosts if h in lost]
    kept = [h for h in hosts if h not in lost]
    return kept, dict((h, nodes[h]) for h in kept), snap, old, declared


def test_restore_onto_the_survivors_leaves_the_lost_members_out_and_shows_the_quorum_arithmetic():
    hosts, nodes, snap, old, declared = survivors_of(3, ['cp3'])
    decided = plan_for(hosts, nodes, snap=snap, old=old, lost=declared)
    assert decided['refusals'] == []
    plan = decided['plan']
    assert plan['names'] == ['cp1', 'cp2']
    assert plan['initial_cluster'] == 'cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380'
    assert plan['snapshot']['origin'] == 'same'
    assert plan['lost'] == [{'host': 'cp3', 'address': '10.0.0.13', 'name': 'cp3',
                             'peer_urls': ['https://10.0.0.13:2380'], 'client_urls': [],
                             'source': 'the running cluster'}]
    assert plan['lost_names'] == ['cp3']
    lines = planner.plan_lines(plan)
    assert ('declared lost: cp3 (member cp3, peer https://10.0.0.13:2380, from the running cluster), left out of the '
            'new cluster; nothing is done on it') in lines
    assert 'quorum: 3 -> 2 members: quorum 2, tolerates no failure (before: 1 failure)' in lines
    assert any(l.startswith('WARNING: restoring onto cp1, cp2 only: cp3 is declared lost') and
               '`ansible-playbook playbooks/member.yml -e etcd_member_host=<host>`' in l for l in lines)
    report = planner.build_report(plan, {}, {'endpoints': [], 'cluster_id': plan['cluster_id']}, {})
    assert report['report']['lost_hosts'] == ['cp3']
    assert ('cp3: declared lost, not a member of the restored cluster; nothing was done on it. Keep it off until you '
            'bring it back: ansible-playbook playbooks/member.yml -i <inventory> -e etcd_member_host=cp3'
            in report['lines'])


def test_without_declaring_it_lost_a_member_outside_the_play_is_still_refused():
    hosts, nodes, snap, old, _declared = survivors_of(3, ['cp3'])
    decided = plan_for(hosts, nodes, snap=snap, old=old)
    assert 'member(s) cp3 of the running cluster are not hosts of this play' in causes(decided)


def test_a_lost_member_named_otherwise_is_found_by_its_peer_address_and_two_of_five_leave_three():
    hosts, nodes, snap, old, declared = survivors_of(5, ['cp4', 'cp5'])
    old['members'][3]['name'] = 'etcd-d'
    old['endpoints'][3]['name'] = 'etcd-d'
    snap['metadata']['members'][3]['name'] = 'etcd-d'
    decided = plan_for(hosts, nodes, snap=snap, old=old, lost=declared)
    assert decided['refusals'] == []
    assert [(m['host'], m['name']) for m in decided['plan']['lost']] == [('cp4', 'etcd-d'), ('cp5', 'cp5')]
    assert 'quorum: 5 -> 3 members: quorum 2, tolerates 1 failure (before: 2 failures)' in planner.plan_lines(
        decided['plan'])


def test_a_lost_member_found_only_in_the_snapshot_or_nowhere_is_said_so():
    hosts, nodes, snap, _old, declared = survivors_of(3, ['cp3'])
    decided = plan_for(hosts, nodes, snap=snap, old={}, lost=declared)
    assert decided['refusals'] == []
    assert decided['plan']['lost'][0]['source'] == "the snapshot's metadata"
    snap['metadata']['members'] = snap['metadata']['members'][:2]
    decided = plan_for(hosts, nodes, snap=snap, old={}, lost=declared)
    assert decided['refusals'] == []
    [lost] = decided['plan']['lost']
    assert lost['name'] is None and decided['plan']['lost_names'] == []
    assert ('declared lost: cp3 (its member is unknown: neither the running cluster nor the snapshot names one at '
            '10.0.0.13), left out of the new cluster; nothing is done on it') in planner.plan_lines(decided['plan'])


def test_a_host_declared_lost_whose_etcd_still_answers_is_refused():
    hosts, nodes, snap, old, declared = survivors_of(3, ['cp3'])
    old['endpoints'][2]['healthy'] = True
    decided = plan_for(hosts, nodes, snap=snap, old=old, lost=declared)
    [refused] = decided['refusals']
    assert refused['host'] == 'cp3'
    assert refused['cause'] == ('it is declared lost (etcd_restore_lost_hosts), but its etcd member cp3 answers healthy '
                                'at https://10.0.0.13:2379')
    assert refused['fix'].startswith('restore with every control plane; or, if it must go, stop its etcd first')


def test_the_rollback_of_a_restore_onto_the_survivors_counts_the_lost_members_as_down():
    hosts, nodes, snap, old, declared = survivors_of(3, ['cp3'])
    plan = plan_for(hosts, nodes, snap=snap, old=old, lost=declared)['plan']
    both = planner.lost_members(plan, {'cp1': {'step': 'start_etcd'}, 'cp2': {'step': 'start_etcd'}})
    assert both == {'hosts': [], 'names': ['cp3'], 'step': 'start_etcd', 'up': 2, 'total': 3, 'quorum': True}
    one = planner.lost_members(plan, {'cp1': {'step': 'start_etcd'}})
    assert (one['hosts'], one['names'], one['up'], one['quorum']) == (['cp2'], ['cp2', 'cp3'], 1, False)
    text = planner.rolled_back_text(plan, [{'host': 'cp2', 'step': 'start_etcd', 'task': 't', 'msg': 'boom'}],
                                    {'cluster_id': 'e07ff96dc481154f', 'healthy': True}, [], both)
    assert text.startswith('etcd restore FAILED on cp2 at step start_etcd (task "t"): boom. ROLLED BACK')
    assert text.endswith('The control planes declared lost (cp3) were left alone, as they were before this run.')


# --- quorum lost, no snapshot: recover from the most advanced survivor (-e snapshot=survivor) -------------------

def lone(host, raft_index, revision, cluster_id='d6f62b83150389a5', error='etcdserver: no leader'):
    return {'endpoint': 'https://10.0.0.1%s:2379' % host[-1], 'healthy': False, 'error': error,
            'member_id': 'a%s' % host[-1], 'cluster_id': cluster_id, 'name': '', 'revision': revision,
            'raft_index': raft_index, 'is_leader': False}


URLS = dict(('cp%d' % i, ['https://10.0.0.1%d:2379' % i]) for i in range(1, 6))


def test_the_survivor_with_the_highest_raft_index_is_chosen_and_the_plan_says_what_is_kept_and_lost():
    cluster = {'members': [], 'endpoints': [lone('cp1', 40, 19), lone('cp2', 57, 19), lone('cp3', 57, 18)]}
    decided = planner.choose_survivor(['cp1', 'cp2', 'cp3'], URLS, cluster, ['cp4', 'cp5'])
    assert decided['refusals'] == []
    assert decided['survivor'] == {'host': 'cp2', 'endpoint': 'https://10.0.0.12:2379', 'raft_index': 57,
                                   'revision': 19, 'cluster_id': 'd6f62b83150389a5', 'member_id': 'a2',
                                   'error': 'etcdserver: no leader'}
    assert [c['host'] for c in decided['candidates']] == ['cp2', 'cp3', 'cp1']
    lines = decided['lines']
    assert lines[0] == 'NO QUORUM: recovering from the surviving member with the highest raft index, without a snapshot'
    assert lines[1] == ('candidates: cp2 raft index 57, revision 19 (etcdserver: no leader); cp3 raft index 57, revision '
                        '18 (etcdserver: no leader); cp1 raft index 40, revision 19 (etcdserver: no leader)')
    assert lines[3] == ("kept: every write cp2 had applied (revision 19); lost: whatever only the lost members had "
                        "received and cp2 had not (nothing, if it was in sync when the quorum was lost); the data of "
                        "cp3, cp1 is replaced by cp2's")


def test_a_survivor_is_refused_while_the_cluster_has_a_quorum_or_a_member_is_silent_or_clusters_differ():
    [quorum] = planner.choose_survivor(['cp1', 'cp2'], URLS, {'members': [{'name': 'cp1'}], 'leader_name': 'cp1'},
                                       [])['refusals']
    assert quorum['cause'] == ('the etcd cluster still lists its members (leader cp1), so it has a quorum: there is '
                               'nothing to recover from a survivor')
    assert quorum['fix'].startswith('replace the broken or lost members with playbooks/member.yml')
    [silent] = planner.choose_survivor(['cp1', 'cp2'], URLS, {'members': [], 'endpoints': [lone('cp1', 40, 19)]},
                                       ['cp3'])['refusals']
    assert silent['host'] == 'cp2'
    assert silent['cause'].startswith('its etcd member does not answer, so its raft index is unknown')
    assert silent['fix'].endswith('or declare it lost (-e etcd_restore_lost_hosts=cp3,cp2) if its data is gone.')
    [mixed] = planner.choose_survivor(['cp1', 'cp2'], URLS, {'members': [], 'endpoints': [
        lone('cp1', 40, 19), lone('cp2', 41, 19, cluster_id='ffff')]}, [])['refusals']
    assert mixed['cause'].startswith('the members that answer belong to different clusters')
    [nobody] = planner.choose_survivor([], URLS, {'members': [], 'endpoints': []}, [])['refusals']
    assert nobody['cause'] == 'no etcd member answers on any control plane of the play'


def test_the_plan_of_a_survivor_recovery_names_its_origin_and_warns_loudly():
    hosts, nodes, snap, _old, declared = survivors_of(3, ['cp2', 'cp3'])
    snap['metadata']['members'] = []
    survivor = {'host': 'cp1', 'endpoint': 'https://10.0.0.11:2379', 'raft_index': 40, 'revision': 19,
                'cluster_id': 'd6f62b83150389a5', 'member_id': 'a1'}
    decided = plan_for(hosts, nodes, snap=snap, old={}, lost=declared, survivor=survivor)
    assert decided['refusals'] == []
    plan = decided['plan']
    assert plan['names'] == ['cp1'] and plan['snapshot']['origin'] == 'survivor'
    lines = planner.plan_lines(plan)
    assert ("snapshot taken now from cp1's etcd member a1 without a quorum (raft index 40, revision 19), the most "
            "advanced survivor of cluster d6f62b83150389a5; matches its metadata") in lines
    assert any(l.startswith("WARNING: recovering without a snapshot from cp1's data (-e snapshot=survivor).")
               for l in lines)
    assert 'quorum: 3 -> 1 members: quorum 1, tolerates no failure (before: 1 failure)' in lines


def test_the_same_failure_on_several_nodes_is_said_once_naming_them_all():
    same = {'step': 'rollback', 'task': 'Rollback: stop', 'msg': 'The previous cluster did not come back'}
    text = planner.failure_text([dict(same, host='cp1'), dict(same, host='cp2'),
                                 {'host': 'cp3', 'step': 'rollback', 'task': 'other', 'msg': 'm'}])
    assert text == ('on cp1, cp2 at step rollback (task "Rollback: stop"): The previous cluster did not come back; '
                    'on cp3 at step rollback (task "other"): m')


def test_external_etcd_runs_the_members_on_the_etcd_hosts_and_the_api_servers_on_the_other_hosts_of_the_play():
    from ansible_collections.kubeops.etcd.plugins.module_utils.topology import decide_topology
    play = ['cp1', 'cp2', 'etcd1', 'etcd2', 'etcd3']
    topology = planner.external_topology(decide_topology('etcd', ['etcd1', 'etcd2', 'etcd3']), play)
    assert topology['name'] == 'external' and topology['refusals'] == []
    assert topology['etcd_hosts'] == ['etcd1', 'etcd2', 'etcd3'] and topology['control_planes'] == ['cp1', 'cp2']
    assert topology['plan_line'].startswith("external etcd: the inventory group 'etcd' lists etcd1, etcd2, etcd3")
    # Stacked (no group, an empty group, or an empty name): every host of the play is a control plane with its member.
    for group, hosts in (('etcd', []), ('', ['etcd1'])):
        stacked = planner.external_topology(decide_topology(group, hosts), ['cp1', 'cp2', 'cp3'])
        assert stacked['name'] == 'stacked' and stacked['refusals'] == []
        assert stacked['control_planes'] == ['cp1', 'cp2', 'cp3'] and stacked['etcd_hosts'] == []


def test_external_etcd_is_refused_without_every_etcd_host_without_a_control_plane_or_with_hosts_declared_lost():
    from ansible_collections.kubeops.etcd.plugins.module_utils.topology import decide_topology
    group = decide_topology('etcd', ['etcd1', 'etcd2', 'etcd3'])
    limited = planner.external_topology(group, ['cp1', 'etcd1', 'etcd2'])
    [refused] = limited['refusals']
    assert refused['host'] == 'etcd3'
    assert refused['cause'] == ("the inventory group 'etcd' lists etcd3, which is not in this play (cp1, etcd1, etcd2); "
                                'every member is restored at once')
    assert 'without --limit' in refused['fix']
    [alone] = planner.external_topology(group, ['etcd1', 'etcd2', 'etcd3'])['refusals']
    assert 'the play has etcd hosts only' in alone['cause'] and 'etcd_target_group' in alone['fix']
    # kubespray's default layout: etcd as systemd units on the control planes themselves.
    beside = planner.external_topology(decide_topology('etcd', ['cp1', 'cp2', 'cp3']), ['cp1', 'cp2', 'cp3'],
                                       control_plane_hosts=['cp1', 'cp2', 'cp3'])
    [refused] = beside['refusals']
    assert refused['host'] == 'cp1, cp2, cp3' and refused['cause'].startswith(
        "cp1, cp2, cp3 are in the inventory group 'etcd' and in the control-plane group: etcd runs beside the API server")
    assert 'docs/restore.md, "External etcd"' in refused['fix']
    # No journal is written for external etcd: nothing to resume or undo from.
    play = ['cp1', 'etcd1', 'etcd2', 'etcd3']
    for flags, name in (({'resume': True}, 'etcd_restore_resume'),
                        ({'rollback': True}, 'etcd_restore_rollback (playbooks/restore_abort.yml)')):
        [refused] = planner.external_topology(group, play, **flags)['refusals']
        assert refused['host'] == 'etcd1, etcd2, etcd3, cp1'
        assert refused['cause'] == ('%s finishes or undoes an unfinished run from the journals on the nodes, and a '
                                    'restore of external etcd writes none' % name)
        assert 'docs/restore.md, "External etcd"' in refused['fix']
    [lost] = planner.external_topology(group, ['cp1', 'etcd1', 'etcd2', 'etcd3'], 'etcd2')['refusals']
    assert lost['host'] == 'etcd2' and 'with external etcd a restore onto fewer etcd hosts is not supported' in lost['cause']


def unit_node(index, user='etcd', location=None):
    """An etcd host of external etcd run by systemd, as etcd_member_info (units) reports it."""
    facts = node(index, name='etcd%d' % index, apiserver=False)
    facts['info']['member'].update(
        kind='systemd', unit='etcd.service', user=user, manifest_path=None, image='/usr/local/bin/etcd',
        data_dir_location=location or {'kind': 'env', 'file': '/etc/etcd.env', 'line': 2, 'variable': 'ETCD_DATA_DIR'})
    facts['info']['apiserver'] = {'present': False, 'readyz_url': None}
    return facts


def control_plane(index):
    ip = '10.0.1.%d' % index
    return {'host': 'cp%d' % index, 'node': {
        'info': {'member': None, 'apiserver': {'present': True, 'readyz_url': 'https://%s:6443/readyz' % ip}},
        'held': [], 'pods_error': '', 'address': ip}}


def external_plan(nodes=None, control_planes=None, **options):
    hosts = ['etcd1', 'etcd2', 'etcd3']
    nodes = nodes or dict((host, unit_node(i)) for i, host in enumerate(hosts, 1))
    return plan_for(hosts, nodes, control_planes=control_planes or [control_plane(1), control_plane(2)], **options)


def test_an_external_plan_restores_each_unit_member_as_its_service_user_and_starts_the_api_servers_of_the_control_planes():
    decided = external_plan()
    assert decided['refusals'] == []
    plan = decided['plan']
    assert plan['topology'] == 'external'
    assert plan['control_planes'] == [{'host': 'cp1', 'readyz_url': 'https://10.0.1.1:6443/readyz'},
                                      {'host': 'cp2', 'readyz_url': 'https://10.0.1.2:6443/readyz'}]
    assert plan['names'] == ['etcd1', 'etcd2', 'etcd3']
    assert plan['initial_cluster'] == ','.join('etcd%d=https://10.0.0.%d:2380' % (i, 10 + i) for i in (1, 2, 3))
    first = plan['members'][0]
    assert (first['kind'], first['unit'], first['user']) == ('systemd', 'etcd.service', 'etcd')
    assert first['new_data_dir'] == '/var/lib/etcd-restored-%s' % TS
    assert first['unit_backup_dir'] == '/etc/kubernetes/kubeops-etcd/runs/%s/units' % TS
    lines = planner.plan_lines(plan)
    assert lines[0] == 'Restore plan for 3 etcd host(s) of external etcd, with control plane(s) cp1, cp2:'
    assert any(line.startswith('outage: stop kube-apiserver, kube-controller-manager and kube-scheduler on cp1, cp2; '
                               'stop etcd on every etcd host;') for line in lines)
    assert lines[-3].endswith('-> /var/lib/etcd-restored-%s; unit etcd.service, data dir set by ETCD_DATA_DIR in '
                              '/etc/etcd.env, runs as etcd' % TS)


def test_an_external_plan_is_refused_when_a_control_planes_api_server_pods_cannot_be_stopped():
    held = control_plane(2)
    held['node']['held'] = ['kube-apiserver.yaml']
    gone = {'host': 'cp3', 'node': None}
    decided = external_plan(control_planes=[control_plane(1), held, gone])
    assert decided['plan'] is None
    assert causes(decided) == (
        'cp2: kube-apiserver.yaml is already held in /etc/kubernetes/kubeops-etcd/held-manifests instead of '
        '/etc/kubernetes/manifests, so that pod is not running (an interrupted restore?) | '
        'cp3: no facts were gathered from this control plane')


def test_a_static_pod_member_of_external_etcd_keeps_the_stacked_members_files():
    hosts = ['etcd1', 'etcd2', 'etcd3']
    nodes = dict((host, node(i, name=host, apiserver=False)) for i, host in enumerate(hosts, 1))
    plan = external_plan(nodes=nodes)['plan']
    member = plan['members'][1]
    assert member['kind'] == 'static_pod' and member['unit'] is None
    assert member['prepared_manifest'] == '/etc/kubernetes/kubeops-etcd/runs/%s/etcd.yaml' % TS
    assert planner.plan_lines(plan)[-2].endswith('static pod, prepared manifest %s' % member['prepared_manifest'])


def test_the_report_of_an_external_restore_names_the_repointed_units_and_the_control_planes():
    plan = external_plan()['plan']
    final = {'cluster_id': plan['cluster_id'], 'revision': 1000000600, 'leader_name': 'etcd2', 'endpoints': []}
    built = planner.build_report(plan, {}, final, {})
    assert built['report']['topology'] == 'external' and built['report']['control_planes'] == ['cp1', 'cp2']
    member = built['report']['members'][0]
    assert member['manifest_backup'] is None and member['unit'] == 'etcd.service'
    assert built['lines'][2].endswith('unit etcd.service repointed, its previous files kept in '
                                      '/etc/kubernetes/kubeops-etcd/runs/%s/units' % TS)


def test_a_unit_member_that_stays_down_after_the_rollback_is_told_to_be_restarted_with_systemctl():
    plan = external_plan()['plan']
    cluster = {'cluster_id': 'e07ff96dc481154f', 'healthy': False, 'tolerated_down': ['etcd2'], 'problems': [],
               'members': [{'name': 'etcd1'}, {'name': 'etcd3'}], 'endpoints': []}
    failures = [{'host': 'etcd2', 'step': 'wait_quorum', 'task': 'Wait', 'msg': 'expected members missing: etcd2'}]
    text = planner.rolled_back_text(plan, failures, cluster, [], lost={'hosts': [], 'step': 'wait_quorum'})
    assert text.startswith('etcd restore FAILED on etcd2 at step wait_quorum (task "Wait"): expected members missing')
    assert 'the API servers, controller-managers and schedulers are started again on cp1, cp2.' in text
    assert ('MEMBER DOWN on etcd2: unit etcd.service points at /var/lib/etcd again, but its etcd did not become healthy '
            'again within the wait.') in text
    assert 'once the cause is fixed, `systemctl restart etcd.service`.' in text
    assert 'run the restore again once every etcd host serves' in text


def test_an_incomplete_external_rollback_reads_each_unit_and_gives_the_hand_steps_for_units_and_api_servers():
    plan = external_plan()['plan']
    states = dict(('etcd%d' % i, {'answered': True, 'etcd_data_dir': '/var/lib/etcd'}) for i in (1, 2))
    text = planner.rollback_incomplete_text(
        plan, [{'host': 'etcd2', 'step': 'wait_quorum', 'task': 'Wait', 'msg': 'missing'}],
        [{'host': 'etcd3', 'step': 'rollback', 'task': 'Rollback: start', 'msg': 'disk full'}], states,
        {'manifests_dir': '/etc/kubernetes/manifests', 'holding_dir': '/etc/kubernetes/kubeops-etcd/held-manifests'})
    lines = text.splitlines()
    assert lines[0].endswith('State of every etcd host now:')
    assert lines[1] == ('etcd1: unit etcd.service points at /var/lib/etcd (previous /var/lib/etcd, restored '
                        '/var/lib/etcd-restored-%s); its files as they were before the restore are kept in '
                        '/etc/kubernetes/kubeops-etcd/runs/%s/units' % (TS, TS))
    assert lines[3].startswith('etcd3: did not answer; its state is unknown')
    assert 'restore_abort.yml' not in text
    assert 'on each control plane (cp1, cp2), move kube-apiserver.yaml' in lines[4]
