# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.topology import decide_topology, lowest_version


def test_hosts_in_the_etcd_group_mean_external_etcd():
    topology = decide_topology('etcd', ['etcd1', 'etcd2', 'etcd3'])
    assert topology['name'] == 'external'
    assert topology['etcd_group'] == 'etcd' and topology['etcd_hosts'] == ['etcd1', 'etcd2', 'etcd3']
    assert topology['plan_line'].startswith("external etcd: the inventory group 'etcd' lists etcd1, etcd2, etcd3;")
    assert '--etcd-servers' in topology['plan_line']


@pytest.mark.parametrize('hosts', [[], None, ['', '  ']])
def test_an_empty_or_missing_group_means_stacked_etcd(hosts):
    topology = decide_topology('etcd', hosts)
    assert topology['name'] == 'stacked' and topology['etcd_hosts'] == []
    assert "no hosts in the group 'etcd'" in topology['plan_line']


@pytest.mark.parametrize('group', ['', None, '  '])
def test_no_group_name_means_stacked_whatever_the_hosts(group):
    topology = decide_topology(group, ['etcd1'])
    assert topology['name'] == 'stacked' and topology['etcd_hosts'] == [] and topology['etcd_group'] == ''
    assert 'no inventory group of etcd hosts is named' in topology['plan_line']


def test_hosts_keep_inventory_order_once_each():
    topology = decide_topology('kube_etcd', ['e2', 'e1', 'e2', ' e3 '])
    assert topology['etcd_hosts'] == ['e2', 'e1', 'e3'] and topology['etcd_group'] == 'kube_etcd'


@pytest.mark.parametrize('versions, lowest', [
    (['3.5.30', '3.5.30', '3.5.30'], '3.5.30'),
    (['3.6.5', '3.5.30', '3.6.5'], '3.5.30'),
    (['3.5.9', '3.5.10'], '3.5.9'),
    (['', None, '3.4.23'], '3.4.23'),
    ([], None),
    (None, None),
    (['garbage'], None),
])
def test_lowest_version_of_the_members_mid_upgrade_too(versions, lowest):
    assert lowest_version(versions) == lowest
