# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of objstore: option -> boto3 settings, key derivation, error messages, lock dates.

Transfers are tested against a real S3 server in tests/integration/modules/test_object_store.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

import pytest

from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError, ProfileNotFound,
                                 SSLError)
from boto3.exceptions import S3UploadFailedError

from ansible_collections.kubeops.etcd.plugins.module_utils import objstore
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 22, 1, 35, tzinfo=UTC)
STORE = 'https://minio.example.com:9000'
ACCESS = 'AKIAKUBEOPSUNITTEST1'
SECRET = 'kubeops-unit-secret-0123456789abcdefghij'
TOKEN = 'kubeops-unit-session-token-FQoGZXIvYXdz'


def client_error(code, message='', operation='GetObject', extra=None):
    error = {'Code': code, 'Message': message}
    error.update(extra or {})
    return ClientError({'Error': error, 'ResponseMetadata': {'HTTPStatusCode': 403}}, operation)


def translate(exc, key='prod/k.db', source='the options access_key/secret_key'):
    return objstore.translate_error(exc, 'GetObject', STORE, 'etcd', key, source)


# --- options -> boto3 keyword arguments ---------------------------------------------------------------

def test_explicit_credentials_path_style_and_ca_bundle_map_to_session_and_client(tmp_path):
    ca = tmp_path / 'ca.pem'
    ca.write_text('PEM')
    settings = objstore.client_settings(dict(
        bucket='etcd', endpoint_url=STORE, region='eu-west-1', path_style=True, ca_bundle=str(ca),
        access_key=ACCESS, secret_key=SECRET, session_token=TOKEN, timeout=30, retries=3))
    assert settings['session'] == {'aws_access_key_id': ACCESS, 'aws_secret_access_key': SECRET,
                                   'aws_session_token': TOKEN, 'region_name': 'eu-west-1'}
    client = settings['client']
    assert client['endpoint_url'] == STORE
    assert client['verify'] == str(ca)
    assert client['config']['s3'] == {'addressing_style': 'path'}
    assert client['config']['retries'] == {'max_attempts': 3, 'mode': 'standard'}
    assert (client['config']['connect_timeout'], client['config']['read_timeout']) == (30, 30)
    assert client['config']['request_checksum_calculation'] == 'when_required'
    assert settings['credential_options'] == 'access_key/secret_key/session_token'


def test_without_options_boto3_chain_decides_and_tls_is_still_verified():
    settings = objstore.client_settings(dict(bucket='etcd'))
    assert settings['session'] == {}
    assert settings['client']['verify'] is None  # botocore's bundle or AWS_CA_BUNDLE, never False
    assert settings['client']['endpoint_url'] is None
    assert settings['client']['config']['s3'] == {'addressing_style': 'auto'}
    assert 'request_checksum_calculation' not in settings['client']['config']  # AWS itself: botocore defaults
    assert settings['credential_options'] is None


def test_profile_maps_to_the_session():
    settings = objstore.client_settings(dict(bucket='etcd', profile='backup'))
    assert settings['session'] == {'profile_name': 'backup'}


@pytest.mark.parametrize('options, fragment', [
    (dict(access_key=ACCESS), 'Give access_key and secret_key together'),
    (dict(secret_key=SECRET), 'Give access_key and secret_key together'),
    (dict(session_token=TOKEN), 'session_token needs access_key and secret_key'),
    (dict(access_key=ACCESS, secret_key=SECRET, profile='backup'), 'either profile or access_key'),
    (dict(endpoint_url='minio:9000'), 'is not an http(s) URL'),
    (dict(ca_bundle='/nonexistent/ca.pem'), 'ca_bundle /nonexistent/ca.pem does not exist'),
    (dict(retries=0), 'must be at least 1'),
])
def test_inconsistent_options_are_refused_without_echoing_secrets(options, fragment):
    with pytest.raises(EtcdModuleError) as caught:
        objstore.client_settings(dict(bucket='etcd', **options))
    assert fragment in caught.value.msg
    assert SECRET not in caught.value.msg and TOKEN not in caught.value.msg


def test_settings_never_turn_tls_verification_off(tmp_path):
    for options in (dict(), dict(endpoint_url='http://127.0.0.1:9000'), dict(endpoint_url=STORE)):
        assert objstore.client_settings(dict(bucket='etcd', **options))['client']['verify'] is not False


def test_config_kwargs_drop_options_an_older_botocore_does_not_know(monkeypatch):
    monkeypatch.setattr(objstore.Config, 'OPTION_DEFAULTS', {'s3': None, 'retries': None})
    assert objstore._config_kwargs({'s3': 1, 'retries': 2, 'request_checksum_calculation': 'when_required'}) == {
        's3': 1, 'retries': 2}


@pytest.mark.parametrize('method, words', [
    ('env', 'the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment variables'),
    ('shared-credentials-file', 'the shared credentials file (~/.aws/credentials)'),
    ('iam-role', 'the instance role (instance metadata)'),
    ('something-new', "boto3's credential chain (something-new)"),
])
def test_credential_source_names_where_the_keys_came_from(method, words):
    assert objstore.credential_source(objstore.client_settings({'bucket': 'b'}), method) == words


def test_credential_source_names_the_options_and_the_profile():
    assert objstore.credential_source(objstore.client_settings(
        {'access_key': ACCESS, 'secret_key': SECRET}), 'explicit') == 'the options access_key/secret_key'
    assert objstore.credential_source(objstore.client_settings({'profile': 'backup'}), 'shared-credentials-file') == \
        'the shared credentials file (~/.aws/credentials), profile backup'


# --- keys ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('prefix, expected', [
    ('', ''), (None, ''), ('prod', 'prod/'), ('prod/', 'prod/'), ('/etcd/prod', 'etcd/prod/'), (' a/b ', 'a/b/')])
def test_prefix_is_a_folder(prefix, expected):
    assert objstore.normalise_prefix(prefix) == expected


@pytest.mark.parametrize('key, prefix, src, expected', [
    ('exact/name.db', '', '/x/y.db', 'exact/name.db'),
    ('/leading/slash.db', '', '/x/y.db', 'leading/slash.db'),
    (None, 'prod', '/var/backups/kubernetes-20261122T013500Z-rev42.db', 'prod/kubernetes-20261122T013500Z-rev42.db'),
    (None, '', '/var/backups/a.db', 'a.db'),
    (None, 'etcd/prod/', 'a.db', 'etcd/prod/a.db'),
])
def test_key_is_the_given_key_or_prefix_plus_file_name(key, prefix, src, expected):
    assert objstore.derive_key(key, prefix, src) == expected


@pytest.mark.parametrize('key, src', [('folder/', '/x/a.db'), (None, '/var/backups/')])
def test_a_key_that_names_no_object_is_refused(key, src):
    with pytest.raises(EtcdModuleError):
        objstore.derive_key(key, 'prod', src)


# --- object lock and encryption --------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('2027-01-31', datetime.datetime(2027, 1, 31, tzinfo=UTC)),
    ('2027-01-31T12:30:00Z', datetime.datetime(2027, 1, 31, 12, 30, tzinfo=UTC)),
    ('2027-01-31T12:30:00', datetime.datetime(2027, 1, 31, 12, 30, tzinfo=UTC)),
    ('2027-01-31T14:30:00+02:00', datetime.datetime(2027, 1, 31, 12, 30, tzinfo=UTC)),
    ('2027-01-31T07:30-0500', datetime.datetime(2027, 1, 31, 12, 30, tzinfo=UTC)),
])
def test_retain_until_accepts_iso_dates_and_times_as_utc(text, expected):
    assert objstore.retain_until('COMPLIANCE', until=text, now=NOW) == expected


def test_retain_days_count_from_now():
    assert objstore.retain_until('GOVERNANCE', days=30, now=NOW) == NOW + datetime.timedelta(days=30)


@pytest.mark.parametrize('mode, until, days, fragment', [
    ('GOVERNANCE', '2020-01-01', None, 'lies in the past'),
    ('GOVERNANCE', 'next tuesday', None, 'is not an ISO 8601 date'),
    ('GOVERNANCE', None, None, 'needs object_lock_retain_until or object_lock_retain_days'),
    ('GOVERNANCE', None, 0, 'at least 1'),
    (None, '2027-01-01', None, 'need object_lock_mode'),
    ('LEGAL', None, 3, 'must be one of GOVERNANCE, COMPLIANCE'),
])
def test_bad_lock_settings_are_refused(mode, until, days, fragment):
    with pytest.raises(EtcdModuleError) as caught:
        objstore.retain_until(mode, until, days, now=NOW)
    assert fragment in caught.value.msg


def test_no_lock_without_mode():
    assert objstore.retain_until(None, now=NOW) is None


def test_upload_extra_args_carry_sha256_encryption_and_lock():
    until = NOW + datetime.timedelta(days=1)
    assert objstore.upload_extra_args('ab' * 32) == {'Metadata': {'sha256': 'ab' * 32}}
    assert objstore.upload_extra_args('ab' * 32, 'aws:kms', 'alias/etcd', 'COMPLIANCE', until) == {
        'Metadata': {'sha256': 'ab' * 32}, 'ServerSideEncryption': 'aws:kms', 'SSEKMSKeyId': 'alias/etcd',
        'ObjectLockMode': 'COMPLIANCE', 'ObjectLockRetainUntilDate': until, 'ChecksumAlgorithm': 'SHA256'}
    with pytest.raises(EtcdModuleError, match='sse_kms_key_id needs sse: aws:kms'):
        objstore.upload_extra_args('ab' * 32, 'AES256', 'alias/etcd')


# --- error translation ------------------------------------------------------------------------------------

def test_unknown_access_key_names_the_store_the_object_and_the_credential_source():
    error = translate(client_error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist',
                                   extra={'AWSAccessKeyId': ACCESS}))
    assert 'does not know the access key from the options access_key/secret_key' in error.msg
    assert STORE in error.msg and 's3://etcd/prod/k.db' in error.msg
    assert ACCESS not in error.msg and ACCESS not in repr(error.details)
    assert error.details == {'reason': 'invalid_access_key', 'code': 'InvalidAccessKeyId'}


def test_wrong_secret_names_the_signature_and_the_clock():
    error = translate(client_error('SignatureDoesNotMatch', 'The request signature we calculated does not match',
                                   extra={'StringToSign': 'AWS4-HMAC-SHA256', 'AWSAccessKeyId': ACCESS}))
    assert 'rejected the request signature' in error.msg and 'Check secret_key' in error.msg
    assert ACCESS not in error.msg and 'StringToSign' not in repr(error.details)


@pytest.mark.parametrize('code, fragment, reason', [
    ('AccessDenied', 'Access denied to s3://etcd/prod/k.db', 'access_denied'),
    ('403', 'Access denied to s3://etcd/prod/k.db', 'access_denied'),
    ('NoSuchBucket', 'Bucket etcd does not exist at %s' % STORE, 'no_such_bucket'),
    ('NoSuchKey', 'Object s3://etcd/prod/k.db at %s' % STORE, 'no_such_key'),
    ('404', 'does not exist', 'no_such_key'),
    ('ExpiredToken', 'The session token from the options', 'expired_token'),
    ('PermanentRedirect', 'Set region', 'wrong_region'),
    ('SlowDown', 'S3 GetObject of s3://etcd/prod/k.db', 's3_error'),
])
def test_client_error_codes_become_messages_with_the_fix(code, fragment, reason):
    error = translate(client_error(code, 'server says %s' % code))
    assert fragment in error.msg, error.msg
    assert error.details['reason'] == reason


def test_no_credentials_lists_every_way_to_give_them():
    error = translate(NoCredentialsError(), source=None)
    assert error.details['reason'] == 'no_credentials'
    for way in ('access_key and secret_key', 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', 'profile'):
        assert way in error.msg


def test_unreachable_endpoint_names_the_endpoint_and_what_to_check():
    error = translate(EndpointConnectionError(endpoint_url=STORE + '/etcd/prod/k.db'))
    assert error.msg.startswith('Cannot reach the object store %s from ' % STORE)
    assert 'Check endpoint_url' in error.msg and error.details['reason'] == 'unreachable'


def test_tls_failure_points_to_ca_bundle():
    error = translate(SSLError(endpoint_url=STORE, error='certificate verify failed'))
    assert 'Set ca_bundle' in error.msg and 'cannot be turned off' in error.msg


def test_missing_profile_is_named():
    error = translate(ProfileNotFound(profile='backup'))
    assert 'backup' in error.msg and error.details['reason'] == 'profile_not_found'


def test_object_lock_on_a_bucket_without_it():
    error = translate(client_error('InvalidRequest', 'Bucket is missing ObjectLockConfiguration'))
    assert 'has no object lock configuration' in error.msg


def wrapped_upload_failure():
    """What boto3's upload_file raises: S3UploadFailedError raised while handling the ClientError."""
    try:
        raise client_error('AccessDenied', 'Access Denied', operation='CreateMultipartUpload')
    except ClientError as inner:
        try:
            raise S3UploadFailedError('Failed to upload /x to etcd/prod/k.db: %s' % inner)
        except S3UploadFailedError as outer:
            return outer


def test_upload_failure_wrapped_by_boto3_is_unwrapped_to_its_cause():
    assert translate(wrapped_upload_failure()).details['reason'] == 'access_denied'


def test_error_code_is_read_from_the_text_when_there_is_no_response():
    assert objstore.error_code(Exception('An error occurred (SignatureDoesNotMatch) when calling')) == \
        'SignatureDoesNotMatch'


def test_redact_removes_every_secret_longest_first():
    text = 'key %s secret %s token %s' % (ACCESS, SECRET, TOKEN)
    assert objstore.redact(text, [ACCESS, SECRET, None, '', TOKEN]) == 'key ******** secret ******** token ********'


def test_store_errors_are_redacted_with_the_secrets_of_the_session():
    store = objstore.ObjectStore.__new__(objstore.ObjectStore)
    store.secrets = [ACCESS, SECRET, TOKEN]
    store.store, store.bucket, store.endpoint_url, store.source = STORE, 'etcd', STORE, None
    error = store.error(client_error('Weird', 'server echoed %s and %s' % (ACCESS, SECRET)), 'GetObject', 'k')
    assert ACCESS not in error.msg and SECRET not in error.msg and '********' in error.msg
    assert error.details['key'] == 'k' and error.details['bucket'] == 'etcd'


def test_object_facts_read_a_head_response():
    head = {'ContentLength': 5, 'Metadata': {'sha256': 'ab' * 32}, 'ETag': '"abc-2"', 'VersionId': 'v1',
            'LastModified': datetime.datetime(2026, 11, 22, 1, 35, 7, tzinfo=UTC), 'ServerSideEncryption': 'AES256',
            'ObjectLockMode': 'GOVERNANCE', 'ObjectLockRetainUntilDate': datetime.datetime(2026, 12, 1, tzinfo=UTC)}
    assert objstore.ObjectStore.object_facts('k', head) == {
        'key': 'k', 'size': 5, 'sha256': 'ab' * 32, 'etag': 'abc-2', 'version_id': 'v1',
        'last_modified': '2026-11-22T01:35:07Z', 'sse': 'AES256', 'sse_kms_key_id': None,
        'object_lock_mode': 'GOVERNANCE', 'object_lock_retain_until': '2026-12-01T00:00:00Z'}
