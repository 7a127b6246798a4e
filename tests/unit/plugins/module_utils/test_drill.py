# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup drill's decisions: argv of the restore and of the throwaway etcd, ports, the key sample, the keys a
real snapshot holds (tombstones honoured), and every comparison with the metadata and with what etcd served."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import hashlib
import json
import os
import random
import socket

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import drill, files

from unit_helpers import FIXTURES

URLS = {'client': 'http://127.0.0.1:40001', 'peer': 'http://127.0.0.1:40002'}


def snapshot(version):
    return os.path.join(FIXTURES, 'snapshots', 'secrets-%s.db' % version)


def data_size(path):
    return os.path.getsize(path) - files.TRAILING_HASH_SIZE


# --- the throwaway member -----------------------------------------------------------------------

def test_free_loopback_ports_are_distinct_and_bindable_on_loopback():
    ports = drill.free_loopback_ports(2)
    assert len(set(ports)) == 2
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(('127.0.0.1', port))


def test_member_urls_are_plain_http_on_loopback():
    assert drill.member_urls(40001, 40002) == URLS


@pytest.mark.parametrize('tool', ['etcdutl', 'etcdctl'])
def test_restore_argv_makes_a_one_member_cluster_with_its_own_name_token_and_peer_url(tool):
    argv = drill.restore_argv(tool, '/opt/etcd/%s' % tool, '/b/s.db', '/tmp/d/member-0', 'kubeops-drill-1', URLS, 'tok')
    assert argv == ['/opt/etcd/%s' % tool, 'snapshot', 'restore', '/b/s.db', '--data-dir', '/tmp/d/member-0',
                    '--name', 'kubeops-drill-1', '--initial-cluster', 'kubeops-drill-1=http://127.0.0.1:40002',
                    '--initial-cluster-token', 'tok', '--initial-advertise-peer-urls', 'http://127.0.0.1:40002']


def test_restore_argv_skips_the_hash_check_only_for_a_raw_copy_and_refuses_no_tool():
    argv = drill.restore_argv('etcdutl', 'etcdutl', 's.db', 'd', 'n', URLS, 't', skip_hash_check=True)
    assert argv[-1] == '--skip-hash-check'
    with pytest.raises(ValueError):
        drill.restore_argv(None, None, 's.db', 'd', 'n', URLS, 't')


def test_etcd_argv_listens_on_the_given_loopback_urls_only():
    argv = drill.etcd_argv('/usr/bin/etcd', 'n', '/tmp/d/member-0', URLS)
    flags = dict(zip(argv[1::2], argv[2::2]))
    assert argv[0] == '/usr/bin/etcd' and len(argv) % 2 == 1
    assert flags['--listen-client-urls'] == flags['--advertise-client-urls'] == URLS['client']
    assert flags['--listen-peer-urls'] == flags['--initial-advertise-peer-urls'] == URLS['peer']
    assert flags['--initial-cluster'] == 'n=' + URLS['peer']
    assert flags['--data-dir'] == '/tmp/d/member-0'
    assert all('127.0.0.1' in value for key, value in flags.items() if key.endswith('-urls'))
    assert '--listen-metrics-urls' not in flags


def test_etcdctl_argv_talks_to_the_throwaway_member_only():
    argv = drill.etcdctl_argv('/usr/bin/etcdctl', URLS, 'get', '--', '-odd')
    assert argv[:2] == ['/usr/bin/etcdctl', '--endpoints=http://127.0.0.1:40001']
    assert argv[-3:] == ['get', '--', '-odd']


def test_port_in_use_is_recognised_in_etcds_log():
    log = '{"level":"fatal","msg":"listen tcp 127.0.0.1:40001: bind: address already in use"}'
    assert drill.port_in_use(log)
    assert not drill.port_in_use('{"level":"fatal","msg":"member has already been bootstrapped"}')
    assert not drill.port_in_use(None)


# --- what the file holds ------------------------------------------------------------------------

@pytest.mark.parametrize('version', ['3.4.23', '3.5.30'])
def test_read_live_keys_of_a_real_snapshot_honours_deletions(version):
    path = snapshot(version)
    live = drill.read_live_keys(path, data_size(path))
    assert b'/registry/secrets/ns1/deleted' not in live
    assert b'/registry/secrets/ns1/recreated' in live
    assert len([k for k in live if k.startswith(b'/registry/configmaps/ns1/cm-')]) == 1000
    assert len([k for k in live if k.startswith(b'/registry/secrets/')]) == 14
    # The recreated Secret's current revision is after the deletion of its first incarnation.
    assert all(isinstance(rev, int) and rev > 0 for rev in live.values())


def test_read_values_digest_gives_the_current_value_of_the_wanted_keys_only():
    path = snapshot('3.5.30')
    wanted = [b'/registry/secrets/ns1/rotated', b'/registry/secrets/ns1/deleted', b'/registry/configmaps/ns1/cm-0007']
    digests = drill.read_values_digest(path, wanted, data_size(path))
    assert sorted(digests) == [b'/registry/configmaps/ns1/cm-0007', b'/registry/secrets/ns1/rotated']
    assert all(len(value) == 64 for value in digests.values())


def test_choose_sample_takes_the_first_registry_keys_then_random_others():
    keys = [b'/a/x', b'/registry/b', b'/registry/a', b'/registry/c', b'/z/1', b'/z/2', b'/z/3']
    sample = drill.choose_sample(keys, 4, random.Random(1))
    assert sample == sorted(sample) and len(set(sample)) == 4
    assert b'/registry/a' in sample and b'/registry/b' in sample


def test_choose_sample_never_repeats_and_caps_at_the_keys_there_are():
    keys = [b'/registry/a', b'/b']
    assert drill.choose_sample(keys, 20, random.Random(1)) == [b'/b', b'/registry/a']
    assert drill.choose_sample(keys, 0, random.Random(1)) == []
    assert drill.choose_sample([], 5, random.Random(1)) == []
    assert drill.choose_sample([b'/x', b'/y'], 1, random.Random(1)) in ([b'/x'], [b'/y'])


# --- what the throwaway etcd serves -------------------------------------------------------------

def get_reply(revision, count, kvs):
    return json.dumps({'header': {'cluster_id': 1, 'member_id': 2, 'revision': revision, 'raft_term': 2},
                       'kvs': [{'key': base64.b64encode(k).decode(), 'create_revision': 2, 'mod_revision': mod,
                                'version': 1, 'value': base64.b64encode(v).decode()} for k, mod, v in kvs],
                       'count': count})


def test_parse_get_reads_revision_count_and_hashes_values_without_keeping_them():
    reply = drill.parse_get(get_reply(19, 1, [(b'/registry/a', 7, b'secret')]))
    assert reply['revision'] == 19 and reply['count'] == 1
    assert reply['kvs'] == [{'key': b'/registry/a', 'mod_revision': 7, 'value_size': 6,
                             'value_sha256': hashlib.sha256(b'secret').hexdigest()}]
    # --count-only / --keys-only replies have no kvs or no values.
    assert drill.parse_get('{"header":{"revision":5},"count":3}') == {'revision': 5, 'count': 3, 'kvs': []}


def test_sample_differences_name_the_key_and_what_differs_never_the_value():
    digest = hashlib.sha256(b'v1').hexdigest()
    good = drill.parse_get(get_reply(9, 1, [(b'/registry/a', 7, b'v1')]))
    assert drill.sample_differences(b'/registry/a', 7, digest, good) == []
    assert drill.sample_differences(b'/registry/a', 8, digest, good) == [
        'key /registry/a: mod_revision 7 served, 8 in the snapshot']
    other = drill.sample_differences(b'/registry/a', 7, hashlib.sha256(b'v2').hexdigest(), good)
    assert other == ['key /registry/a: the value served (2 bytes) is not the value in the snapshot']
    missing = drill.sample_differences(b'/registry/b', 7, digest, good)
    assert missing == ['key /registry/b is in the snapshot but the restored etcd does not serve it']


# --- comparisons --------------------------------------------------------------------------------

FACTS = {'sha256': 'a' * 64, 'size': 20512, 'status': {'revision': 51, 'total_key': 58}}
META = {'sha256': 'a' * 64, 'size': 20512, 'revision': 51, 'total_key': 58, 'etcd_version': '3.5.30'}


def test_metadata_that_matches_the_file_gives_no_difference_and_no_metadata_none():
    assert drill.metadata_differences(META, FACTS, '3.5.16') == []
    assert drill.metadata_differences(None, FACTS, '3.5.16') == []


def test_metadata_differences_name_each_field():
    meta = dict(META, sha256='b' * 64, revision=50)
    del meta['size']
    assert drill.metadata_differences(meta, FACTS, '3.5.30') == [
        'sha256 is %s in the metadata but %s in the file' % ('b' * 64, 'a' * 64),
        'size is missing from the metadata',
        'revision is 50 in the metadata but 51 in the file']


def test_total_key_is_compared_only_with_a_tool_of_the_metadatas_minor_version():
    meta = dict(META, total_key=60)
    assert drill.metadata_differences(meta, FACTS, '3.5.1') == ['total_key is 60 in the metadata but 58 in the file']
    assert drill.metadata_differences(meta, FACTS, '3.6.0') == []
    assert drill.metadata_differences(dict(meta, etcd_version=None), FACTS, '3.5.30') == []


def test_served_differences_compare_revision_and_key_count():
    expected = {'revision': 51, 'live_keys': 41}
    assert drill.served_differences(expected, {'revision': 51, 'count': 41}) == []
    assert drill.served_differences(expected, {'revision': 52, 'count': 40}) == [
        'the restored etcd is at revision 52, the snapshot at 51',
        'the restored etcd serves 40 keys, the snapshot holds 41']


def test_failure_text_names_file_host_stage_every_difference_and_the_next_step():
    text = drill.failure_text('/b/s.db', 'ops1', ['a differs', 'b differs'], 'comparing')
    assert text.startswith('Backup drill failed for /b/s.db on ops1 (comparing): a differs; b differs.')
    assert 'take a new one (playbooks/backup.yml)' in text


def test_key_text_keeps_undecodable_bytes_visible():
    assert drill.key_text(b'/registry/\xff') == '/registry/\\xff'
