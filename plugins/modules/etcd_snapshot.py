#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_snapshot
short_description: Take a verified etcd snapshot with metadata
version_added: 0.1.0
description:
  - Streams a snapshot of the etcd keyspace from one member with C(etcdctl snapshot save) into O(dest) on the
    managed node, verifies it, and writes a metadata file next to it.
  - One read of the cluster (C(member list), then C(endpoint status) and C(endpoint health) of every member at its own
    client URLs) both chooses the source and judges the cluster's health; RV(cluster) reports what it found.
  - The source is the current leader unless O(endpoint) or O(member_name) names another member; the leader is the
    member whose C(endpoint status) reports itself as leader.
  - An unhealthy cluster (a member unreachable, unhealthy or a learner, no leader or more than one) is refused unless
    O(force=true); the metadata records RV(cluster_healthy).
  - The snapshot is written to C(<dest>.part) and renamed to O(dest) only after it was verified, so O(dest) is
    always complete. No C(.part) file is left behind when anything fails (including a full disk or a timeout).
  - Verification reads the file back. The trailing SHA-256 that C(etcdctl) appends must match, the bbolt header must
    fit the file size, and C(snapshot status) (C(etcdutl), else C(etcdctl) before 3.6) must read it.
  - The snapshot file and the metadata file get mode C(0600); a missing parent directory is created with mode C(0700).
    A snapshot holds every Secret of the cluster, in clear text unless the API server encrypts Secrets at rest.
  - Once verified, the snapshot is read once more to count the Secrets it holds in clear text (values under
    C(/registry/secrets/) that do not start with C(k8s:enc:)); RV(secrets) and the metadata record the counts.
    A file that cannot be scanned is still a good snapshot; RV(secrets.error) says why, with a warning.
  - The metadata file C(<dest>.meta.json) records the file's SHA-256, size, revision, the cluster ID and members,
    the etcd version and where and when the snapshot was taken. M(kubeops.etcd.etcd_snapshot_info) checks a file
    against it.
  - Idempotent per O(dest). When O(dest) exists and its metadata matches its SHA-256, nothing happens. When
    O(dest) exists without matching metadata, the module fails unless O(force=true).
  - Warns when the source runs an etcd version with a known data-corruption bug (3.5.0 to 3.5.2) or one below the
    versions etcd calls production-ready (3.4.22, 3.5.6).
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  dest:
    description:
      - Where to write the snapshot on the managed node (an absolute path). Must not end with C(.part).
    type: path
    required: true
  endpoint:
    description:
      - Client URL of the member to take the snapshot from. C(etcdctl snapshot save) accepts exactly one.
      - When neither O(endpoint) nor O(member_name) is set, the current leader is used.
    type: str
  member_name:
    description:
      - Name of the member to take the snapshot from (as in C(etcdctl member list)); its first client URL is used.
    type: str
  force:
    description:
      - Go ahead where the module would otherwise refuse.
      - When O(dest) exists and has no matching metadata, move it (and its metadata file, if any) aside to
        C(<name>.<UTC timestamp>) and take a new snapshot. Nothing is deleted. The old file is only moved once the new
        snapshot has been verified.
      - When the cluster is not healthy, take the snapshot anyway from the chosen member (it must still answer);
        RV(cluster_healthy=false) is recorded in the metadata and RV(problems) says why.
      - When the member list cannot be read at all (a member without a quorum, since listing members needs a leader) and
        O(endpoint) is set, take the snapshot from that member alone, which serves it from its own state. The
        metadata then records no members, the cluster ID the member reports and C(cluster_healthy=false); RV(raft_index)
        says how far its log goes.
    type: bool
    default: false
  write_metadata:
    description:
      - Write C(<dest>.meta.json).
      - Without metadata a later run cannot tell that O(dest) is this module's complete snapshot, so it fails
        unless O(force=true).
    type: bool
    default: true
  topology:
    description:
      - Where the cluster runs, recorded in the metadata as C(topology) when set. V(stacked), on the control planes
        (kubeadm's default); V(external), on hosts of its own.
      - With V(external) the metadata also records RV(etcd_servers), and O(endpoints) must be set (the control
        planes' C(kube-apiserver.yaml) C(--etcd-servers); there is no etcd manifest to read them from), as must
        O(cacert), O(cert) and O(key) unless the kubeadm defaults fit (the API server's C(--etcd-cafile),
        C(--etcd-certfile) and C(--etcd-keyfile) reach it).
      - Unset, nothing is recorded.
    type: str
    choices: [stacked, external]
extends_documentation_fragment:
  - kubeops.etcd.connection
  - kubeops.etcd.tools
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.actiongroup_etcd
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reads the cluster, judges its health, chooses the source and reports what it would
        snapshot (RV(member_name), RV(endpoint), RV(dest), RV(cluster)), but writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A second run with the same O(dest) finds the verified snapshot and its metadata and changes nothing.
notes:
  - O(command_timeout) bounds C(snapshot save) too; raise it for large databases or slow links.
  - A snapshot alone cannot rebuild a lost control plane. Keep C(/etc/kubernetes/pki), the static pod manifests and
    the API server's encryption configuration and keys with it.
seealso:
  - module: kubeops.etcd.etcd_snapshot_info
  - module: kubeops.etcd.etcd_restore
  - module: kubeops.etcd.etcd_cluster_health
  - name: etcd disaster recovery guide
    description: Snapshot and restore of an etcd cluster.
    link: https://etcd.io/docs/v3.5/op-guide/recovery/
'''

EXAMPLES = r'''
- name: Take an etcd snapshot from the leader, endpoints and certificates from the kubeadm manifest
  kubeops.etcd.etcd_snapshot:
    dest: "/var/backups/etcd/etcd-{{ ansible_date_time.iso8601_basic_short }}.db"
  become: true
  register: etcd_backup

- name: Take the snapshot from a given member
  kubeops.etcd.etcd_snapshot:
    dest: /var/backups/etcd/etcd-cp2.db
    member_name: cp2
    endpoints:
      - https://10.0.0.11:2379
    cacert: /etc/kubernetes/pki/etcd/ca.crt
    cert: /etc/kubernetes/pki/apiserver-etcd-client.crt
    key: /etc/kubernetes/pki/apiserver-etcd-client.key

- name: Back up every member's view of the cluster from one control plane, refusing an unhealthy cluster
  kubeops.etcd.etcd_snapshot:
    dest: /var/backups/etcd/etcd.db
    endpoints:
      - https://10.0.0.11:2379
      - https://10.0.0.12:2379
      - https://10.0.0.13:2379
  register: etcd_snapshot_result

- name: Say which member the snapshot came from
  ansible.builtin.debug:
    msg: "{{ etcd_snapshot_result.member_name }} (leader {{ etcd_snapshot_result.cluster.leader_name }})"

- name: Replace yesterday's snapshot of the same name (the old one is moved aside, not deleted)
  kubeops.etcd.etcd_snapshot:
    dest: /var/backups/etcd/etcd-daily.db
    force: true
'''

RETURN = r'''
dest:
  description: The snapshot file.
  returned: always
  type: str
  sample: /var/backups/etcd/etcd-snapshot.db
metadata_path:
  description: The metadata file (written only when O(write_metadata=true)).
  returned: always
  type: str
  sample: /var/backups/etcd/etcd-snapshot.db.meta.json
topology:
  description: O(topology), as recorded in the metadata.
  returned: when O(topology) is set
  type: str
  sample: external
etcd_servers:
  description: The endpoints the snapshot was taken through (O(endpoints)), as recorded in the metadata.
  returned: when O(topology=external)
  type: list
  elements: str
  sample: ["https://10.0.0.21:2379", "https://10.0.0.22:2379", "https://10.0.0.23:2379"]
format:
  description: Version of the metadata layout.
  returned: success and not check mode
  type: int
  sample: 1
file:
  description: File name of the snapshot (without directory), as recorded in the metadata.
  returned: success and not check mode
  type: str
  sample: etcd-snapshot.db
sha256:
  description: SHA-256 of the snapshot file.
  returned: success and not check mode
  type: str
  sample: 1041d7d203aa1f2c20344e06fcac1ac2937fe148d46f6b34f6a69c74d1f3546c
size:
  description: Size of the snapshot file in bytes.
  returned: success and not check mode
  type: int
  sample: 20512
revision:
  description: Store revision in the snapshot (from C(snapshot status)); in check mode, the cluster's current revision.
  returned: success
  type: int
  sample: 51
hash:
  description: etcd's hash of the contents from C(snapshot status) (CRC-32C, not the SHA-256).
  returned: success and not check mode
  type: int
  sample: 163607653
total_key:
  description: Number of keys from C(snapshot status) (counted differently by 3.5 and 3.6 tools).
  returned: success and not check mode
  type: int
  sample: 58
etcd_version:
  description: etcd server version of the source member.
  returned: success
  type: str
  sample: 3.5.16
storage_version:
  description: Storage version of the snapshot when the tools report it (etcd 3.6+), else V(null).
  returned: success
  type: str
  sample: null
cluster_id:
  description: Cluster ID (hex, as etcdctl prints it).
  returned: success
  type: str
  sample: d0d8b5b2b8a4a06e
members:
  description: Members of the cluster when the snapshot was taken.
  returned: success
  type: list
  elements: dict
  sample: [{"id": "983d3a5b1b3bd8ab", "name": "cp1", "peer_urls": ["https://10.0.0.11:2380"],
            "client_urls": ["https://10.0.0.11:2379"], "is_learner": false}]
endpoint:
  description: Client URL the snapshot was streamed from.
  returned: success
  type: str
  sample: https://10.0.0.11:2379
member_name:
  description: Name of the source member.
  returned: success
  type: str
  sample: cp1
duration_seconds:
  description: How long C(etcdctl snapshot save) took.
  returned: success and not check mode
  type: float
  sample: 0.84
node:
  description: Host name of the managed node that holds the file.
  returned: success
  type: str
  sample: cp1
created:
  description: When the snapshot was taken (UTC, ISO 8601).
  returned: success and not check mode
  type: str
  sample: "2026-11-22T01:35:00Z"
cluster_healthy:
  description: Whether every member was healthy with exactly one leader when the snapshot was taken.
  returned: success
  type: bool
  sample: true
secrets:
  description:
    - The Kubernetes Secrets in the snapshot (current revision of each key under C(/registry/secrets/)), as recorded
      in the metadata. Only RV(secrets.error) when the file could not be scanned.
    - Not returned for a snapshot whose metadata was written before this count existed.
    - Encryption at rest (the API server's C(--encryption-provider-config)) turns plaintext Secrets into encrypted ones
      once they are rewritten.
  returned: success and not check mode
  type: dict
  contains:
    secrets_total:
      description: Number of Secrets.
      type: int
      sample: 42
    secrets_plaintext:
      description: Secrets stored in clear text (their value does not start with C(k8s:enc:)).
      type: int
      sample: 40
    secrets_encrypted:
      description: Secrets encrypted at rest by the API server.
      type: int
      sample: 2
    encryption_providers:
      description: Providers of the encrypted Secrets (C(k8s:enc:aescbc:v1:key1:...) is V(aescbc)), sorted.
      type: list
      elements: str
      sample: [aescbc]
    error:
      description: Why the Secrets could not be counted (then no count is returned).
      type: str
      sample: "/var/backups/etcd/etcd.db is damaged: page 7 is marked as page 0"
has_trailing_hash:
  description: Whether the file ends with the SHA-256 etcdctl appends (always V(true) for a verified new snapshot).
  returned: success and not check mode
  type: bool
  sample: true
moved_aside:
  description:
    - Where earlier files went when O(force=true) replaced them (would go, in check mode).
    - Also lists a metadata file left without its snapshot, which is moved aside rather than overwritten.
  returned: success
  type: list
  elements: str
  sample: ["/var/backups/etcd/etcd-daily.db.20261122T013500Z"]
problems:
  description: Cluster problems seen while choosing the source (non-empty only with O(force=true)).
  returned: success
  type: list
  elements: str
  sample: []
raft_index:
  description: The raft index of the member the snapshot came from, when it was taken from a member alone (no
    member list could be read; see O(force)).
  returned: when the snapshot was taken from a member alone
  type: int
  sample: 4711
cluster:
  description:
    - The cluster as the module read it, in the shape M(kubeops.etcd.etcd_cluster_health) returns it.
    - Not returned when O(dest) already holds this module's verified snapshot (the cluster is not read then).
    - Also returned, with the error, when an unhealthy cluster is refused.
  returned: when the cluster was read
  type: dict
  contains:
    cluster_id:
      description: Cluster ID (hex).
      type: str
      sample: d0d8b5b2b8a4a06e
    healthy:
      description: Every member healthy and exactly one leader.
      type: bool
      sample: true
    problems:
      description: What makes the cluster unhealthy.
      type: list
      elements: str
      sample: []
    leader:
      description: Member ID of the leader (hex), V(null) when there is none.
      type: str
      sample: 983d3a5b1b3bd8ab
    leader_name:
      description: Name of the leader, V(null) when there is none.
      type: str
      sample: cp1
    leader_client_url:
      description: Client URL at which the leader answered.
      type: str
      sample: https://10.0.0.11:2379
    members:
      description: Members (id, name, peer_urls, client_urls, is_learner).
      type: list
      elements: dict
    endpoints:
      description: Status and health of every member's client URL.
      type: list
      elements: dict
    revision:
      description: Highest store revision reported.
      type: int
      sample: 51
'''

import json
import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.connection import (
    connection_argument_spec,
    load_manifest,
    needs_manifest,
    lone_member_statuses,
    query_cluster,
    resolve_connection,
    unreachable_cluster,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.containers import ContainerTools, move_file
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    TRAILING_HASH_SIZE,
    atomic_write,
    iso_utc,
    make_private_dir,
    move_aside,
    remove_if_exists,
    sha256_file,
    timestamp,
    verify_snapshot_file,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import (
    member_id_hex,
    parse_endpoint_status,
    version_warnings,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner, command_error
from ansible_collections.kubeops.etcd.plugins.module_utils.secrets_scan import secrets_summary

METADATA_FORMAT = 1


def read_metadata(path):
    """Metadata dict, or None when missing or unreadable (then it cannot vouch for dest)."""
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def existing_snapshot(dest, metadata_path):
    """(metadata, None) when dest is a snapshot this module finished, else (None, reason)."""
    metadata = read_metadata(metadata_path)
    if metadata is None:
        if os.path.exists(metadata_path):
            return None, 'its metadata %s is not readable JSON' % metadata_path
        return None, 'it has no metadata file %s' % metadata_path
    size = os.path.getsize(dest)
    if metadata.get('size') != size:
        return None, 'its size %d differs from the %s bytes in %s' % (size, metadata.get('size'), metadata_path)
    digest = sha256_file(dest)
    if metadata.get('sha256') != digest:
        return None, 'its SHA-256 %s differs from %s in %s' % (digest, metadata.get('sha256'), metadata_path)
    return metadata, None


def choose_source(module, cluster, raw, conn, runner, etcdctl):
    """(endpoint, member_name, etcd_version, storage_version) of the member to snapshot."""
    members = raw['member_list']['members']
    statuses = raw['statuses']
    endpoint = module.params['endpoint']
    member_name = module.params['member_name']

    if member_name:
        matches = [member for member in members if member['name'] == member_name]
        if not matches:
            raise EtcdModuleError(
                'No etcd member named %s (members: %s); check member_name.'
                % (member_name, ', '.join(sorted(member['name'] or member_id_hex(member['id']) for member in members))),
                cluster=cluster)
        urls = matches[0]['client_urls']
        if not urls:
            raise EtcdModuleError('etcd member %s has no client URL: it has not started.' % member_name, cluster=cluster)
        # The member's first client URL that answered the status read (it may advertise more than one).
        answered = [status['endpoint'] for status in statuses if status['endpoint'] in urls]
        endpoint = answered[0] if answered else urls[0]
    elif not endpoint:
        if not cluster['leader_client_url']:
            raise EtcdModuleError(
                'Cannot choose the etcd leader to snapshot from %s: %s. Set endpoint or member_name to take the '
                'snapshot from a given member.' % (node_name(), '; '.join(cluster['problems'])), cluster=cluster)
        endpoint = cluster['leader_client_url']

    status = [entry for entry in statuses if entry['endpoint'] == endpoint]
    if not status:
        # An endpoint spelled differently from the member list (a load balancer, 127.0.0.1): ask it directly.
        result = runner.run([etcdctl] + conn.args([endpoint]) + ['endpoint', 'status', '-w', 'json'], check_rc=False)
        status = parse_endpoint_status(result.stdout) if result.rc == 0 else []
        if not status:
            raise command_error(
                result, what='Reading the status of etcd at %s' % endpoint,
                fix='Check that the endpoint is right and that etcd runs there.')
    status = status[0]
    names = dict((member['id'], member['name']) for member in members)
    if not member_name:
        member_name = names.get(status['member_id'], '')
    return endpoint, member_name, status['version'], status['storage_version']


def lone_member_source(error, runner, etcdctl, conn, params):
    """(cluster, source) for a member that answers on its own while the member list cannot be read (it has no
    quorum: listing members needs a leader). Its snapshot is served from its own state, without a leader."""
    statuses = lone_member_statuses(runner, etcdctl, conn, [params['endpoint']])
    if not statuses:
        raise error
    status = statuses[0]
    cluster = unreachable_cluster(error.msg, statuses)
    cluster.update(cluster_id=status['cluster_id'], revision=status['revision'])
    cluster['problems'].append('taking the snapshot from %s alone (%s), as force and endpoint ask'
                               % (params['endpoint'], status['error']))
    return cluster, (params['endpoint'], params['member_name'] or '', status['version'], status['storage_version'])


def refuse_unhealthy(cluster, endpoints):
    """EtcdModuleError for an unhealthy cluster, carrying what was read."""
    return EtcdModuleError(
        'The etcd cluster is not healthy (read from %s through %s): %s. Fix the cluster first, or set force: true to '
        'take the snapshot anyway (its metadata then records cluster_healthy: false).'
        % (node_name(), ','.join(endpoints), '; '.join(cluster['problems'])),
        cluster=cluster, cluster_healthy=False, problems=cluster['problems'])


def save(runner, etcdctl, conn, endpoint, path, path_for_tool, timeout):
    """etcdctl snapshot save into path (named path_for_tool where etcdctl runs)."""
    result = runner.run([etcdctl] + conn.args([endpoint]) + ['snapshot', 'save', path_for_tool],
                        check_rc=False, timeout=timeout)
    if result.rc != 0:
        fix = 'Check that etcd runs at %s and that cacert/cert/key are right.' % endpoint
        if 'no space left' in (result.stderr + result.stdout).lower():
            fix = 'Free space on the filesystem of %s or choose another dest.' % os.path.dirname(path)
        raise command_error(result, what='etcdctl snapshot save from %s into %s' % (endpoint, path), fix=fix)
    if not os.path.isfile(path):
        raise EtcdModuleError('etcdctl snapshot save reported success on %s but %s does not exist.'
                              % (node_name(), path), **result.details())


def take_snapshot(runner, etcdctl, conn, endpoint, part, timeout):
    """Stream the snapshot into part; remove what etcdctl left behind on any failure.

    etcdctl itself writes ``<file>.part`` and renames it to ``<file>``, so it
    leaves ``<part>.part`` when killed. Both names were checked to be absent
    before, so whatever exists under them now is ours to remove.
    """
    leftovers = [part, part + '.part']
    started = time.time()
    try:
        if isinstance(runner.place, ContainerTools):
            # etcdctl in the container writes only into its volumes: save there, then move the file out.
            with runner.place.scratch('snapshot') as (host_dir, container_dir):
                save(runner, etcdctl, conn, endpoint, os.path.join(host_dir, 'snapshot.db'),
                     os.path.join(container_dir, 'snapshot.db'), timeout)
                move_file(os.path.join(host_dir, 'snapshot.db'), part)
        else:
            save(runner, etcdctl, conn, endpoint, part, part, timeout)
    except BaseException:
        for leftover in leftovers:
            remove_if_exists(leftover)
        raise
    return time.time() - started


def run_module(module, result):
    params = module.params
    dest = params['dest']
    metadata_path = dest + '.meta.json'
    part = dest + '.part'
    result.update(dest=dest, metadata_path=metadata_path, moved_aside=[], problems=[])

    if not os.path.isabs(dest):
        raise EtcdModuleError('dest %s is not an absolute path; give the full path of the snapshot file.' % dest)
    if dest.endswith('.part'):
        raise EtcdModuleError('dest %s ends with .part, the suffix of unfinished snapshots; choose another name.' % dest)
    if os.path.isdir(dest):
        raise EtcdModuleError('dest %s on %s is a directory; give the path of the snapshot file.' % (dest, node_name()))

    to_move_aside = []
    if os.path.exists(dest):
        metadata, reason = existing_snapshot(dest, metadata_path)
        if metadata is not None:
            result.update(metadata)
            result.update(dest=dest, metadata_path=metadata_path)
            return False
        if not params['force']:
            raise EtcdModuleError(
                '%s already exists on %s and is not a verified snapshot of this module: %s. Set force: true to move it '
                'aside (nothing is deleted) and take a new one, or choose another dest.' % (dest, node_name(), reason),
                dest=dest)
        to_move_aside = [path for path in (dest, metadata_path) if os.path.exists(path)]
    elif os.path.exists(metadata_path):
        # Metadata whose snapshot is gone describes nothing; keep it, but out of the way.
        to_move_aside = [metadata_path]
    for leftover in (part, part + '.part'):
        if os.path.lexists(leftover):
            raise EtcdModuleError(
                '%s exists on %s: an earlier snapshot into %s did not finish, or one is running now. It is not a '
                'snapshot; remove it once no backup is running, then retry.' % (leftover, node_name(), dest),
                dest=dest)

    if params['topology'] == 'external' and needs_manifest(module):
        raise EtcdModuleError(
            'topology is external but no endpoints are set on %s: set endpoints to the etcd client URLs (the '
            'control planes\' kube-apiserver.yaml --etcd-servers).' % node_name())
    runner = Runner(module)
    tools = EtcdTools.detect(module, runner, params['etcdctl_path'], params['etcdutl_path'], probe_restore_help=False)
    etcdctl = tools.require_etcdctl('take a snapshot')
    tools.require_status_tool()
    conn = resolve_connection(module, load_manifest(module) if needs_manifest(module) else None)

    # One read decides both: is the cluster fit to back up, and which member to stream from.
    try:
        cluster, raw = query_cluster(runner, etcdctl, conn)
    except EtcdModuleError as exc:
        if not (params['force'] and params['endpoint']):
            raise
        cluster, source = lone_member_source(exc, runner, etcdctl, conn, params)
    else:
        source = None
    result['cluster'] = cluster
    if not cluster['healthy'] and not params['force']:
        raise refuse_unhealthy(cluster, conn.endpoints)
    if source is None:
        source = choose_source(module, cluster, raw, conn, runner, etcdctl)
    else:
        result['raft_index'] = cluster['endpoints'][0]['raft_index']
    endpoint, member_name, etcd_version, storage_version = source
    for warning in version_warnings(etcd_version):
        module.warn(warning)
    suffix = timestamp()
    result.update(
        endpoint=endpoint, member_name=member_name, etcd_version=etcd_version, storage_version=storage_version,
        cluster_id=cluster['cluster_id'], members=cluster['members'], cluster_healthy=cluster['healthy'],
        problems=cluster['problems'], node=node_name(), revision=cluster['revision'],
        moved_aside=['%s.%s' % (path, suffix) for path in to_move_aside])
    where = {}
    if params['topology']:
        where['topology'] = params['topology']
    if params['topology'] == 'external':
        where['etcd_servers'] = list(conn.endpoints)
    result.update(where)
    if module.check_mode:
        return True

    make_private_dir(os.path.dirname(dest))
    duration = take_snapshot(runner, etcdctl, conn, endpoint, part, params['command_timeout'])
    written_metadata = False
    try:
        os.chmod(part, 0o600)
        facts = verify_snapshot_file(runner, tools, part)
        if not facts['has_trailing_hash']:
            raise EtcdModuleError(
                'The snapshot streamed from %s into %s on %s has no valid trailing SHA-256: the stream was incomplete. '
                'Retry; if it persists, check the etcd member.' % (endpoint, part, node_name()))
        secrets = secrets_summary(part, facts['size'] - TRAILING_HASH_SIZE)
        if 'error' in secrets:
            # The reason outlives the .part name: say it of dest, where the file will be.
            secrets['error'] = secrets['error'].replace(part, dest)
            module.warn('Could not count the Secrets in the snapshot %s on %s: %s. The snapshot itself is verified '
                        'and kept.' % (dest, node_name(), secrets['error']))
        metadata = {
            'format': METADATA_FORMAT,
            'file': os.path.basename(dest),
            'sha256': facts['sha256'],
            'size': facts['size'],
            'revision': facts['status']['revision'],
            'hash': facts['status']['hash'],
            'total_key': facts['status']['total_key'],
            'etcd_version': etcd_version,
            'storage_version': facts['status']['version'] or storage_version,
            'cluster_id': cluster['cluster_id'],
            'members': cluster['members'],
            'endpoint': endpoint,
            'member_name': member_name,
            'duration_seconds': round(duration, 3),
            'node': node_name(),
            'created': iso_utc(),
            'cluster_healthy': cluster['healthy'],
            'secrets': secrets,
        }
        metadata.update(where)
        # The old files move only now that the new snapshot is known to be good.
        result['moved_aside'] = [move_aside(path, suffix) for path in to_move_aside]
        if params['write_metadata']:
            atomic_write(module, metadata_path, json.dumps(metadata, indent=2, sort_keys=True) + '\n', 0o600)
            written_metadata = True
        os.rename(part, dest)
    except BaseException:
        remove_if_exists(part)
        if written_metadata:
            remove_if_exists(metadata_path)
        raise
    result.update(metadata)
    result['has_trailing_hash'] = facts['has_trailing_hash']
    return True


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        dest=dict(type='path', required=True),
        endpoint=dict(type='str'),
        member_name=dict(type='str'),
        force=dict(type='bool', default=False),
        write_metadata=dict(type='bool', default=True),
        topology=dict(type='str', choices=['stacked', 'external']),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('endpoint', 'member_name')],
        supports_check_mode=True,
    )
    result = {}
    try:
        changed = run_module(module, result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
