# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File helpers: streaming hashes, atomic writes, moving aside (never deleting)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import hashlib
import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.kubeops.etcd.plugins.module_utils.bbolt import (
    META_SIZE as BOLT_META_SIZE,
    PAGE_HEADER_SIZE as BOLT_PAGE_HEADER_SIZE,
    parse_meta as parse_bolt_meta,
    plausible_page_size,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name

CHUNK_SIZE = 1024 * 1024

# etcdctl snapshot save appends the SHA-256 of the streamed database; the
# bbolt database itself is a whole number of 512-byte-aligned pages.
TRAILING_HASH_SIZE = 32
SNAPSHOT_ALIGNMENT = 512


def timestamp(now=None):
    """UTC timestamp for file names: 20261122T013500Z."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y%m%dT%H%M%SZ')


def iso_utc(now=None):
    """UTC time in ISO 8601 with a Z suffix: 2026-11-22T01:35:00Z."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y-%m-%dT%H:%M:%SZ')


def _open_for_reading(path):
    try:
        return open(path, 'rb')
    except (IOError, OSError) as exc:
        raise EtcdModuleError(
            'Cannot read %s on %s: %s' % (path, node_name(), exc.strerror or exc),
            file=path)


def sha256_file(path, chunk=CHUNK_SIZE):
    """SHA-256 hex digest of a file, read in chunks (memory flat with size)."""
    digest = hashlib.sha256()
    with _open_for_reading(path) as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def snapshot_digests(path, chunk=CHUNK_SIZE):
    """Hash a snapshot file in one streaming pass.

    Returns a dict with ``size``, ``sha256`` (of the whole file) and
    ``has_trailing_hash``: True when the size is 512*n + 32 and the last 32
    bytes are the SHA-256 of everything before them (what etcdctl snapshot save
    appends and what restore checks unless --skip-hash-check).
    """
    size = os.path.getsize(path)
    whole = hashlib.sha256()
    body = hashlib.sha256()
    may_have_trailer = size >= TRAILING_HASH_SIZE and size % SNAPSHOT_ALIGNMENT == TRAILING_HASH_SIZE
    body_size = size - TRAILING_HASH_SIZE if may_have_trailer else size
    trailer = b''
    position = 0
    with _open_for_reading(path) as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            whole.update(block)
            if may_have_trailer:
                end = position + len(block)
                if position < body_size:
                    body.update(block[:body_size - position])
                if end > body_size:
                    trailer += block[max(0, body_size - position):]
            position += len(block)
    if position != size:
        raise EtcdModuleError(
            '%s on %s changed size while it was read (%d bytes, then %d); is another process writing it?'
            % (path, node_name(), size, position), file=path)
    has_trailing_hash = bool(may_have_trailer and trailer == body.digest())
    return {'size': size, 'sha256': whole.hexdigest(), 'has_trailing_hash': has_trailing_hash}


def dir_is_empty(path):
    """True when path is a directory with no entries (missing counts as empty)."""
    try:
        return not os.listdir(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return True
        raise EtcdModuleError('Cannot list %s on %s: %s' % (path, node_name(), exc.strerror or exc), file=path)


def move_aside(path, suffix):
    """Rename path to ``<path>.<suffix>`` (never deletes); returns the new path.

    Refuses to overwrite an existing file of that name.
    """
    target = '%s.%s' % (path, suffix)
    if os.path.lexists(target):
        raise EtcdModuleError(
            'Cannot move %s aside on %s: %s already exists. Move or remove it, then retry.'
            % (path, node_name(), target), file=path)
    try:
        os.rename(path, target)
    except OSError as exc:
        raise EtcdModuleError(
            'Cannot move %s to %s on %s: %s' % (path, target, node_name(), exc.strerror or exc), file=path)
    return target


def make_private_dir(path):
    """Create path and every missing parent with mode 0700 (os.makedirs gives new parents the umask's mode);
    existing directories are left as they are. Returns True when path was created."""
    if os.path.isdir(path):
        return False
    missing = []
    current = os.path.normpath(path)
    while current not in ('', '/') and not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    try:
        for directory in reversed(missing):
            os.mkdir(directory, 0o700)
            os.chmod(directory, 0o700)
    except OSError as exc:
        raise EtcdModuleError(
            'Cannot create directory %s on %s: %s' % (path, node_name(), exc.strerror or exc), file=path)
    return True


def remove_if_exists(path):
    """Remove a file this module created itself (partial outputs)."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def atomic_write(module, path, data, mode, owner=None):
    """Write data to path through a temp file in the same dir and module.atomic_move.

    ``mode`` is an int (0o600); ``owner`` an optional (uid, gid) tuple.
    """
    directory = os.path.dirname(os.path.abspath(path))
    payload = to_bytes(data, errors='surrogate_or_strict')
    fd = None
    tmp_path = None
    try:
        fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = None
        module.atomic_move(tmp_path, path)
        tmp_path = None
        # atomic_move may copy the old file's attributes; the mode we want wins.
        os.chmod(path, mode)
    except (IOError, OSError) as exc:
        raise EtcdModuleError(
            'Cannot write %s on %s: %s' % (path, node_name(), exc.strerror or exc), file=path)
    finally:
        if fd is not None:
            os.close(fd)
        if tmp_path is not None:
            remove_if_exists(tmp_path)


def _parse_bolt_meta(raw):
    """One meta page's header, or None when it is not a valid bbolt meta."""
    meta = parse_bolt_meta(raw)
    if meta is None:
        return None
    return {'page_size': meta['page_size'], 'pages': meta['pages'], 'txid': meta['txid']}


def inspect_bolt_file(path, data_size):
    """Check that path starts like an etcd (bbolt) database and is long enough.

    ``data_size`` is the size without etcdctl's trailing hash. Returns
    {page_size, pages, txid}; raises EtcdModuleError for a file that is not a
    bbolt database or is shorter than its own meta page says (truncated copy).
    Reading snapshot files with etcdutl/etcdctl does not tell these apart: they
    crash with SIGBUS on a truncated file.
    """
    with _open_for_reading(path) as handle:
        first = handle.read(BOLT_PAGE_HEADER_SIZE + BOLT_META_SIZE)
        candidates = []
        meta0 = _parse_bolt_meta(first)
        if meta0:
            candidates.append(meta0)
        handle.seek(plausible_page_size(meta0['page_size'] if meta0 else None))
        meta1 = _parse_bolt_meta(handle.read(BOLT_PAGE_HEADER_SIZE + BOLT_META_SIZE))
        if meta1:
            candidates.append(meta1)
    if not candidates:
        raise EtcdModuleError(
            '%s on %s is not an etcd snapshot: it does not start with a bbolt database header '
            '(wrong file, or overwritten).' % (path, node_name()), file=path)
    meta = max(candidates, key=lambda candidate: candidate['txid'])
    expected = meta['pages'] * meta['page_size']
    if data_size < expected:
        raise EtcdModuleError(
            '%s on %s is truncated: its database needs %d bytes but the file holds %d. '
            'Take a new snapshot; this one cannot be restored.' % (path, node_name(), expected, data_size),
            file=path, size=data_size, expected_size=expected)
    return meta


def snapshot_status(runner, tools, path):
    """`snapshot status -w json` of a file with etcdutl (or etcdctl < 3.6)."""
    from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import parse_snapshot_status
    from ansible_collections.kubeops.etcd.plugins.module_utils.runner import command_error
    tool = tools.require_status_tool()
    with runner.place.visible(path) as seen:
        result = runner.run([tool, 'snapshot', 'status', '-w', 'json', seen], check_rc=False)
    if result.rc != 0:
        raise command_error(
            result, what='Reading snapshot %s with %s %s' % (path, tools.status_tool, tools.status_tool_version),
            fix='The file is not a readable etcd snapshot (truncated, corrupted or not a snapshot); take a new one.')
    return parse_snapshot_status(result.stdout)


def verify_snapshot_file(runner, tools, path):
    """Everything we can prove about a snapshot file without restoring it.

    Returns {path, size, sha256, has_trailing_hash, status}. Raises
    EtcdModuleError for an empty, truncated, corrupted or non-etcd file: a
    trailer that is present (size 512*n+32) but wrong, a bbolt header that is
    missing or claims more pages than the file holds, or a failing
    ``snapshot status`` (bbolt's consistency check).
    """
    if not os.path.isfile(path):
        raise EtcdModuleError('Snapshot %s does not exist on %s (or is not a regular file).'
                              % (path, node_name()), file=path)
    size = os.path.getsize(path)
    if size == 0:
        raise EtcdModuleError('Snapshot %s on %s is empty; take a new one.' % (path, node_name()), file=path)
    digests = snapshot_digests(path)
    if digests['size'] % SNAPSHOT_ALIGNMENT == TRAILING_HASH_SIZE and not digests['has_trailing_hash']:
        raise EtcdModuleError(
            'Snapshot %s on %s is corrupted or truncated: its last 32 bytes are not the SHA-256 of the rest '
            '(etcdctl snapshot save appends that hash). Take a new snapshot.' % (path, node_name()),
            file=path, size=digests['size'], sha256=digests['sha256'])
    data_size = digests['size'] - TRAILING_HASH_SIZE if digests['has_trailing_hash'] else digests['size']
    inspect_bolt_file(path, data_size)
    status = snapshot_status(runner, tools, path)
    return {
        'path': path,
        'size': digests['size'],
        'sha256': digests['sha256'],
        'has_trailing_hash': digests['has_trailing_hash'],
        'status': status,
    }


def same_content(first, second, chunk=CHUNK_SIZE):
    """True when the two files hold the same bytes (sizes first, then streamed)."""
    try:
        if os.path.getsize(first) != os.path.getsize(second):
            return False
    except OSError as exc:
        raise EtcdModuleError('Cannot read %s on %s: %s' % (exc.filename, node_name(), exc.strerror or exc),
                              file=exc.filename)
    with _open_for_reading(first) as one, _open_for_reading(second) as other:
        while True:
            block = one.read(chunk)
            if block != other.read(chunk):
                return False
            if not block:
                return True


def read_if_exists(path):
    """The bytes of path, or None when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise EtcdModuleError('Cannot read %s on %s: %s' % (path, node_name(), exc.strerror or exc), file=path)


def free_path(directory, name, now=None):
    """``<directory>/<name>``, or when that exists ``<name>.<UTC timestamp>`` (then ``.1``, ``.2``, ...):
    a path where nothing is, so that keeping a file never overwrites another."""
    candidate = os.path.join(directory, name)
    if not os.path.lexists(candidate):
        return candidate
    return stamped_path(directory, name, now)


def stamped_path(directory, name, now=None):
    """``<directory>/<name>.<UTC timestamp>``, then ``.1``, ``.2``, ...: where nothing is yet."""
    base = os.path.join(directory, '%s.%s' % (name, timestamp(now)))
    candidate, number = base, 0
    while os.path.lexists(candidate):
        number += 1
        candidate = '%s.%d' % (base, number)
    return candidate


def path_inside(path, directory):
    """True when path is directory or lies below it, symbolic links resolved."""
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip('/') + '/')


def replace_with_backup(module, path, expected, data, backup_dir=None, backup_name=None):
    """Replace path atomically with data, keeping its mode and owner, once it is known to still hold expected
    (the bytes the caller edited: a change made meanwhile is never overwritten). With backup_dir, a copy of what
    it held goes first to ``<backup_dir>/<backup_name>.<UTC timestamp>`` (0600, in a 0700 dir). Returns that
    copy's path, or None."""
    try:
        with open(path, 'rb') as handle:
            current = handle.read()
        info = os.stat(path)
    except (IOError, OSError) as exc:
        raise EtcdModuleError('Cannot read %s on %s: %s' % (path, node_name(), exc.strerror or exc), path=path)
    if current != expected:
        raise EtcdModuleError('%s on %s changed while this task was editing it; nothing was written. Run the task again.'
                              % (path, node_name()), path=path)
    backup_file = None
    if backup_dir:
        make_private_dir(backup_dir)
        backup_file = stamped_path(backup_dir, backup_name or os.path.basename(path))
        atomic_write(module, backup_file, expected, 0o600)
    atomic_write(module, path, data, info.st_mode & 0o7777, owner=(info.st_uid, info.st_gid))
    return backup_file
