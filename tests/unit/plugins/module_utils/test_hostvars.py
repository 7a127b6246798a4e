# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeops.etcd.plugins.action import etcd_member_plan, etcd_restore_plan
from ansible_collections.kubeops.etcd.plugins.module_utils.hostvars import collect


def test_collect_reads_one_variable_of_every_host_that_has_it_and_skips_unknown_hosts():
    task_vars = {'hostvars': {'cp1': {'node': {'a': 1}}, 'cp2': {'other': 2}, 'cp3': {'node': None}}}
    assert collect(task_vars, ['cp1', 'cp2', 'cp3', 'cp4'], 'node') == {'cp1': {'a': 1}, 'cp3': None}
    assert collect(task_vars, ['cp1'], None) == {}
    assert collect({}, ['cp1'], 'node') == {}


def test_both_planners_read_the_hosts_through_the_one_collect():
    assert etcd_restore_plan.collect is collect
    assert etcd_member_plan.collect is collect
