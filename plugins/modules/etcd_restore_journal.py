#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_restore_journal
short_description: Write, close and read the journal of a multi-member etcd restore on a control plane
version_added: 0.2.0
description:
  - Each control plane keeps C(<runs_dir>/<run>/journal.json) (mode C(0600)) for a restore run of the
    C(kubeops.etcd.etcd_restore) role, written once every member is prepared and before the first pod stops. It holds the
    whole plan, so that an interrupted run can be finished or undone from any node's journal.
  - O(state=present) writes it with status V(running); O(state=closed) sets its final status. A run interrupted
    before it stopped anything is closed V(abandoned) by the next restore, or V(aborted) by C(restore_abort.yml),
    with O(expect_step=prepared), so only while the node's files still say that nothing was stopped.
  - O(state=read) lists the runs whose journal is still V(running) and tells, for each, the step the node reached - read
    from the node's files, since every step of the outage is one atomic rename (a manifest into the holding dir, the
    prepared C(etcd.yaml) into the manifests dir, a held manifest back).
author:
  - kubeops.etcd maintainers (@kubeops)
extends_documentation_fragment:
  - kubeops.etcd.attributes
options:
  state:
    description: What to do.
    type: str
    default: read
    choices: [read, present, closed]
  runs_dir:
    description: The role's runs dir (C(etcd_restore_runs_dir)).
    type: path
    required: true
  run:
    description: The run (its UTC timestamp, the name of its dir in O(runs_dir)). Required with O(state=present) and
      O(state=closed).
    type: str
  plan:
    description: With O(state=present), the restore plan (the C(plan) of C(kubeops.etcd.etcd_restore_plan)); the journal
      keeps it whole, with this node's member plan beside it.
    type: dict
  host:
    description: With O(state=present), this node's inventory host name, as the plan names it.
    type: str
  status:
    description:
      - With O(state=closed), the run's final status.
      - V(abandoned) - the run was interrupted before it stopped anything and a later restore replaced it.
    type: str
    choices: [done, rolled_back, aborted, abandoned]
  expect_step:
    description:
      - With O(state=closed), the step the node's files must show for the run (as C(step) of RV(runs) with O(state=read)).
        When they show another one the journal is left as it is and the task fails (something moved the node's
        manifests since the run was read, for example a module of an interrupted play that still runs on the node).
    type: str
    choices: [prepared]
  manifests_dir:
    description: The kubelet's static pod directory (O(state=read), and O(state=closed) with O(expect_step)).
    type: path
    default: /etc/kubernetes/manifests
  holding_dir:
    description: Where the role holds manifests aside (O(state=read), and O(state=closed) with O(expect_step)).
    type: path
    default: /etc/kubernetes/kubeops-etcd/held-manifests
attributes:
  check_mode:
    support: full
    details:
      - O(state=read) changes nothing in any mode; the others report what they would write.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - The journal holds no secret (names, URLs, directories, IDs); it is private (C(0600)) all the same.
seealso:
  - module: kubeops.etcd.static_pod
'''

EXAMPLES = r'''
- name: Find unfinished restore runs on this control plane
  kubeops.etcd.etcd_restore_journal:
    runs_dir: /etc/kubernetes/kubeops-etcd/runs
  register: unfinished

- name: Mark this run finished
  kubeops.etcd.etcd_restore_journal:
    state: closed
    runs_dir: /etc/kubernetes/kubeops-etcd/runs
    run: 20261203T010203Z
    status: done
'''

RETURN = r'''
runs:
  description:
    - With O(state=read), every run whose journal is still V(running), oldest first - C(run), C(step) (prepared, stopped,
      etcd_started, started, rolling_back, rolled_back, unknown), C(facts) (C(held), C(manifest_data_dir),
      C(prepared_exists)) and C(journal).
  returned: state is read
  type: list
  elements: dict
path:
  description: The journal file written or closed.
  returned: state is present or closed
  type: str
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import atomic_write, iso_utc, make_private_dir
from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest
from ansible_collections.kubeops.etcd.plugins.module_utils.restore_journal import JOURNAL_NAME, journal_document, node_step


def _load(path):
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError, ValueError) as exc:
        raise EtcdModuleError('The restore journal %s on %s cannot be read (%s). Look at it; move it away once you know '
                              'which run it was and what state the node is in.' % (path, node_name(), to_native(exc)),
                              path=path)
    if not isinstance(data, dict) or not isinstance(data.get('member'), dict):
        raise EtcdModuleError('The restore journal %s on %s is not a journal of this collection.' % (path, node_name()),
                              path=path)
    return data


def _facts(member, manifests_dir, holding_dir):
    held = []
    if os.path.isdir(holding_dir):
        held = sorted(name[:-len('.yaml')] for name in os.listdir(holding_dir) if name.endswith('.yaml'))
    manifest = os.path.join(manifests_dir, 'etcd.yaml')
    data_dir = None
    if os.path.isfile(manifest):
        data_dir = EtcdManifest.load(manifest).data_dir_host_path
    return {'held': held, 'manifest_data_dir': data_dir,
            'prepared_exists': os.path.exists(member.get('prepared_manifest') or ''),
            'original_exists': os.path.exists(member.get('original_manifest') or '')}


def read_runs(params):
    runs = []
    if not os.path.isdir(params['runs_dir']):
        return runs
    for run in sorted(os.listdir(params['runs_dir'])):
        path = os.path.join(params['runs_dir'], run, JOURNAL_NAME)
        if not os.path.isfile(path):
            continue
        journal = _load(path)
        if journal.get('status') != 'running':
            continue
        facts = _facts(journal['member'], params['manifests_dir'], params['holding_dir'])
        runs.append({'run': journal.get('run') or run, 'path': path, 'step': node_step(journal['member'], facts),
                     'facts': facts, 'journal': journal})
    return runs


def run_module(module):
    params = module.params
    if params['state'] == 'read':
        return {'changed': False, 'runs': read_runs(params)}
    if not params['run'] or '/' in params['run'] or params['run'].startswith('.'):
        raise EtcdModuleError('run must be the name of a run dir in %s (its UTC timestamp), got %r.'
                              % (params['runs_dir'], params['run']))
    path = os.path.join(params['runs_dir'], params['run'], JOURNAL_NAME)
    if params['state'] == 'present':
        try:
            document = journal_document(params['plan'], params['host'], 'running', iso_utc())
        except (KeyError, TypeError, ValueError) as exc:
            raise EtcdModuleError('The plan given to the journal on %s is not a restore plan with host %s: %s.'
                                  % (node_name(), params['host'], to_native(exc)))
        current = _load(path) if os.path.exists(path) else None
        if current is not None and dict(current, written=None) == dict(document, written=None):
            return {'changed': False, 'path': path}
        if not module.check_mode:
            make_private_dir(os.path.dirname(path))
            atomic_write(module, path, json.dumps(document, indent=2, sort_keys=True) + '\n', 0o600)
        return {'changed': True, 'path': path}
    if not os.path.exists(path):
        raise EtcdModuleError('There is no journal %s on %s to close.' % (path, node_name()), path=path)
    journal = _load(path)
    if journal.get('status') == params['status']:
        return {'changed': False, 'path': path}
    if params['expect_step']:
        step = node_step(journal['member'], _facts(journal['member'], params['manifests_dir'], params['holding_dir']))
        if step != params['expect_step']:
            raise EtcdModuleError(
                'The restore run %s on %s is no longer at step %s but %s: something moved its manifests after the run '
                'was read (a module of an interrupted ansible-playbook that still runs there?). Its journal %s is left '
                'as it was; run the same command again once nothing else runs on the node.'
                % (params['run'], node_name(), params['expect_step'], step, path), path=path, step=step)
    journal.update(status=params['status'], closed=iso_utc())
    if not module.check_mode:
        atomic_write(module, path, json.dumps(journal, indent=2, sort_keys=True) + '\n', 0o600)
    return {'changed': True, 'path': path}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', default='read', choices=['read', 'present', 'closed']),
            runs_dir=dict(type='path', required=True),
            run=dict(type='str'),
            plan=dict(type='dict'),
            host=dict(type='str'),
            status=dict(type='str', choices=['done', 'rolled_back', 'aborted', 'abandoned']),
            expect_step=dict(type='str', choices=['prepared']),
            manifests_dir=dict(type='path', default='/etc/kubernetes/manifests'),
            holding_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/held-manifests'),
        ),
        required_if=[('state', 'present', ('run', 'plan', 'host')), ('state', 'closed', ('run', 'status'))],
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
