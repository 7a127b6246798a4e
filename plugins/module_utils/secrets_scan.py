# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Count the Kubernetes Secrets an etcd snapshot holds in clear text.

Private to this collection (no stable API before 1.0). etcd's ``key`` bucket maps a revision
(``<main u64 BE>_<sub u64 BE>``, plus ``t`` for a deletion) to an ``mvccpb.KeyValue`` protobuf; bbolt keeps the
bucket in key order, which is revision order, so the last entry seen for a key is its current state. The API
server stores a Secret under ``/registry/secrets/<namespace>/<name>`` (with the default ``--etcd-prefix``);
with encryption at rest its value starts with ``k8s:enc:<provider>:`` (``aescbc:v1:``, ``aesgcm:v1:``,
``secretbox:v1:``, ``kms:v1:``, ``kms:v2:``), else it is the object in clear text (``k8s\\x00`` + protobuf, or
JSON).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeops.etcd.plugins.module_utils.bbolt import BoltError, BoltReader

KEY_BUCKET = b'key'
SECRETS_PREFIX = b'/registry/secrets/'
ENCRYPTED_PREFIX = b'k8s:enc:'
REVISION_KEY_SIZE = 17  # 8-byte main revision, '_', 8-byte sub revision
TOMBSTONE_MARK = b't'

# mvccpb.KeyValue field numbers (etcd api/mvccpb/kv.proto).
KV_KEY = 1
KV_CREATE_REVISION = 2
KV_MOD_REVISION = 3
KV_VERSION = 4
KV_VALUE = 5
KV_LEASE = 6
_KV_NAMES = {KV_KEY: 'key', KV_CREATE_REVISION: 'create_revision', KV_MOD_REVISION: 'mod_revision',
             KV_VERSION: 'version', KV_VALUE: 'value', KV_LEASE: 'lease'}

_WIRE_VARINT = 0
_WIRE_FIXED64 = 1
_WIRE_BYTES = 2
_WIRE_FIXED32 = 5


class ScanError(BoltError):
    """An entry of the key bucket is not what etcd writes."""


def decode_varint(data, pos):
    """(value, next position) of the protobuf varint at data[pos:]."""
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ScanError('a protobuf varint runs past the end of its value')
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ScanError('a protobuf varint is longer than 10 bytes')


def decode_fields(data, wanted=None):
    """{field number: value} of a protobuf message (bytes): ints for varint and fixed fields, bytes for
    length-delimited ones; a repeated field keeps its last value, as protobuf merges scalars.

    ``wanted`` (a set of field numbers) keeps only those; the others are skipped by their wire type without being
    copied. Groups (deprecated wire types 3 and 4) are refused.
    """
    fields = {}
    pos = 0
    end = len(data)
    while pos < end:
        tag = data[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = decode_varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ScanError('a protobuf field has number 0')
        keep = wanted is None or field in wanted
        if wire == _WIRE_BYTES:
            size, pos = decode_varint(data, pos)
            if pos + size > end:
                raise ScanError('a protobuf field of %d bytes runs past the end of the value' % size)
            if keep:
                fields[field] = data[pos:pos + size]
            pos += size
        elif wire == _WIRE_VARINT:
            value, pos = decode_varint(data, pos)
            if keep:
                fields[field] = value
        elif wire in (_WIRE_FIXED64, _WIRE_FIXED32):
            size = 8 if wire == _WIRE_FIXED64 else 4
            if pos + size > end:
                raise ScanError('a protobuf fixed%d field runs past the end of its value' % (size * 8))
            if keep:
                fields[field] = int.from_bytes(data[pos:pos + size], 'little')
            pos += size
        else:
            raise ScanError('a protobuf field has unsupported wire type %d' % wire)
    return fields


def decode_key_value(data, wanted=None):
    """The fields of an mvccpb.KeyValue: {key, create_revision, mod_revision, version, value, lease}
    (bytes and ints; absent fields are b'' or 0, as protobuf defines). ``wanted`` limits it to those names."""
    numbers = set(number for number, name in _KV_NAMES.items() if wanted is None or name in wanted)
    fields = decode_fields(bytes(data), numbers)
    decoded = {}
    for number in sorted(numbers):
        name = _KV_NAMES[number]
        bytes_field = number in (KV_KEY, KV_VALUE)
        value = fields.get(number, b'' if bytes_field else 0)
        if isinstance(value, bytes) != bytes_field:
            raise ScanError('field %s of a KeyValue has the wrong wire type' % name)
        decoded[name] = value
    return decoded


def is_tombstone(raw):
    """Whether a key of etcd's key bucket marks a deletion; ScanError when it is no revision at all."""
    size = len(raw)
    if raw[8:9] != b'_' or not (size == REVISION_KEY_SIZE or (
            size == REVISION_KEY_SIZE + 1 and raw[REVISION_KEY_SIZE:] == TOMBSTONE_MARK)):
        raise ScanError('the key is not an etcd revision')
    return size > REVISION_KEY_SIZE


def parse_revision(raw):
    """(main, sub, tombstone) of a key of etcd's key bucket."""
    tombstone = is_tombstone(raw)
    return int.from_bytes(raw[:8], 'big'), int.from_bytes(raw[9:17], 'big'), tombstone


def encryption_provider(value):
    """The provider of an encrypted value (``k8s:enc:aescbc:v1:key1:...`` -> ``aescbc``), None for clear text."""
    if not value.startswith(ENCRYPTED_PREFIX):
        return None
    name = value[len(ENCRYPTED_PREFIX):].split(b':', 1)[0]
    return name.decode('ascii', 'replace') or 'unknown'


def _secret_key(data):
    """The etcd key of a KeyValue when it is a Secret's, else None."""
    # etcd writes the key first (tag 0x0a, a one-byte length below 128): look only at its start then.
    if data[:1] == b'\x0a' and len(data) > 1 and data[1] < 0x80 and 2 + data[1] <= len(data):
        if data[1] < len(SECRETS_PREFIX) or not data.startswith(SECRETS_PREFIX, 2):
            return None
        return data[2:2 + data[1]]
    key = decode_key_value(data, ('key',))['key']
    return key if key.startswith(SECRETS_PREFIX) else None


def scan_secrets(path, data_size=None):
    """Count the current Secrets of the etcd database (or snapshot) at path.

    ``data_size`` excludes etcdctl's trailing SHA-256. Returns {secrets_total, secrets_plaintext,
    secrets_encrypted, encryption_providers (sorted list)}. Memory grows with the number of Secrets, not with
    their size or with the number of other keys. Raises BoltError (ScanError) for a file that is not an etcd
    database or is damaged.
    """
    # key -> provider name of its latest revision ('' for clear text); a deletion removes the key.
    latest = {}
    with BoltReader(path, data_size) as reader:
        for revision, data in reader.items(KEY_BUCKET):
            try:
                tombstone = is_tombstone(revision)
                key = _secret_key(data)
                if key is None:
                    continue
                if tombstone:
                    latest.pop(key, None)
                else:
                    latest[key] = encryption_provider(decode_key_value(data, ('value',))['value']) or ''
            except ScanError as exc:
                raise ScanError('%s is not an etcd database or is damaged: key bucket entry %s: %s'
                                % (path, bytes(revision).hex(), exc))
    live = list(latest.values())
    encrypted = [provider for provider in live if provider]
    return {
        'secrets_total': len(live),
        'secrets_plaintext': len(live) - len(encrypted),
        'secrets_encrypted': len(encrypted),
        'encryption_providers': sorted(set(encrypted)),
    }


def secrets_summary(path, data_size=None):
    """scan_secrets, or {'error': reason} when the file cannot be scanned: counting Secrets is a report, never a
    reason to throw a verified snapshot away."""
    try:
        return scan_secrets(path, data_size)
    except BoltError as exc:
        return {'error': str(exc)}
    except Exception as exc:  # a report must not fail the backup, whatever went wrong in it
        return {'error': 'cannot scan %s: %s: %s' % (path, type(exc).__name__, exc)}
