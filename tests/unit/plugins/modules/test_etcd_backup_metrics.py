# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import threading
import types

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.backup_report import parse_metrics
from ansible_collections.kubeops.etcd.plugins.modules import etcd_backup_metrics

from unit_helpers import FakeModule, run_module

T0 = 1795310100.0  # 2026-11-22T01:15:00Z
SHA = 'c' * 64
P = 'kubeops_etcd_backup_'
SNAPSHOT = {'dest': '/var/backups/etcd/prod-20261122T011500Z-rev77.db', 'size': 4128, 'sha256': SHA, 'revision': 77,
            'total_key': 12}


@pytest.fixture
def clock(monkeypatch):
    """The module's clock: set ``clock.now``."""
    fake = types.SimpleNamespace(now=T0)
    monkeypatch.setattr(etcd_backup_metrics, 'time', types.SimpleNamespace(time=lambda: fake.now))
    return fake


@pytest.fixture
def textfile_dir(tmp_path):
    return str(tmp_path / 'var' / 'lib' / 'node_exporter' / 'textfile')


def run(args, check=False, diff=False):
    return run_module(etcd_backup_metrics, args, check=check, diff=diff)


def args(textfile_dir, outcome='success', now=T0, **more):
    """Module arguments; the report of a success started 10 s before ``now``, of a failure 3 s before."""
    result = {'textfile_dir': textfile_dir, 'cluster_name': 'prod', 'outcome': outcome,
              'report': {'started': now - 10, 'snapshot': SNAPSHOT} if outcome == 'success' else
              {'started': now - 3, 'failure': {'step': 'snapshot', 'host': 'cp1', 'message': 'etcd down'}}}
    result.update(more)
    return result


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path) as handle:
        return handle.read()


def values(text, cluster='prod'):
    return dict((name[len(P):], float(samples[cluster])) for name, samples in parse_metrics(text).items()
                if cluster in samples)


def test_a_success_writes_the_metrics_file_0644_in_a_new_0755_textfile_dir(clock, textfile_dir):
    ok, result = run(args(textfile_dir))
    assert ok, result
    path = os.path.join(textfile_dir, 'kubeops_etcd_backup.prom')
    assert result['changed'] is True
    assert (result['metrics_path'], result['report_path']) == (path, None)
    assert read(path) == result['metrics']
    assert mode(path) == 0o644
    for directory in (textfile_dir, os.path.dirname(textfile_dir), os.path.dirname(os.path.dirname(textfile_dir))):
        assert mode(directory) == 0o755, directory
    assert values(result['metrics']) == {
        'last_success_timestamp_seconds': T0, 'last_attempt_timestamp_seconds': T0, 'last_duration_seconds': 10,
        'last_size_bytes': 4128, 'last_revision': 77, 'last_total_keys': 12, 'success': 1, 'failures_total': 0}
    assert result['report']['snapshot']['name'] == 'prod-20261122T011500Z-rev77.db'
    assert result['summary'][0] == 'etcd backup of cluster prod: SUCCESS in 10.0 s (finished 2026-11-22T01:15:00Z)'
    assert os.listdir(textfile_dir) == ['kubeops_etcd_backup.prom']  # no temp file left behind


def test_success_failure_success_through_the_module(clock, textfile_dir):
    run(args(textfile_dir))
    clock.now = T0 + 3600
    ok, failed = run(args(textfile_dir, outcome='failure', now=clock.now))
    assert ok, failed
    assert values(failed['metrics']) == {
        'last_success_timestamp_seconds': T0, 'last_attempt_timestamp_seconds': T0 + 3600, 'last_duration_seconds': 3,
        'last_size_bytes': 4128, 'last_revision': 77, 'last_total_keys': 12, 'success': 0, 'failures_total': 1}
    assert failed['summary'][1] == 'failed at step snapshot on cp1: etcd down'
    clock.now = T0 + 7200
    ok, recovered = run(args(textfile_dir, report={'started': T0 + 7190, 'snapshot': dict(SNAPSHOT, revision=90)}))
    assert values(recovered['metrics'])['failures_total'] == 1
    assert values(recovered['metrics'])['last_success_timestamp_seconds'] == T0 + 7200
    assert values(recovered['metrics'])['last_revision'] == 90
    assert read(recovered['metrics_path']) == recovered['metrics']


def test_check_mode_writes_nothing_and_returns_the_metrics_and_their_diff(clock, textfile_dir, tmp_path):
    report_path = str(tmp_path / 'reports' / 'prod-20261122T011500Z-rev77.report.json')
    ok, result = run(args(textfile_dir, report_path=report_path), check=True, diff=True)
    assert ok, result
    assert not os.path.exists(textfile_dir) and not os.path.exists(os.path.dirname(report_path))
    assert result['changed'] is True and values(result['metrics'])['success'] == 1
    assert result['diff']['before'] == '' and result['diff']['after'] == result['metrics']
    assert result['report_path'] == report_path and result['report']['outcome'] == 'success'


def test_the_diff_shows_the_previous_metrics_file(clock, textfile_dir):
    _ok, first = run(args(textfile_dir))
    clock.now = T0 + 60
    ok, result = run(args(textfile_dir, outcome='failure', now=clock.now), check=True, diff=True)
    assert ok, result
    assert result['diff']['before'] == first['metrics'] == read(first['metrics_path'])
    assert values(result['diff']['after'])['failures_total'] == 1
    assert result['diff']['before_header'] == result['diff']['after_header'] == first['metrics_path']


def test_the_report_is_written_0600_as_json_in_a_new_0700_dir(clock, textfile_dir, tmp_path):
    report_path = str(tmp_path / 'backups' / 'prod' / 'prod-20261122T011500Z-rev77.report.json')
    ok, result = run(args(textfile_dir, report_path=report_path))
    assert ok, result
    with open(report_path) as handle:
        assert json.load(handle) == result['report']
    assert result['report']['format'] == 1 and result['report']['duration_seconds'] == 10.0
    assert mode(report_path) == 0o600 and mode(os.path.dirname(report_path)) == 0o700
    assert os.listdir(os.path.dirname(report_path)) == [os.path.basename(report_path)]


def test_only_a_report_without_textfile_dir(clock, tmp_path):
    report_path = str(tmp_path / 'r.report.json')
    ok, result = run({'cluster_name': 'prod', 'outcome': 'failure', 'report_path': report_path})
    assert ok, result
    assert (result['metrics_path'], result['metrics']) == (None, None)
    with open(report_path) as handle:
        assert json.load(handle)['failure'] == {'step': None, 'host': None, 'message': 'the run failed; it passed no details'}


def test_neither_textfile_dir_nor_report_path_is_refused():
    ok, result = run({'cluster_name': 'prod', 'outcome': 'success'})
    assert not ok and 'one of the following is required: textfile_dir, report_path' in result['msg']


def test_other_clusters_in_the_file_keep_their_series_and_a_0600_file_becomes_0644(clock, textfile_dir):
    os.makedirs(textfile_dir)
    path = os.path.join(textfile_dir, 'backups.prom')
    with open(path, 'w') as handle:
        handle.write('%sfailures_total{cluster="staging"} 5\n%ssuccess{cluster="staging"} 0\n' % (P, P))
    os.chmod(path, 0o600)
    ok, result = run(args(textfile_dir, file_name='backups.prom', outcome='failure'))
    assert ok, result
    assert values(read(path), 'staging') == {'failures_total': 5, 'success': 0}
    assert values(read(path))['failures_total'] == 1
    assert mode(path) == 0o644


def test_a_garbled_previous_file_never_fails_the_run(clock, textfile_dir):
    os.makedirs(textfile_dir)
    path = os.path.join(textfile_dir, 'kubeops_etcd_backup.prom')
    with open(path, 'wb') as handle:
        handle.write(b'\x00\xff%sfailures_total{cluster="prod" 9\n' % P.encode())
    ok, result = run(args(textfile_dir, outcome='failure'))
    assert ok, result
    assert values(read(path))['failures_total'] == 1


@pytest.mark.parametrize('file_name', ['metrics.txt', 'sub/x.prom', '.hidden.prom', '.prom'])
def test_a_file_name_the_textfile_collector_ignores_is_refused(clock, textfile_dir, file_name):
    ok, result = run(args(textfile_dir, file_name=file_name))
    assert not ok
    assert result['msg'].startswith("file_name '%s' is not a name node_exporter's textfile collector reads" % file_name)
    assert not os.path.exists(textfile_dir)


def test_a_directory_in_place_of_the_metrics_file_is_refused(clock, textfile_dir):
    os.makedirs(os.path.join(textfile_dir, 'kubeops_etcd_backup.prom'))
    ok, result = run(args(textfile_dir))
    assert not ok and 'exists and is not a regular file' in result['msg']
    assert result['file'] == os.path.join(textfile_dir, 'kubeops_etcd_backup.prom')


def test_a_wrong_report_fails_naming_the_key_and_writes_nothing(clock, textfile_dir):
    ok, result = run(args(textfile_dir, report={'snapshot': {'name': 'a.db', 'size': 'big', 'sha256': SHA}}))
    assert not ok
    assert result['msg'].startswith("Backup report: snapshot.size must be a non-negative integer, got 'big'")
    assert result['field'] == 'snapshot.size'
    assert not os.path.exists(textfile_dir)


def test_a_failed_write_keeps_the_previous_file_whole_and_leaves_no_temp_file(clock, textfile_dir, monkeypatch):
    _ok, first = run(args(textfile_dir))

    def broken_fsync(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', broken_fsync)
    clock.now = T0 + 60
    ok, result = run(args(textfile_dir, outcome='failure', now=clock.now))
    assert not ok
    assert result['msg'] == 'Cannot write %s on %s: No space left on device' % (
        first['metrics_path'], os.uname()[1])
    assert read(first['metrics_path']) == first['metrics']
    assert os.listdir(textfile_dir) == ['kubeops_etcd_backup.prom']


class LockingModule(FakeModule):
    check_mode = False
    _diff = False


def test_concurrent_runs_for_several_clusters_lose_no_series(textfile_dir):
    clusters = ['c%d' % number for number in range(8)]
    errors = []

    def record(cluster):
        try:
            module = LockingModule()
            params = {'textfile_dir': textfile_dir, 'file_name': 'kubeops_etcd_backup.prom', 'cluster_name': cluster,
                      'outcome': 'failure'}
            for _round in range(5):
                etcd_backup_metrics.record_metrics(module, params, None, T0, {})
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=record, args=(cluster,)) for cluster in clusters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    text = read(os.path.join(textfile_dir, 'kubeops_etcd_backup.prom'))
    assert parse_metrics(text)[P + 'failures_total'] == dict((cluster, '5') for cluster in clusters)
