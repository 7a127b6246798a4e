#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_restore
short_description: Restore an etcd snapshot into a new data directory for one member
version_added: 0.1.0
description:
  - Runs C(snapshot restore) of C(etcdutl) (etcd 3.5 and newer) or, where there is no C(etcdutl), of C(etcdctl)
    (etcd 3.4 and 3.5) to build the data directory of one member of a new cluster from a snapshot.
  - Every member of the cluster must be restored from the same snapshot with the same O(initial_cluster) and
    O(initial_cluster_token), each with its own O(name) and O(initial_advertise_peer_urls).
  - The restore is written into a temporary sibling directory C(<data_dir>.kubeops-tmp-<timestamp>), checked
    (C(member/snap/db) and C(member/wal) exist, C(snapshot status) reads the database), given mode C(0700) and the owner of
    O(owner_from), and only then renamed to O(data_dir). A failed restore never sits at O(data_dir); the partial
    temporary directory this task created is removed.
  - O(data_dir) must not exist or be an empty directory. The module never deletes anything it did not create; a
    non-empty O(data_dir) that this module did not write is refused even with O(force=true).
  - A marker file C(<data_dir>/.kubeops-restore.json) (mode C(0600)) records the snapshot's SHA-256 and the parameters.
    Running the task again with the same snapshot and parameters changes nothing.
  - Member and cluster IDs are computed the way etcd computes them at bootstrap and returned, so they can be compared
    with C(etcdctl member list) once the cluster runs.
author:
  - kubeops.etcd maintainers (@kubeops)
requirements:
  - C(etcdutl) 3.5+ or C(etcdctl) 3.4/3.5 on the managed node; use the minor version of the cluster's etcd.
options:
  snapshot:
    description:
      - Snapshot file written by C(etcdctl snapshot save) (or M(kubeops.etcd.etcd_snapshot)) on the managed node.
      - Files ending in C(.part) are incomplete downloads and are refused.
    type: path
    required: true
  data_dir:
    description:
      - Absolute path of the new data directory. It must not exist or be an empty directory.
      - Pick a new path for every restore (for example with a timestamp) and point the etcd static pod at it
        with M(kubeops.etcd.etcd_manifest_datadir); the old data directory stays for a rollback.
    type: path
    required: true
  name:
    description: Member name (C(--name)); must be one of the names in O(initial_cluster).
    type: str
    required: true
  initial_cluster:
    description:
      - Every member of the restored cluster, C(name=https://ip:2380,name2=https://ip2:2380). The same string on every member.
    type: str
    required: true
  initial_cluster_token:
    description:
      - Cluster token; member and cluster IDs derive from it. Use a new token for every restore so the restored
        cluster cannot be mistaken for the old one (kubeadm never sets one, so the old cluster used V(etcd-cluster)).
    type: str
    required: true
  initial_advertise_peer_urls:
    description: Peer URLs of this member; must equal this member's URLs in O(initial_cluster).
    type: list
    elements: str
    required: true
  bump_revision:
    description:
      - Add this much to the revision of the restored keyspace (C(--bump-revision)). Requires O(mark_compacted=true).
      - etcd's recovery guide recommends V(1000000000) for Kubernetes, so that watchers relist instead of trusting
        caches whose revisions went backwards.
      - Needs C(etcdctl) 3.4.27+ or C(etcdctl)/C(etcdutl) 3.5.10+; the module fails naming the tool found when
        it lacks the flag.
    type: int
  mark_compacted:
    description:
      - Mark the restored revision compacted (C(--mark-compacted)), which ends every watch. Must be V(true) exactly when
        O(bump_revision) is set.
    type: bool
  expected_sha256:
    description:
      - SHA-256 (64 hex digits) the snapshot file must have, for example the one computed where the snapshot was checked
        before it was copied to this node. It is compared before anything is written; a different file fails the task
        and nothing is created.
    type: str
  skip_hash_check:
    description:
      - Restore a file without the SHA-256 that C(etcdctl snapshot save) appends, such as a copy of C(member/snap/db).
        Such a copy may miss writes still in the write-ahead log.
    type: bool
    default: false
  owner_from:
    description:
      - Give the restored directory the owner and group of this path (typically the old data directory, for example
        C(/var/lib/etcd), which is owned by C(kubeadm-etcd) in rootless control planes), and, where SELinux is enabled,
        its SELinux context, so the etcd container may use it.
      - When not set, an existing empty O(data_dir) keeps its owner and a new one belongs to the user the module runs as.
    type: path
  force:
    description:
      - When O(data_dir) holds a restore written by this module with a different snapshot or parameters (or one whose
        C(member/snap/db) or C(member/wal) has gone), rename it to C(<data_dir>.replaced-<timestamp>) and restore again.
        Without O(force) the module fails in that case.
    type: bool
    default: false
  etcdctl_path:
    description: Path of C(etcdctl); by default E(PATH), C(/usr/local/bin), C(/usr/bin) and C(/opt/bin) are searched.
    type: path
  etcdutl_path:
    description: Path of C(etcdutl); preferred over C(etcdctl) when present. Searched like O(etcdctl_path).
    type: path
  command_timeout:
    description: Seconds after which the restore command is stopped and the module fails.
    type: int
    default: 600
  manifest_path:
    description:
      - kubeadm static pod manifest of the etcd member on the node; with O(tools_source=container) it tells the
        data volume through which the container's tools read the snapshot and write the restore.
    type: path
    default: /etc/kubernetes/manifests/etcd.yaml
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.tools
  - kubeops.etcd.attributes.ACTIONGROUP_ETCD
attributes:
  check_mode:
    support: full
    details:
      - Check mode validates the parameters, the snapshot (SHA-256, O(expected_sha256) and C(snapshot status)), the tool,
        the target and the free space, and returns the IDs the restore would produce.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Identified by the marker file in O(data_dir).
notes:
  - etcd logs a warning about the unknown file C(.kubeops-restore.json) in its data directory; it is harmless.
  - If the module is killed during a restore (for example by an Ansible timeout), C(<data_dir>.kubeops-tmp-<timestamp>)
    stays behind; later runs use a new name and never touch it. Remove it by hand.
  - Before it restores, the module checks that the filesystem of O(data_dir) has room for the restored directory, by the
    collection's one free-space rule (the database with a margin, plus the 64 MiB write-ahead log file etcd
    preallocates), the rule the restore plan applies on every node.
seealso:
  - module: kubeops.etcd.etcd_snapshot
  - module: kubeops.etcd.etcd_manifest_datadir
  - module: kubeops.etcd.static_pod
  - name: etcd disaster recovery
    description: etcd's guide to restoring a cluster from a snapshot.
    link: https://etcd.io/docs/v3.5/op-guide/recovery/
'''

EXAMPLES = r'''
- name: Restore every control-plane member from the same snapshot, with a new token
  kubeops.etcd.etcd_restore:
    snapshot: /var/backups/etcd/etcd-20261122T013500Z.db
    # The SHA-256 found when the snapshot was checked, before it was copied to the nodes.
    expected_sha256: "{{ etcd_checked_snapshot.snapshot.sha256 }}"
    data_dir: /var/lib/etcd-restore-20261122T020000Z
    name: "{{ inventory_hostname }}"
    initial_cluster: cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380
    initial_cluster_token: kubeops-restore-20261122T020000Z
    initial_advertise_peer_urls:
      - "https://{{ ansible_host }}:2380"
    bump_revision: 1000000000
    mark_compacted: true
    owner_from: /var/lib/etcd
  register: etcd_restored

- name: Show the IDs the restored member and cluster will have
  ansible.builtin.debug:
    msg: "member {{ etcd_restored.member_id }} of cluster {{ etcd_restored.cluster_id }} at revision {{ etcd_restored.revision }}"
'''

RETURN = r'''
duration_seconds:
  description: Seconds the restore itself took (restore tool, checks, rename); V(0) when nothing was restored.
  returned: always
  type: float
  sample: 1.84
data_dir:
  description: The restored data directory.
  returned: always
  type: str
  sample: /var/lib/etcd-restore-20261122T020000Z
member_id:
  description: ID of this member in the restored cluster (lowercase hex, as C(etcdctl member list) prints it).
  returned: always
  type: str
  sample: 5937d5d1c71d7010
cluster_id:
  description: ID of the restored cluster (lowercase hex).
  returned: always
  type: str
  sample: 21988aa684bd5ef8
member_ids:
  description: IDs of every member of O(initial_cluster), by name (lowercase hex).
  returned: always
  type: dict
  sample: {cp1: 5937d5d1c71d7010, cp2: 8e9e05c52164694d}
revision:
  description:
    - Revision of the restored keyspace, read from the restored database; with O(bump_revision) it includes the bump.
    - In check mode, the revision the restore would have.
  returned: always
  type: int
  sample: 1000004567
snapshot_revision:
  description: Revision of the snapshot.
  returned: always
  type: int
  sample: 4567
snapshot_sha256:
  description: SHA-256 of the snapshot file.
  returned: always
  type: str
  sample: d234cd776218692c3bc12b3f94242d358c57f3a36783f5e54209279545c31ae5
snapshot_total_key:
  description:
    - Number of keys C(snapshot status) reports for the snapshot (its C(totalKey)). etcd 3.5 and 3.6 count differently;
      compare it only with a count from the same version.
  returned: always
  type: int
  sample: 1234
tool:
  description: The tool that restored (or restored earlier, when nothing changed), V(etcdutl) or V(etcdctl).
  returned: always
  type: str
  sample: etcdutl
tool_version:
  description: Version of the restore tool.
  returned: always
  type: str
  sample: 3.5.16
bump_revision:
  description: The revision bump applied, V(null) when none.
  returned: always
  type: int
  sample: 1000000000
mark_compacted:
  description: Whether the restored revision was marked compacted.
  returned: always
  type: bool
marker:
  description: Path of the marker file.
  returned: always
  type: str
  sample: /var/lib/etcd-restore-20261122T020000Z/.kubeops-restore.json
moved_aside:
  description: Where a previous, different restore in O(data_dir) was moved (O(force=true)); V(null) otherwise.
  returned: always
  type: str
  sample: /var/lib/etcd-restore-20261122T020000Z.replaced-20261122T021500Z
'''

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    TRAILING_HASH_SIZE, atomic_write, inspect_bolt_file, iso_utc, move_aside, snapshot_digests, timestamp)
from ansible_collections.kubeops.etcd.plugins.module_utils.identity import (
    bootstrap_identity, id_hex, normalize_peer_url, parse_initial_cluster)
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import parse_snapshot_status
from ansible_collections.kubeops.etcd.plugins.module_utils.containers import ContainerTools, move_tree, tools_argument_spec
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner, command_error
from ansible_collections.kubeops.etcd.plugins.module_utils.space import restored_dir_bytes

MARKER_NAME = '.kubeops-restore.json'
MARKER_FORMAT = 1
# The parameters that decide what a restore produces; the marker must match all of them for a no-op.
IDENTITY_KEYS = ('snapshot_sha256', 'name', 'initial_cluster', 'initial_cluster_token',
                 'initial_advertise_peer_urls', 'bump_revision', 'mark_compacted')
MIN_BUMP_VERSIONS = 'etcdctl 3.4.27+, etcdctl/etcdutl 3.5.10+ or etcdutl 3.6+'
SHA256_HEX_DIGITS = frozenset('0123456789abcdef')


def validate_params(params):
    """Check the parameters among themselves (no I/O); return the normalised inputs and the IDs."""
    data_dir = params['data_dir']
    if not data_dir.startswith('/'):
        raise EtcdModuleError('data_dir %s is a relative path; give an absolute path such as '
                              '/var/lib/etcd-restore-<timestamp>.' % data_dir, data_dir=data_dir)
    data_dir = os.path.normpath(data_dir)
    if data_dir == '/':
        raise EtcdModuleError('data_dir must not be /.', data_dir=data_dir)
    bump = params['bump_revision']
    compacted = params['mark_compacted']
    if bump is not None and bump <= 0:
        raise EtcdModuleError('bump_revision must be a positive number (etcd recommends 1000000000), got %d.' % bump)
    if (bump is not None) != bool(compacted):
        raise EtcdModuleError(
            'bump_revision and mark_compacted go together: set bump_revision (e.g. 1000000000) and mark_compacted=true, '
            'or neither (got bump_revision=%s, mark_compacted=%s). etcd 3.4 would silently ignore one without the other.'
            % (bump, compacted))
    if params['snapshot'].endswith('.part'):
        raise EtcdModuleError('%s is a .part file: etcdctl writes it while a snapshot is still being saved and renames it '
                              'when complete, so it is not a snapshot. Use the finished file.' % params['snapshot'],
                              path=params['snapshot'])
    try:
        members = parse_initial_cluster(params['initial_cluster'])
        ids = bootstrap_identity(params['initial_cluster'], params['initial_cluster_token'], params['name'],
                                 params['initial_advertise_peer_urls'])
        peer_urls = sorted(normalize_peer_url(url) for url in params['initial_advertise_peer_urls'])
    except ValueError as exc:
        raise EtcdModuleError('Invalid restore parameters for member %s on %s: %s.'
                              % (params['name'], node_name(), exc))
    if not params['initial_cluster_token']:
        raise EtcdModuleError('initial_cluster_token is empty; use a new token for every restore, e.g. '
                              'kubeops-restore-<timestamp>.')
    expected = params['expected_sha256']
    if expected is not None:
        expected = expected.strip().lower()
        if len(expected) != 64 or not set(expected) <= SHA256_HEX_DIGITS:
            raise EtcdModuleError('expected_sha256 %r is not a SHA-256 (64 hex digits).' % params['expected_sha256'])
    return {
        'expected_sha256': expected,
        'data_dir': data_dir,
        'inputs': {
            'name': params['name'],
            # Canonical form, so equivalent spellings compare equal in the marker.
            'initial_cluster': ','.join('%s=%s' % (name, url) for name, urls in members for url in urls),
            'initial_cluster_token': params['initial_cluster_token'],
            'initial_advertise_peer_urls': peer_urls,
            'bump_revision': bump,
            'mark_compacted': bool(compacted),
        },
        'member_id': ids['member_id'],
        'cluster_id': ids['cluster_id'],
        'member_ids': ids['member_ids'],
    }


def read_marker(data_dir):
    path = os.path.join(data_dir, MARKER_NAME)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, 'r') as handle:
            marker = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise EtcdModuleError('Cannot read restore marker %s on %s (%s); choose another data_dir.'
                              % (path, node_name(), exc), path=path)
    if not isinstance(marker, dict):
        raise EtcdModuleError('Restore marker %s on %s is not a JSON object; choose another data_dir.'
                              % (path, node_name()), path=path)
    return marker


def inspect_target(data_dir):
    """State of data_dir: 'missing', 'empty', ('restored', marker) or an error for anything else."""
    if not os.path.lexists(data_dir):
        parent = os.path.dirname(data_dir)
        if not os.path.isdir(parent):
            raise EtcdModuleError('The parent directory %s of data_dir does not exist on %s; create it first.'
                                  % (parent, node_name()), path=parent)
        return 'missing', None
    if os.path.islink(data_dir) or not os.path.isdir(data_dir):
        raise EtcdModuleError('data_dir %s on %s exists and is not a directory; choose another data_dir.'
                              % (data_dir, node_name()), path=data_dir)
    entries = os.listdir(data_dir)
    if not entries:
        return 'empty', None
    marker = read_marker(data_dir)
    if marker is None:
        raise EtcdModuleError(
            'data_dir %s on %s is not empty (%s) and was not written by etcd_restore; it may be a live etcd data '
            'directory. Nothing was changed: choose a new directory, e.g. %s-restore-<timestamp>.'
            % (data_dir, node_name(), ', '.join(sorted(entries)[:5]), data_dir.rstrip('/')), path=data_dir)
    return 'restored', marker


def restore_is_intact(data_dir):
    return all(os.path.exists(os.path.join(data_dir, part)) for part in ('member/snap/db', 'member/wal'))


def check_free_space(data_dir, snapshot_size):
    """The collection's one free-space rule (module_utils/space.py) applied to the filesystem of data_dir."""
    parent = os.path.dirname(data_dir)
    try:
        info = os.statvfs(parent)
    except OSError as exc:
        raise EtcdModuleError('Cannot check free space of %s on %s: %s' % (parent, node_name(), exc.strerror or exc),
                              path=parent)
    free = info.f_bavail * info.f_frsize
    needed = restored_dir_bytes(snapshot_size)
    if free < needed:
        raise EtcdModuleError(
            'Not enough space for the restore in %s on %s: %d MiB free, about %d MiB needed (snapshot plus the WAL). '
            'Free some space or choose a data_dir on another filesystem.'
            % (parent, node_name(), free // 2 ** 20, needed // 2 ** 20), free_bytes=free, needed_bytes=needed)


def marker_matches(marker, inputs, sha256):
    expected = dict(inputs, snapshot_sha256=sha256)
    return all(marker.get(key) == expected[key] for key in IDENTITY_KEYS)


def differences(marker, inputs, sha256):
    expected = dict(inputs, snapshot_sha256=sha256)
    return [key for key in IDENTITY_KEYS if marker.get(key) != expected[key]]


def check_expected_sha256(snapshot, digests, expected):
    if expected is not None and digests['sha256'] != expected:
        raise EtcdModuleError(
            '%s: %s has sha256 %s, expected %s (this is not the file that was checked before: it was truncated, changed '
            'or replaced since; nothing was written); copy it again.' % (node_name(), snapshot, digests['sha256'], expected),
            path=snapshot, sha256=digests['sha256'], expected_sha256=expected, size=digests['size'])


def snapshot_facts(runner, tools, snapshot, skip_hash_check, expected_sha256=None):
    """SHA-256, size and `snapshot status` of the snapshot file; refuses files that cannot be restored."""
    if not os.path.isfile(snapshot):
        raise EtcdModuleError('Snapshot %s does not exist on %s (or is not a regular file).' % (snapshot, node_name()),
                              path=snapshot)
    digests = snapshot_digests(snapshot)
    check_expected_sha256(snapshot, digests, expected_sha256)
    if not digests['has_trailing_hash'] and not skip_hash_check:
        raise EtcdModuleError(
            'Snapshot %s on %s (%d bytes) does not end with the SHA-256 that etcdctl snapshot save appends: it is '
            'truncated, damaged, or a copy of member/snap/db. Use a complete snapshot, or set skip_hash_check=true '
            'for a database copy (it may lack the last writes).' % (snapshot, node_name(), digests['size']),
            path=snapshot)
    # etcdutl/etcdctl crash with SIGBUS on a truncated database; say what is wrong instead.
    inspect_bolt_file(snapshot, digests['size'] - (TRAILING_HASH_SIZE if digests['has_trailing_hash'] else 0))
    status = database_status(runner, tools, snapshot, 'snapshot %s' % snapshot)
    return digests, status


def database_status(runner, tools, path, what):
    with runner.place.visible(path) as seen:
        result = runner.run([tools.status_path, 'snapshot', 'status', seen, '-w', 'json'], check_rc=False)
    if result.rc != 0:
        raise command_error(result, what='Reading %s with `%s snapshot status`' % (what, tools.status_tool),
                            fix='The file is not a readable etcd database.')
    return parse_snapshot_status(result.stdout)


def detect_tools(module, runner, bump):
    tools = EtcdTools.detect(module, runner, module.params['etcdctl_path'], module.params['etcdutl_path'])
    if not tools.restore_path:
        raise EtcdModuleError(
            'No snapshot restore tool on %s: need etcdutl 3.5+ or etcdctl before 3.6 (found etcdctl %s, etcdutl %s). '
            'Install etcdutl of the cluster\'s etcd minor version (Debian/Ubuntu: etcd-server) or set etcdutl_path.'
            % (node_name(), tools.etcdctl_version or 'none', tools.etcdutl_version or 'none'))
    if bump is not None and not tools.supports_bump_revision:
        raise EtcdModuleError(
            '%s %s on %s (%s) has no --bump-revision/--mark-compacted; they need %s. Install a newer %s or '
            'set %s_path to one, or restore without bump_revision/mark_compacted.'
            % (tools.restore_tool, tools.restore_tool_version, node_name(), tools.restore_path, MIN_BUMP_VERSIONS,
               tools.restore_tool, tools.restore_tool))
    return tools


def restore_argv(tools, snapshot, target, params, inputs):
    argv = [tools.restore_path, 'snapshot', 'restore', snapshot,
            '--data-dir=%s' % target,
            '--name=%s' % params['name'],
            '--initial-cluster=%s' % params['initial_cluster'],
            '--initial-cluster-token=%s' % params['initial_cluster_token'],
            '--initial-advertise-peer-urls=%s' % ','.join(params['initial_advertise_peer_urls'])]
    if params['skip_hash_check']:
        argv.append('--skip-hash-check')
    if inputs['bump_revision'] is not None:
        argv += ['--bump-revision=%d' % inputs['bump_revision'], '--mark-compacted']
    return argv


def walk_tree(path):
    yield path
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            yield os.path.join(root, name)


def chown_tree(path, uid, gid):
    for entry in walk_tree(path):
        os.lchown(entry, uid, gid)


def copy_selinux_context(module, source, path):
    """Give the restored tree the SELinux context of the old data dir (container_var_lib_t under kubeadm)."""
    if not module.selinux_enabled():
        return
    context = module.selinux_context(source)
    for entry in walk_tree(path):
        module.set_context_if_different(entry, context, False)


def owner_of(path, what):
    try:
        info = os.stat(path)
    except OSError as exc:
        raise EtcdModuleError('Cannot read the owner of %s %s on %s: %s' % (what, path, node_name(), exc.strerror or exc),
                              path=path)
    return info.st_uid, info.st_gid


def remove_own_temp(path):
    """Remove the temporary directory this task created (and only that)."""
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


def restore_into(runner, tools, params, plan, temp):
    """Run the restore tool into temp. The etcd container's tools write only into its data volume: there they
    restore into a scratch dir, which is then moved to temp."""
    what = 'Restoring %s with %s %s' % (params['snapshot'], tools.restore_tool, tools.restore_tool_version)
    fix = 'Nothing was written to %s.' % plan['data_dir']
    if not isinstance(runner.place, ContainerTools):
        result = runner.run(restore_argv(tools, params['snapshot'], temp, params, plan['inputs']), check_rc=False)
        if result.rc != 0:
            raise command_error(result, what=what, fix=fix)
        return result
    with runner.place.scratch('restore') as (host_dir, container_dir):
        with runner.place.visible(params['snapshot']) as seen:
            result = runner.run(restore_argv(tools, seen, os.path.join(container_dir, 'data'), params, plan['inputs']),
                                check_rc=False)
        if result.rc != 0:
            raise command_error(result, what=what, fix=fix)
        if os.path.isdir(os.path.join(host_dir, 'data')):
            move_tree(os.path.join(host_dir, 'data'), temp)
    return result


def run_restore(module, runner, tools, plan, params):
    """Restore into a temporary sibling, check it, then rename it to data_dir. Returns the restored revision."""
    data_dir = plan['data_dir']
    temp = '%s.kubeops-tmp-%s' % (data_dir, timestamp())
    if os.path.lexists(temp):
        raise EtcdModuleError('%s already exists on %s (another restore running?); wait a second and retry.'
                              % (temp, node_name()), path=temp)
    try:
        result = restore_into(runner, tools, params, plan, temp)
        for part in ('member/snap/db', 'member/wal'):
            if not os.path.exists(os.path.join(temp, part)):
                raise EtcdModuleError(
                    '%s %s reported success on %s but %s/%s is missing; the restore is unusable and was removed.'
                    % (tools.restore_tool, tools.restore_tool_version, node_name(), temp, part), **result.details())
        status = database_status(runner, tools, os.path.join(temp, 'member', 'snap', 'db'), 'the restored database')
        marker = dict(plan['inputs'])
        marker.update({
            'format': MARKER_FORMAT,
            'snapshot': params['snapshot'],
            'snapshot_sha256': plan['sha256'],
            'snapshot_revision': plan['snapshot_status']['revision'],
            'revision': status['revision'],
            'skip_hash_check': params['skip_hash_check'],
            'tool': tools.restore_tool,
            'tool_path': tools.restore_path,
            'tool_version': tools.restore_tool_version,
            'member_id': id_hex(plan['member_id']),
            'cluster_id': id_hex(plan['cluster_id']),
            'member_ids': dict((name, id_hex(value)) for name, value in plan['member_ids'].items()),
            'node': node_name(),
            'restored_at': iso_utc(),
        })
        if params['owner_from']:
            owner = owner_of(params['owner_from'], 'owner_from')
        elif plan['target_state'] == 'empty':
            owner = owner_of(data_dir, 'data_dir')
        else:
            owner = None
        atomic_write(module, os.path.join(temp, MARKER_NAME), json.dumps(marker, indent=2, sort_keys=True) + '\n', 0o600)
        if owner is not None:
            chown_tree(temp, owner[0], owner[1])
        if params['owner_from']:
            copy_selinux_context(module, params['owner_from'], temp)
        os.chmod(temp, 0o700)
        moved_aside = None
        if plan['target_state'] == 'restored':
            moved_aside = move_aside(data_dir, 'replaced-%s' % timestamp())
        try:
            # rename(2) replaces an empty directory atomically.
            os.rename(temp, data_dir)
        except OSError:
            if moved_aside:
                os.rename(moved_aside, data_dir)
            raise
        return marker, moved_aside
    except EtcdModuleError:
        remove_own_temp(temp)
        raise
    except (IOError, OSError) as exc:
        remove_own_temp(temp)
        raise EtcdModuleError('Restore into %s on %s failed: %s; the partial restore was removed and %s is unchanged.'
                              % (data_dir, node_name(), exc.strerror or exc, data_dir), path=data_dir)


def result_from_marker(plan, marker, changed, moved_aside=None, duration=0.0):
    return {
        'changed': changed,
        'duration_seconds': round(duration, 3),
        'data_dir': plan['data_dir'],
        'member_id': id_hex(plan['member_id']),
        'cluster_id': id_hex(plan['cluster_id']),
        'member_ids': dict((name, id_hex(value)) for name, value in plan['member_ids'].items()),
        'revision': marker.get('revision'),
        'snapshot_revision': marker.get('snapshot_revision'),
        'snapshot_sha256': plan['sha256'],
        'snapshot_total_key': plan['snapshot_status']['total_key'],
        'tool': marker.get('tool'),
        'tool_version': marker.get('tool_version'),
        'bump_revision': plan['inputs']['bump_revision'],
        'mark_compacted': plan['inputs']['mark_compacted'],
        'marker': os.path.join(plan['data_dir'], MARKER_NAME),
        'moved_aside': moved_aside,
    }


def main():
    argument_spec = tools_argument_spec()
    argument_spec.update(
        snapshot=dict(type='path', required=True),
        data_dir=dict(type='path', required=True),
        name=dict(type='str', required=True),
        initial_cluster=dict(type='str', required=True),
        initial_cluster_token=dict(type='str', required=True, no_log=False),
        initial_advertise_peer_urls=dict(type='list', elements='str', required=True),
        bump_revision=dict(type='int'),
        mark_compacted=dict(type='bool'),
        expected_sha256=dict(type='str'),
        skip_hash_check=dict(type='bool', default=False),
        owner_from=dict(type='path'),
        force=dict(type='bool', default=False),
        etcdctl_path=dict(type='path'),
        etcdutl_path=dict(type='path'),
        manifest_path=dict(type='path', default='/etc/kubernetes/manifests/etcd.yaml'),
        command_timeout=dict(type='int', default=600),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        # mark_compacted=false alone is fine, so the pair rule (one exactly when the other) is checked in
        # validate_params; required_by gives the standard message for the common omission.
        required_by={'bump_revision': 'mark_compacted'},
        supports_check_mode=True,
    )
    params = module.params
    try:
        plan = validate_params(params)
        runner = Runner(module)
        if params['owner_from']:
            owner_of(params['owner_from'], 'owner_from')
        plan['target_state'], marker = inspect_target(plan['data_dir'])
        tools = detect_tools(module, runner, plan['inputs']['bump_revision'])
        digests, snapshot_status = snapshot_facts(runner, tools, params['snapshot'], params['skip_hash_check'],
                                                  plan['expected_sha256'])
        plan['sha256'] = digests['sha256']
        plan['snapshot_status'] = snapshot_status
        if marker is not None:
            intact = restore_is_intact(plan['data_dir'])
            if intact and marker_matches(marker, plan['inputs'], plan['sha256']):
                module.exit_json(**result_from_marker(plan, marker, changed=False))
            if not params['force']:
                if not intact:
                    raise EtcdModuleError(
                        'data_dir %s on %s holds a restore marker but no member/snap/db or member/wal: it was changed '
                        'after the restore. Choose another data_dir or set force=true to move it aside.'
                        % (plan['data_dir'], node_name()), path=plan['data_dir'])
                raise EtcdModuleError(
                    'data_dir %s on %s already holds a restore of snapshot %s with different parameters (%s differ); '
                    'choose another data_dir or set force=true to move it aside.'
                    % (plan['data_dir'], node_name(), marker.get('snapshot_sha256'),
                       ', '.join(differences(marker, plan['inputs'], plan['sha256']))),
                    path=plan['data_dir'])
        check_free_space(plan['data_dir'], digests['size'])
        if module.check_mode:
            bump = plan['inputs']['bump_revision'] or 0
            would_be = {
                'revision': snapshot_status['revision'] + bump,
                'snapshot_revision': snapshot_status['revision'],
                'tool': tools.restore_tool,
                'tool_version': tools.restore_tool_version,
            }
            module.exit_json(**result_from_marker(plan, would_be, changed=True))
        started = time.time()
        marker, moved_aside = run_restore(module, runner, tools, plan, params)
        duration = time.time() - started
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result_from_marker(plan, marker, changed=True, moved_aside=moved_aside, duration=duration))


if __name__ == '__main__':
    main()
