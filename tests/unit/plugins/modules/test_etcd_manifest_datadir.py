# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import stat

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_manifest_datadir

from unit_helpers import run_module

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'manifests')


@pytest.fixture
def run():
    """The module's result, whether it exited or failed."""
    return lambda args, check=False, diff=False: run_module(etcd_manifest_datadir, args, check=check, diff=diff)[1]


@pytest.fixture
def node(tmp_path):
    """A node's /etc/kubernetes with kubeadm's etcd manifest (mode 0600, as kubeadm writes it)."""
    manifests = tmp_path / 'manifests'
    manifests.mkdir()
    path = manifests / 'etcd.yaml'
    shutil.copy(os.path.join(FIXTURES, 'kubeadm-etcd.yaml'), str(path))
    os.chmod(str(path), 0o600)
    restored = tmp_path / 'etcd-restore-1'
    (restored / 'member').mkdir(parents=True)
    return {'path': str(path), 'manifests': str(manifests), 'backups': str(tmp_path / 'kubeops-etcd' / 'backups'),
            'restored': str(restored)}


def args(node, **more):
    result = {'path': node['path'], 'data_dir': node['restored'], 'backup_dir': node['backups']}
    result.update(more)
    return result


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def test_check_real_again_and_again_in_check(run, node):
    original = read(node['path'])
    checked = run(args(node), check=True, diff=True)
    assert checked['changed'] is True
    assert checked['backup_file'] is None
    assert checked['diff']['before'].encode() == original
    assert '      path: %s\n' % node['restored'] in checked['diff']['after']
    assert read(node['path']) == original
    assert not os.path.exists(node['backups'])

    real = run(args(node))
    assert real['changed'] is True
    assert real['previous_data_dir'] == '/var/lib/etcd'
    assert real['data_dir'] == node['restored']
    assert real['volume_name'] == 'etcd-data'
    assert 'diff' not in real
    assert read(node['path']) == original.replace(b'      path: /var/lib/etcd\n',
                                                  ('      path: %s\n' % node['restored']).encode())

    again = run(args(node))
    assert again['changed'] is False
    assert again['backup_file'] is None
    assert again['previous_data_dir'] == node['restored']

    again_checked = run(args(node), check=True, diff=True)
    assert again_checked['changed'] is False
    assert 'diff' not in again_checked
    assert len(os.listdir(node['backups'])) == 1


def test_backup_is_the_old_manifest_outside_the_manifests_dir(run, node):
    original = read(node['path'])
    result = run(args(node))
    backup = result['backup_file']
    assert os.path.dirname(backup) == node['backups']
    assert os.path.basename(backup).startswith('etcd.yaml.')
    assert read(backup) == original
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node['backups']).st_mode) == 0o700
    # Nothing the kubelet could start as a second pod.
    assert os.listdir(node['manifests']) == ['etcd.yaml']


def test_mode_and_owner_are_kept(run, node):
    os.chmod(node['path'], 0o640)
    before = os.stat(node['path'])
    run(args(node))
    after = os.stat(node['path'])
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced by a rename, not rewritten in place


def test_without_backup_no_copy_is_made(run, node):
    result = run(args(node, backup=False))
    assert result['changed'] is True
    assert result['backup_file'] is None
    assert not os.path.exists(node['backups'])


def test_relative_data_dir_is_refused(run, node):
    original = read(node['path'])
    result = run(args(node, data_dir='var/lib/etcd2'))
    assert result['failed']
    assert 'relative path' in result['msg']
    assert read(node['path']) == original


def test_backup_dir_inside_the_manifests_dir_is_refused(run, node):
    original = read(node['path'])
    result = run(args(node, backup_dir=os.path.join(node['manifests'], 'backups')))
    assert result['failed']
    assert 'second etcd pod' in result['msg']
    assert read(node['path']) == original
    assert os.listdir(node['manifests']) == ['etcd.yaml']


def test_missing_manifest_fails_naming_it(run, node):
    missing = os.path.join(node['manifests'], 'nope.yaml')
    result = run(args(node, path=missing))
    assert result['failed']
    assert missing in result['msg'] and 'does not exist' in result['msg']


def test_manifest_without_matching_volume_fails_and_is_unchanged(run, node):
    shutil.copy(os.path.join(FIXTURES, 'etcd-no-volume.yaml'), node['path'])
    original = read(node['path'])
    result = run(args(node))
    assert result['failed']
    assert 'spec.volumes has no volume of that name' in result['msg']
    assert read(node['path']) == original
    assert not os.path.exists(node['backups'])


def test_trailing_slash_means_the_same_dir(run, node):
    result = run(args(node, data_dir='/var/lib/etcd/'))
    assert result['changed'] is False


def test_data_dir_without_etcd_data_is_refused_unless_allowed(run, node, tmp_path, module_exits):
    original = read(node['path'])
    empty = str(tmp_path / 'etcd-typo')
    refused = run(args(node, data_dir=empty))
    assert refused['failed']
    assert 'holds no etcd data' in refused['msg'] and 'allow_empty=true' in refused['msg'] and empty in refused['msg']
    assert read(node['path']) == original
    assert not os.path.exists(node['backups'])

    warned = run(args(node, data_dir=empty), check=True)
    assert warned['changed'] is True
    assert any('holds no etcd data' in warning for warning in module_exits)

    allowed = run(args(node, data_dir=empty, allow_empty=True))
    assert allowed['changed'] is True and allowed['data_dir'] == empty


def only_hostpath_line_differs(before, after, old, new):
    before_lines, after_lines = before.splitlines(True), after.splitlines(True)
    assert len(before_lines) == len(after_lines)
    assert [(a, b) for a, b in zip(before_lines, after_lines) if a != b] == [
        (('      path: %s\n' % old).encode(), ('      path: %s\n' % new).encode())]


@pytest.fixture
def dest(tmp_path):
    prepared = tmp_path / 'kubeops-etcd' / 'prepared'
    prepared.mkdir(parents=True)
    return str(prepared / 'etcd.yaml')


def test_dest_check_real_again_and_again_in_check_leaves_path_alone(run, node, dest):
    original = read(node['path'])
    path_before = os.stat(node['path'])
    checked = run(args(node, dest=dest), check=True, diff=True)
    assert checked['changed'] is True and checked['dest'] == dest and checked['dest_replaced'] is False
    assert checked['diff'] == [{'before': original.decode(), 'after': original.decode().replace(
        '      path: /var/lib/etcd\n', '      path: %s\n' % node['restored']),
        'before_header': node['path'], 'after_header': dest}]
    assert not os.path.exists(dest)

    real = run(args(node, dest=dest))
    assert real['changed'] is True
    assert (real['path'], real['dest'], real['backup_file']) == (node['path'], dest, dest + '.orig')
    assert real['previous_data_dir'] == '/var/lib/etcd' and real['data_dir'] == node['restored']
    only_hostpath_line_differs(original, read(dest), '/var/lib/etcd', node['restored'])
    info = os.stat(dest)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, 0, 0)
    # The source manifest: same bytes, same inode, never rewritten; its copy lies beside dest.
    assert read(node['path']) == original
    assert os.stat(node['path']).st_ino == path_before.st_ino
    assert os.stat(node['path']).st_mtime_ns == path_before.st_mtime_ns
    assert not os.path.exists(node['backups'])
    assert sorted(os.listdir(os.path.dirname(dest))) == ['etcd.yaml', 'etcd.yaml.orig']
    assert read(dest + '.orig') == original
    assert stat.S_IMODE(os.stat(dest + '.orig').st_mode) == 0o600

    for check in (False, True):
        again = run(args(node, dest=dest), check=check, diff=True)
        assert again['changed'] is False and again['dest_replaced'] is False and 'diff' not in again
    assert read(node['path']) == original


def test_dest_holding_something_else_is_replaced_and_shown_in_the_diff(run, node, dest):
    with open(dest, 'w') as handle:
        handle.write('an older prepared manifest\n')
    os.chmod(dest, 0o644)
    result = run(args(node, dest=dest), diff=True)
    assert result['changed'] is True and result['dest_replaced'] is True
    assert len(result['diff']) == 2
    assert result['diff'][1]['before'] == 'an older prepared manifest\n'
    assert result['diff'][1]['after'] == read(dest).decode()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert sorted(os.listdir(os.path.dirname(dest))) == ['etcd.yaml', 'etcd.yaml.orig']


def test_dest_in_missing_directories_creates_each_of_them_private(run, node, tmp_path):
    dest = str(tmp_path / 'runs' / '20261203T040000Z' / 'etcd.yaml')
    os.chmod(str(tmp_path), 0o755)
    result = run(args(node, dest=dest))
    assert result['changed'] is True and os.path.isfile(dest)
    for directory in (tmp_path / 'runs', tmp_path / 'runs' / '20261203T040000Z'):
        assert stat.S_IMODE(os.stat(str(directory)).st_mode) == 0o700, directory
    assert stat.S_IMODE(os.stat(str(tmp_path)).st_mode) == 0o755  # an existing dir is left as it was


def test_dest_with_the_right_text_but_another_mode_is_rewritten(run, node, dest):
    run(args(node, dest=dest))
    text = read(dest)
    os.chmod(dest, 0o644)
    result = run(args(node, dest=dest), diff=True)
    assert result['changed'] is True and result['dest_replaced'] is True
    assert len(result['diff']) == 1
    assert read(dest) == text and stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_dest_is_a_copy_when_path_already_uses_the_data_dir(run, node, dest):
    # allow_empty: this test host has no etcd data in /var/lib/etcd.
    result = run(args(node, dest=dest, data_dir='/var/lib/etcd', allow_empty=True))
    assert result['changed'] is True
    assert read(dest) == read(node['path'])
    assert run(args(node, dest=dest, data_dir='/var/lib/etcd', allow_empty=True))['changed'] is False


@pytest.mark.parametrize('where, message', [
    ('manifests/etcd-restored.yaml', "is in the kubelet's manifests directory"),
    ('manifests/.etcd-prepared.yaml', "is in the kubelet's manifests directory"),
    ('manifests/etcd.yaml', 'is the manifest itself'),
    ('kubeops-etcd/prepared', 'exists and is not a regular file'),
])
def test_bad_dest_is_refused_and_nothing_is_written(run, node, dest, tmp_path, where, message):
    original = read(node['path'])
    target = str(tmp_path / where)
    before = sorted(os.listdir(node['manifests']))
    for check in (True, False):
        result = run(args(node, dest=target), check=check)
        assert result['failed']
        assert message in result['msg'] and os.path.dirname(target) in result['msg']
    assert read(node['path']) == original
    assert sorted(os.listdir(node['manifests'])) == before
    assert not os.path.exists(node['backups'])


def test_relative_dest_is_refused(run, node):
    result = run(args(node, dest='prepared/etcd.yaml'))
    assert result['failed'] and 'dest prepared/etcd.yaml is a relative path' in result['msg']


def test_kubelet_dirs_are_kubeadms_and_a_manifests_dir_of_path():
    assert etcd_manifest_datadir.kubelet_dirs('/srv/k8s/manifests/etcd.yaml') == [
        '/etc/kubernetes/manifests', '/srv/k8s/manifests']
    assert etcd_manifest_datadir.kubelet_dirs('/etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml') == [
        '/etc/kubernetes/manifests']


JOINED = 'cp1=https://192.0.2.11:2380,cp3=https://192.0.2.13:2380'


def test_initial_cluster_flags_check_real_again_and_again_in_check(run, node, tmp_path):
    """A member joining with an empty data dir: data dir and both flags change in one write; the empty dir is fine."""
    original = read(node['path'])
    empty = str(tmp_path / 'etcd')
    options = args(node, data_dir=empty, initial_cluster=JOINED, initial_cluster_state='existing')
    expected = original.replace(b'      path: /var/lib/etcd\n', ('      path: %s\n' % empty).encode()) \
        .replace(b'    - --initial-cluster=cp1=https://192.0.2.11:2380\n', ('    - --initial-cluster=%s\n' % JOINED).encode()) \
        .replace(b'    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n',
                 b'    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n    - --initial-cluster-state=existing\n')

    checked = run(options, check=True, diff=True)
    assert checked['changed'] is True
    assert checked['changed_flags'] == ['--initial-cluster', '--initial-cluster-state']
    assert (checked['initial_cluster'], checked['initial_cluster_state']) == (JOINED, 'existing')
    assert checked['diff']['after'].encode() == expected
    assert read(node['path']) == original

    real = run(options)
    assert real['changed'] is True and real['backup_file']
    assert read(node['path']) == expected
    assert read(real['backup_file']) == original

    for check in (False, True):
        again = run(options, check=check, diff=True)
        assert again['changed'] is False and again['changed_flags'] == [] and 'diff' not in again
        assert (again['initial_cluster'], again['initial_cluster_state']) == (JOINED, 'existing')
    assert read(node['path']) == expected
    assert len(os.listdir(node['backups'])) == 1


def test_flags_alone_change_with_the_same_data_dir_and_into_dest(run, node, dest):
    original = read(node['path'])
    options = args(node, data_dir='/var/lib/etcd', initial_cluster=JOINED, dest=dest, allow_empty=True)
    real = run(options)
    assert real['changed'] is True and real['changed_flags'] == ['--initial-cluster']
    assert real['initial_cluster_state'] is None
    assert read(node['path']) == original
    assert read(dest) == original.replace(b'--initial-cluster=cp1=https://192.0.2.11:2380\n',
                                          ('--initial-cluster=%s\n' % JOINED).encode())
    assert run(options)['changed'] is False


def test_state_new_is_what_a_manifest_without_the_flag_means(run, node):
    original = read(node['path'])
    result = run(args(node, data_dir='/var/lib/etcd', initial_cluster_state='new'))
    assert result['changed'] is False and result['changed_flags'] == []
    assert read(node['path']) == original


def test_empty_initial_cluster_and_unknown_state_are_refused(run, node):
    original = read(node['path'])
    refused = run(args(node, data_dir='/var/lib/etcd', initial_cluster=' '))
    assert refused['failed'] and 'initial_cluster is empty' in refused['msg']
    wrong = run(args(node, data_dir='/var/lib/etcd', initial_cluster_state='joined'))
    assert wrong['failed'] and 'initial_cluster_state' in wrong['msg']
    assert read(node['path']) == original


def test_empty_data_dir_is_still_refused_without_a_joining_state(run, node, tmp_path):
    empty = str(tmp_path / 'etcd')
    refused = run(args(node, data_dir=empty, initial_cluster=JOINED))
    assert refused['failed'] and 'holds no etcd data' in refused['msg']
