# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the controller-side planners (the etcd_restore_plan and etcd_member_plan action plugins) read from every
host's variables. Read through ``hostvars``, so the hosts a failed task dropped from the play still count."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def collect(task_vars, hosts, name):
    """{host: value of the variable ``name`` on that host} for every host where it is defined."""
    found = {}
    if not name:
        return found
    hostvars = task_vars.get('hostvars') or {}
    for host in hosts:
        try:
            values = hostvars[host]
        except KeyError:
            continue
        if name in values:
            found[host] = values[name]
    return found
