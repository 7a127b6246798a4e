# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_unit_datadir

from unit_helpers import FakeSystemd, run_module

KUBESPRAY_UNIT = '''[Unit]
Description=etcd

[Service]
Type=notify
User=root
EnvironmentFile=@ENV@
ExecStart=/usr/local/bin/etcd
Restart=always
'''

KUBESPRAY_ENV = '''# Environment file for etcd v3.5.16
ETCD_DATA_DIR=/var/lib/etcd
ETCD_NAME=etcd1
ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.21:2379
ETCD_INITIAL_CLUSTER=etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380
'''

FLAGS_UNIT = '''[Service]
User=etcd
Type=notify
ExecStart=/usr/local/bin/etcd \\
  --name etcd2 \\
  --data-dir=/var/lib/etcd \\
  --advertise-client-urls https://10.0.0.22:2379
'''


@pytest.fixture
def node(tmp_path, monkeypatch):
    systemd = FakeSystemd(tmp_path, monkeypatch)
    restored = tmp_path / 'etcd-restore-1'
    (restored / 'member').mkdir(parents=True)
    return {'systemd': systemd, 'tmp': tmp_path, 'restored': str(restored),
            'backups': str(tmp_path / 'kubeops-etcd' / 'unit-backups')}


def kubespray(node):
    env = node['tmp'] / 'etcd.env'
    env.write_text(KUBESPRAY_ENV)
    os.chmod(str(env), 0o640)
    node['systemd'].add('etcd.service', KUBESPRAY_UNIT.replace('@ENV@', str(env)))
    return str(env)


def args(node, **more):
    result = {'data_dir': node['restored'], 'backup_dir': node['backups']}
    result.update(more)
    return result


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_env_file_check_real_again_and_again_in_check(node):
    env = kubespray(node)
    original = read(env)
    expected = original.replace(b'ETCD_DATA_DIR=/var/lib/etcd\n', b'ETCD_DATA_DIR=%s\n' % node['restored'].encode())

    ok, checked = run_module(etcd_unit_datadir, args(node), check=True, diff=True)
    assert ok, checked
    assert checked['changed'] is True
    assert checked['diff'] == {'before': original.decode(), 'after': expected.decode(),
                               'before_header': env, 'after_header': env}
    assert checked['backup_file'] is None
    assert read(env) == original
    assert not os.path.exists(node['backups'])

    ok, real = run_module(etcd_unit_datadir, args(node))
    assert ok, real
    assert real['changed'] is True
    assert real['path'] == env
    assert real['location'] == {'kind': 'env', 'file': env, 'line': 2, 'variable': 'ETCD_DATA_DIR'}
    assert real['previous_data_dir'] == '/var/lib/etcd'
    assert real['data_dir'] == node['restored']
    assert real['daemon_reload_needed'] is False
    assert read(env) == expected
    assert mode(env) == 0o640
    assert read(real['backup_file']) == original
    assert os.path.dirname(real['backup_file']) == node['backups']
    assert os.path.basename(real['backup_file']).startswith(env.strip('/').replace('/', '_') + '.')
    assert mode(real['backup_file']) == 0o600
    assert mode(node['backups']) == 0o700
    assert mode(os.path.dirname(node['backups'])) == 0o700

    ok, again = run_module(etcd_unit_datadir, args(node))
    assert ok and again['changed'] is False
    assert again['previous_data_dir'] == node['restored']
    assert again['backup_file'] is None

    ok, again_checked = run_module(etcd_unit_datadir, args(node), check=True, diff=True)
    assert ok and again_checked['changed'] is False
    assert 'diff' not in again_checked
    assert len(os.listdir(node['backups'])) == 1
    assert all(line.startswith('cat ') for line in node['systemd'].calls.read_text().splitlines())


def test_flag_in_a_continued_exec_start_needs_a_daemon_reload(node):
    unit = node['systemd'].add('etcd.service', FLAGS_UNIT, mode=0o600)[0]
    ok, result = run_module(etcd_unit_datadir, args(node, backup=False), diff=True)
    assert ok, result
    assert result['location'] == {'kind': 'flag', 'file': unit, 'line': 6}
    assert result['daemon_reload_needed'] is True
    assert result['backup_file'] is None
    assert read(unit) == FLAGS_UNIT.replace('--data-dir=/var/lib/etcd ', '--data-dir=%s ' % node['restored']).encode()
    assert mode(unit) == 0o600
    assert not os.path.exists(node['backups'])


def test_check_mode_warns_about_an_empty_target_and_the_real_run_refuses(node, module_exits):
    env = kubespray(node)
    original = read(env)
    empty = str(node['tmp'] / 'not-restored')
    ok, checked = run_module(etcd_unit_datadir, args(node, data_dir=empty), check=True)
    assert ok and checked['changed'] is True
    assert 'holds no etcd data' in module_exits[0]
    ok, failed = run_module(etcd_unit_datadir, args(node, data_dir=empty))
    assert not ok
    assert 'data_dir %s on' % empty in failed['msg'] and 'allow_empty=true' in failed['msg']
    assert read(env) == original
    ok, allowed = run_module(etcd_unit_datadir, args(node, data_dir=empty, allow_empty=True))
    assert ok and allowed['changed'] is True
    assert b'ETCD_DATA_DIR=%s\n' % empty.encode() in read(env)


def test_backup_dir_inside_the_unit_directory_is_refused(node):
    kubespray(node)
    inside = str(node['systemd'].root / 'backups')
    ok, result = run_module(etcd_unit_datadir, args(node, backup_dir=inside))
    assert not ok
    assert 'backup_dir %s on' % inside in result['msg'] and 'where systemd reads units' in result['msg']
    assert not os.path.exists(inside)


def test_shell_wrapper_is_refused_and_nothing_is_written(node):
    text = '[Service]\nExecStart=/bin/sh -c "exec /usr/local/bin/etcd --data-dir=/var/lib/etcd"\n'
    unit = node['systemd'].add('etcd.service', text)[0]
    ok, result = run_module(etcd_unit_datadir, args(node))
    assert not ok
    assert 'inside a shell command (ExecStart=/bin/sh -c ...)' in result['msg']
    assert 'edit %s by hand' % unit in result['msg']
    assert read(unit) == text.encode()
    assert not os.path.exists(node['backups'])


def test_default_data_dir_is_refused_with_the_fix(node):
    node['systemd'].add('etcd.service', '[Service]\nExecStart=/usr/local/bin/etcd --name=e1\n')
    ok, result = run_module(etcd_unit_datadir, args(node))
    assert not ok
    assert 'etcd.service on' in result['msg'] and 'uses its default /e1.etcd' in result['msg']
    assert 'Set it explicitly' in result['msg']
