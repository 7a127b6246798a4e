# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small read-only reader of bbolt files (etcd's ``member/snap/db`` and its snapshots).

Private to this collection (no stable API before 1.0). Pure Python, no I/O beyond ``os.pread``: pages are read
one at a time, so memory stays at (tree depth x page size) plus the largest value, whatever the file's size.

Layout (go.etcd.io/bbolt, ``page.go``, ``bucket.go``, ``db.go``), all little-endian:

* every page starts with ``{id u64, flags u16, count u16, overflow u32}``; a page with ``overflow`` n spans
  n + 1 consecutive pages (large values live in the leaf page that holds them);
* pages 0 and 1 are meta pages: ``{magic u32, version u32, page_size u32, flags u32, root {pgid u64,
  sequence u64}, freelist u64, pgid u64 (high-water mark), txid u64, checksum u64}`` (FNV-1a 64 of the first
  56 bytes); bbolt uses the valid one with the higher txid;
* branch elements ``{pos u32, ksize u32, pgid u64}`` and leaf elements ``{flags u32, pos u32, ksize u32,
  vsize u32}`` follow the page header; ``pos`` counts from the element itself;
* a leaf element with flag 1 is a bucket: its value is ``{root pgid u64, sequence u64}``, and when root is 0 an
  inline bucket's whole leaf page follows in the value.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import struct

BOLT_MAGIC = 0xED0CDAED
BOLT_VERSION = 2
PAGE_HEADER_SIZE = 16
META_SIZE = 64
ELEMENT_SIZE = 16

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
BUCKET_LEAF_FLAG = 0x01
BUCKET_HEADER_SIZE = 16

# A B+tree of 2^64 pages with two keys per page is 64 levels deep; deeper means a cycle in a damaged file.
MAX_DEPTH = 64
DEFAULT_PAGE_SIZE = 4096

_FNV64_OFFSET = 0xcbf29ce484222325
_FNV64_PRIME = 0x100000001b3
_PAGE_HEADER = struct.Struct('<QHHI')
_META = struct.Struct('<IIIIQQQQQQ')
_BRANCH_ELEMENT = struct.Struct('<IIQ')
_LEAF_ELEMENT = struct.Struct('<IIII')
_BUCKET_HEADER = struct.Struct('<QQ')


class BoltError(Exception):
    """The file is not a bbolt database, or is damaged or truncated; ``str()`` says where."""


def fnv64a(data):
    value = _FNV64_OFFSET
    for byte in bytearray(data):
        value ^= byte
        value = (value * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


def parse_meta(raw):
    """The meta of a page's bytes (page header first), or None when it is not a valid bbolt meta page.

    Returns {page_size, flags, root, sequence, freelist, pages, txid}; ``pages`` is the high-water mark: the
    database holds ``pages * page_size`` bytes.
    """
    if len(raw) < PAGE_HEADER_SIZE + META_SIZE:
        return None
    meta = bytes(raw[PAGE_HEADER_SIZE:PAGE_HEADER_SIZE + META_SIZE])
    magic, version, page_size, flags, root, sequence, freelist, pages, txid, checksum = _META.unpack(meta)
    if magic != BOLT_MAGIC or version != BOLT_VERSION or fnv64a(meta[:56]) != checksum:
        return None
    return {'page_size': page_size, 'flags': flags, 'root': root, 'sequence': sequence, 'freelist': freelist,
            'pages': pages, 'txid': txid}


def plausible_page_size(page_size):
    """The page size to look for the second meta page at (bbolt falls back to the OS page size)."""
    if page_size is None or page_size < 512 or page_size > 1 << 20:
        return DEFAULT_PAGE_SIZE
    return page_size


def _pread(fd, size, offset):
    """Read exactly what is there (os.pread may return less on some filesystems; loop until EOF)."""
    chunks = []
    while size > 0:
        block = os.pread(fd, size, offset)
        if not block:
            break
        chunks.append(block)
        size -= len(block)
        offset += len(block)
    return b''.join(chunks)


class BoltReader(object):
    """Read-only access to one bbolt file; use as a context manager.

    ``data_size`` limits reads to the first bytes of the file (a snapshot without etcdctl's trailing SHA-256);
    by default the whole file. Raises BoltError when the file has no valid meta page or is shorter than the
    chosen meta says.
    """

    def __init__(self, path, data_size=None):
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise BoltError('cannot open %s: %s' % (path, exc.strerror or exc))
        try:
            file_size = os.fstat(self._fd).st_size
            self.data_size = file_size if data_size is None else min(data_size, file_size)
            self.meta = self._choose_meta()
            self.page_size = self.meta['page_size']
            needed = self.meta['pages'] * self.page_size
            if self.data_size < needed:
                raise BoltError('%s is truncated: its database needs %d bytes but the file holds %d'
                                % (path, needed, self.data_size))
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _choose_meta(self):
        meta0 = parse_meta(_pread(self._fd, PAGE_HEADER_SIZE + META_SIZE, 0))
        offset = plausible_page_size(meta0['page_size'] if meta0 else None)
        meta1 = parse_meta(_pread(self._fd, PAGE_HEADER_SIZE + META_SIZE, offset))
        candidates = [meta for meta in (meta0, meta1) if meta]
        if not candidates:
            raise BoltError('%s is not a bbolt database: neither meta page is valid (magic, version, checksum)'
                            % self.path)
        meta = max(candidates, key=lambda candidate: candidate['txid'])
        if not 512 <= meta['page_size'] <= 1 << 20 or meta['page_size'] % 512:
            raise BoltError('%s has an impossible page size %d' % (self.path, meta['page_size']))
        return meta

    def _page(self, pgid):
        """(flags, count, bytes of the page and its overflow pages) of page pgid."""
        if pgid < 2 or pgid >= self.meta['pages']:
            raise BoltError('%s is damaged: a reference to page %d, outside 2..%d'
                            % (self.path, pgid, self.meta['pages'] - 1))
        offset = pgid * self.page_size
        try:
            buf = _pread(self._fd, self.page_size, offset)
            if len(buf) < self.page_size:
                raise BoltError('%s is truncated at page %d' % (self.path, pgid))
            page_id, flags, count, overflow = _PAGE_HEADER.unpack_from(buf, 0)
            if page_id != pgid:
                raise BoltError('%s is damaged: page %d is marked as page %d' % (self.path, pgid, page_id))
            if overflow:
                if pgid + overflow >= self.meta['pages']:
                    raise BoltError('%s is damaged: page %d overflows %d pages past the end of the database'
                                    % (self.path, pgid, overflow))
                rest = _pread(self._fd, overflow * self.page_size, offset + self.page_size)
                if len(rest) < overflow * self.page_size:
                    raise BoltError('%s is truncated in the overflow of page %d' % (self.path, pgid))
                buf += rest
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise BoltError('%s: I/O error reading page %d' % (self.path, pgid))
            raise BoltError('cannot read page %d of %s: %s' % (pgid, self.path, exc.strerror or exc))
        return flags, count, buf

    def _element_table(self, buf, base, count, layout, where):
        """(offset of the first element, the count elements unpacked with layout) of the page at buf[base:]."""
        first = base + PAGE_HEADER_SIZE
        end = first + count * ELEMENT_SIZE
        if end > len(buf):
            raise BoltError('%s is damaged: %s has %d elements, more than fit' % (self.path, where, count))
        return first, layout.iter_unpack(buf[first:end])

    def _leaf_items(self, buf, base, count, where):
        """(flags, key, value) of every element of a leaf page at buf[base:]."""
        element, table = self._element_table(buf, base, count, _LEAF_ELEMENT, where)
        size = len(buf)
        for flags, pos, ksize, vsize in table:
            start = element + pos
            middle = start + ksize
            end = middle + vsize
            if end > size:
                raise BoltError('%s is damaged: an element of %s points past its end' % (self.path, where))
            yield flags, buf[start:middle], buf[middle:end]
            element += ELEMENT_SIZE

    def _walk(self, pgid):
        """(flags, key, value) of every leaf element below page pgid, in key order.

        Depth-first with an explicit stack of the branch pages' child ids (no page is held while descending).
        """
        stack = [iter([pgid])]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            if len(stack) > MAX_DEPTH:
                raise BoltError('%s is damaged: the tree below page %d is deeper than %d levels (a cycle?)'
                                % (self.path, pgid, MAX_DEPTH))
            flags, count, buf = self._page(child)
            where = 'page %d' % child
            if flags & LEAF_PAGE:
                yield from self._leaf_items(buf, 0, count, where)
            elif flags & BRANCH_PAGE:
                table = self._element_table(buf, 0, count, _BRANCH_ELEMENT, where)[1]
                stack.append(iter([element[2] for element in table]))
            else:
                raise BoltError('%s is damaged: page %d has flags 0x%x where a branch or leaf page belongs'
                                % (self.path, child, flags))

    def _bucket_items(self, header_value, where):
        """(flags, key, value) of every element of the bucket whose value (header) is given."""
        if len(header_value) < BUCKET_HEADER_SIZE:
            raise BoltError('%s is damaged: bucket %s has a short header' % (self.path, where))
        root, _sequence = _BUCKET_HEADER.unpack_from(header_value, 0)
        if root:
            return self._walk(root)
        # Inline bucket: its one leaf page follows the header inside the value.
        inline = bytes(header_value)
        if len(inline) < BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE:
            raise BoltError('%s is damaged: inline bucket %s has no page' % (self.path, where))
        _page_id, flags, count, _overflow = _PAGE_HEADER.unpack_from(inline, BUCKET_HEADER_SIZE)
        if not flags & LEAF_PAGE:
            raise BoltError('%s is damaged: inline bucket %s is not a leaf page' % (self.path, where))
        return self._leaf_items(inline, BUCKET_HEADER_SIZE, count, 'inline bucket %s' % where)

    def buckets(self):
        """Names (bytes) of the top-level buckets, in key order."""
        return [key for flags, key, _value in self._walk(self.meta['root']) if flags & BUCKET_LEAF_FLAG]

    def items(self, bucket):
        """(key, value) bytes of every entry of the top-level bucket named ``bucket`` (bytes or str), in key order.

        Nested buckets are skipped. Raises BoltError when there is no such bucket, or when the keys are not
        strictly increasing (a damaged file; this also stops a page cycle from yielding the same keys forever).
        """
        name = bucket.encode('utf-8') if not isinstance(bucket, bytes) else bucket
        header = None
        for flags, key, value in self._walk(self.meta['root']):
            if key == name and flags & BUCKET_LEAF_FLAG:
                header = value
                break
        if header is None:
            raise BoltError('%s has no bucket %r' % (self.path, name.decode('utf-8', 'replace')))
        previous = None
        for flags, key, value in self._bucket_items(header, name.decode('utf-8', 'replace')):
            if previous is not None and key <= previous:
                raise BoltError('%s is damaged: keys of bucket %r are out of order'
                                % (self.path, name.decode('utf-8', 'replace')))
            previous = key
            if not flags & BUCKET_LEAF_FLAG:
                yield key, value


def iterate_bucket(path, bucket, data_size=None):
    """(key, value) of every entry of a top-level bucket of the bbolt file at path, in key order."""
    with BoltReader(path, data_size) as reader:
        yield from reader.items(bucket)
