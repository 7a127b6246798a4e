# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The container runtime as ``crictl`` shows it: which containers of a static pod run, the newest attempt of one
(running or exited), the tail of its log, and the line of that log that says why it stopped.

The parsers are pure functions (unit-tested with outputs of real etcd 3.4.23 and 3.5.30); ``Crictl`` runs crictl
through the module's one command runner, with argv lists."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

CRICTL_CALL_TIMEOUT = 15
LOG_TAIL_LINES = 20
# The longest cause line a message quotes: a Go stack trace or a long JSON field is cut.
CAUSE_LIMIT = 300

# capnslog (etcd 3.4's default logger): "2026-12-04 03:00:44.883292 C | etcdmain: listen tcp ...".
CAPNSLOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d[ T][\d:.]+ ([CEWNID]) \| (.*)$')
CAPNSLOG_LEVELS = {'C': 'fatal', 'E': 'error'}
# klog, which other components (and etcd's grpc logger) write: "E1204 03:00:44.883292  1 file.go:12] text".
KLOG_LINE = re.compile(r'^([FE])\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)$')
KLOG_LEVELS = {'F': 'fatal', 'E': 'error'}
# The worse, the earlier: a panic explains a crash better than the errors logged before it.
RANK = {'panic': 3, 'fatal': 2, 'error': 1}


def name_pattern(names):
    """crictl's --name is a regular expression: match exactly these container names."""
    def literal(name):
        return ''.join(char if char.isalnum() or char in '-_' else '\\' + char for char in name)
    return '^(%s)$' % '|'.join(literal(name) for name in names)


def parse_running(text, names):
    """{name: [container IDs]} for the names asked, from `crictl ps -o json`."""
    data = json.loads(text)
    found = dict((name, []) for name in names)
    for container in (data or {}).get('containers') or []:
        name = (container.get('metadata') or {}).get('name')
        if name in found and container.get('id'):
            found[name].append(container['id'])
    return found


def _created(container):
    try:
        return int(container.get('createdAt') or 0)
    except (TypeError, ValueError):
        return 0


def newest_container(text, name):
    """The newest container named ``name`` in `crictl ps -a -o json`, as {id, state, attempt, created}, or None.

    state is crictl's without its prefix, in lower case: running, exited, created, unknown."""
    data = json.loads(text)
    found = [c for c in (data or {}).get('containers') or []
             if (c.get('metadata') or {}).get('name') == name and c.get('id')]
    if not found:
        return None
    newest = max(found, key=_created)
    state = str(newest.get('state') or 'CONTAINER_UNKNOWN')
    return {
        'id': newest['id'],
        'state': state[len('CONTAINER_'):].lower() if state.startswith('CONTAINER_') else state.lower(),
        'attempt': int((newest.get('metadata') or {}).get('attempt') or 0),
        'created': _created(newest),
    }


def _json_entry(line):
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or 'level' not in entry:
        return None
    level = str(entry.get('level')).lower()
    level = {'dpanic': 'panic', 'critical': 'fatal', 'crit': 'fatal'}.get(level, level)
    text = str(entry.get('msg') or '').strip()
    if entry.get('error'):
        text = '%s: %s' % (text, entry['error']) if text else str(entry['error'])
    return level, text


def _entry(line):
    """(level, text) of one log line of etcd or of a Go program, or None for a line that is not an entry."""
    if line.startswith('{'):
        return _json_entry(line)
    if line.startswith('panic: '):
        return 'panic', line
    match = CAPNSLOG_LINE.match(line)
    if match:
        return CAPNSLOG_LEVELS.get(match.group(1), 'info'), match.group(2).strip()
    match = KLOG_LINE.match(line)
    if match:
        return KLOG_LEVELS[match.group(1)], match.group(2).strip()
    return None


def log_cause(text, last_line=True):
    """The line of a container's log that says why it stopped: the last panic, else the last fatal (capnslog's
    critical), else the last error; with last_line, the last non-empty line when none is marked. '' for none.

    Reads etcd 3.5's JSON log (msg and error), etcd 3.4's capnslog, klog and a Go panic."""
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    best, best_rank = None, 0
    for line in lines:
        entry = _entry(line)
        if not entry:
            continue
        rank = RANK.get(entry[0], 0)
        if rank and rank >= best_rank and entry[1]:
            best, best_rank = entry[1], rank
    cause = best or (lines[-1] if lines and last_line else '')
    cause = ' '.join(cause.split())
    return cause if len(cause) <= CAUSE_LIMIT else cause[:CAUSE_LIMIT] + ' ...'


def container_summary(host, name, container):
    """One sentence on a static pod's newest container, for a failure message: its ID, state, attempt and cause."""
    if not container:
        return '%s on %s: no container of it is known to the runtime' % (name, host)
    text = '%s on %s: container %s %s (attempt %s)' % (
        name, host, container['id'][:13], 'is running' if container['state'] == 'running' else container['state'],
        container.get('attempt', '?'))
    if container.get('cause'):
        text += ', its log ends with: %s' % container['cause']
    return text


class Crictl(object):
    def __init__(self, runner, path):
        self.runner = runner
        self.path = path

    def _run(self, argv):
        return self.runner.run([self.path] + argv, check_rc=False, timeout=CRICTL_CALL_TIMEOUT)

    def _ps_json(self, argv, parse):
        """(parse(stdout of `crictl ps ... -o json`), None), or (None, error) when crictl fails."""
        result = self._run(['ps'] + argv + ['-o', 'json'])
        if result.rc != 0:
            return None, (result.stderr or result.stdout).strip() or 'rc=%s' % result.rc
        try:
            return parse(result.stdout), None
        except (ValueError, AttributeError):
            return None, 'crictl ps %s -o json printed no container list: %s' % (' '.join(argv[:1]),
                                                                                 result.stdout.strip()[:300])

    def running(self, names):
        """({name: [IDs of running containers]}, None), or (None, error) when crictl fails."""
        return self._ps_json(['--name', name_pattern(names), '--state', 'running'],
                             lambda text: parse_running(text, names))

    def newest(self, name):
        """(the newest container of name, running or not, or None; None), or (None, error) when crictl fails."""
        return self._ps_json(['-a', '--name', name_pattern([name])], lambda text: newest_container(text, name))

    def log_tail(self, container_id, lines=LOG_TAIL_LINES):
        """The last lines of a container's log. crictl prints what the container wrote to stderr on stderr, and
        etcd logs to stderr: both streams are kept."""
        logs = self._run(['logs', '--tail', str(lines), container_id])
        return '\n'.join(part for part in (logs.stdout.strip(), logs.stderr.strip()) if part)

    def diagnostics(self, name):
        """The last `crictl ps -a` lines for the container and the tail of its latest log, for the error message."""
        lines = []
        table = self._run(['ps', '-a', '--name', '^%s$' % name])
        rows = [line for line in (table.stdout or table.stderr).splitlines() if line.strip()]
        lines.append('`crictl ps -a --name ^%s$`:\n%s' % (name, '\n'.join(rows[:6]) or '(nothing)'))
        ids = self._run(['ps', '-a', '-q', '--name', '^%s$' % name])
        latest = [line.strip() for line in ids.stdout.splitlines() if line.strip()]
        if latest:
            text = self.log_tail(latest[0])
            lines.append('last %d log lines of container %s:\n%s' % (LOG_TAIL_LINES, latest[0], text or '(empty)'))
        return '\n'.join(lines)
