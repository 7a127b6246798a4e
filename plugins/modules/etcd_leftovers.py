#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_leftovers
short_description: List what etcd restores and backups left on a control plane, and remove what the operator names
version_added: 0.2.0
description:
  - Lists, with size (disk usage, like C(du); symbolic links are never followed), last change and age, what this
    collection's restores and backups leave on a control plane, and why each exists.
  - That is - old data dirs (the one before the first restore, and every C(<data dir>-restored-<UTC timestamp>) no
    manifest points at any more), data dirs a rollback moved aside (C(.failed-<timestamp>)), temporary dirs of an
    interrupted C(etcd_restore) (C(.kubeops-tmp-<timestamp>)), the restore runs' dirs in O(runs_dir), staged snapshot
    copies in O(restore_staging_dir), files moved aside (C(<file>.<timestamp>), C(<path>.replaced-<timestamp>)),
    manifest backups in O(manifest_backup_dirs), interrupted manifest copies (C(.<name>.kubeops-tmp)) in
    O(manifests_dir), and manifests held in O(holding_dir).
  - Only names this collection writes are listed; data dirs only beside the data dir that C(etcd.yaml) points at
    (read with the collection's manifest reader), with the same base name.
  - B(Never a candidate), whatever is asked - the data dir C(etcd.yaml) in O(manifests_dir) points at, every dir above
    it and everything below it (listed as V(active-data-dir)); the same for a C(etcd.yaml) held in O(holding_dir);
    held manifests (a restore did not finish - resolve it with the restore's resume or abort, never by pruning); the
    run dir and both data dirs of a run whose C(journal.json) still says V(running); every run dir while manifests are
    held; the backup staging dir O(backup_staging_dir), whose retention (C(etcd_backup_retention_node)) removes backups
    (listed as one V(backup-staging) line; only files moved aside there are candidates).
  - With O(mode=remove), removes exactly the candidates named in O(names) and/or older than O(older_than).
    B(This is, beside backup retention, the one place the collection deletes), on purpose and only what the operator
    asked for. Every name is checked before anything is removed; one refused name refuses the whole task.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  mode:
    description:
      - V(list) reads and reports; it never changes anything.
      - V(remove) removes the candidates that O(names) and O(older_than) select.
    type: str
    choices: [list, remove]
    default: list
  names:
    description:
      - With O(mode=remove), what to remove - exact paths, or names as the listing prints them (the last part of
        the path, e.g. V(etcd-restored-20261203T054015Z) or the run dir V(20261203T054015Z)).
      - A name that fits a kept entry (the data dir in use, a held manifest, ...) or that exists but is not a listed
        candidate is refused, naming why; so is a name that fits several candidates (give the full path then). A
        name that exists nowhere is reported in RV(not_found) (already removed), with a warning.
    type: list
    elements: str
    default: []
  older_than:
    description:
      - With O(mode=remove), also remove every candidate whose last change (the newest modification time of it and of
        everything below it) is at least this old.
      - Seconds as an integer, or numbers with a unit V(s), V(m) (minutes), V(h), V(d) or V(w), e.g. V(36h), V(7d),
        V(1d12h). V(0) selects every candidate that is not kept.
    type: raw
  manifests_dir:
    description: The kubelet's static pod directory; its C(etcd.yaml) says which data dir is in use.
    type: path
    default: /etc/kubernetes/manifests
  holding_dir:
    description: Where the restore holds manifests aside (C(etcd_restore_holding_dir)).
    type: path
    default: /etc/kubernetes/kubeops-etcd/held-manifests
  runs_dir:
    description: Where every restore run keeps its manifests in C(<runs_dir>/<UTC timestamp>/) (C(etcd_restore_runs_dir)).
    type: path
    default: /etc/kubernetes/kubeops-etcd/runs
  restore_staging_dir:
    description: Where the restore stages snapshot copies (C(etcd_restore_staging_dir)).
    type: path
    default: /var/lib/kubeops-etcd/restore
  backup_staging_dir:
    description: Where the backup stages its files on the node (C(etcd_backup_node_dir)); listed, never pruned here.
    type: path
    default: /var/lib/kubeops-etcd/backups
  manifest_backup_dirs:
    description: Directories of manifest copies kept by M(kubeops.etcd.etcd_manifest_datadir) and
      M(kubeops.etcd.static_pod) when they run without a run dir (their default O(manifest_backup_dirs)).
    type: list
    elements: path
    default: [/etc/kubernetes/kubeops-etcd/manifest-backups, /etc/kubernetes/kubeops-etcd/replaced-manifests]
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is removed; RV(selected) and RV(table) show what would be.
  diff_mode:
    support: full
    details:
      - The diff lists the paths removed (in check mode, that would be removed).
  idempotent:
    support: full
    details:
      - What was removed is no longer listed; a second run with the same names removes nothing and reports them in
        RV(not_found).
notes:
  - Do not run it while a restore runs on the same nodes.
  - A manifest held in O(holding_dir) means a restore did not finish; the module warns and never removes it.
  - Needs PyYAML on the node, like every module that reads manifests.
seealso:
  - module: kubeops.etcd.etcd_backup_prune
  - module: kubeops.etcd.etcd_restore
'''

EXAMPLES = r'''
- name: List what the restores left on this control plane
  kubeops.etcd.etcd_leftovers:
  register: leftovers

- name: Show it
  ansible.builtin.debug:
    msg: "{{ leftovers.table }}"

- name: Remove two old data dirs by name
  kubeops.etcd.etcd_leftovers:
    mode: remove
    names:
      - /var/lib/etcd
      - etcd-restored-20261203T054015Z

- name: Show what is older than a week and would be removed
  kubeops.etcd.etcd_leftovers:
    mode: remove
    older_than: 7d
  check_mode: true
'''

RETURN = r'''
candidates:
  description: Everything listed, kept entries included, in table order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Absolute path.
      type: str
      sample: /var/lib/etcd-restored-20261203T054015Z
    name:
      description: The last part of the path, as O(names) accepts it.
      type: str
      sample: etcd-restored-20261203T054015Z
    kind:
      description: >-
        V(active-data-dir), V(data-dir), V(failed-data-dir), V(temp-data-dir), V(run-dir), V(held-manifest),
        V(staged-snapshot), V(moved-aside), V(manifest-backup), V(temp-manifest) or V(backup-staging).
      type: str
      sample: data-dir
    why:
      description: Why it exists.
      type: str
      sample: restored by the run of 20261203T054015Z; no manifest points at it any more
    protected:
      description: Why it is kept whatever is asked, or V(null) when it may be removed.
      type: str
      sample: null
    size_bytes:
      description: Disk usage in bytes (hard links counted once, symbolic links not followed).
      type: int
      sample: 67710976
    size:
      description: RV(candidates[].size_bytes) for people.
      type: str
      sample: 64.6 MiB
    mtime:
      description: Its last change (the newest modification time of it and everything below it), ISO 8601 UTC.
      type: str
      sample: "2026-12-03T05:40:27Z"
    age_seconds:
      description: Seconds since RV(candidates[].mtime).
      type: int
      sample: 93784
    age:
      description: RV(candidates[].age_seconds) for people.
      type: str
      sample: 1d 2h
held:
  description: Manifests held in O(holding_dir) (a restore did not finish).
  returned: always
  type: list
  elements: str
  sample: []
active_data_dir:
  description: The data dir C(etcd.yaml) in O(manifests_dir) points at; V(null) when there is no such file.
  returned: always
  type: str
  sample: /var/lib/etcd-restored-20261203T054015Z
selected:
  description: The paths removed (in check mode, that would be removed); empty with O(mode=list).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/etcd]
removed:
  description: The paths actually removed.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/etcd]
not_found:
  description: Names in O(names) that exist nowhere (already removed).
  returned: always
  type: list
  elements: str
  sample: []
listed_bytes:
  description: Disk usage of everything listed.
  returned: always
  type: int
  sample: 203132928
removable_bytes:
  description: Disk usage of the candidates that are not kept.
  returned: always
  type: int
  sample: 135421952
freed_bytes:
  description: Disk usage of RV(selected).
  returned: always
  type: int
  sample: 67710976
table:
  description: The listing as lines - action, kind, size, age, path, why (or why it is kept) - and a total.
  returned: always
  type: list
  elements: str
msg:
  description: One line saying what was found and done.
  returned: always
  type: str
  sample: cp1 - 6 listed (2 kept), 3 removable (193.9 MiB); removed 1 (64.6 MiB).
'''

import datetime
import errno
import json
import os
import shutil
import stat
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.leftovers import (
    active_guards, classify_backup_staging, classify_data_sibling, classify_manifest_backup,
    classify_manifests_dir_entry, classify_run_dir, classify_staged, data_dir_base, finish, format_size, guard_reason,
    select, table, unfinished_run_guards)
from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest
from ansible_collections.kubeops.etcd.plugins.module_utils.restore_journal import JOURNAL_NAME
from ansible_collections.kubeops.etcd.plugins.module_utils.retention import parse_duration

ETCD_MANIFEST = 'etcd.yaml'


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise EtcdModuleError('Cannot read %s on %s: %s' % (path, node_name(), exc.strerror or exc), path=path)


def _entries(directory):
    """``[(name, lstat)]`` of a directory; empty when it does not exist."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        raise EtcdModuleError('Cannot list %s on %s: %s. Run the task as root (become).'
                              % (directory, node_name(), exc.strerror or exc), path=directory)
    found = []
    for name in names:
        info = _lstat(os.path.join(directory, name))
        if info is not None:
            found.append((name, info))
    return found


def measure(path, info):
    """``(disk usage in bytes, newest mtime)`` of path and everything below it, like ``du -s``: symbolic links are
    counted, never followed; hard links once."""
    seen = set([(info.st_dev, info.st_ino)])
    total = info.st_blocks * 512
    newest = info.st_mtime
    if not stat.S_ISDIR(info.st_mode):
        return total, newest
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            entry = _lstat(os.path.join(root, name))
            if entry is None or (entry.st_dev, entry.st_ino) in seen:
                continue
            seen.add((entry.st_dev, entry.st_ino))
            total += entry.st_blocks * 512
            newest = max(newest, entry.st_mtime)
    return total, newest


def _candidate(directory, name, info, kind, why):
    path = os.path.join(directory, name)
    size, mtime = measure(path, info)
    return {'path': path, 'name': name, 'kind': kind, 'why': why, 'size_bytes': size, 'mtime': mtime,
            'mtime_iso': datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}


def _data_dir(manifest_path):
    """The data dir hostPath of an etcd manifest, or None when the file does not exist."""
    if _lstat(manifest_path) is None:
        return None
    return os.path.normpath(EtcdManifest.load(manifest_path).data_dir_host_path)


def _read_journal(path):
    """The journal dict, or None when there is none; an unreadable one counts as unfinished (kept)."""
    if _lstat(path) is None:
        return None
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError, ValueError):
        return {'status': 'running'}
    return data if isinstance(data, dict) else {'status': 'running'}


def scan(params, module):
    """Every candidate, the guards and what the module must say about held manifests."""
    candidates = []
    guards = []
    manifest_path = os.path.join(params['manifests_dir'], ETCD_MANIFEST)
    active_dir = _data_dir(manifest_path)
    active = (manifest_path, active_dir) if active_dir else None

    held = []
    held_etcd = None
    for name, info in _entries(params['holding_dir']):
        if stat.S_ISDIR(info.st_mode):
            continue
        path = os.path.join(params['holding_dir'], name)
        held.append(path)
        candidates.append(_candidate(params['holding_dir'], name, info, 'held-manifest',
                                     'moved out of %s by a restore run that did not finish' % params['manifests_dir']))
        if name == ETCD_MANIFEST:
            try:
                held_etcd = (path, _data_dir(path))
            except EtcdModuleError as exc:
                raise EtcdModuleError('%s Prune cannot tell which data dir the held etcd.yaml needs, so it lists and '
                                      'removes nothing; resolve the unfinished restore first.' % exc.msg, path=path)
    guards.extend(active_guards(active, held_etcd))
    for path in held:
        module.warn('%s: %s is held aside: a restore run did not finish. Resolve it with the restore (resume or '
                    'abort it, see docs/restore.md) - it is never pruned.' % (node_name(), path))

    bases = {}
    for entry in (active, held_etcd):
        if entry:
            bases.setdefault(os.path.dirname(entry[1]), set()).add(os.path.basename(data_dir_base(entry[1])))
    if not bases:
        module.warn('%s: there is no %s (nor one held in %s), so the data dir in use is unknown: data dirs are not '
                    'listed.' % (node_name(), manifest_path, params['holding_dir']))

    for run, info in _entries(params['runs_dir']):
        found = classify_run_dir(run) if stat.S_ISDIR(info.st_mode) else None
        if found:
            run_dir = os.path.join(params['runs_dir'], run)
            journal = _read_journal(os.path.join(run_dir, JOURNAL_NAME))
            if journal is not None and journal.get('status') == 'running':
                guards.extend(unfinished_run_guards(run_dir, journal))
            candidates.append(_candidate(params['runs_dir'], run, info, found[0], found[1]))

    for parent, names in sorted(bases.items()):
        for name, info in _entries(parent):
            found = classify_data_sibling(name, sorted(names)) if stat.S_ISDIR(info.st_mode) else None
            if found:
                candidates.append(_candidate(parent, name, info, found[0], found[1]))

    for name, info in _entries(params['restore_staging_dir']):
        if not stat.S_ISLNK(info.st_mode):
            kind, why = classify_staged(name)
            candidates.append(_candidate(params['restore_staging_dir'], name, info, kind, why))

    staging = [(name, info) for name, info in _entries(params['backup_staging_dir']) if not stat.S_ISLNK(info.st_mode)]
    if staging:
        backups = 0
        for name, info in staging:
            found = classify_backup_staging(name)
            if found:
                candidates.append(_candidate(params['backup_staging_dir'], name, info, found[0], found[1]))
            else:
                backups += 1
        directory = params['backup_staging_dir']
        entry = _candidate(os.path.dirname(directory), os.path.basename(directory), os.lstat(directory),
                           'backup-staging', '%d file(s) staged by backup.yml' % backups)
        entry['size_bytes'] -= sum(c['size_bytes'] for c in candidates if os.path.dirname(c['path']) == directory)
        candidates.append(entry)

    for directory in params['manifest_backup_dirs']:
        for name, info in _entries(directory):
            if stat.S_ISREG(info.st_mode):
                kind, why = classify_manifest_backup(name)
                candidates.append(_candidate(directory, name, info, kind, why))

    for name, info in _entries(params['manifests_dir']):
        found = classify_manifests_dir_entry(name) if stat.S_ISREG(info.st_mode) else None
        if found:
            candidates.append(_candidate(params['manifests_dir'], name, info, found[0], found[1]))

    # Compare real paths too, so that a symbolic link on the way cannot hide the data dir in use.
    guards.extend([(os.path.realpath(path), reason, whole) for path, reason, whole in guards
                   if os.path.realpath(path) != path])
    unfinished = None
    if held:
        unfinished = ('manifests are held in %s (a restore did not finish): its run dir is needed to resume or abort it'
                      % params['holding_dir'])
    finish(candidates, guards, time.time(), unfinished_run=unfinished)
    for candidate in candidates:
        real = os.path.realpath(candidate['path'])
        if not candidate['protected'] and real != candidate['path']:
            candidate['protected'] = guard_reason(real, guards)
    return candidates, guards, held, active_dir


def remove(path, removed):
    """Remove one candidate: a directory tree with shutil.rmtree (symbolic links inside are removed, never
    followed), anything else with unlink."""
    info = _lstat(path)
    if info is None:
        return
    try:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError as exc:
        raise EtcdModuleError(
            'Cannot remove %s on %s: %s. Removed before it: %s. Look at the path, fix the cause (rights, a busy '
            'mount), then run the task again.' % (path, node_name(), exc.strerror or exc, ', '.join(removed) or 'nothing'),
            path=path, removed=list(removed))
    removed.append(path)


def public(candidate):
    """A candidate as the module returns it: mtime as ISO 8601 UTC."""
    result = dict((key, value) for key, value in candidate.items() if key not in ('mtime', 'mtime_iso'))
    result['mtime'] = candidate['mtime_iso']
    return result


def run_module(module):
    params = dict(module.params)
    for key in ('manifests_dir', 'holding_dir', 'runs_dir', 'restore_staging_dir', 'backup_staging_dir'):
        params[key] = os.path.normpath(params[key])
    params['manifest_backup_dirs'] = [os.path.normpath(path) for path in params['manifest_backup_dirs']]
    names = [name for name in params['names'] if name and name.strip()]
    older_than = None
    if params['older_than'] is not None and str(params['older_than']).strip() != '':
        try:
            older_than = parse_duration(params['older_than'], key='older_than')
        except ValueError:
            raise EtcdModuleError("older_than=%r is not an age: give seconds (86400) or numbers with a unit s, m, h, d "
                                  "or w, e.g. '36h', '7d' or '1d12h'. Nothing was removed." % params['older_than'])
    if params['mode'] == 'list' and (names or older_than is not None):
        raise EtcdModuleError('names and older_than select what to remove: use them with mode=remove (in check mode to '
                              'see what would go). Nothing was removed.')
    if params['mode'] == 'remove' and not names and older_than is None:
        raise EtcdModuleError('mode=remove removes only what you name: give names (paths or names as listed) and/or '
                              'older_than. Nothing was removed.')

    candidates, guards, held, active_dir = scan(params, module)
    picked = select(candidates, names, older_than, guards)
    refusals = list(picked['refusals'])
    not_found = []
    for name in picked['unmatched']:
        if name.startswith('/') and _lstat(name) is not None:
            refusals.append('%s: not something this collection left (not a listed candidate)' % name)
        else:
            not_found.append(name)
    if refusals:
        raise EtcdModuleError('Refused on %s, nothing was removed: %s. Run with mode=list (prune.yml without '
                              'etcd_prune_remove) to see the candidates and why some are kept.'
                              % (node_name(), '; '.join(refusals)), refused=refusals)
    for name in not_found:
        module.warn('%s: %s is not there (already removed?); nothing to remove for it.' % (node_name(), name))

    selected = picked['selected']
    removed = []
    if not module.check_mode:
        for candidate in selected:
            remove(candidate['path'], removed)
    mode = 'list' if params['mode'] == 'list' else ('check' if module.check_mode else 'remove')
    lines = table(candidates, selected, mode)
    kept = [c for c in candidates if c['protected']]
    removable = [c for c in candidates if not c['protected']]
    freed = sum(c['size_bytes'] for c in selected)
    msg = '%s: %d listed (%d kept), %d removable (%s)' % (
        node_name(), len(candidates), len(kept), len(removable), format_size(sum(c['size_bytes'] for c in removable)))
    if mode == 'list':
        msg += '; nothing removed.'
    else:
        msg += '; %s %d (%s).' % ('would remove' if module.check_mode else 'removed', len(selected), format_size(freed))
    result = dict(
        changed=bool(selected),
        candidates=[public(c) for c in candidates],
        held=held,
        active_data_dir=active_dir,
        selected=[c['path'] for c in selected],
        removed=removed,
        not_found=not_found,
        listed_bytes=sum(c['size_bytes'] for c in candidates),
        removable_bytes=sum(c['size_bytes'] for c in removable),
        freed_bytes=freed,
        table=lines,
        msg=msg,
    )
    if module._diff and selected:
        result['diff'] = {'before_header': 'leftovers on %s' % node_name(), 'after_header': 'leftovers on %s' % node_name(),
                          'before': ''.join('%s\n' % c['path'] for c in selected), 'after': ''}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type='str', default='list', choices=['list', 'remove']),
            names=dict(type='list', elements='str', default=[]),
            older_than=dict(type='raw'),
            manifests_dir=dict(type='path', default='/etc/kubernetes/manifests'),
            holding_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/held-manifests'),
            runs_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/runs'),
            restore_staging_dir=dict(type='path', default='/var/lib/kubeops-etcd/restore'),
            backup_staging_dir=dict(type='path', default='/var/lib/kubeops-etcd/backups'),
            manifest_backup_dirs=dict(type='list', elements='path',
                                      default=['/etc/kubernetes/kubeops-etcd/manifest-backups',
                                               '/etc/kubernetes/kubeops-etcd/replaced-manifests']),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), to_native(exc)),
                         exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
