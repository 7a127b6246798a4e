# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import sys

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_member

from unit_helpers import fakes, run_module

# A stateful etcdctl: the captured member list of a real 3.4.23 / 3.5.30 cluster is its start; member add, remove and
# promote change it and answer in the shapes and with the errors real etcdctl 3.4.23 and 3.5.30 print (captured from
# `member add --learner -w json`, `member remove -w json`, `member promote` of an unsynced learner).
FAKE_ETCDCTL = r'''
import json, sys, zlib
STATE, CALLS = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
with open(CALLS, 'a') as handle:
    handle.write(json.dumps(args) + '\n')
with open(STATE) as handle:
    state = json.load(handle)
flags = dict(a[2:].split('=', 1) for a in args if a.startswith('--') and '=' in a)
words = [a for a in args if not a.startswith('-') and a != 'json']
header = {'cluster_id': state['cluster_id'], 'member_id': state['leader'], 'raft_term': 2}

def save():
    with open(STATE, 'w') as handle:
        json.dump(state, handle)

def member_json(m):
    out = {'ID': m['ID']}
    if m['name']:
        out['name'] = m['name']
    out['peerURLs'] = m['peerURLs']
    if m['clientURLs']:
        out['clientURLs'] = m['clientURLs']
    if m['isLearner']:
        out['isLearner'] = True
    return out

def members():
    return [member_json(m) for m in sorted(state['members'], key=lambda m: m['ID'])]

def fail(message, rc=1):
    sys.stderr.write('{"level":"warn","msg":"retrying of unary invoker failed","error":"rpc error: code = '
                     'FailedPrecondition desc = %s"}\nError: %s\n' % (message, message))
    sys.exit(rc)

def by_hex(value):
    found = [m for m in state['members'] if '%x' % m['ID'] == value]
    if not found:
        fail('etcdserver: member not found')
    return found[0]

def by_url(url):
    found = [m for m in state['members'] if url in m['clientURLs']]
    return found[0] if found else None

if words[:1] == ['version']:
    api = '.'.join(state['version'].split('.')[:2])
    print('etcdctl version: %s\nAPI version: %s' % (state['version'], api))
elif words[:2] == ['member', 'list']:
    if by_url(flags['endpoints'].split(',')[0]) is None and not state.get('lenient'):
        fail('context deadline exceeded')
    print(json.dumps({'header': header, 'members': members()}))
elif words[:2] == ['endpoint', 'status']:
    out, rc = [], 0
    for url in flags['endpoints'].split(','):
        m = by_url(url)
        if m is None or m['ID'] in state['down']:
            sys.stderr.write('Failed to get the status of endpoint %s (context deadline exceeded)\n' % url)
            rc = 1
            continue
        index = state['learner_index'] if m['isLearner'] else state['raft_index']
        status = {'header': dict(header, member_id=m['ID'], revision=51), 'version': state['version'],
                  'dbSize': 24576, 'leader': state['leader'], 'raftIndex': index, 'raftTerm': 2,
                  'raftAppliedIndex': index, 'dbSizeInUse': 24576}
        if m['isLearner']:
            status['isLearner'] = True
        out.append({'Endpoint': url, 'Status': status})
    print(json.dumps(out))
    sys.exit(rc)
elif words[:2] == ['endpoint', 'health']:
    out = []
    for url in flags['endpoints'].split(','):
        m = by_url(url)
        if m is None or m['ID'] in state['down']:
            out.append({'endpoint': url, 'health': False, 'took': '3s', 'error': 'context deadline exceeded'})
        elif m['isLearner']:
            out.append({'endpoint': url, 'health': False, 'took': '1ms',
                        'error': 'rpc error: code = Unavailable desc = etcdserver: rpc not supported for learner'})
        else:
            out.append({'endpoint': url, 'health': True, 'took': '2ms'})
    print(json.dumps(out))
    sys.exit(0 if all(entry['health'] for entry in out) else 1)
elif words[:2] == ['member', 'add']:
    if state.get('add_refusals'):
        state['add_refusals'] -= 1
        save()
        fail('etcdserver: unhealthy cluster')
    peers = flags['peer-urls'].split(',')
    if any(set(peers) & set(m['peerURLs']) for m in state['members']):
        fail('etcdserver: Peer URLs already exists')
    learner = '--learner' in args
    if learner and any(m['isLearner'] for m in state['members']):
        fail('etcdserver: too many learner members in cluster')
    new = {'ID': zlib.crc32(flags['peer-urls'].encode()) * 4294967311, 'name': '', 'peerURLs': peers,
           'clientURLs': [], 'isLearner': learner}
    state['members'].append(new)
    save()
    print(json.dumps({'header': header, 'member': member_json(new), 'members': members()}))
elif words[:2] == ['member', 'remove']:
    m = by_hex(words[2])
    state['members'].remove(m)
    save()
    print(json.dumps({'header': header, 'members': members()}))
elif words[:2] == ['member', 'promote']:
    m = by_hex(words[2])
    if not m['isLearner']:
        fail('etcdserver: can only promote a learner member')
    if state['promote_refusals'] != 0:
        state['promote_refusals'] -= 1
        save()
        fail('etcdserver: can only promote a learner member which is in sync with leader')
    m['isLearner'] = False
    save()
    print('Member %16x promoted in cluster %16x' % (m['ID'], state['cluster_id']))
else:
    sys.stderr.write('fake etcdctl: unexpected arguments %r\n' % (args,))
    sys.exit(2)
'''

NEW_PEER = 'https://10.0.0.14:2380'


class FakeCluster(object):
    """A fake etcdctl and the cluster it pretends to talk to (a JSON state file)."""

    def __init__(self, tmp_path, version):
        captured = json.loads(fakes.read(version, 'member_list.stdout'))
        names = {'m1': 'cp1', 'm2': 'cp2', 'm3': 'cp3'}
        self.state_file = str(tmp_path / 'cluster.json')
        self.calls_file = str(tmp_path / 'calls.jsonl')
        members = [{'ID': m['ID'], 'name': names[m['name']], 'peerURLs': m['peerURLs'], 'clientURLs': m['clientURLs'],
                    'isLearner': False} for m in captured['members']]
        self.ids = dict((m['name'], m['ID']) for m in members)
        self.members_at_start = members
        self.write({'version': version, 'cluster_id': captured['header']['cluster_id'], 'leader': self.ids['cp1'],
                    'members': members, 'down': [], 'promote_refusals': 0, 'raft_index': 4567,
                    'learner_index': 120})
        script = tmp_path / 'fake_etcdctl.py'
        script.write_text(FAKE_ETCDCTL)
        self.etcdctl = str(tmp_path / 'etcdctl')
        with open(self.etcdctl, 'w') as handle:
            handle.write('#!/bin/sh\nexec %s %s %s %s "$@"\n' % (sys.executable, script, self.state_file,
                                                                 self.calls_file))
        os.chmod(self.etcdctl, 0o755)

    @staticmethod
    def initial(cluster):
        return cluster.members_at_start

    def read(self):
        with open(self.state_file) as handle:
            return json.load(handle)

    def write(self, state):
        with open(self.state_file, 'w') as handle:
            json.dump(state, handle)

    def update(self, **changes):
        state = self.read()
        state.update(changes)
        self.write(state)

    def down(self, *names):
        self.update(down=[self.ids[name] for name in names])

    def url(self, name, kind='clientURLs'):
        return [m for m in self.read()['members'] if m['name'] == name][0][kind][0]

    def names(self):
        return sorted((m['name'], m['isLearner']) for m in self.read()['members'])

    def changes(self):
        """The membership commands run (member add/remove/promote), positional words only."""
        if not os.path.exists(self.calls_file):
            return []
        with open(self.calls_file) as handle:
            calls = [json.loads(line) for line in handle]
        words = [[a for a in call if not a.startswith('--endpoints') and not a.startswith('--c') and
                  not a.startswith('--key') and a not in ('-w', 'json')] for call in calls]
        return [w for w in words if w[:2] in (['member', 'add'], ['member', 'remove'], ['member', 'promote'])]

    def args(self, tls, **params):
        args = dict(tls, etcdctl_path=self.etcdctl, endpoints=[self.url('cp1')])
        args.update(params)
        return args


@pytest.fixture(autouse=True)
def quick_promote_retries(monkeypatch):
    monkeypatch.setattr(etcd_member, 'PROMOTE_RETRY_INTERVAL', 0.1)


def run(args, check=False):
    return run_module(etcd_member, args, check=check)


@pytest.fixture(params=['3.4.23', '3.5.30'])
def cluster(request, tmp_path):
    return FakeCluster(tmp_path, request.param)


@pytest.fixture
def cluster35(tmp_path):
    return FakeCluster(tmp_path, '3.5.30')


def test_removes_a_dead_member_by_name_and_returns_the_members_left(cluster, tls):
    cluster.down('cp3')
    cp3 = cluster.ids['cp3']
    ok, result = run(cluster.args(tls, name='cp3', state='absent'))
    assert ok, result
    assert result['changed'] is True and result['msg'] == 'removed cp3 (%x)' % cp3
    cp3_peers = [m['peerURLs'] for m in FakeCluster.initial(cluster) if m['ID'] == cp3][0]
    assert result['member'] == {'name': 'cp3', 'id': '%x' % cp3, 'peer_urls': cp3_peers, 'is_learner': False}
    assert cluster.names() == [('cp1', False), ('cp2', False)]
    assert sorted(m['name'] for m in result['members']) == ['cp1', 'cp2']
    assert cluster.changes() == [['member', 'remove', '%x' % cp3]]
    assert result['cluster_id'] == '%x' % cluster.read()['cluster_id']
    # again: nothing to do
    ok, result = run(cluster.args(tls, name='cp3', state='absent'))
    assert ok and result['changed'] is False and result['member'] is None and result['msg'] == 'etcd has no member cp3'
    assert len(cluster.changes()) == 1


def test_refuses_to_remove_a_healthy_member_while_another_is_down(cluster, tls):
    cluster.down('cp3')
    ok, result = run(cluster.args(tls, name='cp2', state='absent'))
    assert not ok
    assert 'Refusing to remove etcd member cp2' in result['msg']
    assert '2 voting members would be left and only 1 of them (cp1) are started and healthy' in result['msg']
    assert 'Bring cp3 back first' in result['msg']
    assert cluster.changes() == [] and len(cluster.names()) == 3


def test_removing_from_a_healthy_two_member_cluster_keeps_a_quorum_of_one(cluster35, tls):
    cluster35.down('cp3')
    ok, result = run(cluster35.args(tls, name='cp3', state='absent'))
    assert ok and result['changed']
    ok, result = run(cluster35.args(tls, name='cp2', state='absent'), check=True)
    assert ok and result['changed'] is True and result['msg'].startswith('would remove cp2 (')
    assert [m['name'] for m in result['members']] == ['cp1']
    assert cluster35.names() == [('cp1', False), ('cp2', False)]


def test_refuses_to_remove_the_only_voting_member(cluster35, tls):
    for name in ('cp3', 'cp2'):
        assert run(cluster35.args(tls, name=name, state='absent'))[0]
    ok, result = run(cluster35.args(tls, name='cp1', state='absent'))
    assert not ok and 'it is the only voting member' in result['msg']
    assert cluster35.names() == [('cp1', False)]


def test_refuses_every_change_without_a_majority_of_healthy_voting_members(cluster, tls):
    cluster.down('cp2', 'cp3')
    for params in (dict(name='cp3', state='absent'), dict(name='cp4', peer_urls=[NEW_PEER])):
        ok, result = run(cluster.args(tls, **params))
        assert not ok
        assert 'only 1 of 3 voting members are healthy' in result['msg'] and 'fewer than the 2 a quorum needs' in result['msg']
    assert cluster.changes() == []


def test_refuses_without_a_leader(cluster35, tls):
    cluster35.update(leader=12345)
    ok, result = run(cluster35.args(tls, name='cp4', peer_urls=[NEW_PEER]))
    assert not ok and 'has no leader' in result['msg'] and cluster35.changes() == []


def test_adds_a_learner_on_35_and_returns_the_initial_cluster(cluster35, tls):
    cluster35.down('cp3')
    assert run(cluster35.args(tls, name='cp3', state='absent'))[0]
    ok, result = run(cluster35.args(tls, name='cp3', peer_urls=[NEW_PEER]))
    assert ok, result
    assert result['changed'] is True and result['msg'] == 'added cp3 (%s) as a learner' % NEW_PEER
    assert cluster35.changes()[-1] == ['member', 'add', 'cp3', '--peer-urls=%s' % NEW_PEER, '--learner']
    new = [m for m in cluster35.read()['members'] if m['peerURLs'] == [NEW_PEER]][0]
    assert result['member'] == {'name': 'cp3', 'id': '%x' % new['ID'], 'peer_urls': [NEW_PEER], 'is_learner': True}
    # member add's order: by member ID; the new member is named, other members by their names
    ordered = sorted(cluster35.read()['members'], key=lambda m: m['ID'])
    expected = ','.join('%s=%s' % (m['name'] or 'cp3', m['peerURLs'][0]) for m in ordered)
    assert result['initial_cluster'] == expected and 'cp3=%s' % NEW_PEER in expected
    assert result['initial_cluster_state'] == 'existing'
    assert [m['id'] for m in result['members']] == ['%x' % m['ID'] for m in ordered]
    # added, not started: matched by its peer URLs, nothing to do
    ok, again = run(cluster35.args(tls, name='cp3', peer_urls=[NEW_PEER]))
    assert ok and again['changed'] is False and again['member'] == result['member']
    assert again['initial_cluster'] == expected and 'not started yet' in again['msg']
    assert len(cluster35.changes()) == 2


def test_add_retries_while_etcd_calls_the_cluster_unhealthy_after_a_reconnect(cluster35, tls, monkeypatch):
    monkeypatch.setattr(etcd_member, 'ADD_RETRY_INTERVAL', 0.01)
    cluster35.down('cp3')
    assert run(cluster35.args(tls, name='cp3', state='absent'))[0]
    cluster35.update(add_refusals=2)
    ok, result = run(cluster35.args(tls, name='cp3', peer_urls=[NEW_PEER]))
    assert ok, result
    assert result['msg'] == 'added cp3 (%s) as a learner' % NEW_PEER
    assert [c for c in cluster35.changes() if c[1] == 'add'] == [
        ['member', 'add', 'cp3', '--peer-urls=%s' % NEW_PEER, '--learner']] * 3
    assert len([m for m in cluster35.read()['members'] if m['peerURLs'] == [NEW_PEER]]) == 1


def test_add_gives_up_on_an_unhealthy_cluster_after_the_retries(cluster35, tls, monkeypatch):
    monkeypatch.setattr(etcd_member, 'ADD_RETRY_INTERVAL', 0.01)
    monkeypatch.setattr(etcd_member, 'ADD_RETRY_SECONDS', 0.05)
    cluster35.down('cp3')
    assert run(cluster35.args(tls, name='cp3', state='absent'))[0]
    cluster35.update(add_refusals=1000)
    ok, result = run(cluster35.args(tls, name='cp3', peer_urls=[NEW_PEER]))
    assert not ok
    assert 'etcdserver: unhealthy cluster' in result['msg'] and 'member add cp3' in result['msg']
    assert not [m for m in cluster35.read()['members'] if m['peerURLs'] == [NEW_PEER]]


def test_adds_a_voting_member_on_34(tmp_path, tls):
    cluster = FakeCluster(tmp_path, '3.4.23')
    cluster.down('cp3')
    assert run(cluster.args(tls, name='cp3', state='absent'))[0]
    ok, result = run(cluster.args(tls, name='cp3', peer_urls=[NEW_PEER]))
    assert ok and result['changed'] is True and result['member']['is_learner'] is False
    assert 'as a voting member (etcd 3.4.23' in result['msg']
    assert cluster.changes()[-1] == ['member', 'add', 'cp3', '--peer-urls=%s' % NEW_PEER]
    # promoted on a voting member: nothing to do
    ok, result = run(cluster.args(tls, name='cp3', peer_urls=[NEW_PEER], state='promoted'))
    assert ok and result['changed'] is False and 'is a voting member already' in result['msg']


def test_refuses_a_voting_member_on_34_that_the_started_members_could_not_outvote(tmp_path, tls):
    cluster = FakeCluster(tmp_path, '3.4.23')
    cluster.down('cp3')
    ok, result = run(cluster.args(tls, name='cp4', peer_urls=[NEW_PEER]))
    assert not ok
    assert 'Refusing to add etcd member cp4 as a voting member (etcd 3.4' in result['msg']
    assert 'only 2 of 3 voting members are started and healthy, fewer than the 3 a quorum of 4 needs' in result['msg']
    assert cluster.changes() == []


def test_existing_member_with_same_urls_is_unchanged_and_conflicts_are_refused(cluster, tls):
    cp3_peer = cluster.url('cp3', 'peerURLs')
    ok, result = run(cluster.args(tls, name='cp3', peer_urls=[cp3_peer]))
    assert ok and result['changed'] is False and result['member']['name'] == 'cp3'
    assert result['initial_cluster'].count('=') == 3

    ok, result = run(cluster.args(tls, name='cp3', peer_urls=[NEW_PEER]))
    assert not ok and 'etcd member cp3 (%x) has peer URLs %s, not %s' % (cluster.ids['cp3'], cp3_peer, NEW_PEER) \
        in result['msg']

    ok, result = run(cluster.args(tls, name='cp9', peer_urls=[cp3_peer]))
    assert not ok and 'Peer URL %s of cp9 belongs to etcd member cp3' % cp3_peer in result['msg']
    # absent never removes a member of another name, even with its peer URLs
    ok, result = run(cluster.args(tls, name='cp9', peer_urls=[cp3_peer], state='absent'))
    assert not ok and 'belongs to etcd member cp3' in result['msg']
    assert cluster.changes() == []


def test_one_learner_at_a_time(cluster35, tls):
    cluster35.down('cp3')
    assert run(cluster35.args(tls, name='cp4', peer_urls=[NEW_PEER]))[0]
    ok, result = run(cluster35.args(tls, name='cp5', peer_urls=['https://10.0.0.15:2380']))
    assert not ok and 'has not been promoted yet, and etcd allows one learner at a time' in result['msg']


def add_started_learner(cluster, tls):
    """cp3 replaced by a learner cp4 whose etcd runs (name and client URL known)."""
    cluster.down('cp3')
    assert run(cluster.args(tls, name='cp3', state='absent'))[0]
    state = cluster.read()
    state['down'] = []
    state['members'].append({'ID': 77, 'name': 'cp4', 'peerURLs': [NEW_PEER], 'clientURLs': ['https://10.0.0.14:2379'],
                             'isLearner': True})
    cluster.write(state)


def test_promote_retries_until_the_learner_is_in_sync(cluster35, tls):
    add_started_learner(cluster35, tls)
    cluster35.update(promote_refusals=2)
    ok, result = run(cluster35.args(tls, name='cp4', state='promoted', promote_timeout=60))
    assert ok, result
    assert result['changed'] is True and result['msg'] == 'promoted learner cp4 (4d) after 3 attempt(s)'
    assert result['member'] == {'name': 'cp4', 'id': '4d', 'peer_urls': [NEW_PEER], 'is_learner': False}
    assert [c for c in cluster35.changes() if c[1] == 'promote'] == [['member', 'promote', '4d']] * 3
    assert ('cp4', False) in cluster35.names()
    ok, result = run(cluster35.args(tls, name='cp4', state='promoted'))
    assert ok and result['changed'] is False


def test_promote_timeout_names_the_member_and_how_far_behind_it_is(cluster35, tls):
    add_started_learner(cluster35, tls)
    cluster35.update(promote_refusals=-1)
    ok, result = run(cluster35.args(tls, name='cp4', state='promoted', promote_timeout=1))
    assert not ok
    assert 'etcd learner cp4 (4d) is still not in sync with the leader after' in result['msg']
    assert 'it has applied raft index 120 of the leader\'s 4567 (4447 entries behind)' in result['msg']
    assert ('cp4', True) in cluster35.names()


def test_promote_timeout_of_a_learner_that_never_started(cluster35, tls):
    cluster35.down('cp3')
    assert run(cluster35.args(tls, name='cp3', state='absent'))[0]
    assert run(cluster35.args(tls, name='cp3', peer_urls=[NEW_PEER]))[0]
    cluster35.update(promote_refusals=-1)
    ok, result = run(cluster35.args(tls, name='cp3', peer_urls=[NEW_PEER], state='promoted', promote_timeout=0))
    assert not ok and 'it has never started (no name, no client URLs yet)' in result['msg']


def test_promote_unknown_member_fails_with_the_fix(cluster35, tls):
    ok, result = run(cluster35.args(tls, name='cp7', state='promoted'))
    assert not ok and 'etcd has no member cp7 to promote' in result['msg'] and 'state=present' in result['msg']


def test_check_mode_decides_and_changes_nothing(cluster, tls):
    cluster.down('cp3')
    before = cluster.read()
    ok, result = run(cluster.args(tls, name='cp3', state='absent'), check=True)
    assert ok and result['changed'] is True and result['msg'] == 'would remove cp3 (%x)' % cluster.ids['cp3']
    assert sorted(m['name'] for m in result['members']) == ['cp1', 'cp2']
    cluster.down()
    before = cluster.read()
    ok, result = run(cluster.args(tls, name='cp4', peer_urls=['https://10.0.0.15:2380']), check=True)
    assert ok and result['changed'] is True and result['msg'].startswith('would add cp4 (https://10.0.0.15:2380) as a')
    assert result['member']['id'] is None and result['initial_cluster'].endswith(',cp4=https://10.0.0.15:2380')
    assert cluster.read() == before and cluster.changes() == []


def test_check_mode_promote(cluster35, tls):
    add_started_learner(cluster35, tls)
    ok, result = run(cluster35.args(tls, name='cp4', state='promoted'), check=True)
    assert ok and result['changed'] is True and result['member']['is_learner'] is False
    assert result['msg'] == 'would promote learner cp4 (4d)'
    assert ('cp4', True) in cluster35.names() and not [c for c in cluster35.changes() if c[1] == 'promote']


def test_present_needs_peer_urls(cluster35, tls):
    ok, result = run(cluster35.args(tls, name='cp4'))
    assert not ok and 'peer_urls' in result['msg']
