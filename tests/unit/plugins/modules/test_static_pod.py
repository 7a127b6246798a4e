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

# A crictl stand-in that behaves like a kubelet reacting at once: a container of a pod runs
# exactly while its manifest is in the manifests dir, unless config.json says it is stuck.
FAKE_CRICTL = r'''#!@PYTHON@
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, 'config.json')) as handle:
    config = json.load(handle)
with open(os.path.join(here, 'calls.log'), 'a') as handle:
    handle.write(' '.join(sys.argv[1:]) + '\n')
args = sys.argv[1:]
def name_filter():
    value = args[args.index('--name') + 1]
    return value.strip('^$')
def running(name):
    if name in config.get('stuck_running', []):
        return True
    if name in config.get('never_starts', []):
        return False
    return os.path.exists(os.path.join(config['manifests'], name + '.yaml'))
if args[0] == 'ps':
    name = name_filter()
    cid = 'c0ffee%s' % name.replace('-', '')
    if '--state' in args:
        if running(name):
            print(cid)
    elif '-q' in args:
        print(cid)
    else:
        print('CONTAINER           IMAGE   CREATED   STATE     NAME   ATTEMPT   POD ID   POD')
        print('%s   etcd    1m ago    %s   %s   3   abc   %s-node' % (cid, 'Running' if running(name) else 'Exited', name, name))
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
            'crictl': str(crictl), 'tools': tools}
    info['configure'] = lambda **config: (tools / 'config.json').write_text(json.dumps(dict(config, manifests=str(manifests))))
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


def test_pods_are_handled_one_after_the_other_in_the_order_given(run, node):
    run(['kube-apiserver', 'etcd'], 'stopped')
    queries = [call for call in node['calls']() if '--state' in call]
    # The API server was gone before etcd's manifest moved: its wait came first.
    assert queries[0].startswith('ps --name ^kube-apiserver$')
    assert queries[-1].startswith('ps --name ^etcd$')


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
