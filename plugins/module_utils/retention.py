# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backup retention: which backup sets a policy keeps and which it prunes (pure, no I/O).

Private to this collection (no API promise before 1.0). The etcd_backup_prune module applies it to
a directory, the object storage module to a bucket prefix; both decide here and only here.

Backup sets
    Only names this collection writes are ever candidates, parsed with the cluster name the operator
    gave (never guessed): ``<cluster>-<YYYYmmddTHHMMSSZ>[-rev<N>]`` followed by ``.db`` (optionally
    ``.zst`` and/or ``.age``: the snapshot), ``.db.meta.json`` (the metadata), ``-pki.tar.gz``
    (optionally ``.zst``/``.age``: the PKI archive) or ``.report.json`` (the run report). Every other
    name (``.part`` files, other clusters, temp files, a timestamp that is no date) is ignored. A
    backup set is every file sharing ``<cluster>-<timestamp>``; its id is that string.
    A set is *verified* when the caller says so (at least: its metadata and its snapshot exist;
    optionally the snapshot's SHA-256 matches the metadata).

The policy (like restic ``forget``: a set is kept when ANY rule keeps it)
    ``keep_last: N``
        the N newest verified sets.
    ``keep_within: D``
        every set taken at or after ``now - D`` (seconds, or '90m', '36h', '7d', '4w', '1d12h').
    ``hourly``, ``daily``, ``weekly``, ``monthly: N`` (grandfather-father-son)
        the newest verified set of each of the N most recent hours / days / ISO weeks / months that
        have a verified set (UTC). Periods without a backup do not count, so a gap never empties the
        history.
    keep_last and the period rules count verified sets only, so a broken or incomplete backup never
    takes the place of a good one; keep_within keeps every set of its window.

Always kept, whatever the policy
    - the newest verified set ('newest verified backup'): a policy can never delete the last good
      backup;
    - every set newer than the newest verified one ('newer than the newest verified backup: kept for
      inspection'), e.g. a run that failed half-way; with no verified set at all, nothing is pruned;
    - every set taken after ``now`` (clock skew between hosts);
    - with an empty policy (every count 0 and no keep_within) everything: nothing is pruned.

Every kept or pruned set carries ``reasons``: sentences an operator can read in ``--check`` output.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

TIMESTAMP_FORMAT = '%Y%m%dT%H%M%SZ'

POLICY_KEYS = ('keep_last', 'keep_within', 'hourly', 'daily', 'weekly', 'monthly')
COUNT_KEYS = ('keep_last', 'hourly', 'daily', 'weekly', 'monthly')
PERIOD_RULES = ('hourly', 'daily', 'weekly', 'monthly')

DURATION_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}
_DURATION_RE = re.compile(r'^(?:\d+[smhdw])+$')
_DURATION_PART_RE = re.compile(r'(\d+)([smhdw])')

# What follows ``<cluster>-<timestamp>``: optional revision, then the kind of file.
_SUFFIX_RE = re.compile(
    r'^(?:-rev(?P<revision>\d+))?'
    r'(?:(?P<snapshot>\.db(?:\.zst)?(?:\.age)?)'
    r'|(?P<metadata>\.db\.meta\.json)'
    r'|(?P<pki>-pki\.tar\.gz(?:\.zst)?(?:\.age)?)'
    r'|(?P<report>\.report\.json))$')

UTC = datetime.timezone.utc


def parse_timestamp(text):
    """``20261122T013500Z`` -> tz-aware UTC datetime; ValueError when it is no such timestamp."""
    return datetime.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def iso_utc(when):
    """A datetime as ISO 8601 UTC with a Z suffix: 2026-11-22T01:35:00Z."""
    return _as_utc(when).strftime('%Y-%m-%dT%H:%M:%SZ')


def _as_utc(when):
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_backup_name(name, cluster):
    """Parse one file name of ``cluster``.

    Returns ``{'id', 'taken', 'revision', 'kind'}`` (kind: snapshot, metadata, pki or report) or
    None when the name is not one this collection writes for that cluster.
    """
    prefix = '%s-' % cluster
    if not cluster or not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    stamp = rest[:16]
    if not re.match(r'^\d{8}T\d{6}Z$', stamp):
        return None
    try:
        taken = parse_timestamp(stamp)
    except ValueError:
        return None
    match = _SUFFIX_RE.match(rest[16:])
    if not match:
        return None
    kind = [key for key in ('snapshot', 'metadata', 'pki', 'report') if match.group(key)][0]
    revision = match.group('revision')
    return {
        'id': prefix + stamp,
        'taken': taken,
        'revision': int(revision) if revision is not None else None,
        'kind': kind,
    }


def group_backup_sets(names, cluster):
    """Group file (or object) names into backup sets of ``cluster``.

    Returns ``(sets, ignored_names)``: sets newest first, each
    ``{'id', 'taken', 'revision', 'files', 'snapshot', 'metadata'}`` (``files`` sorted; ``snapshot``
    the snapshot file, preferring the plain ``.db`` over ``.db.zst``/``.db.age`` when several exist;
    ``metadata`` the ``.db.meta.json``; either None when missing); ``ignored_names`` sorted.
    """
    sets = {}
    ignored = []
    for name in names:
        parsed = parse_backup_name(name, cluster)
        if parsed is None:
            ignored.append(name)
            continue
        entry = sets.setdefault(parsed['id'], {
            'id': parsed['id'], 'taken': parsed['taken'], 'revision': None,
            'files': [], 'snapshot': None, 'metadata': None,
        })
        entry['files'].append(name)
        if parsed['revision'] is not None:
            entry['revision'] = max(entry['revision'] or 0, parsed['revision'])
        if parsed['kind'] == 'snapshot':
            if entry['snapshot'] is None or (len(name), name) < (len(entry['snapshot']), entry['snapshot']):
                entry['snapshot'] = name
        elif parsed['kind'] == 'metadata':
            if entry['metadata'] is None or name < entry['metadata']:
                entry['metadata'] = name
    for entry in sets.values():
        entry['files'].sort()
    ordered = sorted(sets.values(), key=lambda item: (item['taken'], item['id']), reverse=True)
    return ordered, sorted(ignored)


def parse_duration(value, key='keep_within'):
    """Seconds of a duration: an int (seconds), a digit string, or '90m', '36h', '7d', '4w', '1d12h'."""
    if isinstance(value, bool):
        raise ValueError(_duration_error(key, value))
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = int(text)
        elif _DURATION_RE.match(text):
            seconds = sum(int(number) * DURATION_UNITS[unit] for number, unit in _DURATION_PART_RE.findall(text))
        else:
            raise ValueError(_duration_error(key, value))
    else:
        raise ValueError(_duration_error(key, value))
    if seconds < 0:
        raise ValueError(
            'retention policy %s=%r is negative: give a duration >= 0 (0 or null turns the rule off)' % (key, value))
    return seconds


def _duration_error(key, value):
    return ("retention policy %s=%r is not a duration: give seconds (86400) or numbers with a unit "
            "s, m (minutes), h, d or w, e.g. '90m', '36h', '7d', '4w' or '1d12h'" % (key, value))


def _parse_count(key, value):
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError('retention policy %s=%r is not a count: give a whole number >= 0 (0 turns the rule off)'
                         % (key, value))
    if isinstance(value, int):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str) and re.match(r'^\s*-?\d+\s*$', value):
        count = int(value)
    else:
        raise ValueError('retention policy %s=%r is not a count: give a whole number >= 0 (0 turns the rule off)'
                         % (key, value))
    if count < 0:
        raise ValueError('retention policy %s=%r is negative: give a whole number >= 0 (0 turns the rule off)'
                         % (key, value))
    return count


def parse_policy(policy):
    """Normalise a retention policy.

    Accepts a dict (or None) with the keys keep_last, keep_within, hourly, daily, weekly, monthly;
    missing or null keys are 0 (rule off). Returns a dict with every key: counts as ints, keep_within
    in seconds. Raises ValueError naming the key and the fix on an unknown key, a negative or
    non-integer count or a bad duration.
    """
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise ValueError('retention policy must be a dict with the keys %s, not %r'
                         % (', '.join(POLICY_KEYS), policy))
    unknown = sorted(str(key) for key in policy if key not in POLICY_KEYS)
    if unknown:
        raise ValueError("retention policy key %s unknown: use only %s (counts >= 0; keep_within a duration such as '7d')"
                         % (', '.join("'%s'" % key for key in unknown) + (' are' if len(unknown) > 1 else ' is'),
                            ', '.join(POLICY_KEYS)))
    result = {}
    for key in COUNT_KEYS:
        result[key] = _parse_count(key, policy.get(key))
    within = policy.get('keep_within')
    result['keep_within'] = 0 if within is None else parse_duration(within)
    return result


def policy_is_empty(policy):
    """True when no rule is set: such a policy keeps everything."""
    return not any(parse_policy(policy).values())


def format_duration(seconds):
    """Seconds as the shortest unit string: 604800 -> '7d', 129600 -> '36h', 5400 -> '90m'."""
    if seconds == 0:
        return '0s'
    for unit in ('w', 'd', 'h', 'm'):
        if seconds % DURATION_UNITS[unit] == 0:
            return '%d%s' % (seconds // DURATION_UNITS[unit], unit)
    return '%ds' % seconds


def describe_policy(policy):
    """The policy in one line: 'keep_last=3, keep_within=7d, daily=7' or 'empty (keep everything)'."""
    parsed = parse_policy(policy)
    parts = []
    for key in POLICY_KEYS:
        if parsed[key]:
            value = format_duration(parsed[key]) if key == 'keep_within' else parsed[key]
            parts.append('%s=%s' % (key, value))
    return ', '.join(parts) if parts else 'empty (keep everything)'


def period_of(rule, taken):
    """The (key, label) of the period of ``rule`` holding ``taken`` (UTC)."""
    taken = _as_utc(taken)
    if rule == 'hourly':
        return taken.strftime('%Y-%m-%dT%H'), taken.strftime('%Y-%m-%d %H:00 UTC')
    if rule == 'daily':
        return taken.strftime('%Y-%m-%d'), taken.strftime('%Y-%m-%d')
    if rule == 'weekly':
        year, week = taken.isocalendar()[:2]
        label = '%04d-W%02d' % (year, week)
        return label, 'ISO week %s' % label
    if rule == 'monthly':
        return taken.strftime('%Y-%m'), taken.strftime('%Y-%m')
    raise ValueError('unknown period rule %r' % rule)


def plan_retention(sets, policy, now):
    """Decide which backup sets to keep and which to prune (see the module docstring).

    ``sets``: dicts with at least ``id``, ``taken`` (datetime) and ``verified`` (bool); ``files`` is
    passed through. ``policy``: as parse_policy accepts. ``now``: the current time (naive = UTC).
    Returns ``{'keep': [{'id', 'taken', 'files', 'reasons'}], 'prune': [{'id', 'taken', 'files',
    'reasons'}]}``, each newest first. Raises ValueError on a bad policy.
    """
    parsed = parse_policy(policy)
    now = _as_utc(now)
    ordered = sorted(sets, key=lambda item: (_as_utc(item['taken']), item['id']), reverse=True)
    reasons = dict((item['id'], []) for item in ordered)

    newest_verified = None
    for item in ordered:
        if item.get('verified'):
            newest_verified = item
            break

    if not any(parsed.values()):
        for item in ordered:
            reasons[item['id']].append('the policy is empty: everything is kept')
    else:
        _apply_rules(ordered, parsed, now, newest_verified, reasons)

    keep = []
    prune = []
    for item in ordered:
        entry = {'id': item['id'], 'taken': _as_utc(item['taken']), 'files': list(item.get('files') or [])}
        if reasons[item['id']]:
            entry['reasons'] = reasons[item['id']]
            keep.append(entry)
        else:
            entry['reasons'] = [_prune_reason(item, parsed)]
            prune.append(entry)
    return {'keep': keep, 'prune': prune}


def _apply_rules(ordered, parsed, now, newest_verified, reasons):
    for item in ordered:
        taken = _as_utc(item['taken'])
        if taken > now:
            reasons[item['id']].append('taken in the future (%s, clock skew?): kept' % iso_utc(taken))
        if newest_verified is None:
            reasons[item['id']].append('no verified backup exists: kept for inspection')
        elif item is newest_verified:
            reasons[item['id']].append('newest verified backup')
        elif (taken, item['id']) > (_as_utc(newest_verified['taken']), newest_verified['id']):
            reasons[item['id']].append('newer than the newest verified backup: kept for inspection')

    if parsed['keep_within']:
        since = now - datetime.timedelta(seconds=parsed['keep_within'])
        for item in ordered:
            if _as_utc(item['taken']) >= since:
                reasons[item['id']].append('taken within %s (since %s)'
                                           % (format_duration(parsed['keep_within']), iso_utc(since)))

    verified = [item for item in ordered if item.get('verified')]
    if parsed['keep_last']:
        for item in verified[:parsed['keep_last']]:
            reasons[item['id']].append('one of the last %d' % parsed['keep_last'])

    for rule in PERIOD_RULES:
        wanted = parsed[rule]
        if not wanted:
            continue
        seen = set()
        for item in verified:
            key, label = period_of(rule, item['taken'])
            if key in seen:
                continue
            if len(seen) >= wanted:
                break
            seen.add(key)
            reasons[item['id']].append('%s: newest of %s' % (rule, label))


def _prune_reason(item, parsed):
    text = 'kept by no rule of the policy (%s)' % describe_policy(parsed)
    if not item.get('verified'):
        text = 'unverified (metadata or snapshot missing or not matching), older than the newest verified ' \
               'backup and ' + text
    return text
