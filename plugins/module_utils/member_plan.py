# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The planner of the etcd_member role: replace or add one member of a stacked etcd (private to this collection;
no API promise before 1.0).

Pure functions, no I/O. The role reads every control plane (the member its etcd.yaml defines, where that
manifest is, what its data dir holds, the cluster as each node's etcd sees it) and hands the facts to the
``etcd_member_plan`` action plugin, which calls these functions. Every decision lives here: which member is
meant, in what state it is, which steps a run still has to do (so that a run interrupted anywhere is finished
by the next one), which node talks to etcd, what to refuse, and the texts an operator reads.

A refusal is a dict ``{host, cause, fix}``; every refusal found is returned, never only the first.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# The member's state as the cluster shows it, before this run changes anything.
ABSENT = 'absent'                      # no member has the node's name or peer URLs
VOTING_HEALTHY = 'voting-healthy'      # started, voting, answers healthy
VOTING_DOWN = 'voting-down'            # voting, but down, unhealthy or never started
LEARNER_UNSTARTED = 'learner-unstarted'  # added by an earlier run, its etcd never ran
LEARNER_STARTED = 'learner-started'    # added by an earlier run and running, not promoted yet

# The steps of a run, in order; a plan says which of them this run does.
STEPS = ('stop', 'move_aside', 'remove', 'add', 'manifest', 'start', 'promote', 'verify')
STEP_TEXT = {
    'stop': 'stop etcd on %(host)s (%(held_text)s)',
    'move_aside': 'move the data dir %(data_dir)s aside to %(moved_aside)s (renamed, kept)',
    'remove': 'remove member %(name)s (%(member_id)s) from the cluster (through %(helper)s)',
    'add': 'add member %(name)s (%(peer_urls)s) %(add_kind)s (through %(helper)s)',
    'manifest': 'write etcd.yaml of %(host)s: --initial-cluster from the member list, --initial-cluster-state=existing, '
                'data dir %(data_dir)s (empty)',
    'start': 'start etcd on %(host)s',
    'promote': 'promote learner %(name)s to a voting member',
    'verify': 'verify: members %(expected)s, all started and voting, one leader, %(name)s caught up with the leader',
}


class MemberPlanError(Exception):
    """Bad input to the planner itself (a bug in the role, not a problem of the cluster)."""


def refusal(host, cause, fix):
    return {'host': host, 'cause': cause, 'fix': fix}


def refusal_text(refusals, intro='The member change was refused before anything was changed'):
    lines = ['%s (%d problem%s):' % (intro, len(refusals), '' if len(refusals) == 1 else 's')]
    for item in refusals:
        lines.append('- %s: %s Fix: %s' % (item['host'], item['cause'], item['fix']))
    return '\n'.join(lines)


def _flag(value):
    """A boolean fact as templating may hand it over (True, 'True', 'true', ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ('true', 'yes', '1')
    return bool(value)


def quorum(count):
    return count // 2 + 1


def _healthy_ids(cluster):
    return set(endpoint['member_id'] for endpoint in cluster.get('endpoints') or []
               if endpoint.get('healthy') and endpoint.get('member_id'))


def _version(cluster):
    """(major, minor) of the lowest etcd version a member reported, None when none did."""
    found = []
    for endpoint in cluster.get('endpoints') or []:
        parts = str(endpoint.get('version') or '').split('.')
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            found.append((int(parts[0]), int(parts[1])))
    return min(found) if found else None


def _urls(values):
    return sorted(url.rstrip('/') for url in values or [])


def find_target_member(members, name, peer_urls, host):
    """``(member or None, refusals)``: the member of node ``host`` (name ``name``, peer URLs ``peer_urls``)."""
    refusals = []
    wanted = _urls(peer_urls)
    named = [member for member in members if member['name'] == name]
    by_url = [member for member in members if set(_urls(member['peer_urls'])) & set(wanted)]
    for member in by_url:
        if member['name'] and member['name'] != name:
            refusals.append(refusal(
                host, 'etcd member %s (%s) has the peer URL %s of %s, but the etcd.yaml of %s names its member %s.'
                % (member['name'], member['id'], ','.join(member['peer_urls']), host, host, name),
                'Give --name=%s in the etcd.yaml of %s (the name of the member it replaces), or remove member %s '
                '(etcdctl member remove %s) if it is really gone.' % (member['name'], host, member['name'],
                                                                      member['id'])))
    for member in named:
        if _urls(member['peer_urls']) != wanted:
            refusals.append(refusal(
                host, 'etcd member %s (%s) has the peer URLs %s, but the etcd.yaml of %s says %s.'
                % (name, member['id'], ','.join(member['peer_urls']), host, ','.join(wanted)),
                'Correct --initial-advertise-peer-urls in the etcd.yaml of %s, or remove member %s by hand '
                '(etcdctl member remove %s) so it is added again with the new URLs.' % (host, name, member['id'])))
    if len(named) > 1:
        refusals.append(refusal(host, 'etcd has %d members named %s.' % (len(named), name),
                                'Remove the stale one by ID (etcdctl member remove).'))
    if refusals:
        return None, refusals
    if named:
        return named[0], []
    unstarted = [member for member in by_url if not member['name'] and _urls(member['peer_urls']) == wanted]
    return (unstarted[0] if unstarted else None), []


def member_state(member, cluster):
    if member is None:
        return ABSENT
    healthy = member['id'] in _healthy_ids(cluster)
    if member['is_learner']:
        return LEARNER_STARTED if member['name'] and healthy else LEARNER_UNSTARTED
    return VOTING_HEALTHY if member['name'] and healthy else VOTING_DOWN


def _answer_refusals(target, hosts, nodes, views):
    """Every node must have answered; the others must see etcd."""
    refusals = []
    for host in hosts:
        node = nodes.get(host)
        if node is None or node.get('error'):
            refusals.append(refusal(
                host, 'it did not answer or could not be read (%s).'
                % ((node or {}).get('error') or 'unreachable, or its checks failed'),
                'Bring %s back (SSH, Python, root rights) and run again; every control plane of the group must answer '
                'before a member changes.' % host))
            continue
        if host == target:
            continue
        view = views.get(host)
        if not view or view.get('error'):
            refusals.append(refusal(
                host, 'its etcd could not be asked for the cluster state (%s).'
                % ((view or {}).get('error') or 'no answer'),
                'Check etcd and its tools on %s (kubeops.etcd.etcd_cluster_health) and run again.' % host))
    return refusals


def _choose_helper(target, hosts, nodes, views):
    """The first other control plane whose own member is a healthy voting member of a cluster with a leader."""
    for host in hosts:
        if host == target:
            continue
        view = views.get(host) or {}
        if view.get('error') or not view.get('leader'):
            continue
        own = ((nodes.get(host) or {}).get('member') or {}).get('name')
        members = dict((member['name'], member) for member in view.get('members') or [])
        mine = members.get(own)
        if mine and not mine['is_learner'] and mine['id'] in _healthy_ids(view):
            return host
    return None


def _node_manifest_refusals(target, node, options):
    where = node.get('manifest_where')
    if where == 'both':
        return [refusal(target, 'etcd.yaml is both in %s and held in %s.' % (options['manifests_dir'],
                                                                             options['holding_dir']),
                        'Keep the one that is current (the kubelet runs the one in %s) and move the other out of both '
                        'dirs, then run again.' % options['manifests_dir'])]
    if where not in ('manifests', 'held'):
        return [refusal(target, 'it has no etcd.yaml in %s nor in %s.'
                        % (options['manifests_dir'], options['holding_dir']),
                        'This playbook replaces the etcd member of a control plane kubeadm set up; join the node first '
                        '(kubeadm join --control-plane), or put its etcd.yaml back.')]
    member = node.get('member') or {}
    if not member.get('name') or not member.get('peer_urls'):
        return [refusal(target, 'its etcd.yaml (%s) has no --name or no --initial-advertise-peer-urls.'
                        % node.get('manifest_path'), 'Fix the manifest; kubeadm writes both.')]
    return []


def plan(target, hosts, nodes, views, replace=False, options=None):
    """Decide what a run does for node ``target``; ``(plan, refusals)``.

    hosts: every control plane of the play (ansible_play_hosts_all), in inventory order.
    nodes: {host: {'error': str or None, 'member': etcd_member_info's ``member``, 'manifest_where': 'manifests',
    'held', 'both' or 'none', 'manifest_path': str, 'data_dir_exists': bool, 'data_dir_has_files': bool}}.
    views: {host: etcd_cluster_health's ``cluster`` seen from that host, or {'error': msg}} for the other hosts.
    options: {'timestamp', 'manifests_dir', 'holding_dir', 'runs_dir'}.
    """
    options = dict(options or {})
    for key in ('timestamp', 'manifests_dir', 'holding_dir', 'runs_dir'):
        if not options.get(key):
            raise MemberPlanError('member plan: option %s is missing' % key)
    if not target:
        return None, [refusal('etcd_member_host', 'no node was named.',
                              'Run with -e etcd_member_host=<control plane of the inventory group>.')]
    if target not in hosts:
        return None, [refusal(target, 'it is not a host of the play (the inventory group has: %s).'
                              % (', '.join(hosts) or 'none'),
                              'Add %s to the control-plane group of the inventory (the group the playbook targets, '
                              'etcd_target_group), or correct etcd_member_host.' % target)]
    refusals = _answer_refusals(target, hosts, nodes, views)
    node = nodes.get(target) or {}
    if not node.get('error') and target in nodes:
        refusals.extend(_node_manifest_refusals(target, node, options))
    helper = _choose_helper(target, hosts, nodes, views)
    if helper is None:
        refusals.append(refusal(
            target, 'no other control plane runs a healthy voting etcd member of a cluster with a leader.',
            'This playbook needs the cluster to keep its quorum without %s; with quorum lost, restore from a snapshot '
            '(playbooks/restore.yml).' % target))
    if refusals:
        return None, refusals
    cluster = views[helper]
    for host in hosts:
        other = views.get(host)
        if host != target and other and other.get('cluster_id') and other['cluster_id'] != cluster['cluster_id']:
            refusals.append(refusal(host, 'its etcd belongs to cluster %s, %s to cluster %s.'
                                    % (other['cluster_id'], helper, cluster['cluster_id']),
                                    'Every control plane of the group must be a member of one cluster; fix the '
                                    'inventory or the node first.'))
    member_facts = node['member']
    name = member_facts['name']
    members = cluster.get('members') or []
    member, found = find_target_member(members, name, member_facts['peer_urls'], target)
    refusals.extend(found)
    state = member_state(member, cluster)
    if state == VOTING_HEALTHY and not replace:
        refusals.append(refusal(
            target, 'its etcd runs as a healthy, started voting member %s (%s) of the cluster; there is nothing to '
            'replace.' % (name, member['id']),
            'Nothing to do if it works. To replace it anyway (it answers but is broken, e.g. a corrupt data dir), '
            'run again with -e etcd_member_replace=true.'))
    healthy = _healthy_ids(cluster)
    others = [m for m in members if member is None or m['id'] != member['id']]
    voting_left = [m for m in others if not m['is_learner']]
    started_left = [m for m in voting_left if m['name'] and m['id'] in healthy]
    if len(started_left) < quorum(len(voting_left)):
        down = [m['name'] or m['id'] for m in voting_left if m not in started_left]
        refusals.append(refusal(
            target, 'without its member, %d voting members are left and only %d of them are started and healthy '
            '(%s down), fewer than the %d a quorum needs.'
            % (len(voting_left), len(started_left), ', '.join(down), quorum(len(voting_left))),
            'Bring %s back first; with quorum lost, restore from a snapshot (playbooks/restore.yml).' % ', '.join(down)))
    other_learners = [m for m in others if m['is_learner']]
    version = _version(cluster)
    if other_learners and (version is None or version >= (3, 5)):
        refusals.append(refusal(
            target, 'learner %s (%s) is not promoted yet, and etcd allows one learner at a time.'
            % (other_learners[0]['name'] or '(not started)', other_learners[0]['id']),
            'Finish that member first (run this playbook for its node), or remove it (etcdctl member remove %s).'
            % other_learners[0]['id']))
    if refusals:
        return None, refusals

    as_learner = version is None or version >= (3, 5)
    steps = decide_steps(state, replace, node, as_learner)
    data_dir = member_facts['data_dir_host_path']
    names = sorted([m['name'] for m in others if m['name']] + [name])
    result = {
        'host': target,
        'name': name,
        'peer_urls': list(member_facts['peer_urls']),
        'client_urls': list(member_facts.get('advertise_client_urls') or []),
        'state': state,
        'member_id': member['id'] if member else None,
        'replace': bool(replace),
        'helper': helper,
        'cluster_id': cluster['cluster_id'],
        'version': '.'.join(str(part) for part in version) if version else None,
        'as_learner': as_learner,
        'manifest_where': node['manifest_where'],
        'manifest_path': node['manifest_path'],
        'held_manifest': '%s/etcd.yaml' % options['holding_dir'].rstrip('/'),
        'run_dir': '%s/member-%s' % (options['runs_dir'].rstrip('/'), options['timestamp']),
        'data_dir': data_dir,
        'moved_aside': '%s.replaced-%s' % (data_dir, options['timestamp']),
        'expected_members': names,
        'steps': steps,
        'timestamp': options['timestamp'],
    }
    result['lines'] = plan_lines(result)
    return result, []


def decide_steps(state, replace, node, as_learner=True):
    """{step: bool} of STEPS for a member in ``state``; what an earlier run already did is not done again."""
    has_data = _flag(node.get('data_dir_has_files'))
    if state == LEARNER_STARTED:
        # An earlier run added it and started it: only the promotion is left.
        steps = dict.fromkeys(STEPS, False)
        steps.update(promote=True, verify=True)
        if replace:
            steps = dict.fromkeys(STEPS, True)
        return steps
    steps = dict.fromkeys(STEPS, True)
    # A learner that never started wrote nothing: what its data dir holds is older data and must go aside.
    steps['move_aside'] = has_data
    steps['remove'] = state in (VOTING_HEALTHY, VOTING_DOWN) or (state == LEARNER_UNSTARTED and replace)
    steps['promote'] = as_learner
    return steps


def plan_lines(result):
    """The plan as an operator reads it."""
    values = dict(result)
    values.update(
        held_text=('its etcd.yaml is held already: %s' % result['manifest_path'] if result['manifest_where'] == 'held'
                   else 'hold %s aside in %s' % (result['manifest_path'], result['held_manifest'].rsplit('/', 1)[0])),
        member_id=result['member_id'] or '-',
        peer_urls=','.join(result['peer_urls']),
        add_kind='as a learner' if result['as_learner'] else 'as a voting member (etcd 3.4 has no learners)',
        expected=', '.join(result['expected_members']),
    )
    state_text = {
        ABSENT: 'it has no member in the cluster: it is added',
        VOTING_HEALTHY: 'it is a healthy voting member; etcd_member_replace=true: it is replaced',
        VOTING_DOWN: 'its member is down or unhealthy: it is replaced',
        LEARNER_UNSTARTED: 'an earlier run added it as a learner that never started: this run finishes it',
        LEARNER_STARTED: 'an earlier run added and started it as a learner: this run promotes it',
    }[result['state']]
    lines = ['etcd member plan for %s (member %s, peer URLs %s), cluster %s, etcd %s:'
             % (result['host'], result['name'], values['peer_urls'], result['cluster_id'], result['version'] or '?'),
             'state: %s.' % state_text,
             'etcd commands go through %s.' % result['helper']]
    number = 0
    for step in STEPS:
        if result['steps'][step]:
            number += 1
            lines.append('%d. %s' % (number, STEP_TEXT[step] % values))
    skipped = [step for step in STEPS if not result['steps'][step]]
    if skipped:
        lines.append('not needed: %s.' % ', '.join(skipped))
    return lines


def verify(result, cluster, caught_up_revision):
    """Problems of the cluster after the run (an empty list when it is as planned).

    cluster: etcd_cluster_health's ``cluster`` read after the promotion; caught_up_revision: the leader's revision
    read before it, which the new member must have reached.
    """
    problems = []
    members = cluster.get('members') or []
    names = sorted(member['name'] for member in members)
    if names != result['expected_members']:
        problems.append('the members are %s, not %s' % (', '.join(names) or 'none', ', '.join(result['expected_members'])))
    for member in members:
        if not member['name']:
            problems.append('member %s has not started' % member['id'])
        elif member['is_learner']:
            problems.append('member %s is still a learner' % member['name'])
    healthy = _healthy_ids(cluster)
    for member in members:
        if member['name'] and member['id'] not in healthy:
            problems.append('member %s is not healthy' % member['name'])
    leaders = [endpoint for endpoint in cluster.get('endpoints') or [] if endpoint.get('is_leader')]
    if len(leaders) != 1:
        problems.append('%d leaders instead of one' % len(leaders))
    if cluster.get('cluster_id') != result['cluster_id']:
        problems.append('cluster ID is %s, was %s' % (cluster.get('cluster_id'), result['cluster_id']))
    mine = [endpoint for endpoint in cluster.get('endpoints') or [] if endpoint.get('name') == result['name']]
    revision = mine[0].get('revision') if mine else None
    if revision is None or (caught_up_revision is not None and revision < caught_up_revision):
        problems.append('%s is at revision %s, behind the leader\'s %s' % (result['name'], revision, caught_up_revision))
    return problems


def member_id_of(cluster, name):
    for member in cluster.get('members') or []:
        if member['name'] == name:
            return member['id']
    return None


def can_put_back(done):
    """Whether a failed run may put the node back as it was: only while this run has not changed the membership.

    Once the old member is removed (or the new one added), its old data can never rejoin; putting it back would
    start a member the cluster no longer knows.
    """
    return 'remove' not in done and 'add' not in done


def failure_report(result, done, failure, restored):
    """The message of a failed run: what was done, whether the node was put back, what to run next.

    done: the steps of STEPS that completed; failure: {'task', 'msg'}; restored: whether the original etcd.yaml and
    data dir were put back.
    """
    host = result['host']
    lines = ['etcd member change of %s FAILED at "%s": %s'
             % (host, failure.get('task') or '?', failure.get('msg') or 'no message')]
    lines.append('Done before the failure: %s.' % (', '.join(step for step in STEPS if step in done) or 'nothing'))
    if restored:
        lines.append('PUT BACK: %s has its original etcd.yaml and its data dir %s again; the cluster membership was '
                     'not changed. Fix the cause, then run the same playbook again.' % (host, result['data_dir']))
        return '\n'.join(lines)
    if can_put_back(done):
        lines.append('NOT PUT BACK: putting %s back failed too (see the task above); its original etcd.yaml is held in '
                     '%s%s. Fix the cause, then run the same playbook again.'
                     % (host, result['held_manifest'], ', its data dir was moved to %s' % result['moved_aside']
                        if 'move_aside' in done else ''))
        return '\n'.join(lines)
    changed = 'removed' if 'add' not in done else (
        'added back as a learner, not promoted yet' if result['as_learner'] else 'added back')
    lines.append('NOT PUT BACK: the membership has changed (member %s %s), so the old data cannot rejoin. %s is '
                 'stopped or starting on the new, empty data dir %s; the old data dir is kept in %s and the etcd.yaml '
                 'it ran with in %s. Fix the cause, then run the same playbook again with -e etcd_member_host=%s: it '
                 'goes on from where this run stopped.'
                 % (result['name'], changed, host, result['data_dir'],
                    result['moved_aside'] if 'move_aside' in done else '(nothing was moved)', result['run_dir'], host))
    return '\n'.join(lines)
