# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import crictl

from unit_helpers import FIXTURES


def recorded(version, name):
    """stdout and stderr of a real etcd run (tests/unit/fixtures/etcd_outputs/capture.sh), as crictl logs prints
    them."""
    base = os.path.join(FIXTURES, 'etcd_outputs', version, name)
    parts = []
    for stream in ('stdout', 'stderr'):
        with open('%s.%s' % (base, stream)) as handle:
            parts.append(handle.read())
    return '\n'.join(parts)


def test_name_pattern_matches_exactly_the_names():
    pattern = re.compile(crictl.name_pattern(['etcd', 'kube-apiserver', 'my.pod']))
    assert [name for name in ('etcd', 'etcd-2', 'kube-apiserver', 'my.pod', 'myxpod') if pattern.search(name)] == [
        'etcd', 'kube-apiserver', 'my.pod']


def test_parse_running_groups_ids_by_name():
    text = json.dumps({'containers': [{'id': 'a1', 'metadata': {'name': 'etcd'}},
                                      {'id': 'b2', 'metadata': {'name': 'kube-apiserver'}},
                                      {'id': 'c3', 'metadata': {'name': 'etcd'}},
                                      {'id': 'd4', 'metadata': {'name': 'coredns'}}]})
    assert crictl.parse_running(text, ['etcd', 'kube-apiserver', 'kube-scheduler']) == {
        'etcd': ['a1', 'c3'], 'kube-apiserver': ['b2'], 'kube-scheduler': []}
    assert crictl.parse_running('{"containers": null}', ['etcd']) == {'etcd': []}


@pytest.mark.parametrize('version', ['3.4.23', '3.5.30'])
def test_the_cause_of_a_taken_client_port_is_the_bind_error_of_real_etcd(version):
    text = recorded(version, 'etcd_client_port_taken')
    cause = crictl.log_cause(text)
    assert re.search(r'listen tcp 127\.0\.0\.1:\d+: bind: address already in use$', cause), cause
    if version == '3.5.30':
        # The fatal entry, with its msg, wins over the warning logged just before it.
        assert cause.startswith('discovery failed: '), cause


def test_a_panic_wins_over_fatal_and_error_lines_and_the_last_of_a_rank_wins():
    log = '\n'.join([
        '{"level":"error","msg":"first error"}',
        '{"level":"fatal","msg":"fatal one","error":"e1"}',
        '{"level":"error","msg":"later error"}',
        '{"level":"fatal","msg":"fatal two","error":"e2"}',
        '{"level":"info","msg":"closing"}',
    ])
    assert crictl.log_cause(log) == 'fatal two: e2'
    assert crictl.log_cause(log + '\npanic: runtime error: index out of range\n\ngoroutine 1 [running]:\nmain.main()') \
        == 'panic: runtime error: index out of range'


def test_capnslog_critical_and_error_levels_and_klog():
    log = '\n'.join([
        '2026-12-04 03:00:44.882823 I | etcdmain: setting maximum number of CPUs to 2',
        '2026-12-04 03:00:44.883000 E | rafthttp: failed to dial 1234',
        '2026-12-04 03:00:44.883292 N | etcdserver: notice only',
    ])
    assert crictl.log_cause(log) == 'rafthttp: failed to dial 1234'
    assert crictl.log_cause(log + '\n2026-12-04 03:00:45.1 C | etcdmain: cannot access data directory: permission '
                                  'denied') == 'etcdmain: cannot access data directory: permission denied'
    assert crictl.log_cause('I1204 03:00:44.1  1 a.go:1] fine\nE1204 03:00:44.2  1 b.go:2] broke') == 'broke'


def test_without_a_marked_line_the_last_line_is_the_cause_and_long_causes_are_cut():
    assert crictl.log_cause('starting\nexec /usr/local/bin/etcd: no such file or directory\n') == \
        'exec /usr/local/bin/etcd: no such file or directory'
    assert crictl.log_cause('starting\nserving', last_line=False) == ''
    assert crictl.log_cause('serving\n{"level":"error","msg":"lost leader"}', last_line=False) == 'lost leader'
    assert crictl.log_cause('') == '' and crictl.log_cause(None) == ''
    long_cause = crictl.log_cause('{"level":"fatal","msg":"x","error":"%s"}' % ('y' * 1000))
    assert len(long_cause) == crictl.CAUSE_LIMIT + 4 and long_cause.endswith(' ...')


def test_newest_container_is_the_last_created_with_its_state_and_attempt():
    text = json.dumps({'containers': [
        {'id': 'old1', 'metadata': {'name': 'etcd', 'attempt': 1}, 'state': 'CONTAINER_EXITED',
         'createdAt': '1700000000000000000'},
        {'id': 'new2', 'metadata': {'name': 'etcd', 'attempt': 2}, 'state': 'CONTAINER_EXITED',
         'createdAt': '1700000009000000000'},
        {'id': 'api1', 'metadata': {'name': 'kube-apiserver', 'attempt': 7}, 'state': 'CONTAINER_RUNNING',
         'createdAt': '1800000000000000000'}]})
    assert crictl.newest_container(text, 'etcd') == {
        'id': 'new2', 'state': 'exited', 'attempt': 2, 'created': 1700000009000000000}
    assert crictl.newest_container(text, 'kube-scheduler') is None
    assert crictl.newest_container('{"containers": null}', 'etcd') is None


def test_container_summary_names_host_container_state_attempt_and_cause():
    container = {'id': '0123456789abcdef0123', 'state': 'exited', 'attempt': 3,
                 'cause': 'discovery failed: listen tcp 127.0.1.2:2379: bind: address already in use'}
    assert crictl.container_summary('cp2', 'etcd', container) == (
        'etcd on cp2: container 0123456789abc exited (attempt 3), its log ends with: discovery failed: listen tcp '
        '127.0.1.2:2379: bind: address already in use')
    assert crictl.container_summary('cp2', 'etcd', None) == 'etcd on cp2: no container of it is known to the runtime'
    assert crictl.container_summary('cp3', 'etcd', dict(container, state='running', cause='')) == (
        'etcd on cp3: container 0123456789abc is running (attempt 3)')
