#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_backup_prune
short_description: Apply a retention policy to a directory of etcd backups
version_added: 0.2.0
description:
  - Removes the backup sets of one cluster that a retention policy does not keep, from one directory on the host the
    task runs on (a node's staging directory, or the ops box with C(delegate_to=localhost)).
  - B(This is the one place the collection deletes backups), on purpose and only by policy. Everywhere else it moves
    files aside and never deletes.
  - Only regular files whose names this collection writes for O(cluster_name) are candidates
    (C(<cluster>-<YYYYmmddTHHMMSSZ>[-rev<N>]) followed by C(.db), C(.db.zst), C(.db.age), C(.db.zst.age),
    C(.db.meta.json), C(-pki.tar.gz) with optional C(.zst)/C(.age), or C(.report.json)). Every other entry is left
    alone and listed in RV(ignored) - other clusters' backups, C(.part) files, directories, symbolic links (never
    followed) and anything else.
  - A backup set is every file sharing C(<cluster>-<timestamp>). It is I(verified) when its C(.db.meta.json) and its
    snapshot file exist (and, with O(verify_checksums=true), the snapshot's SHA-256 matches the metadata).
  - 'The policy is a union of rules, like C(restic forget): a set is kept when any rule keeps it.'
  - The newest verified set is always kept, whatever the policy; so is every set newer than it (a failed run's
    leftovers, kept for inspection), every set dated in the future (clock skew), and everything when no set is
    verified.
  - An empty policy (no rule set) keeps everything and removes nothing.
  - The policy is checked before anything is listed or removed; a bad one fails the task naming the key and the fix.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  path:
    description:
      - The directory holding the backups. Only the directory itself is read; subdirectories are never entered.
      - A directory that does not exist is not an error; the module then reports RV(path_exists=false) and prunes
        nothing.
    type: path
    required: true
  cluster_name:
    description:
      - The cluster name the backup files start with, as the backup role wrote them (C(etcd_backup_cluster_name)).
      - Names are parsed with it, never guessed; backups of other clusters in the same directory are ignored.
      - Letters, digits, C(.), C(_) and C(-) only.
    type: str
    required: true
  policy:
    description:
      - The retention policy. Every rule is off when not set (or 0).
      - Without any rule, nothing is pruned.
    type: dict
    suboptions:
      keep_last:
        description:
          - Keep the N newest verified sets.
        type: int
      keep_within:
        description:
          - Keep every set taken within this duration before now, verified or not.
          - Seconds as an integer, or numbers with a unit V(s), V(m) (minutes), V(h), V(d) or V(w), for example
            V(90m), V(36h), V(7d), V(4w) or V(1d12h).
        type: raw
      hourly:
        description:
          - Keep the newest verified set of each of the N most recent hours (UTC) that have one.
        type: int
      daily:
        description:
          - Keep the newest verified set of each of the N most recent days (UTC) that have one.
        type: int
      weekly:
        description:
          - Keep the newest verified set of each of the N most recent ISO weeks (Monday to Sunday, UTC) that have one.
        type: int
      monthly:
        description:
          - Keep the newest verified set of each of the N most recent months (UTC) that have one.
        type: int
  verify_checksums:
    description:
      - Also count a set as verified only when the SHA-256 of its snapshot file equals C(sha256) or
        C(encrypted_sha256) in its metadata.
      - This reads every snapshot in O(path) in full; leave it off for large directories on every run.
      - A set that fails the check is never counted by O(policy.keep_last) or the period rules, so a corrupted
        backup never takes the place of a good one; it is pruned unless O(policy.keep_within) or the safety rules
        keep it.
    type: bool
    default: false
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is removed; RV(pruned) lists what would be removed and why, RV(freed_bytes) how much
        space that would free.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A second run right after the first removes nothing. As time passes, O(policy.keep_within) and the period
        rules let older sets go, which is the point of a retention policy.
notes:
  - Periods and ages are computed from the timestamp in the file names (UTC), not from file modification times, so
    copies made later keep their place in the history.
  - Sets without a snapshot or without metadata are unverified; they count for no rule but O(policy.keep_within).
  - Run it after a successful backup, so that the newest verified backup is the one just taken.
  - When a file cannot be removed, the task fails naming it; the failure result lists in C(removed) the files removed
    before it.
seealso:
  - module: kubeops.etcd.etcd_snapshot
  - module: kubeops.etcd.etcd_snapshot_info
'''

EXAMPLES = r'''
- name: Keep daily backups for a week, weekly for a month and monthly for half a year on the ops box
  kubeops.etcd.etcd_backup_prune:
    path: /var/backups/etcd
    cluster_name: kubernetes
    policy:
      daily: 7
      weekly: 4
      monthly: 6
  delegate_to: localhost
  run_once: true

- name: Keep only the last two backups in the node's staging directory
  kubeops.etcd.etcd_backup_prune:
    path: /var/lib/kubeops-etcd/staging
    cluster_name: kubernetes
    policy:
      keep_last: 2

- name: Show what a policy would prune, checking every snapshot against its metadata
  kubeops.etcd.etcd_backup_prune:
    path: /var/backups/etcd
    cluster_name: prod-eu-1
    policy:
      keep_within: 36h
      daily: 14
    verify_checksums: true
  check_mode: true
  delegate_to: localhost
  register: etcd_prune_plan

- name: List the sets that would go
  ansible.builtin.debug:
    msg: "{{ etcd_prune_plan.pruned | map(attribute='id') | list }}"
'''

RETURN = r'''
path:
  description: The directory that was pruned.
  returned: always
  type: str
  sample: /var/backups/etcd
path_exists:
  description: V(false) when O(path) does not exist (nothing was pruned).
  returned: always
  type: bool
  sample: true
policy:
  description: The policy as applied, every rule present, O(policy.keep_within) in seconds.
  returned: always
  type: dict
  sample: {"keep_last": 0, "keep_within": 0, "hourly": 0, "daily": 7, "weekly": 4, "monthly": 6}
kept:
  description: The backup sets kept, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: C(<cluster>-<timestamp>), what every file of the set starts with.
      type: str
      sample: kubernetes-20261130T230000Z
    taken:
      description: When the backup was taken (from the name), ISO 8601 UTC.
      type: str
      sample: "2026-11-30T23:00:00Z"
    files:
      description: The file names of the set (in O(path)).
      type: list
      elements: str
      sample: [kubernetes-20261130T230000Z-rev4242-pki.tar.gz, kubernetes-20261130T230000Z-rev4242.db,
               kubernetes-20261130T230000Z-rev4242.db.meta.json]
    verified:
      description: Whether the set is verified (metadata and snapshot present and, with O(verify_checksums), matching).
      type: bool
      sample: true
    verification:
      description: Why the set is not verified, V(null) when it is.
      type: str
      sample: null
    reasons:
      description: Why it is kept, one sentence per rule that keeps it.
      type: list
      elements: str
      sample: [newest verified backup, "daily: newest of 2026-11-30", "weekly: newest of ISO week 2026-W49"]
pruned:
  description: The backup sets removed (in check mode, that would be removed), newest first; same keys as RV(kept).
  returned: always
  type: list
  elements: dict
  sample:
    - id: kubernetes-20261130T220000Z
      taken: "2026-11-30T22:00:00Z"
      files: [kubernetes-20261130T220000Z-rev4200.db, kubernetes-20261130T220000Z-rev4200.db.meta.json]
      verified: true
      verification: null
      reasons: ["kept by no rule of the policy (daily=7, weekly=4, monthly=6)"]
ignored:
  description: Names in O(path) that are not regular files of this cluster's backups; never touched.
  returned: always
  type: list
  elements: str
  sample: [README, kubernetes-20261201T000000Z-rev4300.db.part, other-cluster-20261130T230000Z.db]
freed_bytes:
  description: Bytes of the files removed (in check mode, of the files that would be removed).
  returned: always
  type: int
  sample: 73400320
msg:
  description: One line saying what was done.
  returned: always
  type: str
  sample: Kept 11 and pruned 733 backup sets of cluster kubernetes in /var/backups/etcd on ops1, freeing 73400320 bytes.
'''

import datetime
import errno
import json
import os
import re
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import sha256_file
from ansible_collections.kubeops.etcd.plugins.module_utils.retention import (
    group_backup_sets, iso_utc, parse_policy, plan_retention)

CHECKSUM_KEYS = ('sha256', 'encrypted_sha256')
CLUSTER_NAME_RE = re.compile(r'^[A-Za-z0-9._-]+$')


def regular_files(path):
    """``({name: size}, other_names)``: the regular files of ``path`` (symbolic links are not followed)
    and every other entry."""
    try:
        names = os.listdir(path)
    except (IOError, OSError) as exc:
        raise EtcdModuleError('Cannot list the backup directory %s on %s: %s. Check the path and that the task runs '
                              'as a user who may read it (become).' % (path, node_name(), exc.strerror or exc),
                              path=path)
    files = {}
    others = []
    for name in names:
        try:
            info = os.lstat(os.path.join(path, name))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise EtcdModuleError('Cannot read %s on %s: %s' % (os.path.join(path, name), node_name(),
                                                                exc.strerror or exc), path=path)
        if stat.S_ISREG(info.st_mode):
            files[name] = info.st_size
        else:
            others.append(name)
    return files, others


def read_metadata(path):
    """The metadata dict, or a string saying why it is unusable."""
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError) as exc:
        return 'cannot read %s: %s' % (os.path.basename(path), exc.strerror or exc)
    except ValueError as exc:
        return '%s is not valid JSON (%s)' % (os.path.basename(path), exc)
    if not isinstance(data, dict):
        return '%s is not a JSON object' % os.path.basename(path)
    return data


def verification_problem(path, backup_set, verify_checksums):
    """None when the set is verified, else a sentence saying why not."""
    if backup_set['metadata'] is None and backup_set['snapshot'] is None:
        return 'no snapshot and no metadata file'
    if backup_set['metadata'] is None:
        return 'no metadata file (.db.meta.json)'
    if backup_set['snapshot'] is None:
        return 'no snapshot file'
    if not verify_checksums:
        return None
    metadata = read_metadata(os.path.join(path, backup_set['metadata']))
    if not isinstance(metadata, dict):
        return metadata
    expected = [metadata[key] for key in CHECKSUM_KEYS if isinstance(metadata.get(key), str)]
    if not expected:
        return '%s holds no sha256 or encrypted_sha256' % backup_set['metadata']
    try:
        actual = sha256_file(os.path.join(path, backup_set['snapshot']))
    except EtcdModuleError as exc:
        return exc.msg
    if actual not in [value.lower() for value in expected]:
        return 'the SHA-256 of %s (%s) matches neither sha256 nor encrypted_sha256 of %s' % (
            backup_set['snapshot'], actual, backup_set['metadata'])
    return None


def remove_file(path, name, check_mode, removed):
    """Bytes freed by removing ``name`` (0 when it is gone or no longer a regular file); ``removed`` collects the
    names removed so far, for the error message of a later failure."""
    full = os.path.join(path, name)
    try:
        info = os.lstat(full)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return 0
        raise EtcdModuleError('Cannot read %s on %s: %s' % (full, node_name(), exc.strerror or exc),
                              file=full, removed=list(removed))
    if not stat.S_ISREG(info.st_mode):
        return 0
    if not check_mode:
        try:
            os.unlink(full)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return 0
            raise EtcdModuleError(
                'Cannot remove %s on %s: %s. Give the task the rights to write %s (become), or remove the file by '
                'hand. %d files were removed before it (listed in removed).'
                % (full, node_name(), exc.strerror or exc, path, len(removed)),
                file=full, removed=list(removed))
        removed.append(name)
    return info.st_size


def describe(entry, problems):
    problem = problems.get(entry['id'])
    return {
        'id': entry['id'],
        'taken': iso_utc(entry['taken']),
        'files': entry['files'],
        'verified': problem is None,
        'verification': problem,
        'reasons': entry['reasons'],
    }


def run_module(module):
    params = module.params
    path = params['path']
    cluster = params['cluster_name']
    try:
        policy = parse_policy(dict((key, value) for key, value in (params['policy'] or {}).items()
                                   if value is not None))
    except ValueError as exc:
        raise EtcdModuleError('Bad retention policy for %s on %s: %s. Nothing was removed.'
                              % (path, node_name(), exc), path=path)
    if not CLUSTER_NAME_RE.match(cluster):
        raise EtcdModuleError('cluster_name %r is not a cluster name (letters, digits, ".", "_" and "-"): give the name '
                              'the backup files start with, e.g. kubernetes for kubernetes-20261122T020000Z-rev42.db. '
                              'Nothing was removed.' % cluster, path=path)

    result = dict(path=path, path_exists=False, policy=policy, kept=[], pruned=[], ignored=[], freed_bytes=0)
    if not os.path.exists(path):
        result['msg'] = '%s does not exist on %s: nothing to prune.' % (path, node_name())
        return False, result
    if not os.path.isdir(path):
        raise EtcdModuleError('%s on %s is not a directory: give the directory that holds the backups.'
                              % (path, node_name()), path=path)
    result['path_exists'] = True

    files, others = regular_files(path)
    sets, ignored = group_backup_sets(sorted(files), cluster)
    problems = {}
    for backup_set in sets:
        problems[backup_set['id']] = verification_problem(path, backup_set, params['verify_checksums'])
        backup_set['verified'] = problems[backup_set['id']] is None
    plan = plan_retention(sets, policy, datetime.datetime.now(datetime.timezone.utc))

    freed = 0
    removed = []
    for entry in plan['prune']:
        for name in entry['files']:
            freed += remove_file(path, name, module.check_mode, removed)

    result.update(
        kept=[describe(entry, problems) for entry in plan['keep']],
        pruned=[describe(entry, problems) for entry in plan['prune']],
        ignored=sorted(ignored + others),
        freed_bytes=freed,
    )
    result['msg'] = '%s %d and %s %d backup sets of cluster %s in %s on %s, %s %d bytes.' % (
        'Would keep' if module.check_mode else 'Kept', len(plan['keep']),
        'prune' if module.check_mode else 'pruned', len(plan['prune']),
        cluster, path, node_name(), 'which would free' if module.check_mode else 'freeing', freed)
    return bool(plan['prune']), result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            cluster_name=dict(type='str', required=True),
            policy=dict(type='dict', options=dict(
                keep_last=dict(type='int'),
                keep_within=dict(type='raw'),
                hourly=dict(type='int'),
                daily=dict(type='int'),
                weekly=dict(type='int'),
                monthly=dict(type='int'),
            )),
            verify_checksums=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    try:
        changed, result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
