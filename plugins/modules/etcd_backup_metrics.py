#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_backup_metrics
short_description: Record an etcd backup run as Prometheus textfile metrics and a JSON report
version_added: 0.3.0
description:
  - Records the outcome of one backup run, successful or not, so that a stale or failing backup can alert.
  - With O(textfile_dir), writes the Prometheus text exposition file C(<textfile_dir>/<file_name>) that node_exporter's
    textfile collector (C(--collector.textfile.directory)) exposes. Every series carries a C(cluster) label
    (O(cluster_name)); one file holds any number of clusters, and a run replaces only its own cluster's series.
  - The metrics are C(kubeops_etcd_backup_last_success_timestamp_seconds) (0 until a run of the cluster succeeded),
    C(kubeops_etcd_backup_last_attempt_timestamp_seconds), C(kubeops_etcd_backup_last_duration_seconds),
    C(kubeops_etcd_backup_success) (1 or 0, of the last attempt), C(kubeops_etcd_backup_failures_total) (a counter,
    one more on every failed run), and of the last B(successful) backup, kept unchanged by a failed run,
    C(kubeops_etcd_backup_last_size_bytes), C(kubeops_etcd_backup_last_revision), C(kubeops_etcd_backup_last_total_keys),
    C(kubeops_etcd_backup_plaintext_secrets) (when O(report) counts them) and C(kubeops_etcd_backup_uploaded) (when
    O(report) has C(uploaded)).
  - The previous file is read to keep the failure counter, the last success and the other clusters' series. A missing
    or garbled file never fails the task; what cannot be parsed is dropped and the cluster starts afresh.
  - The file is written atomically (a temporary file in the same directory, fsync, rename) with mode C(0644), so
    node_exporter never reads half a file; metrics hold no secrets. A missing O(textfile_dir) is created with mode
    C(0755). Concurrent runs for several clusters on one host take turns (an exclusive lock on O(textfile_dir)), so
    no run loses another's series.
  - With O(report_path), writes the run's JSON report (C(format) 1, documented in RV(report)) there, atomically with
    mode C(0600); missing directories are created with mode C(0700).
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  textfile_dir:
    description:
      - node_exporter's textfile collector directory (its C(--collector.textfile.directory)), for example
        C(/var/lib/prometheus/node-exporter) (Debian and Ubuntu's C(prometheus-node-exporter) package) or
        C(/var/lib/node_exporter/textfile_collector).
      - At least one of O(textfile_dir) and O(report_path) is required.
    type: path
  file_name:
    description:
      - Name of the metrics file in O(textfile_dir). The textfile collector reads only names ending in C(.prom).
    type: str
    default: kubeops_etcd_backup.prom
  cluster_name:
    description:
      - Name of the cluster, the value of every series' C(cluster) label and the report's C(cluster).
    type: str
    required: true
  outcome:
    description:
      - Whether the backup run succeeded.
    type: str
    required: true
    choices: [success, failure]
  report:
    description:
      - What the run gathered, with the keys of RV(report) (all optional but V(format) is implied); numbers may be
        strings and times Unix seconds or ISO 8601 UTC.
      - The parts take the collection's module results as they are. C(snapshot) a M(kubeops.etcd.etcd_snapshot) result
        (a C(path) key wins over its C(dest), for the copy on the ops box), C(secrets) its C(secrets);
        C(encrypted) and C(compression) a M(kubeops.etcd.etcd_backup_crypt) result; C(uploaded) the loop results of
        M(kubeops.etcd.etcd_object_store) (skipped items are left out); each C(retention) destination a prune result
        with C(kept) and C(pruned) (lists of backup ids or of dicts with an C(id)); V(null) or skipped is left out.
      - C(finished) defaults to the time of this task, C(duration_seconds) to C(finished) - C(started).
      - A key that is not one of RV(report) or a wrong value fails the task, naming the key.
    type: dict
    default: {}
  report_path:
    description:
      - Where to write the JSON report, for example beside the snapshot as C(<cluster>-<timestamp>.report.json),
        the name the collection's retention recognises.
    type: path
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module computes the metrics and the report, returns them (and the diff) and writes nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the metrics file before and after.
  idempotent:
    support: none
    details:
      - Every run records an attempt (its time, and on failure one more failure), so every run changes the file.
notes:
  - Run the task on the host whose node_exporter should export the metrics, also when the backup failed (for example
    in the C(rescue) or C(always) section of the backup), otherwise only C(kubeops_etcd_backup_last_success_timestamp_seconds)
    growing old tells of the failure.
  - docs/monitoring.md of the collection has alert rules for these metrics.
seealso:
  - module: kubeops.etcd.etcd_snapshot
  - name: node_exporter textfile collector
    description: How node_exporter exposes metrics written to files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
'''

EXAMPLES = r'''
- name: Record the successful backup for node_exporter and write its report beside the snapshot
  kubeops.etcd.etcd_backup_metrics:
    textfile_dir: /var/lib/prometheus/node-exporter
    cluster_name: prod-eu1
    outcome: success
    report:
      started: "{{ backup_started }}"
      snapshot: "{{ snapshot_result }}"
      uploaded:
        - bucket: etcd-backups
          key: prod-eu1/prod-eu1-20261122T013500Z-rev48213.db.zst.age
          size: 10231808
          sha256: 8c5b0f2e6a1d4e3f9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f
      secrets:
        secrets_total: 42
        secrets_plaintext: 40
    report_path: /var/backups/etcd/prod-eu1-20261122T013500Z-rev48213.report.json
  register: backup_record

- name: Print the summary of the run
  ansible.builtin.debug:
    msg: "{{ backup_record.summary }}"

- name: Record a failed backup (in the rescue section of the backup block)
  kubeops.etcd.etcd_backup_metrics:
    textfile_dir: /var/lib/prometheus/node-exporter
    cluster_name: prod-eu1
    outcome: failure
    report:
      started: "{{ backup_started }}"
      failure:
        step: snapshot
        host: "{{ ansible_failed_task.name | default('') }}"
        message: "{{ ansible_failed_result.msg | default('unknown') }}"
'''

RETURN = r'''
metrics_path:
  description: The metrics file; V(null) without O(textfile_dir).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/kubeops_etcd_backup.prom
report_path:
  description: The JSON report file; V(null) without O(report_path).
  returned: always
  type: str
  sample: /var/backups/etcd/prod-eu1-20261122T013500Z-rev48213.report.json
metrics:
  description: The text of the metrics file after this run (in check mode, what it would be); V(null) without
    O(textfile_dir).
  returned: always
  type: str
  sample: |
    # HELP kubeops_etcd_backup_success Whether the last etcd backup attempt succeeded (1) or failed (0).
    # TYPE kubeops_etcd_backup_success gauge
    kubeops_etcd_backup_success{cluster="prod-eu1"} 1
summary:
  description: The run in a few lines, for the log.
  returned: always
  type: list
  elements: str
  sample:
    - "etcd backup of cluster prod-eu1: SUCCESS in 12.4 s (finished 2026-11-22T01:35:12Z)"
    - "Secrets: 40 of 42 are stored in PLAIN TEXT in this snapshot (anyone with the file can read them); enable
       encryption at rest: https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/"
report:
  description: The report of the run, the content of the O(report_path) file. Every key is always present.
  returned: always
  type: dict
  contains:
    format:
      description: Version of this schema; 1.
      type: int
    cluster:
      description: O(cluster_name).
      type: str
    outcome:
      description: V(success) or V(failure).
      type: str
    started:
      description: Start of the run, ISO 8601 UTC; V(null) when unknown.
      type: str
    finished:
      description: End of the run, ISO 8601 UTC.
      type: str
    duration_seconds:
      description: Duration of the run; V(null) when unknown.
      type: float
    snapshot:
      description: C({name, path, size, sha256, revision, total_key, etcd_version, cluster_id, member, cluster_healthy,
        node}) of the snapshot (V(null) for what is unknown), or V(null).
      type: dict
    metadata:
      description: Path of the snapshot's metadata file, or V(null).
      type: str
    archive:
      description: Path of the PKI archive, or V(null).
      type: str
    encrypted:
      description: C({sha256, size}) of the age-encrypted object, or V(null) when not encrypted.
      type: dict
    compression:
      description: C({algorithm, size, ratio}), C(ratio) being the snapshot's size divided by the compressed size, or
        V(null).
      type: dict
    uploaded:
      description: The objects uploaded, C([{bucket, key, size, sha256}]); V(null) without object storage.
      type: list
      elements: dict
    retention:
      description: Per destination (C(node), C(ops_box), C(object_store), ...) C({kept, pruned}), lists of backup ids.
      type: dict
    secrets:
      description: C({secrets_total, secrets_plaintext, secrets_encrypted}) (each an int or V(null)),
        C(encryption_providers) (a list) and C(error) (why the Secrets could not be counted, or V(null)); or V(null).
      type: dict
    failure:
      description: C({step, host, message}) when RV(report.outcome=failure), else V(null).
      type: dict
  sample:
    format: 1
    cluster: prod-eu1
    outcome: success
    started: "2026-11-22T01:35:00Z"
    finished: "2026-11-22T01:35:12Z"
    duration_seconds: 12.4
    snapshot:
      name: prod-eu1-20261122T013500Z-rev48213.db
      path: /var/backups/etcd/prod-eu1-20261122T013500Z-rev48213.db
      size: 24969248
      sha256: 3f0c6a1e9b8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b
      revision: 48213
      total_key: 1532
      etcd_version: 3.5.16
      cluster_id: cdf818194e3a8c32
      member: cp1
      cluster_healthy: true
      node: cp1
    metadata: /var/backups/etcd/prod-eu1-20261122T013500Z-rev48213.db.meta.json
    archive: /var/backups/etcd/prod-eu1-20261122T013500Z-rev48213-pki.tar.gz
    encrypted: null
    compression: null
    uploaded: null
    retention:
      ops_box:
        kept: [prod-eu1-20261122T013500Z, prod-eu1-20261121T013500Z]
        pruned: [prod-eu1-20261114T013500Z]
    secrets:
      secrets_total: 42
      secrets_plaintext: 40
      secrets_encrypted: 2
      encryption_providers: [aescbc]
      error: null
    failure: null
diff:
  description: The metrics file before (empty when missing) and after.
  returned: diff mode and O(textfile_dir) given
  type: dict
'''

import errno
import fcntl
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.backup_report import (
    build_report, render_metrics, summary_lines)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import atomic_write, make_private_dir

METRICS_MODE = 0o644
TEXTFILE_DIR_MODE = 0o755
REPORT_MODE = 0o600


def check_file_name(file_name):
    if not file_name.endswith('.prom') or '/' in file_name or file_name.startswith('.') or file_name == '.prom':
        raise EtcdModuleError(
            'file_name %r is not a name node_exporter\'s textfile collector reads: give a plain file name ending in '
            '.prom (default kubeops_etcd_backup.prom).' % file_name, file_name=file_name)
    return file_name


def make_textfile_dir(path):
    """Create path and its missing parents with mode 0755 (node_exporter runs as another user and must read it)."""
    if os.path.isdir(path):
        return
    missing = []
    current = os.path.normpath(path)
    while current not in ('', '/') and not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    try:
        for directory in reversed(missing):
            try:
                os.mkdir(directory, TEXTFILE_DIR_MODE)
            except OSError as exc:
                # Another run (another cluster's backup) may create it at the same moment.
                if exc.errno != errno.EEXIST or not os.path.isdir(directory):
                    raise
                continue
            os.chmod(directory, TEXTFILE_DIR_MODE)
    except OSError as exc:
        raise EtcdModuleError('Cannot create the textfile directory %s on %s: %s. Check textfile_dir.'
                              % (path, node_name(), exc.strerror or exc), file=path)


def read_previous(path):
    """The metrics file's text, or None when it is missing or unreadable as a file (then the run starts afresh)."""
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
            return None
        raise EtcdModuleError('Cannot read the metrics file %s on %s: %s' % (path, node_name(), exc.strerror or exc),
                              file=path)


class DirectoryLock(object):
    """An exclusive flock on a directory: serialises read-render-write of the metrics file between runs."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            raise EtcdModuleError('Cannot lock the textfile directory %s on %s: %s'
                                  % (self.path, node_name(), exc.strerror or exc), file=self.path)
        return self

    def __exit__(self, *exc_info):
        os.close(self.fd)  # closing releases the lock
        self.fd = None
        return False


def record_metrics(module, params, report, now, result):
    """Render the metrics from the previous file and (outside check mode) write them, under the directory lock."""
    textfile_dir = params['textfile_dir']
    path = os.path.join(textfile_dir, check_file_name(params['file_name']))
    result['metrics_path'] = path
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        raise EtcdModuleError('The metrics file %s on %s exists and is not a regular file; move it away or choose '
                              'another file_name.' % (path, node_name()), file=path)
    if module.check_mode:
        previous = read_previous(path) if os.path.isdir(textfile_dir) else None
        metrics = render_metrics(params['cluster_name'], params['outcome'], now, report, previous)
    else:
        make_textfile_dir(textfile_dir)
        with DirectoryLock(textfile_dir):
            previous = read_previous(path)
            metrics = render_metrics(params['cluster_name'], params['outcome'], now, report, previous)
            atomic_write(module, path, metrics.encode('utf-8'), METRICS_MODE)
    result['metrics'] = metrics
    if module._diff:
        result['diff'] = {'before': previous or '', 'after': metrics, 'before_header': path, 'after_header': path}


def record_report(module, path, report):
    if not module.check_mode:
        make_private_dir(os.path.dirname(os.path.abspath(path)))
        text = json.dumps(report, indent=2, sort_keys=True) + '\n'
        atomic_write(module, path, text.encode('utf-8'), REPORT_MODE)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            textfile_dir=dict(type='path'),
            file_name=dict(type='str', default='kubeops_etcd_backup.prom'),
            cluster_name=dict(type='str', required=True),
            outcome=dict(type='str', required=True, choices=['success', 'failure']),
            report=dict(type='dict', default={}),
            report_path=dict(type='path'),
        ),
        required_one_of=[('textfile_dir', 'report_path')],
        supports_check_mode=True,
    )
    params = module.params
    result = {'changed': True, 'metrics_path': None, 'report_path': params['report_path'], 'metrics': None}
    try:
        if not params['cluster_name']:
            raise EtcdModuleError('cluster_name is empty; give the name of the cluster (etcd_backup_cluster_name).')
        now = time.time()
        report = build_report(params['report'], cluster=params['cluster_name'], outcome=params['outcome'], now=now)
        result['report'] = report
        result['summary'] = summary_lines(report)
        if params['report_path']:
            record_report(module, params['report_path'], report)
        if params['textfile_dir']:
            record_metrics(module, params, report, now, result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
