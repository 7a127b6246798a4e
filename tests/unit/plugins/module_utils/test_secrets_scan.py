# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Counting plaintext Secrets in real etcd snapshots (made on the lab by tests/unit/fixtures/make_secret_snapshots.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib.util
import os
import shutil

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import bbolt, files, secrets_scan

from unit_helpers import FIXTURES

VERSIONS = ['3.4.23', '3.5.30']


def _load_maker():
    spec = importlib.util.spec_from_file_location('kubeops_make_secret_snapshots',
                                                  os.path.join(FIXTURES, 'make_secret_snapshots.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maker = _load_maker()


def snapshot(version):
    return os.path.join(FIXTURES, 'snapshots', 'secrets-%s.db' % version)


def data_size(path):
    return os.path.getsize(path) - files.TRAILING_HASH_SIZE


def expected_from_the_writes():
    """Replay the writes the fixture script made: the last write of each key wins, a delete removes it."""
    state = {}
    for op in maker.operations():
        if op[0] == 'delete':
            state.pop(op[1], None)
        else:
            state[op[1]] = op[2]
    secrets = [value for key, value in state.items() if key.startswith('/registry/secrets/')]
    encrypted = [value for value in secrets if value.startswith(b'k8s:enc:')]
    return {'secrets_total': len(secrets), 'secrets_plaintext': len(secrets) - len(encrypted),
            'secrets_encrypted': len(encrypted),
            'encryption_providers': sorted(set(value.split(b':')[2].decode() for value in encrypted))}


@pytest.mark.parametrize('version', VERSIONS)
def test_counts_the_current_secrets_of_a_real_snapshot(version):
    path = snapshot(version)
    counts = secrets_scan.scan_secrets(path, data_size(path))
    assert counts == {'secrets_total': 14, 'secrets_plaintext': 7, 'secrets_encrypted': 7,
                      'encryption_providers': ['aescbc', 'secretbox']}
    assert counts == expected_from_the_writes()
    assert maker.SECRETS == {'total': 14, 'plaintext': 7, 'encrypted': 7, 'providers': ['aescbc', 'secretbox']}


@pytest.mark.parametrize('version', VERSIONS)
def test_latest_revision_wins_and_tombstones_delete(version):
    """Read back every Secret revision: rotated and recreated end encrypted, decrypted ends plain, deleted is gone."""
    latest = {}
    for revision, data in bbolt.iterate_bucket(snapshot(version), 'key'):
        _main, _sub, tombstone = secrets_scan.parse_revision(revision)
        kv = secrets_scan.decode_key_value(data)
        if kv['key'].startswith(b'/registry/secrets/ns1/'):
            latest.setdefault(kv['key'].rsplit(b'/', 1)[1].decode(), []).append(
                'deleted' if tombstone else secrets_scan.encryption_provider(kv['value']) or 'plain')
    assert latest['rotated'] == ['plain', 'aescbc']
    assert latest['decrypted'] == ['aescbc', 'plain']
    assert latest['deleted'] == ['plain', 'deleted']
    assert latest['recreated'] == ['plain', 'deleted', 'aescbc']
    assert latest['big'] == ['plain']


def test_the_whole_file_including_the_trailer_scans_the_same():
    path = snapshot('3.5.30')
    assert secrets_scan.scan_secrets(path) == secrets_scan.scan_secrets(path, data_size(path))


def test_summary_of_a_truncated_snapshot_is_an_error_not_an_exception(tmp_path):
    path = str(tmp_path / 'cut.db')
    shutil.copyfile(snapshot('3.4.23'), path)
    with open(path, 'r+b') as handle:
        handle.truncate(80000)
    assert secrets_scan.secrets_summary(path) == {
        'error': '%s is truncated: its database needs 167936 bytes but the file holds 80000' % path}


def test_summary_of_a_non_etcd_bbolt_file_names_the_missing_bucket(tmp_path):
    # A valid bbolt file without etcd's buckets: keep only the meta pages and an empty root leaf page.
    path = str(tmp_path / 'other.db')
    with open(snapshot('3.5.30'), 'rb') as handle:
        data = bytearray(handle.read())
    meta = bbolt.parse_meta(bytes(data[:4096]))
    root = meta['root'] * 4096
    data[root + 10:root + 12] = b'\0\0'  # the root bucket's leaf page now lists no bucket
    with open(path, 'wb') as handle:
        handle.write(bytes(data))
    assert secrets_scan.secrets_summary(path) == {'error': "%s has no bucket 'key'" % path}


def test_summary_of_a_missing_file_says_so(tmp_path):
    summary = secrets_scan.secrets_summary(str(tmp_path / 'missing.db'))
    assert summary == {'error': 'cannot open %s: No such file or directory' % (tmp_path / 'missing.db')}


def test_a_damaged_value_in_the_key_bucket_names_the_entry(tmp_path):
    path = str(tmp_path / 'damaged.db')
    with open(snapshot('3.5.30'), 'rb') as handle:
        data = handle.read()
    key = b'/registry/configmaps/ns1/cm-0500'
    at = data.index(b'\x0a' + bytes([len(key)]) + key)
    # Field 1 as wire type 3 (a group): not what etcd writes.
    data = data[:at] + b'\x0b' + data[at + 1:]
    with open(path, 'wb') as handle:
        handle.write(data)
    error = secrets_scan.secrets_summary(path)['error']
    assert error.startswith('%s is not an etcd database or is damaged: key bucket entry ' % path)
    assert error.endswith(': a protobuf field has unsupported wire type 3')


def test_unexpected_failures_are_reported_too(monkeypatch, tmp_path):
    def boom(*_args):
        raise MemoryError('no memory left')

    monkeypatch.setattr(secrets_scan, 'scan_secrets', boom)
    assert secrets_scan.secrets_summary('/x.db') == {'error': 'cannot scan /x.db: MemoryError: no memory left'}


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire, payload):
    return varint(number << 3 | wire) + payload


def test_decode_key_value_reads_etcd_fields_and_skips_unknown_ones():
    message = b''.join([
        field(1, 2, varint(9) + b'/registry'),
        field(2, 0, varint(300)),
        field(15, 1, b'\x01' * 8),                      # unknown fixed64
        field(3, 0, varint(2 ** 63 + 5)),               # a revision beyond 2^63 still decodes
        field(16, 2, varint(3) + b'abc'),               # unknown bytes, two-byte tag
        field(4, 0, varint(7)),
        field(14, 5, b'\x02' * 4),                      # unknown fixed32
        field(5, 2, varint(200) + b'v' * 200),          # two-byte length
        field(6, 0, varint(1234567890123)),
        field(17, 0, varint(1)),                        # unknown varint
    ])
    assert secrets_scan.decode_key_value(message) == {
        'key': b'/registry', 'create_revision': 300, 'mod_revision': 2 ** 63 + 5, 'version': 7,
        'value': b'v' * 200, 'lease': 1234567890123}
    assert secrets_scan.decode_key_value(b'') == {
        'key': b'', 'create_revision': 0, 'mod_revision': 0, 'version': 0, 'value': b'', 'lease': 0}


@pytest.mark.parametrize('message, error', [
    (b'\x0a\x05abc', 'a protobuf field of 5 bytes runs past the end of the value'),
    (b'\x10\xff', 'a protobuf varint runs past the end of its value'),
    (b'\x10' + b'\xff' * 10 + b'\x01', 'a protobuf varint is longer than 10 bytes'),
    (b'\x0b', 'a protobuf field has unsupported wire type 3'),
    (b'\x00\x01', 'a protobuf field has number 0'),
    (b'\x09' + b'\0' * 4, 'a protobuf fixed64 field runs past the end of its value'),
    (b'\x0d\0', 'a protobuf fixed32 field runs past the end of its value'),
    (b'\x08\x01', 'field key of a KeyValue has the wrong wire type'),
])
def test_malformed_key_values_are_refused(message, error):
    with pytest.raises(secrets_scan.ScanError) as raised:
        secrets_scan.decode_key_value(message)
    assert str(raised.value) == error


@pytest.mark.parametrize('raw, parsed', [
    (b'\0' * 7 + b'\x13_' + b'\0' * 7 + b'\x02', (19, 2, False)),
    (b'\0' * 6 + b'\x01\x00_' + b'\0' * 8 + b't', (256, 0, True)),
])
def test_parse_revision(raw, parsed):
    assert secrets_scan.parse_revision(raw) == parsed


@pytest.mark.parametrize('raw', [b'\0' * 17, b'\0' * 8 + b'_' + b'\0' * 8 + b'x', b'consistent_index'])
def test_keys_that_are_not_revisions_are_refused(raw):
    with pytest.raises(secrets_scan.ScanError):
        secrets_scan.parse_revision(raw)


@pytest.mark.parametrize('value, provider', [
    (b'k8s\x00\n\x0c\n\x02v1', None),
    (b'{"kind":"Secret"}', None),
    (b'', None),
    (b'k8s:enc:aescbc:v1:key1:\x00\x01', 'aescbc'),
    (b'k8s:enc:aesgcm:v1:k:', 'aesgcm'),
    (b'k8s:enc:secretbox:v1:key2:', 'secretbox'),
    (b'k8s:enc:kms:v2:vault:', 'kms'),
    (b'k8s:enc:', 'unknown'),
])
def test_encryption_provider(value, provider):
    assert secrets_scan.encryption_provider(value) == provider
