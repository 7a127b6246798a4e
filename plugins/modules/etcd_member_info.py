#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_member_info
short_description: Describe the local etcd member of a kubeadm control plane
version_added: 0.1.0
description:
  - Reads the kubeadm static pod manifest of etcd on the managed node and reports the member's name, URLs,
    certificate paths, image and where its data directory lives on the host (through the C(hostPath) volume that
    holds C(--data-dir)).
  - Reports the data directory's owner, mode and size, and the free space of the filesystem that holds it, which a
    restore next to it needs.
  - Reports which C(etcdctl) and C(etcdutl) are installed, which of them can restore snapshots and whether it
    supports C(--bump-revision).
  - Reads the kube-apiserver static pod manifest next to it (O(apiserver_manifest_path)) for what a backup or restore
    needs from the API server (advertise address, secure port, encryption provider configuration, etcd client
    settings). A node without that file (an external etcd host) reports RV(apiserver.present=false).
  - Reports the filesystem and free space of each path in O(free_space_paths).
  - Decides from the inventory whether etcd is stacked or external (RV(topology)). A non-empty O(etcd_group_hosts)
    means etcd runs on hosts of its own. Then this control plane has no etcd manifest, so RV(member), RV(data_dir_stat),
    RV(free_bytes) and RV(data_dir_free_space) are V(null), the API server manifest must exist (its
    C(--etcd-servers) and C(--etcd-cafile/--etcd-certfile/--etcd-keyfile) reach the cluster) and O(live=true) queries
    the cluster through them unless O(endpoints) is set.
  - On an etcd host of external etcd run by systemd (O(units) set and no O(manifest_path) there), reads the member
    from its systemd unit instead, as M(kubeops.etcd.etcd_unit_info) does (the unit, its drop-ins, environment files
    and config file); RV(member.kind) is then V(systemd) and the version is what the unit's etcd binary says
    (C(etcd --version)). Several etcd units on the host are told apart by O(etcd_servers).
  - With O(live=true) also reports the cluster as M(kubeops.etcd.etcd_cluster_health) does (without failing when it
    is unhealthy).
  - Warns when the manifest's etcd image has a known data-corruption bug (3.5.0 to 3.5.2) or is below the versions
    etcd calls production-ready (3.4.22, 3.5.6).
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  live:
    description:
      - Also query the running cluster (member list, status and health of every member).
    type: bool
    default: false
  apiserver_manifest_path:
    description:
      - kubeadm static pod manifest of the API server on the target host.
      - When not set, C(kube-apiserver.yaml) in the directory of O(manifest_path).
      - A missing file is not an error (RV(apiserver.present=false)); a file that cannot be read or holds no
        kube-apiserver container is.
    type: path
  etcd_group:
    description:
      - Name of the inventory group of external etcd hosts (kubespray calls it C(etcd)), for RV(topology).
    type: str
    default: etcd
  etcd_group_hosts:
    description:
      - The hosts of that group in the inventory (C(groups[etcd_group]) in a play). Empty (the default), etcd is
        stacked on the control planes; non-empty, it is external.
    type: list
    elements: str
    default: []
  units:
    description:
      - On an etcd host of external etcd, the systemd units that may run the member, read when O(manifest_path) does
        not exist there (a host that runs etcd as a static pod keeps its manifest and is read as such).
      - An empty list finds them (C(systemctl list-unit-files 'etcd*.service')).
      - Not set (the default), the host must have O(manifest_path).
    type: list
    elements: str
  etcd_servers:
    description:
      - The API servers' C(--etcd-servers). With several etcd units on the host, the member is the one unit whose
        client URLs serve one of them (M(kubeops.etcd.etcd_unit_info) says how they are compared).
    type: list
    elements: str
    default: []
  free_space_paths:
    description:
      - Paths (absolute; they need not exist yet) whose filesystem and free space to report in RV(free_space), for
        example the directories a restore would write.
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - kubeops.etcd.connection
  - kubeops.etcd.tools
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.info_module
  - kubeops.etcd.attributes.actiongroup_etcd
notes:
  - The connection options are only used with O(live=true); O(manifest_path) and O(apiserver_manifest_path) are
    always read (O(manifest_path) only when etcd is stacked).
  - Computing RV(data_dir_stat.size_bytes) walks the data directory.
seealso:
  - module: kubeops.etcd.etcd_cluster_health
  - module: kubeops.etcd.etcd_restore
'''

EXAMPLES = r'''
- name: Describe the etcd member of each control plane node
  kubeops.etcd.etcd_member_info:
  become: true
  register: etcd_member

- name: Refuse to restore without room for a second data directory
  ansible.builtin.assert:
    that:
      - etcd_member.free_bytes > etcd_member.data_dir_stat.size_bytes * 2
    fail_msg: "Not enough space next to {{ etcd_member.member.data_dir_host_path }} for a restore"

- name: Describe the member, the API server and the space where a restore would write
  kubeops.etcd.etcd_member_info:
    free_space_paths:
      - /var/lib/etcd-restored
      - /var/lib/kubeops-etcd/restore
  become: true
  register: etcd_member_full

- name: Wait for the API server of each node
  ansible.builtin.uri:
    url: "{{ etcd_member_full.apiserver.readyz_url }}"
    validate_certs: false
  when: etcd_member_full.apiserver.readyz_url is not none

- name: Describe the member and the live cluster
  kubeops.etcd.etcd_member_info:
    live: true
  become: true
  register: etcd_member_live
'''

RETURN = r'''
topology:
  description: Stacked or external etcd, as the inventory says (O(etcd_group), O(etcd_group_hosts)).
  returned: always
  type: dict
  contains:
    name:
      description: V(stacked) or V(external).
      type: str
      sample: external
    etcd_group:
      description: O(etcd_group).
      type: str
      sample: etcd
    etcd_hosts:
      description: The inventory's etcd hosts (empty when stacked).
      type: list
      elements: str
      sample: [etcd1, etcd2, etcd3]
    plan_line:
      description: One sentence saying which topology and why.
      type: str
      sample: "external etcd: the inventory group 'etcd' lists etcd1, etcd2, etcd3; ..."
member:
  description:
    - The member as the manifest (or, with O(units), the systemd unit) defines it; V(null) on a control plane of
      external etcd.
  returned: always
  type: dict
  contains:
    kind:
      description: V(static_pod) (read from O(manifest_path)) or V(systemd) (read from a unit of O(units)).
      type: str
      sample: static_pod
    unit:
      description: The systemd unit read, V(null) for a static pod.
      type: str
      sample: etcd.service
    units:
      description: The etcd units found on the host (the one read among them), empty for a static pod.
      type: list
      elements: str
      sample: [etcd-events.service, etcd.service]
    user:
      description: The user etcd runs as (C(User=) of the unit, C(root) when unset); V(null) for a static pod.
      type: str
      sample: etcd
    group:
      description: C(Group=) of the unit, V(null) when unset (the user's primary group) or for a static pod.
      type: str
    data_dir_location:
      description:
        - Where the unit defines the data directory, as RV(kubeops.etcd.etcd_unit_info#module:units[].data_dir_location)
          says; V(null) for a static pod.
      type: dict
      sample: {kind: env, file: /etc/etcd.env, line: 2, variable: ETCD_DATA_DIR}
    name:
      description: C(--name).
      type: str
      sample: cp1
    data_dir:
      description: C(--data-dir) inside the container.
      type: str
      sample: /var/lib/etcd
    data_dir_host_path:
      description: Where C(--data-dir) lives on the host.
      type: str
      sample: /var/lib/etcd
    data_volume_name:
      description: Name of the C(hostPath) volume that holds C(--data-dir); V(null) for a systemd unit.
      type: str
      sample: etcd-data
    peer_urls:
      description: C(--initial-advertise-peer-urls).
      type: list
      elements: str
      sample: ["https://10.0.0.11:2380"]
    advertise_client_urls:
      description: C(--advertise-client-urls).
      type: list
      elements: str
      sample: ["https://10.0.0.11:2379"]
    listen_client_urls:
      description: C(--listen-client-urls).
      type: list
      elements: str
      sample: ["https://127.0.0.1:2379", "https://10.0.0.11:2379"]
    initial_cluster:
      description: C(--initial-cluster) (ignored by etcd once the data directory holds a WAL).
      type: str
      sample: cp1=https://10.0.0.11:2380
    initial_cluster_state:
      description: C(--initial-cluster-state), V(null) when not set.
      type: str
      sample: existing
    cert_file:
      description: C(--cert-file).
      type: str
      sample: /etc/kubernetes/pki/etcd/server.crt
    key_file:
      description: C(--key-file).
      type: str
      sample: /etc/kubernetes/pki/etcd/server.key
    trusted_ca_file:
      description: C(--trusted-ca-file).
      type: str
      sample: /etc/kubernetes/pki/etcd/ca.crt
    peer_cert_file:
      description: C(--peer-cert-file).
      type: str
      sample: /etc/kubernetes/pki/etcd/peer.crt
    peer_key_file:
      description: C(--peer-key-file).
      type: str
      sample: /etc/kubernetes/pki/etcd/peer.key
    peer_trusted_ca_file:
      description: C(--peer-trusted-ca-file).
      type: str
      sample: /etc/kubernetes/pki/etcd/ca.crt
    image:
      description: Container image; for a systemd unit, the etcd binary of its C(ExecStart).
      type: str
      sample: registry.k8s.io/etcd:3.5.16-0
    image_version:
      description:
        - etcd version from the image tag, V(null) when the tag does not tell.
        - For a systemd unit, what its etcd binary prints for C(--version), V(null) when it cannot be run.
      type: str
      sample: 3.5.16
    manifest_path:
      description: The manifest read; V(null) for a systemd unit.
      type: str
      sample: /etc/kubernetes/manifests/etcd.yaml
data_dir_stat:
  description: The data directory on the host; V(null) when etcd is external.
  returned: always
  type: dict
  contains:
    exists:
      description: Whether it exists.
      type: bool
      sample: true
    mode:
      description: Permission bits, V(null) when missing.
      type: str
      sample: "0700"
    uid:
      description: Owner's user ID.
      type: int
      sample: 0
    gid:
      description: Group ID.
      type: int
      sample: 0
    owner:
      description: Owner's user name (the ID as text when it has no name).
      type: str
      sample: root
    group:
      description: Group name (the ID as text when it has no name).
      type: str
      sample: root
    size_bytes:
      description: Total size of the files in it.
      type: int
      sample: 125829120
free_bytes:
  description:
    - Bytes available to unprivileged users on the filesystem that holds the parent of the data directory.
    - V(null) when etcd is external.
  returned: always
  type: int
  sample: 21474836480
free_space:
  description: Filesystem and free space of each path of O(free_space_paths), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as given.
      type: str
      sample: /var/lib/etcd-restored
    checked_path:
      description:
        - The nearest existing directory at or above the path (the path itself when it is a directory).
        - Its filesystem is the one measured.
      type: str
      sample: /var/lib
    device:
      description: Device number (C(st_dev)) of that filesystem; equal numbers mean the same filesystem.
      type: int
      sample: 2049
    free_bytes:
      description: Bytes available to unprivileged users on that filesystem.
      type: int
      sample: 21474836480
  sample: [{"path": "/var/lib/etcd-restored", "checked_path": "/var/lib", "device": 2049, "free_bytes": 21474836480}]
data_dir_free_space:
  description:
    - Filesystem and free space of the parent of the data dir's host path, where a sibling of the data dir (the new
      data dir of a restore) goes. The same keys as an entry of RV(free_space). V(null) when etcd is external.
  returned: always
  type: dict
  sample: {"path": "/var/lib", "checked_path": "/var/lib", "device": 2049, "free_bytes": 21474836480}
apiserver:
  description:
    - The API server as its static pod manifest defines it.
    - When the manifest is missing every value but RV(apiserver.manifest_path) and RV(apiserver.present) is V(null)
      (RV(apiserver.etcd_servers) is empty).
  returned: always
  type: dict
  contains:
    manifest_path:
      description: The manifest read.
      type: str
      sample: /etc/kubernetes/manifests/kube-apiserver.yaml
    present:
      description: Whether the manifest exists (V(false) on external etcd hosts, or while it is held aside).
      type: bool
      sample: true
    advertise_address:
      description: C(--advertise-address), V(null) when not set.
      type: str
      sample: 10.0.0.11
    secure_port:
      description: C(--secure-port) (V(6443) when not set).
      type: int
      sample: 6443
    readyz_url:
      description: C(https://<advertise address>:<secure port>/readyz) (an IPv6 address in brackets), V(null) without
        C(--advertise-address).
      type: str
      sample: https://10.0.0.11:6443/readyz
    encryption_provider_config:
      description: C(--encryption-provider-config), the file with the keys of Secrets encrypted at rest; V(null) when
        not set.
      type: str
      sample: /etc/kubernetes/enc/encryption-config.yaml
    etcd_servers:
      description: C(--etcd-servers).
      type: list
      elements: str
      sample: ["https://127.0.0.1:2379"]
    etcd_cafile:
      description: C(--etcd-cafile), V(null) when not set.
      type: str
      sample: /etc/kubernetes/pki/etcd/ca.crt
    etcd_certfile:
      description: C(--etcd-certfile), V(null) when not set.
      type: str
      sample: /etc/kubernetes/pki/apiserver-etcd-client.crt
    etcd_keyfile:
      description: C(--etcd-keyfile), V(null) when not set.
      type: str
      sample: /etc/kubernetes/pki/apiserver-etcd-client.key
tools:
  description: etcd tools found on the managed node.
  returned: always
  type: dict
  contains:
    etcdctl:
      description: Path of C(etcdctl), V(null) when missing.
      type: str
      sample: /usr/bin/etcdctl
    etcdctl_version:
      description: Its version.
      type: str
      sample: 3.5.16
    etcdutl:
      description: Path of C(etcdutl), V(null) when missing.
      type: str
      sample: /usr/bin/etcdutl
    etcdutl_version:
      description: Its version.
      type: str
      sample: 3.5.16
    restore_tool:
      description: The tool that restores snapshots here (C(etcdutl), else C(etcdctl) before 3.6), V(null) when none.
      type: str
      sample: etcdutl
    supports_bump_revision:
      description: Whether the restore tool knows C(--bump-revision) and C(--mark-compacted).
      type: bool
      sample: true
cluster:
  description: The live cluster, as M(kubeops.etcd.etcd_cluster_health) returns it.
  returned: when O(live=true)
  type: dict
  sample: {"healthy": true, "leader_name": "cp1", "problems": [], "revision": 51}
'''

import grp
import os
import posixpath
import pwd
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.connection import (
    EtcdConnection,
    connection_argument_spec,
    load_apiserver_manifest,
    load_manifest,
    query_cluster,
    resolve_apiserver_connection,
    resolve_connection,
    unreachable_cluster,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.etcd_unit import (
    choose_unit, etcd_binary_version, list_units, load_unit)
from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import describe_kube_apiserver
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import version_warnings
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import EtcdTools, Runner
from ansible_collections.kubeops.etcd.plugins.module_utils.topology import EXTERNAL, decide_topology


def describe_member(manifest):
    flag = manifest.flags.get
    return {
        'name': manifest.name,
        'data_dir': manifest.data_dir,
        'data_dir_host_path': manifest.data_dir_host_path,
        'data_volume_name': manifest.data_volume['name'],
        'peer_urls': list(manifest.peer_urls),
        'advertise_client_urls': list(manifest.advertise_client_urls),
        'listen_client_urls': list(manifest.listen_client_urls),
        'initial_cluster': manifest.initial_cluster,
        'initial_cluster_state': manifest.initial_cluster_state,
        'cert_file': flag('--cert-file'),
        'key_file': flag('--key-file'),
        'trusted_ca_file': flag('--trusted-ca-file'),
        'peer_cert_file': flag('--peer-cert-file'),
        'peer_key_file': flag('--peer-key-file'),
        'peer_trusted_ca_file': flag('--peer-trusted-ca-file'),
        'image': manifest.image,
        'image_version': manifest.image_version,
        'manifest_path': manifest.path,
        'kind': 'static_pod',
        'unit': None,
        'units': [],
        'user': None,
        'group': None,
        'data_dir_location': None,
    }


def describe_unit_member(etcd_unit, units, version):
    """The member a systemd unit runs, with the keys of describe_member."""
    member = etcd_unit.member()
    return {
        'name': member['name'],
        'data_dir': member['data_dir'],
        'data_dir_host_path': member['data_dir'],
        'data_volume_name': None,
        'peer_urls': list(member['peer_urls']),
        'advertise_client_urls': list(member['advertise_client_urls']),
        'listen_client_urls': list(member['listen_client_urls']),
        'initial_cluster': member['initial_cluster'],
        'initial_cluster_state': member['initial_cluster_state'],
        'cert_file': member['cert_file'],
        'key_file': member['key_file'],
        'trusted_ca_file': member['trusted_ca_file'],
        'peer_cert_file': member['peer_cert_file'],
        'peer_key_file': member['peer_key_file'],
        'peer_trusted_ca_file': member['peer_trusted_ca_file'],
        'image': etcd_unit.argv[0] if etcd_unit.argv else None,
        'image_version': version or None,
        'manifest_path': None,
        'kind': 'systemd',
        'unit': etcd_unit.unit,
        'units': list(units),
        'user': member['user'],
        'group': member['group'],
        'data_dir_location': etcd_unit.data_dir_location().as_dict(),
    }


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def tree_size(path):
    """Bytes of the regular files under path (symlinks not followed)."""
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # removed while we walked (etcd compacting WAL files)
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def stat_data_dir(path):
    try:
        info = os.stat(path)
    except OSError:
        return {'exists': False, 'mode': None, 'uid': None, 'gid': None, 'owner': None, 'group': None,
                'size_bytes': 0}
    return {
        'exists': True,
        'mode': '%04o' % stat.S_IMODE(info.st_mode),
        'uid': info.st_uid,
        'gid': info.st_gid,
        'owner': _user_name(info.st_uid),
        'group': _group_name(info.st_gid),
        'size_bytes': tree_size(path) if stat.S_ISDIR(info.st_mode) else info.st_size,
    }


def free_bytes_near(path):
    """Free bytes of the filesystem holding path's parent (the nearest existing ancestor)."""
    directory = os.path.dirname(os.path.normpath(path)) or '/'
    while not os.path.isdir(directory) and directory != '/':
        directory = os.path.dirname(directory)
    try:
        info = os.statvfs(directory)
    except OSError as exc:
        raise EtcdModuleError('Cannot read free space of %s on %s: %s' % (directory, node_name(), exc))
    return info.f_bavail * info.f_frsize


def nearest_directory(path):
    """path itself when it is a directory, else its nearest existing ancestor directory."""
    directory = os.path.normpath(path)
    while not os.path.isdir(directory) and directory != '/':
        directory = os.path.dirname(directory)
    return directory


def free_space(path):
    """Filesystem (st_dev) and free bytes where path is, or would be once created."""
    if not os.path.isabs(path):
        raise EtcdModuleError('free_space_paths entry %s is not an absolute path; give the full path.' % path)
    directory = nearest_directory(path)
    try:
        device = os.stat(directory).st_dev
        info = os.statvfs(directory)
    except OSError as exc:
        raise EtcdModuleError('Cannot read free space of %s (for %s) on %s: %s' % (directory, path, node_name(), exc))
    return {'path': path, 'checked_path': directory, 'device': device, 'free_bytes': info.f_bavail * info.f_frsize}


def apiserver_manifest_path(params):
    """apiserver_manifest_path, else kube-apiserver.yaml beside manifest_path."""
    beside_etcd = os.path.join(os.path.dirname(params['manifest_path']), 'kube-apiserver.yaml')
    return params['apiserver_manifest_path'] or beside_etcd


def run_external(module, topology):
    """A control plane of an external etcd cluster: no member here, the API server's etcd flags reach it."""
    params = module.params
    apiserver = load_apiserver_manifest(apiserver_manifest_path(params))
    runner = Runner(module)
    tools = EtcdTools.detect(module, runner, params['etcdctl_path'], params['etcdutl_path'])
    result = {
        'topology': topology,
        'member': None,
        'data_dir_stat': None,
        'free_bytes': None,
        'free_space': [free_space(path) for path in params['free_space_paths']],
        'data_dir_free_space': None,
        'apiserver': apiserver.describe(),
        'tools': tools.as_dict(),
    }
    if params['live']:
        etcdctl = tools.require_etcdctl('query the live cluster')
        conn = resolve_apiserver_connection(apiserver, params['endpoints'])
        try:
            result['cluster'], _raw = query_cluster(runner, etcdctl, conn)
        except EtcdModuleError as exc:
            result['cluster'] = unreachable_cluster(exc.msg)
    return result


def unit_connection(module, member):
    """The unit's own client URLs and certificates, unless the module's options name others."""
    params = module.params
    given = dict((option, params[option]) for option in ('cacert', 'cert', 'key')
                 if params[option] != connection_argument_spec()[option]['default'])
    endpoints = params['endpoints'] or member['advertise_client_urls']
    if not endpoints:
        raise EtcdModuleError('%s on %s has no advertise client URLs; set endpoints.' % (member['unit'], node_name()))
    return EtcdConnection(endpoints, given.get('cacert', member['trusted_ca_file']),
                          given.get('cert', member['cert_file']), given.get('key', member['key_file']), member['unit'])


def read_unit_member(module, runner):
    """The member of the etcd unit on this host (external etcd run by systemd)."""
    params = module.params
    names = params['units'] or list_units(module, runner)
    loaded = [load_unit(module, runner, name) for name in names]
    chosen = choose_unit([(unit.unit, unit.member()) for unit in loaded], params['etcd_servers'])
    etcd_unit = [unit for unit in loaded if unit.unit == chosen][0]
    return describe_unit_member(etcd_unit, names, etcd_binary_version(runner, etcd_unit.argv[0] if etcd_unit.argv else ''))


def run_module(module):
    params = module.params
    topology = decide_topology(params['etcd_group'], params['etcd_group_hosts'])
    if topology['name'] == EXTERNAL:
        return run_external(module, topology)
    runner = Runner(module)
    if params['units'] is not None and not os.path.exists(params['manifest_path']):
        member = read_unit_member(module, runner)
        where = member['unit']
    else:
        manifest = load_manifest(module)
        member = describe_member(manifest)
        where = manifest.path
    for warning in version_warnings(member['image_version']):
        module.warn('The etcd of %s: %s' % (where, warning))
    tools = EtcdTools.detect(module, runner, params['etcdctl_path'], params['etcdutl_path'])
    result = {
        'topology': topology,
        'member': member,
        'data_dir_stat': stat_data_dir(member['data_dir_host_path']),
        'free_bytes': free_bytes_near(member['data_dir_host_path']),
        'free_space': [free_space(path) for path in params['free_space_paths']],
        # Where a sibling of the data dir (a restore's new dir) would go.
        'data_dir_free_space': free_space(posixpath.dirname(posixpath.normpath(member['data_dir_host_path'])) or '/'),
        'apiserver': describe_kube_apiserver(apiserver_manifest_path(params)),
        'tools': tools.as_dict(),
    }
    if params['live']:
        etcdctl = tools.require_etcdctl('query the live cluster')
        conn = resolve_connection(module, manifest) if member['kind'] == 'static_pod' else unit_connection(
            module, member)
        try:
            result['cluster'], _raw = query_cluster(runner, etcdctl, conn)
        except EtcdModuleError as exc:
            result['cluster'] = unreachable_cluster(exc.msg)
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        live=dict(type='bool', default=False),
        apiserver_manifest_path=dict(type='path'),
        etcd_group=dict(type='str', default='etcd'),
        etcd_group_hosts=dict(type='list', elements='str', default=[]),
        free_space_paths=dict(type='list', elements='path', default=[]),
        units=dict(type='list', elements='str'),
        etcd_servers=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
