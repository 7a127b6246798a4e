# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.etcd_unit import (
    Chars, EtcdUnit, match_units, normalize_url, parse_env_file, serving_units, split_systemctl_cat, split_words,
    unit_specifiers, with_data_dir)

# kubespray (etcd_deployment_type: host): the unit runs etcd without flags, /etc/etcd.env holds everything.
KUBESPRAY_UNIT = '''[Unit]
Description=etcd
After=network.target

[Service]
Type=notify
User=root
EnvironmentFile=/etc/etcd.env
ExecStart=/usr/local/bin/etcd
NotifyAccess=all
Restart=always
RestartSec=10s
LimitNOFILE=40000

[Install]
WantedBy=multi-user.target
'''

KUBESPRAY_ENV = '''# Environment file for etcd v3.5.16
ETCD_DATA_DIR=/var/lib/etcd
ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.21:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.21:2380
ETCD_INITIAL_CLUSTER_STATE=existing
ETCD_METRICS=basic
ETCD_LISTEN_CLIENT_URLS=https://10.0.0.21:2379,https://127.0.0.1:2379
ETCD_ELECTION_TIMEOUT=5000
ETCD_HEARTBEAT_INTERVAL=250
ETCD_INITIAL_CLUSTER_TOKEN=k8s_etcd
ETCD_LISTEN_PEER_URLS=https://10.0.0.21:2380
ETCD_NAME=etcd1
ETCD_PROXY=off
ETCD_INITIAL_CLUSTER=etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380
ETCD_AUTO_COMPACTION_RETENTION=8

# TLS settings
ETCD_TRUSTED_CA_FILE=/etc/ssl/etcd/ssl/ca.pem
ETCD_CERT_FILE=/etc/ssl/etcd/ssl/member-node1.pem
ETCD_KEY_FILE=/etc/ssl/etcd/ssl/member-node1-key.pem
ETCD_CLIENT_CERT_AUTH=true

ETCD_PEER_TRUSTED_CA_FILE=/etc/ssl/etcd/ssl/ca.pem
ETCD_PEER_CERT_FILE=/etc/ssl/etcd/ssl/member-node1.pem
ETCD_PEER_KEY_FILE=/etc/ssl/etcd/ssl/member-node1-key.pem
ETCD_PEER_CLIENT_CERT_AUTH=True
'''

# etcd's own unit (contrib/systemd/etcd.service): User=etcd, Environment= in the unit.
UPSTREAM_UNIT = '''[Unit]
Description=etcd key-value store
Documentation=https://github.com/etcd-io/etcd
After=network-online.target local-fs.target remote-fs.target time-sync.target
Wants=network-online.target local-fs.target remote-fs.target time-sync.target

[Service]
User=etcd
Type=notify
Environment=ETCD_DATA_DIR=/var/lib/etcd
Environment=ETCD_NAME=%m
ExecStart=/usr/bin/etcd
Restart=always
RestartSec=10s
LimitNOFILE=40000

[Install]
WantedBy=multi-user.target
'''

# The same with the member's settings as flags in ExecStart.
UPSTREAM_FLAGS_UNIT = (
    '[Unit]\n'
    'Description=etcd key-value store\n'
    '\n'
    '[Service]\n'
    'User=etcd\n'
    'Group=etcd\n'
    'Type=notify\n'
    'ExecStart=/usr/bin/etcd --name=etcd2 --data-dir=/var/lib/etcd '
    '--listen-client-urls=https://10.0.0.22:2379,https://127.0.0.1:2379 '
    '--advertise-client-urls=https://10.0.0.22:2379 --listen-peer-urls=https://10.0.0.22:2380 '
    '--initial-advertise-peer-urls=https://10.0.0.22:2380 '
    '--initial-cluster=etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380 '
    '--cert-file=/etc/etcd/pki/server.crt --key-file=/etc/etcd/pki/server.key '
    '--trusted-ca-file=/etc/etcd/pki/ca.crt --client-cert-auth\n'
    'Restart=always\n'
    '\n'
    '[Install]\n'
    'WantedBy=multi-user.target\n')

# Kubernetes the Hard Way: one flag per line, continued with backslashes, a comment in between.
HARD_WAY_UNIT = '''[Unit]
Description=etcd
Documentation=https://github.com/etcd-io/etcd

[Service]
Type=notify
ExecStart=/usr/local/bin/etcd \\
  --name controller \\
  --initial-advertise-peer-urls http://127.0.0.1:2380 \\
  --listen-peer-urls http://127.0.0.1:2380 \\
  --listen-client-urls http://127.0.0.1:2379 \\
# the API server talks to this one
  --advertise-client-urls http://127.0.0.1:2379 \\
  --initial-cluster-token etcd-cluster-0 \\
  --initial-cluster controller=http://127.0.0.1:2380 \\
  --initial-cluster-state new \\
  --data-dir=/var/lib/etcd
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
'''

DROP_IN = '''# kubeops lab: etcd's data on the big disk
[Service]
ExecStart=
ExecStart=/usr/local/bin/etcd "--data-dir=/srv/etcd" \\
    --name controller --advertise-client-urls http://127.0.0.1:2379 --listen-client-urls http://127.0.0.1:2379
'''

CONFIG_UNIT = '''[Service]
User=etcd
Environment=ETCD_DATA_DIR=/ignored
ExecStart=/usr/bin/etcd --config-file /etc/etcd/etcd.conf.yml
'''

CONFIG_FILE = '''# etcd configuration
name: 'etcd3'
data-dir: /var/lib/etcd  # the member's data
listen-client-urls: https://10.0.0.23:2379
advertise-client-urls: https://10.0.0.23:2379
initial-advertise-peer-urls: https://10.0.0.23:2380
initial-cluster: etcd1=https://10.0.0.21:2380,etcd3=https://10.0.0.23:2380
initial-cluster-state: existing
client-transport-security:
  cert-file: /etc/etcd/server.crt
  key-file: /etc/etcd/server.key
  trusted-ca-file: /etc/etcd/ca.crt
peer-transport-security:
  cert-file: /etc/etcd/peer.crt
  key-file: /etc/etcd/peer.key
  trusted-ca-file: /etc/etcd/ca.crt
'''

SPECIFIERS = unit_specifiers('etcd.service', 'node1.example.org', 'a1b2c3d4e5f60718293a4b5c6d7e8f90')


def cat(*files):
    """What `systemctl cat` prints for these (path, text) files."""
    return '\n'.join('# %s\n%s' % (path, text) for path, text in files)


def load(files, others=None, unit='etcd.service'):
    others = others or {}
    return EtcdUnit(unit, split_systemctl_cat(cat(*files)), others.get, SPECIFIERS)


def kubespray():
    return load([('/etc/systemd/system/etcd.service', KUBESPRAY_UNIT)], {'/etc/etcd.env': KUBESPRAY_ENV})


def test_systemctl_cat_is_split_into_the_unit_file_and_its_drop_ins_byte_for_byte():
    text = cat(('/etc/systemd/system/etcd.service', HARD_WAY_UNIT),
               ('/etc/systemd/system/etcd.service.d/10-data.conf', DROP_IN))
    assert split_systemctl_cat(text) == [('/etc/systemd/system/etcd.service', HARD_WAY_UNIT),
                                         ('/etc/systemd/system/etcd.service.d/10-data.conf', DROP_IN)]


def test_systemctl_cat_without_headers_is_an_error():
    with pytest.raises(EtcdModuleError, match='no unit file'):
        split_systemctl_cat('No files found for etcd.service.\n')


def test_kubespray_env_file_gives_the_member_and_the_data_dir_variable():
    etcd = kubespray()
    assert etcd.member() == {
        'name': 'etcd1',
        'data_dir': '/var/lib/etcd',
        'listen_client_urls': ['https://10.0.0.21:2379', 'https://127.0.0.1:2379'],
        'advertise_client_urls': ['https://10.0.0.21:2379'],
        'listen_peer_urls': ['https://10.0.0.21:2380'],
        'peer_urls': ['https://10.0.0.21:2380'],
        'initial_cluster': 'etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380',
        'initial_cluster_token': 'k8s_etcd',
        'initial_cluster_state': 'existing',
        'cert_file': '/etc/ssl/etcd/ssl/member-node1.pem',
        'key_file': '/etc/ssl/etcd/ssl/member-node1-key.pem',
        'trusted_ca_file': '/etc/ssl/etcd/ssl/ca.pem',
        'peer_cert_file': '/etc/ssl/etcd/ssl/member-node1.pem',
        'peer_key_file': '/etc/ssl/etcd/ssl/member-node1-key.pem',
        'peer_trusted_ca_file': '/etc/ssl/etcd/ssl/ca.pem',
        'user': 'root',
        'group': None,
        'config_file': None,
    }
    assert etcd.data_dir_location().as_dict() == {'kind': 'env', 'file': '/etc/etcd.env', 'line': 2,
                                                  'variable': 'ETCD_DATA_DIR'}
    assert etcd.argv == ['/usr/local/bin/etcd']
    assert etcd.env_files == [{'path': '/etc/etcd.env', 'optional': False, 'exists': True}]


def test_kubespray_data_dir_is_repointed_in_the_env_file_only():
    path, text = with_data_dir(kubespray(), '/var/lib/etcd-restore-20261122T013500Z')
    assert path == '/etc/etcd.env'
    assert text == KUBESPRAY_ENV.replace('ETCD_DATA_DIR=/var/lib/etcd\n',
                                         'ETCD_DATA_DIR=/var/lib/etcd-restore-20261122T013500Z\n')


def test_upstream_unit_reads_environment_and_specifiers_and_repoints_the_unit_line():
    etcd = load([('/usr/lib/systemd/system/etcd.service', UPSTREAM_UNIT)])
    member = etcd.member()
    assert member['name'] == 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
    assert member['user'] == 'etcd'
    assert member['data_dir'] == '/var/lib/etcd'
    assert member['advertise_client_urls'] == ['http://localhost:2379']
    assert member['initial_cluster'] == 'a1b2c3d4e5f60718293a4b5c6d7e8f90=http://localhost:2380'
    assert etcd.data_dir_location().as_dict() == {'kind': 'env', 'file': '/usr/lib/systemd/system/etcd.service',
                                                  'line': 10, 'variable': 'ETCD_DATA_DIR'}
    path, text = with_data_dir(etcd, '/var/lib/etcd-new')
    assert path == '/usr/lib/systemd/system/etcd.service'
    assert text == UPSTREAM_UNIT.replace('Environment=ETCD_DATA_DIR=/var/lib/etcd\n',
                                         'Environment=ETCD_DATA_DIR=/var/lib/etcd-new\n')


def test_upstream_flags_unit_gives_member_user_group_and_flag_location():
    etcd = load([('/etc/systemd/system/etcd.service', UPSTREAM_FLAGS_UNIT)])
    member = etcd.member()
    assert (member['name'], member['user'], member['group']) == ('etcd2', 'etcd', 'etcd')
    assert member['listen_client_urls'] == ['https://10.0.0.22:2379', 'https://127.0.0.1:2379']
    assert member['initial_cluster'] == 'etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380'
    assert member['trusted_ca_file'] == '/etc/etcd/pki/ca.crt'
    assert etcd.flags['client-cert-auth'].text == 'true'
    assert etcd.data_dir_location().as_dict() == {'kind': 'flag', 'file': '/etc/systemd/system/etcd.service',
                                                  'line': 8}
    _path, text = with_data_dir(etcd, '/var/lib/etcd-2')
    assert text == UPSTREAM_FLAGS_UNIT.replace('--data-dir=/var/lib/etcd ', '--data-dir=/var/lib/etcd-2 ')


def test_hard_way_continuations_and_comment_lines_are_read_and_the_right_line_is_changed():
    etcd = load([('/etc/systemd/system/etcd.service', HARD_WAY_UNIT)])
    member = etcd.member()
    assert member['name'] == 'controller'
    assert member['advertise_client_urls'] == ['http://127.0.0.1:2379']
    assert member['initial_cluster_token'] == 'etcd-cluster-0'
    assert member['initial_cluster_state'] == 'new'
    assert etcd.data_dir_location().as_dict() == {'kind': 'flag', 'file': '/etc/systemd/system/etcd.service',
                                                  'line': 17}
    assert etcd.argv[-1] == '--data-dir=/var/lib/etcd'
    _path, text = with_data_dir(etcd, '/var/lib/etcd-restored')
    assert text == HARD_WAY_UNIT.replace('  --data-dir=/var/lib/etcd\n', '  --data-dir=/var/lib/etcd-restored\n')


def test_drop_in_resets_exec_start_and_its_quoted_flag_is_repointed_inside_the_quotes():
    etcd = load([('/etc/systemd/system/etcd.service', HARD_WAY_UNIT),
                 ('/etc/systemd/system/etcd.service.d/10-data.conf', DROP_IN)])
    assert etcd.argv[:2] == ['/usr/local/bin/etcd', '--data-dir=/srv/etcd']
    assert etcd.member()['data_dir'] == '/srv/etcd'
    # the reset dropped the unit file's command: its token and state are etcd's defaults again
    assert etcd.member()['initial_cluster_token'] == 'etcd-cluster'
    assert etcd.data_dir_location().as_dict() == {
        'kind': 'flag', 'file': '/etc/systemd/system/etcd.service.d/10-data.conf', 'line': 4}
    path, text = with_data_dir(etcd, '/srv/etcd-restored')
    assert path == '/etc/systemd/system/etcd.service.d/10-data.conf'
    assert text == DROP_IN.replace('"--data-dir=/srv/etcd"', '"--data-dir=/srv/etcd-restored"')


def test_two_exec_start_without_a_reset_is_an_error_naming_the_drop_in():
    drop_in = '[Service]\nExecStart=/usr/local/bin/etcd --data-dir=/srv/etcd\n'
    with pytest.raises(EtcdModuleError) as caught:
        load([('/etc/systemd/system/etcd.service', HARD_WAY_UNIT), ('/etc/systemd/system/etcd.service.d/x.conf',
                                                                    drop_in)])
    assert '/etc/systemd/system/etcd.service.d/x.conf line 2' in caught.value.msg
    assert 'ExecStart=" (empty)' in caught.value.msg


def test_config_file_wins_over_flags_and_variables_and_its_key_is_repointed():
    etcd = load([('/etc/systemd/system/etcd.service', CONFIG_UNIT)], {'/etc/etcd/etcd.conf.yml': CONFIG_FILE})
    member = etcd.member()
    assert member['name'] == 'etcd3'
    assert member['data_dir'] == '/var/lib/etcd'
    assert member['config_file'] == '/etc/etcd/etcd.conf.yml'
    assert member['cert_file'] == '/etc/etcd/server.crt'
    assert member['peer_key_file'] == '/etc/etcd/peer.key'
    assert member['initial_cluster_token'] == 'etcd-cluster'
    assert etcd.data_dir_location().as_dict() == {'kind': 'config', 'file': '/etc/etcd/etcd.conf.yml',
                                                  'key': 'data-dir'}
    path, text = with_data_dir(etcd, '/var/lib/etcd-restore')
    assert path == '/etc/etcd/etcd.conf.yml'
    assert text == CONFIG_FILE.replace('data-dir: /var/lib/etcd  #', 'data-dir: /var/lib/etcd-restore  #')


def test_config_file_from_the_variable_with_a_quoted_data_dir():
    unit = '[Service]\nEnvironment="ETCD_CONFIG_FILE=/etc/etcd/etcd.yml"\nExecStart=/usr/bin/etcd\n'
    config = "name: e1\ndata-dir: '/data/etcd'\n"
    etcd = load([('/etc/systemd/system/etcd.service', unit)], {'/etc/etcd/etcd.yml': config})
    assert etcd.member()['data_dir'] == '/data/etcd'
    assert with_data_dir(etcd, '/data/etcd-2')[1] == "name: e1\ndata-dir: '/data/etcd-2'\n"


def test_flag_and_variable_for_the_same_setting_is_an_error_naming_both_places():
    unit = KUBESPRAY_UNIT.replace('ExecStart=/usr/local/bin/etcd', 'ExecStart=/usr/local/bin/etcd --data-dir=/x')
    with pytest.raises(EtcdModuleError) as caught:
        load([('/etc/systemd/system/etcd.service', unit)], {'/etc/etcd.env': KUBESPRAY_ENV})
    msg = caught.value.msg
    assert 'the flag in ExecStart of /etc/systemd/system/etcd.service (line 9)' in msg
    assert 'ETCD_DATA_DIR in /etc/etcd.env (line 2)' in msg
    assert 'etcd refuses to start' in msg


def test_default_data_dir_cannot_be_repointed_and_says_to_set_it():
    unit = '[Service]\nWorkingDirectory=/var/lib/etcd\nExecStart=/usr/bin/etcd --name=e1\n'
    etcd = load([('/etc/systemd/system/etcd.service', unit)])
    assert etcd.data_dir == '/var/lib/etcd/e1.etcd'
    with pytest.raises(EtcdModuleError) as caught:
        etcd.data_dir_location()
    assert 'uses its default /var/lib/etcd/e1.etcd' in caught.value.msg
    assert 'Set it explicitly: ETCD_DATA_DIR=/var/lib/etcd/e1.etcd' in caught.value.msg


def test_flag_inside_a_shell_wrapper_is_read_but_not_rewritten():
    unit = '[Service]\nExecStart=/bin/sh -c "ulimit -n 40000; exec /usr/local/bin/etcd --data-dir /var/lib/etcd"\n'
    etcd = load([('/etc/systemd/system/etcd.service', unit)])
    assert etcd.member()['data_dir'] == '/var/lib/etcd'
    with pytest.raises(EtcdModuleError, match=r'inside a shell command \(ExecStart=/bin/sh -c'):
        with_data_dir(etcd, '/var/lib/etcd-2')


@pytest.mark.parametrize('env_line', ['ETCD_DATA_DIR=/var/lib/\\etcd', 'ETCD_DATA_DIR="/var/lib/"\'etcd\''])
def test_values_written_with_escapes_or_split_quotes_are_refused(env_line):
    etcd = load([('/etc/systemd/system/etcd.service', KUBESPRAY_UNIT)],
                {'/etc/etcd.env': KUBESPRAY_ENV.replace('ETCD_DATA_DIR=/var/lib/etcd', env_line)})
    assert etcd.member()['data_dir'] == '/var/lib/etcd'
    with pytest.raises(EtcdModuleError, match='cannot be rewritten safely'):
        with_data_dir(etcd, '/var/lib/etcd-2')


def test_specifier_in_the_flag_is_refused_and_unsafe_new_paths_too():
    unit = '[Service]\nExecStart=/usr/bin/etcd --data-dir=/var/lib/%N\n'
    etcd = load([('/etc/systemd/system/etcd.service', unit)])
    assert etcd.data_dir == '/var/lib/etcd'
    with pytest.raises(EtcdModuleError, match='cannot be rewritten safely'):
        with_data_dir(etcd, '/var/lib/x')
    with pytest.raises(EtcdModuleError, match='not an absolute path of letters'):
        with_data_dir(kubespray(), '/var/lib/etcd new')


def test_unknown_specifier_is_an_error_naming_file_and_line():
    unit = '[Service]\nExecStart=/usr/bin/etcd --data-dir=/home/%u\n'
    with pytest.raises(EtcdModuleError, match=r'ExecStart= in /etc/systemd/system/etcd.service line 2 .*%u'):
        load([('/etc/systemd/system/etcd.service', unit)])


def test_env_file_quotes_comments_export_and_continuations_as_systemd_reads_them():
    text = ('# comment\n; other comment\nexport ETCD_NAME=ignored\nA="x y" \nB=\'a\\b\'\nC=  plain value   \n'
            'D=one\\\ntwo\nE="q\\"uote\\n"\nNOEQUALS\n 1BAD=x\nF=\n')
    values = dict((a.key, a.value.text) for a in parse_env_file('/etc/x.env', text))
    assert values == {'A': 'x y', 'B': 'a\\b', 'C': 'plain value', 'D': 'onetwo', 'E': 'q"uote\\n', 'F': ''}
    lines = dict((a.key, a.line) for a in parse_env_file('/etc/x.env', text))
    assert lines['C'] == 6 and lines['E'] == 9


def test_missing_env_file_is_an_error_unless_optional():
    unit = KUBESPRAY_UNIT.replace('EnvironmentFile=/etc/etcd.env',
                                  'EnvironmentFile=-/etc/default/etcd\nEnvironmentFile=/etc/etcd.env')
    with pytest.raises(EtcdModuleError, match='EnvironmentFile /etc/etcd.env does not exist'):
        load([('/etc/systemd/system/etcd.service', unit)])
    etcd = load([('/etc/systemd/system/etcd.service', unit)], {'/etc/etcd.env': KUBESPRAY_ENV})
    assert etcd.env_files[0] == {'path': '/etc/default/etcd', 'optional': True, 'exists': False}


def test_env_file_overrides_environment_and_later_files_override_earlier():
    unit = ('[Service]\nEnvironment="ETCD_NAME=from-unit" ETCD_DATA_DIR=/unit\nEnvironmentFile=/etc/a.env\n'
            'EnvironmentFile=/etc/b.env\nExecStart=/usr/bin/etcd\n')
    etcd = load([('/etc/systemd/system/etcd.service', unit)],
                {'/etc/a.env': 'ETCD_DATA_DIR=/a\n', '/etc/b.env': 'ETCD_DATA_DIR=/b\n'})
    assert etcd.member()['name'] == 'from-unit'
    assert etcd.data_dir_location().as_dict() == {'kind': 'env', 'file': '/etc/b.env', 'line': 1,
                                                  'variable': 'ETCD_DATA_DIR'}


def test_exec_start_variables_are_substituted_but_not_rewritten():
    unit = ('[Service]\nEnvironment=DATA=/var/lib/etcd "OPTS=--name e9"\n'
            'ExecStart=/usr/bin/etcd $OPTS --data-dir=${DATA}\n')
    etcd = load([('/etc/systemd/system/etcd.service', unit)])
    assert etcd.argv == ['/usr/bin/etcd', '--name', 'e9', '--data-dir=/var/lib/etcd']
    assert etcd.member()['name'] == 'e9'
    with pytest.raises(EtcdModuleError, match='cannot be rewritten safely'):
        with_data_dir(etcd, '/var/lib/etcd-2')


def test_split_words_unquotes_like_systemd():
    words = split_words(Chars('/usr/bin/etcd "--name=a b" \'--x=\\"\' --y=\\x41', range(40)))
    assert [word.text for word in words] == ['/usr/bin/etcd', '--name=a b', '--x="', '--y=A']


def test_exec_start_that_is_not_etcd_is_refused():
    with pytest.raises(EtcdModuleError, match='runs /usr/bin/python3, not etcd'):
        load([('/etc/systemd/system/foo.service', '[Service]\nExecStart=/usr/bin/python3 -m http.server\n')],
             unit='foo.service')


def test_urls_are_normalised_for_matching():
    assert normalize_url('HTTPS://10.0.0.1/') == ('https', '10.0.0.1', 443)
    assert normalize_url('https://[fd00::1]:2379') == ('https', 'fd00::1', 2379)
    assert normalize_url('http://Etcd.local:2379/') == ('http', 'etcd.local', 2379)


def test_two_units_on_one_host_are_told_apart_by_client_urls():
    main = ('[Service]\nExecStart=/usr/bin/etcd --name=k8s --data-dir=/var/lib/etcd '
            '--listen-client-urls=https://10.0.0.21:2379,https://127.0.0.1:2379 '
            '--advertise-client-urls=https://10.0.0.21:2379\n')
    events = ('[Service]\nExecStart=/usr/bin/etcd --name=events --data-dir=/var/lib/etcd-events '
              '--listen-client-urls=https://10.0.0.21:2381 --advertise-client-urls=https://10.0.0.21:2381/\n')
    members = [('etcd.service', load([('/etc/systemd/system/etcd.service', main)]).member()),
               ('etcd-events.service', load([('/etc/systemd/system/etcd-events.service', events)],
                                            unit='etcd-events.service').member())]
    servers = ['https://10.0.0.21:2379/', 'https://10.0.0.22:2379', 'https://10.0.0.23:2379']
    assert match_units(members, servers) == [('etcd.service', ['https://10.0.0.21:2379/'])]
    assert serving_units(members, ['https://10.0.0.21:2381']) == ['etcd-events.service']
    assert serving_units(members, ['https://127.0.0.1:2379', 'https://10.0.0.21:2381']) == [
        'etcd.service', 'etcd-events.service']
    with pytest.raises(EtcdModuleError, match="None of the etcd units .* serves the API servers' --etcd-servers"):
        serving_units(members, ['https://10.0.0.99:2379'])


def test_wildcard_listener_serves_urls_of_its_port():
    unit = ('[Service]\nExecStart=/usr/bin/etcd --data-dir=/d --listen-client-urls=https://0.0.0.0:2379 '
            '--advertise-client-urls=https://node1:2379\n')
    members = [('etcd.service', load([('/etc/systemd/system/etcd.service', unit)]).member())]
    assert match_units(members, ['https://10.0.0.21:2379', 'https://10.0.0.21:2381']) == [
        ('etcd.service', ['https://10.0.0.21:2379'])]


def test_unit_files_are_listed_from_systemctl_with_or_without_its_legend():
    from ansible_collections.kubeops.etcd.plugins.module_utils.etcd_unit import parse_unit_files
    systemd_no_legend = 'etcd.service                  enabled enabled\netcd-events.service disabled enabled\n'
    with_legend = ('UNIT FILE                     STATE\netcd.service enabled\netcd-events.service enabled\n\n'
                   '2 unit files listed.\n')
    for text in (systemd_no_legend, with_legend):
        assert parse_unit_files(text) == ['etcd-events.service', 'etcd.service']
    assert parse_unit_files('etcdctl.timer enabled\nnot-etcd.service enabled\n') == []


def test_one_unit_is_chosen_or_every_unit_named_when_the_api_servers_do_not_tell():
    from ansible_collections.kubeops.etcd.plugins.module_utils.etcd_unit import choose_unit
    main = {'advertise_client_urls': ['https://10.0.0.21:2379'], 'listen_client_urls': []}
    events = {'advertise_client_urls': ['https://10.0.0.21:2383'], 'listen_client_urls': []}
    assert choose_unit([('etcd.service', main)], []) == 'etcd.service'
    assert choose_unit([('etcd.service', main), ('etcd-events.service', events)],
                       ['https://10.0.0.21:2383']) == 'etcd-events.service'
    for members, servers, words in (
            ([], [], 'No etcd unit (etcd*.service) is installed on'),
            ([('etcd.service', main), ('etcd-events.service', events)], [], 'runs several etcd units'),
            ([('a.service', main), ('b.service', main)], ['https://10.0.0.21:2379'], 'Several etcd units on')):
        with pytest.raises(EtcdModuleError) as raised:
            choose_unit(members, servers)
        assert words in raised.value.msg
