# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What etcd_object_store refuses before it talks to any store (transfers: tests/integration/modules/test_object_store.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_object_store

from unit_helpers import run_module

SECRET = 'kubeops-unit-secret-never-printed'
# Nothing listens on port 9 of 127.0.0.1 (discard): any request would fail, so these tests prove the
# refusals happen before a request.
STORE = dict(bucket='etcd', endpoint_url='https://127.0.0.1:9', region='us-east-1', access_key='AKIAKUBEOPSUNIT00001',
             secret_key=SECRET, retries=1, timeout=1)


def run(args, check=False):
    return run_module(etcd_object_store, args, check=check)


def test_missing_boto3_is_reported_with_the_library_name(monkeypatch):
    monkeypatch.setattr(etcd_object_store, 'HAS_BOTO3', False)
    monkeypatch.setattr(etcd_object_store, 'BOTO3_IMPORT_ERROR', 'ImportError: No module named boto3')
    ok, result = run(dict(STORE, mode='list'))
    assert not ok
    assert 'Failed to import the required Python library (boto3)' in result['msg']


def test_key_and_prefix_together_are_refused(tmp_path):
    src = tmp_path / 'a.db'
    src.write_bytes(b'x')
    ok, result = run(dict(STORE, mode='put', src=str(src), key='k/a.db', prefix='prod'))
    assert not ok and 'Give either key' in result['msg']


def test_profile_and_access_key_are_mutually_exclusive():
    ok, result = run(dict(STORE, mode='list', profile='backup'))
    assert not ok and 'mutually exclusive' in result['msg'] and SECRET not in repr(result)


@pytest.mark.parametrize('args, fragment', [
    (dict(mode='put'), 'src'),
    (dict(mode='get', key='k'), 'dest'),
    (dict(mode='prune', cluster_name='kubernetes'), 'policy'),
])
def test_each_mode_requires_its_options(args, fragment):
    ok, result = run(dict(STORE, **args))
    assert not ok and fragment in result['msg']


def test_small_part_size_is_refused_before_any_request(tmp_path):
    src = tmp_path / 'a.db'
    src.write_bytes(b'x')
    ok, result = run(dict(STORE, mode='put', src=str(src), multipart_chunk_size_mb=4))
    assert not ok and 'at least 5 (the S3 minimum part size)' in result['msg']


def test_bad_policy_is_refused_before_anything_is_listed():
    ok, result = run(dict(STORE, mode='prune', cluster_name='kubernetes', policy={'keep_within': 'soon'}))
    assert not ok and 'Bad retention policy' in result['msg'] and 'Nothing was deleted' in result['msg']


def test_bad_expected_sha256_is_refused(tmp_path):
    ok, result = run(dict(STORE, mode='get', key='k', dest=str(tmp_path / 'd'), expected_sha256='abc'))
    assert not ok and 'is not a hex SHA-256' in result['msg']
