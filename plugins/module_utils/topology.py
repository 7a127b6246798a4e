# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stacked or external etcd, decided from the inventory (pure logic, unit tested).

Stacked (kubeadm's default): every control plane runs an etcd member as the static pod ``etcd.yaml``.
External: etcd runs on hosts of its own, listed in an inventory group (``etcd``, as kubespray names it); the
control planes reach it through ``kube-apiserver.yaml``'s ``--etcd-servers`` and ``--etcd-cafile/certfile/keyfile``,
whatever runs etcd there (static pods under a standalone kubelet, or systemd units).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import version_tuple

STACKED = 'stacked'
EXTERNAL = 'external'
TOPOLOGIES = (STACKED, EXTERNAL)


def decide_topology(etcd_group, etcd_group_hosts):
    """{'name', 'etcd_group', 'etcd_hosts', 'plan_line'} from the etcd group's name and its hosts.

    A non-empty group means external etcd; no group (an empty name, or no hosts in it) means stacked.
    """
    hosts = []
    for host in etcd_group_hosts or []:
        host = str(host).strip()
        if host and host not in hosts:
            hosts.append(host)
    group = (etcd_group or '').strip()
    if group and hosts:
        return {
            'name': EXTERNAL, 'etcd_group': group, 'etcd_hosts': hosts,
            'plan_line': "external etcd: the inventory group '%s' lists %s; the control planes reach it through "
                         "kube-apiserver.yaml's --etcd-servers and --etcd-cafile/--etcd-certfile/--etcd-keyfile"
                         % (group, ', '.join(hosts)),
        }
    why = ("no inventory group of etcd hosts is named (etcd group '')" if not group
           else "the inventory has no hosts in the group '%s'" % group)
    return {
        'name': STACKED, 'etcd_group': group, 'etcd_hosts': [],
        'plan_line': 'stacked etcd: %s, so every control plane runs a member as the static pod etcd.yaml' % why,
    }


def lowest_version(versions):
    """The lowest of the etcd versions members report ('3.5.30'), None when none parses.

    Mid-upgrade members differ; tools of the lowest version's minor are the conservative choice."""
    parsed = [(version_tuple(version), version) for version in versions or [] if version_tuple(version)]
    if not parsed:
        return None
    return '%d.%d.%d' % min(parsed)[0][:3]
