# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup drill's decisions (private to this collection; no API promise before 1.0).

etcd_verify_snapshot restores a snapshot into a throwaway single-member etcd on loopback and checks what that
etcd serves against what the file holds. This file holds the parts that decide: the argv of the restore and of
the throwaway etcd, which keys to sample, what the file holds (read with the collection's own bbolt reader, so
that the expectation does not come from etcd itself), and what differs. The module only runs things.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import hashlib
import json
import socket
import subprocess

from ansible_collections.kubeops.etcd.plugins.module_utils.bbolt import BoltReader
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import version_tuple
from ansible_collections.kubeops.etcd.plugins.module_utils.secrets_scan import (
    KEY_BUCKET, decode_key_value, is_tombstone)

LOOPBACK = '127.0.0.1'
REGISTRY_PREFIX = '/registry/'
DEFAULT_SAMPLE_SIZE = 20


# --- the throwaway member ---------------------------------------------------------------------

def free_loopback_ports(count=2):
    """Ports the kernel gives for binding 127.0.0.1:0, all held open together so that they differ."""
    sockets = []
    try:
        for _index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def member_urls(client_port, peer_port):
    """Plain-HTTP URLs on loopback: the member is reachable from this host only and lives for minutes."""
    return {'client': 'http://%s:%d' % (LOOPBACK, client_port), 'peer': 'http://%s:%d' % (LOOPBACK, peer_port)}


def restore_argv(tool, tool_path, snapshot, data_dir, name, urls, token, skip_hash_check=False):
    """`snapshot restore` of etcdutl (3.5+) or etcdctl (3.4/3.5) into data_dir as a one-member cluster."""
    if tool not in ('etcdutl', 'etcdctl'):
        raise ValueError('no restore tool: %r' % (tool,))
    argv = [tool_path, 'snapshot', 'restore', snapshot,
            '--data-dir', data_dir,
            '--name', name,
            '--initial-cluster', '%s=%s' % (name, urls['peer']),
            '--initial-cluster-token', token,
            '--initial-advertise-peer-urls', urls['peer']]
    if skip_hash_check:
        argv.append('--skip-hash-check')
    return argv


def etcd_argv(etcd_path, name, data_dir, urls):
    """The throwaway etcd: loopback only, no metrics listener, nothing but its data dir on disk."""
    return [etcd_path,
            '--name', name,
            '--data-dir', data_dir,
            '--listen-client-urls', urls['client'],
            '--advertise-client-urls', urls['client'],
            '--listen-peer-urls', urls['peer'],
            '--initial-advertise-peer-urls', urls['peer'],
            '--initial-cluster', '%s=%s' % (name, urls['peer']),
            '--initial-cluster-state', 'new']


def spawn_member(argv, log_path, environment):
    """Start the throwaway etcd in the background, its output into log_path; the caller stops it by this Popen.
    A session of its own, so that signals meant for the module's process group never reach it."""
    with open(log_path, 'wb') as log:
        return subprocess.Popen([arg.encode('utf-8', 'surrogateescape') for arg in argv], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=environment, close_fds=True,
                                start_new_session=True)


def etcdctl_argv(etcdctl_path, urls, *args):
    return [etcdctl_path, '--endpoints=%s' % urls['client'], '--dial-timeout=2s', '--command-timeout=10s'] + list(args)


def port_in_use(log_text):
    """Whether the throwaway etcd exited because another process took one of its ports after they were chosen."""
    return 'address already in use' in (log_text or '')


# --- what the file holds ----------------------------------------------------------------------

def read_live_keys(path, data_size=None):
    """{key (bytes): mod_revision} of every key the snapshot holds at its revision (tombstones honoured).

    bbolt keeps etcd's key bucket in revision order, so the last entry seen for a key is its current state.
    Memory grows with the number and length of the key names, not with the values."""
    live = {}
    with BoltReader(path, data_size) as reader:
        for revision, data in reader.items(KEY_BUCKET):
            key = decode_key_value(data, ('key',))['key']
            if is_tombstone(revision):
                live.pop(key, None)
            else:
                live[key] = int.from_bytes(bytes(revision[:8]), 'big')
    return live


def read_values_digest(path, keys, data_size=None):
    """{key: sha256 hex of its current value} for the given keys (a second pass, so memory stays small)."""
    wanted = set(keys)
    found = {}
    with BoltReader(path, data_size) as reader:
        for revision, data in reader.items(KEY_BUCKET):
            decoded = decode_key_value(data, ('key', 'value'))
            if decoded['key'] not in wanted:
                continue
            if is_tombstone(revision):
                found.pop(decoded['key'], None)
            else:
                found[decoded['key']] = hashlib.sha256(decoded['value']).hexdigest()
    return found


def choose_sample(keys, count, rng):
    """Up to `count` keys: the first half from the start of /registry/ (what the API server reads first), the
    rest drawn at random from all the others; in key order, without repeats."""
    ordered = sorted(keys)
    if count <= 0 or not ordered:
        return []
    prefix = REGISTRY_PREFIX.encode()
    first = [key for key in ordered if key.startswith(prefix)][:(count + 1) // 2]
    chosen = set(first)
    others = [key for key in ordered if key not in chosen]
    chosen.update(rng.sample(others, min(count - len(first), len(others))))
    return sorted(chosen)


def key_text(key):
    """A key name for messages and results (never a value)."""
    return key.decode('utf-8', 'backslashreplace')


# --- what the throwaway etcd serves -----------------------------------------------------------

def parse_get(text):
    """`etcdctl get ... -w json` -> {revision, count, kvs: [{key, mod_revision, value_sha256}]}."""
    data = json.loads(text)
    kvs = []
    for kv in data.get('kvs') or []:
        value = base64.b64decode(kv.get('value', ''))
        kvs.append({'key': base64.b64decode(kv.get('key', '')), 'mod_revision': int(kv.get('mod_revision', 0)),
                    'value_sha256': hashlib.sha256(value).hexdigest(), 'value_size': len(value)})
    return {'revision': int((data.get('header') or {}).get('revision', 0)), 'count': int(data.get('count', 0)),
            'kvs': kvs}


def sample_differences(key, expected_mod_revision, expected_digest, served):
    """What differs between one key in the file and what etcd served for it (empty list when it matches)."""
    name = key_text(key)
    matching = [kv for kv in served['kvs'] if kv['key'] == key]
    if not matching:
        return ['key %s is in the snapshot but the restored etcd does not serve it' % name]
    kv = matching[0]
    problems = []
    if kv['mod_revision'] != expected_mod_revision:
        problems.append('key %s: mod_revision %d served, %d in the snapshot'
                        % (name, kv['mod_revision'], expected_mod_revision))
    if expected_digest is not None and kv['value_sha256'] != expected_digest:
        problems.append('key %s: the value served (%d bytes) is not the value in the snapshot' % (name, kv['value_size']))
    return problems


# --- comparisons ------------------------------------------------------------------------------

def same_minor(one, other):
    first, second = version_tuple(one), version_tuple(other)
    return first is not None and second is not None and first[:2] == second[:2]


def metadata_differences(metadata, file_facts, tool_version):
    """What differs between a backup's .meta.json and the file (empty list when they agree).

    file_facts: {sha256, size, status: {revision, total_key}}. total_key is compared only when the drill's tool has
    the metadata's etcd minor version: etcd 3.5 and 3.6 count it differently."""
    if metadata is None:
        return []
    problems = []
    status = file_facts['status']
    for key, actual in (('sha256', file_facts['sha256']), ('size', file_facts['size']),
                        ('revision', status['revision'])):
        if key not in metadata:
            problems.append('%s is missing from the metadata' % key)
        elif metadata[key] != actual:
            problems.append('%s is %s in the metadata but %s in the file' % (key, metadata[key], actual))
    if metadata.get('total_key') is not None and same_minor(metadata.get('etcd_version'), tool_version) \
            and metadata['total_key'] != status['total_key']:
        problems.append('total_key is %s in the metadata but %s in the file'
                        % (metadata['total_key'], status['total_key']))
    return problems


def served_differences(expected, served):
    """What differs between the file and the restored etcd.

    expected: {revision (snapshot status), live_keys (read from the file)};
    served: {revision (endpoint status), count (keys etcd serves), count_revision (revision of that read)}."""
    problems = []
    if served['revision'] != expected['revision']:
        problems.append('the restored etcd is at revision %s, the snapshot at %s'
                        % (served['revision'], expected['revision']))
    if served['count'] != expected['live_keys']:
        problems.append('the restored etcd serves %s keys, the snapshot holds %s'
                        % (served['count'], expected['live_keys']))
    return problems


def failure_text(path, host, problems, stage):
    """The one message of a failed drill: which file, where, what differed, what to do."""
    return ('Backup drill failed for %s on %s (%s): %s. Do not rely on this backup: take a new one '
            '(playbooks/backup.yml) and drill it; keep the older backups until a drill passes.'
            % (path, host, stage, '; '.join(problems)))
