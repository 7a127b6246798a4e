# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bbolt reader against real etcd snapshots (tests/unit/fixtures/make_secret_snapshots.py made them on the lab).

The strongest check: reading every bucket reproduces ``snapshot status``'s CRC-32C hash, key count and revision,
which etcd computes over exactly the bytes the reader returns.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import struct

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import bbolt, files
from ansible_collections.kubeops.etcd.plugins.module_utils.secrets_scan import decode_key_value

from unit_helpers import FIXTURES

SNAPSHOTS = os.path.join(FIXTURES, 'snapshots')
# `etcdctl snapshot status -w json` of each fixture, recorded with the version's own tool when it was made.
STATUS = {
    '3.4.23': {'hash': 2347930944, 'revision': 19, 'totalKey': 1035, 'totalSize': 167936},
    '3.5.30': {'hash': 2798567624, 'revision': 19, 'totalKey': 1037, 'totalSize': 167936},
}
ETCD_BUCKETS = [b'alarm', b'auth', b'authRoles', b'authUsers', b'cluster', b'key', b'lease', b'members',
                b'members_removed', b'meta']
PAGE = 4096


def snapshot(version):
    return os.path.join(SNAPSHOTS, 'secrets-%s.db' % version)


def data_size(path):
    return os.path.getsize(path) - files.TRAILING_HASH_SIZE


def reader(path):
    return bbolt.BoltReader(path, data_size(path))


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _bit in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


class Crc32c(object):
    """Go's crc32.New(crc32.MakeTable(crc32.Castagnoli)), which etcd's snapshot status uses."""
    table = _crc32c_table()

    def __init__(self):
        self.crc = 0xFFFFFFFF

    def update(self, data):
        crc, table = self.crc, self.table
        for byte in bytearray(data):
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self.crc = crc

    def value(self):
        return self.crc ^ 0xFFFFFFFF


def copy(tmp_path, version='3.5.30'):
    target = str(tmp_path / 'copy.db')
    shutil.copyfile(snapshot(version), target)
    return target


def patch(path, offset, data):
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        handle.write(data)


def key_bucket_root(path):
    with reader(path) as db:
        header = [value for _flags, key, value in db._walk(db.meta['root']) if key == b'key'][0]
    return struct.unpack_from('<Q', header)[0]


@pytest.mark.parametrize('version', sorted(STATUS))
def test_reading_every_bucket_reproduces_etcds_snapshot_status(version):
    # etcd's status: CRC-32C over each bucket name then each key and value, total keys, highest main revision.
    crc, total, revision = Crc32c(), 0, 0
    with reader(snapshot(version)) as db:
        names = db.buckets()
        for name in names:
            crc.update(name)
            for key, value in db.items(name):
                crc.update(key)
                crc.update(value)
                total += 1
                if name == b'key':
                    revision = struct.unpack('>Q', key[:8])[0]
        assert db.meta['pages'] * db.page_size == STATUS[version]['totalSize']
    assert names == ETCD_BUCKETS
    assert (crc.value(), total, revision) == (
        STATUS[version]['hash'], STATUS[version]['totalKey'], STATUS[version]['revision'])


@pytest.mark.parametrize('version', sorted(STATUS))
def test_key_bucket_spans_branch_and_overflow_pages_in_key_order(version):
    path = snapshot(version)
    with reader(path) as db:
        flags, count, _buf = db._page(key_bucket_root(path))
        assert flags == bbolt.BRANCH_PAGE and count > 10
        keys, big = [], None
        for key, value in db.items('key'):
            keys.append(key)
            decoded = decode_key_value(value)
            if decoded['key'] == b'/registry/secrets/ns1/big':
                big = decoded['value']
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 1028
    # The 6 KiB value lives in a leaf page with an overflow page, read back whole.
    assert len(big) > PAGE and big.startswith(b'k8s\x00')


def test_inline_buckets_are_read_from_their_parent_page():
    with reader(snapshot('3.5.30')) as db:
        meta = dict(db.items('meta'))
        members = list(db.items(b'members'))
    assert struct.unpack('>Q', meta[b'consistent_index'])[0] > 0 and b'term' in meta
    assert len(members) == 1 and b'"name":"cp1"' in members[0][1]


def test_reads_page_by_page_never_the_whole_file(monkeypatch):
    sizes = []
    real_pread = os.pread

    def recording_pread(fd, size, offset):
        sizes.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(bbolt.os, 'pread', recording_pread)
    with reader(snapshot('3.5.30')) as db:
        assert sum(1 for _item in db.items('key')) == 1028
    # One page per read (a page's overflow pages in one more read), each page of the tree read once.
    assert max(sizes) == PAGE and len(sizes) > 30
    assert sum(sizes) < os.path.getsize(snapshot('3.5.30'))


def test_the_valid_meta_with_the_higher_txid_wins(tmp_path):
    path = copy(tmp_path)
    with reader(path) as db:
        newest = db.meta['txid']
    metas = [bbolt.parse_meta(open(path, 'rb').read(PAGE * 2)[offset:offset + PAGE]) for offset in (0, PAGE)]
    older = min(meta['txid'] for meta in metas)
    assert newest == max(meta['txid'] for meta in metas) and older < newest
    newest_offset = 0 if metas[0]['txid'] == newest else PAGE
    patch(path, newest_offset + 16 + 56, b'\0' * 8)  # break that meta's checksum
    with reader(path) as db:
        assert db.meta['txid'] == older
    assert files.inspect_bolt_file(path, data_size(path))['txid'] == older


def test_truncated_file_is_refused_before_any_page_is_read(tmp_path):
    path = copy(tmp_path)
    with open(path, 'r+b') as handle:
        handle.truncate(PAGE * 10)
    with pytest.raises(bbolt.BoltError) as error:
        bbolt.BoltReader(path)
    assert str(error.value) == '%s is truncated: its database needs 167936 bytes but the file holds 40960' % path


def test_a_file_that_is_not_bbolt_is_refused(tmp_path):
    path = str(tmp_path / 'not.db')
    with open(path, 'wb') as handle:
        handle.write(b'etcd? no.' * 2000)
    with pytest.raises(bbolt.BoltError) as error:
        bbolt.BoltReader(path)
    assert 'is not a bbolt database: neither meta page is valid' in str(error.value)


def test_missing_file_and_missing_bucket_are_named(tmp_path):
    with pytest.raises(bbolt.BoltError) as error:
        bbolt.BoltReader(str(tmp_path / 'absent.db'))
    assert 'cannot open %s' % (tmp_path / 'absent.db') in str(error.value)
    with pytest.raises(bbolt.BoltError) as error:
        list(bbolt.iterate_bucket(snapshot('3.5.30'), 'nope'))
    assert str(error.value) == "%s has no bucket 'nope'" % snapshot('3.5.30')


@pytest.mark.parametrize('damage, message', [
    ('page_id', 'is marked as page'),
    ('flags', 'where a branch or leaf page belongs'),
    ('count', 'elements, more than fit'),
    ('child_out_of_range', 'outside 2..40'),
    ('cycle', 'keys of bucket'),
])
def test_damaged_pages_give_an_error_naming_the_damage(tmp_path, damage, message):
    path = copy(tmp_path)
    root = key_bucket_root(path)
    offset = root * PAGE
    if damage == 'page_id':
        patch(path, offset, struct.pack('<Q', 3))
    elif damage == 'flags':
        patch(path, offset + 8, struct.pack('<H', bbolt.FREELIST_PAGE))
    elif damage == 'count':
        patch(path, offset + 10, struct.pack('<H', 0xFFFF))
    elif damage == 'child_out_of_range':
        patch(path, offset + 16 + 8, struct.pack('<Q', 10 ** 6))
    else:
        # The second child points back at the first: the same keys again, which the order check stops.
        first_child = struct.unpack('<Q', open(path, 'rb').read()[offset + 24:offset + 32])[0]
        patch(path, offset + 32 + 8, struct.pack('<Q', first_child))
    with pytest.raises(bbolt.BoltError) as error:
        with reader(path) as db:
            for _item in db.items('key'):
                pass
    assert message in str(error.value) and path in str(error.value)


def test_a_branch_page_that_points_at_itself_stops_at_the_depth_limit(tmp_path):
    path = copy(tmp_path)
    root = key_bucket_root(path)
    patch(path, root * PAGE + 16 + 8, struct.pack('<Q', root))
    with pytest.raises(bbolt.BoltError) as error:
        with reader(path) as db:
            list(db.items('key'))
    assert 'deeper than 64 levels' in str(error.value)


def test_meta_parsing_is_the_one_files_uses():
    raw = open(snapshot('3.4.23'), 'rb').read(PAGE)
    meta = bbolt.parse_meta(raw)
    assert files._parse_bolt_meta(raw) == {'page_size': meta['page_size'], 'pages': meta['pages'],
                                           'txid': meta['txid']}
    assert meta['page_size'] == PAGE and meta['pages'] == 41
    assert bbolt.parse_meta(raw[:40]) is None and bbolt.parse_meta(b'\0' * PAGE) is None
