#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_manifest_datadir
short_description: Point kubeadm's etcd static pod at another data directory
version_added: 0.1.0
description:
  - Changes the C(hostPath) of the volume that holds C(--data-dir) in the etcd static pod manifest written
    by kubeadm, so the kubelet restarts etcd on another data directory (for example one just written by
    M(kubeops.etcd.etcd_restore)).
  - The data volume is found through the etcd container's C(volumeMounts) entry whose C(mountPath) is
    C(--data-dir) or a parent of it, then the C(hostPath) volume of that name; its name does not matter.
  - Only the characters of that one path change; every other byte of the file (comments, order, quoting) stays as it was.
    The edited text is parsed again and compared with the original before anything is written.
  - The file is replaced atomically (a temporary file in the same directory, then a rename) and keeps its mode and owner.
  - Before the change, a copy of the old manifest goes to O(backup_dir), outside the kubelet's manifests directory,
    because the kubelet starts a pod from every file there whose name does not begin with a dot.
  - The container's C(--data-dir) flag is not changed; only where that path comes from on the host.
author:
  - kubeops.etcd maintainers (@kubeops)
requirements:
  - PyYAML on the managed node (Debian/Ubuntu C(python3-yaml), RHEL C(python3-pyyaml)).
options:
  path:
    description:
      - The etcd static pod manifest.
    type: path
    default: /etc/kubernetes/manifests/etcd.yaml
  data_dir:
    description:
      - Absolute path on the host where etcd's C(--data-dir) should live from now on.
      - When the mount holding C(--data-dir) is a parent directory of it, O(data_dir) must end with the same
        sub-path (the module then changes the mounted parent).
    type: path
    required: true
  allow_empty:
    description:
      - Allow O(data_dir) to be a directory without etcd data (missing, or without C(member/)).
      - etcd would start there as a new, empty cluster (kubeadm's C(DirectoryOrCreate) volume lets the kubelet create
        the directory); the API server would then serve no objects and the kubelets would stop their pods. So by default
        the module refuses; a typing error in O(data_dir) must not wipe a cluster.
      - In check mode a data directory without etcd data only gives a warning, because an earlier task that would
        create it (M(kubeops.etcd.etcd_restore)) did not run either.
    type: bool
    default: false
  backup:
    description:
      - Keep a copy of the manifest as it was before the change in O(backup_dir)
        (C(<file name>.<UTC timestamp>), mode C(0600)).
    type: bool
    default: true
  backup_dir:
    description:
      - Directory for the backup copies; created with mode C(0700) when missing.
      - It must not be the manifests directory nor lie inside it.
    type: path
    default: /etc/kubernetes/kubeops-etcd/manifest-backups
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.ACTIONGROUP_ETCD
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
seealso:
  - module: kubeops.etcd.etcd_restore
  - module: kubeops.etcd.static_pod
  - module: kubeops.etcd.etcd_member_info
'''

EXAMPLES = r'''
- name: Point etcd at the restored data directory
  kubeops.etcd.etcd_manifest_datadir:
    data_dir: /var/lib/etcd-restore-20261122T013500Z
  register: etcd_manifest_change

- name: Show where the previous data directory is, for a rollback
  ansible.builtin.debug:
    msg: "etcd used {{ etcd_manifest_change.previous_data_dir }} before; backup in {{ etcd_manifest_change.backup_file }}"

- name: Roll back to the old data directory
  kubeops.etcd.etcd_manifest_datadir:
    path: /etc/kubernetes/manifests/etcd.yaml
    data_dir: "{{ etcd_manifest_change.previous_data_dir }}"
    backup: false
'''

RETURN = r'''
path:
  description: The manifest.
  returned: always
  type: str
  sample: /etc/kubernetes/manifests/etcd.yaml
previous_data_dir:
  description: Host path of the data directory before this task.
  returned: always
  type: str
  sample: /var/lib/etcd
data_dir:
  description: Host path of the data directory after this task (in check mode, what it would be).
  returned: always
  type: str
  sample: /var/lib/etcd-restore-20261122T013500Z
volume_name:
  description: Name of the hostPath volume that holds C(--data-dir).
  returned: always
  type: str
  sample: etcd-data
backup_file:
  description: Copy of the manifest before the change; V(null) when nothing changed, O(backup=false) or in check mode.
  returned: always
  type: str
  sample: /etc/kubernetes/kubeops-etcd/manifest-backups/etcd.yaml.20261122T013500Z
diff:
  description: The manifest text before and after.
  returned: changed and diff mode
  type: dict
  contains:
    before:
      description: Manifest text before.
      type: str
    after:
      description: Manifest text after.
      type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import atomic_write, make_private_dir, timestamp
from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest


def _inside(path, directory):
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip('/') + '/')


def _backup_path(backup_dir, manifest_path):
    base = os.path.join(backup_dir, '%s.%s' % (os.path.basename(manifest_path), timestamp()))
    candidate, number = base, 0
    while os.path.lexists(candidate):
        number += 1
        candidate = '%s.%d' % (base, number)
    return candidate


def plan(params):
    """Read the manifest and compute the change; nothing is written."""
    path = params['path']
    new_dir = params['data_dir']
    if not new_dir.startswith('/'):
        raise EtcdModuleError('data_dir %s is a relative path; give the absolute host path of the new etcd data directory.'
                              % new_dir, data_dir=new_dir)
    new_dir = os.path.normpath(new_dir)
    if params['backup'] and _inside(params['backup_dir'], os.path.dirname(os.path.abspath(path))):
        raise EtcdModuleError(
            'backup_dir %s is inside %s, where the kubelet would start the backup copy as a second etcd pod; '
            'choose a directory outside it (default /etc/kubernetes/kubeops-etcd/manifest-backups).'
            % (params['backup_dir'], os.path.dirname(os.path.abspath(path))), backup_dir=params['backup_dir'])
    manifest = EtcdManifest.load(path)
    result = {
        'path': path,
        'previous_data_dir': manifest.data_dir_host_path,
        'data_dir': new_dir,
        'volume_name': manifest.data_volume['name'],
        'backup_file': None,
        'changed': False,
    }
    new_text = None
    if os.path.normpath(manifest.data_dir_host_path) != new_dir:
        new_text = manifest.with_data_dir_host_path(new_dir)
        result['changed'] = new_text != manifest.text
    return manifest, new_text, result


def holds_etcd_data(data_dir):
    return os.path.isdir(os.path.join(data_dir, 'member'))


def empty_data_dir_message(data_dir):
    return ('data_dir %s on %s holds no etcd data (no member/ directory): etcd would start there as a new, empty '
            'cluster. Check the path (restore into it first with kubeops.etcd.etcd_restore), or set allow_empty=true '
            'if an empty cluster is what you want.' % (data_dir, node_name()))


def apply(module, manifest, new_text, result):
    """Back the manifest up, then replace it atomically with the edited text."""
    path = manifest.path
    try:
        with open(path, 'rb') as handle:
            current = handle.read()
        info = os.stat(path)
    except (IOError, OSError) as exc:
        raise EtcdModuleError('Cannot read %s on %s: %s' % (path, node_name(), exc.strerror or exc), path=path)
    original = manifest.text.encode('utf-8')
    if current != original:
        raise EtcdModuleError('%s on %s changed while this task was editing it; nothing was written. Run the task again.'
                              % (path, node_name()), path=path)
    if module.params['backup']:
        make_private_dir(module.params['backup_dir'])
        backup_file = _backup_path(module.params['backup_dir'], path)
        atomic_write(module, backup_file, original, 0o600)
        result['backup_file'] = backup_file
    atomic_write(module, path, new_text.encode('utf-8'), info.st_mode & 0o7777, owner=(info.st_uid, info.st_gid))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/kubernetes/manifests/etcd.yaml'),
            data_dir=dict(type='path', required=True),
            allow_empty=dict(type='bool', default=False),
            backup=dict(type='bool', default=True),
            backup_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/manifest-backups'),
        ),
        supports_check_mode=True,
    )
    try:
        manifest, new_text, result = plan(module.params)
        if result['changed'] and not module.params['allow_empty'] and not holds_etcd_data(result['data_dir']):
            if not module.check_mode:
                raise EtcdModuleError(empty_data_dir_message(result['data_dir']), data_dir=result['data_dir'])
            module.warn(empty_data_dir_message(result['data_dir']))
        if result['changed']:
            if module._diff:
                result['diff'] = {'before': manifest.text, 'after': new_text,
                                  'before_header': manifest.path, 'after_header': manifest.path}
            if not module.check_mode:
                apply(module, manifest, new_text, result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
