#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_object_store
short_description: Put, get, list and prune etcd backups in S3-compatible object storage
version_added: 0.2.0
description:
  - Moves etcd backup files to and from any S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...) through boto3,
    on the host the task runs on (a control-plane node, or the ops box with C(delegate_to=localhost)).
  - Every uploaded object carries the hex SHA-256 of its bytes as user metadata C(sha256) (C(x-amz-meta-sha256)).
    O(mode=put) reads the object back after the upload and compares; O(mode=get) compares every download with it
    (and with O(expected_sha256)) before the file is put in place.
  - Credentials are never printed, also not at C(-vvv) and not in error messages, whatever their source.
  - O(mode=put) uploads O(src) (multipart above one part, memory flat in the file size), optionally with server-side
    encryption and object lock. An object with the same C(sha256) metadata and size is left as it is.
  - O(mode=get) streams the object into C(<dest>.part) (0600), checks size and SHA-256, syncs it to disk and renames
    it onto O(dest). A corrupted or truncated object is refused; only the C(.part) file is removed and O(dest) is not
    touched.
  - O(mode=list) lists the objects under O(prefix).
  - O(mode=prune) applies a retention policy (the one of M(kubeops.etcd.etcd_backup_prune)) to the backup sets of
    O(cluster_name) under O(prefix). Only objects whose names this collection writes are candidates.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  mode:
    description:
      - What to do.
    type: str
    required: true
    choices: [put, get, list, prune]
  bucket:
    description:
      - The bucket name.
    type: str
    required: true
  endpoint_url:
    description:
      - URL of an S3-compatible store, for example V(https://minio.example.com:9000).
      - Leave it unset for AWS S3 (then O(region) or the AWS configuration picks the endpoint).
      - With a V(http://) URL the objects travel unencrypted (the secret key does not, requests are signed); the module
        then warns.
    type: str
  region:
    description:
      - The bucket's region. When not set, C(AWS_REGION), C(AWS_DEFAULT_REGION) or the profile decide.
      - MinIO and Ceph accept any region unless configured otherwise; V(us-east-1) is the usual choice.
    type: str
  path_style:
    description:
      - Address buckets as C(https://endpoint/bucket/key) instead of C(https://bucket.endpoint/key).
      - Needed by most self-hosted stores (MinIO, Ceph RGW) and for bucket names with dots over TLS.
    type: bool
    default: false
  ca_bundle:
    description:
      - PEM file of the CA(s) that signed the store's TLS certificate (a private CA). When not set, botocore's bundle
        or C(AWS_CA_BUNDLE) is used.
      - TLS certificates are always verified; there is no option to turn that off.
    type: path
  profile:
    description:
      - A profile of the AWS configuration files (C(~/.aws/config), C(~/.aws/credentials)) of the user the task runs as.
      - Mutually exclusive with O(access_key).
    type: str
  access_key:
    description:
      - The access key id. Give it with O(secret_key).
      - When neither these options nor O(profile) are set, boto3's standard chain applies (C(AWS_ACCESS_KEY_ID),
        C(AWS_SECRET_ACCESS_KEY), C(AWS_SESSION_TOKEN), C(AWS_PROFILE), the configuration files, an instance role).
        A task on localhost inherits these variables from the C(ansible-playbook) process.
      - Do not pass credentials with the task keyword C(environment); Ansible prints those values in its command lines
        at C(-vvv). These options are C(no_log) and never printed.
    type: str
  secret_key:
    description:
      - The secret access key belonging to O(access_key).
    type: str
  session_token:
    description:
      - The session token of temporary credentials (STS), with O(access_key) and O(secret_key).
    type: str
  timeout:
    description:
      - Seconds to wait for a connection and for each read from the store.
    type: int
    default: 60
  retries:
    description:
      - Attempts per request (botocore's standard retry mode, exponential back-off) before the task fails.
    type: int
    default: 5
  key:
    description:
      - The object key, for O(mode=put) and O(mode=get).
      - For O(mode=put) it defaults to O(prefix) followed by the file name of O(src).
    type: str
  prefix:
    description:
      - A key prefix treated as a folder (a C(/) is added when missing).
      - O(mode=put) uploads to C(<prefix>/<file name of src>) when O(key) is not set; O(mode=list) and O(mode=prune)
        look only below it.
    type: str
    default: ''
  src:
    description:
      - The file to upload (O(mode=put)).
    type: path
  dest:
    description:
      - Where to write the object (O(mode=get)). Missing parent directories are created with mode 0700; the file gets
        mode 0600.
    type: path
  sse:
    description:
      - Server-side encryption of the uploaded object (O(mode=put)).
    type: str
    choices: [AES256, aws:kms]
  sse_kms_key_id:
    description:
      - The KMS key for O(sse=aws:kms); the store's default key when not set.
    type: str
  object_lock_mode:
    description:
      - Object lock retention mode for the uploaded object (O(mode=put)). The bucket must have object lock enabled.
      - C(GOVERNANCE) can be lifted by users with a special permission, C(COMPLIANCE) by nobody until the date.
      - Needs O(object_lock_retain_until) or O(object_lock_retain_days).
    type: str
    choices: [GOVERNANCE, COMPLIANCE]
  object_lock_retain_until:
    description:
      - Keep the object locked until this date (ISO 8601, V(2027-01-31) or V(2027-01-31T00:00:00Z); UTC unless an
        offset is given). Must lie in the future.
    type: str
  object_lock_retain_days:
    description:
      - Keep the object locked for this many days from now.
    type: int
  multipart_chunk_size_mb:
    description:
      - Part size of multipart uploads in MiB (at least 5, the S3 minimum). Files larger than one part are uploaded in
        parts, up to 4 at once, so memory stays near 5 parts whatever the file size.
      - boto3 raises the part size by itself when a file would need more than 10000 parts.
    type: int
    default: 16
  verify:
    description:
      - After O(mode=put), read the whole object back and compare its size and SHA-256 with the file.
      - This downloads every uploaded byte once more (time, and egress charges on some clouds); without it only the
        object's size and C(sha256) metadata are checked.
    type: bool
    default: true
  expected_sha256:
    description:
      - For O(mode=get), the SHA-256 (hex) the object must have, for example from the backup's metadata file.
      - When the object also carries C(sha256) metadata, both must agree. An object without that metadata can only be
        fetched with this option.
    type: str
  force:
    description:
      - For O(mode=get), replace an existing O(dest) whose content differs from the object. The old file is moved
        aside to C(<dest>.replaced-<UTC timestamp>), never deleted.
      - An existing O(dest) with the object's content is never touched.
    type: bool
    default: false
  with_sha256:
    description:
      - For O(mode=list), also read each object's C(sha256) metadata (one HEAD request per object).
    type: bool
    default: false
  cluster_name:
    description:
      - For O(mode=prune), the cluster name the backup object names start with (C(etcd_backup_cluster_name)).
    type: str
  policy:
    description:
      - For O(mode=prune), the retention policy; the same rules as M(kubeops.etcd.etcd_backup_prune). Without any rule
        nothing is pruned.
      - A backup set counts as verified when its C(.db.meta.json) object exists and its snapshot object carries
        C(sha256) metadata.
    type: dict
    suboptions:
      keep_last:
        description:
          - Keep the N newest verified sets.
        type: int
      keep_within:
        description:
          - Keep every set taken within this duration before now, verified or not (seconds, or V(90m), V(36h), V(7d),
            V(4w), V(1d12h)).
        type: raw
      hourly:
        description:
          - Keep the newest verified set of each of the N most recent hours (UTC) that have one.
        type: int
      daily:
        description:
          - Keep the newest verified set of each of the N most recent days (UTC) that have one.
        type: int
      weekly:
        description:
          - Keep the newest verified set of each of the N most recent ISO weeks (UTC) that have one.
        type: int
      monthly:
        description:
          - Keep the newest verified set of each of the N most recent months (UTC) that have one.
        type: int
  delete_versions:
    description:
      - For O(mode=prune), delete every stored version of the pruned keys, not only the current one.
      - Without it, a versioned bucket (every bucket with object lock is versioned) keeps the pruned data as
        noncurrent versions behind a delete marker until a lifecycle rule removes them.
      - Versions still under object lock retention are refused by the store; they are listed in RV(remaining) and the
        other deletions go ahead. Governance retention is never bypassed.
    type: bool
    default: false
requirements:
  - boto3 (and botocore) for the Python that runs the task, on the host the task runs on (the ops box, or the node when
    uploading straight from it). Debian/Ubuntu package C(python3-boto3), or C(pip install boto3).
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
    details:
      - O(mode=put) and O(mode=get) read the object's metadata (HEAD) and report whether they would transfer;
        O(mode=prune) lists the sets it would delete and why. Nothing is written.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - O(mode=put) skips an object with the same C(sha256) metadata and size; O(mode=get) skips a O(dest) with the
        object's content; a second O(mode=prune) deletes nothing (until time lets more sets go).
notes:
  - 'Permissions the credentials need: C(s3:PutObject), C(s3:GetObject) and C(s3:ListBucket) (HEAD of a missing object
    is reported as 403 without it); C(s3:DeleteObject) (and C(s3:ListBucketVersions), C(s3:DeleteObjectVersion) with
    O(delete_versions)) for O(mode=prune); C(s3:PutObjectRetention) for object lock; C(kms:GenerateDataKey) and
    C(kms:Decrypt) for O(sse=aws:kms).'
  - With object lock, every part of a multipart upload carries a SHA-256 checksum, which S3 requires for objects
    with retention.
  - For stores other than AWS (O(endpoint_url) set), the default request checksums of botocore 1.36+ are limited to
    the operations that need them, since several S3-compatible stores refuse them; the SHA-256 check of this module
    covers integrity end to end.
seealso:
  - module: kubeops.etcd.etcd_backup_prune
  - module: kubeops.etcd.etcd_snapshot
'''

EXAMPLES = r'''
# Credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of the ansible-playbook process
# (an AWX "Amazon Web Services" credential sets them), which a task on localhost inherits.
- name: Upload a snapshot to AWS S3 with KMS encryption from the ops box
  kubeops.etcd.etcd_object_store:
    mode: put
    bucket: acme-etcd-backups
    region: eu-central-1
    prefix: prod-eu-1
    src: /var/backups/etcd/kubernetes-20261122T013500Z-rev4242.db
    sse: aws:kms
    sse_kms_key_id: alias/etcd-backups
  delegate_to: localhost

- name: Upload to MinIO with a private CA and a 30-day compliance lock
  kubeops.etcd.etcd_object_store:
    mode: put
    endpoint_url: https://minio.backup.example.com:9000
    region: us-east-1
    path_style: true
    ca_bundle: /etc/ssl/private-ca.pem
    bucket: etcd
    key: prod/kubernetes-20261122T013500Z-rev4242.db
    src: /var/backups/etcd/kubernetes-20261122T013500Z-rev4242.db
    access_key: "{{ vault_minio_access_key }}"
    secret_key: "{{ vault_minio_secret_key }}"
    object_lock_mode: COMPLIANCE
    object_lock_retain_days: 30
    multipart_chunk_size_mb: 64

- name: Download a snapshot, checked against the SHA-256 in its metadata
  kubeops.etcd.etcd_object_store:
    mode: get
    endpoint_url: https://minio.backup.example.com:9000
    path_style: true
    bucket: etcd
    key: prod/kubernetes-20261122T013500Z-rev4242.db
    dest: /var/lib/kubeops-etcd/restore/kubernetes-20261122T013500Z-rev4242.db
    expected_sha256: "{{ etcd_metadata.sha256 }}"
    profile: backup

- name: List the backups of the prod cluster with their SHA-256
  kubeops.etcd.etcd_object_store:
    mode: list
    bucket: acme-etcd-backups
    prefix: prod-eu-1
    with_sha256: true
  register: etcd_objects

- name: Keep 7 daily, 4 weekly and 6 monthly backups in the bucket
  kubeops.etcd.etcd_object_store:
    mode: prune
    bucket: acme-etcd-backups
    prefix: prod-eu-1
    cluster_name: kubernetes
    policy:
      daily: 7
      weekly: 4
      monthly: 6
'''

RETURN = r'''
bucket:
  description: The bucket.
  returned: always
  type: str
  sample: acme-etcd-backups
key:
  description: The object key (O(mode=put) and O(mode=get)).
  returned: when mode is put or get
  type: str
  sample: prod-eu-1/kubernetes-20261122T013500Z-rev4242.db
size:
  description: Size of the object (and of the file) in bytes.
  returned: when mode is put or get
  type: int
  sample: 20971552
sha256:
  description: SHA-256 (hex) of the object's bytes.
  returned: when mode is put or get
  type: str
  sample: 1041d7d203aa1f2c20344e06fcac1ac2937fe148d46f6b34f6a69c74d1f3546c
etag:
  description: The object's ETag (not a content hash for multipart uploads). V(null) in check mode before an upload.
  returned: when mode is put
  type: str
  sample: 5e3f1c8e3e1c7f0d0b8c3a9f3f0a7d21-2
version_id:
  description: The object's version id in a versioned bucket, else V(null).
  returned: when mode is put
  type: str
  sample: 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY
verified:
  description: For O(mode=put), whether the object was read back and matched the file.
  returned: when mode is put
  type: bool
  sample: true
object:
  description: What the store reports about the object after O(mode=put) (V(null) in check mode before an upload).
  returned: when mode is put
  type: dict
  contains:
    sse:
      description: Server-side encryption the store applied.
      type: str
      sample: AES256
    object_lock_mode:
      description: Object lock mode of the object.
      type: str
      sample: COMPLIANCE
    object_lock_retain_until:
      description: Retain-until date of the object, ISO 8601 UTC.
      type: str
      sample: "2026-12-22T01:35:00Z"
    last_modified:
      description: When the object was written, ISO 8601 UTC.
      type: str
      sample: "2026-11-22T01:35:07Z"
dest:
  description: The downloaded file (O(mode=get)).
  returned: when mode is get
  type: str
  sample: /var/lib/kubeops-etcd/restore/kubernetes-20261122T013500Z-rev4242.db
moved_aside:
  description: For O(mode=get) with O(force), where the replaced O(dest) was moved; V(null) when nothing was.
  returned: when mode is get
  type: str
  sample: /var/lib/kubeops-etcd/restore/kubernetes.db.replaced-20261122T013500Z
objects:
  description: The objects under O(prefix), sorted by key (O(mode=list)).
  returned: when mode is list
  type: list
  elements: dict
  contains:
    key:
      description: The object key.
      type: str
      sample: prod-eu-1/kubernetes-20261122T013500Z-rev4242.db
    size:
      description: Size in bytes.
      type: int
      sample: 20971552
    last_modified:
      description: When it was written, ISO 8601 UTC.
      type: str
      sample: "2026-11-22T01:35:07Z"
    sha256:
      description: Its C(sha256) metadata; V(null) without O(with_sha256) or when the object has none.
      type: str
      sample: 1041d7d203aa1f2c20344e06fcac1ac2937fe148d46f6b34f6a69c74d1f3546c
prefix:
  description: The prefix as a folder (with a trailing C(/)), for O(mode=list) and O(mode=prune).
  returned: when mode is list or prune
  type: str
  sample: prod-eu-1/
policy:
  description: The policy as applied (O(mode=prune)), every rule present, O(policy.keep_within) in seconds.
  returned: when mode is prune
  type: dict
  sample: {"keep_last": 0, "keep_within": 0, "hourly": 0, "daily": 7, "weekly": 4, "monthly": 6}
kept:
  description: The backup sets kept (O(mode=prune)), newest first.
  returned: when mode is prune
  type: list
  elements: dict
  contains:
    id:
      description: C(<cluster>-<timestamp>), what every object name of the set starts with.
      type: str
      sample: kubernetes-20261130T230000Z
    taken:
      description: When the backup was taken (from the name), ISO 8601 UTC.
      type: str
      sample: "2026-11-30T23:00:00Z"
    keys:
      description: The object keys of the set.
      type: list
      elements: str
      sample: [prod-eu-1/kubernetes-20261130T230000Z-rev4242.db, prod-eu-1/kubernetes-20261130T230000Z-rev4242.db.meta.json]
    verified:
      description: Whether the set is verified (metadata object present, snapshot object with C(sha256) metadata).
      type: bool
      sample: true
    reasons:
      description: Why it is kept (or pruned), one sentence per rule.
      type: list
      elements: str
      sample: [newest verified backup, "daily: newest of 2026-11-30"]
pruned:
  description: The backup sets deleted (in check mode, that would be deleted), newest first; same keys as RV(kept).
  returned: when mode is prune
  type: list
  elements: dict
  sample:
    - id: kubernetes-20261101T000000Z
      taken: "2026-11-01T00:00:00Z"
      keys: [prod-eu-1/kubernetes-20261101T000000Z-rev4000.db, prod-eu-1/kubernetes-20261101T000000Z-rev4000.db.meta.json]
      verified: true
      reasons: ["kept by no rule of the policy (daily=7)"]
deleted:
  description: The keys (and version ids with O(delete_versions)) the store deleted (O(mode=prune)).
  returned: when mode is prune
  type: list
  elements: dict
  sample: [{"key": "prod-eu-1/kubernetes-20261101T000000Z-rev4000.db", "version_id": null}]
remaining:
  description:
    - Keys (versions) of pruned sets the store refused to delete, with its error code and message.
    - A version under object lock retention is refused by design; it is only reported here. Any other refusal (such as
      missing permissions) fails the task after the other deletions were done.
  returned: when mode is prune
  type: list
  elements: dict
  sample: [{"key": "prod-eu-1/kubernetes-20261101T000000Z-rev4000.db", "version_id": "3HL4kqt", "code": "AccessDenied",
            "message": "Access Denied because object protected by object lock."}]
ignored:
  description: Names under O(prefix) that are not this cluster's backups (O(mode=prune)); never touched.
  returned: when mode is prune
  type: list
  elements: str
  sample: [README, other-cluster-20261130T230000Z.db]
msg:
  description: One line saying what was done.
  returned: always
  type: str
  sample: Uploaded /var/backups/etcd/kubernetes.db to s3://etcd/prod/kubernetes.db (20971552 bytes), read back and verified.
'''

import datetime
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import move_aside
from ansible_collections.kubeops.etcd.plugins.module_utils.objstore import (
    BOTO3_IMPORT_ERROR, HAS_BOTO3, METADATA_SHA256, MIN_PART_SIZE_MB, ObjectStore, aside_suffix, derive_key, is_sha256,
    local_sha256, normalise_prefix, redact, retain_until, s3_url, store_argument_spec, upload_extra_args)
from ansible_collections.kubeops.etcd.plugins.module_utils.retention import (
    group_backup_sets, iso_utc, parse_policy, plan_retention)


def run_put(module, store):
    params = module.params
    src = params['src']
    if not os.path.isfile(src):
        raise EtcdModuleError('src %s does not exist on %s (or is not a regular file).' % (src, node_name()), file=src)
    if src.endswith('.part'):
        raise EtcdModuleError('%s on %s is an unfinished file (.part); upload a completed backup.' % (src, node_name()),
                              file=src)
    if params['multipart_chunk_size_mb'] < MIN_PART_SIZE_MB:
        raise EtcdModuleError('multipart_chunk_size_mb must be at least %d (the S3 minimum part size), not %d.'
                              % (MIN_PART_SIZE_MB, params['multipart_chunk_size_mb']))
    key = derive_key(params['key'], params['prefix'], src)
    until = retain_until(params['object_lock_mode'], params['object_lock_retain_until'],
                         params['object_lock_retain_days'])
    size, sha256 = local_sha256(src)
    extra = upload_extra_args(sha256, params['sse'], params['sse_kms_key_id'], params['object_lock_mode'], until)
    result = dict(bucket=store.bucket, key=key, size=size, sha256=sha256, etag=None, version_id=None, verified=False,
                  object=None)

    existing = store.head(key)
    if existing is not None:
        facts = store.object_facts(key, existing)
        if facts['sha256'] == sha256 and facts['size'] == size:
            result.update(etag=facts['etag'], version_id=facts['version_id'], object=facts)
            result['msg'] = '%s already holds %s (same size and sha256 metadata); nothing was uploaded.' % (
                s3_url(store.bucket, key), src)
            return False, result
    if module.check_mode:
        result['msg'] = 'Would upload %s (%d bytes) to %s%s.' % (
            src, size, s3_url(store.bucket, key), ', replacing a different object' if existing is not None else '')
        return True, result

    facts = store.put_file(src, key, sha256, extra, params['multipart_chunk_size_mb'], params['verify'])
    result.update(etag=facts['etag'], version_id=facts['version_id'], verified=facts['verified'], object=facts)
    result['msg'] = 'Uploaded %s to %s (%d bytes)%s.' % (
        src, s3_url(store.bucket, key), size,
        ', read back and verified' if facts['verified'] else '; size and sha256 metadata checked (verify is off)')
    return True, result


def run_get(module, store):
    params = module.params
    key, dest = params['key'], params['dest']
    expected = (params['expected_sha256'] or '').strip().lower() or None
    if expected is not None and not is_sha256(expected):
        raise EtcdModuleError('expected_sha256 %r is not a hex SHA-256 (64 characters 0-9a-f).'
                              % params['expected_sha256'])
    if dest.endswith('/') or os.path.isdir(dest):
        raise EtcdModuleError('dest %s on %s is a directory: give the path of the file to write.' % (dest, node_name()),
                              file=dest)
    head = store.head(key)
    if head is None:
        raise store.error(EtcdModuleError(
            'Object %s does not exist. Check key (and prefix); mode=list shows what the bucket holds.'
            % store.where(key), reason='no_such_key'), 'HeadObject', key)
    facts = store.object_facts(key, head)
    recorded = (facts['sha256'] or '').lower() or None
    if recorded is not None and expected is not None and recorded != expected:
        raise store.error(EtcdModuleError(
            'Object %s carries sha256 metadata %s but expected_sha256 is %s: it is another object than the one you '
            'expect. Nothing was downloaded.' % (store.where(key), recorded, expected), reason='checksum_mismatch'),
            'download', key)
    reference = expected or recorded
    if reference is None:
        raise store.error(EtcdModuleError(
            'Object %s has no sha256 metadata (it was not uploaded by this collection), so its download cannot be '
            'verified. Give expected_sha256.' % store.where(key), reason='no_checksum'), 'download', key)
    result = dict(bucket=store.bucket, key=key, dest=dest, size=facts['size'], sha256=reference, moved_aside=None)

    if os.path.exists(dest):
        size, current = local_sha256(dest)
        if current == reference and size == facts['size']:
            result['msg'] = '%s on %s already holds %s; nothing was downloaded.' % (
                dest, node_name(), s3_url(store.bucket, key))
            return False, result
        if not params['force']:
            raise EtcdModuleError(
                '%s exists on %s with other content (SHA-256 %s) than %s (%s). Set force: true to move it aside and '
                'download, or choose another dest.' % (dest, node_name(), current, s3_url(store.bucket, key), reference),
                file=dest, dest=dest)
    if module.check_mode:
        result['msg'] = 'Would download %s (%s bytes) to %s on %s%s.' % (
            s3_url(store.bucket, key), facts['size'], dest, node_name(),
            ', moving the existing file aside' if os.path.exists(dest) else '')
        return True, result

    def move_old_dest_aside():
        if os.path.exists(dest):
            result['moved_aside'] = move_aside(dest, aside_suffix())

    # Only the version checked above: an object replaced meanwhile must not be mixed in.
    size, sha256 = store.download(key, dest, reference, facts['size'], facts['version_id'],
                                  before_rename=move_old_dest_aside)
    result.update(size=size, sha256=sha256)
    result['msg'] = 'Downloaded %s to %s on %s (%d bytes, SHA-256 verified).' % (
        s3_url(store.bucket, key), dest, node_name(), size)
    return True, result


def run_list(module, store):
    prefix = normalise_prefix(module.params['prefix'])
    objects = store.list(prefix, with_sha256=module.params['with_sha256'])
    for item in objects:
        item.pop('etag', None)
    return False, dict(bucket=store.bucket, prefix=prefix, objects=objects,
                       msg='%d objects under %s.' % (len(objects), s3_url(store.bucket, prefix)))


def run_prune(module, store):
    params = module.params
    prefix = normalise_prefix(params['prefix'])
    cluster = params['cluster_name']
    if not cluster or cluster != cluster.strip() or '/' in cluster:
        raise EtcdModuleError('cluster_name %r is not a cluster name: give the name the backup objects start with, '
                              'e.g. kubernetes for kubernetes-20261122T020000Z-rev42.db. Nothing was deleted.' % cluster)
    try:
        policy = parse_policy(dict((name, value) for name, value in (params['policy'] or {}).items()
                                   if value is not None))
    except ValueError as exc:
        raise EtcdModuleError('Bad retention policy for %s: %s. Nothing was deleted.'
                              % (s3_url(store.bucket, prefix), exc))

    names = [item['key'][len(prefix):] for item in store.list(prefix)]
    sets, ignored = group_backup_sets(names, cluster)
    for backup_set in sets:
        backup_set['verified'] = bool(
            backup_set['metadata'] and backup_set['snapshot']
            and ((store.head(prefix + backup_set['snapshot']) or {}).get('Metadata') or {}).get(METADATA_SHA256))
    verified = dict((backup_set['id'], backup_set['verified']) for backup_set in sets)
    plan = plan_retention(sets, policy, datetime.datetime.now(datetime.timezone.utc))

    def describe(entry):
        return {'id': entry['id'], 'taken': iso_utc(entry['taken']), 'keys': [prefix + name for name in entry['files']],
                'verified': verified[entry['id']], 'reasons': entry['reasons']}

    result = dict(bucket=store.bucket, prefix=prefix, policy=policy, kept=[describe(e) for e in plan['keep']],
                  pruned=[describe(e) for e in plan['prune']], ignored=ignored, deleted=[], remaining=[])
    keys = [key for entry in result['pruned'] for key in entry['keys']]
    where = s3_url(store.bucket, prefix)
    if module.check_mode or not keys:
        result['msg'] = '%s %d and %s %d backup sets of cluster %s under %s (%d objects).' % (
            'Would keep' if module.check_mode else 'Kept', len(result['kept']),
            'prune' if module.check_mode else 'pruned', len(result['pruned']), cluster, where, len(keys))
        return bool(keys), result

    outcome = store.delete(keys, all_versions=params['delete_versions'])
    result.update(outcome)
    result['msg'] = 'Kept %d and pruned %d backup sets of cluster %s under %s: %d deletions%s.' % (
        len(result['kept']), len(result['pruned']), cluster, where, len(outcome['deleted']),
        ', %d refused (see remaining)' % len(outcome['remaining']) if outcome['remaining'] else '')
    unexpected = [item for item in outcome['remaining'] if 'lock' not in (item['message'] or '').lower()]
    if unexpected:
        raise EtcdModuleError(
            '%s The store refused to delete %s: %s. Check that the credentials may delete objects '
            '(s3:DeleteObject, s3:DeleteObjectVersion).' % (
                result['msg'], ', '.join(item['key'] for item in unexpected),
                '; '.join('%s %s' % (item['code'], item['message']) for item in unexpected)),
            **dict((name, value) for name, value in result.items() if name != 'msg'))
    return True, result


MODES = {'put': run_put, 'get': run_get, 'list': run_list, 'prune': run_prune}


def main():
    argument_spec = store_argument_spec()
    argument_spec.update(
        mode=dict(type='str', required=True, choices=list(MODES)),
        key=dict(type='str', no_log=False),
        prefix=dict(type='str', default=''),
        src=dict(type='path'),
        dest=dict(type='path'),
        sse=dict(type='str', choices=['AES256', 'aws:kms']),
        sse_kms_key_id=dict(type='str', no_log=False),
        object_lock_mode=dict(type='str', choices=['GOVERNANCE', 'COMPLIANCE']),
        object_lock_retain_until=dict(type='str'),
        object_lock_retain_days=dict(type='int'),
        multipart_chunk_size_mb=dict(type='int', default=16),
        verify=dict(type='bool', default=True),
        expected_sha256=dict(type='str'),
        force=dict(type='bool', default=False),
        with_sha256=dict(type='bool', default=False),
        cluster_name=dict(type='str'),
        policy=dict(type='dict', options=dict(
            keep_last=dict(type='int'),
            keep_within=dict(type='raw'),
            hourly=dict(type='int'),
            daily=dict(type='int'),
            weekly=dict(type='int'),
            monthly=dict(type='int'),
        )),
        delete_versions=dict(type='bool', default=False),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[
            ('mode', 'put', ['src']),
            ('mode', 'get', ['key', 'dest']),
            ('mode', 'prune', ['cluster_name', 'policy']),
        ],
        required_together=[('access_key', 'secret_key')],
        mutually_exclusive=[('object_lock_retain_until', 'object_lock_retain_days'), ('profile', 'access_key')],
    )
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR)
    params = module.params
    if params['key'] and normalise_prefix(params['prefix']) and params['mode'] in ('put', 'get'):
        module.fail_json(msg='Give either key (the full object key) or prefix (a folder for the file name of src), '
                             'not both.')
    if (params['endpoint_url'] or '').startswith('http://'):
        module.warn('endpoint_url %s is plain HTTP: backups (which hold every Secret of the cluster unless encrypted) '
                    'travel unencrypted. Use https://.' % params['endpoint_url'])
    try:
        store = ObjectStore(params, module)
        changed, result = MODES[params['mode']](module, store)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        # Ansible masks the no_log options; credentials from the environment are masked here.
        secrets = [params['access_key'], params['secret_key'], params['session_token']] + [
            os.environ.get(name) for name in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN')]
        module.fail_json(msg=redact('Unexpected error on %s: %s' % (node_name(), exc), secrets),
                         exception=redact(traceback.format_exc(), secrets))
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
