# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one error type of the collection's helpers.

Helpers raise EtcdModuleError; only a module's main() turns it into
fail_json(msg=error.msg, **error.details), so every failure path reports the
same way and helpers stay testable without an AnsibleModule.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import platform


def node_name():
    """Name of the host the module runs on, for error messages."""
    return platform.node() or 'localhost'


class EtcdModuleError(Exception):
    """A failure a module reports to the user.

    ``msg`` says what failed, where (host, file, endpoint) and what to do next.
    ``details`` are extra keys for fail_json (cmd, rc, stderr, path, ...).
    """

    def __init__(self, msg, details=None, **more_details):
        super(EtcdModuleError, self).__init__(msg)
        self.msg = msg
        self.details = dict(details or {})
        self.details.update(more_details)

    def __str__(self):
        return self.msg
