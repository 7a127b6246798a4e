# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.identity import (
    bootstrap_identity, cluster_member_ids, compute_cluster_id, compute_member_id, id_hex, normalize_peer_url,
    parse_initial_cluster)

# IDs read from real etcd processes (etcd 3.5.1 cluster started with these flags: `etcdctl member list -w json`;
# etcdutl 3.5.16 snapshot restore log lines "added-peer-id"/"cluster-id").
TWO_MEMBERS = 'n1=http://127.0.0.1:24790,n2=http://127.0.0.1:24792'


def test_member_and_cluster_ids_equal_those_of_a_real_two_member_cluster():
    result = bootstrap_identity(TWO_MEMBERS, 'tok-xyz', 'n1')
    assert result['member_ids'] == {'n1': 18368243888251986117, 'n2': 16162394756405604731}
    assert result['member_id'] == 18368243888251986117
    assert result['cluster_id'] == 11119905892782899490


def test_ids_equal_those_etcdutl_restore_logged():
    result = bootstrap_identity('n1=http://127.0.0.1:24810', 'tk', 'n1', ['http://127.0.0.1:24810'])
    assert id_hex(result['member_id']) == '5937d5d1c71d7010'
    assert id_hex(result['cluster_id']) == '21988aa684bd5ef8'


def test_member_id_sorts_peer_urls_before_hashing():
    assert compute_member_id(['http://10.0.0.2:2380', 'http://10.0.0.1:2380'], 't') == \
        compute_member_id(['http://10.0.0.1:2380', 'http://10.0.0.2:2380'], 't')


def test_member_id_depends_on_the_token():
    assert compute_member_id(['https://10.0.0.1:2380'], 'a') != compute_member_id(['https://10.0.0.1:2380'], 'b')


def test_missing_token_means_etcds_default():
    assert compute_member_id('https://10.0.0.1:2380', None) == compute_member_id('https://10.0.0.1:2380', 'etcd-cluster')


def test_cluster_id_ignores_member_order():
    assert compute_cluster_id([3, 1, 2]) == compute_cluster_id([1, 2, 3])


def test_cluster_id_of_no_members_is_an_error():
    with pytest.raises(ValueError):
        compute_cluster_id([])


@pytest.mark.parametrize('url, expected', [
    ('  https://10.0.0.1:2380 ', 'https://10.0.0.1:2380'),
    ('HTTPS://10.0.0.1:2380', 'https://10.0.0.1:2380'),
    ('http://[2001:db8::1]:2380', 'http://[2001:db8::1]:2380'),
    ('unix://localhost:2380', 'unix://localhost:2380'),
])
def test_peer_urls_are_normalised_like_etcd(url, expected):
    assert normalize_peer_url(url) == expected


@pytest.mark.parametrize('url, message', [
    ('10.0.0.1:2380', 'no scheme'),
    ('mailto://10.0.0.1:2380', 'scheme must be one of'),
    ('https://10.0.0.1', 'host:port'),
    ('https://10.0.0.1:2380/', 'must not contain a path'),
    ('https://10.0.0.1:2380/peer', 'must not contain a path'),
    ('https://[2001:db8::1]', 'host:port'),
])
def test_peer_urls_etcd_rejects_are_rejected(url, message):
    with pytest.raises(ValueError, match=message):
        normalize_peer_url(url)


def test_initial_cluster_keeps_member_order_and_groups_repeated_names():
    parsed = parse_initial_cluster('b=https://10.0.0.2:2380,a=https://10.0.0.9:2380,a=https://10.0.0.1:2380')
    assert parsed == [('b', ['https://10.0.0.2:2380']), ('a', ['https://10.0.0.1:2380', 'https://10.0.0.9:2380'])]


@pytest.mark.parametrize('value, message', [
    ('', 'empty'),
    ('a', 'not name=url'),
    ('a=,b=https://10.0.0.2:2380', 'no URL'),
    ('=https://10.0.0.2:2380', 'empty member name'),
    ('a=https://10.0.0.1:2380,b=https://10.0.0.1:2380', 'both a and b'),
])
def test_bad_initial_cluster_is_rejected(value, message):
    with pytest.raises(ValueError, match=message):
        parse_initial_cluster(value)


def test_member_with_two_peer_urls_hashes_both():
    ids = cluster_member_ids('a=https://10.0.0.1:2380,a=https://10.0.1.1:2380', 't')
    assert ids['a'] == compute_member_id(['https://10.0.1.1:2380', 'https://10.0.0.1:2380'], 't')


def test_name_must_be_in_the_initial_cluster():
    with pytest.raises(ValueError, match="'cp9' is not in the initial cluster"):
        bootstrap_identity(TWO_MEMBERS, 't', 'cp9')


def test_advertised_peer_urls_must_match_the_initial_cluster():
    with pytest.raises(ValueError, match='differ from the advertised peer URLs'):
        bootstrap_identity(TWO_MEMBERS, 't', 'n1', ['http://127.0.0.1:24792'])


def test_advertised_peer_urls_may_be_a_comma_separated_string():
    assert bootstrap_identity(TWO_MEMBERS, 't', 'n2', 'http://127.0.0.1:24792')['member_id'] == \
        compute_member_id('http://127.0.0.1:24792', 't')


def test_id_hex_is_lowercase_without_padding():
    assert id_hex(0x0abc) == 'abc'
    assert id_hex(18368243888251986117) == 'fee91c7f4affe0c5'
