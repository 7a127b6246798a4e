# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_leftovers

from unit_helpers import ETCD_MANIFEST, run_module

OLD = '20261201T000000Z'
NEW = '20261202T000000Z'


def age(path, days):
    """Make path and everything below it ``days`` old."""
    when = time.time() - days * 86400
    for root, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(str(path), (when, when), follow_symlinks=False)


@pytest.fixture
def node(tmp_path):
    """A node after two restores: manifests -> var/lib/etcd-restored-NEW; the old dirs, runs, a failed dir, a staged
    copy, a moved-aside file, a backup staging dir."""
    lib = tmp_path / 'var' / 'lib'
    for name in ('etcd', 'etcd-restored-' + OLD, 'etcd-restored-' + NEW, 'etcd-restored-%s.failed-%s' % (OLD, NEW),
                 'dpkg'):
        (lib / name / 'member' / 'wal').mkdir(parents=True)
        (lib / name / 'member' / 'wal' / '0.wal').write_bytes(b'w' * 10000)
    manifests = tmp_path / 'etc' / 'kubernetes' / 'manifests'
    manifests.mkdir(parents=True)
    (manifests / 'etcd.yaml').write_text(
        ETCD_MANIFEST.replace('path: /var/lib/etcd\n', 'path: %s/etcd-restored-%s\n' % (lib, NEW)))
    (manifests / 'kube-apiserver.yaml').write_text('kind: Pod\n')
    root = tmp_path / 'etc' / 'kubernetes' / 'kubeops-etcd'
    for run in (OLD, NEW):
        (root / 'runs' / run / 'replaced').mkdir(parents=True)
        (root / 'runs' / run / 'etcd.yaml.orig').write_text('kind: Pod\n')
    (root / 'held-manifests').mkdir()
    staging = lib / 'kubeops-etcd' / 'restore'
    staging.mkdir(parents=True)
    (staging / 'snap.db').write_bytes(b's' * 5000)
    (staging / ('snap.db.replaced-' + NEW)).write_bytes(b's' * 5000)
    backups = lib / 'kubeops-etcd' / 'backups'
    backups.mkdir()
    (backups / 'kubernetes-20261201T000000Z-rev4.db').write_bytes(b'b' * 5000)
    args = {'manifests_dir': str(manifests), 'holding_dir': str(root / 'held-manifests'), 'runs_dir': str(root / 'runs'),
            'restore_staging_dir': str(staging), 'backup_staging_dir': str(backups),
            'manifest_backup_dirs': [str(root / 'manifest-backups')]}
    return {'tmp': tmp_path, 'lib': lib, 'root': root, 'manifests': manifests, 'args': args}


def run(node, check=False, diff=False, **more):
    return run_module(etcd_leftovers, dict(node['args'], **more), check=check, diff=diff)


def paths(result, key='candidates'):
    return sorted(c['path'] for c in result[key]) if key == 'candidates' else sorted(result[key])


def test_lists_every_leftover_with_kind_size_and_age_and_changes_nothing(node):
    lib, root = str(node['lib']), str(node['root'])
    age(node['lib'] / 'etcd', 10)
    ok, result = run(node)
    assert ok, result
    assert result['changed'] is False
    kinds = dict((c['path'], c['kind']) for c in result['candidates'])
    assert kinds == {
        lib + '/etcd-restored-' + NEW: 'active-data-dir',
        lib + '/etcd': 'data-dir',
        lib + '/etcd-restored-' + OLD: 'data-dir',
        lib + '/etcd-restored-%s.failed-%s' % (OLD, NEW): 'failed-data-dir',
        root + '/runs/' + OLD: 'run-dir',
        root + '/runs/' + NEW: 'run-dir',
        lib + '/kubeops-etcd/restore/snap.db': 'staged-snapshot',
        lib + '/kubeops-etcd/restore/snap.db.replaced-' + NEW: 'moved-aside',
        lib + '/kubeops-etcd/backups': 'backup-staging',
    }
    old = [c for c in result['candidates'] if c['path'] == lib + '/etcd'][0]
    assert old['size_bytes'] >= 10000 and old['age'].startswith('10d') and old['mtime'].endswith('Z')
    assert result['active_data_dir'] == lib + '/etcd-restored-' + NEW
    assert result['selected'] == [] and result['removed'] == []
    assert result['table'][-1].endswith('nothing removed (name what to remove, or give an age)')
    assert sorted(os.listdir(lib)) == sorted(['dpkg', 'etcd', 'etcd-restored-' + OLD, 'etcd-restored-' + NEW,
                                              'etcd-restored-%s.failed-%s' % (OLD, NEW), 'kubeops-etcd'])


def test_check_mode_shows_what_would_go_with_a_diff_and_removes_nothing(node):
    ok, result = run(node, check=True, diff=True, mode='remove', names=['etcd', 'snap.db.replaced-' + NEW])
    assert ok, result
    expected = [str(node['lib'] / 'etcd'), str(node['lib'] / 'kubeops-etcd' / 'restore' / ('snap.db.replaced-' + NEW))]
    assert result['changed'] is True
    assert sorted(result['selected']) == sorted(expected) and result['removed'] == []
    assert result['diff']['before'] == ''.join(p + '\n' for p in sorted(expected, key=result['selected'].index))
    assert result['diff']['after'] == ''
    assert all(os.path.exists(p) for p in expected)
    assert 'would remove 2' in result['msg']


def test_removes_exactly_what_was_named_or_old_enough_and_is_idempotent(node):
    age(node['lib'] / ('etcd-restored-%s.failed-%s' % (OLD, NEW)), 9)
    ok, result = run(node, mode='remove', names=[str(node['root'] / 'runs' / OLD)], older_than='7d')
    assert ok, result
    gone = [str(node['root'] / 'runs' / OLD), str(node['lib'] / ('etcd-restored-%s.failed-%s' % (OLD, NEW)))]
    assert sorted(result['removed']) == sorted(gone)
    assert not any(os.path.exists(p) for p in gone)
    assert os.path.isdir(str(node['lib'] / 'etcd')) and os.path.isdir(str(node['root'] / 'runs' / NEW))
    ok, again = run(node, mode='remove', names=[str(node['root'] / 'runs' / OLD)], older_than='7d')
    assert ok and again['changed'] is False and again['removed'] == []
    assert again['not_found'] == [str(node['root'] / 'runs' / OLD)]


def test_symbolic_links_inside_a_removed_dir_are_removed_never_followed(node, tmp_path):
    outside = tmp_path / 'precious'
    outside.mkdir()
    (outside / 'keep.txt').write_text('keep')
    os.symlink(str(outside), str(node['lib'] / 'etcd' / 'member' / 'link'))
    ok, result = run(node, mode='remove', names=['etcd'])
    assert ok, result
    assert not os.path.exists(str(node['lib'] / 'etcd'))
    assert (outside / 'keep.txt').read_text() == 'keep'


def test_the_active_data_dir_is_refused_even_when_named_and_nothing_is_removed(node):
    active = str(node['lib'] / ('etcd-restored-' + NEW))
    for name in (active, 'etcd-restored-' + NEW, str(node['lib'])):
        ok, result = run(node, mode='remove', names=['etcd', name])
        assert not ok
        assert 'Refused on' in result['msg'] and 'nothing was removed' in result['msg']
        assert 'in use: %s points at it' % (node['manifests'] / 'etcd.yaml') in result['msg'], result['msg']
    assert os.path.isdir(active) and os.path.isdir(str(node['lib'] / 'etcd'))


def test_an_existing_path_that_is_not_a_candidate_is_refused(node):
    ok, result = run(node, mode='remove', names=[str(node['lib'] / 'dpkg')])
    assert not ok
    assert 'not something this collection left' in result['msg']
    assert os.path.isdir(str(node['lib'] / 'dpkg'))


def test_held_manifests_are_listed_with_a_warning_and_never_removed(node, module_exits):
    held = node['root'] / 'held-manifests' / 'etcd.yaml'
    held.write_text(ETCD_MANIFEST.replace('path: /var/lib/etcd\n', 'path: %s/etcd\n' % node['lib']))
    ok, result = run(node, mode='remove', older_than=0)
    assert ok, result
    assert result['held'] == [str(held)]
    assert any(str(held) in warning and 'never pruned' in warning for warning in module_exits)
    assert held.exists()
    kept = dict((c['path'], c['protected']) for c in result['candidates'] if c['protected'])
    assert str(held) in kept
    # the held etcd.yaml's data dir and the run dirs (needed to resume or abort) stay too
    assert 'the held %s points at it' % held in kept[str(node['lib'] / 'etcd')]
    assert str(node['root'] / 'runs' / OLD) in kept
    assert sorted(result['removed']) == sorted([
        str(node['lib'] / ('etcd-restored-' + OLD)), str(node['lib'] / ('etcd-restored-%s.failed-%s' % (OLD, NEW))),
        str(node['lib'] / 'kubeops-etcd' / 'restore' / 'snap.db'),
        str(node['lib'] / 'kubeops-etcd' / 'restore' / ('snap.db.replaced-' + NEW))])
    ok, result = run(node, mode='remove', names=['etcd.yaml'])
    assert not ok and 'never removes a held manifest' in result['msg']


def test_an_unfinished_run_keeps_its_run_dir_and_data_dirs(node):
    journal = {'status': 'running', 'member': {'old_data_dir': str(node['lib'] / ('etcd-restored-' + OLD)),
                                               'new_data_dir': str(node['lib'] / 'etcd')}}
    (node['root'] / 'runs' / OLD / 'journal.json').write_text(json.dumps(journal))
    (node['root'] / 'runs' / NEW / 'journal.json').write_text(json.dumps(dict(journal, status='done')))
    ok, result = run(node)
    assert ok, result
    kept = dict((c['path'], c['protected']) for c in result['candidates'] if c['protected'])
    for path in (node['root'] / 'runs' / OLD, node['lib'] / ('etcd-restored-' + OLD), node['lib'] / 'etcd'):
        assert 'did not finish' in kept[str(path)]
    assert str(node['root'] / 'runs' / NEW) not in kept


def test_no_manifest_means_no_data_dir_is_listed(node, module_exits):
    os.remove(str(node['manifests'] / 'etcd.yaml'))
    ok, result = run(node)
    assert ok, result
    assert not [c for c in result['candidates'] if 'data-dir' in c['kind']]
    assert any('the data dir in use is unknown' in warning for warning in module_exits)


@pytest.mark.parametrize('more, message', [
    ({'mode': 'remove'}, 'mode=remove removes only what you name'),
    ({'mode': 'list', 'names': ['etcd']}, 'use them with mode=remove'),
    ({'mode': 'remove', 'older_than': 'a week'}, "older_than='a week' is not an age"),
])
def test_bad_requests_are_refused_before_anything_is_read(node, more, message):
    ok, result = run(node, **more)
    assert not ok and message in result['msg'], result['msg']
