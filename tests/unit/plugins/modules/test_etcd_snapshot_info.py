# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_snapshot_info

from unit_helpers import fakes, run_module


def run(args):
    return run_module(etcd_snapshot_info, args)


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / 'etcd.db'
    with open(fakes.SNAPSHOT, 'rb') as handle:
        path.write_bytes(handle.read())
    return path


def write_metadata(snapshot, **overrides):
    data = snapshot.read_bytes()
    metadata = {'format': 1, 'file': snapshot.name, 'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data),
                'revision': 51}
    metadata.update(overrides)
    path = str(snapshot) + '.meta.json'
    with open(path, 'w') as handle:
        json.dump(metadata, handle)
    return metadata


def revision_of(version):
    tool = 'etcdctl' if version == '3.4.23' else 'etcdutl'
    return json.loads(fakes.read(version, 'snapshot_status_%s.stdout' % tool))['revision']


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_reports_size_hashes_and_status(tmp_path, monkeypatch, snapshot, version):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    before = snapshot.read_bytes()
    ok, result = run(dict(path=str(snapshot), **fake.path_args()))
    assert ok and result['changed'] is False
    facts = result['snapshot']
    tool = 'etcdctl' if version == '3.4.23' else 'etcdutl'
    status = json.loads(fakes.read(version, 'snapshot_status_%s.stdout' % tool))
    assert facts['path'] == str(snapshot)
    assert facts['size'] == len(before)
    assert facts['sha256'] == hashlib.sha256(before).hexdigest()
    assert facts['has_trailing_hash'] is True
    assert facts['status'] == {'hash': status['hash'], 'revision': status['revision'], 'total_key': status['totalKey'],
                               'total_size': status['totalSize'], 'version': status.get('version')}
    assert facts['metadata'] is None and facts['metadata_matches'] is None
    assert facts['metadata_path'] == str(snapshot) + '.meta.json'
    expected_version = '3.6.5' if version.startswith('3.6') else version
    assert facts['status_tool'] == '%s %s' % (tool, expected_version)
    assert snapshot.read_bytes() == before


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_matching_metadata(tmp_path, monkeypatch, snapshot, version):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    metadata = write_metadata(snapshot, revision=revision_of(version))
    ok, result = run(dict(path=str(snapshot), require_metadata=True, **fake.path_args()))
    assert ok
    assert result['snapshot']['metadata'] == metadata and result['snapshot']['metadata_matches'] is True


@pytest.mark.parametrize('field, value, text', [
    ('sha256', '0' * 64, 'sha256 is %s in the metadata' % ('0' * 64)),
    ('size', 1, 'size is 1 in the metadata'),
    ('revision', 999999, 'revision is 999999 in the metadata'),
])
def test_mismatching_metadata_fails(tmp_path, monkeypatch, snapshot, field, value, text):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    overrides = {'revision': revision_of('3.5.30')}
    overrides[field] = value
    write_metadata(snapshot, **overrides)
    ok, result = run(dict(path=str(snapshot), **fake.path_args()))
    assert not ok and 'does not match its metadata' in result['msg'] and text in result['msg']


def test_metadata_path_option_and_invalid_json(tmp_path, monkeypatch, snapshot):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text('{not json')
    ok, result = run(dict(path=str(snapshot), metadata_path=str(elsewhere), **fake.path_args()))
    assert not ok and 'is not valid JSON' in result['msg'] and str(elsewhere) in result['msg']


def test_require_metadata_without_file(tmp_path, monkeypatch, snapshot):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    ok, result = run(dict(path=str(snapshot), require_metadata=True, **fake.path_args()))
    assert not ok and 'require_metadata is set' in result['msg']
    assert result['snapshot']['sha256'] == hashlib.sha256(snapshot.read_bytes()).hexdigest()


@pytest.mark.parametrize('damage, message', [
    (lambda data: data[:8192], 'is truncated'),
    (lambda data: data[:-100], 'is truncated'),
    (lambda data: data[:3000] + b'\xff' + data[3001:], 'corrupted or truncated'),
    (lambda data: os.urandom(len(data) - 32), 'is not an etcd snapshot'),
    (lambda data: b'', 'is empty'),
])
def test_damaged_files_fail_clearly_and_stay_untouched(tmp_path, monkeypatch, snapshot, damage, message):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    snapshot.write_bytes(damage(snapshot.read_bytes()))
    before = snapshot.read_bytes()
    files_before = sorted(os.listdir(str(tmp_path)))
    ok, result = run(dict(path=str(snapshot), **fake.path_args()))
    assert not ok and message in result['msg'] and str(snapshot) in result['msg']
    assert snapshot.read_bytes() == before
    assert sorted(name for name in os.listdir(str(tmp_path)) if name != 'fake-etcd-calls.jsonl') == \
        [name for name in files_before if name != 'fake-etcd-calls.jsonl']


def test_part_file_is_refused(tmp_path, monkeypatch, snapshot):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    part = tmp_path / 'etcd.db.part'
    part.write_bytes(snapshot.read_bytes())
    ok, result = run(dict(path=str(part), **fake.path_args()))
    assert not ok and 'is an unfinished snapshot' in result['msg']
    assert fake.calls() == []


def test_missing_file(tmp_path, monkeypatch):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    ok, result = run(dict(path=str(tmp_path / 'nope.db'), **fake.path_args()))
    assert not ok and 'does not exist' in result['msg']


def test_raw_db_copy_has_no_trailing_hash(tmp_path, monkeypatch, snapshot):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    snapshot.write_bytes(snapshot.read_bytes()[:-32])
    ok, result = run(dict(path=str(snapshot), **fake.path_args()))
    assert ok and result['snapshot']['has_trailing_hash'] is False


def test_tool_failure_is_reported(tmp_path, monkeypatch, snapshot):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.1')
    fake.scenario('status_fails')
    ok, result = run(dict(path=str(snapshot), **fake.path_args()))
    assert not ok and result['msg'].startswith('Reading snapshot %s with etcdutl 3.5.1 failed' % snapshot)
    assert 'Error: invalid database' in result['msg']


def test_only_etcdctl_36_cannot_read_snapshots(tmp_path, monkeypatch, snapshot):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.6-upstream', tools=['etcdctl'])
    ok, result = run(dict(path=str(snapshot), **fake.path_args()))
    assert not ok and 'etcd-server' in result['msg'] and 'etcdutl_path' in result['msg']
