# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_snapshot

from unit_helpers import FIXTURES, fakes, run_module

# Real snapshots with Secrets, made on the lab by tests/unit/fixtures/make_secret_snapshots.py.
SECRETS_SNAPSHOT = os.path.join(FIXTURES, 'snapshots', 'secrets-3.5.30.db')
NO_SECRETS = {'secrets_total': 0, 'secrets_plaintext': 0, 'secrets_encrypted': 0, 'encryption_providers': []}


@pytest.fixture
def node(tmp_path, tls):
    return {'tmp': tmp_path, 'tls': tls, 'backups': tmp_path / 'backups'}


def run(args, check_mode=False):
    return run_module(etcd_snapshot, args, check=check_mode)


def snapshot_args(node, fake, **overrides):
    args = dict(node['tls'], endpoints=['https://seed:2379'], dest=str(node['backups'] / 'etcd.db'),
                **fake.path_args())
    args.update(overrides)
    return dict((key, value) for key, value in args.items() if value is not None)


def listing(directory):
    return sorted(os.listdir(str(directory))) if os.path.isdir(str(directory)) else []


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_snapshot_from_leader_is_verified_private_and_described(node, monkeypatch, module_exits, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    # The 3.6 shape has a learner, which makes the cluster unhealthy: only force takes that snapshot.
    ok, result = run(snapshot_args(node, fake, force=True if version.startswith('3.6') else None))
    assert ok, result
    dest = node['backups'] / 'etcd.db'
    leader_endpoint, leader_id = fakes.expected_leader(version)

    assert result['changed'] is True
    assert listing(node['backups']) == ['etcd.db', 'etcd.db.meta.json']
    assert mode(node['backups']) == 0o700
    assert mode(dest) == 0o600 and mode(str(dest) + '.meta.json') == 0o600
    with open(str(dest), 'rb') as handle:
        content = handle.read()
    with open(fakes.SNAPSHOT, 'rb') as handle:
        assert content == handle.read()

    metadata = json.load(open(str(dest) + '.meta.json'))
    status = json.loads(fakes.read(version, 'snapshot_status_%s.stdout' % ('etcdctl' if version == '3.4.23' else 'etcdutl')))
    member_list = json.loads(fakes.read(version, 'member_list.stdout'))
    assert metadata['format'] == 1
    assert metadata['file'] == 'etcd.db'
    assert metadata['sha256'] == hashlib.sha256(content).hexdigest()
    assert metadata['size'] == len(content)
    assert metadata['revision'] == status['revision']
    assert metadata['hash'] == status['hash']
    assert metadata['total_key'] == status['totalKey']
    assert metadata['endpoint'] == leader_endpoint
    assert metadata['member_name'] == fakes.member_names(version)[leader_id]
    assert metadata['cluster_id'] == '%x' % member_list['header']['cluster_id']
    assert sorted(member['name'] for member in metadata['members']) == sorted(fakes.member_names(version).values())
    assert metadata['etcd_version'] == ('3.6.5' if version.startswith('3.6') else version)
    assert metadata['storage_version'] == ('3.6.0' if version.startswith('3.6') else None)
    assert metadata['created'].endswith('Z') and metadata['node']
    assert metadata['duration_seconds'] >= 0
    assert metadata['cluster_healthy'] is (not version.startswith('3.6'))  # 3.6 shape has a learner
    assert metadata['secrets'] == NO_SECRETS  # the fake's snapshot holds /registry/test/* keys only
    for key, value in metadata.items():
        assert result[key] == value
    assert result['dest'] == str(dest) and result['metadata_path'] == str(dest) + '.meta.json'
    assert result['has_trailing_hash'] is True
    cluster = result['cluster']
    assert cluster['healthy'] is metadata['cluster_healthy']
    assert cluster['leader'] == '%x' % leader_id and cluster['leader_client_url'] == leader_endpoint
    assert cluster['leader_name'] == metadata['member_name']
    assert cluster['cluster_id'] == metadata['cluster_id'] and cluster['members'] == metadata['members']
    assert cluster['problems'] == result['problems']

    saves = [call['argv'] for call in fake.calls('etcdctl') if 'save' in call['argv']]
    assert saves == [['--endpoints=%s' % leader_endpoint, '--cacert=%s' % node['tls']['cacert'],
                      '--cert=%s' % node['tls']['cert'], '--key=%s' % node['tls']['key'],
                      'snapshot', 'save', str(dest) + '.part']]
    assert not any('insecure' in arg for call in fake.calls() for arg in call['argv'])
    if version == '3.5.1':
        assert len(module_exits) == 1 and 'data-inconsistency' in module_exits[0]
    else:
        assert module_exits == []


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_check_real_again_again_in_check(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    args = snapshot_args(node, fake)

    ok, result = run(args, check_mode=True)
    assert ok and result['changed'] is True
    assert result['endpoint'] == fakes.expected_leader(version)[0]
    assert listing(node['backups']) == []
    assert not [call for call in fake.calls() if 'save' in call['argv']]

    ok, first = run(args)
    assert ok and first['changed'] is True
    before = open(str(node['backups'] / 'etcd.db.meta.json')).read()

    ok, again = run(args)
    assert ok and again['changed'] is False
    assert again['sha256'] == first['sha256'] and again['revision'] == first['revision']

    ok, again_check = run(args, check_mode=True)
    assert ok and again_check['changed'] is False
    assert len([call for call in fake.calls() if 'save' in call['argv']]) == 1
    assert listing(node['backups']) == ['etcd.db', 'etcd.db.meta.json']
    assert open(str(node['backups'] / 'etcd.db.meta.json')).read() == before


def test_existing_dest_without_metadata_is_refused(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    node['backups'].mkdir()
    (node['backups'] / 'etcd.db').write_bytes(b'someone else')
    ok, result = run(snapshot_args(node, fake))
    assert not ok
    assert 'already exists' in result['msg'] and 'force: true' in result['msg'] and 'no metadata file' in result['msg']
    assert listing(node['backups']) == ['etcd.db']
    assert (node['backups'] / 'etcd.db').read_bytes() == b'someone else'
    assert fake.calls() == []


def test_existing_dest_with_mismatching_metadata_is_refused(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    args = snapshot_args(node, fake)
    assert run(args)[0]
    with open(str(node['backups'] / 'etcd.db'), 'r+b') as handle:
        handle.seek(100)
        handle.write(b'X')
    ok, result = run(args)
    assert not ok and 'its SHA-256' in result['msg']


def test_force_moves_old_files_aside_and_deletes_nothing(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    node['backups'].mkdir()
    (node['backups'] / 'etcd.db').write_bytes(b'old snapshot')
    (node['backups'] / 'etcd.db.meta.json').write_text('{"old": true}')

    ok, result = run(snapshot_args(node, fake, force=True), check_mode=True)
    assert ok and result['changed'] is True and len(result['moved_aside']) == 2
    assert listing(node['backups']) == ['etcd.db', 'etcd.db.meta.json']

    ok, result = run(snapshot_args(node, fake, force=True))
    assert ok and result['changed'] is True
    moved_db, moved_meta = result['moved_aside']
    suffix = moved_db.rsplit('.', 1)[1]
    assert moved_db == str(node['backups'] / 'etcd.db') + '.' + suffix
    assert moved_meta == str(node['backups'] / 'etcd.db.meta.json') + '.' + suffix
    assert open(moved_db, 'rb').read() == b'old snapshot'
    assert open(moved_meta).read() == '{"old": true}'
    assert len(listing(node['backups'])) == 4


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_member_name_selects_that_member(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    members = json.loads(fakes.read(version, 'member_list.stdout'))['members']
    _leader_endpoint, leader_id = fakes.expected_leader(version)
    follower = [member for member in members if member['ID'] != leader_id][0]
    ok, result = run(snapshot_args(node, fake, member_name=follower['name']))
    assert ok
    assert result['member_name'] == follower['name']
    assert result['endpoint'] == follower['clientURLs'][0]


def test_unknown_member_name_lists_members(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, member_name='cp9'))
    assert not ok
    assert result['msg'] == 'No etcd member named cp9 (members: m1, m2, m3); check member_name.'
    assert listing(node['backups']) == []


def test_explicit_endpoint(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.16')
    ok, result = run(snapshot_args(node, fake, endpoint='http://127.0.0.1:24602'))
    assert ok and result['endpoint'] == 'http://127.0.0.1:24602' and result['member_name'] == 'm2'


def test_endpoint_and_member_name_are_mutually_exclusive(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, endpoint='https://a:2379', member_name='m1'))
    assert not ok and 'mutually exclusive' in result['msg']


def test_dest_ending_in_part_is_refused(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, dest=str(node['backups'] / 'x.part')))
    assert not ok and 'ends with .part' in result['msg']


def test_leftover_part_file_is_reported_and_kept(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    node['backups'].mkdir()
    (node['backups'] / 'etcd.db.part').write_bytes(b'partial')
    ok, result = run(snapshot_args(node, fake))
    assert not ok and 'did not finish' in result['msg']
    assert listing(node['backups']) == ['etcd.db.part']


@pytest.mark.parametrize('scenario, message', [
    ('save_enospc', 'Free space on the filesystem'),
    ('save_no_trailer', 'no valid trailing SHA-256'),
    ('status_fails', 'Error: invalid database'),
])
def test_failed_snapshot_leaves_no_part_file(node, monkeypatch, scenario, message):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    fake.scenario(scenario)
    ok, result = run(snapshot_args(node, fake))
    assert not ok and message in result['msg'], result['msg']
    assert listing(node['backups']) == []


def test_timeout_kills_etcdctl_and_leaves_no_part_file(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    fake.scenario('save_hangs')
    ok, result = run(snapshot_args(node, fake, command_timeout=2))
    assert not ok and 'did not finish within 2 seconds' in result['msg']
    assert listing(node['backups']) == []


def test_failed_force_run_keeps_the_old_snapshot_in_place(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    node['backups'].mkdir()
    (node['backups'] / 'etcd.db').write_bytes(b'old snapshot')
    fake.scenario('save_enospc')
    ok, _result = run(snapshot_args(node, fake, force=True))
    assert not ok
    assert listing(node['backups']) == ['etcd.db']
    assert (node['backups'] / 'etcd.db').read_bytes() == b'old snapshot'


def test_cluster_unreachable_names_endpoints_and_fix(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    fake.scenario('member_list_fails')
    ok, result = run(snapshot_args(node, fake))
    assert not ok
    assert result['msg'].startswith('Listing etcd members at https://seed:2379 failed on ')
    assert 'context deadline exceeded' in result['msg'] and 'cacert/cert/key' in result['msg']
    assert listing(node['backups']) == []


def read_calls(fake):
    """The etcdctl calls that read the cluster, in order."""
    return [words for words in fake.commands() if words and words[0] in ('member', 'endpoint')]


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_one_read_of_the_cluster_chooses_the_leader_and_judges_health(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    ok, result = run(snapshot_args(node, fake))
    assert ok and result['cluster']['healthy'] is True and result['problems'] == []
    assert read_calls(fake) == [['member', 'list'], ['endpoint', 'status'], ['endpoint', 'health']]
    status, health = [call['argv'] for call in fake.calls('etcdctl') if 'endpoint' in call['argv']]
    members = json.loads(fakes.read(version, 'member_list.stdout'))['members']
    every_member = '--endpoints=' + ','.join(url for member in members for url in member['clientURLs'])
    assert status[0] == health[0] == every_member


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_unhealthy_cluster_is_refused_and_nothing_is_written(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    fake.scenario('one_down')
    for check_mode in (True, False):
        ok, result = run(snapshot_args(node, fake), check_mode=check_mode)
        assert not ok
        assert result['msg'].startswith('The etcd cluster is not healthy (read from ')
        assert 'member m3 is unreachable' in result['msg'] and 'force: true' in result['msg']
        assert result['cluster_healthy'] is False and result['cluster']['healthy'] is False
        assert result['problems'][0].startswith('member m3 is unreachable')
    assert listing(node['backups']) == []
    assert not [call for call in fake.calls() if 'save' in call['argv']]


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_force_takes_the_snapshot_of_an_unhealthy_cluster_and_records_it(node, monkeypatch, version):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, version)
    fake.scenario('one_down')
    ok, result = run(snapshot_args(node, fake, force=True))
    assert ok
    assert result['cluster_healthy'] is False and result['cluster']['healthy'] is False
    assert result['problems'][0].startswith('member m3 is unreachable')
    assert result['endpoint'] == fakes.expected_leader(version, 'endpoint_status_one_down.stdout')[0]
    metadata = json.load(open(str(node['backups'] / 'etcd.db.meta.json')))
    assert metadata['cluster_healthy'] is False


def test_check_mode_reads_chooses_and_reports_what_it_would_snapshot(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    members = json.loads(fakes.read('3.5.30', 'member_list.stdout'))['members']
    _leader_endpoint, leader_id = fakes.expected_leader('3.5.30')
    follower = [member for member in members if member['ID'] != leader_id][0]
    ok, result = run(snapshot_args(node, fake, member_name=follower['name']), check_mode=True)
    assert ok and result['changed'] is True
    assert result['member_name'] == follower['name'] and result['endpoint'] == follower['clientURLs'][0]
    assert result['dest'] == str(node['backups'] / 'etcd.db')
    assert result['cluster']['healthy'] is True and result['cluster_healthy'] is True
    assert result['cluster']['leader'] == '%x' % leader_id
    assert 'sha256' not in result
    assert read_calls(fake) == [['member', 'list'], ['endpoint', 'status'], ['endpoint', 'health']]
    assert not os.path.exists(str(node['backups']))


def test_missing_certificate_fails_before_touching_disk(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    os.unlink(node['tls']['cert'])
    ok, result = run(snapshot_args(node, fake))
    assert not ok
    assert 'cert file %s does not exist' % node['tls']['cert'] in result['msg']
    assert listing(node['backups']) == []


def test_no_status_tool_fails_before_snapshot(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.6-upstream', tools=['etcdctl'])
    ok, result = run(snapshot_args(node, fake))
    assert not ok and 'No tool to read snapshot files' in result['msg']
    assert not [call for call in fake.calls() if 'save' in call['argv']]


def test_without_metadata_second_run_needs_force(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, write_metadata=False))
    assert ok and result['changed'] is True
    assert listing(node['backups']) == ['etcd.db']
    ok, result = run(snapshot_args(node, fake, write_metadata=False))
    assert not ok and 'no metadata file' in result['msg']


def test_relative_dest_is_refused(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, dest='etcd.db'))
    assert not ok and 'is not an absolute path' in result['msg']


def test_orphan_metadata_is_moved_aside_not_overwritten(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    node['backups'].mkdir()
    (node['backups'] / 'etcd.db.meta.json').write_text('{"orphan": true}')
    ok, result = run(snapshot_args(node, fake))
    assert ok and result['changed'] is True
    assert len(result['moved_aside']) == 1
    assert open(result['moved_aside'][0]).read() == '{"orphan": true}'
    assert json.load(open(str(node['backups'] / 'etcd.db.meta.json')))['sha256'] == result['sha256']


def test_secrets_in_the_snapshot_are_counted_into_metadata_and_result(node, monkeypatch, module_exits):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    monkeypatch.setenv('FAKE_ETCD_SNAPSHOT', SECRETS_SNAPSHOT)
    ok, result = run(snapshot_args(node, fake))
    assert ok, result
    expected = {'secrets_total': 14, 'secrets_plaintext': 7, 'secrets_encrypted': 7,
                'encryption_providers': ['aescbc', 'secretbox']}
    metadata = json.load(open(str(node['backups'] / 'etcd.db.meta.json')))
    assert metadata['secrets'] == expected and result['secrets'] == expected
    assert module_exits == []

    ok, again = run(snapshot_args(node, fake))
    assert ok and again['changed'] is False and again['secrets'] == expected


def test_a_snapshot_that_cannot_be_scanned_is_kept_with_the_reason(node, monkeypatch, module_exits):
    # etcd's checks pass (trailer, bbolt header, snapshot status) but one value in the key bucket is not a
    # KeyValue: the backup succeeds, the metadata says why there is no count, and the module warns.
    with open(SECRETS_SNAPSHOT, 'rb') as handle:
        body = handle.read()[:-32]
    key = b'/registry/configmaps/ns1/cm-0500'
    at = body.index(b'\x0a' + bytes([len(key)]) + key)
    body = body[:at] + b'\x0b' + body[at + 1:]
    damaged = node['tmp'] / 'damaged.db'
    damaged.write_bytes(body + hashlib.sha256(body).digest())
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    monkeypatch.setenv('FAKE_ETCD_SNAPSHOT', str(damaged))

    ok, result = run(snapshot_args(node, fake))
    assert ok, result
    dest = str(node['backups'] / 'etcd.db')
    assert listing(node['backups']) == ['etcd.db', 'etcd.db.meta.json']
    assert open(dest, 'rb').read() == damaged.read_bytes()
    metadata = json.load(open(dest + '.meta.json'))
    assert list(metadata['secrets']) == ['error'] and metadata['secrets'] == result['secrets']
    assert metadata['secrets']['error'].startswith(
        '%s is not an etcd database or is damaged: key bucket entry ' % dest)
    assert metadata['sha256'] == hashlib.sha256(damaged.read_bytes()).hexdigest()
    assert len(module_exits) == 1
    assert module_exits[0].startswith('Could not count the Secrets in the snapshot %s on ' % dest)
    assert module_exits[0].endswith('unsupported wire type 3. The snapshot itself is verified and kept.')


# External etcd: the role passes the API servers' --etcd-servers as endpoints and topology=external.
EXTERNAL_SERVERS = ['https://192.0.2.21:2379', 'https://192.0.2.22:2379', 'https://192.0.2.23:2379']


def test_external_topology_and_etcd_servers_are_recorded_in_the_metadata(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, endpoints=EXTERNAL_SERVERS, topology='external'))
    assert ok, result
    with open(str(node['backups'] / 'etcd.db.meta.json')) as handle:
        metadata = json.load(handle)
    assert metadata['topology'] == 'external' and metadata['etcd_servers'] == EXTERNAL_SERVERS
    assert result['topology'] == 'external' and result['etcd_servers'] == EXTERNAL_SERVERS
    assert metadata['cluster_id'] == result['cluster_id'] and metadata['sha256'] == result['sha256']
    member_list = [call['argv'] for call in fake.calls('etcdctl') if 'member' in call['argv']][0]
    assert member_list[0] == '--endpoints=%s' % ','.join(EXTERNAL_SERVERS)


def test_stacked_topology_is_recorded_without_etcd_servers(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, topology='stacked'))
    assert ok, result
    with open(str(node['backups'] / 'etcd.db.meta.json')) as handle:
        metadata = json.load(handle)
    assert metadata['topology'] == 'stacked' and 'etcd_servers' not in metadata and 'etcd_servers' not in result


def test_without_topology_the_metadata_records_none(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake))
    assert ok, result
    with open(str(node['backups'] / 'etcd.db.meta.json')) as handle:
        metadata = json.load(handle)
    assert 'topology' not in metadata and 'etcd_servers' not in metadata


def test_external_topology_without_endpoints_is_refused_before_anything_runs(node, monkeypatch):
    fake = fakes.FakeEtcd(node['tmp'], monkeypatch, '3.5.30')
    ok, result = run(snapshot_args(node, fake, endpoints=None, topology='external'))
    assert not ok
    assert 'topology is external but no endpoints are set' in result['msg'] and '--etcd-servers' in result['msg']
    assert fake.calls() == [] and listing(node['backups']) == []
