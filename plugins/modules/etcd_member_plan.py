#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the work is done on the controller by plugins/action/etcd_member_plan.py.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_member_plan
short_description: Plan the replacement of one etcd member, check it, and word its failure report (runs on the controller)
version_added: 0.3.0
description:
  - The decisions of the C(kubeops.etcd.etcd_member) role, in one place. It runs on the controller as an action plugin
    and calls the collection's pure planning functions; it changes nothing anywhere.
  - O(phase=plan) takes what every control plane reported (where its C(etcd.yaml) is, the member it defines, what its
    data directory holds, the cluster as its etcd sees it) and returns the plan for O(target) - the member's state,
    the steps still to do (so that a run interrupted anywhere is finished by the next one), the control plane that runs
    the etcd commands, the moved-aside data directory and the run directory - or fails with every refusal, each naming
    the host, the cause and the fix.
  - O(phase=rescue) says whether a failed run may put the node back as it was (only while it has not removed or added
    a member).
  - O(phase=verify) checks the cluster after the run against the plan (member names, all started and voting, one
    leader, the same cluster ID, the new member's revision).
  - O(phase=report) words the message of a failed run - what was done, what was put back, what to run next.
  - This is an internal building block of the role; its options may change before version 1.0.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  phase:
    description: What to compute.
    type: str
    required: true
    choices: [plan, rescue, verify, report]
  target:
    description: With O(phase=plan), the inventory name of the control plane whose member is replaced or added.
    type: str
  hosts:
    description: With O(phase=plan), every control plane of the play (C(ansible_play_hosts_all)), in inventory order.
    type: list
    elements: str
    default: []
  host_vars:
    description:
      - With O(phase=plan), the names of the host variables that hold each control plane's facts - C(node) (where its
        C(etcd.yaml) is, M(kubeops.etcd.etcd_member_info)'s C(member), what its data directory holds) and C(view) (the
        C(cluster) result of M(kubeops.etcd.etcd_cluster_health) on that node, or C({error})).
      - A host without them did not answer.
    type: dict
    default: {}
  replace:
    description: With O(phase=plan), replace a member that runs as a healthy voting member instead of refusing.
    type: bool
    default: false
  options:
    description: With O(phase=plan), role settings the plan uses (C(timestamp), C(manifests_dir), C(holding_dir),
      C(runs_dir)).
    type: dict
    default: {}
  plan:
    description: The plan returned by O(phase=plan) (phases verify and report).
    type: dict
  cluster:
    description: With O(phase=verify), the C(cluster) result of M(kubeops.etcd.etcd_cluster_health) after the run.
    type: dict
  caught_up_revision:
    description: With O(phase=verify), the leader's revision read after the promotion, which the new member must have
      reached.
    type: int
  done:
    description: With O(phase=rescue) and O(phase=report), the steps the failed run completed.
    type: list
    elements: str
    default: []
  failure:
    description: With O(phase=report), C(task) and C(msg) of the task that failed.
    type: dict
    default: {}
  restored:
    description: With O(phase=report), whether the node was put back as it was.
    type: bool
    default: false
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.INFO_MODULE
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  async:
    description: Asynchronous execution.
    support: none
  bypass_host_loop:
    description: Whether it runs once for all hosts.
    support: none
'''

EXAMPLES = r'''
- name: Plan the member change
  kubeops.etcd.etcd_member_plan:
    phase: plan
    target: cp3
    hosts: "{{ ansible_play_hosts_all }}"
    host_vars:
      node: node_facts
      view: cluster_view
    options:
      timestamp: 20261203T140000Z
      manifests_dir: /etc/kubernetes/manifests
      holding_dir: /etc/kubernetes/kubeops-etcd/held-manifests
      runs_dir: /etc/kubernetes/kubeops-etcd/runs
  register: member_plan
  run_once: true

- name: Verify the cluster after the change
  kubeops.etcd.etcd_member_plan:
    phase: verify
    plan: "{{ member_plan.plan }}"
    cluster: "{{ health_after.cluster }}"
    caught_up_revision: "{{ health_before.cluster.revision }}"
'''

RETURN = r'''
plan:
  description:
    - The plan (phase plan) - C(host), C(name), C(peer_urls), C(client_urls), C(state) (V(absent), V(voting-healthy),
      V(voting-down), V(learner-unstarted), V(learner-started)), C(member_id), C(replace), C(timestamp), C(helper) (the
      control plane the etcd commands run on),
      C(cluster_id), C(version), C(as_learner), C(manifest_where), C(manifest_path), C(held_manifest), C(run_dir),
      C(data_dir), C(moved_aside), C(expected_members), C(steps) (step name to whether this run does it) and C(lines).
  returned: phase is plan and nothing was refused
  type: dict
lines:
  description: The plan, one line per item, for the operator.
  returned: phase is plan and nothing was refused
  type: list
  elements: str
refusals:
  description: Every reason the change was refused, C([{host, cause, fix}]).
  returned: when refused
  type: list
  elements: dict
put_back:
  description: Whether the failed run may put the node back as it was.
  returned: phase is rescue
  type: bool
problems:
  description: What the verification found wrong.
  returned: phase is verify and it failed
  type: list
  elements: str
member_id:
  description: The new member's ID (hex).
  returned: phase is verify and it passed
  type: str
msg:
  description: The refusal, the verification's verdict, or with phase report, the failure message.
  returned: when refused, or phase is verify or report
  type: str
'''
