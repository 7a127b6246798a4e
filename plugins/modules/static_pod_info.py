#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: static_pod_info
short_description: Read why a static pod's container stopped (its state, attempt and the cause in its log)
version_added: 0.3.0
description:
  - Reads, for each static pod of O(names), the newest container the runtime knows of it (C(crictl ps -a)), running
    or exited, with its attempt number, the tail of its log (C(crictl logs --tail)) and the one log line that says
    why it stopped.
  - The cause is the last panic in the log, else the last fatal entry (etcd 3.4's capnslog C(C) level), else the last
    error; for a container that is not running, the last line when none is marked. It reads etcd 3.5's JSON log (C(msg) and C(error)), etcd 3.4's
    capnslog, klog and Go panics.
  - "For example, for an etcd whose client port is taken by another process, the cause is
    C(discovery failed: listen tcp 10.0.0.12:2379: bind: address already in use)."
  - The restore role reads this when etcd does not come up on a control plane, so that the first line of its
    failure message gives the cause inside the node.
  - Read-only. A failing C(crictl) is reported in RV(pods), not as a task failure.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  names:
    description: Static pods (container names) to read, for example V(etcd).
    type: list
    elements: str
    default: [etcd]
  log_lines:
    description: How many of the last log lines to read (and return in RV(pods[].log_tail)).
    type: int
    default: 40
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.tools.CRICTL
  - kubeops.etcd.attributes.INFO_MODULE
  - kubeops.etcd.attributes.ACTIONGROUP_ETCD
requirements:
  - C(crictl) on the managed node.
notes:
  - The module never reports a change.
  - Logs can hold anything a container printed; the module returns only the last O(log_lines) lines.
seealso:
  - module: kubeops.etcd.static_pod
'''

EXAMPLES = r'''
- name: Read why etcd does not come up on this control plane
  kubeops.etcd.static_pod_info:
    names: [etcd]
  register: etcd_container

- name: Say it
  ansible.builtin.debug:
    msg: "{{ etcd_container.summary.etcd }}"
'''

RETURN = r'''
pods:
  description: Per name of O(names), what the runtime shows of its newest container.
  returned: always
  type: dict
  sample:
    etcd:
      id: 3f2ab9c0d1e24f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a
      state: exited
      attempt: 3
      created: 1796352987123456789
      cause: "discovery failed: listen tcp 10.0.0.12:2379: bind: address already in use"
      log_tail: ["...", "{\"level\":\"fatal\",\"msg\":\"discovery failed\",...}"]
      error: null
  contains:
    id:
      description: The container ID; V(null) when no container of that name is known.
      type: str
    state:
      description: V(running), V(exited), V(created) or V(unknown); V(null) when no container is known.
      type: str
    attempt:
      description: The kubelet's attempt number of that container (restarts of the pod's container).
      type: int
    created:
      description: When the container was created, in nanoseconds since the epoch.
      type: int
    cause:
      description: The line of its log that says why it stopped (see the description); empty for an empty log.
      type: str
    log_tail:
      description: The last O(log_lines) lines of its log (stdout and stderr).
      type: list
      elements: str
    error:
      description: Why the runtime could not be read (crictl's error); V(null) when it was read.
      type: str
summary:
  description: Per name, one sentence for a message, naming the node, the container, its state, attempt and cause.
  returned: always
  type: dict
  sample:
    etcd: "etcd on cp2: container 3f2ab9c0d1e24 exited (attempt 3), its log ends with: discovery failed: listen tcp
      10.0.0.12:2379: bind: address already in use"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.crictl import Crictl, container_summary, log_cause
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner, find_tool


def read_pod(crictl, name, log_lines):
    container, error = crictl.newest(name)
    pod = {'id': None, 'state': None, 'attempt': None, 'created': None, 'cause': '', 'log_tail': [], 'error': error}
    if container:
        pod.update(container)
        text = crictl.log_tail(container['id'], log_lines)
        pod['log_tail'] = text.splitlines()
        # A running container's log is read for its errors only: its last line says nothing of a failure.
        pod['cause'] = log_cause(text, last_line=container['state'] != 'running')
    return pod


def summary(host, name, pod):
    if pod['error']:
        return '%s on %s: crictl could not say (%s)' % (name, host, ' '.join(pod['error'].split())[:300])
    return container_summary(host, name, pod if pod['id'] else None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            names=dict(type='list', elements='str', default=['etcd']),
            log_lines=dict(type='int', default=40),
            crictl_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        if not params['names']:
            raise EtcdModuleError('names is empty; give the static pods to read, e.g. [etcd].')
        if params['log_lines'] < 1:
            raise EtcdModuleError('log_lines must be 1 or more, not %d.' % params['log_lines'])
        path = find_tool(module, 'crictl', params['crictl_path'])
        if not path:
            raise EtcdModuleError('crictl not found on %s: install it (cri-tools) or set crictl_path.' % node_name())
        crictl = Crictl(Runner(module), path)
        host = node_name()
        pods = dict((name, read_pod(crictl, name, params['log_lines'])) for name in params['names'])
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    module.exit_json(changed=False, pods=pods,
                     summary=dict((name, summary(host, name, pod)) for name, pod in pods.items()))


if __name__ == '__main__':
    main()
