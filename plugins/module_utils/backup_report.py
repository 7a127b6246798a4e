# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The report of a backup run and its Prometheus metrics (pure, no I/O).

Private to this collection (no API promise before 1.0). The etcd_backup_metrics module writes what
these functions return; docs/monitoring.md documents the metrics and the report for operators.

The report (``format: 1``), what :func:`build_report` returns and the JSON file holds::

    format            1 (a reader refuses another number)
    cluster           the cluster name the operator gave (etcd_backup_cluster_name)
    outcome           "success" or "failure"
    started/finished  ISO 8601 UTC, "2026-11-22T01:35:00Z" (started: null when unknown)
    duration_seconds  float, null when unknown
    snapshot          {name, path, size, sha256, revision, total_key, etcd_version, cluster_id, member,
                      cluster_healthy, node} or null (size and sha256 required, the rest null when unknown)
    metadata          path of the snapshot's metadata file, or null
    archive           path of the PKI archive, or null
    encrypted         {sha256, size} of the age-encrypted object, or null (not encrypted)
    compression       {algorithm, size, ratio} (size compressed, ratio = snapshot size / size) or null
    uploaded          [{bucket, key, size, sha256}] or null (no object storage configured)
    retention         {destination: {kept: [backup ids], pruned: [backup ids]}} ({} when none ran)
    secrets           {secrets_total, secrets_plaintext, secrets_encrypted (each an int or null),
                      encryption_providers (list), error (why they could not be counted, or null)} or null
    failure           {step, host, message} when outcome is failure, else null

Every key is always present; absent values are null, never missing. The parts take the results of the
collection's modules as they are: ``snapshot`` an etcd_snapshot result (its ``path`` key, when given,
wins over ``dest``), ``encrypted`` and ``compression`` an etcd_backup_crypt result, ``uploaded`` the loop
results of etcd_object_store (skipped items are left out), ``retention`` values etcd_backup_prune or
etcd_object_store prune results (a destination whose value is null or skipped is left out), ``secrets``
etcd_snapshot's ``secrets``.

The metrics (one text file may hold several clusters; every series has a ``cluster`` label and a run
replaces only its own cluster's series, keeping every other cluster's as it was):

    per attempt (replaced every run)
        kubeops_etcd_backup_last_attempt_timestamp_seconds, kubeops_etcd_backup_last_duration_seconds,
        kubeops_etcd_backup_success (1/0), kubeops_etcd_backup_failures_total (previous + 1 on failure)
    of the last successful backup (replaced on success, kept from the previous file on failure)
        kubeops_etcd_backup_last_success_timestamp_seconds (0 when no run of the cluster succeeded),
        kubeops_etcd_backup_last_size_bytes, kubeops_etcd_backup_last_revision,
        kubeops_etcd_backup_last_total_keys, kubeops_etcd_backup_plaintext_secrets,
        kubeops_etcd_backup_uploaded

A previous file that is missing or garbled never fails a run: what cannot be parsed is ignored line
by line, and a cluster without readable series starts fresh.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import math
import os
import re
import time

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError

REPORT_FORMAT = 1
OUTCOMES = ('success', 'failure')
ENCRYPTION_AT_REST_URL = 'https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/'

REPORT_KEYS = ('format', 'cluster', 'outcome', 'started', 'finished', 'duration_seconds', 'snapshot', 'metadata',
               'archive', 'encrypted', 'compression', 'uploaded', 'retention', 'secrets', 'failure')
SECRETS_KEYS = ('secrets_total', 'secrets_plaintext', 'secrets_encrypted')

UTC = datetime.timezone.utc
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')
_ISO_RE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]00:?00)?$')

# (name, type, help, kept_on_failure). The order is the order in the file.
METRICS = (
    ('kubeops_etcd_backup_last_success_timestamp_seconds', 'gauge',
     'Unix time of the last successful etcd backup of the cluster (0: none succeeded yet).', True),
    ('kubeops_etcd_backup_last_attempt_timestamp_seconds', 'gauge',
     'Unix time of the last etcd backup attempt of the cluster, successful or not.', False),
    ('kubeops_etcd_backup_last_duration_seconds', 'gauge',
     'Duration of the last etcd backup attempt in seconds.', False),
    ('kubeops_etcd_backup_last_size_bytes', 'gauge',
     'Size in bytes of the snapshot of the last successful etcd backup.', True),
    ('kubeops_etcd_backup_last_revision', 'gauge',
     'etcd revision of the snapshot of the last successful backup.', True),
    ('kubeops_etcd_backup_last_total_keys', 'gauge',
     'Number of keys in the snapshot of the last successful backup (etcd 3.5 and 3.6 count differently).', True),
    ('kubeops_etcd_backup_success', 'gauge',
     'Whether the last etcd backup attempt succeeded (1) or failed (0).', False),
    ('kubeops_etcd_backup_failures_total', 'counter',
     'Number of failed etcd backup attempts recorded in this file.', False),
    ('kubeops_etcd_backup_plaintext_secrets', 'gauge',
     'Secrets stored without encryption at rest in the last successful backup\'s snapshot.', True),
    ('kubeops_etcd_backup_uploaded', 'gauge',
     'Whether the last successful backup was uploaded to object storage (1) or not (0).', True),
)
METRIC_NAMES = tuple(metric[0] for metric in METRICS)
LABEL = 'cluster'

_NAME_RE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
_LABEL_NAME_RE = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')


def _error(path, problem):
    return EtcdModuleError('Backup report: %s %s. This is a bug in the caller (the etcd_backup role or the '
                           'playbook passing report=); fix the value it passes.' % (path, problem), field=path)


# ---- report ------------------------------------------------------------------------------------------

def _as_epoch(value, path):
    """Epoch seconds (float) from a number, a numeric string, an ISO 8601 UTC string or an aware datetime."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _error(path, 'must be a time, got %r' % (value,))
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise _error(path, 'must be a time with a time zone, got the naive %s' % value.isoformat())
        return (value - datetime.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        match = _ISO_RE.match(text)
        if match:
            year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
            try:
                when = datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except ValueError:
                raise _error(path, 'is not a valid date and time: %r' % text)
            fraction = float(match.group(7)) if match.group(7) else 0.0
            return (when - datetime.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() + fraction
        try:
            number = float(text)
        except ValueError:
            raise _error(path, 'must be Unix seconds or an ISO 8601 UTC time (2026-11-22T01:35:00Z), got %r' % text)
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise _error(path, 'must be a time after 1970, got %r' % (value,))
    return number


def _iso(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _count(value, path, required=True):
    """A non-negative integer from an int, an integral float or a string of digits (Jinja gives strings)."""
    if value is None or value == '':
        if required:
            raise _error(path, 'is missing')
        return None
    if isinstance(value, bool):
        raise _error(path, 'must be a non-negative integer, got %r' % (value,))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0:
        raise _error(path, 'must be a non-negative integer, got %r' % (value,))
    return value


def _number(value, path, required=True):
    if value is None or value == '':
        if required:
            raise _error(path, 'is missing')
        return None
    if isinstance(value, bool):
        raise _error(path, 'must be a number, got %r' % (value,))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _error(path, 'must be a number, got %r' % (value,))
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise _error(path, 'must be a finite number >= 0, got %r' % (value,))
    return number


def _text(value, path, required=True):
    if value is None or value == '':
        if required:
            raise _error(path, 'is missing')
        return None
    if not isinstance(value, str):
        raise _error(path, 'must be a string, got %r' % (value,))
    return value


def _sha256(value, path, required=True):
    text = _text(value, path, required)
    if text is None:
        return None
    text = text.strip().lower()
    if not _SHA256_RE.match(text):
        raise _error(path, 'must be a SHA-256 as 64 hex digits, got %r' % value)
    return text


def _dict(value, path):
    """None for an absent part (None, False, {}, '' - ansible-core 2.16 renders a None template as '' - or a skipped
    task's result), else the dict; anything else is an error."""
    if value is None or value is False or value == {} or value == '' or (isinstance(value, dict) and value.get('skipped') is True):
        return None
    if not isinstance(value, dict):
        raise _error(path, 'must be a dict, got %r' % (value,))
    return value


def _snapshot(value):
    data = _dict(value, 'snapshot')
    if data is None:
        return None
    path = _text(data.get('path') or data.get('dest'), 'snapshot.path', required=False)
    name = (_text(data.get('name') or data.get('file'), 'snapshot.name', required=False)
            or (os.path.basename(path) if path else None))
    if not name:
        raise _error('snapshot.name', 'is missing (give name or path)')
    healthy = data.get('cluster_healthy')
    if isinstance(healthy, str) and healthy.lower() in ('true', 'false'):
        healthy = healthy.lower() == 'true'
    if healthy is not None and not isinstance(healthy, bool):
        raise _error('snapshot.cluster_healthy', 'must be true or false, got %r' % (healthy,))
    return {
        'name': name,
        'path': path,
        'size': _count(data.get('size'), 'snapshot.size'),
        'sha256': _sha256(data.get('sha256'), 'snapshot.sha256'),
        'revision': _count(data.get('revision'), 'snapshot.revision', required=False),
        'total_key': _count(data.get('total_key'), 'snapshot.total_key', required=False),
        'etcd_version': _text(data.get('etcd_version'), 'snapshot.etcd_version', required=False),
        'cluster_id': _text(data.get('cluster_id'), 'snapshot.cluster_id', required=False),
        'member': _text(data.get('member') or data.get('member_name'), 'snapshot.member', required=False),
        'cluster_healthy': healthy,
        'node': _text(data.get('node'), 'snapshot.node', required=False),
    }


def _encrypted(value):
    data = _dict(value, 'encrypted')
    if data is None:
        return None
    return {'sha256': _sha256(data.get('sha256') or data.get('encrypted_sha256'), 'encrypted.sha256'),
            'size': _count(_first(data, 'size', 'encrypted_size'), 'encrypted.size', required=False)}


def _first(data, *keys):
    """The value of the first key of data that is set (not None)."""
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def _compression(value, snapshot):
    data = _dict(value, 'compression')
    if data is None or data.get('compressed') is False:
        return None
    size = _count(_first(data, 'compressed_size', 'size'), 'compression.size', required=False)
    ratio = _number(_first(data, 'ratio', 'compression_ratio'), 'compression.ratio', required=False)
    if ratio is None:
        if size is None or snapshot is None:
            raise _error('compression', 'needs ratio, or size (compressed bytes) together with snapshot.size')
        if size == 0:
            raise _error('compression.size', 'is 0: a compressed snapshot is never empty')
        ratio = float(snapshot['size']) / size
    return {'algorithm': _text(data.get('algorithm'), 'compression.algorithm', required=False) or 'zstd',
            'size': size, 'ratio': round(ratio, 2)}


def _uploaded(value):
    if value is None or value == '':
        return None
    if not isinstance(value, list):
        raise _error('uploaded', 'must be a list of {bucket, key, size, sha256}, got %r' % (value,))
    objects = []
    for index, item in enumerate(value):
        path = 'uploaded[%d]' % index
        if isinstance(item, dict) and item.get('skipped') is True:
            continue
        if not isinstance(item, dict):
            raise _error(path, 'must be a dict {bucket, key, size, sha256}, got %r' % (item,))
        objects.append({'bucket': _text(item.get('bucket'), path + '.bucket'),
                        'key': _text(item.get('key'), path + '.key'),
                        'size': _count(item.get('size'), path + '.size'),
                        'sha256': _sha256(item.get('sha256'), path + '.sha256')})
    return objects


def _backup_ids(value, path):
    """Backup ids from a list of strings or of dicts with ``id`` (what the retention planner returns)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _error(path, 'must be a list of backup ids, got %r' % (value,))
    ids = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            item = item.get('id')
        ids.append(_text(item, '%s[%d]' % (path, index)))
    return ids


def _retention(value):
    data = _dict(value, 'retention')
    if data is None:
        return {}
    result = {}
    for destination in sorted(data):
        entry = data[destination]
        path = 'retention.%s' % destination
        if entry is None or entry == '' or (isinstance(entry, dict) and entry.get('skipped') is True):
            continue
        if not isinstance(entry, dict):
            raise _error(path, 'must be a dict {kept, pruned}, got %r' % (entry,))
        kept = entry.get('kept', entry.get('keep'))
        pruned = entry.get('pruned', entry.get('prune'))
        result[str(destination)] = {'kept': _backup_ids(kept, path + '.kept'),
                                    'pruned': _backup_ids(pruned, path + '.pruned')}
    return result


def _secrets(value):
    data = _dict(value, 'secrets')
    if data is None:
        return None
    counts = dict((key, _count(data.get(key), 'secrets.' + key, required=False)) for key in SECRETS_KEYS)
    error = _text(data.get('error'), 'secrets.error', required=False)
    if all(count is None for count in counts.values()) and error is None:
        raise _error('secrets', 'holds none of %s, nor an error' % ', '.join(SECRETS_KEYS))
    total, plaintext = counts['secrets_total'], counts['secrets_plaintext']
    if total is not None and plaintext is not None and plaintext > total:
        raise _error('secrets.secrets_plaintext', 'is %d, more than secrets_total %d' % (plaintext, total))
    providers = data.get('encryption_providers') or []
    if not isinstance(providers, list):
        raise _error('secrets.encryption_providers', 'must be a list of provider names, got %r' % (providers,))
    counts['encryption_providers'] = [_text(item, 'secrets.encryption_providers[%d]' % index)
                                      for index, item in enumerate(providers)]
    counts['error'] = error
    return counts


def _failure(value, outcome):
    data = _dict(value, 'failure')
    if outcome == 'success':
        if data is not None:
            raise _error('failure', 'is given but the outcome is success')
        return None
    data = data or {}
    return {'step': _text(data.get('step'), 'failure.step', required=False),
            'host': _text(data.get('host'), 'failure.host', required=False),
            'message': _text(data.get('message') or data.get('msg'), 'failure.message', required=False)
            or 'the run failed; it passed no details'}


def _pick(data, key, given):
    """The explicit argument, or the value in data; both given and different is an error."""
    value = data.get(key)
    if given is None:
        return value
    if value not in (None, '') and value != given:
        raise _error(key, 'is %r in the report but %r was given' % (value, given))
    return given


def build_report(data=None, cluster=None, outcome=None, now=None):
    """Validate and normalise what a run gathered into the report (``format: 1``, see the module docstring).

    ``data`` holds the report's keys as the role gathered them: numbers may be strings, times Unix seconds or
    ISO strings, ``snapshot`` may be the whole etcd_snapshot result, ``retention`` entries the retention
    planner's ``keep``/``prune`` lists. ``cluster``/``outcome`` given here must agree with data's. ``finished``
    defaults to ``now`` (Unix seconds, default the current time); ``duration_seconds`` to finished - started.
    Raises EtcdModuleError naming the field for a value that is wrong, and for an unknown key.
    """
    data = dict(data or {})
    unknown = sorted(key for key in data if key not in REPORT_KEYS)
    if unknown:
        raise _error(', '.join(unknown), 'is not a key of the report (known: %s)' % ', '.join(REPORT_KEYS))
    if data.get('format') not in (None, REPORT_FORMAT, str(REPORT_FORMAT)):
        raise _error('format', 'is %r; this collection writes and reads format %d' % (data['format'], REPORT_FORMAT))
    cluster = _text(_pick(data, 'cluster', cluster), 'cluster')
    outcome = _pick(data, 'outcome', outcome)
    if outcome not in OUTCOMES:
        raise _error('outcome', 'must be one of %s, got %r' % (', '.join(OUTCOMES), outcome))
    now = time.time() if now is None else _as_epoch(now, 'now')
    started = _as_epoch(data.get('started'), 'started')
    finished = _as_epoch(data.get('finished'), 'finished')
    finished = now if finished is None else finished
    duration = _number(data.get('duration_seconds'), 'duration_seconds', required=False)
    if duration is None and started is not None:
        if finished < started:
            raise _error('finished', 'is %s, before started %s' % (_iso(finished), _iso(started)))
        duration = finished - started
    snapshot = _snapshot(data.get('snapshot'))
    return {
        'format': REPORT_FORMAT,
        'cluster': cluster,
        'outcome': outcome,
        'started': None if started is None else _iso(started),
        'finished': _iso(finished),
        'duration_seconds': None if duration is None else round(duration, 3),
        'snapshot': snapshot,
        'metadata': _text(data.get('metadata'), 'metadata', required=False),
        'archive': _text(data.get('archive'), 'archive', required=False),
        'encrypted': _encrypted(data.get('encrypted')),
        'compression': _compression(data.get('compression'), snapshot),
        'uploaded': _uploaded(data.get('uploaded')),
        'retention': _retention(data.get('retention')),
        'secrets': _secrets(data.get('secrets')),
        'failure': _failure(data.get('failure'), outcome),
    }


def summary_lines(report):
    """The short summary the role prints, one line per item of the report."""
    duration = report.get('duration_seconds')
    took = ' in %.1f s' % duration if duration is not None else ''
    lines = ['etcd backup of cluster %s: %s%s (finished %s)'
             % (report['cluster'], 'SUCCESS' if report['outcome'] == 'success' else 'FAILED', took, report['finished'])]
    failure = report.get('failure')
    if failure:
        where = ''
        if failure.get('step'):
            where += ' at step %s' % failure['step']
        if failure.get('host'):
            where += ' on %s' % failure['host']
        lines.append('failed%s: %s' % (where, failure['message']))
    snapshot = report.get('snapshot')
    if snapshot:
        details = ['%d bytes' % snapshot['size'], 'sha256 %s' % snapshot['sha256']]
        if snapshot.get('revision') is not None:
            details.append('revision %d' % snapshot['revision'])
        if snapshot.get('total_key') is not None:
            details.append('%d keys' % snapshot['total_key'])
        lines.append('snapshot: %s (%s)' % (snapshot['path'] or snapshot['name'], ', '.join(details)))
        source = []
        if snapshot.get('member'):
            source.append('member %s' % snapshot['member'])
        if snapshot.get('etcd_version'):
            source.append('etcd %s' % snapshot['etcd_version'])
        if snapshot.get('cluster_id'):
            source.append('cluster %s' % snapshot['cluster_id'])
        if snapshot.get('node'):
            source.append('staged on %s' % snapshot['node'])
        if snapshot.get('cluster_healthy') is False:
            source.append('cluster UNHEALTHY (forced)')
        if source:
            lines.append('taken from %s' % ', '.join(source))
    for key in ('metadata', 'archive'):
        if report.get(key):
            lines.append('%s: %s' % (key, report[key]))
    compression = report.get('compression')
    if compression:
        size = ', %d bytes' % compression['size'] if compression.get('size') is not None else ''
        lines.append('compressed with %s: ratio %.2f%s' % (compression['algorithm'], compression['ratio'], size))
    encrypted = report.get('encrypted')
    if encrypted:
        lines.append('encrypted with age: sha256 %s' % encrypted['sha256'])
    uploaded = report.get('uploaded')
    if uploaded is not None:
        if not uploaded:
            lines.append('uploaded: nothing')
        for item in uploaded:
            lines.append('uploaded: s3://%s/%s (%d bytes, sha256 %s)'
                         % (item['bucket'], item['key'], item['size'], item['sha256']))
    for destination, result in sorted((report.get('retention') or {}).items()):
        pruned = result['pruned']
        lines.append('retention %s: kept %d, pruned %d%s' % (
            destination, len(result['kept']), len(pruned), (' (%s)' % ', '.join(pruned)) if pruned else ''))
    secrets = report.get('secrets')
    if secrets:
        lines.append(_secrets_line(secrets))
    return lines


def _secrets_line(secrets):
    plaintext, total = secrets.get('secrets_plaintext'), secrets.get('secrets_total')
    if plaintext is None and total is None:
        return 'Secrets: not counted: %s' % secrets.get('error')
    of_total = ' of %d' % total if total is not None else ''
    if plaintext is None:
        return 'Secrets: %s in the snapshot' % ('%d' % total if total is not None else 'counted')
    if plaintext == 0 and total == 0:
        return 'Secrets: the snapshot holds none'
    if plaintext == 0:
        return 'Secrets: none of%s stored in plain text; the API server encrypts them at rest' % (
            ' the %d' % total if total is not None else ' them')
    return ('Secrets: %d%s are stored in PLAIN TEXT in this snapshot (anyone with the file can read them); '
            'enable encryption at rest: %s' % (plaintext, of_total, ENCRYPTION_AT_REST_URL))


# ---- metrics -----------------------------------------------------------------------------------------

def escape_label_value(value):
    """The text exposition format's label value escapes: backslash, double quote, line feed."""
    return value.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _escape_help(text):
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def _parse_labels(text, position):
    """Parse ``{name="value",...}`` from text[position] == '{'; returns (labels, position after '}')."""
    labels = {}
    position += 1
    while True:
        while position < len(text) and text[position] in ' \t':
            position += 1
        if position < len(text) and text[position] == '}':
            return labels, position + 1
        match = _LABEL_NAME_RE.match(text, position)
        if not match:
            raise ValueError('label name expected at %d' % position)
        name = match.group(0)
        position = match.end()
        while position < len(text) and text[position] in ' \t':
            position += 1
        if text[position:position + 1] != '=':
            raise ValueError('= expected after label %s' % name)
        position += 1
        while position < len(text) and text[position] in ' \t':
            position += 1
        if text[position:position + 1] != '"':
            raise ValueError('a quoted value expected for label %s' % name)
        position += 1
        value = []
        while True:
            if position >= len(text):
                raise ValueError('unterminated label value')
            char = text[position]
            if char == '\\':
                escaped = text[position + 1:position + 2]
                if escaped not in ('\\', '"', 'n'):
                    raise ValueError('bad escape \\%s' % escaped)
                value.append('\n' if escaped == 'n' else escaped)
                position += 2
            elif char == '"':
                position += 1
                break
            elif char == '\n':
                raise ValueError('line feed in label value')
            else:
                value.append(char)
                position += 1
        if name in labels:
            raise ValueError('label %s given twice' % name)
        labels[name] = ''.join(value)
        while position < len(text) and text[position] in ' \t':
            position += 1
        if text[position:position + 1] == ',':
            position += 1
        elif text[position:position + 1] != '}':
            raise ValueError('"," or "}" expected at %d' % position)


def parse_sample(line):
    """(name, labels, value text) of one sample line; ValueError when it is not one."""
    match = _NAME_RE.match(line)
    if not match:
        raise ValueError('metric name expected')
    name, position = match.group(0), match.end()
    labels = {}
    if line[position:position + 1] == '{':
        labels, position = _parse_labels(line, position)
    rest = line[position:].split()
    if not rest or len(rest) > 2 or line[position:position + 1] not in (' ', '\t'):
        raise ValueError('value expected after the name and labels')
    value = rest[0]
    float(value)  # ValueError when it is no number
    return name, labels, value


def parse_metrics(text):
    """This collection's series in a previous metrics file: {metric name: {cluster: value text}}.

    Lenient on purpose: a missing file (None), another program's series, comments, and any line that does
    not parse are ignored, so a garbled file never fails a backup; only series of METRIC_NAMES with exactly
    a ``cluster`` label and a finite value are taken (the last one wins when a series repeats).
    """
    series = dict((name, {}) for name in METRIC_NAMES)
    if not text:
        return series
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    for line in text.split('\n'):
        line = line.strip()
        if not line or line.startswith('#') or '\ufffd' in line:
            continue
        try:
            name, labels, value = parse_sample(line)
        except (ValueError, IndexError):
            continue
        number = float(value)
        finite = not (math.isnan(number) or math.isinf(number))
        if name in series and list(labels) == [LABEL] and labels[LABEL] and finite:
            series[name][labels[LABEL]] = value
    return series


def format_value(value):
    """A sample value: integers without a fraction, other numbers as Python's shortest exact repr."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 63:
        value = int(value)
    if isinstance(value, int):
        return '%d' % value
    return repr(float(value))


def _previous_count(text):
    if text is None:
        return 0
    number = float(text)
    return int(number) if number >= 0 else 0


def cluster_values(cluster, outcome, now, report, previous):
    """{metric name: value text} of this run for the cluster; ``previous`` is {name: value text} of the
    cluster in the previous file. A metric without a value is left out."""
    report = report or {}
    success = outcome == 'success'
    values = {}
    if success:
        snapshot = report.get('snapshot') or {}
        secrets = report.get('secrets') or {}
        uploaded = report.get('uploaded')
        latest = {
            'kubeops_etcd_backup_last_success_timestamp_seconds': now,
            'kubeops_etcd_backup_last_size_bytes': snapshot.get('size'),
            'kubeops_etcd_backup_last_revision': snapshot.get('revision'),
            'kubeops_etcd_backup_last_total_keys': snapshot.get('total_key'),
            'kubeops_etcd_backup_plaintext_secrets': secrets.get('secrets_plaintext'),
            'kubeops_etcd_backup_uploaded': None if uploaded is None else int(bool(uploaded)),
        }
        for name, value in latest.items():
            if value is not None:
                values[name] = format_value(value)
    else:
        for name, _type, _help, kept_on_failure in METRICS:
            if kept_on_failure and previous.get(name) is not None:
                values[name] = previous[name]
        values.setdefault('kubeops_etcd_backup_last_success_timestamp_seconds', '0')
    values['kubeops_etcd_backup_last_attempt_timestamp_seconds'] = format_value(now)
    if report.get('duration_seconds') is not None:
        values['kubeops_etcd_backup_last_duration_seconds'] = format_value(report['duration_seconds'])
    values['kubeops_etcd_backup_success'] = '1' if success else '0'
    failures = _previous_count(previous.get('kubeops_etcd_backup_failures_total'))
    values['kubeops_etcd_backup_failures_total'] = format_value(failures if success else failures + 1)
    return values


def render_metrics(cluster, outcome, now, report, previous_text):
    """The metrics file after this run: the cluster's series from this run (see the module docstring), every
    other cluster's series from ``previous_text`` as they were. ``now`` is the attempt's Unix time (seconds);
    ``report`` what build_report returned (or None); ``previous_text`` the file's text, or None when missing.
    Families in a fixed order, each with HELP and TYPE; series sorted by cluster; the text ends with a newline.
    """
    if not isinstance(cluster, str) or not cluster:
        raise _error('cluster', 'must be a non-empty string, got %r' % (cluster,))
    if outcome not in OUTCOMES:
        raise _error('outcome', 'must be one of %s, got %r' % (', '.join(OUTCOMES), outcome))
    now = _as_epoch(now, 'now')
    series = parse_metrics(previous_text)
    # Every series of the cluster comes from this run: one this run has no value for (say, no object storage
    # any more) must not survive from an older backup.
    previous = dict((name, samples.pop(cluster, None)) for name, samples in series.items())
    for name, value in cluster_values(cluster, outcome, now, report, previous).items():
        series[name][cluster] = value
    lines = []
    for name, metric_type, help_text, _kept in METRICS:
        samples = series[name]
        if not samples:
            continue
        lines.append('# HELP %s %s' % (name, _escape_help(help_text)))
        lines.append('# TYPE %s %s' % (name, metric_type))
        for label in sorted(samples):
            lines.append('%s{%s="%s"} %s' % (name, LABEL, escape_label_value(label), samples[label]))
    return '\n'.join(lines) + '\n'
