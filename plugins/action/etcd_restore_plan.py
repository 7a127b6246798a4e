# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of the restore planner: reads the snapshot on the ops box, then hands every
decision to module_utils/restore_plan.py (pure functions) and returns what they decided."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

from ansible_collections.kubeops.etcd.plugins.module_utils.hostvars import collect
from ansible_collections.kubeops.etcd.plugins.module_utils import restore_journal
from ansible_collections.kubeops.etcd.plugins.module_utils import restore_plan as planner
from ansible_collections.kubeops.etcd.plugins.module_utils.topology import decide_topology
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    TRAILING_HASH_SIZE, inspect_bolt_file, snapshot_digests)

ARGUMENT_SPEC = dict(
    phase=dict(type='str', required=True,
               choices=['unfinished', 'declared', 'survivor', 'source', 'snapshot', 'plan', 'prepared', 'report',
                        'lost', 'rollback']),
    snapshot=dict(type='raw'),
    backup_dir=dict(type='path'),
    objects=dict(type='list', elements='dict'),
    bucket=dict(type='str'),
    prefix=dict(type='str', default=''),
    download_dir=dict(type='path'),
    identity_given=dict(type='bool', default=True),
    role=dict(type='str', default='etcd_restore', choices=['etcd_restore', 'etcd_verify']),
    resume=dict(type='bool', default=False),
    rollback=dict(type='bool', default=False),
    hosts=dict(type='list', elements='str'),
    lost_hosts=dict(type='raw'),
    etcd_group=dict(type='str', default=''),
    etcd_hosts=dict(type='list', elements='str', default=[]),
    control_plane_hosts=dict(type='list', elements='str', default=[]),
    host_vars=dict(type='dict', default={}),
    old_cluster=dict(type='raw'),
    options=dict(type='dict'),
    plan=dict(type='dict'),
    final_cluster=dict(type='dict'),
    timings=dict(type='dict'),
    rollback_cluster=dict(type='dict'),
    outcome=dict(type='str', default='rolled_back', choices=['rolled_back', 'incomplete', 'discarded']),
)

# What each phase reads from every host's variables (host_vars maps these keys to variable names).
HOST_VAR_KEYS = ('node', 'control_plane', 'restore_result', 'failure', 'rollback_failure', 'state', 'moved_aside', 'journal',
                 'answered', 'rollback_health', 'etcd_container', 'etcd_container_after')


def read_local_snapshot(path):
    """Facts of a snapshot file on the ops box, for restore_plan.check_snapshot."""
    path = os.path.realpath(os.path.expanduser(path))
    facts = {'kind': 'local', 'host': None, 'path': path, 'exists': os.path.lexists(path)}
    if not facts['exists'] or path.endswith('.part'):
        return facts
    info = os.stat(path)
    facts['is_regular'] = stat.S_ISREG(info.st_mode)
    if not facts['is_regular']:
        return facts
    digests = snapshot_digests(path)
    facts.update(size=digests['size'], sha256=digests['sha256'], has_trailing_hash=digests['has_trailing_hash'],
                 bolt_error=None, metadata=None, metadata_error=None)
    try:
        inspect_bolt_file(path, digests['size'] - (TRAILING_HASH_SIZE if digests['has_trailing_hash'] else 0))
    except EtcdModuleError as exc:
        facts['bolt_error'] = exc.msg
    meta_path = path + '.meta.json'
    if os.path.exists(meta_path):
        try:
            with open(meta_path, 'rb') as handle:
                meta = json.loads(handle.read().decode('utf-8'))
            if not isinstance(meta, dict):
                raise ValueError('not a JSON object')
            facts['metadata'] = meta
        except (IOError, OSError, ValueError) as exc:
            facts['metadata_error'] = to_native(exc)
    return facts


def node_snapshot_facts(host, path, info):
    """Facts of a snapshot on a control plane, from etcd_snapshot_info run there."""
    snap = info.get('snapshot') or {}
    return {
        'kind': 'node', 'host': host, 'path': path, 'exists': True, 'is_regular': True,
        'size': snap.get('size'), 'sha256': snap.get('sha256'), 'has_trailing_hash': snap.get('has_trailing_hash'),
        'bolt_error': None, 'metadata': snap.get('metadata'), 'metadata_error': None, 'status': snap.get('status'),
    }


def plan_hosts(plan):
    """Every host of a plan: the members' and, with external etcd, the control planes'."""
    return [member['host'] for member in plan['members']] + [cp['host'] for cp in plan.get('control_planes') or []]


def list_backups(backup_dir):
    found = []
    if not os.path.isdir(backup_dir):
        return found
    for name in os.listdir(backup_dir):
        full = os.path.join(backup_dir, name)
        if os.path.isfile(full):
            found.append({'path': full, 'mtime': os.path.getmtime(full)})
    return found


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        handler = getattr(self, '_phase_' + args['phase'])
        try:
            result.update(handler(args, task_vars or {}))
        except planner.PlanError as exc:
            raise AnsibleActionFail('etcd_restore_plan: %s' % exc)
        result.setdefault('changed', False)
        return result

    def _phase_unfinished(self, args, task_vars):
        """What the journals of an earlier, unfinished run allow: a new run, resume, abort, or a refusal."""
        hosts = args['hosts'] or []
        found = collect(task_vars, hosts, args['host_vars'].get('journal'))
        runs = dict((host, (value or {}).get('runs') or []) for host, value in found.items())
        # The journal read keeps a control plane that does not answer in the play (ignore_unreachable), so that a
        # run to finish or undo is never judged without its journal.
        unanswered = dict((host, value.get('msg')) for host, value in found.items()
                          if isinstance(value, dict) and value.get('unreachable'))
        decided = restore_journal.decide(runs, hosts, resume=args['resume'], rollback=args['rollback'],
                                         unanswered=unanswered)
        if decided['action'] == 'refuse':
            return {'failed': True, 'msg': decided['msg'], 'unfinished': decided}
        return {'unfinished': decided}

    def _phase_source(self, args, task_vars):
        """Where -e snapshot=... comes from (ops box, node, object store; plain or encrypted) and, for what must
        be downloaded or decrypted first, the files on the ops box that will hold it."""
        try:
            source = planner.resolve_source(
                args['snapshot'], args['hosts'] or [], backup_dir_files=list_backups(args['backup_dir'] or ''),
                objects=args['objects'], bucket=args['bucket'], prefix=args['prefix'],
                identity_given=args['identity_given'], role=args['role'])
        except ValueError as exc:
            return {'failed': True, 'msg': to_native(exc)}
        if source['kind'] == 'latest':
            return {'failed': True,
                    'msg': 'snapshot=latest, but %s holds no *.db (or .db.age) file with its .meta.json on the ops '
                           'box. Take a backup first (playbooks/backup.yml), set %s_backup_dir to where '
                           'the backups are, set %s_s3_bucket to use object storage, or pass '
                           '-e snapshot=<path>. Nothing was changed.' % (args['backup_dir'], args['role'], args['role'])}
        download_dir = args['download_dir'] or ''
        if source['kind'] == 's3':
            source['download_path'] = os.path.join(download_dir, os.path.basename(source['key']))
            source['metadata_path'] = os.path.join(download_dir, os.path.basename(source['metadata_key']))
        elif source['kind'] == 'local':
            source['path'] = os.path.realpath(os.path.expanduser(source['path']))
            source['metadata_path'] = os.path.join(os.path.dirname(source['path']), source['plain'] + '.meta.json')
        if source['encrypted']:
            source['plain_path'] = os.path.join(download_dir, source['plain'])
            source['plain_metadata_path'] = source['plain_path'] + '.meta.json'
            source['metadata'] = self._read_metadata(source['metadata_path']) if source['kind'] == 'local' else None
        # Plaintext files this run writes on the ops box: removed when the run ends (they hold every Secret).
        source['plaintext_copies'] = ([source['plain_path'], source['plain_metadata_path']] if source['encrypted']
                                      else [source['download_path']] if source['kind'] == 's3' else [])
        # What phase `snapshot` reads once the file is on the ops box in plain form.
        if source['kind'] == 'node':
            source['snapshot'] = '%s:%s' % (source['host'], source['path'])
        elif source['encrypted']:
            source['snapshot'] = source['plain_path']
        elif source['kind'] == 's3':
            source['snapshot'] = source['download_path']
        else:
            source['snapshot'] = source['path']
        return {'source': source}

    @staticmethod
    def _read_metadata(path):
        try:
            with open(path, 'rb') as handle:
                meta = json.loads(handle.read().decode('utf-8'))
        except (IOError, OSError, ValueError) as exc:
            raise AnsibleActionFail('The metadata %s of the encrypted snapshot cannot be read on the ops box (%s): it '
                                    'records the SHA-256 the decrypted snapshot must have. Put it beside the '
                                    'snapshot. Nothing was changed.' % (path, to_native(exc)))
        return meta if isinstance(meta, dict) else {}

    def _phase_snapshot(self, args, task_vars):
        """Resolve -e snapshot=... and read it when it lies on the ops box."""
        hosts = args['hosts'] or []
        try:
            kind, host, path = planner.parse_snapshot_spec(args['snapshot'], hosts)
        except ValueError as exc:
            return {'failed': True, 'msg': to_native(exc)}
        if kind == 'node':
            return {'snapshot': {'kind': 'node', 'host': host, 'path': path}}
        if kind == 'latest':
            backup_dir = args['backup_dir']
            path = planner.choose_latest(list_backups(backup_dir))
            if path is None:
                return {'failed': True,
                        'msg': 'snapshot=latest, but %s holds no *.db file with its .meta.json on the ops box. Take a '
                               'backup first (playbooks/backup.yml), set etcd_restore_backup_dir to where the backups '
                               'are, or pass -e snapshot=<path>. Nothing was changed.' % backup_dir}
        facts = read_local_snapshot(path)
        refusals = planner.check_snapshot(facts)
        if refusals:
            return {'failed': True, 'msg': planner.refusal_text(refusals), 'refusals': refusals, 'snapshot': facts}
        return {'snapshot': facts}

    def _phase_declared(self, args, task_vars):
        """What the inventory declares: stacked or external etcd (which hosts run the members, which the API servers),
        and the control planes declared lost (etcd_restore_lost_hosts), checked against the play's hosts."""
        topology = planner.external_topology(decide_topology(args['etcd_group'], args['etcd_hosts']),
                                             args['hosts'] or [], args['lost_hosts'], args['control_plane_hosts'],
                                             resume=args['resume'], rollback=args['rollback'])
        if topology['refusals']:
            return {'failed': True, 'msg': planner.refusal_text(topology['refusals']),
                    'refusals': topology['refusals'], 'topology': topology}
        if topology['name'] == 'external':
            return {'lost': [], 'topology': topology}
        decided = planner.declared_lost(args['hosts'] or [], args['lost_hosts'] or [])
        if decided['refusals']:
            return {'failed': True, 'msg': planner.refusal_text(decided['refusals']), 'refusals': decided['refusals']}
        return {'lost': decided['lost'], 'topology': topology}

    def _phase_survivor(self, args, task_vars):
        """-e snapshot=survivor: the member to recover from when the cluster lost its quorum."""
        hosts = args['hosts'] or []
        nodes = collect(task_vars, hosts, args['host_vars'].get('node'))
        urls = dict((host, ((node or {}).get('member') or {}).get('advertise_client_urls') or [])
                    for host, node in nodes.items())
        decided = planner.choose_survivor(hosts, urls, args['old_cluster'] or {}, args['lost_hosts'] or [])
        if decided['refusals']:
            return {'failed': True, 'msg': planner.refusal_text(decided['refusals']), 'refusals': decided['refusals'],
                    'candidates': decided['candidates']}
        return {'survivor': decided['survivor'], 'candidates': decided['candidates'], 'lines': decided['lines']}

    def _phase_plan(self, args, task_vars):
        snapshot = dict(args['snapshot'] or {})
        if snapshot.get('kind') == 'node' and 'info' in snapshot:
            snapshot = node_snapshot_facts(snapshot['host'], snapshot['path'], snapshot['info'])
        options = dict(args['options'] or {})
        hostvars = task_vars.get('hostvars') or {}
        # The lost hosts are never contacted: their address comes from the inventory.
        options['lost'] = [{'host': host, 'address': str((hostvars.get(host) or {}).get('ansible_host') or host)}
                           for host in args['lost_hosts'] or []]
        hosts = args['hosts'] or []
        nodes = collect(task_vars, hosts, args['host_vars'].get('node'))
        # External etcd: the control planes' facts (their API servers), apart from the members'.
        control_planes = options.get('control_planes') or []
        if control_planes:
            found = collect(task_vars, control_planes, args['host_vars'].get('control_plane'))
            options['control_planes'] = [{'host': host, 'node': found.get(host)} for host in control_planes]
        decided = planner.plan_restore(hosts, nodes, snapshot, args['old_cluster'], options)
        if decided['refusals']:
            return {'failed': True, 'msg': planner.refusal_text(decided['refusals']),
                    'refusals': decided['refusals'], 'warnings_found': decided['warnings']}
        plan = decided['plan']
        return {'plan': plan, 'lines': planner.plan_lines(plan, check_mode=bool(task_vars.get('ansible_check_mode')))}

    def _phase_prepared(self, args, task_vars):
        plan = dict(args['plan'])
        checked = planner.check_prepared(plan, self._per_host(args, task_vars, 'restore_result'))
        if checked['refusals']:
            return {'failed': True, 'msg': planner.refusal_text(checked['refusals']), 'refusals': checked['refusals']}
        snapshot = dict(plan['snapshot'])
        for key, value in checked['snapshot'].items():
            if snapshot.get(key) is None:
                snapshot[key] = value
        plan['snapshot'] = snapshot
        plan['min_revision'] = (snapshot['revision'] or 0) + plan['bump_revision']
        return {'plan': plan}

    def _phase_report(self, args, task_vars):
        plan = args['plan']
        final = args['final_cluster'] or {}
        problems = planner.verify_identity(plan, final)
        if problems:
            return {'failed': True, 'msg': 'The restored cluster is not the one the restore produced: %s.'
                                           % '; '.join(problems)}
        built = planner.build_report(plan, self._per_host(args, task_vars, 'restore_result'), final,
                                     args['timings'] or {})
        return {'report': built['report'], 'lines': built['lines']}

    def _per_host(self, args, task_vars, key):
        return collect(task_vars, plan_hosts(args['plan']), args['host_vars'].get(key))

    def _etcd_containers(self, args, task_vars, key):
        """{host: static_pod_info's sentence on its etcd container} where the read ran (not skipped) and answered."""
        found = {}
        for host, result in self._per_host(args, task_vars, key).items():
            summary = ((result or {}).get('summary') or {}).get('etcd') if isinstance(result, dict) else None
            if summary:
                found[host] = summary
        return found

    def _phase_lost(self, args, task_vars):
        return {'lost': planner.lost_members(args['plan'], self._per_host(args, task_vars, 'answered'))}

    def _phase_rollback(self, args, task_vars):
        """Word how a failed run ended. With outcome rolled_back the answer depends on what the nodes report: every
        node back; a quorum of the old cluster serving while some nodes are not back (lost, their rollback failed,
        or their member did not come back); or no quorum: ROLLBACK INCOMPLETE with each node's state."""
        plan = args['plan']
        hosts = plan_hosts(plan)
        failures = planner.attribute_failures(
            plan, [f for f in (self._per_host(args, task_vars, 'failure').get(h) for h in hosts) if f],
            self._etcd_containers(args, task_vars, 'etcd_container'))
        if args['outcome'] == 'discarded':
            return {'msg': planner.discarded_text(plan, failures)}
        rollback_failures = [f for f in (self._per_host(args, task_vars, 'rollback_failure').get(h) for h in hosts) if f]
        states = self._per_host(args, task_vars, 'state')
        options = args['options'] or {}
        cluster = args['rollback_cluster']
        if args['host_vars'].get('rollback_health'):
            # Registered by a run_once task on the hosts that ran it; a host in the rescue at that time has none.
            healths = self._per_host(args, task_vars, 'rollback_health')
            found = [healths[h]['cluster'] for h in hosts if (healths.get(h) or {}).get('cluster')]
            cluster = found[0] if found else cluster
        serves = bool(cluster) and not cluster.get('problems')
        if args['outcome'] == 'rolled_back' and (serves or not rollback_failures):
            moved = self._per_host(args, task_vars, 'moved_aside')
            lost = planner.lost_members(plan, self._per_host(args, task_vars, 'answered')) \
                if args['host_vars'].get('answered') else None
            return {'msg': planner.rolled_back_text(plan, failures, cluster, [moved[h] for h in hosts if moved.get(h)],
                                                    lost, rollback_failures, states, options,
                                                    self._etcd_containers(args, task_vars, 'etcd_container_after')),
                    'complete': not rollback_failures}
        return {'msg': planner.rollback_incomplete_text(plan, failures, rollback_failures, states, options),
                'complete': False}
