# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import retention

UTC = datetime.timezone.utc


def at(text):
    """'2026-11-30 23:00' -> tz-aware UTC datetime."""
    return datetime.datetime.strptime(text, '%Y-%m-%d %H:%M').replace(tzinfo=UTC)


def set_id(when, cluster='kubernetes'):
    return '%s-%s' % (cluster, when.strftime('%Y%m%dT%H%M%SZ'))


def make_sets(times, verified=True):
    return [{'id': set_id(when), 'taken': when, 'verified': verified, 'files': [set_id(when) + '.db']}
            for when in times]


def hourly(start, end):
    times = []
    when = start
    while when <= end:
        times.append(when)
        when += datetime.timedelta(hours=1)
    return times


def kept_ids(plan):
    return [entry['id'] for entry in plan['keep']]


def pruned_ids(plan):
    return [entry['id'] for entry in plan['prune']]


# -- names -------------------------------------------------------------------------------------------

def test_group_backup_sets_ops_box_names_with_every_suffix():
    names = [
        'kubernetes-20261122T020000Z-rev123456.db',
        'kubernetes-20261122T020000Z-rev123456.db.meta.json',
        'kubernetes-20261122T020000Z-rev123456-pki.tar.gz',
        'kubernetes-20261122T020000Z-rev123456.report.json',
        'kubernetes-20261123T020000Z-rev123999.db.zst.age',
        'kubernetes-20261123T020000Z-rev123999.db.meta.json',
        'kubernetes-20261123T020000Z-rev123999-pki.tar.gz.age',
        'kubernetes-20261124T020000Z-rev124000.db.zst',
        'kubernetes-20261124T020000Z-rev124000.db.age',
    ]
    sets, ignored = retention.group_backup_sets(names, 'kubernetes')
    assert ignored == []
    assert [item['id'] for item in sets] == [
        'kubernetes-20261124T020000Z', 'kubernetes-20261123T020000Z', 'kubernetes-20261122T020000Z']
    newest, middle, oldest = sets
    assert oldest == {
        'id': 'kubernetes-20261122T020000Z',
        'taken': datetime.datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC),
        'revision': 123456,
        'files': sorted(names[:4]),
        'snapshot': 'kubernetes-20261122T020000Z-rev123456.db',
        'metadata': 'kubernetes-20261122T020000Z-rev123456.db.meta.json',
    }
    assert middle['snapshot'] == 'kubernetes-20261123T020000Z-rev123999.db.zst.age'
    assert middle['revision'] == 123999
    # Two encodings of one snapshot: the shorter name is the snapshot, both files belong to the set.
    assert newest['snapshot'] == 'kubernetes-20261124T020000Z-rev124000.db.age'
    assert newest['metadata'] is None
    assert newest['files'] == ['kubernetes-20261124T020000Z-rev124000.db.age',
                               'kubernetes-20261124T020000Z-rev124000.db.zst']
    assert newest['taken'].tzinfo is not None


def test_group_backup_sets_node_staging_names_have_no_revision():
    names = ['prod.eu-1-20261122T013500Z.db', 'prod.eu-1-20261122T013500Z.db.meta.json',
             'prod.eu-1-20261122T013500Z-pki.tar.gz']
    sets, ignored = retention.group_backup_sets(names, 'prod.eu-1')
    assert ignored == []
    assert sets == [{
        'id': 'prod.eu-1-20261122T013500Z',
        'taken': datetime.datetime(2026, 11, 22, 1, 35, 0, tzinfo=UTC),
        'revision': None,
        'files': sorted(names),
        'snapshot': 'prod.eu-1-20261122T013500Z.db',
        'metadata': 'prod.eu-1-20261122T013500Z.db.meta.json',
    }]


def test_group_backup_sets_ignores_every_name_that_is_not_ours():
    ours = ['k8s.prod-20261122T013500Z-rev7.db', 'k8s.prod-20261122T013500Z-rev7.db.meta.json']
    foreign = [
        'k8s.prod-20261122T013500Z-rev7.db.part',          # unfinished etcdctl snapshot save
        'k8s.prod-20261122T013500Z-rev7.db.meta.json.tmp',
        'k8sXprod-20261122T013500Z-rev7.db',                # '.' of the cluster name is no wildcard
        'k8s.prod-eu-20261122T013500Z-rev7.db',             # another cluster whose name starts alike
        'other-20261122T013500Z-rev7.db',
        'k8s.prod-20261399T013500Z-rev7.db',                # no such date
        'k8s.prod-20261122T013500-rev7.db',                 # no Z
        'k8s.prod-20261122T013500Z-rev.db',
        'k8s.prod-20261122T013500Z-rev7.tar.gz',
        'k8s.prod-20261122T013500Z-rev7-pki.tar',
        'k8s.prod-20261122T013500Z-rev7.db.age.zst',        # we compress, then encrypt: never this order
        'k8s.prod-20261122T013500Z-rev7.db.meta.json.age',
        'notes.txt',
        'lost+found',
        '',
    ]
    sets, ignored = retention.group_backup_sets(ours + foreign, 'k8s.prod')
    assert [item['files'] for item in sets] == [sorted(ours)]
    assert ignored == sorted(foreign)


def test_group_backup_sets_cluster_name_is_taken_as_given_never_guessed():
    names = ['kubernetes-prod-20261122T013500Z.db', 'kubernetes-20261122T013500Z.db']
    sets, ignored = retention.group_backup_sets(names, 'kubernetes')
    assert [item['id'] for item in sets] == ['kubernetes-20261122T013500Z']
    assert ignored == ['kubernetes-prod-20261122T013500Z.db']
    sets, ignored = retention.group_backup_sets(names, 'kubernetes-prod')
    assert [item['id'] for item in sets] == ['kubernetes-prod-20261122T013500Z']
    assert ignored == ['kubernetes-20261122T013500Z.db']


def test_group_backup_sets_pki_only_set_has_no_snapshot_nor_metadata():
    sets, _ignored = retention.group_backup_sets(['c-20261122T013500Z-pki.tar.gz'], 'c')
    assert sets[0]['snapshot'] is None
    assert sets[0]['metadata'] is None


# -- policy ------------------------------------------------------------------------------------------

def test_parse_policy_fills_every_key_and_converts_durations():
    assert retention.parse_policy({'daily': 7, 'keep_within': '36h'}) == {
        'keep_last': 0, 'keep_within': 36 * 3600, 'hourly': 0, 'daily': 7, 'weekly': 0, 'monthly': 0}
    assert retention.parse_policy(None) == dict((key, 0) for key in retention.POLICY_KEYS)
    assert retention.parse_policy({'keep_last': None, 'keep_within': None}) == \
        dict((key, 0) for key in retention.POLICY_KEYS)


@pytest.mark.parametrize('value, seconds', [
    (3600, 3600), ('3600', 3600), ('90m', 5400), ('36h', 129600), ('7d', 604800), ('4w', 2419200),
    ('1d12h', 129600), ('45s', 45), (0, 0), ('0d', 0),
])
def test_parse_policy_keep_within_forms(value, seconds):
    assert retention.parse_policy({'keep_within': value})['keep_within'] == seconds


def test_parse_policy_counts_given_as_digit_strings_from_templates():
    assert retention.parse_policy({'keep_last': '3', 'monthly': 6.0})['keep_last'] == 3


def test_parse_policy_is_idempotent():
    parsed = retention.parse_policy({'keep_within': '7d', 'weekly': 4})
    assert retention.parse_policy(parsed) == parsed


@pytest.mark.parametrize('policy, words', [
    ({'dayly': 7}, ["'dayly' is unknown", 'keep_last, keep_within, hourly, daily, weekly, monthly']),
    ({'dayly': 7, 'yearly': 1}, ["'dayly', 'yearly' are unknown"]),
    ({'daily': -1}, ['daily=-1 is negative', 'whole number >= 0']),
    ({'keep_last': '-2'}, ["keep_last='-2' is negative"]),
    ({'weekly': 'four'}, ["weekly='four' is not a count"]),
    ({'monthly': 1.5}, ['monthly=1.5 is not a count']),
    ({'hourly': True}, ['hourly=True is not a count']),
    ({'keep_within': '7x'}, ["keep_within='7x' is not a duration", "'36h'", "'7d'"]),
    ({'keep_within': '7 days'}, ["keep_within='7 days' is not a duration"]),
    ({'keep_within': '7D'}, ["keep_within='7D' is not a duration"]),
    ({'keep_within': -60}, ['keep_within=-60 is negative']),
    ({'keep_within': [1]}, ['keep_within=[1] is not a duration']),
    (['daily', 7], ['must be a dict']),
])
def test_parse_policy_refuses_bad_input_naming_key_and_fix(policy, words):
    with pytest.raises(ValueError) as caught:
        retention.parse_policy(policy)
    for word in words:
        assert word in str(caught.value)


def test_describe_policy():
    assert retention.describe_policy({'keep_last': 3, 'keep_within': 129600, 'daily': 7}) == \
        'keep_last=3, keep_within=36h, daily=7'
    assert retention.describe_policy({}) == 'empty (keep everything)'
    assert retention.policy_is_empty({'daily': 0, 'keep_within': None}) is True
    assert retention.policy_is_empty({'weekly': 1}) is False


# -- plans ---------------------------------------------------------------------------------------------

MONTH = hourly(at('2026-10-31 00:00'), at('2026-11-30 23:00'))
NOW = at('2026-12-01 00:30')


def test_simulated_month_of_hourly_backups_grandfather_father_son():
    sets = make_sets(MONTH)
    plan = retention.plan_retention(sets, {'daily': 7, 'weekly': 4, 'monthly': 6}, NOW)
    expected = [
        '2026-11-30 23:00',  # newest verified; daily 11-30; weekly W49; monthly 2026-11
        '2026-11-29 23:00',  # daily; weekly W48
        '2026-11-28 23:00',
        '2026-11-27 23:00',
        '2026-11-26 23:00',
        '2026-11-25 23:00',
        '2026-11-24 23:00',  # 7th day
        '2026-11-22 23:00',  # weekly W47
        '2026-11-15 23:00',  # weekly W46
        '2026-10-31 23:00',  # monthly 2026-10 (only 2 months have a backup)
    ]
    assert kept_ids(plan) == [set_id(at(text)) for text in expected]
    assert len(plan['prune']) == len(MONTH) - len(expected)
    assert pruned_ids(plan) == [item['id'] for item in sorted(sets, key=lambda s: s['taken'], reverse=True)
                                if item['id'] not in kept_ids(plan)]
    reasons = dict((entry['id'], entry['reasons']) for entry in plan['keep'])
    assert reasons[set_id(at('2026-11-30 23:00'))] == [
        'newest verified backup', 'daily: newest of 2026-11-30', 'weekly: newest of ISO week 2026-W49',
        'monthly: newest of 2026-11']
    assert reasons[set_id(at('2026-11-29 23:00'))] == [
        'daily: newest of 2026-11-29', 'weekly: newest of ISO week 2026-W48']
    assert reasons[set_id(at('2026-10-31 23:00'))] == ['monthly: newest of 2026-10']
    assert plan['prune'][0]['reasons'] == ['kept by no rule of the policy (daily=7, weekly=4, monthly=6)']
    assert plan['prune'][0]['files'] == [set_id(at('2026-11-30 22:00')) + '.db']


def test_simulated_month_the_next_day_rolls_the_window():
    """One more day of backups: the oldest daily goes, the weekly and monthly ones stay."""
    sets = make_sets(hourly(at('2026-10-31 00:00'), at('2026-12-01 23:00')))
    plan = retention.plan_retention(sets, {'daily': 7, 'weekly': 4, 'monthly': 6}, at('2026-12-02 00:10'))
    expected = ['2026-12-01 23:00', '2026-11-30 23:00', '2026-11-29 23:00', '2026-11-28 23:00',
                '2026-11-27 23:00', '2026-11-26 23:00', '2026-11-25 23:00',
                '2026-11-22 23:00', '2026-11-15 23:00', '2026-10-31 23:00']
    assert kept_ids(plan) == [set_id(at(text)) for text in expected]


def test_hourly_rule_keeps_newest_of_each_hour():
    times = [at('2026-11-30 10:00'), at('2026-11-30 10:20'), at('2026-11-30 10:40'),
             at('2026-11-30 11:05'), at('2026-11-30 13:50')]
    plan = retention.plan_retention(make_sets(times), {'hourly': 2}, at('2026-11-30 14:00'))
    assert kept_ids(plan) == [set_id(at('2026-11-30 13:50')), set_id(at('2026-11-30 11:05'))]
    assert plan['keep'][1]['reasons'] == ['hourly: newest of 2026-11-30 11:00 UTC']


def test_periods_without_backups_do_not_count():
    times = [at('2026-11-30 12:00'), at('2026-11-20 12:00'), at('2026-11-10 12:00'), at('2026-10-01 12:00')]
    plan = retention.plan_retention(make_sets(times), {'daily': 3}, NOW)
    assert kept_ids(plan) == [set_id(when) for when in times[:3]]


def test_keep_last():
    times = hourly(at('2026-11-30 00:00'), at('2026-11-30 09:00'))
    plan = retention.plan_retention(make_sets(times), {'keep_last': 3}, NOW)
    assert kept_ids(plan) == [set_id(at('2026-11-30 09:00')), set_id(at('2026-11-30 08:00')),
                              set_id(at('2026-11-30 07:00'))]
    assert plan['keep'][0]['reasons'] == ['newest verified backup', 'one of the last 3']
    assert plan['keep'][2]['reasons'] == ['one of the last 3']
    assert len(plan['prune']) == 7


def test_keep_within_is_inclusive_at_the_boundary():
    times = hourly(at('2026-11-29 00:00'), at('2026-11-30 23:00'))
    now = at('2026-11-30 23:30')
    plan = retention.plan_retention(make_sets(times), {'keep_within': '36h'}, now)
    # now - 36h = 2026-11-29 11:30: 12:00 .. 23:00 of the 29th and all of the 30th.
    assert kept_ids(plan) == [set_id(when) for when in reversed(times) if when >= at('2026-11-29 11:30')]
    assert len(plan['keep']) == 36
    assert plan['keep'][-1]['reasons'] == ['taken within 36h (since 2026-11-29T11:30:00Z)']
    plan = retention.plan_retention(make_sets(times), {'keep_within': 3600}, at('2026-11-30 22:00'))
    assert kept_ids(plan) == [set_id(at('2026-11-30 23:00')), set_id(at('2026-11-30 22:00')),
                              set_id(at('2026-11-30 21:00'))]


def test_rules_combine_as_a_union():
    times = hourly(at('2026-11-28 00:00'), at('2026-11-30 23:00'))
    plan = retention.plan_retention(make_sets(times), {'keep_last': 2, 'keep_within': '3h', 'daily': 3},
                                    at('2026-11-30 23:00'))
    expected = ['2026-11-30 23:00', '2026-11-30 22:00', '2026-11-30 21:00', '2026-11-30 20:00',
                '2026-11-29 23:00', '2026-11-28 23:00']
    assert kept_ids(plan) == [set_id(at(text)) for text in expected]
    reasons = dict((entry['id'], entry['reasons']) for entry in plan['keep'])
    assert reasons[set_id(at('2026-11-30 22:00'))] == [
        'taken within 3h (since 2026-11-30T20:00:00Z)', 'one of the last 2']
    assert reasons[set_id(at('2026-11-30 23:00'))] == [
        'newest verified backup', 'taken within 3h (since 2026-11-30T20:00:00Z)', 'one of the last 2',
        'daily: newest of 2026-11-30']


def test_empty_policy_prunes_nothing():
    sets = make_sets(MONTH[:20]) + make_sets([at('2026-11-30 23:30')], verified=False)
    for policy in (None, {}, {'keep_last': 0, 'keep_within': 0, 'daily': None}):
        plan = retention.plan_retention(sets, policy, NOW)
        assert plan['prune'] == []
        assert len(plan['keep']) == 21
        assert plan['keep'][-1]['reasons'] == ['the policy is empty: everything is kept']


def test_newest_verified_is_kept_even_when_no_rule_reaches_it():
    times = [at('2026-11-01 00:00'), at('2026-10-01 00:00')]
    plan = retention.plan_retention(make_sets(times), {'keep_within': '1d'}, NOW)
    assert kept_ids(plan) == [set_id(times[0])]
    assert plan['keep'][0]['reasons'] == ['newest verified backup']
    assert pruned_ids(plan) == [set_id(times[1])]


def test_unverified_sets_newer_than_newest_verified_are_kept_for_inspection():
    verified = make_sets([at('2026-11-30 10:00'), at('2026-11-30 09:00'), at('2026-11-30 08:00')])
    broken = make_sets([at('2026-11-30 12:00'), at('2026-11-30 11:00'), at('2026-11-30 08:30')], verified=False)
    plan = retention.plan_retention(verified + broken, {'keep_last': 2}, NOW)
    assert kept_ids(plan) == [set_id(at('2026-11-30 12:00')), set_id(at('2026-11-30 11:00')),
                              set_id(at('2026-11-30 10:00')), set_id(at('2026-11-30 09:00'))]
    assert plan['keep'][0]['reasons'] == ['newer than the newest verified backup: kept for inspection']
    assert plan['keep'][2]['reasons'] == ['newest verified backup', 'one of the last 2']
    # keep_last counts verified sets only: the broken ones took no place of a good one.
    assert plan['keep'][3]['reasons'] == ['one of the last 2']
    assert pruned_ids(plan) == [set_id(at('2026-11-30 08:30')), set_id(at('2026-11-30 08:00'))]
    assert plan['prune'][0]['reasons'] == [
        'unverified (metadata or snapshot missing or not matching), older than the newest verified backup '
        'and kept by no rule of the policy (keep_last=2)']


def test_unverified_set_does_not_fill_a_daily_slot():
    sets = (make_sets([at('2026-11-30 23:00')], verified=False)
            + make_sets([at('2026-11-30 06:00'), at('2026-11-29 06:00'), at('2026-11-28 06:00')]))
    plan = retention.plan_retention(sets, {'daily': 2}, NOW)
    assert kept_ids(plan) == [set_id(at('2026-11-30 23:00')), set_id(at('2026-11-30 06:00')),
                              set_id(at('2026-11-29 06:00'))]


def test_keep_within_keeps_unverified_sets_of_its_window():
    sets = make_sets([at('2026-11-30 20:00')]) + make_sets([at('2026-11-30 19:00')], verified=False)
    plan = retention.plan_retention(sets, {'keep_within': '12h'}, NOW)
    assert kept_ids(plan) == [set_id(at('2026-11-30 20:00')), set_id(at('2026-11-30 19:00'))]


def test_no_verified_set_at_all_prunes_nothing():
    sets = make_sets(MONTH[:5], verified=False)
    plan = retention.plan_retention(sets, {'keep_last': 1}, NOW)
    assert plan['prune'] == []
    assert plan['keep'][-1]['reasons'] == ['no verified backup exists: kept for inspection']


def test_future_sets_from_clock_skew_are_kept():
    times = [at('2026-12-05 00:00'), at('2026-11-30 23:00'), at('2026-11-30 22:00'), at('2026-11-30 21:00')]
    plan = retention.plan_retention(make_sets(times), {'keep_last': 1}, NOW)
    assert kept_ids(plan) == [set_id(times[0])]
    assert plan['keep'][0]['reasons'] == [
        'taken in the future (2026-12-05T00:00:00Z, clock skew?): kept', 'newest verified backup',
        'one of the last 1']
    unverified_future = make_sets([at('2026-12-05 00:00')], verified=False) + make_sets(times[1:])
    plan = retention.plan_retention(unverified_future, {'keep_last': 1}, NOW)
    assert kept_ids(plan) == [set_id(times[0]), set_id(times[1])]
    assert plan['keep'][0]['reasons'][0] == 'taken in the future (2026-12-05T00:00:00Z, clock skew?): kept'


def test_plan_accepts_a_naive_now_as_utc_and_any_input_order():
    sets = make_sets([at('2026-11-28 00:00'), at('2026-11-30 00:00'), at('2026-11-29 00:00')])
    plan = retention.plan_retention(sets, {'keep_last': 2}, datetime.datetime(2026, 12, 1))
    assert kept_ids(plan) == [set_id(at('2026-11-30 00:00')), set_id(at('2026-11-29 00:00'))]
    assert plan['prune'][0]['taken'] == at('2026-11-28 00:00')


def test_plan_refuses_a_bad_policy():
    with pytest.raises(ValueError, match="key 'daily ' is unknown"):
        retention.plan_retention(make_sets(MONTH[:2]), {'daily ': 1}, NOW)


def test_group_then_plan_end_to_end():
    names = []
    for when in MONTH[-30:]:
        base = set_id(when) + '-rev%d' % (1000 + when.hour)
        names += [base + '.db', base + '.db.meta.json', base + '-pki.tar.gz']
    names.append('README')
    sets, ignored = retention.group_backup_sets(names, 'kubernetes')
    for item in sets:
        item['verified'] = bool(item['snapshot'] and item['metadata'])
    plan = retention.plan_retention(sets, {'keep_last': 5}, NOW)
    assert ignored == ['README']
    assert len(plan['keep']) == 5
    assert sum(len(entry['files']) for entry in plan['prune']) == 75
    assert plan['prune'][0]['files'] == sorted([
        'kubernetes-20261130T180000Z-rev1018-pki.tar.gz', 'kubernetes-20261130T180000Z-rev1018.db',
        'kubernetes-20261130T180000Z-rev1018.db.meta.json'])
