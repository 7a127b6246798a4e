# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure parsers of etcdctl/etcdutl output (``-w json`` and ``version``).

Member and cluster IDs are decimal uint64 in etcd's JSON and often exceed 2**53;
json.loads keeps them as exact Python ints. They are shown as lowercase hex
without padding, like etcdctl's tables (``member_id_hex``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError

_VERSION_LINE = re.compile(r'^(?:etcdctl|etcdutl|etcd)\s+version:\s*v?(\d+\.\d+\.\d+)', re.IGNORECASE | re.MULTILINE)
_STATUS_FAILURE = re.compile(r'^Failed to get the status of endpoint (\S+) \((.*)\)\s*$', re.MULTILINE)


def member_id_hex(member_id):
    """1563296339373917210 -> '15b1ab2eb7e6f81a' (lowercase hex, no padding)."""
    if member_id is None:
        return None
    return '%x' % int(member_id)


def version_tuple(version):
    """'3.5.16' -> (3, 5, 16); None for anything else."""
    if not version:
        return None
    match = re.match(r'^v?(\d+)\.(\d+)\.(\d+)', str(version).strip())
    if not match:
        return None
    return tuple(int(part) for part in match.groups())


def parse_version_output(text):
    """Version from `etcdctl version`, `etcdutl version` or `etcd --version` output."""
    match = _VERSION_LINE.search(text or '')
    return match.group(1) if match else None


def load_json(text, what):
    """Parse etcdctl JSON output, tolerating notices printed around it."""
    text = (text or '').strip()
    if not text:
        raise EtcdModuleError('%s printed nothing where JSON was expected' % what, stdout=text)
    try:
        return json.loads(text)
    except ValueError:
        pass
    # Old etcdctl builds sometimes print a notice line before the document.
    for index, char in enumerate(text):
        if char in '[{':
            try:
                return json.loads(text[index:])
            except ValueError:
                continue
    raise EtcdModuleError('%s did not print valid JSON: %s' % (what, text[:500]), stdout=text)


def _header(data):
    header = data.get('header') or {}
    return {
        'cluster_id': header.get('cluster_id'),
        'member_id': header.get('member_id'),
        'revision': header.get('revision'),
        'raft_term': header.get('raft_term'),
    }


def parse_member_list(text):
    """`etcdctl member list -w json` -> {cluster_id, member_id, raft_term, members: [...]}.

    Each member: {id (int), name, peer_urls, client_urls, is_learner}. A member
    added but not started yet has no name and no client URLs.
    """
    data = load_json(text, 'etcdctl member list')
    if not isinstance(data, dict) or 'members' not in data:
        raise EtcdModuleError('etcdctl member list printed JSON without "members": %s' % (text or '')[:500])
    header = _header(data)
    members = []
    for member in data.get('members') or []:
        members.append({
            'id': member.get('ID'),
            'name': member.get('name') or '',
            'peer_urls': list(member.get('peerURLs') or []),
            'client_urls': list(member.get('clientURLs') or []),
            'is_learner': bool(member.get('isLearner', False)),
        })
    return {
        'cluster_id': header['cluster_id'],
        'member_id': header['member_id'],
        'raft_term': header['raft_term'],
        'members': members,
    }


def parse_endpoint_status(text):
    """`etcdctl endpoint status -w json` -> list of per-endpoint dicts.

    Each: {endpoint, member_id, cluster_id, revision, raft_term, raft_index,
    raft_applied_index, leader, is_leader, version, storage_version, db_size,
    db_size_in_use, errors, is_learner, db_size_quota}; the last two and
    storage_version are only reported by etcd 3.6+ (None/False before). is_leader follows etcd: Status.leader == header.member_id.
    """
    if not (text or '').strip():
        return []
    data = load_json(text, 'etcdctl endpoint status')
    if isinstance(data, dict):
        data = [data]
    result = []
    for entry in data:
        status = entry.get('Status') or {}
        header = _header(status)
        leader = status.get('leader')
        result.append({
            'endpoint': entry.get('Endpoint'),
            'member_id': header['member_id'],
            'cluster_id': header['cluster_id'],
            'revision': header['revision'],
            'raft_term': status.get('raftTerm', header['raft_term']),
            'raft_index': status.get('raftIndex'),
            'raft_applied_index': status.get('raftAppliedIndex'),
            'leader': leader,
            'is_leader': leader is not None and leader != 0 and leader == header['member_id'],
            'version': status.get('version'),
            'storage_version': status.get('storageVersion') or None,
            'db_size': status.get('dbSize'),
            'db_size_in_use': status.get('dbSizeInUse'),
            'errors': list(status.get('errors') or []),
            'is_learner': bool(status.get('isLearner', False)),
            'db_size_quota': status.get('dbSizeQuota'),
        })
    return result


def parse_endpoint_status_failures(stderr):
    """Endpoints etcdctl could not reach: {endpoint: error} from its stderr lines
    'Failed to get the status of endpoint X (error)'."""
    return dict((match.group(1), match.group(2)) for match in _STATUS_FAILURE.finditer(stderr or ''))


def parse_endpoint_health(text):
    """`etcdctl endpoint health -w json` -> [{endpoint, healthy, error, took}]."""
    if not (text or '').strip():
        return []
    data = load_json(text, 'etcdctl endpoint health')
    if isinstance(data, dict):
        data = [data]
    return [{
        'endpoint': entry.get('endpoint'),
        'healthy': bool(entry.get('health')),
        'error': entry.get('error') or None,
        'took': entry.get('took'),
    } for entry in data]


def parse_snapshot_status(text):
    """`etcdutl|etcdctl snapshot status -w json` -> {hash, revision, total_key, total_size, version}.

    ``version`` (the storage version) only exists from etcd 3.6 on; None before.
    ``hash`` is etcd's CRC-32C of the contents, not the file's SHA-256.
    """
    data = load_json(text, 'snapshot status')
    if not isinstance(data, dict) or 'revision' not in data or 'hash' not in data:
        raise EtcdModuleError('snapshot status printed JSON without hash/revision: %s' % (text or '')[:500])
    return {
        'hash': data.get('hash'),
        'revision': data.get('revision'),
        'total_key': data.get('totalKey'),
        'total_size': data.get('totalSize'),
        'version': data.get('version') or None,
    }


def version_warnings(version):
    """Warnings etcd's maintainers give for a server version (empty list when fine)."""
    parsed = version_tuple(version)
    if parsed is None:
        return []
    warnings = []
    if (3, 5, 0) <= parsed <= (3, 5, 2):
        warnings.append(
            'etcd %s has a known data-inconsistency bug under load (fixed in 3.5.3); upgrade to 3.5.6 or newer.'
            % version)
    elif parsed < (3, 4, 22) or (3, 5, 0) <= parsed < (3, 5, 6):
        warnings.append(
            'etcd %s is below the versions etcd calls production-ready (3.4.22+, 3.5.6+); upgrade.' % version)
    return warnings


def assess_cluster(member_list, statuses, healths, unreachable=None, expected_members=None, min_revision=None,
                   tolerate_down=None):
    """Combine member list, endpoint status and endpoint health into one verdict.

    ``member_list`` is parse_member_list's result, ``statuses`` and ``healths``
    parse_endpoint_status's and parse_endpoint_health's, ``unreachable`` a dict
    {endpoint: error} of endpoints whose status could not be read.
    ``tolerate_down`` names members that may be down (unreachable or unhealthy) without it being a problem, as
    long as the others are a quorum of the voting members; they are listed in ``tolerated_down``.
    Returns the ``cluster`` dict of etcd_cluster_health (IDs as hex strings).
    """
    unreachable = dict(unreachable or {})
    tolerate_down = set(tolerate_down or [])
    tolerated = []
    problems = []
    by_member_id = {}
    for status in statuses:
        if status['member_id'] is not None:
            by_member_id[status['member_id']] = status
    health_by_endpoint = dict((health['endpoint'], health) for health in healths)

    members = []
    member_names = {}
    for member in member_list['members']:
        member_names[member['id']] = member['name']
        members.append({
            'id': member_id_hex(member['id']),
            'name': member['name'],
            'peer_urls': member['peer_urls'],
            'client_urls': member['client_urls'],
            'is_learner': member['is_learner'],
        })

    endpoints = []
    seen_endpoints = set()
    for status in statuses:
        health = health_by_endpoint.get(status['endpoint']) or {}
        healthy = bool(health.get('healthy', not status['errors']))
        error = health.get('error') or ('; '.join(status['errors']) if status['errors'] else None)
        endpoints.append({
            'endpoint': status['endpoint'],
            'healthy': healthy,
            'error': error,
            'member_id': member_id_hex(status['member_id']),
            'name': member_names.get(status['member_id'], ''),
            'revision': status['revision'],
            'db_size': status['db_size'],
            'version': status['version'],
            'is_leader': status['is_leader'],
            'raft_term': status['raft_term'],
        })
        seen_endpoints.add(status['endpoint'])
    for endpoint in sorted(set(unreachable) | set(h['endpoint'] for h in healths if h['endpoint'] not in seen_endpoints)):
        if endpoint in seen_endpoints:
            continue
        health = health_by_endpoint.get(endpoint) or {}
        endpoints.append({
            'endpoint': endpoint,
            'healthy': False,
            'error': unreachable.get(endpoint) or health.get('error') or 'no status',
            'member_id': None,
            'name': '',
            'revision': None,
            'db_size': None,
            'version': None,
            'is_leader': False,
            'raft_term': None,
        })
        seen_endpoints.add(endpoint)

    for member in member_list['members']:
        label = member['name'] or member_id_hex(member['id'])
        if not member['name'] or not member['client_urls']:
            problems.append('member %s (%s) has not started: it has no name or client URLs'
                            % (label, member_id_hex(member['id'])))
            continue
        status = by_member_id.get(member['id'])
        if status is None:
            errors = ['%s: %s' % (url, unreachable.get(url, 'no status')) for url in member['client_urls']]
            if member['name'] in tolerate_down:
                tolerated.append(member['name'])
            else:
                problems.append('member %s is unreachable (%s)' % (label, '; '.join(errors)))
            continue
        health = health_by_endpoint.get(status['endpoint'])
        if health is not None and not health['healthy'] and member['name'] in tolerate_down:
            tolerated.append(member['name'])
        elif health is not None and not health['healthy']:
            problems.append('member %s (%s) is unhealthy: %s' % (label, status['endpoint'], health['error'] or 'unhealthy'))
        elif status['errors']:
            problems.append('member %s (%s) reports errors: %s' % (label, status['endpoint'], '; '.join(status['errors'])))
        if member['is_learner']:
            problems.append('member %s is a learner, not a voting member' % label)

    leaders = sorted(set(status['leader'] for status in statuses if status['leader']))
    leader_statuses = [status for status in statuses if status['is_leader']]
    leader_id = None
    if len(leader_statuses) == 1:
        leader_id = leader_statuses[0]['member_id']
    elif len(leader_statuses) > 1:
        problems.append('more than one leader: %s' % ', '.join(
            member_names.get(s['member_id']) or member_id_hex(s['member_id']) for s in leader_statuses))
    elif statuses:
        if len(leaders) == 1 and leaders[0] in member_names:
            problems.append('leader %s did not answer' % (member_names[leaders[0]] or member_id_hex(leaders[0])))
        else:
            problems.append('no leader: the members disagree or have not elected one (%s)'
                            % (', '.join(member_id_hex(leader) for leader in leaders) or 'none'))
    else:
        problems.append('no endpoint answered endpoint status')
    if len(leaders) > 1:
        problems.append('members disagree about the leader: %s' % ', '.join(member_id_hex(leader) for leader in leaders))

    # A member tolerated down may answer on its URL as a member of another cluster (a node still on the restored
    # data while the others rolled back): that is its being down, not a split of the cluster checked.
    tolerated_urls = set(url for member in member_list['members'] if member['name'] in tolerated
                         for url in member['client_urls'])
    cluster_ids = sorted(set(status['cluster_id'] for status in statuses
                             if status['cluster_id'] and status['endpoint'] not in tolerated_urls))
    if len(cluster_ids) > 1:
        problems.append('endpoints belong to different clusters: %s' % ', '.join(member_id_hex(c) for c in cluster_ids))

    voting = [member for member in member_list['members'] if not member['is_learner']]
    if tolerated and 2 * (len(voting) - len(tolerated)) <= len(voting):
        problems.append('only %d of %d voting members are up (%s down): no quorum'
                        % (len(voting) - len(tolerated), len(voting), ', '.join(sorted(tolerated))))
    # healthy is about the members and the leader only; expectations come after.
    healthy = not problems
    names = set(member['name'] for member in member_list['members'] if member['name'])
    if expected_members:
        missing = [name for name in expected_members if name not in names]
        unexpected = sorted(names - set(expected_members))
        if missing:
            problems.append('expected members missing: %s' % ', '.join(missing))
        if unexpected:
            problems.append('unexpected members present: %s' % ', '.join(unexpected))

    revisions = [status['revision'] for status in statuses if status['revision'] is not None]
    revision = max(revisions) if revisions else None
    if min_revision is not None and (revision is None or revision < min_revision):
        problems.append('revision %s is below the expected minimum %d' % (revision, min_revision))

    leader_name = member_names.get(leader_id, '') if leader_id is not None else None
    leader_client_url = None
    if leader_id is not None:
        leader_client_url = by_member_id[leader_id]['endpoint']
    cluster = {
        'cluster_id': member_id_hex(member_list['cluster_id']),
        'members': members,
        'leader': member_id_hex(leader_id),
        'leader_name': leader_name,
        'leader_client_url': leader_client_url,
        'endpoints': endpoints,
        'healthy': healthy,
        'revision': revision,
        'problems': problems,
    }
    if tolerate_down:
        cluster['tolerated_down'] = sorted(tolerated)
    return cluster
