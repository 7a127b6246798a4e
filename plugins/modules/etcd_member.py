#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_member
short_description: Add, promote or remove one etcd member while the cluster keeps its quorum
version_added: 0.3.0
description:
  - Adds a member to a running etcd cluster (O(state=present)), promotes a learner to a voting member
    (O(state=promoted)) or removes a member (O(state=absent)), the steps that replace a lost control plane node.
  - Before any change reads the member list, then the status and health of every member at its own client URL, and
    refuses when the cluster has no leader or fewer than a majority of its voting members are healthy.
  - O(state=present) adds the member as a learner (C(member add --learner)) when the cluster runs etcd 3.5 or newer,
    as a voting member on etcd 3.4. A learner takes no part in the quorum until it is promoted.
  - O(state=absent) refuses when the member is the only voting member, or when the voting members left would not
    have a quorum among the started, healthy ones (etcd's C(--strict-reconfig-check) rule, applied to the health the
    module reads). Removing a healthy member from a healthy two-member cluster is allowed (one member is a quorum of
    one), though it leaves no fault tolerance.
  - O(state=promoted) retries C(member promote) while etcd answers that the learner is not in sync with the leader,
    until O(promote_timeout).
  - Members are matched by name; a member is never removed or promoted by a different name. A member added but not
    started yet has no name; it is matched by O(peer_urls).
  - Returns the C(--initial-cluster) value and C(--initial-cluster-state=existing) the new member's etcd must start
    with.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  name:
    description:
      - Name of the member (its etcd C(--name); kubeadm uses the node name).
    type: str
    required: true
  peer_urls:
    description:
      - Peer URLs of the member (its C(--initial-advertise-peer-urls)), for example V(https://10.0.0.13:2380).
      - Required with O(state=present).
      - With O(state=absent) or O(state=promoted), optional; when given, a member with that name but other peer URLs
        is refused, and a member added but never started (no name yet) with exactly these peer URLs is the one meant.
    type: list
    elements: str
  state:
    description:
      - V(present) adds the member (a learner on etcd 3.5+); nothing changes when it exists with these peer URLs.
      - V(promoted) makes the learner a voting member; nothing changes when it votes already.
      - V(absent) removes the member; nothing changes when no member has that name.
    type: str
    choices: [absent, present, promoted]
    default: present
  promote_timeout:
    description:
      - Seconds to keep retrying C(member promote) while the learner catches up with the leader.
    type: int
    default: 300
extends_documentation_fragment:
  - kubeops.etcd.connection
  - kubeops.etcd.tools
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.actiongroup_etcd
attributes:
  check_mode:
    support: full
    details:
      - Reads the cluster, decides, and reports what it would do in RV(msg); RV(members) is the predicted list.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - After O(state=absent), stop etcd on the removed node and move its data directory aside before it joins again;
    a removed member cannot rejoin with its old data.
  - After O(state=present), start etcd on the new node with an empty data directory, RV(initial_cluster) as
    C(--initial-cluster) and C(--initial-cluster-state=existing); then promote it (O(state=promoted)).
  - etcd allows one learner at a time; promote or remove a learner before adding the next member.
seealso:
  - module: kubeops.etcd.etcd_cluster_health
  - module: kubeops.etcd.etcd_member_info
  - name: etcd runtime reconfiguration
    description: How to add and remove members, and the strict reconfiguration check.
    link: https://etcd.io/docs/v3.5/op-guide/runtime-configuration/
'''

EXAMPLES = r'''
- name: Remove the etcd member of the lost control plane cp3
  kubeops.etcd.etcd_member:
    name: cp3
    state: absent
  become: true
  delegate_to: cp1

- name: Add cp3 back (a learner on etcd 3.5+)
  kubeops.etcd.etcd_member:
    name: cp3
    peer_urls:
      - https://10.0.0.13:2380
  become: true
  delegate_to: cp1
  register: etcd_new_member

- name: Show what cp3's etcd manifest must say
  ansible.builtin.debug:
    msg: >-
      --initial-cluster={{ etcd_new_member.initial_cluster }}
      --initial-cluster-state={{ etcd_new_member.initial_cluster_state }}

- name: Promote cp3 once its etcd runs and has caught up
  kubeops.etcd.etcd_member:
    name: cp3
    state: promoted
    promote_timeout: 600
  become: true
  delegate_to: cp1
'''

RETURN = r'''
msg:
  description: What the module did, or in check mode would do.
  returned: always
  type: str
  sample: added cp3 (https://10.0.0.13:2380) as a learner
member:
  description:
    - The member the task is about, after the change (for V(absent), the member removed); V(null) with O(state=absent)
      when no such member exists.
    - In check mode a member still to be added has RV(member.id=null).
  returned: always
  type: dict
  contains:
    name:
      description: Member name (the requested name while the member has not started).
      type: str
      sample: cp3
    id:
      description: Member ID (hex, as etcdctl prints it).
      type: str
      sample: 6e3bd23ae5f1eae0
    peer_urls:
      description: Peer URLs.
      type: list
      elements: str
      sample: ["https://10.0.0.13:2380"]
    is_learner:
      description: Whether it is a learner (takes no part in the quorum).
      type: bool
      sample: true
members:
  description:
    - The member list after the change (in check mode, as it would be), in etcd's order (by member ID). A member added
      but not started yet has an empty name and no client URLs.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Member name.
      type: str
    id:
      description: Member ID (hex).
      type: str
    is_learner:
      description: Whether it is a learner.
      type: bool
    peer_urls:
      description: Peer URLs.
      type: list
      elements: str
    client_urls:
      description: Client URLs.
      type: list
      elements: str
  sample: [{"id": "983d3a5b1b3bd8ab", "name": "cp1", "peer_urls": ["https://10.0.0.11:2380"],
            "client_urls": ["https://10.0.0.11:2379"], "is_learner": false}]
initial_cluster:
  description:
    - The C(--initial-cluster) value a joining member starts with, C(name=peerURL) pairs separated by commas, in the
      order C(etcdctl member add) prints C(ETCD_INITIAL_CLUSTER) - the started members plus this one.
    - With O(state=absent), the started members left.
  returned: always
  type: str
  sample: cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380
initial_cluster_state:
  description: The C(--initial-cluster-state) a joining member starts with.
  returned: always
  type: str
  sample: existing
cluster_id:
  description: Cluster ID (hex).
  returned: always
  type: str
  sample: d0d8b5b2b8a4a06e
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.connection import (
    connection_argument_spec,
    load_manifest,
    needs_manifest,
    query_cluster,
    resolve_connection,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import (
    load_json,
    member_id_hex,
    parse_member_list,
    version_tuple,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner, command_error

PROMOTE_RETRY_INTERVAL = 2.0
ADD_RETRY_SECONDS = 20
ADD_RETRY_INTERVAL = 1.0
UNHEALTHY_CLUSTER = 'etcdserver: unhealthy cluster'
NOT_IN_SYNC = 'can only promote a learner member which is in sync with leader'


def describe(member, name=None):
    """A member as the module returns it; ``name`` stands in while the member has not started (no name yet)."""
    return {
        'name': member['name'] or name or '',
        'id': member_id_hex(member['id']),
        'peer_urls': list(member['peer_urls']),
        'client_urls': list(member['client_urls']),
        'is_learner': member['is_learner'],
    }


def short(member, name=None):
    described = describe(member, name)
    return dict((key, described[key]) for key in ('name', 'id', 'peer_urls', 'is_learner'))


def find_member(members, name, peer_urls):
    """The member meant by name (else an unstarted one with exactly peer_urls); refuses ambiguity and conflicts.

    Returns the member dict or None.
    """
    named = [member for member in members if member['name'] == name]
    if len(named) > 1:
        raise EtcdModuleError(
            'etcd has %d members named %s (%s) on %s; remove the stale one by ID with etcdctl member remove.'
            % (len(named), name, ', '.join(member_id_hex(m['id']) for m in named), node_name()))
    wanted = sorted(peer_urls or [])
    if named:
        member = named[0]
        if wanted and sorted(member['peer_urls']) != wanted:
            raise EtcdModuleError(
                'etcd member %s (%s) has peer URLs %s, not %s (checked from %s). Fix peer_urls, or remove the member '
                '(state=absent) and add it again with the new URLs.'
                % (name, member_id_hex(member['id']), ','.join(member['peer_urls']), ','.join(wanted), node_name()))
        return member
    for member in members:
        overlap = sorted(set(member['peer_urls']) & set(wanted))
        if not overlap:
            continue
        if not member['name'] and sorted(member['peer_urls']) == wanted:
            return member  # added, not started yet: it has no name until its etcd runs
        raise EtcdModuleError(
            'Peer URL %s of %s belongs to etcd member %s (%s) on the cluster seen from %s. Give %s its own peer URLs, '
            'or remove member %s first (state=absent).'
            % (','.join(overlap), name, member['name'] or '(not started)', member_id_hex(member['id']), node_name(),
               name, member['name'] or member_id_hex(member['id'])))
    return None


def healthy_member_ids(cluster):
    """Hex IDs of the members whose endpoint answered healthy."""
    return set(endpoint['member_id'] for endpoint in cluster['endpoints']
               if endpoint['healthy'] and endpoint['member_id'])


def quorum(count):
    return count // 2 + 1


def check_cluster_can_change(cluster, members, name):
    """Refuse any change without a leader or with fewer than a majority of the voting members healthy."""
    voting = [member for member in members if not member['is_learner']]
    healthy = healthy_member_ids(cluster)
    healthy_voting = [member for member in voting if member_id_hex(member['id']) in healthy]
    if not cluster['leader']:
        raise EtcdModuleError(
            'Refusing to change etcd member %s: the cluster seen from %s has no leader (%s). Bring the members back '
            'and wait for a leader (kubeops.etcd.etcd_cluster_health) first.'
            % (name, node_name(), '; '.join(cluster['problems']) or 'no leader'))
    if len(healthy_voting) < quorum(len(voting)):
        raise EtcdModuleError(
            'Refusing to change etcd member %s: only %d of %d voting members are healthy (seen from %s), fewer than '
            'the %d a quorum needs: %s. Bring members back first; changing the membership now could stop the cluster.'
            % (name, len(healthy_voting), len(voting), node_name(), quorum(len(voting)),
               '; '.join(cluster['problems'])))


def check_removal_keeps_quorum(cluster, members, target):
    """etcd's strict reconfiguration rule: the voting members left must have a quorum of started, healthy ones."""
    if target['is_learner']:
        return  # a learner is no part of the quorum
    label = target['name'] or member_id_hex(target['id'])
    voting = [member for member in members if not member['is_learner']]
    remaining = [member for member in voting if member['id'] != target['id']]
    if not remaining:
        raise EtcdModuleError(
            'Refusing to remove etcd member %s: it is the only voting member; the cluster would have none left. '
            'To rebuild a cluster from scratch, restore a snapshot instead.' % label)
    healthy = healthy_member_ids(cluster)
    started = [member for member in remaining if member['name'] and member_id_hex(member['id']) in healthy]
    if len(started) < quorum(len(remaining)):
        down = [member['name'] or member_id_hex(member['id']) for member in remaining if member not in started]
        raise EtcdModuleError(
            'Refusing to remove etcd member %s (seen from %s): %d voting members would be left and only %d of them '
            '(%s) are started and healthy, fewer than the %d a quorum needs (%s down). Bring %s back first, or remove '
            'a member that is down.'
            % (label, node_name(), len(remaining), len(started),
               ', '.join(member['name'] for member in started) or 'none', quorum(len(remaining)), ', '.join(down),
               ', '.join(down)))


def check_voting_add_keeps_quorum(cluster, members, name):
    """etcd's rule for a voting member (etcd 3.4): the started members must be a quorum of the grown cluster."""
    voting = [member for member in members if not member['is_learner']]
    healthy = healthy_member_ids(cluster)
    started = [member for member in voting if member['name'] and member_id_hex(member['id']) in healthy]
    if len(started) == 1 and len(voting) == 1:
        return  # growing one member to two, as etcd allows
    if len(started) < quorum(len(voting) + 1):
        raise EtcdModuleError(
            'Refusing to add etcd member %s as a voting member (etcd 3.4, seen from %s): only %d of %d voting members '
            'are started and healthy, fewer than the %d a quorum of %d needs. Bring members back first.'
            % (name, node_name(), len(started), len(voting), quorum(len(voting) + 1), len(voting) + 1))


def initial_cluster(members, target, name):
    """``name=peerURL,...`` of the started members plus the target, in member-list order (as member add prints).

    ``target`` is the member meant (None for none); in check mode a member still to be added has no ID yet.
    """
    pairs = []
    for member in members:
        if target is not None and (member is target or (target['id'] is not None and member['id'] == target['id'])):
            label = name
        elif member['name']:
            label = member['name']
        else:
            continue  # another member that has not started: kubeadm leaves it out too
        pairs.extend('%s=%s' % (label, url) for url in member['peer_urls'])
    return ','.join(pairs)


def cluster_version(cluster, tools):
    """Lowest server version among the members (the etcdctl version when no member reported one)."""
    versions = [version_tuple(endpoint['version']) for endpoint in cluster['endpoints'] if endpoint['version']]
    versions = [version for version in versions if version]
    if versions:
        return min(versions)
    return version_tuple(tools.etcdctl_version)


class MemberChange(object):
    """One run: reads the cluster once, decides, acts through etcdctl, reads the member list back."""

    def __init__(self, module, runner, etcdctl, conn, tools):
        self.module = module
        self.params = module.params
        self.runner = runner
        self.etcdctl = etcdctl
        self.conn = conn
        self.tools = tools
        self.name = self.params['name']
        self.peer_urls = [url.strip() for url in self.params['peer_urls'] or [] if url.strip()]

    def read(self):
        cluster, raw = query_cluster(self.runner, self.etcdctl, self.conn)
        return cluster, raw['member_list'], raw['statuses']

    def endpoints(self, cluster, members, exclude_id=None):
        """Client URLs of healthy voting members, the leader first: learners answer no member API."""
        healthy = healthy_member_ids(cluster)
        urls = []
        if cluster['leader_client_url'] and cluster['leader'] != member_id_hex(exclude_id):
            urls.append(cluster['leader_client_url'])
        for member in members:
            if member['is_learner'] or member['id'] == exclude_id or member_id_hex(member['id']) not in healthy:
                continue
            urls.extend(url for url in member['client_urls'] if url not in urls)
        return urls or list(self.conn.endpoints)

    def etcdctl_run(self, endpoints, args, check_rc=True):
        result = self.runner.run([self.etcdctl] + self.conn.args(endpoints) + args, check_rc=False)
        if check_rc and result.rc != 0:
            raise command_error(result, what='`etcdctl %s` for member %s' % (' '.join(args), self.name))
        return result

    def list_members(self, endpoints):
        result = self.etcdctl_run(endpoints, ['member', 'list', '-w', 'json'])
        return parse_member_list(result.stdout)

    def result(self, changed, msg, member, member_list, members, in_cluster=True):
        return {
            'changed': changed,
            'msg': msg,
            'member': short(member, self.name) if member else None,
            'members': [describe(m) for m in members],
            'initial_cluster': initial_cluster(members, member if in_cluster else None, self.name),
            'initial_cluster_state': 'existing',
            'cluster_id': member_id_hex(member_list['cluster_id']),
        }

    def run(self):
        cluster, member_list, statuses = self.read()
        members = member_list['members']
        state = self.params['state']
        if state == 'present' and not self.peer_urls:
            raise EtcdModuleError('state=present needs peer_urls for etcd member %s.' % self.name)
        target = find_member(members, self.name, self.peer_urls)
        return getattr(self, state)(cluster, member_list, statuses, members, target)

    def present(self, cluster, member_list, statuses, members, target):
        if target is not None:
            state = 'a learner' if target['is_learner'] else 'a voting member'
            started = '' if target['name'] else ', not started yet'
            return self.result(False, 'etcd member %s (%s) exists as %s%s' % (self.name, ','.join(target['peer_urls']),
                                                                              state, started),
                               target, member_list, members)
        check_cluster_can_change(cluster, members, self.name)
        learners = [member for member in members if member['is_learner']]
        version = cluster_version(cluster, self.tools)
        as_learner = version is not None and version >= (3, 5)
        if as_learner and learners:
            raise EtcdModuleError(
                'Refusing to add etcd member %s: learner %s (%s) has not been promoted yet, and etcd allows one learner '
                'at a time. Start and promote it (state=promoted) or remove it (state=absent) first.'
                % (self.name, learners[0]['name'] or '(not started)', member_id_hex(learners[0]['id'])))
        if not as_learner:
            check_voting_add_keeps_quorum(cluster, members, self.name)
        what = 'as a learner' if as_learner else 'as a voting member (etcd %s has no production learners)' % (
            '.'.join(str(part) for part in version) if version else 'of unknown version')
        if self.module.check_mode:
            new = {'id': None, 'name': '', 'peer_urls': list(self.peer_urls), 'client_urls': [], 'is_learner': as_learner}
            return self.result(True, 'would add %s (%s) %s' % (self.name, ','.join(self.peer_urls), what),
                               new, member_list, members + [new])
        args = ['member', 'add', self.name, '--peer-urls=%s' % ','.join(self.peer_urls), '-w', 'json']
        if as_learner:
            args.append('--learner')
        endpoints = self.endpoints(cluster, members)
        # etcd's strict reconfiguration check answers "unhealthy cluster" for about 5 s after a member reconnected
        # (a restart, a removal just before): a refusal that changed nothing, so asking again is safe.
        deadline = time.time() + ADD_RETRY_SECONDS
        while True:
            result = self.etcdctl_run(endpoints, args, check_rc=False)
            if result.rc == 0:
                break
            if UNHEALTHY_CLUSTER not in result.stderr or time.time() >= deadline:
                raise command_error(result, what='`etcdctl %s` for member %s' % (' '.join(args), self.name))
            time.sleep(ADD_RETRY_INTERVAL)
        added = load_json(result.stdout, 'etcdctl member add')
        new_id = (added.get('member') or {}).get('ID')
        after = self.list_members(endpoints)
        mine = [member for member in after['members'] if member['id'] == new_id]
        if new_id is None or not mine or sorted(mine[0]['peer_urls']) != sorted(self.peer_urls) \
                or mine[0]['is_learner'] != as_learner:
            raise EtcdModuleError(
                'etcd accepted `member add %s` but the member list read back from %s does not show it as asked '
                '(ID %s, peer URLs %s); check with etcdctl member list.'
                % (self.name, node_name(), member_id_hex(new_id), ','.join(self.peer_urls)))
        return self.result(True, 'added %s (%s) %s' % (self.name, ','.join(self.peer_urls), what),
                           mine[0], after, after['members'])

    def absent(self, cluster, member_list, statuses, members, target):
        if target is None:
            return self.result(False, 'etcd has no member %s' % self.name, None, member_list, members)
        label = target['name'] or member_id_hex(target['id'])
        check_cluster_can_change(cluster, members, self.name)
        check_removal_keeps_quorum(cluster, members, target)
        remaining = [member for member in members if member['id'] != target['id']]
        if self.module.check_mode:
            return self.result(True, 'would remove %s (%s)' % (label, member_id_hex(target['id'])),
                               target, member_list, remaining, in_cluster=False)
        endpoints = self.endpoints(cluster, members, exclude_id=target['id'])
        self.etcdctl_run(endpoints, ['member', 'remove', member_id_hex(target['id'])])
        after = self.list_members(endpoints)
        if any(member['id'] == target['id'] for member in after['members']):
            raise EtcdModuleError(
                'etcd accepted `member remove %s` for %s, but the member list read back from %s still has it.'
                % (member_id_hex(target['id']), label, node_name()))
        return self.result(True, 'removed %s (%s)' % (label, member_id_hex(target['id'])),
                           target, after, after['members'], in_cluster=False)

    def promoted(self, cluster, member_list, statuses, members, target):
        if target is None:
            raise EtcdModuleError(
                'etcd has no member %s to promote (seen from %s); add it first (state=present).' % (self.name, node_name()))
        if not target['is_learner']:
            return self.result(False, 'etcd member %s is a voting member already' % self.name,
                               target, member_list, members)
        check_cluster_can_change(cluster, members, self.name)
        hex_id = member_id_hex(target['id'])
        if self.module.check_mode:
            promoted = dict(target, is_learner=False)
            after = [promoted if member['id'] == target['id'] else member for member in members]
            return self.result(True, 'would promote learner %s (%s)' % (self.name, hex_id),
                               promoted, member_list, after)
        endpoints = self.endpoints(cluster, members, exclude_id=target['id'])
        deadline = time.time() + max(self.params['promote_timeout'], 0)
        attempts = 0
        while True:
            attempts += 1
            result = self.etcdctl_run(endpoints, ['member', 'promote', hex_id], check_rc=False)
            if result.rc == 0:
                break
            if NOT_IN_SYNC not in result.stderr:
                raise command_error(result, what='Promoting etcd learner %s (%s)' % (self.name, hex_id))
            if time.time() >= deadline:
                raise EtcdModuleError(
                    'etcd learner %s (%s) is still not in sync with the leader after %d attempts in %ss (seen from %s): '
                    '%s. Check that etcd runs on it with --initial-cluster-state=existing, or raise promote_timeout.'
                    % (self.name, hex_id, attempts, self.params['promote_timeout'], node_name(),
                       self.lag(target['id'])), **result.details())
            time.sleep(max(0.0, min(PROMOTE_RETRY_INTERVAL, deadline - time.time())))
        after = self.list_members(endpoints)
        mine = [member for member in after['members'] if member['id'] == target['id']]
        if not mine or mine[0]['is_learner']:
            raise EtcdModuleError(
                'etcd accepted `member promote %s` for %s, but the member list read back from %s does not show it as a '
                'voting member.' % (hex_id, self.name, node_name()))
        return self.result(True, 'promoted learner %s (%s) after %d attempt(s)' % (self.name, hex_id, attempts),
                           mine[0], after, after['members'])

    def lag(self, member_id):
        """How far the learner is behind the leader, in words, as far as the cluster tells."""
        try:
            cluster, member_list, statuses = self.read()
        except EtcdModuleError as exc:
            return 'the cluster could not be read again: %s' % exc.msg
        mine = [member for member in member_list['members'] if member['id'] == member_id]
        if mine and not mine[0]['name']:
            return 'it has never started (no name, no client URLs yet)'
        by_id = dict((status['member_id'], status) for status in statuses)
        learner = by_id.get(member_id)
        leader = [status for status in statuses if status['is_leader']]
        if learner is None or not leader:
            urls = ', '.join(mine[0]['client_urls']) if mine else 'its client URLs'
            return 'its status cannot be read at %s' % urls
        applied = learner['raft_applied_index'] or learner['raft_index'] or 0
        target = leader[0]['raft_index'] or 0
        return 'it has applied raft index %s of the leader\'s %s (%s entries behind)' % (
            applied, target, max(target - applied, 0))


def run_module(module):
    params = module.params
    runner = Runner(module)
    tools = EtcdTools.detect(module, runner, params['etcdctl_path'], params['etcdutl_path'], probe_restore_help=False)
    etcdctl = tools.require_etcdctl('change the etcd membership')
    conn = resolve_connection(module, load_manifest(module) if needs_manifest(module) else None)
    return MemberChange(module, runner, etcdctl, conn, tools).run()


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True),
        peer_urls=dict(type='list', elements='str'),
        state=dict(type='str', choices=['absent', 'present', 'promoted'], default='present'),
        promote_timeout=dict(type='int', default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ['peer_urls'])])
    try:
        result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
