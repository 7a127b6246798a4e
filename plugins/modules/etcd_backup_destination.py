#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_backup_destination
short_description: Refuse a backup directory on the ops box that is deleted with the job (runs on the controller)
version_added: 0.3.0
description:
  - Runs on the controller as an action plugin, before the M(kubeops.etcd.etcd_backup) role takes any snapshot, and
    changes nothing.
  - Fails when O(dest_dir) lies inside the private data dir of the ansible-runner job that runs the play (AWX, Tower,
    ansible-runner worker, ansible-navigator), which is deleted with the job, unless O(s3_bucket) sends the backup to
    object storage as well.
  - The job is recognised from the environment of C(ansible-playbook) - C(AWX_ISOLATED_DATA_DIR) (set by
    ansible-runner for every run to C(<private data dir>/artifacts/<ident>)), C(AWX_PRIVATE_DATA_DIR) (set by AWX),
    and C(JOB_ID) with C(AWX_HOST) (an AWX job, whose execution environment mounts the private data dir at
    C(/runner)). Outside such a job it always succeeds.
  - Symbolic links are followed; a relative O(dest_dir) is taken relative to the current directory, as the backup's
    file tasks on the ops box do.
  - This is an internal building block of the roles; its options may change before version 1.0.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  dest_dir:
    description: The backup directory on the ops box (C(etcd_backup_dest_dir)).
    type: str
    required: true
  s3_bucket:
    description: The object store's bucket (C(etcd_backup_s3_bucket)); non-empty means an off-site copy outlives the job.
    type: str
    default: ''
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.INFO_MODULE
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  async:
    description: Asynchronous execution.
    support: none
  bypass_host_loop:
    description: Whether it runs once for all hosts.
    support: none
'''

EXAMPLES = r'''
- name: Refuse a destination on the ops box that is deleted with the job unless object storage keeps a copy
  kubeops.etcd.etcd_backup_destination:
    dest_dir: "{{ etcd_backup_dest_dir }}"
    s3_bucket: "{{ etcd_backup_s3_bucket }}"
  run_once: true
'''

RETURN = r'''
dest_dir:
  description: O(dest_dir) made absolute and normalised.
  returned: always
  type: str
  sample: /srv/etcd-backups
job_dirs:
  description: The directories deleted with the job that the environment names; empty outside an ansible-runner job.
  returned: always
  type: list
  elements: str
  sample: [/runner]
vanishes:
  description: Whether O(dest_dir) is deleted with the job and nothing goes to object storage (the module then fails).
  returned: always
  type: bool
msg:
  description: Why the backup is refused - the directory, why it vanishes, and the two fixes.
  returned: when refused
  type: str
'''
