#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_restore_plan
short_description: Plan a multi-member etcd restore, check it, and word its report (runs on the controller)
version_added: 0.2.0
description:
  - The decisions of the M(kubeops.etcd.etcd_restore) role, in one place. It runs on the controller as an action
    plugin and calls the collection's pure planning functions; it changes nothing anywhere.
  - O(phase=unfinished) reads what every node's journal (M(kubeops.etcd.etcd_restore_journal)) says of an earlier
    run that did not finish, and decides - a new run, O(resume), O(rollback) - or refuses with the state of every node and
    both ways out.
  - O(phase=source) resolves where C(-e snapshot=...) comes from before anything is read - a path on the ops box, a
    node, C(s3://<bucket>/<key>), or V(latest) (the newest complete backup in O(backup_dir), or in O(objects) when
    O(bucket) is set) - and whether it is encrypted (C(.age)) or compressed (C(.zst.age)); it returns the paths on
    the ops box that will hold the downloaded and decrypted files (in O(download_dir)).
  - O(phase=snapshot) resolves C(-e snapshot=...) (V(latest), a path on the ops box, or C(<inventory host>:<path>)) and,
    for a file on the ops box, reads it once (SHA-256, the trailing hash that C(etcdctl snapshot save) appends, the bbolt
    header, the metadata file beside it) and refuses a missing, C(.part), truncated, corrupt or non-etcd file.
  - O(phase=plan) takes what every node reported (M(kubeops.etcd.etcd_member_info), pods already held aside, the old
    cluster's health) and returns the plan (member names, peer URLs, the full initial cluster, a fresh token, the member and
    cluster IDs it will produce, new data dirs, tool and revision bump per node) and its text, or fails with every
    refusal, each naming the host, the cause and the fix.
  - O(phase=prepared) checks the members restored before the stop against the plan (IDs, SHA-256, revision).
  - O(phase=report) checks that the running cluster is the one the restore produced and returns the report.
  - O(phase=declared) decides the topology from O(etcd_group) and O(etcd_hosts) - stacked (every host of the play a
    control plane with its member) or external (the etcd hosts run the members, the other hosts of the play are the
    control planes), refused when the play lacks an etcd host or has no control plane - and checks the control planes
    declared lost (O(lost_hosts), stacked only) against the play's hosts and returns them in play order; a name that is
    not a host of the play, or every host, is refused.
  - O(phase=survivor) chooses, for C(-e snapshot=survivor), the member to recover from when the cluster lost its quorum,
    the one with the highest raft index (then revision) among the control planes of O(hosts), from what each member
    that answers on its own reports (O(old_cluster)); it refuses when the cluster still has a quorum, when a control
    plane's member does not answer (its data might be newer) and when the members belong to different clusters.
  - O(phase=lost) finds the control planes that stopped answering during the outage (those without O(host_vars) key
    C(answered)) and whether the others, with the ones declared lost counted as down, are a quorum.
  - O(phase=rollback) words the message of a rollback, complete or not.
  - This is an internal building block of the roles; its options may change before version 1.0.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  phase:
    description: What to compute.
    type: str
    required: true
    choices: [unfinished, declared, survivor, source, snapshot, plan, prepared, report, lost, rollback]
  snapshot:
    description:
      - With O(phase=snapshot), the C(snapshot) extra var as given. With O(phase=plan), the facts returned by the
        snapshot phase; for a snapshot on a node, with the key C(info) holding the M(kubeops.etcd.etcd_snapshot_info)
        result from that node.
    type: raw
  backup_dir:
    description: Where V(latest) looks for backups on the ops box.
    type: path
  objects:
    description: With O(phase=source) and O(bucket), the C(objects) listing of M(kubeops.etcd.etcd_object_store) under
      O(prefix), for V(latest).
    type: list
    elements: dict
  bucket:
    description: With O(phase=source), the bucket of the object store; set means V(latest) looks there.
    type: str
  prefix:
    description: With O(phase=source), the key prefix that O(objects) lists (for messages).
    type: str
    default: ''
  role:
    description: With O(phase=source), the role whose variables the messages name (the restore, or the backup drill).
    type: str
    default: etcd_restore
    choices: [etcd_restore, etcd_verify]
  resume:
    description:
      - With O(phase=unfinished), finish the unfinished run (only when every node reached the same step).
      - With O(phase=declared) and external etcd, refused (no journal is written for external etcd).
    type: bool
    default: false
  rollback:
    description:
      - With O(phase=unfinished), undo the unfinished run (a run that stopped nothing is only closed, C(action=close)).
      - With O(phase=declared) and external etcd, refused (no journal is written for external etcd).
    type: bool
    default: false
  identity_given:
    description: With O(phase=source), whether an age identity was given; an encrypted snapshot without one is refused.
    type: bool
    default: true
  download_dir:
    description: With O(phase=source), the private directory on the ops box that receives downloaded and decrypted
      snapshots.
    type: path
  hosts:
    description: The inventory hosts of the play, in order.
    type: list
    elements: str
  lost_hosts:
    description:
      - With O(phase=declared), the C(etcd_restore_lost_hosts) role variable as given (a list, or one comma-separated
        string). With O(phase=plan), the checked list that O(phase=declared) returned; the plan leaves these control
        planes out of the new cluster and never contacts them (their address comes from the inventory's C(ansible_host)).
        With O(phase=survivor), the same list (a refusal's fix names it).
    type: raw
  etcd_group:
    description: With O(phase=declared), the inventory group of external etcd hosts (C(etcd_restore_etcd_group)).
    type: str
    default: ''
  etcd_hosts:
    description: With O(phase=declared), the hosts of that group in the inventory (none, or no group, means stacked).
    type: list
    elements: str
    default: []
  control_plane_hosts:
    description:
      - With O(phase=declared), the hosts of the inventory's control-plane group; an etcd host among them (etcd beside
        the API server, kubespray's default layout) is refused.
    type: list
    elements: str
    default: []
  host_vars:
    description:
      - Which variable of every host holds what the phase reads from the nodes (it is read from C(hostvars), so the
        hosts a failed task dropped from the play still count) - C(node) (phase plan; per host C(info), the
        M(kubeops.etcd.etcd_member_info) result, C(held), C(pods_error), C(address)), C(control_plane) (phase plan with
        external etcd, the same keys for each control plane of C(options.control_planes)), C(journal) (phase unfinished; the
        M(kubeops.etcd.etcd_restore_journal) read result), C(restore_result) (phases prepared and report; the
        M(kubeops.etcd.etcd_restore) result), C(failure), C(rollback_failure), C(state), C(moved_aside) (phase rollback),
        C(answered) (phases lost and rollback; set on each control plane that runs the rollback), C(rollback_health)
        (phase rollback; the M(kubeops.etcd.etcd_cluster_health) result after the rollback, registered on the hosts
        that ran it; it takes the place of O(rollback_cluster)), C(etcd_container) and C(etcd_container_after) (phase
        rollback; the M(kubeops.etcd.static_pod_info) result of the node's etcd, read when the rollback starts after a
        failed start or quorum wait and again after the rollback's wait for a member still down; its cause goes into
        the first line and into the C(MEMBER DOWN) line).
    type: dict
    default: {}
  outcome:
    description:
      - With O(phase=rollback), which message to word - the restore rolled back, the rollback incomplete, or the
        prepared members discarded before any stop.
      - V(rolled_back) words what the nodes report - every node back; a quorum of the previous cluster serving while
        some nodes are not back (lost, their rollback failed, or their member did not come back healthy), each named
        with its state as read from it; or, when a rollback failed and no quorum serves, the incomplete rollback.
    type: str
    default: rolled_back
    choices: [rolled_back, incomplete, discarded]
  old_cluster:
    description: The C(cluster) result of M(kubeops.etcd.etcd_cluster_health) for the running cluster, or V(null)
      (phases plan and survivor).
    type: raw
  options:
    description: Role settings the plan uses (timestamp, bump_revision, disk_margin_bytes, staging_dir, runs_dir,
      manifests_dir, holding_dir, restart_kubelet, allow_other_cluster, survivor, the member O(phase=survivor)
      chose, when the snapshot was taken from it, and, with external etcd, control_planes, the control planes that
      O(phase=declared) returned; O(hosts) are then the etcd hosts).
    type: dict
  plan:
    description: The plan returned by O(phase=plan) (phases prepared, report and rollback).
    type: dict
  final_cluster:
    description: The C(cluster) result of M(kubeops.etcd.etcd_cluster_health) after the restore.
    type: dict
  timings:
    description: Epoch seconds C(started), C(prepared), C(downtime_started), C(downtime_ended), C(finished).
    type: dict
  rollback_cluster:
    description: The C(cluster) result of M(kubeops.etcd.etcd_cluster_health) after the rollback.
    type: dict
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
- name: Plan the restore
  kubeops.etcd.etcd_restore_plan:
    phase: plan
    hosts: "{{ ansible_play_hosts }}"
    host_vars:
      node: node_facts
    snapshot: "{{ snapshot_facts }}"
    old_cluster: "{{ old_health.cluster | default(None) }}"
    options:
      timestamp: 20261203T040000Z
      bump_revision: 1000000000
      staging_dir: /var/lib/kubeops-etcd/restore
      runs_dir: /etc/kubernetes/kubeops-etcd/runs
      manifests_dir: /etc/kubernetes/manifests
      holding_dir: /etc/kubernetes/kubeops-etcd/held-manifests
  register: restore_plan
  run_once: true
'''

RETURN = r'''
unfinished:
  description:
    - Phase unfinished, the decision - C(action) (none, warn, resume, abort, close; a refusal fails), C(run), C(plan)
      (the journal's plan), C(steps) (per host), C(lines) and C(msg). V(warn) and V(close) - a run interrupted before
      it stopped anything, whose journals a new run closes (abandoned) or an abort closes (aborted).
  returned: phase is unfinished
  type: dict
source:
  description:
    - Phase source, where the snapshot comes from - C(kind) (local, node, s3), C(host), C(path), C(bucket), C(key),
      C(metadata_key), C(encrypted), C(compressed), C(plain) (the plaintext file name) - and the ops-box paths
      C(download_path), C(metadata_path), C(plain_path), C(plain_metadata_path) where they apply; C(snapshot) is what
      O(phase=snapshot) then reads; C(plaintext_copies), the plaintext files the run writes on the ops box (removed at its end).
  returned: phase is source
  type: dict
snapshot:
  description: Phase snapshot, the snapshot's facts (kind, host, path, size, sha256, has_trailing_hash, metadata).
  returned: phase is snapshot
  type: dict
plan:
  description:
    - The restore plan (members, names, initial cluster, token, IDs, directories, snapshot, bump), and C(lost), the
      control planes declared lost with the member each ran (C(host), C(address), C(name), C(peer_urls), C(source);
      C(name) is null when neither the running cluster nor the snapshot names one).
  returned: phase is plan or prepared
  type: dict
survivor:
  description: Phase survivor, the chosen member - C(host), C(endpoint), C(raft_index), C(revision), C(cluster_id),
    C(member_id).
  returned: phase is survivor
  type: dict
candidates:
  description: Phase survivor, every control plane whose member answered, most advanced first.
  returned: phase is survivor
  type: list
  elements: dict
topology:
  description:
    - Phase declared, C(name) (V(stacked) or V(external)), C(etcd_hosts) (the members' hosts with external etcd, in play
      order), C(control_planes) (the other hosts of the play), C(etcd_group), C(plan_line) and C(refusals).
  returned: phase is declared
  type: dict
lost:
  description:
    - Phase declared, the control planes declared lost in play order (a list of str).
    - Phase lost, C(hosts) and C(names) down, C(step), C(up), C(total) and C(quorum) (whether the members up are a
      quorum of the cluster the rollback brings back).
  returned: phase is declared or lost
  type: raw
lines:
  description: The plan (phase plan), the choice of the survivor (phase survivor) or the report (phase report), one
    line per item, for the operator.
  returned: phase is plan, survivor or report
  type: list
  elements: str
report:
  description: The restore report published with set_stats.
  returned: phase is report
  type: dict
refusals:
  description: Every reason the restore was refused, C([{host, cause, fix}]).
  returned: when refused
  type: list
  elements: dict
msg:
  description: The refusal, or with phase rollback, the rollback message.
  returned: when refused, or phase is rollback
  type: str
complete:
  description: Whether every control plane that answered is back on its previous data (a failed rollback on any
    node makes it V(false)).
  returned: when phase is rollback and O(outcome) is not V(discarded)
  type: bool
'''
