# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection options shared by every module that talks to etcd, and the cluster query."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import (
    assess_cluster,
    member_id_hex,
    parse_endpoint_health,
    parse_endpoint_status,
    parse_endpoint_status_failures,
    parse_member_list,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.containers import tools_argument_spec
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import command_error, etcdctl_conn_args

DEFAULT_CACERT = '/etc/kubernetes/pki/etcd/ca.crt'
DEFAULT_CERT = '/etc/kubernetes/pki/etcd/healthcheck-client.crt'
DEFAULT_KEY = '/etc/kubernetes/pki/etcd/healthcheck-client.key'
DEFAULT_MANIFEST = '/etc/kubernetes/manifests/etcd.yaml'


def connection_argument_spec():
    """Options every etcd-facing module takes (documented in doc_fragments/connection.py)."""
    spec = dict(
        endpoints=dict(type='list', elements='str'),
        cacert=dict(type='path', default=DEFAULT_CACERT),
        cert=dict(type='path', default=DEFAULT_CERT),
        # A path, not key material: etcdctl reads the file itself.
        key=dict(type='path', default=DEFAULT_KEY, no_log=False),
        etcdctl_path=dict(type='path'),
        etcdutl_path=dict(type='path'),
        manifest_path=dict(type='path', default=DEFAULT_MANIFEST),
        command_timeout=dict(type='int', default=60),
    )
    spec.update(tools_argument_spec())
    return spec


class EtcdConnection(object):
    """Resolved endpoints and TLS files; ``source`` says where the endpoints came from."""

    def __init__(self, endpoints, cacert, cert, key, source):
        self.endpoints = list(endpoints)
        self.cacert = cacert
        self.cert = cert
        self.key = key
        self.source = source

    def args(self, endpoints=None):
        """etcdctl flags for these endpoints (default: all resolved endpoints)."""
        return etcdctl_conn_args(endpoints or self.endpoints, self.cacert, self.cert, self.key)

    def as_dict(self):
        return {'endpoints': self.endpoints, 'cacert': self.cacert, 'cert': self.cert, 'key': self.key,
                'endpoints_source': self.source}


def needs_manifest(module):
    """True when endpoints must come from the kubeadm manifest."""
    return not module.params.get('endpoints')


def load_manifest(module):
    """EtcdManifest of manifest_path (imported lazily: PyYAML is only needed here)."""
    from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest
    return EtcdManifest.load(module.params['manifest_path'])


def _check_tls_file(option, path):
    if not path:
        return
    if not os.path.isfile(path):
        raise EtcdModuleError(
            '%s file %s does not exist on %s. Set %s to the etcd %s (kubeadm: %s).'
            % (option, path, node_name(), option,
               {'cacert': 'CA certificate', 'cert': 'client certificate', 'key': 'client key'}[option],
               {'cacert': DEFAULT_CACERT, 'cert': DEFAULT_CERT, 'key': DEFAULT_KEY}[option]),
            file=path)
    if not os.access(path, os.R_OK):
        raise EtcdModuleError(
            '%s file %s on %s is not readable by this user; run the task with become: true.'
            % (option, path, node_name()), file=path)


def resolve_connection(module, manifest=None):
    """Endpoints and TLS files from the module's params, the manifest filling the gaps.

    ``manifest`` is an EtcdManifest (or None when endpoints are given).
    Endpoint discovery uses ``--advertise-client-urls``: kubeadm's listen URLs
    include 127.0.0.1, which is not reachable from other members.
    """
    params = module.params
    endpoints = [endpoint.strip() for endpoint in params.get('endpoints') or [] if endpoint.strip()]
    source = 'endpoints'
    if not endpoints:
        if manifest is None:
            raise EtcdModuleError(
                'No etcd endpoints on %s: set endpoints, or manifest_path to the kubeadm etcd manifest.' % node_name())
        endpoints = list(manifest.advertise_client_urls)
        source = manifest.path
        if not endpoints:
            raise EtcdModuleError(
                '%s on %s has no --advertise-client-urls; set endpoints.' % (manifest.path, node_name()),
                file=manifest.path)
    for option in ('cacert', 'cert', 'key'):
        _check_tls_file(option, params.get(option))
    return EtcdConnection(endpoints, params.get('cacert'), params.get('cert'), params.get('key'), source)


SINGLE_MEMBER_FLAGS = ['--dial-timeout=2s', '--command-timeout=3s']


def _member_endpoints(members, fallback):
    """Client URLs of every started member (in member-list order), else the fallback."""
    urls = []
    for member in members:
        for url in member['client_urls']:
            if url not in urls:
                urls.append(url)
    return urls or list(fallback)


def query_cluster(runner, etcdctl, conn, expected_members=None, min_revision=None, tolerate_down=None):
    """One round trip over the cluster: member list, endpoint status and health of every member.

    Returns (cluster, raw) where cluster is parsers.assess_cluster's dict and raw
    holds the parsed member list and statuses (exact int IDs) for callers that
    need them. Failures to reach members become ``problems``, not exceptions;
    only a member list that cannot be read at all raises EtcdModuleError.
    """
    listing = runner.run([etcdctl] + conn.args() + ['member', 'list', '-w', 'json'], check_rc=False)
    if listing.rc != 0 and len(conn.endpoints) > 1:
        # One endpoint can hold the whole call (something else listens on a member's port and never answers TLS):
        # ask the members one at a time, briefly; any member with a quorum has the list.
        for endpoint in conn.endpoints:
            single = runner.run([etcdctl] + conn.args([endpoint]) + SINGLE_MEMBER_FLAGS + ['member', 'list', '-w', 'json'],
                                check_rc=False)
            if single.rc == 0:
                listing = single
                break
    if listing.rc != 0:
        raise command_error(
            listing, what='Listing etcd members at %s' % ','.join(conn.endpoints),
            fix='Check that etcd runs there, that the endpoints are right and that cacert/cert/key (%s, %s, %s) '
                'belong to this cluster.' % (conn.cacert, conn.cert, conn.key))
    member_list = parse_member_list(listing.stdout)
    probe = _member_endpoints(member_list['members'], conn.endpoints)

    status_run = runner.run([etcdctl] + conn.args(probe) + ['endpoint', 'status', '-w', 'json'], check_rc=False)
    statuses = parse_endpoint_status(status_run.stdout)
    unreachable = parse_endpoint_status_failures(status_run.stderr)
    answered = set(status['endpoint'] for status in statuses)
    for endpoint in probe:
        if endpoint not in answered and endpoint not in unreachable:
            unreachable[endpoint] = status_run.error_summary() or 'no status'

    health_run = runner.run([etcdctl] + conn.args(probe) + ['endpoint', 'health', '-w', 'json'], check_rc=False)
    try:
        healths = parse_endpoint_health(health_run.stdout)
    except EtcdModuleError:
        healths = []
    # Health of an endpoint that did not answer status is already reported as unreachable.
    healths = [health for health in healths if health['endpoint'] in answered or health['endpoint'] in unreachable]

    cluster = assess_cluster(member_list, statuses, healths, unreachable,
                             expected_members=expected_members, min_revision=min_revision,
                             tolerate_down=tolerate_down)
    return cluster, {'member_list': member_list, 'statuses': statuses}


def unreachable_cluster(reason, endpoints=None):
    """The ``cluster`` result when not even the member list could be read.

    endpoints: what lone_member_statuses read of the members that still answer on their own, if asked."""
    return {
        'cluster_id': None,
        'members': [],
        'leader': None,
        'leader_name': None,
        'leader_client_url': None,
        'endpoints': list(endpoints or []),
        'healthy': False,
        'revision': None,
        'problems': [reason],
    }


def lone_member_statuses(runner, etcdctl, conn, endpoints=None):
    """The status of each endpoint that answers on its own, when the member list cannot be read.

    A member without a quorum cannot list the members (that needs a leader) but still answers ``endpoint status``
    from its own state: its member and cluster ID, revision and raft index, and errors such as "no leader". Entries
    have the shape of a cluster's ``endpoints`` (healthy always false) plus ``cluster_id``, ``raft_index`` and
    ``raft_applied_index``.
    """
    asked = list(endpoints or conn.endpoints)
    result = runner.run([etcdctl] + conn.args(asked) + ['endpoint', 'status', '-w', 'json'], check_rc=False)
    found = []
    for status in parse_endpoint_status(result.stdout):
        found.append({
            'endpoint': status['endpoint'],
            'healthy': False,
            'error': '; '.join(status['errors'] or []) or 'the member list could not be read',
            'member_id': member_id_hex(status['member_id']),
            'cluster_id': member_id_hex(status['cluster_id']),
            'name': '',
            'revision': status['revision'],
            'raft_term': status['raft_term'],
            'raft_index': status['raft_index'],
            'raft_applied_index': status['raft_applied_index'],
            'db_size': status['db_size'],
            'version': status['version'],
            'storage_version': status['storage_version'],
            'is_leader': False,
        })
    return found


# External etcd (etcd on hosts of its own): the control planes have no etcd.yaml, and kube-apiserver.yaml's
# etcd flags reach the cluster whatever runs it there (static pods under a standalone kubelet, systemd units).
DEFAULT_APISERVER_MANIFEST = '/etc/kubernetes/manifests/kube-apiserver.yaml'
APISERVER_ETCD_FLAGS = (('cacert', '--etcd-cafile'), ('cert', '--etcd-certfile'), ('key', '--etcd-keyfile'))


def load_apiserver_manifest(path):
    """KubeApiServerManifest of path; a missing file is an error that says where external etcd backups run."""
    from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import KubeApiServerManifest
    if not os.path.lexists(path):
        raise EtcdModuleError(
            'No %s on %s: with external etcd the control planes reach etcd through the API server\'s '
            '--etcd-servers and --etcd-cafile/--etcd-certfile/--etcd-keyfile. Run this on a control plane, or set '
            'the path of its kube-apiserver manifest.' % (path, node_name()), path=path)
    return KubeApiServerManifest.load(path)


def resolve_apiserver_connection(apiserver_manifest, endpoints=None):
    """EtcdConnection from kube-apiserver.yaml's etcd flags: its --etcd-servers (unless endpoints are given) and the
    API server's etcd client certificate. ``source`` is the manifest's path (or 'endpoints')."""
    flags = apiserver_manifest.flags
    path = apiserver_manifest.path
    given = [endpoint.strip() for endpoint in endpoints or [] if endpoint.strip()]
    servers = given or list(apiserver_manifest.etcd_servers)
    if not servers:
        raise EtcdModuleError(
            '%s on %s has no --etcd-servers, so the external etcd cluster cannot be found; set endpoints to the etcd '
            'client URLs.' % (path, node_name()), file=path)
    files = {}
    for option, flag in APISERVER_ETCD_FLAGS:
        files[option] = flags.get(flag) or None
        if files[option] is None and any(server.startswith('https://') for server in servers):
            raise EtcdModuleError(
                '%s on %s has no %s although --etcd-servers use https: the API server could not reach etcd either. '
                'Fix the manifest.' % (path, node_name(), flag), file=path)
        if files[option] and not os.path.isfile(files[option]):
            raise EtcdModuleError(
                '%s %s (%s of %s) does not exist on %s: restore the PKI of this control plane, or run on another one.'
                % (flag, files[option], option, path, node_name()), file=files[option])
        if files[option] and not os.access(files[option], os.R_OK):
            raise EtcdModuleError('%s %s on %s is not readable by this user; run the task with become: true.'
                                  % (flag, files[option], node_name()), file=files[option])
    return EtcdConnection(servers, files['cacert'], files['cert'], files['key'], 'endpoints' if given else path)


def endpoint_versions(runner, etcdctl, conn):
    """(the etcd version each answering member reports, {endpoint: error} of those that did not answer)."""
    result = runner.run([etcdctl] + conn.args() + ['endpoint', 'status', '-w', 'json'], check_rc=False)
    versions = [status['version'] for status in parse_endpoint_status(result.stdout) if status.get('version')]
    return versions, parse_endpoint_status_failures(result.stderr)
