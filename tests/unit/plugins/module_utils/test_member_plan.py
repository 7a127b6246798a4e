# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import member_plan as mp

HOSTS = ['cp1', 'cp2', 'cp3']
IDS = {'cp1': 'a1', 'cp2': 'b2', 'cp3': 'c3'}
OPTIONS = {'timestamp': '20261203T140000Z', 'manifests_dir': '/etc/kubernetes/manifests',
           'holding_dir': '/etc/kubernetes/kubeops-etcd/held-manifests', 'runs_dir': '/etc/kubernetes/kubeops-etcd/runs'}


def peer(host):
    return 'https://10.0.0.1%s:2380' % host[-1]


def client(host):
    return 'https://10.0.0.1%s:2379' % host[-1]


def node(host, where='manifests', has_files=True, name=None):
    return {'error': None, 'manifest_where': where,
            'manifest_path': '/etc/kubernetes/%s/etcd.yaml' % ('manifests' if where == 'manifests'
                                                               else 'kubeops-etcd/held-manifests'),
            'data_dir_exists': has_files, 'data_dir_has_files': has_files,
            'member': {'name': name or host, 'peer_urls': [peer(host)], 'advertise_client_urls': [client(host)],
                       'data_dir_host_path': '/var/lib/etcd'}}


def cluster(down=(), learners=(), unstarted=(), version='3.5.30', absent=(), extra=()):
    members, endpoints = [], []
    for host in HOSTS + list(extra):
        if host in absent:
            continue
        started = host not in unstarted
        members.append({'id': IDS.get(host, 'e5'), 'name': host if started else '', 'peer_urls': [peer(host)],
                        'client_urls': [client(host)] if started else [], 'is_learner': host in learners})
        if started:
            endpoints.append({'endpoint': client(host), 'healthy': host not in down, 'member_id': IDS.get(host, 'e5'),
                              'name': host, 'revision': 100, 'version': version, 'is_leader': host == 'cp1'})
    return {'cluster_id': 'ffff', 'members': members, 'leader': 'a1', 'endpoints': endpoints}


def facts(target='cp3', **kwargs):
    nodes = dict((host, node(host)) for host in HOSTS)
    view = cluster(**kwargs)
    views = dict((host, copy.deepcopy(view)) for host in HOSTS if host != target)
    return nodes, views


def make(target='cp3', nodes=None, views=None, replace=False, **kwargs):
    if nodes is None:
        nodes, views = facts(target, **kwargs)
    return mp.plan(target, HOSTS, nodes, views, replace=replace, options=OPTIONS)


def todo(plan):
    return [step for step in mp.STEPS if plan['steps'][step]]


def test_a_lost_member_is_replaced_through_the_first_healthy_other_node():
    nodes, views = facts(down=['cp3'])
    nodes['cp3'] = node('cp3', where='held', has_files=False)
    plan, refusals = make(nodes=nodes, views=views)
    assert refusals == []
    assert (plan['state'], plan['helper'], plan['member_id'], plan['cluster_id']) == ('voting-down', 'cp1', 'c3', 'ffff')
    assert todo(plan) == ['stop', 'remove', 'add', 'manifest', 'start', 'promote', 'verify']
    assert plan['moved_aside'] == '/var/lib/etcd.replaced-20261203T140000Z'
    assert plan['run_dir'] == '/etc/kubernetes/kubeops-etcd/runs/member-20261203T140000Z'
    assert plan['held_manifest'] == '/etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml'
    assert plan['expected_members'] == ['cp1', 'cp2', 'cp3']
    assert plan['as_learner'] is True and plan['version'] == '3.5'
    assert plan['lines'][0] == ('etcd member plan for cp3 (member cp3, peer URLs https://10.0.0.13:2380), '
                                'cluster ffff, etcd 3.5:')
    assert '3. add member cp3 (https://10.0.0.13:2380) as a learner (through cp1)' in plan['lines']
    assert plan['lines'][-1] == 'not needed: move_aside.'


def test_data_left_in_the_dir_is_moved_aside_and_a_string_false_counts_as_false():
    nodes, views = facts(down=['cp3'])
    plan, _refusals = make(nodes=nodes, views=views)
    assert todo(plan)[:3] == ['stop', 'move_aside', 'remove']
    nodes['cp3']['data_dir_has_files'] = 'False'
    plan, _refusals = make(nodes=nodes, views=views)
    assert 'move_aside' not in todo(plan)


def test_a_healthy_member_is_refused_unless_replace():
    plan, refusals = make()
    assert plan is None
    assert [r['host'] for r in refusals] == ['cp3']
    assert 'healthy, started voting member cp3 (c3)' in refusals[0]['cause']
    assert 'etcd_member_replace=true' in refusals[0]['fix']
    plan, refusals = make(replace=True)
    assert refusals == [] and plan['state'] == 'voting-healthy'
    assert todo(plan) == list(mp.STEPS)
    assert 'it is a healthy voting member; etcd_member_replace=true: it is replaced' in plan['lines'][1]


def test_a_node_without_a_member_is_added_without_a_removal():
    plan, refusals = make(absent=['cp3'])
    assert refusals == []
    assert plan['state'] == 'absent' and plan['member_id'] is None
    assert 'remove' not in todo(plan)


def test_rerun_after_add_before_start_finishes_the_unstarted_learner():
    nodes, views = facts(learners=['cp3'], unstarted=['cp3'])
    nodes['cp3'] = node('cp3', where='held', has_files=False)
    plan, refusals = make(nodes=nodes, views=views)
    assert refusals == []
    assert plan['state'] == 'learner-unstarted'
    assert todo(plan) == ['stop', 'add', 'manifest', 'start', 'promote', 'verify']


def test_rerun_after_start_only_promotes_the_started_learner():
    plan, refusals = make(learners=['cp3'])
    assert refusals == []
    assert plan['state'] == 'learner-started'
    assert todo(plan) == ['promote', 'verify']


def test_etcd_34_adds_a_voting_member_and_does_not_promote():
    plan, _refusals = make(down=['cp3'], version='3.4.23')
    assert plan['as_learner'] is False
    assert 'promote' not in todo(plan)
    assert any('as a voting member (etcd 3.4 has no learners)' in line for line in plan['lines'])


def test_removal_that_would_break_the_quorum_is_refused():
    plan, refusals = make(down=['cp2', 'cp3'])
    assert plan is None
    causes = [r['cause'] for r in refusals]
    assert any('2 voting members are left and only 1 of them are started and healthy (cp2 down)' in c for c in causes)


def test_a_member_with_the_peer_url_under_another_name_is_refused():
    nodes, views = facts(down=['cp3'])
    nodes['cp3'] = node('cp3', name='cp3-new')
    plan, refusals = make(nodes=nodes, views=views)
    assert plan is None
    assert refusals[0]['host'] == 'cp3'
    assert 'etcd member cp3 (c3) has the peer URL https://10.0.0.13:2380 of cp3' in refusals[0]['cause']
    assert 'names its member cp3-new' in refusals[0]['cause']
    assert refusals[0]['fix'].startswith('Give --name=cp3 in the etcd.yaml of cp3')


def test_a_member_with_the_name_and_other_peer_urls_is_refused():
    nodes, views = facts(down=['cp3'])
    nodes['cp3']['member']['peer_urls'] = ['https://10.0.0.99:2380']
    _plan, refusals = make(nodes=nodes, views=views)
    assert 'has the peer URLs https://10.0.0.13:2380, but the etcd.yaml of cp3 says https://10.0.0.99:2380' \
        in refusals[0]['cause']


def test_another_learner_blocks_the_change_on_35():
    global HOSTS
    saved = HOSTS
    HOSTS = HOSTS + ['cp4']
    try:
        nodes, views = facts(learners=['cp4'], extra=['cp4'], down=['cp3'])
        nodes['cp4'] = node('cp4')
        views['cp4'] = copy.deepcopy(views['cp1'])
        plan, refusals = make(nodes=nodes, views=views)
    finally:
        HOSTS = saved
    assert plan is None
    assert any('learner cp4 (e5) is not promoted yet' in r['cause'] for r in refusals)


def test_unknown_host_empty_host_and_unanswered_nodes_are_refused_with_every_reason():
    plan, refusals = make(target='cp9')
    assert plan is None and refusals[0]['host'] == 'cp9'
    assert 'not a host of the play (the inventory group has: cp1, cp2, cp3)' in refusals[0]['cause']
    _plan, refusals = make(target='')
    assert 'etcd_member_host' in refusals[0]['fix']

    nodes, views = facts(down=['cp3'])
    del nodes['cp2']
    views['cp1'] = {'error': 'etcdctl not found'}
    _plan, refusals = make(nodes=nodes, views=views)
    assert [r['host'] for r in refusals] == ['cp1', 'cp2', 'cp3']
    assert 'etcdctl not found' in refusals[0]['cause']
    assert 'unreachable' in refusals[1]['cause']
    assert 'no other control plane runs a healthy voting etcd member' in refusals[2]['cause']


def test_a_target_without_etcd_yaml_or_with_two_is_refused():
    nodes, views = facts(down=['cp3'])
    nodes['cp3'] = dict(node('cp3'), manifest_where='none', member={})
    _plan, refusals = make(nodes=nodes, views=views)
    assert 'it has no etcd.yaml in /etc/kubernetes/manifests nor in' in refusals[0]['cause']
    nodes['cp3'] = dict(node('cp3'), manifest_where='both')
    _plan, refusals = make(nodes=nodes, views=views)
    assert 'etcd.yaml is both in' in refusals[0]['cause']


def test_a_node_of_another_cluster_is_refused():
    nodes, views = facts(down=['cp3'])
    views['cp2']['cluster_id'] = 'eeee'
    _plan, refusals = make(nodes=nodes, views=views)
    assert refusals[0]['host'] == 'cp2' and 'cluster eeee, cp1 to cluster ffff' in refusals[0]['cause']


def test_helper_skips_a_node_whose_own_member_is_down():
    nodes, views = facts(down=['cp1'], absent=[])
    nodes['cp3']['data_dir_has_files'] = False
    plan, refusals = make(nodes=nodes, views=views, replace=True, target='cp3')
    # cp1 down and cp3 removed would leave 2 voting with 1 healthy: refused, but the helper choice is cp2.
    assert plan is None and any('cp1 down' in r['cause'] for r in refusals)
    assert mp._choose_helper('cp3', HOSTS, nodes, views) == 'cp2'


def test_missing_option_is_a_bug_of_the_role():
    nodes, views = facts()
    with pytest.raises(mp.MemberPlanError, match='timestamp'):
        mp.plan('cp3', HOSTS, nodes, views, options={})


def test_refusal_text_lists_host_cause_and_fix():
    text = mp.refusal_text([mp.refusal('cp3', 'It is broken.', 'Fix it.')])
    assert text == ('The member change was refused before anything was changed (1 problem):\n'
                    '- cp3: It is broken. Fix: Fix it.')


def after_cluster(learner=False, names=('cp1', 'cp2', 'cp3'), revision=100, leaders=1, cluster_id='ffff'):
    view = cluster(learners=['cp3'] if learner else [])
    view['cluster_id'] = cluster_id
    view['members'] = [m for m in view['members'] if m['name'] in names]
    for index, endpoint in enumerate(view['endpoints']):
        endpoint['is_leader'] = index < leaders
        if endpoint['name'] == 'cp3':
            endpoint['revision'] = revision
    return view


def test_verify_passes_and_names_every_problem():
    plan, _refusals = make(down=['cp3'])
    assert mp.verify(plan, after_cluster(), 100) == []
    problems = mp.verify(plan, after_cluster(learner=True, names=('cp1', 'cp3'), revision=90, leaders=2,
                                             cluster_id='eeee'), 100)
    assert problems == ['the members are cp1, cp3, not cp1, cp2, cp3', 'member cp3 is still a learner',
                        '2 leaders instead of one', 'cluster ID is eeee, was ffff',
                        "cp3 is at revision 90, behind the leader's 100"]
    assert mp.member_id_of(after_cluster(), 'cp3') == 'c3'


def test_put_back_only_while_the_membership_is_unchanged():
    assert mp.can_put_back(['stop', 'move_aside']) is True
    assert mp.can_put_back(['stop', 'move_aside', 'remove']) is False
    assert mp.can_put_back(['stop', 'add']) is False


def test_failure_reports_say_what_was_done_and_what_to_run_next():
    plan, _refusals = make(down=['cp3'])
    failure = {'task': 'Remove the old member', 'msg': 'boom'}
    restored = mp.failure_report(plan, ['stop', 'move_aside'], failure, True)
    assert restored.startswith('etcd member change of cp3 FAILED at "Remove the old member": boom\n'
                               'Done before the failure: stop, move_aside.\nPUT BACK: cp3 has its original etcd.yaml')
    not_restored = mp.failure_report(plan, ['stop', 'move_aside'], failure, False)
    assert 'NOT PUT BACK: putting cp3 back failed too' in not_restored
    assert '/var/lib/etcd.replaced-20261203T140000Z' in not_restored
    changed = mp.failure_report(plan, ['stop', 'move_aside', 'remove', 'add', 'manifest', 'start'],
                                {'task': 'Promote', 'msg': 'not in sync'}, False)
    assert 'member cp3 added back as a learner, not promoted yet' in changed
    assert 'run the same playbook again with -e etcd_member_host=cp3' in changed
    removed = mp.failure_report(plan, ['stop', 'remove'], failure, False)
    assert 'member cp3 removed)' in removed and '(nothing was moved)' in removed
