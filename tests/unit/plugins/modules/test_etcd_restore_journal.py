# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_restore_journal

from unit_helpers import ETCD_MANIFEST, run_module

RUN = '20261203T010000Z'


@pytest.fixture
def node(tmp_path):
    """A control plane whose restore run RUN is prepared: etcd.yaml in the manifests dir on /var/lib/etcd, the
    prepared etcd.yaml in the run dir, nothing held."""
    manifests = tmp_path / 'manifests'
    holding = tmp_path / 'held'
    runs = tmp_path / 'runs'
    run_dir = runs / RUN
    for directory in (manifests, holding, run_dir):
        directory.mkdir(parents=True)
    (manifests / 'etcd.yaml').write_text(ETCD_MANIFEST)
    (run_dir / 'etcd.yaml').write_text(ETCD_MANIFEST.replace('/var/lib/etcd', '/var/lib/etcd-restored-' + RUN))
    (run_dir / 'etcd.yaml.orig').write_text(ETCD_MANIFEST)
    member = {'host': 'cp1', 'name': 'cp1', 'old_data_dir': '/var/lib/etcd',
              'new_data_dir': '/var/lib/etcd-restored-' + RUN,
              'prepared_manifest': str(run_dir / 'etcd.yaml'), 'original_manifest': str(run_dir / 'etcd.yaml.orig')}
    plan = {'timestamp': RUN, 'members': [member], 'snapshot': {'path': '/backups/s.db'}}
    args = {'runs_dir': str(runs), 'manifests_dir': str(manifests), 'holding_dir': str(holding)}
    ok, result = run_module(etcd_restore_journal, dict(args, state='present', run=RUN, plan=plan, host='cp1'))
    assert ok and result['changed'], result
    return {'args': args, 'journal': run_dir / 'journal.json', 'manifests': manifests, 'holding': holding}


def read(node):
    ok, result = run_module(etcd_restore_journal, node['args'])
    assert ok and not result['changed'], result
    return result['runs']


def test_a_written_journal_is_private_running_and_read_back_at_step_prepared(node):
    assert stat.S_IMODE(os.stat(str(node['journal'])).st_mode) == 0o600
    assert json.loads(node['journal'].read_text())['status'] == 'running'
    runs = read(node)
    assert [(r['run'], r['step']) for r in runs] == [(RUN, 'prepared')]


def test_a_run_that_stopped_nothing_is_closed_abandoned_and_no_longer_read_as_unfinished(node):
    close = dict(node['args'], state='closed', run=RUN, status='abandoned', expect_step='prepared')
    ok, result = run_module(etcd_restore_journal, close, check=True)
    assert ok and result['changed'], result
    assert json.loads(node['journal'].read_text())['status'] == 'running'

    ok, result = run_module(etcd_restore_journal, close)
    assert ok and result['changed'], result
    journal = json.loads(node['journal'].read_text())
    assert journal['status'] == 'abandoned' and journal['closed']
    assert stat.S_IMODE(os.stat(str(node['journal'])).st_mode) == 0o600
    assert read(node) == []

    ok, result = run_module(etcd_restore_journal, close)
    assert ok and not result['changed'], result


def test_closing_at_an_expected_step_the_files_no_longer_show_fails_and_keeps_the_journal(node):
    before = node['journal'].read_bytes()
    # An interrupted play's stop still ran on the node: etcd.yaml is held now.
    os.rename(str(node['manifests'] / 'etcd.yaml'), str(node['holding'] / 'etcd.yaml'))
    ok, result = run_module(etcd_restore_journal, dict(node['args'], state='closed', run=RUN, status='aborted',
                                                       expect_step='prepared'))
    assert not ok, result
    assert result['msg'].startswith('The restore run %s on ' % RUN)
    assert 'is no longer at step prepared but stopped: something moved its manifests' in result['msg']
    assert result['step'] == 'stopped' and result['path'] == str(node['journal'])
    assert node['journal'].read_bytes() == before
    assert [r['step'] for r in read(node)] == ['stopped']
