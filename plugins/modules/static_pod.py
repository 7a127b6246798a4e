#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: static_pod
short_description: Stop and start kubelet static pods by holding their manifests aside
version_added: 0.1.0
description:
  - Stops static pods (etcd, kube-apiserver, ...) by moving C(<name>.yaml) out of the kubelet's manifests directory
    into a holding directory, and starts them again by moving the file back. The kubelet stops a static pod whose
    manifest is gone and starts it when the manifest returns.
  - The files are renamed, never rewritten or deleted. When the two directories are on different filesystems the file
    is copied, flushed to disk and renamed into place, and only then is the source removed.
  - With O(wait=true) the module waits after each move until the container runtime (C(crictl)) shows the pod's
    container gone (O(state=stopped)) or running (O(state=started)), before it handles the next name.
    So the order of O(names) is the order of the operation, for example API server before etcd when stopping.
  - Before anything moves, every name is checked; a manifest found in both directories, or in neither, is an error.
author:
  - kubeops.etcd maintainers (@kubeops)
requirements:
  - C(crictl) on the managed node, unless O(wait=false).
options:
  names:
    description:
      - Static pod names; the manifest of V(etcd) is C(etcd.yaml). The container of that name is what the module waits for,
        as kubeadm names the container like the manifest.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(stopped) moves the manifests to O(holding_dir) and waits until no container of that name runs.
      - V(started) moves them back to O(manifests_dir) and waits until a container of that name runs.
    type: str
    choices: [stopped, started]
    required: true
  manifests_dir:
    description: The kubelet's static pod directory (C(staticPodPath)).
    type: path
    default: /etc/kubernetes/manifests
  holding_dir:
    description:
      - Where held manifests are kept; created with mode C(0700). It must lie outside O(manifests_dir).
    type: path
    default: /etc/kubernetes/kubeops-etcd/held-manifests
  wait:
    description: Wait for each pod's container to stop or run before going on to the next name.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each pod.
    type: int
    default: 120
  crictl_path:
    description: Path of C(crictl); by default it is looked up in E(PATH), C(/usr/local/bin), C(/usr/bin) and C(/opt/bin).
    type: path
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.ACTIONGROUP_ETCD
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing moves and the module does not wait; it still checks every name and that C(crictl) is
        there when O(wait=true).
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - The kubelet notices a moved manifest through its file watch or, at the latest, at its next resync of the manifests
    directory (20 seconds by default); O(timeout) must allow for that.
seealso:
  - module: kubeops.etcd.etcd_manifest_datadir
  - module: kubeops.etcd.etcd_restore
'''

EXAMPLES = r'''
- name: Stop the API server, then etcd, and wait until both containers are gone
  kubeops.etcd.static_pod:
    names: [kube-apiserver, etcd]
    state: stopped

- name: Start etcd again and wait until its container runs
  kubeops.etcd.static_pod:
    names: [etcd]
    state: started
    timeout: 180

- name: Start the control plane without waiting (no crictl on this host)
  kubeops.etcd.static_pod:
    names: [kube-apiserver, kube-controller-manager, kube-scheduler]
    state: started
    wait: false
'''

RETURN = r'''
pods:
  description: One entry per name, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The static pod name.
      type: str
      sample: etcd
    manifest:
      description: Path of the manifest in O(manifests_dir).
      type: str
      sample: /etc/kubernetes/manifests/etcd.yaml
    held_path:
      description: Path of the manifest in O(holding_dir).
      type: str
      sample: /etc/kubernetes/kubeops-etcd/held-manifests/etcd.yaml
    state:
      description:
        - V(stopped) when the manifest is held, V(started) when it is in O(manifests_dir) (in check mode, where it would be).
        - On a failure, where the manifest is at that moment.
      type: str
      sample: stopped
    changed:
      description: Whether this pod's manifest was (in check mode, would be) moved.
      type: bool
    container_ids:
      description:
        - V(started) - IDs of the running containers of that name after the wait.
        - V(stopped) - IDs of the containers that were running just before the manifest moved or during the wait.
        - Empty when O(wait=false) and C(crictl) is not installed.
      type: list
      elements: str
      sample: [3f1c2a9b8e7d]
    waited_seconds:
      description: How long the module waited for this pod.
      type: float
      sample: 4.5
'''

import errno
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import make_private_dir, remove_if_exists
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner, find_tool

POLL_INTERVAL = 0.5
CRICTL_CALL_TIMEOUT = 15
LOG_TAIL_LINES = 20


def _inside(path, directory):
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip('/') + '/')


def plan(params):
    """Check every name before anything moves; return the per-pod plan."""
    names = params['names']
    if not names:
        raise EtcdModuleError('names is empty; give the static pods to %s, e.g. [etcd].'
                              % ('stop' if params['state'] == 'stopped' else 'start'))
    for name in names:
        if not name or '/' in name or name.startswith('.') or name != name.strip():
            raise EtcdModuleError('%r is not a static pod name (a manifest file name without .yaml).' % (name,))
    duplicates = sorted(set(n for n in names if names.count(n) > 1))
    if duplicates:
        raise EtcdModuleError('names lists %s more than once.' % ', '.join(duplicates))
    manifests_dir = params['manifests_dir']
    holding_dir = params['holding_dir']
    if _inside(holding_dir, manifests_dir):
        raise EtcdModuleError(
            'holding_dir %s is inside manifests_dir %s: the kubelet would keep running what is held there. '
            'Choose a directory outside it (default /etc/kubernetes/kubeops-etcd/held-manifests).'
            % (holding_dir, manifests_dir), holding_dir=holding_dir)
    pods = []
    problems = []
    for name in names:
        manifest = os.path.join(manifests_dir, name + '.yaml')
        held = os.path.join(holding_dir, name + '.yaml')
        in_manifests = os.path.lexists(manifest)
        in_holding = os.path.lexists(held)
        if in_manifests and in_holding:
            problems.append('%s is both in %s and held in %s; the kubelet runs the first. Compare them, keep the right '
                            'one in %s and remove or rename the other.' % (name + '.yaml', manifests_dir, holding_dir,
                                                                           manifests_dir))
        elif not in_manifests and not in_holding:
            problems.append('%s is neither in %s nor held in %s; is %s a static pod on this host?'
                            % (name + '.yaml', manifests_dir, holding_dir, name))
        if params['state'] == 'stopped':
            move = (manifest, held) if in_manifests else None
        else:
            move = (held, manifest) if in_holding else None
        current = 'stopped' if in_holding else 'started'
        pods.append({'name': name, 'manifest': manifest, 'held_path': held, 'state': current,
                     'changed': move is not None, 'container_ids': [],
                     'waited_seconds': 0.0, '_move': move})
    if problems:
        raise EtcdModuleError('Nothing was moved on %s: %s' % (node_name(), ' '.join(problems)))
    return pods


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_file(source, target):
    """Rename source to target; across filesystems copy, fsync, rename, then remove the source."""
    if os.path.lexists(target):
        raise EtcdModuleError('Cannot move %s to %s on %s: the target exists.' % (source, target, node_name()), path=target)
    try:
        os.rename(source, target)
        _fsync_dir(os.path.dirname(target))
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise EtcdModuleError('Cannot move %s to %s on %s: %s' % (source, target, node_name(), exc.strerror or exc),
                                  path=source)
    # A dot name: the kubelet ignores it while it is incomplete in the manifests dir.
    temp = os.path.join(os.path.dirname(target), '.%s.kubeops-tmp' % os.path.basename(target))
    try:
        shutil.copy2(source, temp)
        info = os.stat(source)
        os.chown(temp, info.st_uid, info.st_gid)
        with open(temp, 'rb') as handle:
            os.fsync(handle.fileno())
        os.rename(temp, target)
        _fsync_dir(os.path.dirname(target))
    except (IOError, OSError) as exc:
        remove_if_exists(temp)
        raise EtcdModuleError('Cannot copy %s to %s on %s: %s; the original is untouched.'
                              % (source, target, node_name(), exc.strerror or exc), path=source)
    try:
        os.unlink(source)
        _fsync_dir(os.path.dirname(source))
    except OSError as exc:
        raise EtcdModuleError('Copied %s to %s on %s but cannot remove the original: %s. Remove %s by hand.'
                              % (source, target, node_name(), exc.strerror or exc, source), path=source)


class Crictl(object):
    def __init__(self, runner, path):
        self.runner = runner
        self.path = path

    def running_ids(self, name):
        result = self.runner.run([self.path, 'ps', '--name', '^%s$' % name, '--state', 'running', '-q'],
                                 check_rc=False, timeout=CRICTL_CALL_TIMEOUT)
        if result.rc != 0:
            return None, (result.stderr or result.stdout).strip() or 'rc=%s' % result.rc
        return [line.strip() for line in result.stdout.splitlines() if line.strip()], None

    def diagnostics(self, name):
        """The last `crictl ps -a` lines for the container and the tail of its latest log, for the error message."""
        lines = []
        table = self.runner.run([self.path, 'ps', '-a', '--name', '^%s$' % name], check_rc=False,
                                timeout=CRICTL_CALL_TIMEOUT)
        rows = [line for line in (table.stdout or table.stderr).splitlines() if line.strip()]
        lines.append('`crictl ps -a --name ^%s$`:\n%s' % (name, '\n'.join(rows[:6]) or '(nothing)'))
        ids = self.runner.run([self.path, 'ps', '-a', '-q', '--name', '^%s$' % name], check_rc=False,
                              timeout=CRICTL_CALL_TIMEOUT)
        latest = [line.strip() for line in ids.stdout.splitlines() if line.strip()]
        if latest:
            logs = self.runner.run([self.path, 'logs', '--tail', str(LOG_TAIL_LINES), latest[0]], check_rc=False,
                                   timeout=CRICTL_CALL_TIMEOUT)
            text = '\n'.join(part for part in (logs.stdout.strip(), logs.stderr.strip()) if part)
            lines.append('last %d log lines of container %s:\n%s' % (LOG_TAIL_LINES, latest[0], text or '(empty)'))
        return '\n'.join(lines)


def wait_for(crictl, pod, timeout, clock=time.time, sleep=time.sleep):
    """Poll crictl until the pod's container is gone (stopped) or runs (started)."""
    want_running = pod['state'] == 'started'  # the manifest has just been put where the caller wants it
    started = clock()
    seen = list(pod['container_ids'])
    last_error = None
    while True:
        ids, error = crictl.running_ids(pod['name'])
        if ids is not None:
            last_error = None
            for container_id in ids:
                if container_id not in seen:
                    seen.append(container_id)
            if want_running and ids:
                pod['container_ids'] = ids
                break
            if not want_running and not ids:
                pod['container_ids'] = seen
                break
        else:
            last_error = error
        if clock() - started >= timeout:
            waited = clock() - started
            state = 'run' if want_running else 'stop'
            msg = ('Static pod %s on %s did not %s within %d seconds (manifest %s). '
                   % (pod['name'], node_name(), state, timeout,
                      pod['manifest'] if want_running else pod['held_path']))
            if last_error:
                msg += 'crictl failed: %s. ' % last_error
            elif not want_running:
                msg += 'Still running: %s. ' % ', '.join(ids)
            msg += crictl.diagnostics(pod['name'])
            raise EtcdModuleError(msg, pod=pod['name'], waited_seconds=round(waited, 1))
        sleep(POLL_INTERVAL)
    pod['waited_seconds'] = round(clock() - started, 1)


def public(pods):
    return [dict((k, v) for k, v in pod.items() if not k.startswith('_')) for pod in pods]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            names=dict(type='list', elements='str', required=True),
            state=dict(type='str', required=True, choices=['stopped', 'started']),
            manifests_dir=dict(type='path', default='/etc/kubernetes/manifests'),
            holding_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/held-manifests'),
            wait=dict(type='bool', default=True),
            timeout=dict(type='int', default=120),
            crictl_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    pods = []
    try:
        if params['timeout'] < 0:
            raise EtcdModuleError('timeout must be 0 or more seconds, got %d.' % params['timeout'])
        pods = plan(params)
        crictl = None
        crictl_path = find_tool(module, 'crictl', params['crictl_path'])
        if crictl_path:
            crictl = Crictl(Runner(module), crictl_path)
        elif params['wait']:
            raise EtcdModuleError(
                'crictl not found on %s, so the module cannot tell when the pods have %s. Install crictl (cri-tools) '
                'or set crictl_path; or set wait=false and check the containers yourself. Nothing was moved.'
                % (node_name(), params['state']))
        if not module.check_mode:
            # From here on `changed` reports what did happen, also when a later step fails.
            for pod in pods:
                pod['changed'] = False
        for pod in pods:
            if module.check_mode:
                pod['state'] = params['state']
                if crictl is not None:
                    pod['container_ids'] = crictl.running_ids(pod['name'])[0] or []
                continue
            if pod['_move']:
                if params['state'] == 'stopped':
                    make_private_dir(params['holding_dir'])
                    if crictl is not None:
                        # What is about to stop; a fast kubelet may remove it before the first poll.
                        pod['container_ids'] = crictl.running_ids(pod['name'])[0] or []
                move_file(*pod['_move'])
                pod['changed'] = True
                pod['state'] = params['state']
            if params['wait']:
                wait_for(crictl, pod, params['timeout'])
    except EtcdModuleError as exc:
        details = dict(exc.details)
        details.setdefault('pods', public(pods))
        details['changed'] = any(pod['changed'] for pod in pods) and not module.check_mode
        module.fail_json(msg=exc.msg, **details)
    module.exit_json(changed=any(pod['changed'] for pod in pods), pods=public(pods))


if __name__ == '__main__':
    main()
