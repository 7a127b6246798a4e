# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import math
import os
import re

import pytest
import yaml

from ansible_collections.kubeops.etcd.plugins.module_utils import backup_report
from ansible_collections.kubeops.etcd.plugins.module_utils.backup_report import (
    build_report, parse_metrics, parse_sample, render_metrics, summary_lines)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError

SHA_A = 'a' * 64
SHA_B = '0123456789abcdef' * 4
T0 = 1795310100.0  # 2026-11-22T01:15:00Z
P = 'kubeops_etcd_backup_'

# ---- a strict parser of the text exposition format, written independently of the module's lenient one ----

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(%s(?:,%s)*)?\})? (\S+)$' % (_LABEL, _LABEL))
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def _unescape(value):
    return re.sub(r'\\(.)', lambda m: '\n' if m.group(1) == 'n' else m.group(1), value)


def strict_parse(text):
    """{name: {cluster: float}}; fails on anything the Prometheus text format (as node_exporter reads it) refuses:
    a sample before its family's HELP and TYPE, a family split in two, a repeated series, a bad line, no final newline."""
    assert text.endswith('\n'), 'no newline at the end'
    families, help_seen, type_seen, done = {}, set(), {}, set()
    current = None
    for number, line in enumerate(text[:-1].split('\n'), 1):
        if line.startswith('# HELP '):
            name = line.split(' ')[2]
            assert name not in help_seen and name not in done, 'line %d: second HELP of %s' % (number, name)
            help_seen.add(name)
            continue
        if line.startswith('# TYPE '):
            _hash, _kw, name, kind = line.split(' ')
            assert kind in ('gauge', 'counter') and name in help_seen and name not in type_seen, line
            type_seen[name] = kind
            if current and current != name:
                done.add(current)
            current = name
            families[name] = {}
            continue
        match = _SAMPLE_RE.match(line)
        assert match, 'line %d is not a sample: %r' % (number, line)
        name, labels, value = match.groups()
        assert name == current and name in type_seen, 'line %d: %s outside its family' % (number, name)
        labels = dict((key, _unescape(val)) for key, val in _LABEL_RE.findall(labels or ''))
        assert list(labels) == ['cluster'], line
        assert labels['cluster'] not in families[name], 'line %d: repeated series' % number
        families[name][labels['cluster']] = float(value)
        if type_seen[name] == 'counter':
            assert name.endswith('_total') and float(value) >= 0
    return families


def values_of(text, cluster):
    return dict((name[len(P):], samples[cluster]) for name, samples in strict_parse(text).items() if cluster in samples)


# What the role has at the end of a run: the results of the collection's modules as they are.
SNAPSHOT_RESULT = {'changed': True, 'dest': '/var/lib/kubeops-etcd/backup/prod-20261122T011500Z.db',
                   'path': '/var/backups/etcd/prod-20261122T011500Z-rev4821.db', 'file': 'prod-20261122T011500Z.db',
                   'size': '24969248', 'sha256': SHA_A.upper(), 'revision': '4821', 'total_key': 1532, 'hash': 1234,
                   'etcd_version': '3.5.16', 'cluster_id': 'cdf818194e3a8c32', 'member_name': 'cp1', 'node': 'cp1',
                   'cluster_healthy': 'True', 'members': [{'name': 'cp1'}]}
CRYPT_RESULT = {'changed': True, 'mode': 'encrypt', 'dest': '/x.db.zst.age', 'plaintext_sha256': SHA_A,
                'plaintext_size': 24969248, 'encrypted_sha256': SHA_B, 'encrypted_size': 7000000, 'compressed': True,
                'compressed_size': 6242312, 'compression_ratio': 4.0, 'recipients_count': 2}
PUT_RESULT = {'changed': True, 'bucket': 'etcd', 'key': 'prod/prod-20261122T011500Z-rev4821.db.zst.age',
              'size': '7000000', 'sha256': SHA_B, 'etag': '"x-2"', 'verified': True, 'item': {'dest': '/x'}}
PRUNE_RESULT = {'changed': True, 'kept': [{'id': 'prod-20261122T011500Z', 'reasons': ['newest verified backup']}],
                'pruned': [{'id': 'prod-20261101T011500Z', 'files': ['a', 'b']}]}


def full_input(**more):
    data = {
        'started': T0,
        'snapshot': SNAPSHOT_RESULT,
        'metadata': '/var/backups/etcd/prod-20261122T011500Z-rev4821.db.meta.json',
        'archive': '/var/backups/etcd/prod-20261122T011500Z-rev4821-pki.tar.gz',
        'encrypted': CRYPT_RESULT,
        'compression': CRYPT_RESULT,
        'uploaded': [PUT_RESULT, {'skipped': True, 'changed': False, 'item': {'dest': '/y'}}],
        'retention': {'object_store': PRUNE_RESULT, 'ops_box': {'kept': ['prod-20261122T011500Z'], 'pruned': []},
                      'node': None, 'elsewhere': {'skipped': True, 'changed': False}},
        'secrets': {'secrets_total': '42', 'secrets_plaintext': 40, 'secrets_encrypted': 2,
                    'encryption_providers': ['aescbc']},
    }
    data.update(more)
    return data


# ---- build_report --------------------------------------------------------------------------------------

def test_a_success_report_is_normalised_to_the_documented_schema():
    report = build_report(full_input(), cluster='prod', outcome='success', now=T0 + 12.4)
    assert report == {
        'format': 1,
        'cluster': 'prod',
        'outcome': 'success',
        'started': '2026-11-22T01:15:00Z',
        'finished': '2026-11-22T01:15:12Z',
        'duration_seconds': 12.4,
        'snapshot': {'name': 'prod-20261122T011500Z.db', 'path': '/var/backups/etcd/prod-20261122T011500Z-rev4821.db',
                     'size': 24969248, 'sha256': SHA_A, 'revision': 4821, 'total_key': 1532, 'etcd_version': '3.5.16',
                     'cluster_id': 'cdf818194e3a8c32', 'member': 'cp1', 'cluster_healthy': True, 'node': 'cp1'},
        'metadata': '/var/backups/etcd/prod-20261122T011500Z-rev4821.db.meta.json',
        'archive': '/var/backups/etcd/prod-20261122T011500Z-rev4821-pki.tar.gz',
        'encrypted': {'sha256': SHA_B, 'size': 7000000},
        'compression': {'algorithm': 'zstd', 'size': 6242312, 'ratio': 4.0},
        'uploaded': [{'bucket': 'etcd', 'key': 'prod/prod-20261122T011500Z-rev4821.db.zst.age', 'size': 7000000,
                      'sha256': SHA_B}],
        'retention': {'object_store': {'kept': ['prod-20261122T011500Z'], 'pruned': ['prod-20261101T011500Z']},
                      'ops_box': {'kept': ['prod-20261122T011500Z'], 'pruned': []}},
        'secrets': {'secrets_total': 42, 'secrets_plaintext': 40, 'secrets_encrypted': 2,
                    'encryption_providers': ['aescbc'], 'error': None},
        'failure': None,
    }
    assert list(report) == list(backup_report.REPORT_KEYS)
    assert json.loads(json.dumps(report)) == report


def test_a_minimal_report_has_every_key_with_null_values_and_finishes_now():
    report = build_report({}, cluster='prod', outcome='success', now=T0)
    assert report == {'format': 1, 'cluster': 'prod', 'outcome': 'success', 'started': None,
                      'finished': '2026-11-22T01:15:00Z', 'duration_seconds': None, 'snapshot': None,
                      'metadata': None, 'archive': None, 'encrypted': None,
                      'compression': None, 'uploaded': None, 'retention': {}, 'secrets': None, 'failure': None}


def test_times_are_accepted_as_iso_strings_and_numeric_strings():
    report = build_report({'started': '2026-11-22T01:15:00Z', 'finished': str(T0 + 90.25)}, cluster='c',
                          outcome='success', now=0)
    assert (report['started'], report['finished'], report['duration_seconds']) == (
        '2026-11-22T01:15:00Z', '2026-11-22T01:16:30Z', 90.25)
    assert build_report({'started': '2026-11-22T01:15:00+00:00', 'duration_seconds': '3.5'}, cluster='c',
                        outcome='success', now=T0)['duration_seconds'] == 3.5


def test_a_failure_report_carries_the_failure_and_defaults_its_message():
    report = build_report({'started': T0, 'failure': {'step': 'upload', 'host': 'cp1', 'message': 'bucket not found'}},
                          cluster='prod', outcome='failure', now=T0 + 3)
    assert report['failure'] == {'step': 'upload', 'host': 'cp1', 'message': 'bucket not found'}
    assert report['outcome'] == 'failure' and report['duration_seconds'] == 3.0
    bare = build_report({}, cluster='prod', outcome='failure', now=T0)
    assert bare['failure'] == {'step': None, 'host': None, 'message': 'the run failed; it passed no details'}


def test_cluster_and_outcome_may_come_from_the_data_but_must_agree_with_the_arguments():
    assert build_report({'cluster': 'x', 'outcome': 'failure'}, now=T0)['cluster'] == 'x'
    with pytest.raises(EtcdModuleError, match=r"cluster is 'x' in the report but 'y' was given"):
        build_report({'cluster': 'x'}, cluster='y', outcome='success', now=T0)


@pytest.mark.parametrize('data, field, problem', [
    ({'snaphsot': {}}, 'snaphsot', 'is not a key of the report'),
    ({'format': 2}, 'format', 'this collection writes and reads format 1'),
    ({'snapshot': {'name': 'a.db', 'size': -1, 'sha256': SHA_A}}, 'snapshot.size', 'non-negative integer'),
    ({'snapshot': {'name': 'a.db', 'size': True, 'sha256': SHA_A}}, 'snapshot.size', 'non-negative integer'),
    ({'snapshot': {'name': 'a.db', 'size': 1, 'sha256': 'abc'}}, 'snapshot.sha256', '64 hex digits'),
    ({'snapshot': {'size': 1, 'sha256': SHA_A}}, 'snapshot.name', 'is missing'),
    ({'snapshot': 'a.db'}, 'snapshot', 'must be a dict'),
    ({'uploaded': [{'bucket': 'b', 'key': 'k', 'size': 1}]}, r'uploaded\[0\].sha256', 'is missing'),
    ({'uploaded': {'bucket': 'b'}}, 'uploaded', 'must be a list'),
    ({'secrets': {'secrets_total': 1, 'secrets_plaintext': 2}}, 'secrets.secrets_plaintext', 'more than secrets_total'),
    ({'secrets': {'other': 1}}, 'secrets', 'holds none of'),
    ({'snapshot': {'name': 'a.db', 'size': 1, 'sha256': SHA_A, 'cluster_healthy': 'maybe'}}, 'snapshot.cluster_healthy',
     'must be true or false'),
    ({'compression': {'algorithm': 'zstd'}}, 'compression', 'needs ratio'),
    ({'retention': {'node': ['a']}}, 'retention.node', 'must be a dict'),
    ({'started': 'yesterday'}, 'started', 'ISO 8601'),
    ({'started': '2026-02-30T00:00:00Z'}, 'started', 'not a valid date'),
    ({'started': T0 + 10, 'finished': T0}, 'finished', 'before started'),
    ({'failure': {'message': 'x'}, 'outcome': 'success'}, 'failure', 'outcome is success'),
    ({'outcome': 'ok'}, 'outcome', 'must be one of success, failure'),
])
def test_a_wrong_value_is_refused_naming_the_field(data, field, problem):
    with pytest.raises(EtcdModuleError) as caught:
        build_report(data, cluster='prod', outcome=None if 'outcome' in data else 'success', now=T0)
    assert re.match(r'Backup report: %s .*%s' % (field, re.escape(problem)), caught.value.msg), caught.value.msg
    assert 'fix the value it passes' in caught.value.msg


def test_secrets_that_could_not_be_counted_keep_the_reason_and_no_metric():
    report = build_report({'secrets': {'error': 'cannot scan x: damaged'}}, cluster='c', outcome='success', now=T0)
    assert report['secrets'] == {'secrets_total': None, 'secrets_plaintext': None, 'secrets_encrypted': None,
                                 'encryption_providers': [], 'error': 'cannot scan x: damaged'}
    assert summary_lines(report)[-1] == 'Secrets: not counted: cannot scan x: damaged'
    assert P + 'plaintext_secrets' not in render_metrics('c', 'success', T0, report, None)


def test_an_uncompressed_crypt_result_means_no_compression():
    report = build_report({'encrypted': dict(CRYPT_RESULT, compressed=False, compression_ratio=None),
                           'compression': dict(CRYPT_RESULT, compressed=False, compression_ratio=None)},
                          cluster='c', outcome='success', now=T0)
    assert report['compression'] is None and report['encrypted'] == {'sha256': SHA_B, 'size': 7000000}


def test_an_unhealthy_forced_snapshot_is_said_in_the_summary():
    report = build_report({'snapshot': {'name': 'a.db', 'size': 1, 'sha256': SHA_A, 'cluster_healthy': False}},
                          cluster='c', outcome='success', now=T0)
    assert summary_lines(report)[2] == 'taken from cluster UNHEALTHY (forced)'


def test_a_compression_ratio_given_is_kept():
    report = build_report({'compression': {'ratio': '2.456'}}, cluster='c', outcome='success', now=T0)
    assert report['compression'] == {'algorithm': 'zstd', 'size': None, 'ratio': 2.46}


# ---- summary_lines -------------------------------------------------------------------------------------

def test_the_summary_of_a_success_names_every_part():
    report = build_report(full_input(), cluster='prod', outcome='success', now=T0 + 12.4)
    assert summary_lines(report) == [
        'etcd backup of cluster prod: SUCCESS in 12.4 s (finished 2026-11-22T01:15:12Z)',
        'snapshot: /var/backups/etcd/prod-20261122T011500Z-rev4821.db (24969248 bytes, sha256 %s, revision 4821, '
        '1532 keys)' % SHA_A,
        'taken from member cp1, etcd 3.5.16, cluster cdf818194e3a8c32, staged on cp1',
        'metadata: /var/backups/etcd/prod-20261122T011500Z-rev4821.db.meta.json',
        'archive: /var/backups/etcd/prod-20261122T011500Z-rev4821-pki.tar.gz',
        'compressed with zstd: ratio 4.00, 6242312 bytes',
        'encrypted with age: sha256 %s' % SHA_B,
        'uploaded: s3://etcd/prod/prod-20261122T011500Z-rev4821.db.zst.age (7000000 bytes, sha256 %s)' % SHA_B,
        'retention object_store: kept 1, pruned 1 (prod-20261101T011500Z)',
        'retention ops_box: kept 1, pruned 0',
        'Secrets: 40 of 42 are stored in PLAIN TEXT in this snapshot (anyone with the file can read them); '
        'enable encryption at rest: https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/',
    ]


def test_the_summary_of_a_failure_says_where_it_failed():
    report = build_report({'started': T0, 'failure': {'step': 'snapshot', 'host': 'cp2', 'message': 'etcd unhealthy'}},
                          cluster='prod', outcome='failure', now=T0 + 1)
    assert summary_lines(report) == ['etcd backup of cluster prod: FAILED in 1.0 s (finished 2026-11-22T01:15:01Z)',
                                     'failed at step snapshot on cp2: etcd unhealthy']


def test_the_summary_says_when_every_secret_is_encrypted_at_rest():
    report = build_report({'secrets': {'secrets_total': 5, 'secrets_plaintext': 0}}, cluster='c', outcome='success',
                          now=T0)
    assert summary_lines(report)[-1] == 'Secrets: none of the 5 stored in plain text; the API server encrypts them at rest'
    report['secrets'] = {'secrets_total': 0, 'secrets_plaintext': 0, 'secrets_encrypted': 0}
    assert summary_lines(report)[-1] == 'Secrets: the snapshot holds none'


# ---- render_metrics ------------------------------------------------------------------------------------

def success(now, previous=None, cluster='prod', **more):
    report = build_report(full_input(**more), cluster=cluster, outcome='success', now=now)
    return render_metrics(cluster, 'success', now, report, previous)


def failure(now, previous=None, cluster='prod'):
    report = build_report({'started': now - 2, 'failure': {'step': 'snapshot', 'message': 'x'}}, cluster=cluster,
                          outcome='failure', now=now)
    return render_metrics(cluster, 'failure', now, report, previous)


def test_a_first_success_records_every_metric_of_the_backup():
    text = success(T0 + 12.5)
    assert values_of(text, 'prod') == {
        'last_success_timestamp_seconds': T0 + 12.5, 'last_attempt_timestamp_seconds': T0 + 12.5,
        'last_duration_seconds': 12.5, 'last_size_bytes': 24969248, 'last_revision': 4821, 'last_total_keys': 1532,
        'success': 1, 'failures_total': 0, 'plaintext_secrets': 40, 'uploaded': 1}
    assert '# TYPE kubeops_etcd_backup_failures_total counter\n' in text
    assert '# TYPE kubeops_etcd_backup_last_success_timestamp_seconds gauge\n' in text
    assert 'kubeops_etcd_backup_last_size_bytes{cluster="prod"} 24969248\n' in text


def test_success_failure_success_keeps_the_last_success_and_counts_failures():
    first = success(T0)
    failed = failure(T0 + 3600, first)
    assert values_of(failed, 'prod') == {
        'last_success_timestamp_seconds': T0, 'last_attempt_timestamp_seconds': T0 + 3600,
        'last_duration_seconds': 2, 'last_size_bytes': 24969248, 'last_revision': 4821, 'last_total_keys': 1532,
        'success': 0, 'failures_total': 1, 'plaintext_secrets': 40, 'uploaded': 1}
    failed_again = failure(T0 + 7200, failed)
    assert values_of(failed_again, 'prod')['failures_total'] == 2
    assert values_of(failed_again, 'prod')['last_success_timestamp_seconds'] == T0
    recovered = success(T0 + 10800, failed_again, snapshot={'name': 'b.db', 'size': 100, 'sha256': SHA_B,
                                                            'revision': 9000})
    assert values_of(recovered, 'prod') == {
        'last_success_timestamp_seconds': T0 + 10800, 'last_attempt_timestamp_seconds': T0 + 10800,
        'last_duration_seconds': 10800, 'last_size_bytes': 100, 'last_revision': 9000, 'success': 1,
        'failures_total': 2, 'plaintext_secrets': 40, 'uploaded': 1}


def test_a_cluster_that_never_succeeded_reports_last_success_zero():
    text = failure(T0)
    assert values_of(text, 'prod') == {'last_success_timestamp_seconds': 0, 'last_attempt_timestamp_seconds': T0,
                                       'last_duration_seconds': 2, 'success': 0, 'failures_total': 1}


def test_a_success_drops_series_it_has_no_value_for():
    first = success(T0)
    plain = render_metrics('prod', 'success', T0 + 60, build_report({}, cluster='prod', outcome='success', now=T0 + 60),
                           first)
    assert values_of(plain, 'prod') == {'last_success_timestamp_seconds': T0 + 60,
                                        'last_attempt_timestamp_seconds': T0 + 60, 'success': 1, 'failures_total': 0}
    assert P + 'uploaded' not in plain and P + 'plaintext_secrets' not in plain


def test_uploaded_is_zero_when_the_report_lists_no_uploaded_object():
    assert values_of(success(T0, uploaded=[]), 'prod')['uploaded'] == 0


def test_other_clusters_series_stay_exactly_as_they_were():
    other = failure(T0 + 150, success(T0 + 100, cluster='staging'), cluster='staging')
    both = success(T0 + 200, other, cluster='prod')
    lines = set(both.splitlines())
    for line in other.splitlines():
        assert line in lines
    assert values_of(both, 'staging') == values_of(other, 'staging')
    assert sorted(strict_parse(both)[P + 'success']) == ['prod', 'staging']
    # and back: a run of staging leaves prod's series alone
    again = failure(T0 + 210, both, cluster='staging')
    assert values_of(again, 'prod') == values_of(both, 'prod')
    assert values_of(again, 'staging')['failures_total'] == 2


def test_label_values_are_escaped_and_parsed_back():
    name = 'a "quoted" back\\slash\nnew line ü'
    text = success(T0, cluster=name)
    assert 'kubeops_etcd_backup_success{cluster="a \\"quoted\\" back\\\\slash\\nnew line ü"} 1\n' in text
    assert values_of(text, name)['success'] == 1
    assert parse_metrics(text)[P + 'success'] == {name: '1'}
    assert values_of(failure(T0 + 1, text, cluster=name), name)['last_success_timestamp_seconds'] == T0


def test_the_output_is_deterministic_families_in_fixed_order_series_sorted():
    text = success(T0, success(T0, cluster='zeta'), cluster='alpha')
    assert text == success(T0, success(T0, cluster='zeta'), cluster='alpha')
    names = [line.split(' ')[2] for line in text.splitlines() if line.startswith('# TYPE ')]
    assert names == list(backup_report.METRIC_NAMES)
    success_lines = [line for line in text.splitlines() if line.startswith(P + 'success{')]
    assert success_lines == ['%ssuccess{cluster="alpha"} 1' % P, '%ssuccess{cluster="zeta"} 1' % P]


GARBLED = [
    None,
    '',
    b'\x00\xff\xfe garbage \x89PNG\r\n',
    'not a metrics file at all\n{{{',
    # truncated mid-line, values that are no numbers, a negative and a NaN counter
    '%sfailures_total{cluster="prod"} NaN\n%slast_success_timestamp_seconds{cluster="prod"} abc\n'
    '%ssuccess{cluster="prod' % (P, P, P),
    '%sfailures_total{cluster="prod"} -4\n' % P,
    # series without the cluster label, with extra labels, from another program, a bad escape
    '%sfailures_total 7\n%sfailures_total{cluster="prod",x="y"} 7\nnode_foo{cluster="prod"} 1\n'
    '%sfailures_total{cluster="pr\\od"} 7\n' % (P, P, P),
]


@pytest.mark.parametrize('previous', GARBLED, ids=range(len(GARBLED)))
def test_a_missing_or_garbled_previous_file_starts_the_cluster_afresh(previous):
    text = failure(T0, previous)
    assert values_of(text, 'prod') == {'last_success_timestamp_seconds': 0, 'last_attempt_timestamp_seconds': T0,
                                       'last_duration_seconds': 2, 'success': 0, 'failures_total': 1}
    assert set(strict_parse(text)[P + 'success']) == {'prod'}


def test_readable_series_survive_among_garbled_lines():
    previous = ('garbage line\n%sfailures_total{cluster="prod"} 3\n\x00\x01\n'
                '%slast_success_timestamp_seconds{cluster="prod"} 1700000000.5 1700000000000\n'
                '%ssuccess{cluster="other"} 1\n' % (P, P, P))
    text = failure(T0, previous)
    assert values_of(text, 'prod')['failures_total'] == 4
    assert values_of(text, 'prod')['last_success_timestamp_seconds'] == 1700000000.5
    assert values_of(text, 'other') == {'success': 1}


def test_a_fractional_counter_in_the_previous_file_continues_from_its_integer_part():
    assert values_of(failure(T0, '%sfailures_total{cluster="prod"} 2.0\n' % P), 'prod')['failures_total'] == 3


@pytest.mark.parametrize('line', ['name', 'name{', 'name{a="1"}', 'name{a="1"}1', 'name{a=1} 1', 'name 1 2 3',
                                  '1name 1', 'name{a="1",a="2"} 1', 'name{a="x\\q"} 1', 'name x'])
def test_parse_sample_refuses_what_is_no_sample(line):
    with pytest.raises(ValueError):
        parse_sample(line)


def test_parse_sample_reads_escapes_spaces_and_timestamps():
    assert parse_sample('m{ a = "x\\"y" , b="z\\\\",} 1.5e3 123') == ('m', {'a': 'x"y', 'b': 'z\\'}, '1.5e3')
    assert parse_sample('m +Inf') == ('m', {}, '+Inf')


@pytest.mark.parametrize('cluster, outcome, problem', [('', 'success', 'cluster'), ('c', 'done', 'outcome')])
def test_render_metrics_refuses_an_empty_cluster_or_unknown_outcome(cluster, outcome, problem):
    with pytest.raises(EtcdModuleError, match='Backup report: %s ' % problem):
        render_metrics(cluster, outcome, T0, None, None)


def test_format_value_keeps_integers_integral_and_floats_exact():
    assert backup_report.format_value(3.0) == '3'
    assert backup_report.format_value(True) == '1'
    assert backup_report.format_value(1795310100.123456) == '1795310100.123456'
    assert float(backup_report.format_value(0.1)) == 0.1
    assert not math.isnan(float(backup_report.format_value(2 ** 70 * 1.0)))


# ---- docs/monitoring.md stays true ----------------------------------------------------------------------

MONITORING_DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'docs', 'monitoring.md')


def doc_block(after, language=''):
    """The first fenced block of docs/monitoring.md (```language) after the line ``after``."""
    with open(MONITORING_DOC) as handle:
        text = handle.read()
    start = text.index('```%s\n' % language, text.index(after)) + len('```%s\n' % language)
    return text[start:text.index('```\n', start)]


def test_the_sample_metrics_file_in_the_docs_is_what_render_metrics_writes():
    report = build_report({'started': 1795310100.0, 'snapshot': {'name': 'a.db', 'size': 24969248, 'sha256': SHA_A,
                                                                 'revision': 48213, 'total_key': 1532},
                           'uploaded': [PUT_RESULT], 'secrets': {'secrets_total': 42, 'secrets_plaintext': 40}},
                          cluster='prod-eu1', outcome='success', now=1795310112.4)
    assert doc_block('A file with one cluster after a successful run:') == render_metrics(
        'prod-eu1', 'success', 1795310112.4, report, None)


def test_the_alert_rules_in_the_docs_parse_and_use_only_metrics_the_module_writes():
    rules = yaml.safe_load(doc_block('## Alert rules', 'yaml'))
    alerts = dict((rule['alert'], rule) for group in rules['groups'] for rule in group['rules'])
    assert sorted(alerts) == ['EtcdBackupFailed', 'EtcdBackupMetricsMissing', 'EtcdBackupPlaintextSecrets',
                              'EtcdBackupStale', 'NodeTextfileScrapeError']
    for rule in alerts.values():
        assert set(rule) <= {'alert', 'expr', 'for', 'labels', 'annotations'} and rule['annotations']['summary']
        for name in re.findall(r'kubeops_etcd_backup_\w+', rule['expr'] + json.dumps(rule['annotations'])):
            assert name in backup_report.METRIC_NAMES, name
    assert alerts['EtcdBackupStale']['expr'] == (
        'time() - kubeops_etcd_backup_last_success_timestamp_seconds > 26 * 3600')
    assert alerts['EtcdBackupFailed']['expr'] == 'kubeops_etcd_backup_success == 0'
    assert alerts['EtcdBackupPlaintextSecrets']['labels']['severity'] == 'info'


def test_the_docs_list_every_metric_and_every_report_key():
    with open(MONITORING_DOC) as handle:
        text = handle.read()
    for name in backup_report.METRIC_NAMES:
        assert '| `%s` |' % name in text, name
    sample = json.loads(doc_block('## The JSON report', 'json'))
    assert sorted(sample) == sorted(backup_report.REPORT_KEYS)
    assert build_report(sample, now=T0) == sample
