# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import leftovers as lo

NOW = 1800000000
DAY = 86400
ACTIVE = '/var/lib/etcd-restored-20261203T054100Z'
MANIFEST = '/etc/kubernetes/manifests/etcd.yaml'


def candidate(path, kind, age_days=10, size=1000):
    return {'path': path, 'name': path.rsplit('/', 1)[1], 'kind': kind, 'why': 'because', 'size_bytes': size,
            'mtime': NOW - age_days * DAY, 'mtime_iso': 'x'}


def listing(held=None, unfinished_run=None):
    guards = lo.active_guards((MANIFEST, ACTIVE), held)
    items = [
        candidate(ACTIVE, 'data-dir', age_days=0),
        candidate('/var/lib/etcd', 'data-dir', age_days=20, size=64 * 2 ** 20),
        candidate('/var/lib/etcd-restored-20261201T000000Z', 'data-dir', age_days=2),
        candidate('/var/lib/etcd-restored-20261202T000000Z.failed-20261202T000100Z', 'failed-data-dir', age_days=9),
        candidate('/etc/kubernetes/kubeops-etcd/runs/20261203T054100Z', 'run-dir', age_days=1),
        candidate('/etc/kubernetes/kubeops-etcd/held-manifests/kube-scheduler.yaml', 'held-manifest', age_days=30),
        candidate('/var/lib/kubeops-etcd/backups', 'backup-staging', age_days=30),
        candidate('/var/lib/kubeops-etcd/restore/kubernetes-20261201T000000Z-rev4.db', 'staged-snapshot', age_days=8),
    ]
    return lo.finish(items, guards, NOW, unfinished_run=unfinished_run), guards


@pytest.mark.parametrize('name, expected', [
    ('etcd', 'data-dir'),
    ('etcd-restored-20261203T054100Z', 'data-dir'),
    ('etcd-restored-20261203T054100Z.failed-20261203T054200Z', 'failed-data-dir'),
    ('etcd.failed-20261203T054200Z', 'failed-data-dir'),
    ('etcd-restored-20261203T054100Z.kubeops-tmp-20261203T054101Z', 'temp-data-dir'),
    ('etcd-restored-20261203T054100Z.replaced-20261203T054101Z', 'moved-aside'),
])
def test_data_dir_siblings_named_by_the_restore_are_classified(name, expected):
    assert lo.classify_data_sibling(name, ['etcd'])[0] == expected


@pytest.mark.parametrize('name', ['etcd-data', 'etcd2', 'etcd-restored-latest', 'etcd-restored-20261203T054100Z.bak',
                                  'dpkg', 'etcd.20261203T054100Z', 'kubelet'])
def test_other_names_beside_the_data_dir_are_never_candidates(name):
    assert lo.classify_data_sibling(name, ['etcd']) is None


def test_data_dir_base_strips_one_restored_suffix():
    assert lo.data_dir_base(ACTIVE) == '/var/lib/etcd'
    assert lo.data_dir_base('/var/lib/etcd-data/') == '/var/lib/etcd-data'


def test_staged_files_moved_aside_files_and_run_dirs_are_classified():
    assert lo.classify_staged('kubernetes-20261203T054100Z-rev4.db')[0] == 'staged-snapshot'
    assert lo.classify_staged('kubernetes.db.part')[0] == 'staged-snapshot'
    assert lo.classify_staged('kubernetes-20261203T054100Z-rev4.db.replaced-20261203T060000Z')[0] == 'moved-aside'
    assert lo.classify_staged('snap.db.20261203T060000Z.1')[0] == 'moved-aside'
    assert lo.classify_backup_staging('kubernetes-20261203T054100Z-rev4.db') is None
    assert lo.classify_backup_staging('kubernetes-20261203T054100Z-rev4.db.20261203T060000Z')[0] == 'moved-aside'
    assert lo.classify_run_dir('20261203T054100Z')[0] == 'run-dir'
    assert lo.classify_run_dir('journal') is None
    kind, why = lo.classify_run_dir('member-20261203T054100Z')
    assert kind == 'run-dir' and why.startswith('the files of the member replacement (member.yml) of 20261203T054100Z')
    assert lo.classify_run_dir('member-x') is None
    assert lo.classify_manifests_dir_entry('.etcd.yaml.kubeops-tmp')[0] == 'temp-manifest'
    assert lo.classify_manifests_dir_entry('etcd.yaml') is None
    assert lo.classify_manifest_backup('etcd.yaml.20261203T054100Z')[1].startswith('a copy of etcd.yaml kept at')


def test_the_data_dir_in_use_its_parents_and_its_contents_are_guarded_naming_the_manifest():
    guards = lo.active_guards((MANIFEST, ACTIVE), None)
    assert lo.guard_reason(ACTIVE, guards) == 'in use: %s points at it' % MANIFEST
    assert lo.guard_reason(ACTIVE + '/', guards) == 'in use: %s points at it' % MANIFEST
    assert 'holds %s' % ACTIVE in lo.guard_reason('/var/lib', guards)
    assert lo.guard_reason('/', guards)
    assert 'inside %s' % ACTIVE in lo.guard_reason(ACTIVE + '/member/wal', guards)
    assert lo.guard_reason('/var/lib/etcd', guards) is None


def test_finish_marks_what_is_kept_and_why():
    items, _guards = listing()
    by_path = dict((c['path'], c) for c in items)
    assert by_path[ACTIVE]['kind'] == 'active-data-dir'
    assert by_path[ACTIVE]['protected'] == 'in use: %s points at it' % MANIFEST
    assert by_path['/etc/kubernetes/kubeops-etcd/held-manifests/kube-scheduler.yaml']['protected'] == lo.HELD_REASON
    assert by_path['/var/lib/kubeops-etcd/backups']['protected'] == lo.BACKUP_STAGING_REASON
    assert by_path['/var/lib/etcd']['protected'] is None
    assert by_path['/var/lib/etcd']['age'] == '20d'
    assert by_path['/var/lib/etcd']['size'] == '64.0 MiB'
    assert [c['kind'] for c in items] == sorted((c['kind'] for c in items), key=lo.KINDS.index)


def test_run_dirs_are_kept_while_manifests_are_held():
    items, _guards = listing(unfinished_run='held: resolve it first')
    run = [c for c in items if c['kind'] == 'run-dir'][0]
    assert run['protected'] == 'held: resolve it first'


def test_a_held_etcd_yaml_guards_its_data_dir_too():
    held = ('/etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml', '/var/lib/etcd')
    items, _guards = listing(held=held)
    old = [c for c in items if c['path'] == '/var/lib/etcd'][0]
    assert old['kind'] == 'active-data-dir'
    assert old['protected'] == 'in use: the held %s points at it (a restore did not finish)' % held[0]


def test_an_unfinished_journal_guards_its_run_dir_and_both_data_dirs():
    run_dir = '/etc/kubernetes/kubeops-etcd/runs/20261201T000000Z'
    guards = lo.unfinished_run_guards(run_dir, {'status': 'running', 'member': {
        'old_data_dir': '/var/lib/etcd', 'new_data_dir': '/var/lib/etcd-restored-20261201T000000Z'}})
    for path in (run_dir, '/var/lib/etcd', '/var/lib/etcd-restored-20261201T000000Z'):
        assert '20261201T000000Z did not finish' in lo.guard_reason(path, guards)
    assert lo.guard_reason('/etc/kubernetes/kubeops-etcd/runs', guards) is None
    assert len(lo.unfinished_run_guards(run_dir, {'status': 'running'})) == 1


def test_names_select_exact_paths_and_listed_names():
    items, guards = listing()
    picked = lo.select(items, ['/var/lib/etcd/', 'etcd-restored-20261201T000000Z'], None, guards)
    assert [c['path'] for c in picked['selected']] == ['/var/lib/etcd', '/var/lib/etcd-restored-20261201T000000Z']
    assert picked['refusals'] == [] and picked['unmatched'] == []


def test_the_active_data_dir_is_refused_by_path_or_name_naming_the_manifest():
    items, guards = listing()
    for name in (ACTIVE, 'etcd-restored-20261203T054100Z', '/var/lib', ACTIVE + '/member'):
        picked = lo.select(items, [name, '/var/lib/etcd'], None, guards)
        assert len(picked['refusals']) == 1, name
        assert MANIFEST in picked['refusals'][0]
        assert [c['path'] for c in picked['selected']] == ['/var/lib/etcd']


def test_held_manifests_and_backup_staging_are_refused_even_when_named():
    items, guards = listing()
    picked = lo.select(items, ['kube-scheduler.yaml', '/var/lib/kubeops-etcd/backups'], 0, guards)
    assert picked['refusals'] == [
        '/etc/kubernetes/kubeops-etcd/held-manifests/kube-scheduler.yaml: ' + lo.HELD_REASON,
        '/var/lib/kubeops-etcd/backups: ' + lo.BACKUP_STAGING_REASON]
    assert all(not c['protected'] for c in picked['selected'])


def test_older_than_selects_unkept_candidates_at_least_that_old():
    items, guards = listing()
    picked = lo.select(items, [], 8 * DAY, guards)
    assert [c['path'] for c in picked['selected']] == [
        '/var/lib/etcd', '/var/lib/etcd-restored-20261202T000000Z.failed-20261202T000100Z',
        '/var/lib/kubeops-etcd/restore/kubernetes-20261201T000000Z-rev4.db']


def test_unknown_names_are_unmatched_and_ambiguous_names_refused():
    items, guards = listing()
    items.append(dict(items[1], path='/srv/etcd', kind='data-dir'))
    picked = lo.select(items, ['etcd', 'no-such-dir', '/var/lib/dpkg'], None, guards)
    assert picked['unmatched'] == ['no-such-dir', '/var/lib/dpkg']
    assert picked['refusals'] == ['etcd fits 2 candidates (/var/lib/etcd, /srv/etcd): give the full path']
    assert picked['selected'] == []


@pytest.mark.parametrize('size, text', [(0, '0 B'), (1023, '1023 B'), (4096, '4.0 KiB'), (64 * 2 ** 20, '64.0 MiB'),
                                        (3 * 2 ** 30 + 2 ** 29, '3.5 GiB')])
def test_sizes_read_like_du_h(size, text):
    assert lo.format_size(size) == text


@pytest.mark.parametrize('seconds, text', [(0, '0s'), (42, '42s'), (3600, '1h'), (5 * 3600 + 720, '5h 12m'),
                                           (3 * DAY + 4 * 3600 + 59, '3d 4h'), (2 * DAY + 30, '2d')])
def test_ages_show_the_two_largest_units(seconds, text):
    assert lo.format_age(seconds) == text


def test_the_table_marks_what_is_kept_and_what_goes_with_a_total():
    items, guards = listing()
    picked = lo.select(items, ['/var/lib/etcd'], None, guards)
    lines = lo.table(items, picked['selected'], 'check')
    assert lines[0].split()[:5] == ['ACTION', 'KIND', 'SIZE', 'AGE', 'PATH']
    row = [line for line in lines if ' /var/lib/etcd ' in line][0]
    assert row.startswith('would remove') and '64.0 MiB' in row and '20d' in row
    assert [line for line in lines if ACTIVE in line][0].startswith('KEEP')
    assert lines[-1] == 'total: 8 listed, 64.0 MiB; 5 removable, 64.0 MiB; would remove 1, 64.0 MiB'
    listed = lo.table(items, [], 'list')
    assert listed[-1].endswith('nothing removed (name what to remove, or give an age)')


def test_the_snapshot_of_a_survivor_recovery_is_named_as_such():
    kind, why = lo.classify_staged('survivor-cp1-20261203T140642Z.db')
    assert kind == 'staged-snapshot'
    assert why == ("the data of cp1's etcd member, taken at 20261203T140642Z by a recovery without a quorum "
                   "(snapshot=survivor)")
