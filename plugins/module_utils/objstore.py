# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""S3-compatible object storage through boto3: client settings, verified transfers, error messages.

Every object this collection uploads carries the hex SHA-256 of its bytes as user metadata ``sha256``
(``x-amz-meta-sha256``); uploads are read back and downloads are checked against it. Credentials are
never put into a message: every text that leaves this module passes :func:`redact` with the secrets of
the session in use, whatever their source (options, AWS_* variables, profile, instance role).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import hashlib
import os
import re
import traceback

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    CHUNK_SIZE, make_private_dir, remove_if_exists, sha256_file, timestamp)

BOTO3_IMPORT_ERROR = None
try:
    import boto3
    import botocore.exceptions
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
except ImportError:
    BOTO3_IMPORT_ERROR = traceback.format_exc()
HAS_BOTO3 = BOTO3_IMPORT_ERROR is None

METADATA_SHA256 = 'sha256'
# S3 refuses multipart parts below 5 MiB (except the last one).
MIN_PART_SIZE_MB = 5
DEFAULT_PART_SIZE_MB = 16
# Parts in flight at once: memory stays near (TRANSFER_CONCURRENCY + 1) x part size whatever the file size.
TRANSFER_CONCURRENCY = 4
DELETE_BATCH = 1000
SSE_CHOICES = ('AES256', 'aws:kms')
OBJECT_LOCK_MODES = ('GOVERNANCE', 'COMPLIANCE')
REDACTED = '********'
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')
_CLIENT_ERROR_CODE_RE = re.compile(r'An error occurred \(([^)]+)\)')

STORE_ARGUMENT_SPEC = dict(
    bucket=dict(type='str', required=True),
    endpoint_url=dict(type='str'),
    region=dict(type='str'),
    path_style=dict(type='bool', default=False),
    ca_bundle=dict(type='path'),
    profile=dict(type='str'),
    access_key=dict(type='str', no_log=True),
    secret_key=dict(type='str', no_log=True),
    session_token=dict(type='str', no_log=True),
    timeout=dict(type='int', default=60),
    retries=dict(type='int', default=5),
)


def store_argument_spec():
    """The options every object-store module takes (a fresh copy)."""
    return dict((name, dict(spec)) for name, spec in STORE_ARGUMENT_SPEC.items())


def redact(text, secrets):
    """text with every secret (access key, secret key, session token) replaced by ********."""
    text = '%s' % (text,)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def normalise_prefix(prefix):
    """A key prefix as a folder: no leading slash, one trailing slash ('' stays '')."""
    prefix = (prefix or '').strip().lstrip('/')
    if prefix and not prefix.endswith('/'):
        prefix += '/'
    return prefix


def object_key(prefix, name):
    """The key of name under prefix: ``object_key('etcd/prod', 'a.db') == 'etcd/prod/a.db'``."""
    return normalise_prefix(prefix) + name.lstrip('/')


def derive_key(key, prefix, src):
    """The key to upload src to: key when given, else prefix + the basename of src."""
    if key:
        if key.endswith('/'):
            raise EtcdModuleError('Object key %r ends with "/": give the full key of the object, or use prefix to '
                                  'upload under a folder with the file\'s own name.' % key)
        return key.lstrip('/')
    name = os.path.basename(src or '')
    if not name:
        raise EtcdModuleError('Cannot derive an object key from src %r: give key, or a src that names a file.' % src)
    return object_key(prefix, name)


def is_sha256(value):
    return bool(value) and bool(_SHA256_RE.match(value))


def describe_store(endpoint_url, region):
    return endpoint_url or 'AWS S3 (region %s)' % (region or 'from the AWS configuration')


def s3_url(bucket, key=None):
    return 's3://%s/%s' % (bucket, key or '')


def client_settings(params):
    """Map module options to boto3 keyword arguments (pure; no boto3 needed).

    Returns {'session': kwargs of boto3.session.Session, 'client': kwargs of session.client('s3') where
    'config' is a dict for botocore.config.Config, 'credential_options': which options gave credentials}.
    TLS is always verified: ``verify`` is the CA bundle path, or None (botocore's bundle or AWS_CA_BUNDLE),
    never False.
    """
    access_key, secret_key, token = params.get('access_key'), params.get('secret_key'), params.get('session_token')
    if bool(access_key) != bool(secret_key):
        raise EtcdModuleError('Give access_key and secret_key together (or neither, to use the AWS_* environment '
                              'variables, a profile or an instance role).')
    if token and not access_key:
        raise EtcdModuleError('session_token needs access_key and secret_key (the temporary credentials it belongs to).')
    if access_key and params.get('profile'):
        raise EtcdModuleError('Give either profile or access_key/secret_key, not both: boto3 would use the keys and '
                              'silently ignore the profile.')
    endpoint_url = params.get('endpoint_url') or None
    if endpoint_url and not re.match(r'^https?://[^/\s]+', endpoint_url):
        raise EtcdModuleError('endpoint_url %r is not an http(s) URL, such as https://minio.example.com:9000.'
                              % endpoint_url)
    ca_bundle = params.get('ca_bundle') or None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise EtcdModuleError('ca_bundle %s does not exist on %s (or is not a file): give the PEM file of the CA that '
                              'signed the object store\'s certificate.' % (ca_bundle, node_name()), file=ca_bundle)
    timeout = params.get('timeout') or 60
    retries = params.get('retries')
    retries = 5 if retries is None else retries
    if timeout < 1 or retries < 1:
        raise EtcdModuleError('timeout and retries must be at least 1 (got %s and %s).' % (timeout, retries))

    session = {}
    if access_key:
        session.update(aws_access_key_id=access_key, aws_secret_access_key=secret_key)
        if token:
            session['aws_session_token'] = token
    if params.get('profile'):
        session['profile_name'] = params['profile']
    if params.get('region'):
        session['region_name'] = params['region']
    config = {
        'signature_version': 's3v4',
        's3': {'addressing_style': 'path' if params.get('path_style') else 'auto'},
        'retries': {'max_attempts': retries, 'mode': 'standard'},
        'connect_timeout': timeout,
        'read_timeout': timeout,
    }
    if endpoint_url:
        # botocore 1.36+ adds CRC checksums to every request by default; several S3-compatible stores
        # (older MinIO, Ceph RGW) reject them. Our own SHA-256 check covers integrity end to end.
        config['request_checksum_calculation'] = 'when_required'
        config['response_checksum_validation'] = 'when_required'
    client = {'endpoint_url': endpoint_url, 'verify': ca_bundle, 'config': config}
    return {'session': session, 'client': client,
            'credential_options': 'access_key/secret_key' + ('/session_token' if token else '') if access_key else None}


def credential_source(settings, method):
    """Where the credentials came from, in words an operator can act on (no credential value)."""
    if settings['credential_options']:
        return 'the options %s' % settings['credential_options']
    profile = settings['session'].get('profile_name')
    named = {
        'env': 'the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment variables',
        'shared-credentials-file': 'the shared credentials file (~/.aws/credentials)',
        'config-file': 'the AWS config file (~/.aws/config)',
        'iam-role': 'the instance role (instance metadata)',
        'container-role': 'the container role',
        'assume-role': 'an assumed role of the AWS configuration',
    }
    source = named.get(method, 'boto3\'s credential chain (%s)' % (method or 'unknown'))
    if profile:
        source += ', profile %s' % profile
    return source


def _config_kwargs(config):
    """Leave out options the installed botocore does not know (older botocore has no checksum settings)."""
    known = getattr(Config, 'OPTION_DEFAULTS', None)
    if known is None:
        return dict(config)
    return dict((name, value) for name, value in config.items() if name in known)


def error_code(exc):
    """The S3 error code of a botocore ClientError (or of the ClientError an upload failure wraps)."""
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
        return (exc.response.get('Error') or {}).get('Code') or ''
    response = getattr(exc, 'response', None)
    if isinstance(response, dict):
        return (response.get('Error') or {}).get('Code') or ''
    match = _CLIENT_ERROR_CODE_RE.search('%s' % exc)
    return match.group(1) if match else ''


def error_message(exc):
    response = getattr(exc, 'response', None)
    if isinstance(response, dict):
        return (response.get('Error') or {}).get('Message') or ''
    return ''


def _unwrap(exc):
    """boto3's transfer manager wraps the ClientError of a failed upload into S3UploadFailedError."""
    if HAS_BOTO3 and isinstance(exc, S3UploadFailedError):
        inner = exc.__cause__ or exc.__context__
        if inner is not None:
            return inner
    return exc


def translate_error(exc, operation, store, bucket, key=None, source=None):
    """An EtcdModuleError for a boto3/botocore failure: what failed, where (endpoint, bucket, key) and the fix.

    Carries no credential and no raw response (error responses may echo the access key id);
    :class:`ObjectStore` additionally redacts the session's secrets from the message.
    """
    exc = _unwrap(exc)
    name = type(exc).__name__
    where = '%s at %s from %s' % (s3_url(bucket, key), store, node_name())
    creds = ' from %s' % source if source else ''
    code = error_code(exc)
    text = '%s' % exc

    if name in ('NoCredentialsError', 'PartialCredentialsError', 'CredentialRetrievalError'):
        return EtcdModuleError(
            'No usable S3 credentials on %s for %s of %s: %s. Set access_key and secret_key (kept out of logs by '
            'no_log), the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment variables, or profile.'
            % (node_name(), operation, s3_url(bucket, key), text), reason='no_credentials')
    if name == 'ProfileNotFound':
        return EtcdModuleError(
            'AWS profile not found on %s: %s. Add it to ~/.aws/config or ~/.aws/credentials of the user running the '
            'task, or give access_key and secret_key instead.' % (node_name(), text), reason='profile_not_found')
    if name == 'SSLError':
        return EtcdModuleError(
            'TLS verification failed for %s during %s: %s. Set ca_bundle to the PEM file of the CA that signed the '
            'store\'s certificate (TLS verification cannot be turned off).' % (where, operation, text),
            reason='tls')
    if name in ('EndpointConnectionError', 'ConnectTimeoutError', 'ProxyConnectionError', 'ConnectionClosedError',
                'ReadTimeoutError', 'ConnectionError', 'HTTPClientError'):
        return EtcdModuleError(
            'Cannot reach the object store %s from %s during %s of %s: %s. Check endpoint_url (scheme, host, port), '
            'that the store is running, and DNS, firewall and proxy settings on %s.'
            % (store, node_name(), operation, s3_url(bucket, key), text, node_name()), reason='unreachable')
    if name == 'IncompleteReadError':
        return EtcdModuleError(
            'The download of %s ended early (%s): the connection broke or the store sent fewer bytes than it '
            'announced. Nothing was kept; run the task again.' % (where, text), reason='incomplete')

    if code in ('InvalidAccessKeyId', 'InvalidClientTokenId'):
        return EtcdModuleError(
            'The object store %s does not know the access key%s (%s of %s). Give a valid access key: check for a '
            'typo, a deleted key, or keys of another account or store.' % (store, creds, operation, s3_url(bucket, key)),
            reason='invalid_access_key', code=code)
    if code == 'SignatureDoesNotMatch':
        return EtcdModuleError(
            'The object store %s rejected the request signature for %s of %s: the secret key does not belong to the '
            'access key%s, or the clock of %s is far off. Check secret_key (or AWS_SECRET_ACCESS_KEY) and the time.'
            % (store, operation, s3_url(bucket, key), creds, node_name()), reason='signature_mismatch', code=code)
    if code in ('ExpiredToken', 'InvalidToken', 'TokenRefreshRequired'):
        return EtcdModuleError(
            'The session token%s was refused by %s (%s) for %s of %s: temporary credentials expire; get new ones '
            '(access_key, secret_key and session_token together).' % (creds, store, code, operation, s3_url(bucket, key)),
            reason='expired_token', code=code)
    if code in ('AccessDenied', 'AllAccessDisabled', '403'):
        return EtcdModuleError(
            'Access denied to %s for %s with the credentials%s%s. Grant the credentials s3:GetObject, s3:PutObject, s3:ListBucket (and '
            's3:DeleteObject for prune) on bucket %s, or check the bucket policy, object lock and KMS key permissions.'
            % (where, operation, creds, ': %s' % error_message(exc) if error_message(exc) else ' (403 Forbidden)',
               bucket), reason='access_denied', code=code)
    if code == 'NoSuchBucket':
        return EtcdModuleError(
            'Bucket %s does not exist at %s (%s of %s). Create it, or fix bucket, endpoint_url and region; some '
            'stores need path_style: true for bucket names with dots or when DNS has no bucket entries.'
            % (bucket, store, operation, s3_url(bucket, key)), reason='no_such_bucket', code=code)
    if code in ('NoSuchKey', '404', 'NotFound'):
        return EtcdModuleError(
            'Object %s does not exist (%s). Check key (and prefix); list the bucket with mode=list to see what there is.'
            % (where, operation), reason='no_such_key', code=code)
    if code in ('PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException', '301'):
        return EtcdModuleError(
            'Bucket %s lives in another region than the one the request was signed for (%s of %s at %s). Set region '
            'to the bucket\'s region.' % (bucket, operation, s3_url(bucket, key), store), reason='wrong_region',
            code=code)
    if code == 'InvalidRequest' and 'ObjectLock' in text:
        return EtcdModuleError(
            'Bucket %s at %s has no object lock configuration, so object_lock_mode cannot be set (%s of %s). Use a '
            'bucket created with object lock enabled, or leave object_lock_mode unset.'
            % (bucket, store, operation, s3_url(bucket, key)), reason='object_lock_unavailable', code=code)
    if code in ('KMS.NotFoundException', 'KMS.DisabledException', 'KMSKeyNotFound', 'KMS.AccessDeniedException'):
        return EtcdModuleError(
            'The KMS key for server-side encryption of %s is unusable (%s): check sse_kms_key_id and that the '
            'credentials may use the key.' % (where, code), reason='kms', code=code)
    if code:
        return EtcdModuleError(
            'S3 %s of %s failed: %s %s.' % (operation, where, code, error_message(exc) or text), reason='s3_error',
            code=code)
    return EtcdModuleError('S3 %s of %s failed: %s: %s' % (operation, where, name, text), reason='s3_error')


def parse_retain_until(value, now=None):
    """An ISO 8601 date or date-time as an aware UTC datetime that lies in the future.

    Accepts ``2027-01-31``, ``2027-01-31T12:00:00``, with ``Z`` or ``+HH:MM``; naive times are UTC.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    text = ('%s' % value).strip()
    offset = datetime.timedelta(0)
    match = re.match(r'^(.*?)(Z|[+-]\d\d:?\d\d)$', text) if 'T' in text or ' ' in text else None
    if match:
        text, zone = match.group(1), match.group(2)
        if zone != 'Z':
            sign = -1 if zone[0] == '-' else 1
            digits = zone[1:].replace(':', '')
            offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    parsed = None
    for fmt in ('%Y-%m-%d', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%dT%H:%M', '%Y-%m-%dT%H:%M:%S.%f', '%Y-%m-%d %H:%M:%S'):
        try:
            parsed = datetime.datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        raise EtcdModuleError('object_lock_retain_until %r is not an ISO 8601 date or date-time such as 2027-01-31 or '
                              '2027-01-31T00:00:00Z.' % (value,))
    until = (parsed - offset).replace(tzinfo=datetime.timezone.utc)
    if until <= now:
        raise EtcdModuleError('object_lock_retain_until %s lies in the past (now %s): give a future date.'
                              % (until.strftime('%Y-%m-%dT%H:%M:%SZ'), now.strftime('%Y-%m-%dT%H:%M:%SZ')))
    return until


def retain_until(mode, until=None, days=None, now=None):
    """The retain-until datetime for an object lock mode from an ISO date or a number of days (None without lock)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not mode:
        if until or days:
            raise EtcdModuleError('object_lock_retain_until/object_lock_retain_days need object_lock_mode '
                                  '(GOVERNANCE or COMPLIANCE).')
        return None
    if mode not in OBJECT_LOCK_MODES:
        raise EtcdModuleError('object_lock_mode must be one of %s, not %r.' % (', '.join(OBJECT_LOCK_MODES), mode))
    if until:
        return parse_retain_until(until, now)
    if days is None:
        raise EtcdModuleError('object_lock_mode %s needs object_lock_retain_until or object_lock_retain_days.' % mode)
    if days < 1:
        raise EtcdModuleError('object_lock_retain_days must be at least 1 (got %d).' % days)
    return now + datetime.timedelta(days=days)


def upload_extra_args(sha256, sse=None, kms_key_id=None, lock_mode=None, lock_until=None):
    """ExtraArgs of upload_file: the sha256 metadata, server-side encryption and object lock."""
    extra = {'Metadata': {METADATA_SHA256: sha256}}
    if kms_key_id and sse != 'aws:kms':
        raise EtcdModuleError('sse_kms_key_id needs sse: aws:kms.')
    if sse:
        if sse not in SSE_CHOICES:
            raise EtcdModuleError('sse must be one of %s, not %r.' % (', '.join(SSE_CHOICES), sse))
        extra['ServerSideEncryption'] = sse
        if kms_key_id:
            extra['SSEKMSKeyId'] = kms_key_id
    if lock_mode:
        extra['ObjectLockMode'] = lock_mode
        extra['ObjectLockRetainUntilDate'] = lock_until
        # S3 requires an integrity checksum on every (part) upload that sets a retention period.
        extra['ChecksumAlgorithm'] = 'SHA256'
    return extra


def iso(value):
    """A datetime from boto3 as 2026-11-22T01:35:00Z (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime('%Y-%m-%dT%H:%M:%SZ')


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ObjectStore(object):
    """One bucket through one boto3 client; every failure becomes an EtcdModuleError without credentials."""

    def __init__(self, params, module=None):
        if not HAS_BOTO3:
            raise EtcdModuleError('boto3 is not installed for the Python that runs this task on %s.' % node_name())
        self.settings = client_settings(params)
        self.bucket = params['bucket']
        self.endpoint_url = self.settings['client']['endpoint_url']
        self.store = describe_store(self.endpoint_url, params.get('region'))
        self.module = module
        self.secrets = [params.get('access_key'), params.get('secret_key'), params.get('session_token')]
        self.source = None
        try:
            session = boto3.session.Session(**self.settings['session'])
            credentials = session.get_credentials()
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                self.secrets.extend([frozen.access_key, frozen.secret_key, frozen.token])
                self.source = credential_source(self.settings, getattr(credentials, 'method', None))
            client = dict(self.settings['client'])
            client['config'] = Config(**_config_kwargs(client['config']))
            self.client = session.client('s3', **client)
        except Exception as exc:
            raise self.error(exc, 'client set-up')
        if credentials is None:
            raise self.error(botocore.exceptions.NoCredentialsError(), 'client set-up')

    def error(self, exc, operation, key=None):
        """The EtcdModuleError for exc with every secret of this session redacted."""
        error = exc if isinstance(exc, EtcdModuleError) else translate_error(
            exc, operation, self.store, self.bucket, key, self.source)
        error.msg = redact(error.msg, self.secrets)
        error.args = (error.msg,)
        details = {'bucket': self.bucket, 'endpoint_url': self.endpoint_url}
        if key is not None:
            details['key'] = key
        for name, value in details.items():
            error.details.setdefault(name, value)
        for name, value in list(error.details.items()):
            if isinstance(value, str):
                error.details[name] = redact(value, self.secrets)
        return error

    def where(self, key=None):
        return '%s at %s' % (s3_url(self.bucket, key), self.store)

    def _diagnose_forbidden_head(self, key):
        """HEAD responses carry no body, so a 403 does not say why; a one-byte GET does."""
        try:
            self.client.get_object(Bucket=self.bucket, Key=key, Range='bytes=0-0')['Body'].close()
        except Exception as exc:  # the GET's code names the cause (unknown key, wrong secret, denied)
            if error_code(exc) not in ('NoSuchKey', '404', 'InvalidRange'):
                return exc
        return None

    def head(self, key, version_id=None):
        """head_object as a dict, or None when the object does not exist."""
        kwargs = {'Bucket': self.bucket, 'Key': key}
        if version_id:
            kwargs['VersionId'] = version_id
        try:
            return self.client.head_object(**kwargs)
        except Exception as exc:
            code = error_code(exc)
            if code in ('404', 'NoSuchKey', 'NotFound'):
                return None
            if code == '403':
                exc = self._diagnose_forbidden_head(key) or exc
            raise self.error(exc, 'HeadObject', key)

    @staticmethod
    def object_facts(key, head):
        """What a head_object response says about an object, in the modules' return shape."""
        return {
            'key': key,
            'size': head.get('ContentLength'),
            'sha256': (head.get('Metadata') or {}).get(METADATA_SHA256),
            'etag': (head.get('ETag') or '').strip('"') or None,
            'version_id': head.get('VersionId'),
            'last_modified': iso(head.get('LastModified')),
            'sse': head.get('ServerSideEncryption'),
            'sse_kms_key_id': head.get('SSEKMSKeyId'),
            'object_lock_mode': head.get('ObjectLockMode'),
            'object_lock_retain_until': iso(head.get('ObjectLockRetainUntilDate')),
        }

    def stream_sha256(self, key, version_id=None, sink=None, chunk=CHUNK_SIZE):
        """Stream an object (GET, read in chunks: memory flat in size); returns (size, sha256).

        ``sink``, when given, receives every chunk (the download writes it to the .part file).
        """
        kwargs = {'Bucket': self.bucket, 'Key': key}
        if version_id:
            kwargs['VersionId'] = version_id
        digest = hashlib.sha256()
        size = 0
        try:
            body = self.client.get_object(**kwargs)['Body']
            try:
                while True:
                    block = body.read(chunk)
                    if not block:
                        break
                    digest.update(block)
                    size += len(block)
                    if sink is not None:
                        sink(block)
            finally:
                body.close()
        except EtcdModuleError:
            raise
        except (IOError, OSError) as exc:
            if exc.errno is not None:
                raise
            raise self.error(exc, 'GetObject', key)
        except Exception as exc:
            raise self.error(exc, 'GetObject', key)
        return size, digest.hexdigest()

    def put_file(self, src, key, sha256, extra_args, part_size_mb, verify):
        """Upload src (multipart above one part), then read it back when verify; returns the object facts."""
        part = part_size_mb * 1024 * 1024
        config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=TRANSFER_CONCURRENCY,
                                use_threads=True)
        size = os.path.getsize(src)
        try:
            self.client.upload_file(src, self.bucket, key, ExtraArgs=extra_args, Config=config)
        except Exception as exc:
            raise self.error(exc, 'upload of %s' % src, key)
        head = self.head(key)
        if head is None:
            raise self.error(EtcdModuleError(
                'The upload of %s to %s reported success but the object is not there. Check that the store does not '
                'remove objects at once (lifecycle rules) and run the task again.' % (src, self.where(key))),
                'upload', key)
        facts = self.object_facts(key, head)
        if extra_args.get('ObjectLockMode') and facts['object_lock_mode'] != extra_args['ObjectLockMode']:
            facts = self._apply_retention(key, facts, extra_args['ObjectLockMode'],
                                          extra_args['ObjectLockRetainUntilDate'])
        problems = []
        if facts['size'] != size:
            problems.append('it holds %s bytes, the file %d' % (facts['size'], size))
        if facts['sha256'] != sha256:
            problems.append('its sha256 metadata is %s, not %s' % (facts['sha256'], sha256))
        facts['verified'] = False
        if verify and not problems:
            read_size, read_sha256 = self.stream_sha256(key, facts['version_id'])
            if read_size != size or read_sha256 != sha256:
                problems.append('reading it back gave %d bytes with SHA-256 %s, the file has %d bytes with %s'
                                % (read_size, read_sha256, size, sha256))
            facts['verified'] = not problems
        if problems:
            removed = self._remove_bad_upload(key, facts['version_id'])
            raise self.error(EtcdModuleError(
                'The object %s does not match %s after the upload: %s. %s Did the file change during the upload? '
                'Run the task again.' % (self.where(key), src, '; '.join(problems), removed), object=facts),
                'upload', key)
        return facts

    def _apply_retention(self, key, facts, mode, until):
        """Set the retention of an uploaded object whose store ignored the lock headers of the upload (some stores
        do so for multipart uploads), then check that it holds; a lock that was asked for is never silently lost."""
        kwargs = {'Bucket': self.bucket, 'Key': key, 'Retention': {'Mode': mode, 'RetainUntilDate': until}}
        if facts['version_id']:
            kwargs['VersionId'] = facts['version_id']
        try:
            self.client.put_object_retention(**kwargs)
        except Exception as exc:
            raise self.error(exc, 'PutObjectRetention (the upload itself did not apply object_lock_mode)', key)
        head = self.head(key, facts['version_id'])
        applied = self.object_facts(key, head or {})
        if applied['object_lock_mode'] != mode:
            raise self.error(EtcdModuleError(
                'The object store did not apply object lock %s to %s (it reports %s). The object was uploaded '
                'without the lock; check that the bucket has object lock enabled and that the store supports it.'
                % (mode, self.where(key), applied['object_lock_mode']), reason='object_lock_unavailable'),
                'PutObjectRetention', key)
        return applied

    def _remove_bad_upload(self, key, version_id):
        kwargs = {'Bucket': self.bucket, 'Key': key}
        if version_id:
            kwargs['VersionId'] = version_id
        try:
            self.client.delete_object(**kwargs)
        except Exception as exc:
            return ('The bad object could not be removed (%s): downloads refuse it because its bytes do not match '
                    'its sha256 metadata.' % (error_code(exc) or type(exc).__name__))
        return 'The bad object was removed.'

    def download(self, key, dest, expected_sha256, expected_size, version_id=None, before_rename=None,
                 chunk=CHUNK_SIZE):
        """Stream an object into ``<dest>.part`` (0600), check size and SHA-256, fsync and rename onto dest.

        On any mismatch or error only the .part file is removed, dest is untouched. ``before_rename`` runs once
        the download is verified, right before the rename (to move an old dest aside). Returns (size, sha256).
        """
        directory = os.path.dirname(os.path.abspath(dest))
        make_private_dir(directory)
        part = dest + '.part'
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise EtcdModuleError('Cannot write %s on %s: %s' % (part, node_name(), exc.strerror or exc), file=part)
        renamed = False
        try:
            os.fchmod(fd, 0o600)

            def write(block):
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]

            try:
                size, sha256 = self.stream_sha256(key, version_id, sink=write, chunk=chunk)
                os.fsync(fd)
            except (IOError, OSError) as exc:
                raise EtcdModuleError('Cannot write %s on %s: %s. Check the free space and retry.'
                                      % (part, node_name(), exc.strerror or exc), file=part)
            os.close(fd)
            fd = None
            problems = []
            if expected_size is not None and size != expected_size:
                problems.append('%d bytes arrived, the object is %d bytes' % (size, expected_size))
            if sha256 != expected_sha256:
                problems.append('its SHA-256 is %s, expected %s' % (sha256, expected_sha256))
            if problems:
                raise self.error(EtcdModuleError(
                    'The object %s is corrupted or truncated: %s. The download was discarded and %s was not changed; '
                    'use another backup or upload this one again.' % (self.where(key), '; '.join(problems), dest),
                    dest=dest, size=size, sha256=sha256, expected_sha256=expected_sha256, reason='checksum_mismatch'),
                    'download', key)
            if before_rename is not None:
                before_rename()
            os.rename(part, dest)
            renamed = True
            _fsync_dir(directory)
        finally:
            if fd is not None:
                os.close(fd)
            if not renamed:
                remove_if_exists(part)
        return size, sha256

    def list(self, prefix, with_sha256=False):
        """Objects whose key starts with prefix: [{key, size, last_modified, etag, sha256}] sorted by key."""
        objects = []
        try:
            paginator = self.client.get_paginator('list_objects_v2')
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get('Contents') or []:
                    objects.append({'key': item['Key'], 'size': item['Size'], 'last_modified': iso(item['LastModified']),
                                    'etag': (item.get('ETag') or '').strip('"') or None, 'sha256': None})
        except Exception as exc:
            raise self.error(exc, 'ListObjectsV2 (prefix %r)' % prefix)
        if with_sha256:
            for item in objects:
                head = self.head(item['key'])
                item['sha256'] = ((head or {}).get('Metadata') or {}).get(METADATA_SHA256)
        return sorted(objects, key=lambda item: item['key'])

    def _versions_of(self, keys):
        """(key, version_id) of every version and delete marker of keys."""
        wanted = set(keys)
        found = []
        try:
            paginator = self.client.get_paginator('list_object_versions')
            for key in sorted(wanted):
                for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                    for item in (page.get('Versions') or []) + (page.get('DeleteMarkers') or []):
                        if item['Key'] == key:
                            found.append((key, item['VersionId']))
        except Exception as exc:
            raise self.error(exc, 'ListObjectVersions')
        return found

    def delete(self, keys, all_versions=False):
        """Delete keys with delete_objects in batches; a refusal (object lock, permission) is reported per key.

        Without all_versions a versioned bucket keeps the data as noncurrent versions behind a delete marker.
        Returns {'deleted': [{key, version_id}], 'remaining': [{key, version_id, code, message}]}.
        """
        targets = self._versions_of(keys) if all_versions else [(key, None) for key in sorted(set(keys))]
        deleted, remaining = [], []
        for start in range(0, len(targets), DELETE_BATCH):
            batch = targets[start:start + DELETE_BATCH]
            objects = []
            for key, version_id in batch:
                item = {'Key': key}
                if version_id:
                    item['VersionId'] = version_id
                objects.append(item)
            try:
                response = self.client.delete_objects(Bucket=self.bucket, Delete={'Objects': objects, 'Quiet': False})
            except Exception as exc:
                raise self.error(exc, 'DeleteObjects', batch[0][0])
            for item in response.get('Deleted') or []:
                deleted.append({'key': item['Key'], 'version_id': item.get('VersionId')})
            for item in response.get('Errors') or []:
                remaining.append({'key': item['Key'], 'version_id': item.get('VersionId'), 'code': item.get('Code'),
                                  'message': redact(item.get('Message') or '', self.secrets)})
        return {'deleted': deleted, 'remaining': remaining}


def local_sha256(path):
    """(size, sha256) of a local file, streamed."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise EtcdModuleError('%s does not exist on %s.' % (path, node_name()), file=path)
        raise EtcdModuleError('Cannot read %s on %s: %s' % (path, node_name(), exc.strerror or exc), file=path)
    return size, sha256_file(path)


def aside_suffix(now=None):
    """Suffix for a file moved aside before a forced download replaces it."""
    return 'replaced-%s' % timestamp(now)
