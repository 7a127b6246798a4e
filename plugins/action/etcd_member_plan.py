# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of the etcd_member role: collects what every control plane reported and hands each decision
to module_utils/member_plan.py (pure functions). It changes nothing anywhere and needs no connection.

Phases:
- plan: the plan for node ``target``, or a failure listing every refusal (host, cause, fix).
- rescue: whether a failed run may put the node back as it was (``put_back``).
- verify: the cluster after the run against the plan; fails with every problem.
- report: the message of a failed run (what was done, what was put back, what to run next).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.kubeops.etcd.plugins.module_utils.hostvars import collect
from ansible_collections.kubeops.etcd.plugins.module_utils import member_plan as planner

ARGUMENT_SPEC = dict(
    phase=dict(type='str', required=True, choices=['plan', 'rescue', 'verify', 'report']),
    target=dict(type='str'),
    hosts=dict(type='list', elements='str', default=[]),
    host_vars=dict(type='dict', default={}),
    replace=dict(type='bool', default=False),
    options=dict(type='dict', default={}),
    plan=dict(type='dict'),
    cluster=dict(type='dict'),
    caught_up_revision=dict(type='int'),
    done=dict(type='list', elements='str', default=[]),
    failure=dict(type='dict', default={}),
    restored=dict(type='bool', default=False),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            result.update(getattr(self, '_phase_' + args['phase'])(args, task_vars or {}))
        except planner.MemberPlanError as exc:
            raise AnsibleActionFail('etcd_member_plan: %s' % exc)
        result.setdefault('changed', False)
        return result

    def _phase_plan(self, args, task_vars):
        hosts = args['hosts']
        nodes = collect(task_vars, hosts, args['host_vars'].get('node'))
        views = collect(task_vars, hosts, args['host_vars'].get('view'))
        plan, refusals = planner.plan(args['target'], hosts, nodes, views, replace=args['replace'],
                                      options=args['options'])
        if refusals:
            return {'failed': True, 'msg': planner.refusal_text(refusals), 'refusals': refusals}
        return {'plan': plan, 'lines': plan['lines']}

    def _phase_rescue(self, args, task_vars):
        return {'put_back': planner.can_put_back(args['done'])}

    def _phase_verify(self, args, task_vars):
        problems = planner.verify(args['plan'], args['cluster'] or {}, args['caught_up_revision'])
        if problems:
            return {'failed': True, 'problems': problems,
                    'msg': 'etcd member %s was not verified: %s.' % (args['plan']['name'], '; '.join(problems))}
        return {'msg': 'etcd member %s (%s) is a started, voting member; members %s; one leader; caught up.'
                       % (args['plan']['name'], planner.member_id_of(args['cluster'], args['plan']['name']),
                          ', '.join(args['plan']['expected_members'])),
                'member_id': planner.member_id_of(args['cluster'], args['plan']['name'])}

    def _phase_report(self, args, task_vars):
        return {'msg': planner.failure_report(args['plan'], args['done'], args['failure'], args['restored'])}
