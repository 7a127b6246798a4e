#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_snapshot_info
short_description: Verify an etcd snapshot file and read what it holds
version_added: 0.1.0
description:
  - Checks an etcd snapshot file on the managed node without changing it, and fails when it cannot be restored.
  - Computes the file's SHA-256 in one streaming pass, together with the trailing SHA-256 that
    C(etcdctl snapshot save) appends (the file size is then a multiple of 512 plus 32 bytes). A file of that size
    whose last 32 bytes do not match is reported as corrupted; a raw copy of C(member/snap/db) has no such trailer
    (RV(snapshot.has_trailing_hash=false)) and needs C(skip_hash_check) on restore.
  - Checks the bbolt header and that the file is as long as the header says, so truncated copies fail with a clear
    message instead of crashing C(etcdutl).
  - Runs C(snapshot status) (C(etcdutl), or C(etcdctl) before 3.6 when C(etcdutl) is missing) for the revision,
    key count and etcd's own hash of the contents.
  - Compares the file with the metadata written by M(kubeops.etcd.etcd_snapshot) when that file exists.
  - Counts the Kubernetes Secrets the file holds in clear text (RV(snapshot.secrets)); a file that cannot be scanned
    only gives a warning.
  - Refuses C(.part) files, which C(etcdctl) leaves when a snapshot did not complete.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  path:
    description:
      - The snapshot file.
    type: path
    required: true
  metadata_path:
    description:
      - Metadata file written by M(kubeops.etcd.etcd_snapshot). Defaults to C(<path>.meta.json).
    type: path
  require_metadata:
    description:
      - Fail when the metadata file does not exist.
      - When it exists, it must match the file (SHA-256, size and revision) whatever this option says.
    type: bool
    default: false
  etcdctl_path:
    description:
      - Path of C(etcdctl), used to read the file only when C(etcdutl) is not available and C(etcdctl) is older than 3.6.
      - When not set, C(PATH) is searched.
    type: path
  etcdutl_path:
    description:
      - Path of C(etcdutl) (etcd 3.5 and newer). When not set, C(PATH) is searched.
    type: path
  command_timeout:
    description:
      - Seconds after which C(snapshot status) is stopped and the module fails.
    type: int
    default: 60
  manifest_path:
    description:
      - kubeadm static pod manifest of the etcd member on the node; with O(tools_source=container) it tells the
        data volume through which the container's tools read the snapshot.
    type: path
    default: /etc/kubernetes/manifests/etcd.yaml
requirements:
  - C(etcdutl) 3.5+ (Debian/Ubuntu package C(etcd-server)), or C(etcdctl) older than 3.6, on the managed node.
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.tools
  - kubeops.etcd.attributes.info_module
  - kubeops.etcd.attributes.actiongroup_etcd
notes:
  - C(snapshot status) reports C(totalKey) differently in etcd 3.5 and 3.6; do not compare it across versions.
  - The file is read three times (hashing, C(snapshot status), counting Secrets); for multi-gigabyte snapshots allow
    for that time.
seealso:
  - module: kubeops.etcd.etcd_snapshot
  - module: kubeops.etcd.etcd_restore
'''

EXAMPLES = r'''
- name: Check that the latest etcd snapshot can be restored
  kubeops.etcd.etcd_snapshot_info:
    path: /var/backups/etcd/etcd-snapshot.db
    require_metadata: true
  register: etcd_snapshot_check

- name: Show the revision the snapshot holds
  ansible.builtin.debug:
    msg: "Revision {{ etcd_snapshot_check.snapshot.status.revision }}, sha256 {{ etcd_snapshot_check.snapshot.sha256 }}"

- name: Check a raw copy of member/snap/db with a specific etcdutl
  kubeops.etcd.etcd_snapshot_info:
    path: /root/db-copy
    etcdutl_path: /opt/etcd-v3.5.16/etcdutl
'''

RETURN = r'''
snapshot:
  description: What the file holds.
  returned: success
  type: dict
  contains:
    path:
      description: The snapshot file.
      type: str
      sample: /var/backups/etcd/etcd-snapshot.db
    size:
      description: File size in bytes.
      type: int
      sample: 20512
    sha256:
      description: SHA-256 of the whole file (hex).
      type: str
      sample: 1041d7d203aa1f2c20344e06fcac1ac2937fe148d46f6b34f6a69c74d1f3546c
    has_trailing_hash:
      description:
        - Whether the file ends with the SHA-256 of the rest, as written by C(etcdctl snapshot save).
        - V(false) for raw copies of C(member/snap/db); restoring those needs C(skip_hash_check).
      type: bool
      sample: true
    status:
      description: Output of C(snapshot status).
      type: dict
      contains:
        hash:
          description: etcd's hash (CRC-32C) of the contents, not the file's SHA-256.
          type: int
          sample: 163607653
        revision:
          description: The store revision of the snapshot.
          type: int
          sample: 51
        total_key:
          description: Number of keys, as counted by the tool's version.
          type: int
          sample: 58
        total_size:
          description: Database size in bytes.
          type: int
          sample: 24576
        version:
          description: Storage version (etcd 3.6+ tools only), else V(null).
          type: str
          sample: null
    metadata:
      description: Content of the metadata file, V(null) when there is none.
      type: dict
      sample: {"format": 1, "sha256": "1041d7...", "revision": 51}
    metadata_path:
      description: Where the metadata was looked for.
      type: str
      sample: /var/backups/etcd/etcd-snapshot.db.meta.json
    metadata_matches:
      description: V(true) when the metadata matches the file, V(null) when there is no metadata.
      type: bool
      sample: true
    secrets:
      description:
        - The Kubernetes Secrets in the file (current revision of each key under C(/registry/secrets/)), counted as
          M(kubeops.etcd.etcd_snapshot) records them in the metadata.
        - Only C(error) when the file could not be scanned.
      type: dict
      contains:
        secrets_total:
          description: Number of Secrets.
          type: int
          sample: 42
        secrets_plaintext:
          description: Secrets stored in clear text (their value does not start with C(k8s:enc:)).
          type: int
          sample: 40
        secrets_encrypted:
          description: Secrets encrypted at rest by the API server.
          type: int
          sample: 2
        encryption_providers:
          description: Providers of the encrypted Secrets (C(k8s:enc:aescbc:v1:key1:...) is V(aescbc)), sorted.
          type: list
          elements: str
          sample: [aescbc]
        error:
          description: Why the Secrets could not be counted (then no count is returned).
          type: str
          sample: "/var/backups/etcd/etcd.db is damaged: page 7 is marked as page 0"
    status_tool:
      description: The tool that read the file and its version.
      type: str
      sample: etcdutl 3.5.16
'''

import json
import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import TRAILING_HASH_SIZE, verify_snapshot_file
from ansible_collections.kubeops.etcd.plugins.module_utils.containers import tools_argument_spec
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner
from ansible_collections.kubeops.etcd.plugins.module_utils.secrets_scan import secrets_summary


def read_metadata(path):
    """The metadata dict, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError) as exc:
        raise EtcdModuleError('Cannot read snapshot metadata %s on %s: %s' % (path, node_name(), exc), file=path)
    except ValueError as exc:
        raise EtcdModuleError('Snapshot metadata %s on %s is not valid JSON (%s); it cannot vouch for the snapshot.'
                              % (path, node_name(), exc), file=path)
    if not isinstance(data, dict):
        raise EtcdModuleError('Snapshot metadata %s on %s is not a JSON object.' % (path, node_name()), file=path)
    return data


def metadata_mismatches(metadata, facts):
    """What differs between the metadata and the file (empty list when they match)."""
    mismatches = []
    for key, actual in (('sha256', facts['sha256']), ('size', facts['size']),
                        ('revision', facts['status']['revision'])):
        if key not in metadata:
            mismatches.append('%s is missing from the metadata' % key)
        elif metadata[key] != actual:
            mismatches.append('%s is %s in the metadata but %s in the file' % (key, metadata[key], actual))
    return mismatches


def run_module(module):
    path = module.params['path']
    metadata_path = module.params['metadata_path'] or path + '.meta.json'
    if path.endswith('.part'):
        raise EtcdModuleError(
            '%s on %s is an unfinished snapshot: etcdctl writes <file>.part while it streams and renames it only '
            'when complete. Use a completed snapshot.' % (path, node_name()), file=path)

    runner = Runner(module)
    tools = EtcdTools.detect(module, runner, module.params['etcdctl_path'], module.params['etcdutl_path'],
                             probe_restore_help=False)
    facts = verify_snapshot_file(runner, tools, path)

    metadata = read_metadata(metadata_path)
    metadata_matches = None
    if metadata is None and module.params['require_metadata']:
        raise EtcdModuleError(
            'Snapshot metadata %s does not exist on %s (require_metadata is set); snapshots taken with '
            'kubeops.etcd.etcd_snapshot have it next to the file.' % (metadata_path, node_name()),
            file=metadata_path, snapshot=facts)
    if metadata is not None:
        mismatches = metadata_mismatches(metadata, facts)
        if mismatches:
            raise EtcdModuleError(
                'Snapshot %s on %s does not match its metadata %s: %s. The file changed after it was written, or '
                'the metadata belongs to another snapshot.' % (path, node_name(), metadata_path, '; '.join(mismatches)),
                file=path, snapshot=facts)
        metadata_matches = True

    secrets = secrets_summary(path, facts['size'] - (TRAILING_HASH_SIZE if facts['has_trailing_hash'] else 0))
    if 'error' in secrets:
        module.warn('Could not count the Secrets in %s on %s: %s' % (path, node_name(), secrets['error']))
    facts.update({
        'secrets': secrets,
        'metadata': metadata,
        'metadata_path': metadata_path,
        'metadata_matches': metadata_matches,
        'status_tool': '%s %s' % (tools.status_tool, tools.status_tool_version),
    })
    return facts


def main():
    argument_spec = tools_argument_spec()
    argument_spec.update(
        path=dict(type='path', required=True),
        metadata_path=dict(type='path'),
        require_metadata=dict(type='bool', default=False),
        etcdctl_path=dict(type='path'),
        etcdutl_path=dict(type='path'),
        manifest_path=dict(type='path', default='/etc/kubernetes/manifests/etcd.yaml'),
        command_timeout=dict(type='int', default=60),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    try:
        snapshot = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(changed=False, snapshot=snapshot)


if __name__ == '__main__':
    main()
