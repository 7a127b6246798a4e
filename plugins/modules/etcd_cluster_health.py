#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_cluster_health
short_description: Check, or wait for, a healthy etcd cluster
version_added: 0.1.0
description:
  - Reads the member list, then the status and health of every member at its own client URL, and reports the
    cluster as healthy when every member answers healthy and exactly one leader is elected.
  - Optionally also expects a given set of member names (no more, no less) and a minimum revision, for example
    after a restore.
  - With O(wait_timeout) greater than 0 the check is repeated every second until it passes or the time is up.
    Each round is one C(member list), one C(endpoint status) and one C(endpoint health) call.
  - Lists everything that is wrong in RV(cluster.problems).
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  wait_timeout:
    description:
      - Seconds to wait for the checks to pass. V(0) checks once.
    type: int
    default: 0
  expected_members:
    description:
      - Names of the members the cluster must have, exactly (for example the control plane host names).
    type: list
    elements: str
  min_revision:
    description:
      - The highest revision reported by the members must be at least this.
    type: int
  tolerate_down:
    description:
      - Names of members that may be down (unreachable or unhealthy) without it being a problem, for a cluster that
        must serve while a node is lost. The others must still be a quorum of the voting members (more than half),
        else that is a problem.
      - Members in this list that are down are returned in RV(cluster.tolerated_down).
    type: list
    elements: str
  quorum_after:
    description:
      - Seconds into O(wait_timeout) after which the members of O(expected_members) that are still down are tolerated
        as with O(tolerate_down), as long as the others are a quorum of the voting members.
      - Use case - a rollback waits a while for every member of the previous cluster, then serves with the quorum
        that came back and reports the others in RV(cluster.tolerated_down).
      - Needs O(expected_members).
    type: int
  fail_unhealthy:
    description:
      - Fail when the checks have not passed by the end of O(wait_timeout).
      - With V(false) the module reports RV(cluster.healthy) and RV(cluster.problems) and lets the play decide.
    type: bool
    default: true
extends_documentation_fragment:
  - kubeops.etcd.connection
  - kubeops.etcd.tools
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.info_module
  - kubeops.etcd.attributes.actiongroup_etcd
seealso:
  - module: kubeops.etcd.etcd_member_info
  - module: kubeops.etcd.etcd_snapshot
'''

EXAMPLES = r'''
- name: Check that every etcd member is healthy with one leader
  kubeops.etcd.etcd_cluster_health:
  become: true

- name: Wait up to five minutes for the restored cluster to form with all three members
  kubeops.etcd.etcd_cluster_health:
    wait_timeout: 300
    expected_members: "{{ groups['kube_control_plane'] | map('extract', hostvars, 'inventory_hostname_short') | list }}"
    min_revision: 1000000000
  become: true

- name: Report etcd health without failing
  kubeops.etcd.etcd_cluster_health:
    endpoints:
      - https://10.0.0.11:2379
    fail_unhealthy: false
  register: etcd_health
'''

RETURN = r'''
cluster:
  description: The state of the cluster at the last check.
  returned: always
  type: dict
  contains:
    cluster_id:
      description: Cluster ID (hex, as etcdctl prints it); V(null) when no member answered.
      type: str
      sample: d0d8b5b2b8a4a06e
    members:
      description: The member list.
      type: list
      elements: dict
      sample: [{"id": "983d3a5b1b3bd8ab", "name": "cp1", "peer_urls": ["https://10.0.0.11:2380"],
                "client_urls": ["https://10.0.0.11:2379"], "is_learner": false}]
    leader:
      description: Member ID of the leader (hex), V(null) without exactly one leader.
      type: str
      sample: 983d3a5b1b3bd8ab
    leader_name:
      description: Name of the leader.
      type: str
      sample: cp1
    leader_client_url:
      description: Client URL at which the leader answered.
      type: str
      sample: https://10.0.0.11:2379
    endpoints:
      description:
        - One entry per client URL asked, with C(endpoint), C(healthy), C(error), C(member_id) (hex), C(name),
          C(revision), C(db_size), C(version), C(is_leader) and C(raft_term).
        - When the member list cannot be read (etcd down, or a member without a quorum, which cannot list members
          without a leader), one entry per member that still answers on its own, with C(healthy=false), C(error) (for
          example that there is no leader) and also C(cluster_id), C(raft_index) and C(raft_applied_index).
      type: list
      elements: dict
      sample: [{"endpoint": "https://10.0.0.11:2379", "healthy": true, "error": null, "member_id": "983d3a5b1b3bd8ab",
                "name": "cp1", "revision": 51, "db_size": 24576, "version": "3.5.16", "is_leader": true,
                "raft_term": 2}]
    healthy:
      description: Every member answered healthy and exactly one leader is elected.
      type: bool
      sample: true
    revision:
      description: Highest revision reported by the members.
      type: int
      sample: 51
    problems:
      description: Everything that is wrong, including unmet O(expected_members) and O(min_revision). Empty when all checks pass.
      type: list
      elements: str
      sample: ["member cp3 is unreachable (https://10.0.0.13:2379: context deadline exceeded)"]
    tolerated_down:
      description: Members of O(tolerate_down) (or, after O(quorum_after), of O(expected_members)) that are down.
      returned: when O(tolerate_down) or O(quorum_after) is set
      type: list
      elements: str
      sample: [cp3]
attempts:
  description: How many rounds of checks ran.
  returned: always
  type: int
  sample: 1
elapsed_seconds:
  description: Time spent checking.
  returned: always
  type: float
  sample: 0.2
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.connection import (
    connection_argument_spec,
    load_manifest,
    needs_manifest,
    lone_member_statuses,
    query_cluster,
    resolve_connection,
    unreachable_cluster,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import parse_endpoint_health, version_warnings
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner

POLL_INTERVAL = 1.0
# While waiting, a cheap probe first: every endpoint answers a quorum read within a second. A member without a leader
# would hold a `member list` for etcdctl's whole 5 s command timeout, and every second counts in an outage.
READY_POLL_INTERVAL = 0.2
READY_PROBE_FLAGS = ['--dial-timeout=1s', '--command-timeout=1s']


def endpoints_ready(runner, etcdctl, conn):
    """Whether every given endpoint is healthy (has a leader and serves a quorum read) right now."""
    result = runner.run([etcdctl] + conn.args() + READY_PROBE_FLAGS + ['endpoint', 'health', '-w', 'json'],
                        check_rc=False, timeout=15)
    if result.rc != 0:
        return False
    try:
        healths = parse_endpoint_health(result.stdout)
    except EtcdModuleError:
        return False
    return bool(healths) and all(health['healthy'] for health in healths)


def check_once(runner, etcdctl, conn, params, tolerate_down):
    try:
        cluster, _raw = query_cluster(runner, etcdctl, conn, expected_members=params['expected_members'],
                                      min_revision=params['min_revision'], tolerate_down=tolerate_down)
    except EtcdModuleError as exc:
        # No member list at all (etcd down or starting): a state to wait out, not a module error.
        cluster = unreachable_cluster(exc.msg)
    return cluster


def tolerated(params, waited):
    """The members that may be down in a round started `waited` seconds into the wait: tolerate_down, and every
    expected member once quorum_after (at most the whole wait) has passed."""
    names = list(params['tolerate_down'] or [])
    quorum_after = params['quorum_after']
    if quorum_after is not None and waited >= min(quorum_after, max(params['wait_timeout'], 0)):
        names += [name for name in params['expected_members'] if name not in names]
    return names


def find_etcdctl(module, runner):
    params = module.params
    tools = EtcdTools.detect(module, runner, params['etcdctl_path'], params['etcdutl_path'], probe_restore_help=False)
    return tools.require_etcdctl('check the cluster')


def run_module(module):
    params = module.params
    runner = Runner(module)
    started = time.time()
    deadline = started + max(params['wait_timeout'], 0)
    # The etcd container's tools exist only while it runs, and a restarted container has a new ID: while waiting,
    # a container that is not (yet) there is a state to wait out, and a failed probe looks for it again.
    in_container = params['tools_source'] == 'container'
    etcdctl = None if in_container else find_etcdctl(module, runner)
    conn = resolve_connection(module, load_manifest(module) if needs_manifest(module) else None)
    attempts = 0
    while True:
        attempts += 1
        round_started = time.time()
        if etcdctl is None:
            try:
                etcdctl = find_etcdctl(module, runner)
            except EtcdModuleError:
                if not in_container or round_started >= deadline:
                    raise
                time.sleep(max(0.0, min(POLL_INTERVAL, deadline - time.time())))
                continue
        tolerate_down = tolerated(params, round_started - started)
        # The quick probe wants every endpoint healthy; with members allowed to be down, every round reads it all.
        if round_started < deadline and not tolerate_down and not endpoints_ready(runner, etcdctl, conn):
            if in_container:
                etcdctl = None
            time.sleep(max(0.0, min(READY_POLL_INTERVAL - (time.time() - round_started), deadline - time.time())))
            continue
        cluster = check_once(runner, etcdctl, conn, params, tolerate_down)
        if not cluster['problems'] or time.time() >= deadline:
            break
        time.sleep(max(0.0, min(POLL_INTERVAL - (time.time() - round_started), deadline - time.time())))
    if not cluster['members'] and etcdctl is not None:
        # No member list (etcd down, or no quorum): say what the members that still answer know on their own.
        cluster['endpoints'] = lone_member_statuses(runner, etcdctl, conn)
    versions = sorted(set(endpoint['version'] for endpoint in cluster['endpoints'] if endpoint['version']))
    for version in versions:
        for warning in version_warnings(version):
            module.warn(warning)
    return cluster, attempts, round(time.time() - started, 3)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        wait_timeout=dict(type='int', default=0),
        expected_members=dict(type='list', elements='str'),
        min_revision=dict(type='int'),
        tolerate_down=dict(type='list', elements='str'),
        quorum_after=dict(type='int'),
        fail_unhealthy=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_by={'quorum_after': 'expected_members'},
                           supports_check_mode=True)
    try:
        cluster, attempts, elapsed = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    result = dict(changed=False, cluster=cluster, attempts=attempts, elapsed_seconds=elapsed)
    if cluster['problems'] and module.params['fail_unhealthy']:
        module.fail_json(
            msg='etcd cluster checked from %s is not as expected after %d attempt(s) in %ss: %s'
                % (node_name(), attempts, elapsed, '; '.join(cluster['problems'])),
            **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
