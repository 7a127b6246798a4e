#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_unit_datadir
short_description: Point an etcd systemd service at another data directory
version_added: 0.2.0
description:
  - The counterpart of M(kubeops.etcd.etcd_manifest_datadir) for etcd run as a systemd service.
  - Changes the data directory where the unit defines it, as M(kubeops.etcd.etcd_unit_info) finds it - the
    C(--data-dir) flag in the C(ExecStart) of the unit file or drop-in, the C(ETCD_DATA_DIR) variable in the
    environment file or C(Environment=) line, or the C(data-dir) key of etcd's config file. It never adds a flag beside
    a variable (etcd exits when a setting comes from both).
  - Only the characters of that one value change; every other byte of the file stays as it was. The unit is read again
    with the new text and must differ only in its data directory before anything is written.
  - Refuses what it cannot rewrite safely, saying what to change by hand - a data directory left to etcd's default, a
    flag inside a shell wrapper (C(ExecStart=/bin/sh -c ...)), a value built with quotes, escapes, specifiers or
    variables around its characters.
  - The file is replaced atomically (a temporary file in the same directory, then a rename) and keeps its mode and owner.
    Before the change, a copy goes to O(backup_dir), outside the unit directories.
  - Does not run C(systemctl daemon-reload) nor restart etcd; RV(daemon_reload_needed) says whether a unit file or
    drop-in changed (an environment or config file is read when etcd starts).
author:
  - kubeops.etcd maintainers (@kubeops)
requirements:
  - systemd (C(systemctl)) on the managed node.
  - PyYAML on the managed node when the unit uses an etcd config file.
options:
  unit:
    description:
      - The etcd unit.
    type: str
    default: etcd.service
  data_dir:
    description:
      - Absolute path where etcd's data directory should be from now on; letters, digits and C(_ . / + @ , = -) only,
        so that no file format reads it differently.
    type: path
    required: true
  allow_empty:
    description:
      - Allow O(data_dir) to be a directory without etcd data (missing, or without C(member/)).
      - etcd would start there as a new, empty cluster, so by default the module refuses; in check mode it only warns,
        because the task that would create it (M(kubeops.etcd.etcd_restore)) did not run either.
    type: bool
    default: false
  backup:
    description:
      - Keep a copy of the file as it was before the change in O(backup_dir), named after its path
        (C(etc_etcd.env.<UTC timestamp>), mode C(0600)).
    type: bool
    default: true
  backup_dir:
    description:
      - Directory for the backup copies; created with mode C(0700) when missing.
      - It must not lie in a systemd unit directory nor in a directory of the unit's files.
    type: path
    default: /var/lib/kubeops-etcd/unit-backups
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
seealso:
  - module: kubeops.etcd.etcd_unit_info
  - module: kubeops.etcd.etcd_manifest_datadir
  - module: kubeops.etcd.etcd_restore
'''

EXAMPLES = r'''
- name: Point etcd at the restored data directory
  kubeops.etcd.etcd_unit_datadir:
    unit: etcd.service
    data_dir: /var/lib/etcd-restore-20261122T013500Z
  register: etcd_unit_change

- name: Reload systemd when the unit itself changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: etcd_unit_change.daemon_reload_needed

- name: Roll back to the old data directory
  kubeops.etcd.etcd_unit_datadir:
    data_dir: "{{ etcd_unit_change.previous_data_dir }}"
    backup: false
'''

RETURN = r'''
unit:
  description: The unit.
  returned: always
  type: str
  sample: etcd.service
path:
  description: The file that defines the data directory (changed, or in check mode would be, when the task reports a change).
  returned: always
  type: str
  sample: /etc/etcd.env
location:
  description: Where the data directory is defined, as RV(kubeops.etcd.etcd_unit_info#module:units[].data_dir_location).
  returned: always
  type: dict
  sample: {kind: env, file: /etc/etcd.env, line: 2, variable: ETCD_DATA_DIR}
previous_data_dir:
  description: The data directory before this task.
  returned: always
  type: str
  sample: /var/lib/etcd
data_dir:
  description: The data directory after this task (in check mode, what it would be).
  returned: always
  type: str
  sample: /var/lib/etcd-restore-20261122T013500Z
backup_file:
  description: Copy of the file before the change; V(null) when nothing changed, O(backup=false) or in check mode.
  returned: always
  type: str
  sample: /var/lib/kubeops-etcd/unit-backups/etc_etcd.env.20261122T013500Z
daemon_reload_needed:
  description:
    - Whether a unit file or drop-in changed (or would change), so that C(systemctl daemon-reload) must run before
      etcd is started again. V(false) when an environment or config file changed, or nothing.
  returned: always
  type: bool
diff:
  description: The file's text before (C(before)) and after (C(after)).
  returned: changed and diff mode
  type: dict
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.etcd_unit import (
    SYSTEM_UNIT_DIRS, load_unit, with_data_dir)
from ansible_collections.kubeops.etcd.plugins.module_utils.files import path_inside, replace_with_backup
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner


def check_backup_dir(etcd_unit, backup_dir):
    """systemd reads unit directories and drop-in directories: a backup there could become part of the unit."""
    directories = list(SYSTEM_UNIT_DIRS) + [os.path.dirname(unit_file.path) for unit_file in etcd_unit.files]
    for directory in directories:
        if path_inside(backup_dir, directory):
            raise EtcdModuleError(
                'backup_dir %s on %s is inside %s, where systemd reads units and drop-ins; choose a directory outside '
                'the unit directories (default /var/lib/kubeops-etcd/unit-backups).' % (backup_dir, node_name(),
                                                                                        directory),
                backup_dir=backup_dir)


def plan(etcd_unit, params):
    """What would change; nothing is written. Returns (path, old text, new text or None, result)."""
    new_dir = params['data_dir']
    if not new_dir.startswith('/'):
        raise EtcdModuleError('data_dir %s is a relative path; give the absolute path of the new etcd data directory.'
                              % new_dir, data_dir=new_dir)
    new_dir = os.path.normpath(new_dir)
    location = etcd_unit.data_dir_location()
    result = {
        'unit': etcd_unit.unit,
        'path': location.path,
        'location': location.as_dict(),
        'previous_data_dir': etcd_unit.data_dir,
        'data_dir': new_dir,
        'backup_file': None,
        'daemon_reload_needed': False,
        'changed': False,
    }
    if os.path.normpath(etcd_unit.data_dir) == new_dir:
        return location.path, location.text, None, result
    if params['backup']:
        check_backup_dir(etcd_unit, params['backup_dir'])
    path, new_text = with_data_dir(etcd_unit, new_dir)
    result['changed'] = True
    result['daemon_reload_needed'] = etcd_unit.file_text(path) is not None
    return path, location.text, new_text, result


def holds_etcd_data(data_dir):
    return os.path.isdir(os.path.join(data_dir, 'member'))


def empty_data_dir_message(data_dir, unit):
    return ('data_dir %s on %s holds no etcd data (no member/ directory): %s would start there as a new, empty '
            'cluster. Check the path (restore into it first with kubeops.etcd.etcd_restore), or set allow_empty=true '
            'if an empty cluster is what you want.' % (data_dir, node_name(), unit))


def apply(module, path, old_text, new_text, result):
    """Back the file up (outside the unit directories), then replace it atomically, keeping its mode and owner."""
    result['backup_file'] = replace_with_backup(
        module, path, old_text.encode('utf-8'), new_text.encode('utf-8'),
        backup_dir=module.params['backup_dir'] if module.params['backup'] else None,
        backup_name=path.strip('/').replace('/', '_'))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type='str', default='etcd.service'),
            data_dir=dict(type='path', required=True),
            allow_empty=dict(type='bool', default=False),
            backup=dict(type='bool', default=True),
            backup_dir=dict(type='path', default='/var/lib/kubeops-etcd/unit-backups'),
        ),
        supports_check_mode=True,
    )
    try:
        etcd_unit = load_unit(module, Runner(module), module.params['unit'])
        path, old_text, new_text, result = plan(etcd_unit, module.params)
        if result['changed'] and not module.params['allow_empty'] and not holds_etcd_data(result['data_dir']):
            message = empty_data_dir_message(result['data_dir'], etcd_unit.unit)
            if not module.check_mode:
                raise EtcdModuleError(message, data_dir=result['data_dir'])
            module.warn(message)
        if result['changed']:
            if module._diff:
                result['diff'] = {'before': old_text, 'after': new_text, 'before_header': path, 'after_header': path}
            if not module.check_mode:
                apply(module, path, old_text, new_text, result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
