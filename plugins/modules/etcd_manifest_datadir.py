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
  - With O(initial_cluster) and O(initial_cluster_state), the C(--initial-cluster) and C(--initial-cluster-state) flags
    of the etcd container change in the same write (for a member that joins a running cluster with an empty data
    directory); only the characters of those items change, and a flag the manifest lacks is added as a new item after
    the last one of the command.
  - With O(dest), the edited manifest is written to that file instead (for example to prepare the manifest of a restore
    while etcd still runs on the old data directory) and O(path) is left untouched.
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
      - With O(initial_cluster_state=existing) an empty O(data_dir) is what a joining member starts from, and is
        allowed.
    type: bool
    default: false
  initial_cluster:
    description:
      - Value of the etcd container's C(--initial-cluster) flag from now on, C(name=peerURL) pairs separated by commas,
        for example the RV(kubeops.etcd.etcd_member#module:initial_cluster) of M(kubeops.etcd.etcd_member).
      - etcd reads it only when its data directory is empty. Unset, the flag is left as it is.
    type: str
  initial_cluster_state:
    description:
      - Value of the etcd container's C(--initial-cluster-state) flag from now on. V(existing) joins a running cluster
        (the member must have been added with M(kubeops.etcd.etcd_member) first); V(new) bootstraps one.
      - A manifest without the flag counts as V(new), etcd's default. Unset, the flag is left as it is.
    type: str
    choices: [new, existing]
  backup:
    description:
      - Keep a copy of the manifest as it was before the change in O(backup_dir)
        (C(<file name>.<UTC timestamp>), mode C(0600)).
      - With O(dest), where O(path) does not change, keep a byte-for-byte copy of O(path) as it is now beside O(dest),
        as C(<dest>.orig) (mode C(0600)), what to put back if the prepared manifest must be undone.
    type: bool
    default: true
  backup_dir:
    description:
      - Directory for the backup copies; created with mode C(0700) when missing.
      - It must not be the manifests directory nor lie inside it.
    type: path
    default: /etc/kubernetes/kubeops-etcd/manifest-backups
  dest:
    description:
      - Write the edited manifest to this file (atomically, mode C(0600), owner C(root)) and leave O(path) as it is.
        When O(path) already uses O(data_dir), O(dest) becomes an exact copy of it.
      - Missing directories of its path are created with mode C(0700). It must not lie in the kubelet's manifests
        directory (C(/etc/kubernetes/manifests),
        or the directory of O(path) when that is named C(manifests)), where the kubelet would run it at once.
      - O(dest) is this module's output. When it already holds exactly the edited text (with mode C(0600), owner
        C(root)) nothing changes; when it holds anything else it is replaced, and the diff shows what it held.
      - Install it later with M(kubeops.etcd.static_pod) and its O(kubeops.etcd.static_pod#module:sources) option.
    type: path
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
- name: Prepare the manifest of the restored member outside the manifests dir while etcd still runs
  kubeops.etcd.etcd_manifest_datadir:
    path: /etc/kubernetes/manifests/etcd.yaml
    data_dir: /var/lib/etcd-restore-20261122T013500Z
    dest: /etc/kubernetes/kubeops-etcd/prepared/etcd.yaml

- name: Point etcd at the restored data directory
  kubeops.etcd.etcd_manifest_datadir:
    data_dir: /var/lib/etcd-restore-20261122T013500Z
  register: etcd_manifest_change

- name: Show where the previous data directory is, for a rollback
  ansible.builtin.debug:
    msg: "etcd used {{ etcd_manifest_change.previous_data_dir }} before; backup in {{ etcd_manifest_change.backup_file }}"

- name: Let the member added with kubeops.etcd.etcd_member join the cluster with an empty data directory
  kubeops.etcd.etcd_manifest_datadir:
    path: /etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml
    data_dir: /var/lib/etcd
    initial_cluster: "{{ etcd_new_member.initial_cluster }}"
    initial_cluster_state: existing

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
initial_cluster:
  description: The C(--initial-cluster) of the etcd container after this task (in check mode, what it would be); V(null)
    when the manifest has none.
  returned: always
  type: str
  sample: cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380
initial_cluster_state:
  description: The C(--initial-cluster-state) of the etcd container after this task (in check mode, what it would be);
    V(null) when the manifest has none (etcd then takes V(new)).
  returned: always
  type: str
  sample: existing
changed_flags:
  description: The flags whose value this task changed or added (in check mode, would change), for example
    C(--initial-cluster).
  returned: always
  type: list
  elements: str
  sample: ["--initial-cluster", "--initial-cluster-state"]
volume_name:
  description: Name of the hostPath volume that holds C(--data-dir).
  returned: always
  type: str
  sample: etcd-data
backup_file:
  description:
    - Copy of the manifest before the change; V(null) when nothing changed, O(backup=false) or in check mode.
    - With O(dest), C(<dest>.orig), the copy of O(path) kept beside it.
  returned: always
  type: str
  sample: /etc/kubernetes/kubeops-etcd/manifest-backups/etcd.yaml.20261122T013500Z
dest:
  description: The file the edited manifest went to; V(null) without O(dest) (the edit went to O(path)).
  returned: always
  type: str
  sample: /etc/kubernetes/kubeops-etcd/prepared/etcd.yaml
dest_replaced:
  description: Whether O(dest) existed with other content, mode or owner and was (in check mode, would be) replaced.
  returned: always
  type: bool
diff:
  description:
    - Without O(dest), a dict with the manifest text before (C(before)) and after (C(after)).
    - With O(dest), a list of such dicts - the text of O(path) then the new text; and, when O(dest) held other text,
      that text then the new text.
  returned: changed and diff mode
  type: raw
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    atomic_write, make_private_dir, path_inside, read_if_exists, replace_with_backup)
from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest


KUBEADM_MANIFESTS_DIR = '/etc/kubernetes/manifests'
INITIAL_CLUSTER = '--initial-cluster'
INITIAL_CLUSTER_STATE = '--initial-cluster-state'
DEST_MODE = 0o600
ORIGINAL_SUFFIX = '.orig'
DEST_OWNER = (0, 0)


def kubelet_dirs(path):
    """Directories the kubelet runs every manifest of: kubeadm's, and the one of path when it is named so."""
    dirs = [KUBEADM_MANIFESTS_DIR]
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.basename(parent) == 'manifests' and parent not in dirs:
        dirs.append(parent)
    return dirs


def check_dest(path, dest):
    """Refuse a dest the kubelet would run, that is path itself, or whose directory is missing."""
    if not dest.startswith('/'):
        raise EtcdModuleError('dest %s is a relative path; give the absolute path of the file to write, e.g. '
                              '/etc/kubernetes/kubeops-etcd/prepared/etcd.yaml.' % dest, dest=dest)
    dest = os.path.normpath(dest)
    if os.path.realpath(dest) == os.path.realpath(path):
        raise EtcdModuleError('dest %s is the manifest itself; leave dest out to edit %s in place.' % (dest, path),
                              dest=dest)
    for directory in kubelet_dirs(path):
        if path_inside(dest, directory):
            raise EtcdModuleError(
                'dest %s on %s is in the kubelet\'s manifests directory %s: the kubelet would run it at once as a '
                'second etcd. Write it outside, e.g. /etc/kubernetes/kubeops-etcd/prepared/etcd.yaml, and install it '
                'with kubeops.etcd.static_pod (sources) once etcd is stopped.' % (dest, node_name(), directory),
                dest=dest)
    if os.path.lexists(dest) and (os.path.islink(dest) or not os.path.isfile(dest)):
        raise EtcdModuleError('dest %s on %s exists and is not a regular file; choose another path.'
                              % (dest, node_name()), dest=dest)
    return dest


def dest_is_current(dest, expected):
    """dest holds exactly ``expected`` (bytes) with our mode and owner."""
    if read_if_exists(dest) != expected:
        return False
    info = os.stat(dest)
    return (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (DEST_MODE,) + DEST_OWNER


def plan(params):
    """Read the manifest and compute the change; nothing is written."""
    path = params['path']
    new_dir = params['data_dir']
    if not new_dir.startswith('/'):
        raise EtcdModuleError('data_dir %s is a relative path; give the absolute host path of the new etcd data directory.'
                              % new_dir, data_dir=new_dir)
    new_dir = os.path.normpath(new_dir)
    dest = check_dest(path, params['dest']) if params['dest'] else None
    if params['backup'] and not dest and path_inside(params['backup_dir'], os.path.dirname(os.path.abspath(path))):
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
        'dest': dest,
        'dest_replaced': False,
        'changed': False,
    }
    new_text = None
    if os.path.normpath(manifest.data_dir_host_path) != new_dir:
        new_text = manifest.with_data_dir_host_path(new_dir)
        result['changed'] = new_text != manifest.text
    new_text = plan_flags(params, manifest, new_text, result)
    if dest:
        new_text = new_text or manifest.text
        original_current = not params['backup'] or dest_is_current(dest + ORIGINAL_SUFFIX, manifest.text.encode('utf-8'))
        result['changed'] = not dest_is_current(dest, new_text.encode('utf-8')) or not original_current
        result['dest_replaced'] = result['changed'] and os.path.lexists(dest)
        if params['backup']:
            result['backup_file'] = dest + ORIGINAL_SUFFIX
    return manifest, new_text, result


def plan_flags(params, manifest, new_text, result):
    """Set --initial-cluster and --initial-cluster-state as asked, on top of the data dir edit (if any)."""
    current = EtcdManifest.from_text(new_text, manifest.path) if new_text is not None else manifest
    wanted = {}
    if params.get('initial_cluster') is not None:
        wanted[INITIAL_CLUSTER] = params['initial_cluster']
    if params.get('initial_cluster_state') is not None:
        wanted[INITIAL_CLUSTER_STATE] = params['initial_cluster_state']
    if INITIAL_CLUSTER in wanted and not wanted[INITIAL_CLUSTER].strip():
        raise EtcdModuleError('initial_cluster is empty; give the name=peerURL pairs of the members (the '
                              'initial_cluster that kubeops.etcd.etcd_member returns).')
    differ = dict((flag, value) for flag, value in wanted.items()
                  if current.flags.get(flag, 'new' if flag == INITIAL_CLUSTER_STATE else None) != value)
    result['changed_flags'] = sorted(differ)
    if differ:
        new_text = current.with_flag_values(differ)
        result['changed'] = True
        current = EtcdManifest.from_text(new_text, manifest.path)
    result['initial_cluster'] = current.initial_cluster
    result['initial_cluster_state'] = current.initial_cluster_state
    return new_text


def holds_etcd_data(data_dir):
    return os.path.isdir(os.path.join(data_dir, 'member'))


def empty_data_dir_message(data_dir):
    return ('data_dir %s on %s holds no etcd data (no member/ directory): etcd would start there as a new, empty '
            'cluster. Check the path (restore into it first with kubeops.etcd.etcd_restore), or set allow_empty=true '
            'if an empty cluster is what you want.' % (data_dir, node_name()))


def diff(manifest, new_text, result):
    if not result['dest']:
        return {'before': manifest.text, 'after': new_text,
                'before_header': manifest.path, 'after_header': manifest.path}
    entries = [{'before': manifest.text, 'after': new_text, 'before_header': manifest.path,
                'after_header': result['dest']}]
    previous = read_if_exists(result['dest'])
    if previous is not None and previous != new_text.encode('utf-8'):
        entries.append({'before': previous.decode('utf-8', 'replace'), 'after': new_text,
                        'before_header': '%s (what it held)' % result['dest'], 'after_header': result['dest']})
    return entries


def apply(module, manifest, new_text, result):
    """Back the manifest up, then replace it atomically with the edited text (or write dest)."""
    original = manifest.text.encode('utf-8')
    if result['dest']:
        if read_if_exists(manifest.path) != original:
            raise EtcdModuleError('%s on %s changed while this task was editing it; nothing was written. Run the task '
                                  'again.' % (manifest.path, node_name()), path=manifest.path)
        make_private_dir(os.path.dirname(result['dest']))
        if module.params['backup']:
            atomic_write(module, result['dest'] + ORIGINAL_SUFFIX, original, DEST_MODE, owner=DEST_OWNER)
        atomic_write(module, result['dest'], new_text.encode('utf-8'), DEST_MODE, owner=DEST_OWNER)
        return
    result['backup_file'] = replace_with_backup(
        module, manifest.path, original, new_text.encode('utf-8'),
        backup_dir=module.params['backup_dir'] if module.params['backup'] else None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/kubernetes/manifests/etcd.yaml'),
            data_dir=dict(type='path', required=True),
            allow_empty=dict(type='bool', default=False),
            backup=dict(type='bool', default=True),
            backup_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/manifest-backups'),
            dest=dict(type='path'),
            initial_cluster=dict(type='str'),
            initial_cluster_state=dict(type='str', choices=['new', 'existing']),
        ),
        supports_check_mode=True,
    )
    try:
        manifest, new_text, result = plan(module.params)
        joining = module.params['initial_cluster_state'] == 'existing'
        if result['changed'] and not module.params['allow_empty'] and not joining \
                and not holds_etcd_data(result['data_dir']):
            if not module.check_mode:
                raise EtcdModuleError(empty_data_dir_message(result['data_dir']), data_dir=result['data_dir'])
            module.warn(empty_data_dir_message(result['data_dir']))
        if result['changed']:
            if module._diff:
                result['diff'] = diff(manifest, new_text, result)
            if not module.check_mode:
                apply(module, manifest, new_text, result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
