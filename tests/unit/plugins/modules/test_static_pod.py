# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import stat
import sys

import pytest

from ansible.module_utils import basic

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.modules import static_pod

from unit_helpers import run_module

# A crictl stand-in that behaves like a kubelet reacting at once: a container of a pod runs exactly while its
# manifest is in the manifests dir, unless config.json says otherwise: stuck_running (runs whatever happens),
# never_starts, old_running_polls {name: N} (the old container c0ffee<name> runs for the first N `ps --state` calls,
# whatever the manifest does), new_id {name: suffix} (the container started from the manifest is
# c0ffee<name><suffix>). Every call is logged with the manifests dir listing at that moment.
FAKE_CRICTL = r'''#!@PYTHON@
import json, os, re, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, 'config.json')) as handle:
    config = json.load(handle)
args = sys.argv[1:]
with open(os.path.join(here, 'calls.log'), 'a') as handle:
    handle.write('%s | %s\n' % (' '.join(args), ','.join(sorted(os.listdir(config['manifests'])))))
PODS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy']
def count_poll(name):
    path = os.path.join(here, 'polls.json')
    polls = json.load(open(path)) if os.path.exists(path) else {}
    polls[name] = polls.get(name, 0) + 1
    with open(path, 'w') as handle:
        json.dump(polls, handle)
    return polls[name]
def old_id(name):
    return 'c0ffee%s' % name.replace('-', '')
def running(name, poll):
    if name in config.get('stuck_running', []):
        return [old_id(name)]
    if poll <= config.get('old_running_polls', {}).get(name, 0):
        return [old_id(name)]
    if name in config.get('never_starts', []):
        return []
    if os.path.exists(os.path.join(config['manifests'], name + '.yaml')):
        return [old_id(name) + config.get('new_id', {}).get(name, '')]
    return []
if args[0] == 'ps':
    rx = re.compile(args[args.index('--name') + 1])
    names = [name for name in PODS if rx.search(name)]
    if '--state' in args:
        containers = [{'id': cid, 'metadata': {'name': name, 'attempt': 0}, 'state': 'CONTAINER_RUNNING'}
                      for name in names for cid in running(name, count_poll(name))]
        print(json.dumps({'containers': containers}))
    elif '-q' in args:
        for name in names:
            print(old_id(name))
    else:
        print('CONTAINER           IMAGE   CREATED   STATE     NAME   ATTEMPT   POD ID   POD')
        for name in names:
            print('%s   etcd    1m ago    %s   %s   3   abc   %s-node' % (old_id(name), 'Running' if running(name, 10 ** 6)
                                                                         else 'Exited', name, name))
elif args[0] == 'logs':
    print('{"level":"fatal","msg":"member has already been bootstrapped"}', file=sys.stderr)
sys.exit(0)
'''


@pytest.fixture
def node(tmp_path, monkeypatch):
    manifests = tmp_path / 'manifests'
    manifests.mkdir()
    for name in ('etcd', 'kube-apiserver', 'kube-scheduler'):
        (manifests / (name + '.yaml')).write_text('kind: Pod\nmetadata:\n  name: %s\n' % name)
    tools = tmp_path / 'bin'
    tools.mkdir()
    crictl = tools / 'crictl'
    crictl.write_text(FAKE_CRICTL.replace('@PYTHON@', sys.executable))
    crictl.chmod(0o755)
    info = {'manifests': str(manifests), 'holding': str(tmp_path / 'kubeops-etcd' / 'held'),
            'replaced': str(tmp_path / 'kubeops-etcd' / 'replaced'), 'prepared': str(tmp_path / 'prepared'),
            'crictl': str(crictl), 'tools': tools}

    def configure(**config):
        for name in ('polls.json', 'calls.log'):
            if (tools / name).exists():
                (tools / name).unlink()
        (tools / 'config.json').write_text(json.dumps(dict(config, manifests=str(manifests))))
    info['configure'] = configure
    info['configure']()
    info['calls'] = lambda: (tools / 'calls.log').read_text().splitlines() if (tools / 'calls.log').exists() else []
    monkeypatch.setattr(static_pod, 'POLL_INTERVAL', 0.01)
    return info


@pytest.fixture
def run(node):
    """The module's result, whether it exited or failed, for ``names`` in the node's manifests dir."""
    def _run(names, state, check=False, **more):
        args = {'names': names, 'state': state, 'manifests_dir': node['manifests'], 'holding_dir': node['holding'],
                'crictl_path': node['crictl'], 'timeout': 2}
        args.update(more)
        return run_module(static_pod, args, check=check)[1]
    return _run


def listing(node):
    held = sorted(os.listdir(node['holding'])) if os.path.isdir(node['holding']) else []
    return sorted(os.listdir(node['manifests'])), held


def test_stop_check_real_again_and_again_in_check(run, node):
    checked = run(['kube-apiserver', 'etcd'], 'stopped', check=True)
    assert checked['changed'] is True
    assert [p['state'] for p in checked['pods']] == ['stopped', 'stopped']
    assert listing(node) == (['etcd.yaml', 'kube-apiserver.yaml', 'kube-scheduler.yaml'], [])

    real = run(['kube-apiserver', 'etcd'], 'stopped')
    assert real['changed'] is True
    assert listing(node) == (['kube-scheduler.yaml'], ['etcd.yaml', 'kube-apiserver.yaml'])
    assert [(p['name'], p['changed'], p['state'], p['container_ids']) for p in real['pods']] == [
        ('kube-apiserver', True, 'stopped', ['c0ffeekubeapiserver']),
        ('etcd', True, 'stopped', ['c0ffeeetcd'])]
    assert real['pods'][1]['held_path'] == os.path.join(node['holding'], 'etcd.yaml')
    assert stat.S_IMODE(os.stat(node['holding']).st_mode) == 0o700

    again = run(['kube-apiserver', 'etcd'], 'stopped')
    assert again['changed'] is False
    assert [p['changed'] for p in again['pods']] == [False, False]

    again_checked = run(['kube-apiserver', 'etcd'], 'stopped', check=True)
    assert again_checked['changed'] is False
    assert listing(node) == (['kube-scheduler.yaml'], ['etcd.yaml', 'kube-apiserver.yaml'])


def test_start_check_real_again_and_again_in_check(run, node):
    run(['kube-apiserver', 'etcd'], 'stopped')
    checked = run(['etcd', 'kube-apiserver'], 'started', check=True)
    assert checked['changed'] is True
    assert listing(node) == (['kube-scheduler.yaml'], ['etcd.yaml', 'kube-apiserver.yaml'])

    real = run(['etcd', 'kube-apiserver'], 'started')
    assert real['changed'] is True
    assert [(p['name'], p['state'], p['container_ids']) for p in real['pods']] == [
        ('etcd', 'started', ['c0ffeeetcd']), ('kube-apiserver', 'started', ['c0ffeekubeapiserver'])]
    assert listing(node) == (['etcd.yaml', 'kube-apiserver.yaml', 'kube-scheduler.yaml'], [])

    assert run(['etcd', 'kube-apiserver'], 'started')['changed'] is False
    assert run(['etcd', 'kube-apiserver'], 'started', check=True)['changed'] is False


def polls(node):
    """(crictl --name pattern, manifests dir listing) of every `crictl ps --state` call, in order."""
    found = []
    for call in node['calls']():
        args, listing = call.split(' | ')
        if '--state' in args:
            found.append((args.split()[2], listing.split(',') if listing else []))
    return found


def test_names_are_moved_together_then_waited_for_with_one_crictl_call_per_poll(run, node):
    node['configure'](old_running_polls={'kube-apiserver': 3})
    result = run(['kube-apiserver', 'kube-scheduler'], 'stopped')
    assert result['changed'] is True
    seen = polls(node)
    assert all(pattern == '^(kube-apiserver|kube-scheduler)$' for pattern, dummy in seen)
    # The first call sees what is about to stop; every later one, both manifests already gone.
    assert seen[0][1] == ['etcd.yaml', 'kube-apiserver.yaml', 'kube-scheduler.yaml']
    assert all(listing == ['etcd.yaml'] for dummy, listing in seen[1:])
    assert len(seen) == 4
    assert [(p['name'], p['container_ids']) for p in result['pods']] == [
        ('kube-apiserver', ['c0ffeekubeapiserver']), ('kube-scheduler', ['c0ffeekubescheduler'])]


def test_then_moves_only_after_every_pod_of_names_is_gone(run, node):
    node['configure'](old_running_polls={'kube-apiserver': 4})
    result = run(['kube-apiserver', 'kube-scheduler'], 'stopped', then=['etcd'])
    assert result['changed'] is True
    assert listing(node) == ([], ['etcd.yaml', 'kube-apiserver.yaml', 'kube-scheduler.yaml'])
    seen = polls(node)
    api_polls = [listing for pattern, listing in seen if pattern == '^(kube-apiserver|kube-scheduler)$']
    etcd_polls = [listing for pattern, listing in seen if pattern == '^(etcd)$']
    assert [pattern for pattern, dummy in seen] == ['^(kube-apiserver|kube-scheduler)$'] * 5 + ['^(etcd)$'] * 2
    # While the API server still ran, etcd's manifest stayed where it was.
    assert all('etcd.yaml' in listing for listing in api_polls)
    assert etcd_polls[0] == ['etcd.yaml'] and etcd_polls[1] == []
    pods = dict((p['name'], p) for p in result['pods'])
    assert [p['name'] for p in result['pods']] == ['kube-apiserver', 'kube-scheduler', 'etcd']
    assert max(pods[name]['settled_at'] for name in ('kube-apiserver', 'kube-scheduler')) <= pods['etcd']['moved_at']
    assert pods['etcd']['container_ids'] == ['c0ffeeetcd']
    assert all(p['state'] == 'stopped' and p['changed'] for p in result['pods'])

    again = run(['kube-apiserver', 'kube-scheduler'], 'stopped', then=['etcd'])
    assert again['changed'] is False
    assert [p['moved_at'] for p in again['pods']] == [None, None, None]


def test_then_after_closed_moves_etcd_only_once_the_other_members_stopped_listening(run, node, monkeypatch):
    # Two peers: the first stops listening after two probes, the second is already gone.
    probes = []

    def accepts(address):
        probes.append(address)
        return address == ('10.0.0.12', 2380) and probes.count(address) <= 2
    monkeypatch.setattr(static_pod, 'accepts_connections', accepts)
    monkeypatch.setattr(static_pod.time, 'sleep', lambda seconds: None)
    result = run(['kube-apiserver'], 'stopped', then=['etcd'],
                 then_after_closed=['https://10.0.0.12:2380', 'https://[fd00::13]:2380'])
    assert result['changed'] is True
    assert probes.count(('10.0.0.12', 2380)) == 3 and ('fd00::13', 2380) in probes
    assert listing(node) == (['kube-scheduler.yaml'], ['etcd.yaml', 'kube-apiserver.yaml'])


def test_then_after_closed_times_out_naming_the_peers_still_listening_and_leaves_etcd_running(run, node, monkeypatch):
    monkeypatch.setattr(static_pod, 'accepts_connections', lambda address: True)
    result = run(['kube-apiserver'], 'stopped', then=['etcd'], then_after_closed=['https://10.0.0.12:2380'], timeout=0)
    assert result['failed']
    assert 'https://10.0.0.12:2380' in result['msg'] and 'still accepts connections' in result['msg']
    assert 'etcd.yaml' in listing(node)[0]


@pytest.mark.parametrize('options, message', [
    ({'then_after_closed': ['https://10.0.0.12:2380']}, 'then_after_closed needs then'),
    ({'then': ['etcd'], 'then_after_closed': ['10.0.0.12']}, 'is not a URL with a host and a port'),
])
def test_then_after_closed_is_checked_before_anything_moves(run, node, options, message):
    before = listing(node)
    result = run(['kube-apiserver'], 'stopped', **options)
    assert result['failed'] and message in result['msg']
    assert listing(node) == before


def test_start_with_then_starts_etcd_after_the_others(run, node):
    run(['kube-apiserver'], 'stopped', then=['etcd'])
    checked = run(['etcd'], 'started', then=['kube-apiserver'], check=True)
    assert checked['changed'] is True and [p['state'] for p in checked['pods']] == ['started', 'started']
    real = run(['etcd'], 'started', then=['kube-apiserver'])
    assert [(p['name'], p['changed'], p['container_ids']) for p in real['pods']] == [
        ('etcd', True, ['c0ffeeetcd']), ('kube-apiserver', True, ['c0ffeekubeapiserver'])]
    assert real['pods'][0]['settled_at'] <= real['pods'][1]['moved_at']
    assert run(['etcd'], 'started', then=['kube-apiserver'])['changed'] is False
    assert run(['etcd'], 'started', then=['kube-apiserver'], check=True)['changed'] is False


def test_a_timeout_in_names_leaves_then_untouched(run, node):
    node['configure'](stuck_running=['kube-apiserver'])
    result = run(['kube-apiserver'], 'stopped', then=['etcd'], timeout=0)
    assert result['failed'] and result['changed'] is True
    assert 'Static pod kube-apiserver on %s did not stop within 0 seconds' % static_pod.node_name() in result['msg']
    assert 'The pods of then (etcd) were not touched.' in result['msg']
    assert listing(node) == (['etcd.yaml', 'kube-scheduler.yaml'], ['kube-apiserver.yaml'])
    assert [(p['name'], p['state'], p['changed']) for p in result['pods']] == [
        ('kube-apiserver', 'stopped', True), ('etcd', 'started', False)]


def test_a_started_pod_counts_only_with_a_container_that_did_not_run_before_the_move(run, node):
    run(['etcd'], 'stopped')
    # The old container is still shutting down when the manifest comes back; the kubelet starts a new one later.
    node['configure'](old_running_polls={'etcd': 3}, new_id={'etcd': 'b'})
    result = run(['etcd'], 'started')
    assert result['pods'][0]['container_ids'] == ['c0ffeeetcdb']
    assert len(polls(node)) == 4

    run(['etcd'], 'stopped')
    node['configure'](old_running_polls={'etcd': 10 ** 6})
    stuck = run(['etcd'], 'started', timeout=0)
    assert stuck['failed']
    assert 'Static pod etcd on %s did not run within 0 seconds' % static_pod.node_name() in stuck['msg']


@pytest.mark.parametrize('more, message', [
    ({'then': ['etcd'], 'wait': False}, 'then needs wait=true'),
    ({'then': ['kube-apiserver']}, 'names and then list kube-apiserver more than once'),
    ({'then': ['kube-proxy']}, 'kube-proxy.yaml is neither in'),
])
def test_then_is_checked_with_names_before_anything_moves(run, node, more, message):
    before = listing(node)
    result = run(['kube-apiserver'], 'stopped', **more)
    assert result['failed']
    assert message in result['msg']
    assert listing(node) == before


def prepare(node, text, mode=0o600):
    os.makedirs(node['prepared'], exist_ok=True)
    path = os.path.join(node['prepared'], 'etcd.yaml')
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, mode)
    return path


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


NEW_ETCD = 'kind: Pod\nmetadata:\n  name: etcd\n# restored data dir\n'


def test_sources_start_the_prepared_manifest_and_keep_the_held_one(run, node):
    run(['kube-apiserver'], 'stopped', then=['etcd'])
    held = os.path.join(node['holding'], 'etcd.yaml')
    held_bytes = read(held)
    source = prepare(node, NEW_ETCD, mode=0o640)
    args = {'sources': {'etcd': source}, 'replaced_dir': node['replaced']}
    checked = run(['etcd'], 'started', check=True, **args)
    assert checked['changed'] is True
    assert checked['pods'][0]['source'] == source
    assert checked['pods'][0]['replaced_path'] == os.path.join(node['replaced'], 'etcd.yaml')
    assert listing(node) == (['kube-scheduler.yaml'], ['etcd.yaml', 'kube-apiserver.yaml'])
    assert os.path.exists(source) and not os.path.exists(node['replaced'])

    real = run(['etcd'], 'started', **args)
    assert real['changed'] is True
    pod = real['pods'][0]
    assert (pod['name'], pod['state'], pod['source'], pod['container_ids']) == ('etcd', 'started', source, ['c0ffeeetcd'])
    assert pod['replaced_path'] == os.path.join(node['replaced'], 'etcd.yaml')
    manifest = os.path.join(node['manifests'], 'etcd.yaml')
    assert read(manifest) == NEW_ETCD.encode()
    assert stat.S_IMODE(os.stat(manifest).st_mode) == 0o640
    assert not os.path.exists(source)
    assert read(pod['replaced_path']) == held_bytes
    assert stat.S_IMODE(os.stat(node['replaced']).st_mode) == 0o700
    assert listing(node) == (['etcd.yaml', 'kube-scheduler.yaml'], ['kube-apiserver.yaml'])

    # Again: the pod runs from the installed manifest and the source is gone; refused, nothing moves.
    for check in (False, True):
        again = run(['etcd'], 'started', check=check, **args)
        assert again['failed'] and again['changed'] is False
        assert 'etcd.yaml is already in %s, so etcd runs; stop it first' % node['manifests'] in again['msg']
    assert read(manifest) == NEW_ETCD.encode()


def test_a_replaced_manifest_never_overwrites_an_earlier_one(run, node):
    os.makedirs(node['replaced'])
    earlier = os.path.join(node['replaced'], 'etcd.yaml')
    with open(earlier, 'w') as handle:
        handle.write('an earlier run\n')
    run(['etcd'], 'stopped')
    held_bytes = read(os.path.join(node['holding'], 'etcd.yaml'))
    result = run(['etcd'], 'started', sources={'etcd': prepare(node, NEW_ETCD)}, replaced_dir=node['replaced'])
    replaced = result['pods'][0]['replaced_path']
    assert replaced.startswith(earlier + '.') and replaced[len(earlier) + 1:].endswith('Z')
    assert read(replaced) == held_bytes
    assert read(earlier) == b'an earlier run\n'


def test_a_source_identical_to_the_held_manifest_moves_the_held_one_back_and_stays(run, node):
    original = read(os.path.join(node['manifests'], 'etcd.yaml'))
    run(['etcd'], 'stopped')
    source = prepare(node, original.decode())
    result = run(['etcd'], 'started', sources={'etcd': source}, replaced_dir=node['replaced'])
    assert result['changed'] is True
    assert result['pods'][0]['source'] == source and result['pods'][0]['replaced_path'] is None
    assert read(source) == original
    assert read(os.path.join(node['manifests'], 'etcd.yaml')) == original
    assert not os.path.exists(node['replaced'])
    assert listing(node)[1] == []


def test_a_source_without_a_held_manifest_is_installed(run, node):
    os.unlink(os.path.join(node['manifests'], 'etcd.yaml'))
    source = prepare(node, NEW_ETCD)
    result = run(['etcd'], 'started', sources={'etcd': source}, replaced_dir=node['replaced'])
    assert result['changed'] is True and result['pods'][0]['replaced_path'] is None
    assert read(os.path.join(node['manifests'], 'etcd.yaml')) == NEW_ETCD.encode()


def bad_sources(node):
    """(module arguments, expected message) of every refusal of sources."""
    source = os.path.join(node['prepared'], 'etcd.yaml')
    inside = os.path.join(node['manifests'], '.etcd-prepared.yaml')
    return [
        ({'sources': {'etcd': source}, 'replaced_dir': node['replaced'], 'state': 'stopped'},
         'sources only applies to state=started'),
        ({'sources': {'etcd': source}}, 'missing parameter(s) required by \'sources\': replaced_dir'),
        ({'sources': {'etcd': os.path.join(node['prepared'], 'nope.yaml')}, 'replaced_dir': node['replaced']},
         'The source %s of etcd cannot be used: No such file or directory' % os.path.join(node['prepared'], 'nope.yaml')),
        ({'sources': {'etcd': node['prepared']}, 'replaced_dir': node['replaced']}, 'is not a regular file'),
        ({'sources': {'etcd': inside}, 'replaced_dir': node['replaced']}, 'where the kubelet runs it already'),
        ({'sources': {'etcd': 'prepared/etcd.yaml'}, 'replaced_dir': node['replaced']}, 'must be the absolute path'),
        ({'sources': {'kube-scheduler': source}, 'replaced_dir': node['replaced']}, 'in neither names nor then'),
        ({'sources': {'etcd': source}, 'replaced_dir': os.path.join(node['manifests'], 'old')},
         'the kubelet would run the replaced manifests'),
        ({'sources': {'etcd': source}, 'replaced_dir': node['holding']}, 'replaced_dir %s is holding_dir' % node['holding']),
    ]


@pytest.mark.parametrize('case', range(9))
def test_bad_sources_are_refused_before_anything_moves(run, node, case):
    run(['etcd'], 'stopped')
    prepare(node, NEW_ETCD)
    with open(os.path.join(node['manifests'], '.etcd-prepared.yaml'), 'w') as handle:
        handle.write(NEW_ETCD)
    more, message = bad_sources(node)[case]
    more.setdefault('state', 'started')
    before = listing(node), sorted(os.listdir(node['prepared']))
    for check in (True, False):
        result = run(['etcd'], check=check, **more)
        assert result['failed'], result
        assert message in result['msg']
        assert (listing(node), sorted(os.listdir(node['prepared']))) == before
    assert not os.path.exists(node['replaced'])


def test_a_source_for_a_running_pod_is_refused(run, node):
    source = prepare(node, NEW_ETCD)
    result = run(['kube-apiserver'], 'started', then=['etcd'], sources={'etcd': source}, replaced_dir=node['replaced'])
    assert result['failed']
    assert result['msg'].startswith('Nothing was moved on %s:' % static_pod.node_name())
    assert 'etcd.yaml is already in %s, so etcd runs; stop it first (state=stopped), then start it from %s.' % (
        node['manifests'], source) in result['msg']
    assert os.path.exists(source)


def test_a_failing_source_move_names_where_the_old_manifest_went(run, node, monkeypatch):
    run(['etcd'], 'stopped')
    source = prepare(node, NEW_ETCD)
    real_move = static_pod.move_file

    def move_file(src, dst):
        if src == source:
            raise static_pod.EtcdModuleError('Cannot move %s to %s on node: Permission denied' % (src, dst))
        return real_move(src, dst)
    monkeypatch.setattr(static_pod, 'move_file', move_file)
    result = run(['etcd'], 'started', sources={'etcd': source}, replaced_dir=node['replaced'])
    assert result['failed'] and result['changed'] is True
    replaced = os.path.join(node['replaced'], 'etcd.yaml')
    assert 'The manifest etcd ran from before is now %s' % replaced in result['msg']
    assert result['pods'][0]['replaced_path'] == replaced and os.path.exists(replaced)


class ScriptedCrictl(object):
    """What crictl.running returns at each poll."""

    def __init__(self, answers):
        self.answers = list(answers)

    def running(self, names):
        return self.answers.pop(0)

    def diagnostics(self, name):
        return 'diagnostics of %s' % name


def scripted_pods(*names):
    return [{'name': name, 'manifest': '/m/%s.yaml' % name, 'held_path': '/h/%s.yaml' % name, 'container_ids': [],
             'settled_at': None, 'waited_seconds': 0.0, '_moved': True} for name in names]


def test_a_stopped_pod_that_comes_back_is_waited_for_again():
    ticks = iter(range(100))
    pods = scripted_pods('etcd', 'kube-apiserver')
    crictl = ScriptedCrictl([
        ({'etcd': [], 'kube-apiserver': ['a']}, None),
        ({'etcd': ['e2'], 'kube-apiserver': []}, None),   # e.g. a left-over etcd.yaml.bak started etcd again
        ({'etcd': [], 'kube-apiserver': []}, None),
    ])
    static_pod.wait_for(crictl, pods, 'stopped', {}, 60, clock=lambda: float(next(ticks)), sleep=lambda s: None)
    etcd, apiserver = pods
    assert etcd['container_ids'] == ['e2'] and apiserver['container_ids'] == ['a']
    assert (etcd['waited_seconds'], apiserver['waited_seconds']) == (3.0, 2.0)


def test_a_crictl_failure_is_reported_when_the_wait_times_out():
    ticks = iter(range(100))
    crictl = ScriptedCrictl([(None, 'connect: no such file or directory')] * 3)
    with pytest.raises(EtcdModuleError) as caught:
        static_pod.wait_for(crictl, scripted_pods('etcd'), 'started', {}, 2, clock=lambda: float(next(ticks)),
                            sleep=lambda s: None)
    assert 'crictl failed: connect: no such file or directory.' in caught.value.msg
    assert caught.value.details['pending'] == ['etcd']
    assert caught.value.msg.endswith('diagnostics of etcd')


def test_manifest_in_both_places_is_refused_before_anything_moves(run, node):
    os.makedirs(node['holding'])
    with open(os.path.join(node['holding'], 'etcd.yaml'), 'w') as handle:
        handle.write('kind: Pod\n')
    before = listing(node)
    result = run(['kube-apiserver', 'etcd'], 'stopped')
    assert result['failed']
    assert 'Nothing was moved' in result['msg']
    assert 'etcd.yaml is both in' in result['msg']
    assert listing(node) == before


def test_manifest_in_neither_place_is_refused_before_anything_moves(run, node):
    before = listing(node)
    result = run(['kube-apiserver', 'kube-proxy'], 'stopped')
    assert result['failed']
    assert 'kube-proxy.yaml is neither in' in result['msg']
    assert listing(node) == before


def test_stop_timeout_names_the_pod_host_and_shows_crictl_output(run, node):
    node['configure'](stuck_running=['etcd'])
    result = run(['etcd'], 'stopped', timeout=0)
    assert result['failed']
    assert result['changed'] is True  # the manifest did move; the operator must know
    msg = result['msg']
    assert 'Static pod etcd on %s did not stop within 0 seconds' % static_pod.node_name() in msg
    assert 'Still running: c0ffeeetcd' in msg
    assert 'crictl ps -a --name ^etcd$' in msg and 'Running' in msg
    assert 'member has already been bootstrapped' in msg
    assert result['pods'][0]['state'] == 'stopped'


def test_start_timeout_reports_the_latest_container_logs(run, node):
    run(['etcd'], 'stopped')
    node['configure'](never_starts=['etcd'])
    result = run(['etcd'], 'started', timeout=0)
    assert result['failed']
    assert 'Static pod etcd on %s did not run within 0 seconds' % static_pod.node_name() in result['msg']
    assert 'last 20 log lines of container c0ffeeetcd' in result['msg']


def test_missing_crictl_fails_before_moving_unless_wait_is_false(run, node, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, *a, **k: None)
    before = listing(node)
    for check in (True, False):
        result = run(['etcd'], 'stopped', crictl_path=None, check=check)
        assert result['failed']
        assert 'crictl not found' in result['msg'] and 'wait=false' in result['msg']
        assert listing(node) == before
    result = run(['etcd'], 'stopped', crictl_path=None, wait=False)
    assert result['changed'] is True
    assert result['pods'][0]['container_ids'] == []
    assert listing(node) == (['kube-apiserver.yaml', 'kube-scheduler.yaml'], ['etcd.yaml'])


def test_holding_dir_inside_the_manifests_dir_is_refused(run, node):
    result = run(['etcd'], 'stopped', holding_dir=os.path.join(node['manifests'], 'held'))
    assert result['failed']
    assert 'inside manifests_dir' in result['msg']


@pytest.mark.parametrize('names, message', [
    ([], 'names is empty'),
    (['../etcd'], 'not a static pod name'),
    (['etcd', 'etcd'], 'more than once'),
])
def test_bad_names_are_refused(run, node, names, message):
    result = run(names, 'stopped')
    assert result['failed']
    assert message in result['msg']


def test_move_across_filesystems_copies_then_removes_the_source(tmp_path, monkeypatch):
    source = tmp_path / 'a' / 'etcd.yaml'
    source.parent.mkdir()
    source.write_text('kind: Pod\n')
    source.chmod(0o600)
    target_dir = tmp_path / 'b'
    target_dir.mkdir()
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, 'Invalid cross-device link')
        return real_rename(src, dst)
    monkeypatch.setattr(static_pod.os, 'rename', rename)
    static_pod.move_file(str(source), str(target_dir / 'etcd.yaml'))
    assert not source.exists()
    assert (target_dir / 'etcd.yaml').read_text() == 'kind: Pod\n'
    assert stat.S_IMODE((target_dir / 'etcd.yaml').stat().st_mode) == 0o600
    # The copy was made under a dot name (ignored by the kubelet) and renamed into place.
    assert os.path.basename(calls[1][0]).startswith('.')
    assert os.listdir(str(target_dir)) == ['etcd.yaml']


def test_move_never_overwrites(tmp_path):
    (tmp_path / 'a').write_text('a')
    (tmp_path / 'b').write_text('b')
    with pytest.raises(EtcdModuleError, match='the target exists'):
        static_pod.move_file(str(tmp_path / 'a'), str(tmp_path / 'b'))
    assert (tmp_path / 'b').read_text() == 'b'


def test_one_run_at_a_time_moves_manifests_and_a_second_waits_then_says_who_holds_the_lock(tmp_path):
    import fcntl
    holding = str(tmp_path / 'kubeops-etcd' / 'held')
    fd = static_pod.take_lock(holding, 5)
    path = static_pod.lock_path(holding)
    assert path == str(tmp_path / 'kubeops-etcd' / '.static_pod.lock')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(tmp_path / 'kubeops-etcd')).st_mode) == 0o700
    assert open(path).read() == '%d\n' % os.getpid()
    # Another run waits for it (a fake clock: 10 s pass per poll) and then names the holder and the fix.
    now = [0.0]

    def sleep(seconds):
        now[0] += 10
    with pytest.raises(EtcdModuleError) as caught:
        static_pod.take_lock(holding, 30, clock=lambda: now[0], sleep=sleep)
    assert caught.value.msg.startswith('Another static_pod run on %s (pid %d, ' % (static_pod.node_name(), os.getpid()))
    assert 'has held %s for more than 30 seconds' % path in caught.value.msg
    assert caught.value.msg.endswith('Nothing was moved.')
    assert now[0] >= 30
    # Released: the next run takes it at once, and the file is never left holding a dead pid.
    static_pod.release_lock(fd)
    assert open(path).read() == ''
    again = static_pod.take_lock(holding, 0)
    probe = os.open(path, os.O_RDWR)
    with pytest.raises(OSError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(probe)
    static_pod.release_lock(again)
