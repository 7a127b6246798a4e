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

from ansible_collections.kubeops.etcd.plugins.modules import static_pod_info

from unit_helpers import FIXTURES, run_module

# A crictl that prints, for `ps -a --name ... -o json`, the containers of config.json and, for `logs`, the recorded
# output of a real etcd on the stream real crictl uses (etcd logs to stderr), or fails as config.json says.
FAKE_CRICTL = r'''#!@PYTHON@
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
config = json.load(open(os.path.join(here, 'config.json')))
args = sys.argv[1:]
with open(os.path.join(here, 'calls.log'), 'a') as log:
    log.write(' '.join(args) + '\n')
if config.get('fail'):
    sys.stderr.write(config['fail'] + '\n')
    sys.exit(1)
if args[0] == 'ps':
    print(json.dumps({'containers': config['containers']}))
elif args[0] == 'logs':
    tail = int(args[args.index('--tail') + 1])
    text = config['logs'].get(args[-1], {})
    sys.stdout.write(''.join(text.get('stdout', '').splitlines(True)[-tail:]))
    sys.stderr.write(''.join(text.get('stderr', '').splitlines(True)[-tail:]))
'''


def recorded(version, name):
    base = os.path.join(FIXTURES, 'etcd_outputs', version, name)
    return dict((stream, open('%s.%s' % (base, stream)).read()) for stream in ('stdout', 'stderr'))


@pytest.fixture
def fake_crictl(tmp_path):
    path = tmp_path / 'crictl'
    path.write_text(FAKE_CRICTL.replace('@PYTHON@', sys.executable))
    path.chmod(0o755)

    def configure(**config):
        (tmp_path / 'config.json').write_text(json.dumps(config))
        return str(path)
    configure.calls = lambda: (tmp_path / 'calls.log').read_text().splitlines()
    return configure


def container(cid, name, attempt, created, state='CONTAINER_EXITED'):
    return {'id': cid, 'metadata': {'name': name, 'attempt': attempt}, 'state': state, 'createdAt': str(created)}


@pytest.mark.parametrize('version', ['3.4.23', '3.5.30'])
def test_reads_the_newest_etcd_container_and_the_bind_error_that_stopped_it(fake_crictl, version):
    path = fake_crictl(
        containers=[container('a' * 64, 'etcd', 1, 100), container('b' * 64, 'etcd', 2, 200),
                    container('c' * 64, 'kube-apiserver', 9, 300, 'CONTAINER_RUNNING')],
        logs={'b' * 64: recorded(version, 'etcd_client_port_taken')})
    for check in (False, True):
        ok, result = run_module(static_pod_info, {'crictl_path': path, 'log_lines': 5}, check=check)
        assert ok and not result['changed'], result
        pod = result['pods']['etcd']
        assert (pod['id'], pod['state'], pod['attempt'], pod['created'], pod['error']) == ('b' * 64, 'exited', 2, 200,
                                                                                           None)
        assert pod['cause'].endswith(': bind: address already in use'), pod
        assert 0 < len(pod['log_tail']) <= 10 and pod['cause'].split(': ', 1)[-1] in '\n'.join(pod['log_tail'])
        assert result['summary']['etcd'].startswith('etcd on %s: container %s exited (attempt 2), its log ends with: '
                                                    % (static_pod_info.node_name(), 'b' * 13)), result['summary']
    # Read-only: crictl is only asked to list and to print logs.
    assert set(call.split()[0] for call in fake_crictl.calls()) == {'ps', 'logs'}


def test_no_container_and_a_failing_runtime_are_reported_not_raised(fake_crictl):
    path = fake_crictl(containers=[], logs={})
    ok, result = run_module(static_pod_info, {'crictl_path': path, 'names': ['etcd', 'kube-apiserver']})
    assert ok, result
    assert result['pods']['etcd']['id'] is None and result['pods']['kube-apiserver']['cause'] == ''
    assert result['summary']['etcd'].endswith('etcd: no container of it is known to the runtime'.split(': ', 1)[1])

    path = fake_crictl(fail='connect: connect endpoint unix:///run/containerd/containerd.sock: no such file')
    ok, result = run_module(static_pod_info, {'crictl_path': path})
    assert ok, result
    assert 'no such file' in result['pods']['etcd']['error']
    assert 'crictl could not say (connect: connect endpoint' in result['summary']['etcd']


def test_bad_input_is_refused_naming_the_fix(fake_crictl, tmp_path):
    ok, result = run_module(static_pod_info, {'crictl_path': fake_crictl(containers=[], logs={}), 'names': []})
    assert not ok and 'names is empty' in result['msg']
    ok, result = run_module(static_pod_info, {'crictl_path': str(tmp_path / 'nope')})
    assert not ok and 'crictl_path %s' % (tmp_path / 'nope') in result['msg'] and 'not an executable' in result['msg']
    ok, result = run_module(static_pod_info, {'crictl_path': fake_crictl(containers=[], logs={}), 'log_lines': 0})
    assert not ok and 'log_lines must be 1 or more' in result['msg']
