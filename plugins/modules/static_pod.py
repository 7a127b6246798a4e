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
  - The files are renamed, never rewritten or deleted. When two directories are on different filesystems the file
    is copied under a dot name (which the kubelet ignores), flushed to disk and renamed into place, and only then is
    the source removed.
  - The pods of O(names) are handled together; with O(wait=true) the module moves every manifest of O(names), then
    waits until the container runtime (C(crictl)) shows every one of those containers gone (O(state=stopped)) or a new
    one running (O(state=started)). Only then does it do the same for the pods of O(then). So
    O(names=[kube-apiserver, kube-controller-manager, kube-scheduler]) with O(then=[etcd]) stops the API servers
    before etcd, in one task.
  - With O(sources) (only O(state=started)) a pod starts from a manifest prepared outside the manifests directory,
    for example an C(etcd.yaml) pointing at a restored data directory; the manifest held for it is kept in
    O(replaced_dir).
  - Before anything moves, every name, manifest and source is checked; a manifest found in both directories, or in
    neither, is an error.
author:
  - kubeops.etcd maintainers (@kubeops)
requirements:
  - C(crictl) on the managed node, unless O(wait=false).
options:
  names:
    description:
      - Static pod names; the manifest of V(etcd) is C(etcd.yaml). The container of that name is what the module waits for,
        as kubeadm names the container like the manifest.
      - They are handled together; their order only sets the order of the moves and of RV(pods).
    type: list
    elements: str
    required: true
  then:
    description:
      - Static pods handled after every pod of O(names) has reached O(state), in the same way (all moved, then all
        waited for).
      - A name may appear only once in O(names) and O(then) together.
      - Needs O(wait=true); without waiting nothing would tell when O(names) have reached O(state).
    type: list
    elements: str
    default: []
  then_after_closed:
    description:
      - Before the pods of O(then) are handled, wait until nothing accepts TCP connections any more on these URLs
        (C(scheme://host:port), for example the peer URLs of the other etcd members), within O(timeout).
      - Use case - stop etcd on the old leader only once its followers are gone; a leader stopped together with its
        followers spends seconds trying to hand its leadership over to one of them.
      - Needs O(then).
    type: list
    elements: str
    default: []
  delay:
    description:
      - Seconds to wait after every check and before the first move. Staggers the start of etcd members across nodes
        (for example V(0), V(0.3), V(0.6)) - with kubeadm's initial corruption check, a member that starts while a peer
        is itself starting waits up to 7 s for that peer's answer, while a peer that is still down or already serving
        answers at once.
    type: float
    default: 0
  state:
    description:
      - V(stopped) moves the manifests to O(holding_dir) and waits until no container of that name runs.
      - V(started) moves them back to O(manifests_dir) (or installs the file of O(sources)) and waits until a container
        of that name runs that did not run before the move.
    type: str
    choices: [stopped, started]
    required: true
  sources:
    description:
      - Only with O(state=started). Pod name (of O(names) or O(then)) to the path of a prepared manifest file outside
        O(manifests_dir). That file is moved (renamed, or copied atomically across filesystems; its mode is kept) to
        C(<manifests_dir>/<name>.yaml), and the manifest held for that pod in O(holding_dir), if any, is moved to
        O(replaced_dir) as C(<name>.yaml) (C(<name>.yaml.<UTC timestamp>) when that exists). Nothing is deleted.
      - When the held manifest has the same bytes as the source file, the held manifest is moved back as without
        O(sources) and the source file stays where it is.
      - Refused before anything moves - a source that does not exist, is not a regular file, is empty or lies in
        O(manifests_dir); a pod whose manifest is already in O(manifests_dir) (stop it first).
    type: dict
  replaced_dir:
    description:
      - Where the held manifests replaced by O(sources) are kept; created with mode C(0700). Required with O(sources).
      - It must lie outside O(manifests_dir) and differ from O(holding_dir).
    type: path
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
    description:
      - Wait for the containers of O(names) (then of O(then)) to stop or run.
      - With O(state=started) a pod whose manifest moved counts as running only with a container whose ID did not run
        before the move, so a container of the old manifest that is still shutting down is not taken for the new one.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the pods of O(names), and again for those of O(then).
    type: int
    default: 120
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.tools.CRICTL
  - kubeops.etcd.attributes.ACTIONGROUP_ETCD
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing moves and the module does not wait; it still checks every name, every source and that
        C(crictl) is there when O(wait=true).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Without O(sources), running the task again changes nothing.
      - With O(sources), a second run is refused, because the pod's manifest is then in O(manifests_dir) (stop it first)
        and the source file has moved.
notes:
  - The kubelet notices a moved manifest through its file watch or, at the latest, at its next resync of the manifests
    directory (20 seconds by default); O(timeout) must allow for that.
  - The container runtime is polled with one C(crictl ps --state running -o json) call for all pods being waited for.
  - One run at a time per node moves manifests - each takes an exclusive lock on C(.static_pod.lock) beside
    O(holding_dir) before it looks at them, and waits up to O(timeout) (at least 120 seconds) for another run. A
    module whose C(ansible-playbook) was interrupted keeps running on the node until it is done; a new run (an abort,
    a resume) then sees the manifests where that one left them. Not in check mode.
seealso:
  - module: kubeops.etcd.etcd_manifest_datadir
  - module: kubeops.etcd.etcd_restore
  - module: kubeops.etcd.apiserver_ready
'''

EXAMPLES = r'''
- name: Stop the API server, controller-manager and scheduler, and once they are gone, etcd
  kubeops.etcd.static_pod:
    names: [kube-apiserver, kube-controller-manager, kube-scheduler]
    then: [etcd]
    state: stopped

- name: On the etcd leader, stop etcd only once the other members no longer listen on their peer ports
  kubeops.etcd.static_pod:
    names: [kube-apiserver, kube-controller-manager, kube-scheduler]
    then: [etcd]
    then_after_closed: [https://10.0.0.12:2380, https://10.0.0.13:2380]
    state: stopped

- name: Start etcd from the manifest prepared for the restored data directory; keep the old one
  kubeops.etcd.static_pod:
    names: [etcd]
    state: started
    sources:
      etcd: /etc/kubernetes/kubeops-etcd/prepared/etcd.yaml
    replaced_dir: /etc/kubernetes/kubeops-etcd/replaced-manifests
    timeout: 180
  register: etcd_started

- name: Show where the manifest etcd ran from before
  ansible.builtin.debug:
    msg: "previous etcd manifest kept in {{ etcd_started.pods[0].replaced_path }}"

- name: Start the control plane without waiting (no crictl on this host)
  kubeops.etcd.static_pod:
    names: [kube-apiserver, kube-controller-manager, kube-scheduler]
    state: started
    wait: false
'''

RETURN = r'''
pods:
  description: One entry per name, those of O(names) then those of O(then), in the order given.
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
    source:
      description:
        - The file of O(sources) for this pod; V(null) when the pod has none.
        - When the held manifest had the same bytes, this file was not moved (RV(pods[].replaced_path) is V(null)).
      type: str
      sample: /etc/kubernetes/kubeops-etcd/prepared/etcd.yaml
    replaced_path:
      description:
        - Where the held manifest replaced by RV(pods[].source) was moved (in check mode, would be moved); V(null) when
          none was.
      type: str
      sample: /etc/kubernetes/kubeops-etcd/replaced-manifests/etcd.yaml
    container_ids:
      description:
        - V(started) - IDs of the containers of that name that started running after the move (when the manifest did
          not move, the running ones).
        - V(stopped) - IDs of the containers that were running just before the manifest moved or during the wait.
        - Empty when O(wait=false) and C(crictl) is not installed.
      type: list
      elements: str
      sample: [3f1c2a9b8e7d]
    waited_seconds:
      description: How long the wait of this pod's group took until this pod had reached O(state).
      type: float
      sample: 4.5
    moved_at:
      description:
        - When this pod's manifest was moved, in seconds since the epoch on the managed node's clock;
          V(null) when it did not move (and in check mode).
      type: float
      sample: 1795311300.412
    settled_at:
      description:
        - When the wait first saw this pod in O(state) (for V(stopped), the last time it went from running to gone),
          in seconds since the epoch on the managed node's clock; V(null) without a wait.
      type: float
      sample: 1795311302.87
'''

import errno
import fcntl
import os
import shutil
import socket
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.kubeops.etcd.plugins.module_utils.crictl import Crictl
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    free_path, make_private_dir, path_inside, remove_if_exists, same_content)
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner, find_tool

POLL_INTERVAL = 0.1
LOCK_NAME = '.static_pod.lock'
LOCK_POLL = 0.2
# A run waits for another one at least this long, whatever its own timeout (an orphaned stop waits up to its own).
LOCK_MIN_WAIT = 120
CONNECT_TIMEOUT = 0.5
GROUPS = ('names', 'then')


def _check_names(params):
    names = params['names']
    then = params['then'] or []
    if not names:
        raise EtcdModuleError('names is empty; give the static pods to %s, e.g. [etcd].'
                              % ('stop' if params['state'] == 'stopped' else 'start'))
    everything = names + then
    for name in everything:
        if not name or '/' in name or name.startswith('.') or name != name.strip():
            raise EtcdModuleError('%r is not a static pod name (a manifest file name without .yaml).' % (name,))
    duplicates = sorted(set(n for n in everything if everything.count(n) > 1))
    if duplicates:
        raise EtcdModuleError('names and then list %s more than once; give every pod once.' % ', '.join(duplicates))
    if then and not params['wait']:
        raise EtcdModuleError('then needs wait=true: without waiting nothing tells when the pods of names have %s, '
                              'so the pods of then could go first. Nothing was moved.' % params['state'])
    return [(name, 0) for name in names] + [(name, 1) for name in then]


def _check_dirs(params):
    manifests_dir = params['manifests_dir']
    holding_dir = params['holding_dir']
    if path_inside(holding_dir, manifests_dir):
        raise EtcdModuleError(
            'holding_dir %s is inside manifests_dir %s: the kubelet would keep running what is held there. '
            'Choose a directory outside it (default /etc/kubernetes/kubeops-etcd/held-manifests).'
            % (holding_dir, manifests_dir), holding_dir=holding_dir)
    sources = params['sources']
    if sources is None:
        return {}
    if params['state'] != 'started':
        raise EtcdModuleError('sources only applies to state=started (a pod starts from the prepared manifest); '
                              'leave it out to stop pods. Nothing was moved.')
    replaced_dir = params['replaced_dir']
    if path_inside(replaced_dir, manifests_dir):
        raise EtcdModuleError(
            'replaced_dir %s is inside manifests_dir %s: the kubelet would run the replaced manifests. Choose a '
            'directory outside it, e.g. /etc/kubernetes/kubeops-etcd/replaced-manifests.' % (replaced_dir, manifests_dir),
            replaced_dir=replaced_dir)
    if os.path.realpath(replaced_dir) == os.path.realpath(holding_dir):
        raise EtcdModuleError(
            'replaced_dir %s is holding_dir: a replaced manifest would be taken for a held one by the next start. '
            'Choose another directory, e.g. /etc/kubernetes/kubeops-etcd/replaced-manifests.' % replaced_dir,
            replaced_dir=replaced_dir)
    for name, path in sources.items():
        if not isinstance(path, str) or not path.startswith('/'):
            raise EtcdModuleError('sources[%s] must be the absolute path of a manifest file on %s, got %r.'
                                  % (name, node_name(), path))
    return dict((name, os.path.normpath(path)) for name, path in sources.items())


def _source_problem(name, source, manifests_dir, held):
    """Why the prepared manifest of a pod cannot be installed, or None."""
    try:
        info = os.lstat(source)
    except OSError as exc:
        return 'the source %s of %s cannot be used: %s.' % (source, name, exc.strerror or exc)
    if not stat.S_ISREG(info.st_mode):
        return 'the source %s of %s is not a regular file.' % (source, name)
    if info.st_size == 0:
        return 'the source %s of %s is empty.' % (source, name)
    if path_inside(source, manifests_dir):
        return ('the source %s of %s lies in %s, where the kubelet runs it already; prepare it outside that directory.'
                % (source, name, manifests_dir))
    if os.path.lexists(held) and os.path.samefile(source, held):
        return 'the source of %s is its held manifest %s; leave %s out of sources to start it.' % (name, held, name)
    return None


def plan(params):
    """Check every name and source before anything moves; return the per-pod plan."""
    pod_names = _check_names(params)
    sources = _check_dirs(params)
    unknown = sorted(set(sources) - set(name for name, dummy in pod_names))
    if unknown:
        raise EtcdModuleError('sources names %s, which is in neither names nor then. Nothing was moved.'
                              % ', '.join(unknown))
    manifests_dir = params['manifests_dir']
    holding_dir = params['holding_dir']
    pods = []
    problems = []
    for name, group in pod_names:
        manifest = os.path.join(manifests_dir, name + '.yaml')
        held = os.path.join(holding_dir, name + '.yaml')
        in_manifests = os.path.lexists(manifest)
        in_holding = os.path.lexists(held)
        source = sources.get(name)
        move = replace = replaced_path = None
        if in_manifests and in_holding:
            problems.append('%s is both in %s and held in %s; the kubelet runs the first. Compare them, keep the right '
                            'one in %s and remove or rename the other.' % (name + '.yaml', manifests_dir, holding_dir,
                                                                           manifests_dir))
        elif source is not None:
            problem = _source_problem(name, source, manifests_dir, held)
            if in_manifests:
                problems.append('%s is already in %s, so %s runs; stop it first (state=stopped), then start it from '
                                '%s.' % (name + '.yaml', manifests_dir, name, source))
            elif problem:
                problems.append(problem[0].upper() + problem[1:])
            elif in_holding and same_content(held, source):
                move = (held, manifest)
            else:
                move = (source, manifest)
                if in_holding:
                    replaced_path = free_path(params['replaced_dir'], name + '.yaml')
                    replace = (held, replaced_path)
        elif not in_manifests and not in_holding:
            problems.append('%s is neither in %s nor held in %s; is %s a static pod on this host?'
                            % (name + '.yaml', manifests_dir, holding_dir, name))
        elif params['state'] == 'stopped':
            move = (manifest, held) if in_manifests else None
        else:
            move = (held, manifest) if in_holding else None
        pods.append({'name': name, 'manifest': manifest, 'held_path': held,
                     'state': 'started' if in_manifests else 'stopped', 'changed': move is not None,
                     'source': source, 'replaced_path': replaced_path, 'container_ids': [], 'waited_seconds': 0.0,
                     'moved_at': None, 'settled_at': None, '_group': group, '_move': move, '_replace': replace})
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


def wait_for(crictl, pods, state, before, timeout, clock=time.time, sleep=time.sleep):
    """Poll crictl (one call for all pods) until every pod's container is gone (stopped), or until every pod runs a
    container (started) that was not running before its manifest moved (``before``: {name: [IDs]})."""
    want_running = state == 'started'
    names = [pod['name'] for pod in pods]
    started = clock()
    seen = dict((pod['name'], list(pod['container_ids'])) for pod in pods)
    current = dict((name, []) for name in names)
    last_error = None
    while True:
        running, error = crictl.running(names)
        now = clock()
        if running is None:
            last_error = error
        else:
            last_error = None
            current = running
            for pod in pods:
                ids = running[pod['name']]
                if want_running:
                    old = before.get(pod['name'], []) if pod['_moved'] else []
                    fresh = [container_id for container_id in ids if container_id not in old]
                    if pod['settled_at'] is None and fresh:
                        pod['container_ids'] = fresh
                        pod['settled_at'] = now
                else:
                    seen[pod['name']] += [container_id for container_id in ids if container_id not in seen[pod['name']]]
                    if ids:
                        pod['settled_at'] = None
                    elif pod['settled_at'] is None:
                        pod['settled_at'] = now
            if all(pod['settled_at'] is not None for pod in pods):
                break
        if now - started >= timeout:
            raise timeout_error(crictl, pods, want_running, timeout, last_error, current, round(now - started, 1))
        sleep(POLL_INTERVAL)
    for pod in pods:
        if not want_running:
            pod['container_ids'] = seen[pod['name']]
        pod['waited_seconds'] = round(pod['settled_at'] - started, 1)
        pod['settled_at'] = round(pod['settled_at'], 3)


def timeout_error(crictl, pods, want_running, timeout, last_error, current, waited):
    pending = [pod for pod in pods if pod['settled_at'] is None]
    sentences = []
    for pod in pending:
        sentences.append('Static pod %s on %s did not %s within %d seconds (manifest %s).'
                         % (pod['name'], node_name(), 'run' if want_running else 'stop', timeout,
                            pod['manifest'] if want_running else pod['held_path']))
        if not want_running and not last_error and current.get(pod['name']):
            sentences.append('Still running: %s.' % ', '.join(current[pod['name']]))
    if last_error:
        sentences.append('crictl failed: %s.' % last_error)
    diagnostics = [crictl.diagnostics(pod['name']) for pod in pending]
    return EtcdModuleError(' '.join(sentences) + '\n' + '\n'.join(diagnostics),
                           pod=pending[0]['name'], pending=[pod['name'] for pod in pending], waited_seconds=waited)


def public(pods):
    return [dict((k, v) for k, v in pod.items() if not k.startswith('_')) for pod in pods]


def running_now(crictl, names):
    """{name: [IDs]} of what runs, or {} without crictl (or when it fails: the wait reports crictl's error)."""
    if crictl is None:
        return {}
    return crictl.running(names)[0] or {}


def install_source(pod, params):
    """Keep the held manifest in replaced_dir, then move the prepared one into the manifests dir."""
    make_private_dir(params['replaced_dir'])
    move_file(*pod['_replace'])
    pod['replaced_path'] = pod['_replace'][1]
    pod['changed'] = True
    try:
        move_file(*pod['_move'])
    except EtcdModuleError as exc:
        raise EtcdModuleError('%s The manifest %s ran from before is now %s; %s is not running. Move that file back to '
                              '%s to run the old manifest, or fix the source and start it again.'
                              % (exc.msg, pod['name'], pod['replaced_path'], pod['name'], pod['held_path']),
                              exc.details)


def url_address(url):
    """(host, port) of scheme://host:port (IPv6 in brackets), or an EtcdModuleError."""
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or not port:
        raise EtcdModuleError('then_after_closed: %r is not a URL with a host and a port (e.g. https://10.0.0.12:2380). '
                              'Nothing was moved.' % url)
    return parsed.hostname, port


def accepts_connections(address):
    try:
        connection = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
    except (socket.error, OSError):
        return False
    connection.close()
    return True


def wait_closed(urls, timeout, clock=time.time, sleep=time.sleep):
    """Wait until none of the URLs accepts a TCP connection; fail after timeout, naming those still open."""
    addresses = [(url, url_address(url)) for url in urls]
    started = clock()
    while True:
        still_open = [url for url, address in addresses if accepts_connections(address)]
        if not still_open:
            return round(clock() - started, 3)
        if clock() - started >= timeout:
            verb = 'accepts' if len(still_open) == 1 else 'accept'
            raise EtcdModuleError('%s on %s still %s connections after %d seconds, so the pods of then were not '
                                  'touched.' % (', '.join(still_open), node_name(), verb, timeout),
                                  still_open=still_open)
        sleep(POLL_INTERVAL)


def lock_path(holding_dir):
    """One lock per node for every static_pod run that moves manifests: beside the holding dir, not in it."""
    return os.path.join(os.path.dirname(os.path.normpath(holding_dir)), LOCK_NAME)


def take_lock(holding_dir, wait, clock=time.time, sleep=time.sleep):
    """An exclusive flock on the node's static_pod lock, waiting up to `wait` seconds for another run to finish.
    The lock file holds the pid of the holder, for the message."""
    path = lock_path(holding_dir)
    make_private_dir(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = clock() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise EtcdModuleError('Cannot lock %s on %s: %s. Nothing was moved.'
                                      % (path, node_name(), exc.strerror or exc), path=path)
        if clock() >= deadline:
            holder = os.pread(fd, 32, 0).decode('ascii', 'replace').strip() or '?'
            os.close(fd)
            raise EtcdModuleError(
                'Another static_pod run on %s (pid %s, for example of a restore whose ansible-playbook was '
                'interrupted) has held %s for more than %d seconds: it may still be moving manifests. Wait for it '
                '(ps -p %s), then run again. Nothing was moved.' % (node_name(), holder, path, wait, holder),
                path=path, holder=holder)
        sleep(LOCK_POLL)
    os.ftruncate(fd, 0)
    os.pwrite(fd, ('%d\n' % os.getpid()).encode('ascii'), 0)
    return fd


def release_lock(fd):
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    os.close(fd)


def handle_group(module, crictl, pods, params):
    """Move every manifest of one group, then wait for all of them."""
    state = params['state']
    names = [pod['name'] for pod in pods]
    if module.check_mode:
        running = running_now(crictl, names)
        for pod in pods:
            pod['state'] = state
            pod['container_ids'] = running.get(pod['name'], [])
        return
    # What runs before the moves: what is about to stop, or what a started pod's new container must differ from.
    before = running_now(crictl, names)
    for pod in pods:
        pod['_moved'] = False
        if state == 'stopped':
            pod['container_ids'] = list(before.get(pod['name'], []))
        if not pod['_move']:
            continue
        if state == 'stopped':
            make_private_dir(params['holding_dir'])
        if pod['_replace']:
            install_source(pod, params)
        else:
            move_file(*pod['_move'])
        pod['moved_at'] = round(time.time(), 3)
        pod['changed'] = True
        pod['_moved'] = True
        pod['state'] = state
    if params['wait']:
        wait_for(crictl, pods, state, before, params['timeout'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            names=dict(type='list', elements='str', required=True),
            then=dict(type='list', elements='str', default=[]),
            then_after_closed=dict(type='list', elements='str', default=[]),
            delay=dict(type='float', default=0),
            state=dict(type='str', required=True, choices=['stopped', 'started']),
            sources=dict(type='dict'),
            replaced_dir=dict(type='path'),
            manifests_dir=dict(type='path', default='/etc/kubernetes/manifests'),
            holding_dir=dict(type='path', default='/etc/kubernetes/kubeops-etcd/held-manifests'),
            wait=dict(type='bool', default=True),
            timeout=dict(type='int', default=120),
            crictl_path=dict(type='path'),
        ),
        required_by={'sources': 'replaced_dir'},
        supports_check_mode=True,
    )
    params = module.params
    pods = []
    group = 0
    lock = None
    try:
        if params['timeout'] < 0:
            raise EtcdModuleError('timeout must be 0 or more seconds, got %d.' % params['timeout'])
        if not module.check_mode:
            # Before the plan reads where the manifests are: a run whose ansible-playbook was killed may still be
            # moving them here (its module outlives the SSH session); this one waits until that one is done.
            lock = take_lock(params['holding_dir'], max(params['timeout'], LOCK_MIN_WAIT))
        pods = plan(params)
        if params['then_after_closed']:
            if not params['then']:
                raise EtcdModuleError('then_after_closed needs then: it says when the pods of then may go. Nothing was '
                                      'moved.')
            for url in params['then_after_closed']:
                url_address(url)
        crictl = None
        crictl_path = find_tool(module, 'crictl', params['crictl_path'])
        if crictl_path:
            crictl = Crictl(Runner(module), crictl_path)
        elif params['wait']:
            raise EtcdModuleError(
                'crictl not found on %s, so the module cannot tell when the pods have %s. Install crictl (cri-tools) '
                'or set crictl_path; or set wait=false and check the containers yourself. Nothing was moved.'
                % (node_name(), params['state']))
        if params['delay'] < 0:
            raise EtcdModuleError('delay must be 0 or more seconds, got %s. Nothing was moved.' % params['delay'])
        if params['delay'] and not module.check_mode:
            time.sleep(params['delay'])
        if not module.check_mode:
            # From here on `changed` and `replaced_path` report what did happen, also when a later step fails.
            for pod in pods:
                pod['changed'] = False
                pod['replaced_path'] = None
        for group in range(len(GROUPS)):
            members = [pod for pod in pods if pod['_group'] == group]
            if members and group == 1 and params['then_after_closed'] and not module.check_mode:
                wait_closed(params['then_after_closed'], params['timeout'])
            if members:
                handle_group(module, crictl, members, params)
    except EtcdModuleError as exc:
        details = dict(exc.details)
        msg = exc.msg
        changed = any(pod['changed'] for pod in pods) and not module.check_mode
        untouched = [pod['name'] for pod in pods if pod['_group'] > group]
        if changed and untouched:
            msg += '\nThe pods of then (%s) were not touched.' % ', '.join(untouched)
        details.setdefault('pods', public(pods))
        details['changed'] = changed
        release_lock(lock)
        module.fail_json(msg=msg, **details)
    release_lock(lock)
    module.exit_json(changed=any(pod['changed'] for pod in pods), pods=public(pods))


if __name__ == '__main__':
    main()
