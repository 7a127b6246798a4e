# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of etcd_backup_destination: reads the environment of the ansible-playbook process and hands
the decision to module_utils/destination.py (a pure function)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible.plugins.action import ActionBase

from ansible_collections.kubeops.etcd.plugins.module_utils import destination

ARGUMENT_SPEC = dict(
    dest_dir=dict(type='str', required=True),
    s3_bucket=dict(type='str', default=''),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        dest_dir = os.path.expanduser(args['dest_dir'])
        environ = dict(os.environ)
        # The job's environment as this process sees it: the dest of a backup delegated to localhost is a path here.
        refusal = destination.vanishing_destination(dest_dir, environ, bool(args['s3_bucket']), cwd=os.getcwd(),
                                                    realpath=os.path.realpath)
        result.update(changed=False, dest_dir=os.path.normpath(os.path.join(os.getcwd(), dest_dir)),
                      job_dirs=[job_dir for job_dir, _why in destination.job_private_dirs(environ)],
                      vanishes=refusal is not None)
        if refusal:
            result.update(failed=True, msg=refusal)
        return result
