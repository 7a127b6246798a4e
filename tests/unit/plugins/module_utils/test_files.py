# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import hashlib
import os
import stat

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import files
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner

from unit_helpers import FakeModule, fakes


def with_trailer(body):
    return body + hashlib.sha256(body).digest()


def test_sha256_file_streams_in_chunks(tmp_path):
    path = tmp_path / 'data'
    payload = os.urandom(3 * 1024 + 17)
    path.write_bytes(payload)
    assert files.sha256_file(str(path), chunk=1000) == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize('chunk', [1, 31, 32, 33, 512, 4096, 1024 * 1024])
def test_snapshot_digests_trailer_found_whatever_the_chunk_boundaries(tmp_path, chunk):
    path = tmp_path / 'snap'
    body = os.urandom(512 * 9)
    path.write_bytes(with_trailer(body))
    digests = files.snapshot_digests(str(path), chunk=chunk)
    assert digests == {'size': 512 * 9 + 32, 'sha256': hashlib.sha256(with_trailer(body)).hexdigest(),
                       'has_trailing_hash': True}


def test_snapshot_digests_wrong_trailer(tmp_path):
    path = tmp_path / 'snap'
    data = bytearray(with_trailer(os.urandom(1024)))
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert files.snapshot_digests(str(path))['has_trailing_hash'] is False


def test_snapshot_digests_raw_db_has_no_trailer(tmp_path):
    path = tmp_path / 'db'
    path.write_bytes(os.urandom(4096 * 2))
    assert files.snapshot_digests(str(path))['has_trailing_hash'] is False


def test_snapshot_digests_real_snapshot():
    with open(fakes.SNAPSHOT, 'rb') as handle:
        data = handle.read()
    digests = files.snapshot_digests(fakes.SNAPSHOT)
    assert digests['has_trailing_hash'] is True
    assert digests['sha256'] == hashlib.sha256(data).hexdigest()
    assert digests['size'] == len(data) and len(data) % 512 == 32


def test_inspect_bolt_file_real_snapshot():
    size = os.path.getsize(fakes.SNAPSHOT)
    meta = files.inspect_bolt_file(fakes.SNAPSHOT, size - 32)
    assert meta['page_size'] == 4096
    assert meta['pages'] * meta['page_size'] == size - 32


def test_inspect_bolt_file_truncated(tmp_path):
    path = tmp_path / 'truncated.db'
    with open(fakes.SNAPSHOT, 'rb') as handle:
        path.write_bytes(handle.read(8192))
    with pytest.raises(EtcdModuleError) as caught:
        files.inspect_bolt_file(str(path), 8192)
    assert 'is truncated' in caught.value.msg and 'holds 8192' in caught.value.msg


def test_inspect_bolt_file_not_bolt(tmp_path):
    path = tmp_path / 'random.db'
    path.write_bytes(os.urandom(65536))
    with pytest.raises(EtcdModuleError) as caught:
        files.inspect_bolt_file(str(path), 65536)
    assert 'is not an etcd snapshot' in caught.value.msg


def test_inspect_bolt_file_survives_one_damaged_meta_page(tmp_path):
    path = tmp_path / 'one-meta.db'
    data = bytearray(open(fakes.SNAPSHOT, 'rb').read())
    data[20] ^= 0xFF  # inside meta page 0
    path.write_bytes(bytes(data))
    assert files.inspect_bolt_file(str(path), len(data) - 32)['page_size'] == 4096


def test_atomic_write_mode_and_no_temp_left(tmp_path):
    module = FakeModule()
    target = tmp_path / 'meta.json'
    target.write_text('old')
    os.chmod(str(target), 0o644)
    files.atomic_write(module, str(target), '{"a": 1}\n', 0o600)
    assert target.read_text() == '{"a": 1}\n'
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    assert sorted(os.listdir(str(tmp_path))) == ['meta.json']
    assert module.moves and os.path.dirname(module.moves[0][0]) == str(tmp_path)


def test_atomic_write_failure_is_an_etcd_error(tmp_path):
    with pytest.raises(EtcdModuleError) as caught:
        files.atomic_write(FakeModule(), str(tmp_path / 'missing-dir' / 'x'), 'data', 0o600)
    assert 'Cannot write' in caught.value.msg


def test_move_aside_renames_and_never_overwrites(tmp_path):
    original = tmp_path / 'snap.db'
    original.write_text('one')
    moved = files.move_aside(str(original), '20261122T013500Z')
    assert moved == str(original) + '.20261122T013500Z'
    assert not original.exists() and open(moved).read() == 'one'
    original.write_text('two')
    with pytest.raises(EtcdModuleError):
        files.move_aside(str(original), '20261122T013500Z')
    assert original.read_text() == 'two' and open(moved).read() == 'one'


def test_dir_is_empty(tmp_path):
    assert files.dir_is_empty(str(tmp_path / 'missing'))
    assert files.dir_is_empty(str(tmp_path))
    (tmp_path / 'x').write_text('')
    assert not files.dir_is_empty(str(tmp_path))


def test_make_private_dir(tmp_path):
    target = tmp_path / 'a' / 'b'
    assert files.make_private_dir(str(target)) is True
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o700
    assert files.make_private_dir(str(target)) is False


def test_timestamps_are_utc():
    moment = datetime.datetime(2026, 11, 22, 1, 35, 0)
    assert files.timestamp(moment) == '20261122T013500Z'
    assert files.iso_utc(moment) == '2026-11-22T01:35:00Z'
    assert files.timestamp().endswith('Z') and len(files.timestamp()) == 16


@pytest.mark.parametrize('version', fakes.ALL_SHAPES)
def test_verify_snapshot_file_real_snapshot(tmp_path, monkeypatch, version):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    tools = EtcdTools.detect(FakeModule(bin_dirs=[fake.bin]), Runner(FakeModule()), probe_restore_help=False)
    facts = files.verify_snapshot_file(Runner(FakeModule()), tools, fakes.SNAPSHOT)
    assert facts['has_trailing_hash'] is True
    assert facts['size'] == os.path.getsize(fakes.SNAPSHOT)
    assert facts['status']['revision'] > 0
    status_calls = [call for call in fake.calls() if 'status' in call['argv'] and 'snapshot' in call['argv']]
    assert [call['tool'] for call in status_calls] == ['etcdctl' if version == '3.4.23' else 'etcdutl']


@pytest.mark.parametrize('damage, message', [
    (lambda data: b'', 'is empty'),
    (lambda data: data[:8192], 'is truncated'),
    (lambda data: data[:8192 + 512 + 32], 'corrupted or truncated'),
    (lambda data: data[:5000] + b'X' + data[5001:], 'corrupted or truncated'),
    (lambda data: os.urandom(65536), 'is not an etcd snapshot'),
])
def test_verify_snapshot_file_rejects_damaged_files_before_running_tools(tmp_path, monkeypatch, damage, message):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    tools = EtcdTools.detect(FakeModule(bin_dirs=[fake.bin]), Runner(FakeModule()), probe_restore_help=False)
    path = tmp_path / 'damaged.db'
    path.write_bytes(damage(open(fakes.SNAPSHOT, 'rb').read()))
    with pytest.raises(EtcdModuleError) as caught:
        files.verify_snapshot_file(Runner(FakeModule()), tools, str(path))
    assert message in caught.value.msg and str(path) in caught.value.msg
    assert not [call for call in fake.calls() if 'snapshot' in call['argv']]


def test_verify_snapshot_file_reports_tool_failure(tmp_path, monkeypatch):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.16')
    fake.scenario('status_fails')
    tools = EtcdTools.detect(FakeModule(bin_dirs=[fake.bin]), Runner(FakeModule()), probe_restore_help=False)
    with pytest.raises(EtcdModuleError) as caught:
        files.verify_snapshot_file(Runner(FakeModule()), tools, fakes.SNAPSHOT)
    assert 'Error: invalid database' in caught.value.msg and 'etcdutl 3.5.16' in caught.value.msg


def test_verify_snapshot_file_accepts_raw_db_copy(tmp_path, monkeypatch):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.5.30')
    tools = EtcdTools.detect(FakeModule(bin_dirs=[fake.bin]), Runner(FakeModule()), probe_restore_help=False)
    path = tmp_path / 'db'
    path.write_bytes(open(fakes.SNAPSHOT, 'rb').read()[:-32])
    assert files.verify_snapshot_file(Runner(FakeModule()), tools, str(path))['has_trailing_hash'] is False


def test_path_inside_resolves_links_and_needs_a_whole_component(tmp_path):
    (tmp_path / 'manifests').mkdir()
    os.symlink(str(tmp_path / 'manifests'), str(tmp_path / 'link'))
    assert files.path_inside(str(tmp_path / 'manifests'), str(tmp_path / 'manifests'))
    assert files.path_inside(str(tmp_path / 'link' / 'held'), str(tmp_path / 'manifests'))
    assert not files.path_inside(str(tmp_path / 'manifests-held'), str(tmp_path / 'manifests'))


def test_replace_with_backup_keeps_mode_owner_and_a_stamped_copy_and_refuses_a_file_changed_meanwhile(tmp_path):
    target = tmp_path / 'etcd.env'
    target.write_bytes(b'ETCD_DATA_DIR=/var/lib/etcd\n')
    os.chmod(str(target), 0o640)
    now = datetime.datetime(2026, 12, 3, 14, 0, tzinfo=datetime.timezone.utc)
    (tmp_path / 'backups').mkdir(mode=0o700)
    (tmp_path / 'backups' / 'etc_etcd.env.20261203T140000Z').write_bytes(b'older')
    assert files.stamped_path(str(tmp_path / 'backups'), 'etc_etcd.env', now).endswith('etc_etcd.env.20261203T140000Z.1')

    backup = files.replace_with_backup(FakeModule(), str(target), b'ETCD_DATA_DIR=/var/lib/etcd\n',
                                       b'ETCD_DATA_DIR=/var/lib/etcd-new\n', backup_dir=str(tmp_path / 'backups'),
                                       backup_name='etc_etcd.env')
    assert target.read_bytes() == b'ETCD_DATA_DIR=/var/lib/etcd-new\n'
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o640
    assert open(backup, 'rb').read() == b'ETCD_DATA_DIR=/var/lib/etcd\n'
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert (tmp_path / 'backups' / 'etc_etcd.env.20261203T140000Z').read_bytes() == b'older'

    with pytest.raises(EtcdModuleError, match='changed while this task was editing it; nothing was written'):
        files.replace_with_backup(FakeModule(), str(target), b'what the task read', b'new')
    assert target.read_bytes() == b'ETCD_DATA_DIR=/var/lib/etcd-new\n'
    assert files.replace_with_backup(FakeModule(), str(target), target.read_bytes(), b'x') is None
