# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What restores and backups left on a node, and which of it may go (pure, no I/O).

Private to this collection (no API promise before 1.0). The etcd_leftovers module reads the node
(manifests, directory listings, sizes, times) and decides here, once:

- which names are this collection's leftovers and why each exists (``classify_*``): only names the
  collection writes are ever candidates;
- which paths are guarded and why (``guards``): the data dir a manifest points at (in the manifests dir
  or held aside), every dir above it and everything below it; held manifests; the run dirs while a
  restore is unfinished; the backup staging dir, which has its own retention;
- what an operator's ``names`` and ``older_than`` select (``select``), refusing every name that is not a
  listed candidate or is guarded, before anything is removed;
- the table the operator reads.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import posixpath
import re

from ansible_collections.kubeops.etcd.plugins.module_utils.restore_plan import RESTORED_SUFFIX

TS = r'[0-9]{8}T[0-9]{6}Z'

# Kinds, in the order the table lists them.
KINDS = (
    'active-data-dir',    # guarded: etcd.yaml points at it
    'data-dir',           # a data dir no manifest points at any more
    'failed-data-dir',    # <restored dir>.failed-<ts>: moved aside by the rollback of a failed restore
    'temp-data-dir',      # <dir>.kubeops-tmp-<ts>: etcd_restore was interrupted while it wrote
    'run-dir',            # <runs dir>/<ts>/: one restore run's manifests
    'held-manifest',      # guarded: a manifest held aside by an unfinished restore
    'staged-snapshot',    # a snapshot copy staged for a restore
    'moved-aside',        # <file>.<ts>, <path>.replaced-<ts>: kept instead of overwritten
    'manifest-backup',    # etcd.yaml.<ts> in a manifest backup dir
    'temp-manifest',      # .<name>.kubeops-tmp in the manifests dir: a copy interrupted half-way
    'backup-staging',     # guarded: backup.yml's staging dir, pruned by its own retention
)

_MOVED_ASIDE = re.compile(r'^(?P<original>.+)\.(?:replaced-)?(?P<ts>%s)(?:\.[0-9]+)?$' % TS)
_RUN_DIR = re.compile(r'^(?P<member>member-)?(?P<ts>%s)$' % TS)
_SURVIVOR = re.compile(r'^survivor-(?P<host>.+)-(?P<ts>%s)\.db$' % TS)
_TEMP_MANIFEST = re.compile(r'^\.(?P<original>.+)\.kubeops-tmp$')

HELD_REASON = ('held aside by a restore that did not finish: resolve that run first (resume or abort it as '
               'docs/restore.md says); prune never removes a held manifest')
BACKUP_STAGING_REASON = ('backups staged by backup.yml: its retention (etcd_backup_retention_node, '
                         'etcd_backup_prune) removes them, not prune; listed only')


def data_dir_base(path):
    """The data dir as kubeadm named it: ``/var/lib/etcd`` for ``/var/lib/etcd-restored-<ts>`` (the restore's
    naming, restore_plan.new_data_dir)."""
    return RESTORED_SUFFIX.sub('', posixpath.normpath(path))


def classify_data_sibling(name, bases):
    """``(kind, why)`` for an entry of a data dir's parent, or None when it is not ours.

    ``bases``: the base names (``etcd``) of the data dirs the manifests use or used, in that parent.
    """
    for base in bases:
        quoted = re.escape(base)
        if name == base:
            return 'data-dir', 'the data dir before the first restore; the restores left it as it was'
        match = re.match(r'^%s-restored-(%s)$' % (quoted, TS), name)
        if match:
            return 'data-dir', 'restored by the run of %s; no manifest points at it any more' % match.group(1)
        match = re.match(r'^%s(?:-restored-%s)?\.(failed|kubeops-tmp|replaced)-(%s)$' % (quoted, TS, TS), name)
        if match:
            what, when = match.group(1), match.group(2)
            if what == 'failed':
                return 'failed-data-dir', 'moved aside at %s by the rollback of a failed restore, for diagnosis' % when
            if what == 'kubeops-tmp':
                return 'temp-data-dir', 'etcd_restore was interrupted at %s while it wrote this restore' % when
            return 'moved-aside', ('moved aside at %s by a restore (restore.yml) or a member replacement (member.yml) '
                                   'that put a new data dir in its place' % when)
    return None


def classify_run_dir(name):
    match = _RUN_DIR.match(name)
    if match and match.group('member'):
        return 'run-dir', ('the files of the member replacement (member.yml) of %s: copies of etcd.yaml before and '
                           'after it' % match.group('ts'))
    if match:
        return 'run-dir', ('the files of the restore run of %s: copies of etcd.yaml before and after it, kept for its '
                           'rollback' % name)
    return None


def classify_staged(name):
    """An entry of the restore staging dir: every file there is a staged copy or was moved aside."""
    match = _MOVED_ASIDE.match(name)
    if match:
        return 'moved-aside', 'moved aside at %s instead of being overwritten' % match.group('ts')
    if name.endswith('.part'):
        return 'staged-snapshot', 'an incomplete snapshot download (.part) of an interrupted run'
    match = _SURVIVOR.match(name)
    if match:
        return 'staged-snapshot', ('the data of %s\'s etcd member, taken at %s by a recovery without a quorum '
                                   '(snapshot=survivor)' % (match.group('host'), match.group('ts')))
    return 'staged-snapshot', 'a snapshot copy a restore staged and kept (etcd_restore_keep_staged_snapshot, or an ' \
                              'interrupted run)'


def classify_backup_staging(name):
    """Moved-aside files of the backup staging dir (its retention ignores them); None for the backups."""
    match = _MOVED_ASIDE.match(name)
    if match:
        return 'moved-aside', 'moved aside at %s by a backup that wrote the same name again' % match.group('ts')
    return None


def classify_manifest_backup(name):
    match = _MOVED_ASIDE.match(name)
    if match:
        return 'manifest-backup', 'a copy of %s kept at %s before it was changed' % (
            match.group('original'), match.group('ts'))
    return 'manifest-backup', 'a copy of a manifest kept before it was changed'


def classify_manifests_dir_entry(name):
    match = _TEMP_MANIFEST.match(name)
    if match:
        return 'temp-manifest', 'a copy of %s interrupted half-way (the kubelet ignores dot files)' % match.group('original')
    return None


def _holds(parent, child):
    """True when ``child`` is ``parent`` or below it."""
    parent = posixpath.normpath(parent)
    child = posixpath.normpath(child)
    if parent == '/':
        return True
    return child == parent or child.startswith(parent + '/')


def guard_reason(path, guards):
    """Why ``path`` must stay, or None. ``guards``: ``[(path, reason, whole_tree)]``. A data dir in use guards
    itself, every dir above it and everything below it; other guards only themselves."""
    for guarded, reason, whole_tree in guards:
        if posixpath.normpath(path) == posixpath.normpath(guarded):
            return reason
        if whole_tree and (_holds(path, guarded) or _holds(guarded, path)):
            if _holds(path, guarded):
                return 'holds %s, which is in use (%s)' % (guarded, reason)
            return 'inside %s, which is in use (%s)' % (guarded, reason)
    return None


def active_guards(active, held):
    """Guards of the data dirs in use. ``active``: ``(manifest path, data dir)`` or None; ``held``: the same for a
    held etcd.yaml, or None."""
    guards = []
    if active:
        guards.append((active[1], 'in use: %s points at it' % active[0], True))
    if held:
        guards.append((held[1], 'in use: the held %s points at it (a restore did not finish)' % held[0], True))
    return guards


def unfinished_run_guards(run_dir, journal):
    """Guards of a run whose journal (restore_journal.py) is still ``running``: its run dir, and the previous and
    the restored data dir of this node, which finishing or undoing it needs."""
    reason = ('the restore run %s did not finish (its journal.json says running): resume or abort it first'
              % posixpath.basename(run_dir))
    guards = [(run_dir, reason, False)]
    member = journal.get('member') if isinstance(journal, dict) else None
    for key in ('old_data_dir', 'new_data_dir'):
        path = member.get(key) if isinstance(member, dict) else None
        if isinstance(path, str) and path.startswith('/'):
            guards.append((path, reason, True))
    return guards


def finish(candidates, guards, now, unfinished_run=None):
    """Add ``protected`` (the reason, or None), ``age_seconds``, ``age``, ``size`` to each candidate (dicts with
    ``path``, ``name``, ``kind``, ``why``, ``size_bytes``, ``mtime`` epoch seconds, ``mtime_iso``) and sort them.

    ``unfinished_run``: a sentence when manifests are held aside (every run dir is then kept, for resume or abort).
    """
    for candidate in candidates:
        reason = guard_reason(candidate['path'], guards)
        if reason is None and candidate['kind'] == 'held-manifest':
            reason = HELD_REASON
        if reason is None and candidate['kind'] == 'backup-staging':
            reason = BACKUP_STAGING_REASON
        if reason is None and unfinished_run and candidate['kind'] == 'run-dir':
            reason = unfinished_run
        if reason and reason.startswith('in use: ') and candidate['kind'] == 'data-dir':
            # the data dir etcd runs on (or will run on again) is listed, marked, never a candidate
            candidate['kind'] = 'active-data-dir'
            candidate['why'] = 'the data dir etcd uses'
        candidate['protected'] = reason
        candidate['age_seconds'] = max(0, int(now - candidate['mtime']))
        candidate['age'] = format_age(candidate['age_seconds'])
        candidate['size'] = format_size(candidate['size_bytes'])
    candidates.sort(key=lambda c: (KINDS.index(c['kind']) if c['kind'] in KINDS else len(KINDS), c['path']))
    return candidates


def select(candidates, names, older_than, guards):
    """What ``names`` (exact paths, or names as listed) and ``older_than`` (seconds, or None) select.

    Returns ``{'selected': [candidates], 'refusals': [sentences], 'unmatched': [names]}``. A name that is guarded
    or names a kept candidate is refused; so is a base name that fits several candidates. ``unmatched`` are names
    that fit no candidate: the caller refuses those that exist and reports the others as already gone.
    """
    chosen = []
    refusals = []
    unmatched = []
    by_path = dict((posixpath.normpath(c['path']), c) for c in candidates)
    for raw in names or []:
        name = (raw or '').strip()
        if not name:
            continue
        if name.startswith('/'):
            found = [by_path[posixpath.normpath(name)]] if posixpath.normpath(name) in by_path else []
        else:
            found = [c for c in candidates if c['name'] == name.rstrip('/')]
        if not found:
            reason = guard_reason(name, guards) if name.startswith('/') else None
            if reason:
                refusals.append('%s: %s' % (name, reason))
            else:
                unmatched.append(name)
            continue
        if len(found) > 1:
            refusals.append('%s fits %d candidates (%s): give the full path'
                            % (name, len(found), ', '.join(c['path'] for c in found)))
            continue
        candidate = found[0]
        if candidate['protected']:
            refusals.append('%s: %s' % (candidate['path'], candidate['protected']))
            continue
        chosen.append(candidate['path'])
    if older_than is not None:
        chosen.extend(c['path'] for c in candidates if not c['protected'] and c['age_seconds'] >= older_than)
    selected = [c for c in candidates if c['path'] in set(chosen)]
    return {'selected': selected, 'refusals': refusals, 'unmatched': unmatched}


def format_size(size):
    """Bytes as du -h would round them, binary units: '512 B', '4.0 KiB', '61.3 MiB'."""
    value = float(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return '%d B' % size if unit == 'B' else '%.1f %s' % (value, unit)
        value /= 1024
    return '%d B' % size  # pragma: no cover - the loop always returns


def format_age(seconds):
    """The two largest units: '3d 4h', '5h 12m', '42m', '30s'."""
    parts = []
    for unit, length in (('d', 86400), ('h', 3600), ('m', 60), ('s', 1)):
        if seconds >= length or (unit == 's' and not parts):
            parts.append('%d%s' % (seconds // length, unit))
            seconds %= length
        elif parts:
            break
        if len(parts) == 2:
            break
    return ' '.join(parts)


def table(candidates, selected, mode):
    """The lines an operator reads: one per candidate, then a total. ``mode``: 'list' (nothing selected),
    'check' (what would be removed) or 'remove' (what was removed)."""
    chosen = set(c['path'] for c in selected)
    action = {'list': '', 'check': 'would remove', 'remove': 'removed'}[mode]
    rows = []
    for candidate in candidates:
        if candidate['path'] in chosen:
            mark = action
        elif candidate['protected']:
            mark = 'KEEP'
        else:
            mark = '-'
        note = candidate['protected'] if candidate['protected'] else candidate['why']
        rows.append((mark, candidate['kind'], candidate['size'], candidate['age'], candidate['path'], note))
    header = ('ACTION', 'KIND', 'SIZE', 'AGE', 'PATH', 'WHY')
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(5)]
    lines = []
    for row in [header] + rows:
        lines.append('  '.join(row[i].ljust(widths[i]) for i in range(5)) + '  ' + row[5])
    removable = [c for c in candidates if not c['protected']]
    total = 'total: %d listed, %s; %d removable, %s' % (
        len(candidates), format_size(sum(c['size_bytes'] for c in candidates)),
        len(removable), format_size(sum(c['size_bytes'] for c in removable)))
    if mode == 'list':
        total += '; nothing removed (name what to remove, or give an age)'
    else:
        total += '; %s %d, %s' % (action, len(selected), format_size(sum(c['size_bytes'] for c in selected)))
    lines.append(total)
    return lines
