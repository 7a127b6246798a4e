#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_verify_snapshot
short_description: Prove that an etcd snapshot restores, in a throwaway etcd on loopback
version_added: 0.2.0
description:
  - The backup drill. Checks the snapshot file as M(kubeops.etcd.etcd_snapshot_info) does (trailing SHA-256, bbolt
    header and length, C(snapshot status)) and against its metadata file when there is one (SHA-256, size,
    revision, and C(total_key) when the tool has the metadata's etcd minor version).
  - Reads the keys the snapshot holds at its revision with the collection's own bbolt reader, independently of etcd.
  - Restores the snapshot with C(etcdutl) (3.5+) or C(etcdctl) (3.4) into a new private directory (mode C(0700)) as
    a one-member cluster with a unique member name and token, and starts C(etcd) on it, listening on C(127.0.0.1)
    only, on two ports the kernel reports free. The member speaks plain HTTP, since it is reachable from this host only
    and lives for the seconds of the drill, and a TLS setup would prove nothing about the backup.
  - Waits until that etcd is healthy, then checks that it serves the snapshot's revision and exactly the keys the
    file holds, and reads a sample of keys in full (the first ones under C(/registry/) and random others), each
    compared with the file (modification revision and SHA-256 of the value).
  - Always stops that etcd (C(SIGTERM), then C(SIGKILL) after 10 seconds, by the process it started) and removes
    the directory, whether the drill passed or failed. It never talks to any other etcd.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  path:
    description:
      - The plain (decrypted) snapshot file on the host that runs the module.
    type: path
    required: true
  metadata_path:
    description:
      - Metadata file written by M(kubeops.etcd.etcd_snapshot). Defaults to C(<path>.meta.json); without one the
        file is checked against its own C(snapshot status) only.
    type: path
  require_metadata:
    description:
      - Fail when the metadata file does not exist.
    type: bool
    default: false
  sample_size:
    description:
      - How many keys to read in full from the throwaway etcd. V(0) reads none (the key count is still compared).
    type: int
    default: 20
  start_timeout:
    description:
      - Seconds to wait for the throwaway etcd to become healthy.
    type: int
    default: 60
  work_dir:
    description:
      - Directory in which the private temporary directory of the drill is created (it needs room for the restored
        database, about the snapshot's size). Defaults to the system's temporary directory.
    type: path
  etcd_path:
    description:
      - Path of the C(etcd) server binary that runs the throwaway member. When not set, C(PATH) is searched.
      - Use the cluster's etcd minor version.
    type: path
  etcdctl_path:
    description:
      - Path of C(etcdctl), used to query the throwaway etcd, and to read and restore the file when C(etcdutl) is
        missing and C(etcdctl) is older than 3.6. When not set, C(PATH) is searched.
    type: path
  etcdutl_path:
    description:
      - Path of C(etcdutl) (etcd 3.5 and newer). When not set, C(PATH) is searched.
    type: path
  command_timeout:
    description:
      - Seconds after which any single command (C(snapshot status), C(snapshot restore), a query) is stopped and the
        drill fails.
    type: int
    default: 60
requirements:
  - C(etcd) and C(etcdctl) on the host that runs the module, and C(etcdutl) 3.5+ or C(etcdctl) older than 3.6 to
    read and restore the file (Debian/Ubuntu packages C(etcd-server) and C(etcd-client)).
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.actiongroup_etcd
attributes:
  check_mode:
    support: partial
    details:
      - In check mode only the file is checked (hashes, bbolt, C(snapshot status), metadata, the keys it holds);
        nothing is restored or started.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Leaves nothing behind, so every run starts from the same state; C(changed) is always V(false).
notes:
  - The drill needs free space for one restored copy of the database in O(work_dir).
  - Keys are returned by name only; no value ever leaves the module.
  - C(snapshot status) counts C(total_key) differently in etcd 3.5 and 3.6, so it is compared with the metadata only
    when the tool has the metadata's minor version. The number of keys the restored etcd serves is compared with
    the keys the file holds, whatever the version.
seealso:
  - module: kubeops.etcd.etcd_snapshot_info
  - module: kubeops.etcd.etcd_snapshot
'''

EXAMPLES = r'''
- name: Restore last night's backup into a throwaway etcd and check it
  kubeops.etcd.etcd_verify_snapshot:
    path: /var/backups/etcd/kubernetes-20261122T013500Z-rev51.db
    require_metadata: true
  register: etcd_drill

- name: Say what the drill proved
  ansible.builtin.debug:
    msg: "Revision {{ etcd_drill.drill.revision }}, {{ etcd_drill.drill.served_keys }} keys served"

- name: Drill a backup of an etcd 3.4 cluster with its own tools
  kubeops.etcd.etcd_verify_snapshot:
    path: /srv/backups/etcd-34.db
    etcd_path: /opt/etcd-v3.4.23/etcd
    etcdctl_path: /opt/etcd-v3.4.23/etcdctl
    sample_size: 50
'''

RETURN = r'''
drill:
  description: What the drill checked and found. Also returned, as far as it got, when the drill fails.
  returned: always
  type: dict
  contains:
    path:
      description: The snapshot file.
      type: str
      sample: /var/backups/etcd/kubernetes-20261122T013500Z-rev51.db
    metadata_path:
      description: Where the metadata was looked for.
      type: str
      sample: /var/backups/etcd/kubernetes-20261122T013500Z-rev51.db.meta.json
    metadata_found:
      description: Whether the metadata file exists (it then had to match the file).
      type: bool
      sample: true
    sha256:
      description: SHA-256 of the whole file.
      type: str
      sample: 1041d7d203aa1f2c20344e06fcac1ac2937fe148d46f6b34f6a69c74d1f3546c
    size:
      description: File size in bytes.
      type: int
      sample: 20512
    revision:
      description: The snapshot's revision (C(snapshot status)).
      type: int
      sample: 51
    total_key:
      description: C(totalKey) of C(snapshot status), as counted by the tool's version.
      type: int
      sample: 58
    live_keys:
      description: Keys the file holds at its revision, read with the collection's bbolt reader.
      type: int
      sample: 41
    served_revision:
      description: Revision the throwaway etcd reported (C(endpoint status)); V(null) in check mode.
      type: int
      sample: 51
    served_keys:
      description: Keys the throwaway etcd served; V(null) in check mode.
      type: int
      sample: 41
    sampled_keys:
      description: Names of the keys read in full and compared with the file (never their values).
      type: list
      elements: str
      sample: [/registry/apiregistration.k8s.io/apiservices/v1., /registry/configmaps/kube-system/kubeadm-config]
    restore_tool:
      description: The tool that read and restored the file, with its version.
      type: str
      sample: etcdutl 3.5.30
    etcd_version:
      description: Version of the C(etcd) binary that ran the throwaway member; V(null) in check mode.
      type: str
      sample: 3.5.30
    member:
      description: The throwaway member (stopped and removed when the module returns); V(null) until started.
      type: dict
      contains:
        name:
          description: Its unique member name.
          type: str
          sample: kubeops-drill-3f9a1c2b
        client_url:
          description: Its client URL on loopback.
          type: str
          sample: http://127.0.0.1:40123
        peer_url:
          description: Its peer URL on loopback.
          type: str
          sample: http://127.0.0.1:40124
        pid:
          description: The process ID it ran as.
          type: int
          sample: 12345
    work_dir:
      description: The private directory that held the restored member (removed).
      type: str
      sample: /tmp/kubeops-etcd-drill-x1y2z3
    stopped:
      description: How the throwaway etcd ended (V(sigterm), V(sigkill), V(exited) by itself), V(null) if never started.
      type: str
      sample: sigterm
    durations:
      description: Seconds spent in each step (C(check_file), C(restore), C(start), C(compare), C(stop), C(total)).
      type: dict
      sample: {"check_file": 0.4, "restore": 0.2, "start": 1.1, "compare": 0.6, "stop": 0.1, "total": 2.4}
    checks:
      description: One sentence per check that passed.
      type: list
      elements: str
      sample: ["the file matches its metadata (sha256, size, revision, total_key)"]
'''

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.kubeops.etcd.plugins.module_utils import drill
from ansible_collections.kubeops.etcd.plugins.module_utils.bbolt import BoltError
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import TRAILING_HASH_SIZE, verify_snapshot_file
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import (
    parse_endpoint_health, parse_endpoint_status, parse_version_output)
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import (
    FIXED_ENVIRONMENT, EtcdTools, Runner, find_tool)

PORT_ATTEMPTS = 3
STOP_GRACE_SECONDS = 10
HEALTH_PROBE_INTERVAL = 0.2
LOG_TAIL_BYTES = 2000


def read_metadata(path):
    """The metadata dict, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError, ValueError) as exc:
        raise EtcdModuleError('The metadata %s on %s cannot be read (%s): it cannot vouch for the snapshot. Drill '
                              'another backup, or move it away to drill the file as a plain snapshot.'
                              % (path, node_name(), exc), file=path)
    if not isinstance(data, dict):
        raise EtcdModuleError('The metadata %s on %s is not a JSON object.' % (path, node_name()), file=path)
    return data


class Drill(object):
    """One drill: what it found so far (self.result), and the throwaway member it must always clean up."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.runner = Runner(module)
        self.path = self.params['path']
        self.process = None
        self.log_path = None
        self.work_dir = None
        self.result = {
            'path': self.path, 'metadata_path': self.params['metadata_path'] or self.path + '.meta.json',
            'metadata_found': False, 'sha256': None, 'size': None, 'revision': None, 'total_key': None,
            'live_keys': None, 'served_revision': None, 'served_keys': None, 'sampled_keys': [],
            'restore_tool': None, 'etcd_version': None, 'member': None, 'work_dir': None, 'stopped': None,
            'durations': {}, 'checks': [],
        }

    def fail(self, stage, problems):
        raise EtcdModuleError(drill.failure_text(self.path, node_name(), problems, stage), file=self.path)

    def _timed(self, step, started):
        self.result['durations'][step] = round(time.time() - started, 3)

    # --- the file ---------------------------------------------------------------------------

    def check_file(self):
        started = time.time()
        if self.path.endswith('.part'):
            self.fail('checking the file', ['it is a .part file, which etcdctl leaves while a snapshot is being '
                                            'saved: it is not a snapshot'])
        self.tools = EtcdTools.detect(self.module, self.runner, self.params['etcdctl_path'],
                                      self.params['etcdutl_path'], probe_restore_help=False)
        try:
            facts = verify_snapshot_file(self.runner, self.tools, self.path)
        except EtcdModuleError as exc:
            self.fail('checking the file', [exc.msg.rstrip('.')])
        self.facts = facts
        self.result.update(sha256=facts['sha256'], size=facts['size'], revision=facts['status']['revision'],
                           total_key=facts['status']['total_key'],
                           restore_tool='%s %s' % (self.tools.restore_tool, self.tools.restore_tool_version))
        self.result['checks'].append('the file is a complete etcd snapshot (%s, bbolt header and length, snapshot '
                                     'status)' % ('its trailing SHA-256' if facts['has_trailing_hash']
                                                  else 'no trailing SHA-256: a raw copy of member/snap/db'))
        metadata_path = self.result['metadata_path']
        metadata = read_metadata(metadata_path)
        self.result['metadata_found'] = metadata is not None
        if metadata is None and self.params['require_metadata']:
            self.fail('checking the file', ['its metadata %s does not exist (require_metadata is set)' % metadata_path])
        problems = drill.metadata_differences(metadata, facts, self.tools.restore_tool_version)
        if problems:
            self.fail('the file does not match its metadata %s' % metadata_path, problems)
        if metadata is not None:
            compared = ['sha256', 'size', 'revision']
            if drill.same_minor(metadata.get('etcd_version'), self.tools.restore_tool_version):
                compared.append('total_key')
            self.result['checks'].append('the file matches its metadata (%s)' % ', '.join(compared))
        self.data_size = facts['size'] - (TRAILING_HASH_SIZE if facts['has_trailing_hash'] else 0)
        try:
            self.live = drill.read_live_keys(self.path, self.data_size)
        except BoltError as exc:
            self.fail('reading the keys of the file', [str(exc)])
        self.result['live_keys'] = len(self.live)
        self.result['checks'].append('the file holds %d keys at revision %s'
                                     % (len(self.live), self.result['revision']))
        self._timed('check_file', started)

    # --- the throwaway member ---------------------------------------------------------------

    def restore_and_start(self):
        etcd = find_tool(self.module, 'etcd', self.params['etcd_path'])
        if not etcd:
            raise EtcdModuleError('etcd not found on %s: the drill runs a throwaway etcd server. Install etcd of the '
                                  'cluster\'s minor version (Debian/Ubuntu: etcd-server) or set etcd_path.'
                                  % node_name())
        self.etcdctl = self.tools.require_etcdctl('query the throwaway etcd')
        version = self.runner.run([etcd, '--version'], check_rc=False)
        self.result['etcd_version'] = parse_version_output(version.stdout)
        self.work_dir = tempfile.mkdtemp(prefix='kubeops-etcd-drill-', dir=self.params['work_dir'] or None)
        self.result['work_dir'] = self.work_dir
        name = 'kubeops-drill-%s' % uuid.uuid4().hex[:8]
        token = 'kubeops-drill-%s' % uuid.uuid4().hex
        for attempt in range(PORT_ATTEMPTS):
            self.urls = drill.member_urls(*drill.free_loopback_ports(2))
            data_dir = os.path.join(self.work_dir, 'member-%d' % attempt)
            started = time.time()
            restore = self.runner.run(drill.restore_argv(
                self.tools.restore_tool, self.tools.restore_path, self.path, data_dir, name, self.urls, token,
                skip_hash_check=not self.facts['has_trailing_hash']), check_rc=False)
            if restore.rc != 0:
                self.fail('restoring it with %s' % self.result['restore_tool'],
                          ['%s exited with rc=%s: %s' % (restore.cmd, restore.rc, restore.error_summary())])
            self._timed('restore', started)
            started = time.time()
            self.log_path = os.path.join(self.work_dir, 'etcd-%d.log' % attempt)
            self._spawn(drill.etcd_argv(etcd, name, data_dir, self.urls))
            self.result['member'] = {'name': name, 'client_url': self.urls['client'], 'peer_url': self.urls['peer'],
                                     'pid': self.process.pid}
            if self._wait_healthy():
                self._timed('start', started)
                self.result['checks'].append('it restored and started as a one-member etcd %s on %s'
                                             % (self.result['etcd_version'], self.urls['client']))
                return
            log = self._log_tail()
            self.stop()
            if self.result['stopped'] == 'exited' and drill.port_in_use(log) and attempt + 1 < PORT_ATTEMPTS:
                continue
            self.fail('starting the restored member', [
                'etcd %s did not become healthy on %s within %d seconds%s; its log ends with: %s'
                % (self.result['etcd_version'], self.urls['client'], self.params['start_timeout'],
                   '' if self.result['stopped'] != 'exited' else ' (it exited by itself)', log)])

    def _spawn(self, argv):
        environment = dict(os.environ)
        environment.update(FIXED_ENVIRONMENT)
        self.process = drill.spawn_member(argv, self.log_path, environment)
        self.result['stopped'] = None

    def _wait_healthy(self):
        deadline = time.time() + self.params['start_timeout']
        while time.time() < deadline:
            if self.process.poll() is not None:
                return False
            probe = self.runner.run(drill.etcdctl_argv(self.etcdctl, self.urls, 'endpoint', 'health', '-w', 'json'),
                                    check_rc=False, timeout=15)
            try:
                entries = parse_endpoint_health(probe.stdout) if probe.rc == 0 else []
            except EtcdModuleError:
                entries = []
            if entries and all(entry['healthy'] for entry in entries):
                return True
            time.sleep(HEALTH_PROBE_INTERVAL)
        return False

    def _log_tail(self):
        try:
            with open(self.log_path, 'rb') as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - LOG_TAIL_BYTES))
                return to_text(handle.read(), errors='surrogate_or_replace').strip().replace('\n', ' | ')
        except (IOError, OSError, TypeError):
            return '(no log)'

    # --- the comparison ---------------------------------------------------------------------

    def _etcdctl(self, *args):
        result = self.runner.run(drill.etcdctl_argv(self.etcdctl, self.urls, *args), check_rc=False)
        if result.rc != 0:
            self.fail('querying the restored member', ['`%s` exited with rc=%s: %s'
                                                       % (result.cmd, result.rc, result.error_summary())])
        return result.stdout

    def compare(self):
        started = time.time()
        statuses = parse_endpoint_status(self._etcdctl('endpoint', 'status', '-w', 'json'))
        counted = drill.parse_get(self._etcdctl('get', '', '--prefix', '--keys-only', '--limit=1', '-w', 'json'))
        served = {'revision': statuses[0]['revision'] if statuses else None, 'count': counted['count']}
        self.result.update(served_revision=served['revision'], served_keys=served['count'])
        problems = drill.served_differences({'revision': self.result['revision'], 'live_keys': len(self.live)}, served)
        if problems:
            self.fail('comparing the restored member with the file', problems)
        self.result['checks'].append('the restored etcd serves revision %s and all %d keys'
                                     % (served['revision'], served['count']))
        sample = drill.choose_sample(self.live, self.params['sample_size'], random.SystemRandom())
        digests = drill.read_values_digest(self.path, sample, self.data_size)
        for key in sample:
            # '--' so that a key starting with '-' is never taken for a flag.
            reply = drill.parse_get(self._etcdctl('get', '-w', 'json', '--', key.decode('utf-8', 'surrogateescape')))
            problems.extend(drill.sample_differences(key, self.live[key], digests.get(key), reply))
            self.result['sampled_keys'].append(drill.key_text(key))
        if problems:
            self.fail('reading sampled keys from the restored member', problems)
        if sample:
            self.result['checks'].append('%d sampled keys read in full match the file (mod_revision, value SHA-256)'
                                         % len(sample))
        self._timed('compare', started)

    # --- cleanup ----------------------------------------------------------------------------

    def stop(self):
        """Stop the process this drill started: SIGTERM, then SIGKILL; never any other process."""
        if self.process is None or self.result['stopped'] is not None:
            return
        started = time.time()
        if self.process.poll() is not None:
            self.result['stopped'] = 'exited'
        else:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
                self.result['stopped'] = 'sigterm'
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.result['stopped'] = 'sigkill'
        self._timed('stop', started)

    def clean_up(self):
        try:
            self.stop()
        finally:
            if self.work_dir and os.path.isdir(self.work_dir):
                shutil.rmtree(self.work_dir)


def run_module(module, the_drill):
    started = time.time()
    the_drill.check_file()
    if not module.check_mode:
        try:
            the_drill.restore_and_start()
            the_drill.compare()
        finally:
            the_drill.clean_up()
    the_drill.result['durations']['total'] = round(time.time() - started, 3)
    return the_drill.result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            metadata_path=dict(type='path'),
            require_metadata=dict(type='bool', default=False),
            sample_size=dict(type='int', default=drill.DEFAULT_SAMPLE_SIZE),
            start_timeout=dict(type='int', default=60),
            work_dir=dict(type='path'),
            etcd_path=dict(type='path'),
            etcdctl_path=dict(type='path'),
            etcdutl_path=dict(type='path'),
            command_timeout=dict(type='int', default=60),
        ),
        supports_check_mode=True,
    )
    the_drill = Drill(module)
    try:
        result = run_module(module, the_drill)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, drill=the_drill.result, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), drill=the_drill.result,
                         exception=traceback.format_exc())
    module.exit_json(changed=False, drill=result)


if __name__ == '__main__':
    main()
