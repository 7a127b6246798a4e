# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import hashlib
import json
import os

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_backup_prune

from unit_helpers import run_module

CLUSTER = 'kubernetes'


def run(args, check=False):
    return run_module(etcd_backup_prune, args, check=check)


def stamp(when):
    return when.strftime('%Y%m%dT%H%M%SZ')


def write_set(directory, when, revision, snapshot_suffix='.db', metadata=True, pki=True, corrupt=False,
              cluster=CLUSTER, payload=None):
    """Write one backup set as the backup role does; returns its file names."""
    prefix = '%s-%s-rev%d' % (cluster, stamp(when), revision)
    data = payload if payload is not None else ('snapshot %s' % prefix).encode() * 10
    names = []
    (directory / (prefix + snapshot_suffix)).write_bytes(data)
    names.append(prefix + snapshot_suffix)
    if metadata:
        digest = hashlib.sha256(b'corrupted' if corrupt else data).hexdigest()
        key = 'encrypted_sha256' if snapshot_suffix.endswith('.age') else 'sha256'
        meta = {'format': 1, 'file': prefix + snapshot_suffix, 'revision': revision, key: digest}
        if key == 'encrypted_sha256':
            meta['sha256'] = hashlib.sha256(b'the plaintext').hexdigest()
        (directory / (prefix + '.db.meta.json')).write_text(json.dumps(meta))
        names.append(prefix + '.db.meta.json')
    if pki:
        (directory / (prefix + '-pki.tar.gz')).write_bytes(b'pki archive')
        names.append(prefix + '-pki.tar.gz')
    return sorted(names)


def days(count, start=datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.timezone.utc)):
    return [start + datetime.timedelta(days=index) for index in range(count)]


def size_of(directory, names):
    return sum(os.lstat(str(directory / name)).st_size for name in names)


@pytest.fixture
def backups(tmp_path):
    """Ten daily sets (Nov 1..10), foreign entries beside them; returns (dir, {set id: names}, foreign names)."""
    directory = tmp_path / 'backups'
    directory.mkdir()
    sets = {}
    for index, when in enumerate(days(10)):
        sets['%s-%s' % (CLUSTER, stamp(when))] = write_set(directory, when, 100 + index)
    outside = tmp_path / 'outside.db'
    outside.write_bytes(b'not in the backup dir')
    foreign = {
        'README': 'file',
        'kubernetes-20261101T020000Z-rev100.db.part': 'file',
        'kubernetes-prod-20261101T020000Z-rev1.db': 'file',
        'other-20261101T020000Z-rev1.db': 'file',
        'kubernetes-20261101T030000Z-rev1.db': 'symlink',
        'kubernetes-20261101T040000Z-rev1.db': 'dir',
    }
    for name, kind in foreign.items():
        if kind == 'file':
            (directory / name).write_bytes(b'foreign')
        elif kind == 'symlink':
            os.symlink(str(outside), str(directory / name))
        else:
            (directory / name).mkdir()
            (directory / name / 'inner').write_bytes(b'x')
    return directory, sets, sorted(foreign)


def listing(directory):
    return sorted(os.listdir(str(directory)))


def test_check_mode_lists_what_would_go_and_removes_nothing(backups):
    directory, sets, foreign = backups
    before = listing(directory)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_last=3)), check=True)
    assert ok and result['changed'] is True
    assert listing(directory) == before
    ids = sorted(sets, reverse=True)
    assert [entry['id'] for entry in result['kept']] == ids[:3]
    assert [entry['id'] for entry in result['pruned']] == ids[3:]
    assert result['pruned'][0] == {
        'id': ids[3], 'taken': '2026-11-07T02:00:00Z', 'files': sets[ids[3]], 'verified': True,
        'verification': None, 'reasons': ['kept by no rule of the policy (keep_last=3)']}
    assert result['kept'][0]['reasons'] == ['newest verified backup', 'one of the last 3']
    assert result['ignored'] == foreign
    assert result['freed_bytes'] == size_of(directory, [name for key in ids[3:] for name in sets[key]])
    assert result['msg'].startswith('Would keep 3 and prune 7 backup sets of cluster kubernetes in %s on ' % directory)


def test_prunes_exactly_the_pruned_sets_then_changes_nothing(backups, tmp_path):
    directory, sets, foreign = backups
    ids = sorted(sets, reverse=True)
    expected_freed = size_of(directory, [name for key in ids[3:] for name in sets[key]])
    args = dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_last=3))
    ok, result = run(args)
    assert ok and result['changed'] is True
    assert [entry['id'] for entry in result['pruned']] == ids[3:]
    assert result['freed_bytes'] == expected_freed
    assert listing(directory) == sorted(foreign + [name for key in ids[:3] for name in sets[key]])
    assert (tmp_path / 'outside.db').read_bytes() == b'not in the backup dir'
    assert os.path.islink(str(directory / 'kubernetes-20261101T030000Z-rev1.db'))
    assert (directory / 'kubernetes-20261101T040000Z-rev1.db' / 'inner').read_bytes() == b'x'
    assert result['msg'].startswith('Kept 3 and pruned 7 backup sets')

    for check in (False, True):
        ok, again = run(args, check=check)
        assert ok and again['changed'] is False
        assert again['pruned'] == [] and again['freed_bytes'] == 0
        assert [entry['id'] for entry in again['kept']] == ids[:3]
    assert listing(directory) == sorted(foreign + [name for key in ids[:3] for name in sets[key]])


def test_grandfather_father_son_on_files(tmp_path):
    directory = tmp_path / 'b'
    directory.mkdir()
    times = days(61, start=datetime.datetime(2026, 10, 1, 23, 0, tzinfo=datetime.timezone.utc))
    for index, when in enumerate(times):
        write_set(directory, when, index + 1, pki=False)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=dict(daily=3, weekly=2, monthly=3)))
    assert ok
    # Last day Nov 30 (Monday, ISO week 49); Nov 29 closes week 48; Oct 31 closes October.
    assert [entry['taken'] for entry in result['kept']] == [
        '2026-11-30T23:00:00Z', '2026-11-29T23:00:00Z', '2026-11-28T23:00:00Z', '2026-10-31T23:00:00Z']
    assert len(listing(directory)) == 8


def test_empty_policy_removes_nothing(backups):
    directory, sets, _foreign = backups
    before = listing(directory)
    for policy in (None, {}, dict(keep_last=0, daily=0)):
        args = dict(path=str(directory), cluster_name=CLUSTER)
        if policy is not None:
            args['policy'] = policy
        ok, result = run(args)
        assert ok and result['changed'] is False
        assert result['pruned'] == [] and len(result['kept']) == len(sets)
        assert result['kept'][0]['reasons'] == ['the policy is empty: everything is kept']
    assert listing(directory) == before


def test_keep_within_uses_the_clock(tmp_path):
    directory = tmp_path / 'b'
    directory.mkdir()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    recent = [now - datetime.timedelta(hours=hours) for hours in (1, 5, 30)]
    old = [now - datetime.timedelta(days=count) for count in (3, 4)]
    for index, when in enumerate(recent + old):
        write_set(directory, when, index + 1)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_within='2d')))
    assert ok
    assert [entry['id'] for entry in result['kept']] == ['%s-%s' % (CLUSTER, stamp(when)) for when in recent]
    assert [entry['id'] for entry in result['pruned']] == ['%s-%s' % (CLUSTER, stamp(when)) for when in old]
    assert len(listing(directory)) == 9


def test_unverified_sets(tmp_path):
    directory = tmp_path / 'b'
    directory.mkdir()
    newest_broken = write_set(directory, datetime.datetime(2026, 11, 5, tzinfo=datetime.timezone.utc), 5,
                              metadata=False)
    good = write_set(directory, datetime.datetime(2026, 11, 4, tzinfo=datetime.timezone.utc), 4)
    old_broken = write_set(directory, datetime.datetime(2026, 11, 3, tzinfo=datetime.timezone.utc), 3,
                           metadata=False)
    old_good = write_set(directory, datetime.datetime(2026, 11, 2, tzinfo=datetime.timezone.utc), 2)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_last=1)))
    assert ok
    kept = dict((entry['id'], entry) for entry in result['kept'])
    assert sorted(kept) == ['kubernetes-20261104T000000Z', 'kubernetes-20261105T000000Z']
    assert kept['kubernetes-20261105T000000Z']['verified'] is False
    assert kept['kubernetes-20261105T000000Z']['verification'] == 'no metadata file (.db.meta.json)'
    assert kept['kubernetes-20261105T000000Z']['reasons'] == [
        'newer than the newest verified backup: kept for inspection']
    assert [entry['id'] for entry in result['pruned']] == ['kubernetes-20261103T000000Z', 'kubernetes-20261102T000000Z']
    assert result['pruned'][0]['reasons'][0].startswith('unverified')
    assert listing(directory) == sorted(newest_broken + good)
    assert not set(old_broken + old_good) & set(listing(directory))


def test_verify_checksums_refuses_to_count_a_corrupted_snapshot(tmp_path):
    directory = tmp_path / 'b'
    directory.mkdir()
    utc = datetime.timezone.utc
    corrupted = write_set(directory, datetime.datetime(2026, 11, 3, tzinfo=utc), 3, corrupt=True)
    encrypted = write_set(directory, datetime.datetime(2026, 11, 2, tzinfo=utc), 2, snapshot_suffix='.db.zst.age')
    oldest = write_set(directory, datetime.datetime(2026, 11, 1, tzinfo=utc), 1)
    args = dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_last=1))

    ok, result = run(args, check=True)
    assert ok
    # Without the checksum check the corrupted set counts as the newest verified one.
    assert [entry['id'] for entry in result['kept']] == ['kubernetes-20261103T000000Z']

    ok, result = run(dict(args, verify_checksums=True))
    assert ok
    assert [entry['id'] for entry in result['kept']] == ['kubernetes-20261103T000000Z', 'kubernetes-20261102T000000Z']
    assert result['kept'][0]['verified'] is False
    assert 'matches neither sha256 nor encrypted_sha256 of kubernetes-20261103T000000Z-rev3.db.meta.json' in \
        result['kept'][0]['verification']
    assert result['kept'][1]['verified'] is True
    assert result['kept'][1]['reasons'] == ['newest verified backup', 'one of the last 1']
    assert [entry['id'] for entry in result['pruned']] == ['kubernetes-20261101T000000Z']
    assert listing(directory) == sorted(corrupted + encrypted)
    assert not set(oldest) & set(listing(directory))


def test_metadata_that_is_not_json_makes_the_set_unverified(tmp_path):
    directory = tmp_path / 'b'
    directory.mkdir()
    utc = datetime.timezone.utc
    write_set(directory, datetime.datetime(2026, 11, 2, tzinfo=utc), 2)
    (directory / 'kubernetes-20261102T000000Z-rev2.db.meta.json').write_text('{not json')
    write_set(directory, datetime.datetime(2026, 11, 1, tzinfo=utc), 1)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_last=1), verify_checksums=True),
                     check=True)
    assert ok
    assert result['kept'][0]['verification'].startswith('kubernetes-20261102T000000Z-rev2.db.meta.json is not valid JSON')
    assert [entry['id'] for entry in result['kept']] == ['kubernetes-20261102T000000Z', 'kubernetes-20261101T000000Z']


def test_missing_path_is_reported_not_an_error(tmp_path):
    missing = str(tmp_path / 'nowhere')
    ok, result = run(dict(path=missing, cluster_name=CLUSTER, policy=dict(keep_last=1)))
    assert ok and result['changed'] is False
    assert result['path_exists'] is False
    assert result['kept'] == [] and result['pruned'] == [] and result['ignored'] == [] and result['freed_bytes'] == 0
    assert result['msg'].startswith('%s does not exist on ' % missing)
    assert result['msg'].endswith(': nothing to prune.')
    assert not os.path.exists(missing)


def test_path_that_is_a_file_fails(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    ok, result = run(dict(path=str(path), cluster_name=CLUSTER, policy=dict(keep_last=1)))
    assert not ok
    assert 'is not a directory' in result['msg'] and str(path) in result['msg']


@pytest.mark.parametrize('policy, words', [
    (dict(daily=-1), ['Bad retention policy for', 'daily=-1 is negative', 'whole number >= 0', 'Nothing was removed']),
    (dict(keep_within='7x'), ["keep_within='7x' is not a duration", "'7d'"]),
    (dict(keep_within=-5), ['keep_within=-5 is negative']),
    (dict(dayly=7), ['policy.dayly', 'daily']),
    (dict(weekly='four'), ['weekly', 'int']),
])
def test_bad_policy_fails_before_anything_is_removed(backups, policy, words):
    directory, _sets, _foreign = backups
    before = listing(directory)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=policy))
    assert not ok
    for word in words:
        assert word in result['msg']
    assert listing(directory) == before


@pytest.mark.parametrize('name', ['', 'a/b', 'kube rnetes', '../x'])
def test_bad_cluster_name_fails(backups, name):
    directory, _sets, _foreign = backups
    before = listing(directory)
    ok, result = run(dict(path=str(directory), cluster_name=name, policy=dict(keep_last=1)))
    assert not ok
    assert 'is not a cluster name' in result['msg']
    assert listing(directory) == before


def test_other_cluster_in_the_same_dir_is_untouched(backups):
    directory, _sets, _foreign = backups
    ok, result = run(dict(path=str(directory), cluster_name='kubernetes-prod', policy=dict(keep_last=1)))
    assert ok and result['changed'] is False
    assert [entry['id'] for entry in result['kept']] == ['kubernetes-prod-20261101T020000Z']
    assert 'kubernetes-20261110T020000Z-rev109.db' in result['ignored']


def test_a_file_that_cannot_be_removed_fails_naming_it(backups, monkeypatch):
    directory, sets, _foreign = backups

    oldest, second = sorted(sets)[:2]
    real_unlink = os.unlink

    def refuse_the_oldest(path):
        if os.path.basename(path) in sets[oldest]:
            raise OSError(errno.EACCES, 'Permission denied', path)
        real_unlink(path)

    monkeypatch.setattr(etcd_backup_prune.os, 'unlink', refuse_the_oldest)
    ok, result = run(dict(path=str(directory), cluster_name=CLUSTER, policy=dict(keep_last=8)))
    assert not ok
    assert result['file'] == str(directory / sets[oldest][0])
    assert 'Cannot remove %s' % (directory / sets[oldest][0]) in result['msg']
    assert 'Permission denied' in result['msg']
    assert '3 files were removed before it (listed in removed)' in result['msg']
    assert result['removed'] == sets[second]
    assert not set(sets[second]) & set(listing(directory))
