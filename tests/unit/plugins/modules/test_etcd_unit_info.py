# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_unit_info

from unit_helpers import FakeSystemd, run_module

UNIT = '''[Unit]
Description=etcd

[Service]
Type=notify
User=root
EnvironmentFile=@ENV@
ExecStart=/usr/local/bin/etcd
Restart=always
'''

ENV = '''# Environment file for etcd v3.5.16
ETCD_DATA_DIR=/var/lib/etcd
ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.21:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.21:2380
ETCD_LISTEN_CLIENT_URLS=https://10.0.0.21:2379,https://127.0.0.1:2379
ETCD_LISTEN_PEER_URLS=https://10.0.0.21:2380
ETCD_INITIAL_CLUSTER_TOKEN=k8s_etcd
ETCD_INITIAL_CLUSTER_STATE=existing
ETCD_NAME=etcd1
ETCD_INITIAL_CLUSTER=etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380
ETCD_TRUSTED_CA_FILE=/etc/ssl/etcd/ssl/ca.pem
ETCD_CERT_FILE=/etc/ssl/etcd/ssl/member-node1.pem
ETCD_KEY_FILE=/etc/ssl/etcd/ssl/member-node1-key.pem
'''

EVENTS_UNIT = '''[Service]
User=etcd
ExecStart=/usr/local/bin/etcd --name=events --data-dir=/var/lib/etcd-events \\
  --listen-client-urls=https://10.0.0.21:2381 --advertise-client-urls=https://10.0.0.21:2381
'''


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    return FakeSystemd(tmp_path, monkeypatch)


def kubespray(systemd, tmp_path):
    env = tmp_path / 'etcd.env'
    env.write_text(ENV)
    return systemd.add('etcd.service', UNIT.replace('@ENV@', str(env))), str(env)


def test_kubespray_unit_is_described_with_its_env_file_location(systemd, tmp_path):
    paths, env = kubespray(systemd, tmp_path)
    ok, result = run_module(etcd_unit_info, {})
    assert ok, result
    assert result['changed'] is False
    unit = result['units'][0]
    assert unit['unit'] == 'etcd.service'
    assert unit['fragment_path'] == paths[0]
    assert unit['drop_in_paths'] == []
    assert unit['environment_files'] == [{'path': env, 'optional': False, 'exists': True}]
    assert unit['exec_start'] == ['/usr/local/bin/etcd']
    assert unit['data_dir_location'] == {'kind': 'env', 'file': env, 'line': 2, 'variable': 'ETCD_DATA_DIR'}
    assert result['member'] == unit['member']
    assert result['member'] == {
        'name': 'etcd1', 'data_dir': '/var/lib/etcd',
        'listen_client_urls': ['https://10.0.0.21:2379', 'https://127.0.0.1:2379'],
        'advertise_client_urls': ['https://10.0.0.21:2379'],
        'listen_peer_urls': ['https://10.0.0.21:2380'], 'peer_urls': ['https://10.0.0.21:2380'],
        'initial_cluster': 'etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380',
        'initial_cluster_token': 'k8s_etcd', 'initial_cluster_state': 'existing',
        'cert_file': '/etc/ssl/etcd/ssl/member-node1.pem', 'key_file': '/etc/ssl/etcd/ssl/member-node1-key.pem',
        'trusted_ca_file': '/etc/ssl/etcd/ssl/ca.pem', 'peer_cert_file': None, 'peer_key_file': None,
        'peer_trusted_ca_file': None, 'user': 'root', 'group': None, 'config_file': None,
    }
    assert result['serving_units'] is None


def test_check_mode_reads_the_same(systemd, tmp_path):
    kubespray(systemd, tmp_path)
    ok, result = run_module(etcd_unit_info, {'unit': 'etcd.service'}, check=True)
    assert ok and result['member']['name'] == 'etcd1'


def test_two_units_on_one_host_and_the_one_serving_the_api_servers(systemd, tmp_path):
    kubespray(systemd, tmp_path)
    events = systemd.add('etcd-events.service', EVENTS_UNIT)
    args = {'units': ['etcd.service', 'etcd-events.service'],
            'etcd_servers': ['https://10.0.0.21:2381/', 'https://10.0.0.22:2381', 'https://10.0.0.23:2381']}
    ok, result = run_module(etcd_unit_info, args)
    assert ok, result
    assert [unit['unit'] for unit in result['units']] == ['etcd.service', 'etcd-events.service']
    assert result['units'][1]['data_dir_location'] == {'kind': 'flag', 'file': events[0], 'line': 3}
    assert result['serving_units'] == ['etcd-events.service']
    assert result['member']['name'] == 'events'
    assert result['member']['user'] == 'etcd'

    args['etcd_servers'] = ['https://192.0.2.1:2379']
    ok, result = run_module(etcd_unit_info, args)
    assert not ok
    assert "None of the etcd units on" in result['msg']
    assert 'etcd-events.service: https://10.0.0.21:2381' in result['msg']


def test_missing_unit_names_the_unit_and_the_fix(systemd):
    ok, result = run_module(etcd_unit_info, {'unit': 'etcd2.service'})
    assert not ok
    assert 'Reading unit etcd2.service failed on' in result['msg']
    assert 'No files found for etcd2.service' in result['msg']
    assert "systemctl list-units --all 'etcd*'" in result['msg']


def test_drop_in_file_is_listed_and_its_flag_located(systemd, tmp_path):
    drop_in = '[Service]\nExecStart=\nExecStart=/usr/local/bin/etcd --name=e1 --data-dir=/srv/etcd\n'
    paths = systemd.add('etcd.service', UNIT.replace('EnvironmentFile=@ENV@\n', ''),
                        drop_ins=[('20-data.conf', drop_in)])
    ok, result = run_module(etcd_unit_info, {})
    assert ok, result
    assert result['units'][0]['drop_in_paths'] == [paths[1]]
    assert result['units'][0]['data_dir_location'] == {'kind': 'flag', 'file': paths[1], 'line': 3}
    assert result['member']['data_dir'] == '/srv/etcd'


def test_flag_and_variable_conflict_fails_naming_both_files(systemd, tmp_path):
    env = tmp_path / 'etcd.env'
    env.write_text(ENV)
    unit = UNIT.replace('@ENV@', str(env)).replace('/usr/local/bin/etcd', '/usr/local/bin/etcd --name=other')
    paths = systemd.add('etcd.service', unit)
    ok, result = run_module(etcd_unit_info, {})
    assert not ok
    assert 'sets --name twice: the flag in ExecStart of %s (line 8) and ETCD_NAME in %s (line 9)' % (
        paths[0], env) in result['msg']


# etcd 3.5's JSON log of a member whose client port another process holds (the restore's rollback reads it).
PORT_TAKEN_LOG = (
    'Started etcd.service: /usr/local/bin/etcd\n'
    '{"level":"info","ts":"2026-12-04T11:47:20Z","caller":"embed/etcd.go:127","msg":"configuring peer listeners"}\n'
    '{"level":"fatal","ts":"2026-12-04T11:47:20Z","caller":"etcdmain/etcd.go:204","msg":"discovery failed",'
    '"error":"listen tcp 10.0.0.21:2379: bind: address already in use"}\n')


def test_log_lines_say_why_the_units_etcd_is_not_running_from_its_state_and_journal(systemd, tmp_path):
    kubespray(systemd, tmp_path)
    systemd.add('etcd-events.service', EVENTS_UNIT)
    systemd.set_state('etcd.service', {'ActiveState': 'activating', 'SubState': 'auto-restart', 'Result': 'exit-code',
                                       'ExecMainStatus': '1'}, PORT_TAKEN_LOG)
    systemd.set_state('etcd-events.service', {'ActiveState': 'active', 'SubState': 'running', 'Result': 'success'})
    ok, result = run_module(etcd_unit_info, {'units': ['etcd.service', 'etcd-events.service'], 'log_lines': 50,
                                             'etcd_servers': ['https://10.0.0.21:2379']})
    assert ok, result
    host = result['summary']['etcd'].split(':')[0].split(' on ')[1]
    assert result['summary'] == {
        'etcd': 'etcd on %s: unit etcd.service is activating (auto-restart, result exit-code, exit status 1), its log '
                'ends with: discovery failed: listen tcp 10.0.0.21:2379: bind: address already in use' % host,
        'etcd.service': 'etcd on %s: unit etcd.service is activating (auto-restart, result exit-code, exit status 1), '
                        'its log ends with: discovery failed: listen tcp 10.0.0.21:2379: bind: address already in use'
                        % host,
        'etcd-events.service': 'etcd on %s: unit etcd-events.service is active (running)' % host,
    }
    calls = systemd.calls.read_text()
    assert 'journalctl -u etcd.service -n 50 --no-pager -o cat' in calls
    # Without log_lines nothing but the unit files is read.
    ok, result = run_module(etcd_unit_info, {'unit': 'etcd.service'})
    assert ok and 'summary' not in result
