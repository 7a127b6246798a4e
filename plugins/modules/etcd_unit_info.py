#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_unit_info
short_description: Describe etcd members run as systemd services
version_added: 0.2.0
description:
  - Reads an etcd systemd unit the way systemd and etcd read it, with C(systemctl cat) (the unit file and its drop-ins),
    the C(EnvironmentFile)s it names and, with C(--config-file) or C(ETCD_CONFIG_FILE), etcd's YAML config file.
  - Reports the member etcd runs (name, data directory, client and peer URLs, initial cluster, token and state, certificate
    files, service user and group) and where the data directory is defined - the flag in C(ExecStart), the variable in an
    environment file or C(Environment=), or the key in the config file - which M(kubeops.etcd.etcd_unit_datadir) changes.
  - With a config file, etcd ignores every flag and variable, and so does this module. Without one, a setting given
    both as a flag and as an C(ETCD_*) variable makes etcd exit at start; the module fails and names both places.
  - Fails for a unit that leaves the data directory to etcd's default (C(<name>.etcd) in the working directory), which
    cannot be repointed; set it explicitly first.
  - With O(etcd_servers), also tells which of the units serve the API servers' C(--etcd-servers), for hosts that run
    several etcd units.
  - Runs C(systemctl cat) and reads files; changes nothing.
author:
  - kubeops.etcd maintainers (@kubeops)
requirements:
  - systemd (C(systemctl)) on the managed node.
  - PyYAML on the managed node when a unit uses an etcd config file.
options:
  unit:
    description:
      - The etcd unit to read. Ignored when O(units) is given.
    type: str
    default: etcd.service
  units:
    description:
      - Several etcd units to read, for hosts that run more than one (told apart by their client URLs).
    type: list
    elements: str
  etcd_servers:
    description:
      - The API servers' C(--etcd-servers) URLs. When given, RV(serving_units) lists the units whose advertised or
        listened client URLs match one of them (scheme, host and port compared; default ports and trailing slashes
        ignored), and the module fails when none does.
    type: list
    elements: str
  log_lines:
    description:
      - Also read each unit's state (C(systemctl show)) and the last this many lines of its journal (C(journalctl -u)),
        and say in RV(summary) why its etcd is not running - the line of the log that says so (the last panic, fatal or
        error). V(0) (the default) reads neither.
    type: int
    default: 0
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.INFO_MODULE
seealso:
  - module: kubeops.etcd.etcd_unit_datadir
  - module: kubeops.etcd.etcd_member_info
'''

EXAMPLES = r'''
- name: Read the etcd unit kubespray installs (settings in /etc/etcd.env)
  kubeops.etcd.etcd_unit_info:
  register: etcd_unit

- name: Show where the data directory is defined
  ansible.builtin.debug:
    msg: >-
      {{ etcd_unit.member.name }} keeps its data in {{ etcd_unit.member.data_dir }}, set by
      {{ etcd_unit.units[0].data_dir_location.kind }} in {{ etcd_unit.units[0].data_dir_location.file }}

- name: Find which of two etcd units serves the API servers
  kubeops.etcd.etcd_unit_info:
    units:
      - etcd.service
      - etcd-events.service
    etcd_servers: "{{ apiserver.etcd_servers }}"
  register: etcd_units
'''

RETURN = r'''
units:
  description: One entry per unit, in the order asked.
  returned: always
  type: list
  elements: dict
  contains:
    unit:
      description: The unit name.
      type: str
      sample: etcd.service
    fragment_path:
      description: The unit file.
      type: str
      sample: /etc/systemd/system/etcd.service
    drop_in_paths:
      description: Its drop-ins, in the order systemd applies them.
      type: list
      elements: str
      sample: [/etc/systemd/system/etcd.service.d/10-override.conf]
    environment_files:
      description: The C(EnvironmentFile)s in effect, each with C(path), C(optional) (a C(-) prefix) and C(exists).
      type: list
      elements: dict
      sample: [{path: /etc/etcd.env, optional: false, exists: true}]
    exec_start:
      description: The command systemd runs, split into words, with specifiers and variables resolved.
      type: list
      elements: str
      sample: [/usr/local/bin/etcd]
    working_directory:
      description: C(WorkingDirectory=), or V(null) (C(/) for system services).
      type: str
    member:
      description:
        - The member this unit runs. Settings it does not make are etcd's defaults.
        - C(group) is V(null) when the unit sets no C(Group=) (the user's primary group).
      type: dict
      sample:
        name: etcd1
        data_dir: /var/lib/etcd
        listen_client_urls: [https://10.0.0.21:2379, https://127.0.0.1:2379]
        advertise_client_urls: [https://10.0.0.21:2379]
        listen_peer_urls: [https://10.0.0.21:2380]
        peer_urls: [https://10.0.0.21:2380]
        initial_cluster: etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380
        initial_cluster_token: k8s_etcd
        initial_cluster_state: existing
        cert_file: /etc/ssl/etcd/ssl/member-node1.pem
        key_file: /etc/ssl/etcd/ssl/member-node1-key.pem
        trusted_ca_file: /etc/ssl/etcd/ssl/ca.pem
        peer_cert_file: /etc/ssl/etcd/ssl/member-node1.pem
        peer_key_file: /etc/ssl/etcd/ssl/member-node1-key.pem
        peer_trusted_ca_file: /etc/ssl/etcd/ssl/ca.pem
        user: root
        group: null
        config_file: null
    data_dir_location:
      description:
        - Where the data directory is defined. C(kind) is C(flag) (in C(ExecStart); C(file), C(line)), C(env)
          (C(file), C(line), C(variable); the file is a unit file or drop-in for C(Environment=)) or C(config)
          (C(file), C(key)).
      type: dict
      sample: {kind: env, file: /etc/etcd.env, line: 2, variable: ETCD_DATA_DIR}
member:
  description:
    - The member of the only unit read, or of the only unit serving O(etcd_servers); V(null) otherwise.
    - Same keys as RV(units[].member).
  returned: always
  type: dict
summary:
  description:
    - With O(log_lines), one sentence per unit on its etcd, keyed C(etcd) for the unit of RV(member) and by unit name for
      every unit - its state and the line of its journal that says why etcd stopped, for a failure message.
  returned: when O(log_lines) is positive
  type: dict
  sample:
    etcd: "etcd on etcd2: unit etcd.service is activating (auto-restart, result exit-code, exit status 1), its log ends
      with: listen tcp 10.0.0.22:2379: bind: address already in use"
serving_units:
  description: The units serving O(etcd_servers); V(null) without O(etcd_servers).
  returned: always
  type: list
  elements: str
  sample: [etcd.service]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.etcd_unit import (
    load_unit, read_unit_state, serving_units, unit_summary)
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner


def run_module(module):
    runner = Runner(module)
    names = module.params['units'] or [module.params['unit']]
    entries = [load_unit(module, runner, name).describe() for name in names]
    result = {'changed': False, 'units': entries, 'member': None, 'serving_units': None}
    chosen = None
    if module.params['etcd_servers']:
        result['serving_units'] = serving_units([(e['unit'], e['member']) for e in entries],
                                                module.params['etcd_servers'])
        serving = [e for e in entries if e['unit'] in result['serving_units']]
        if len(serving) == 1:
            chosen = serving[0]
    elif len(entries) == 1:
        chosen = entries[0]
    if chosen:
        result['member'] = chosen['member']
    if module.params['log_lines'] > 0:
        summaries = {}
        for entry in entries:
            state, log_text = read_unit_state(module, runner, entry['unit'], module.params['log_lines'])
            summaries[entry['unit']] = unit_summary(node_name(), entry['unit'], state, log_text)
        if chosen:
            summaries['etcd'] = summaries[chosen['unit']]
        result['summary'] = summaries
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type='str', default='etcd.service'),
            units=dict(type='list', elements='str'),
            etcd_servers=dict(type='list', elements='str'),
            log_lines=dict(type='int', default=0),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
