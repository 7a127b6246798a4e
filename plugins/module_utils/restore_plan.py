# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The restore planner: pure functions, no I/O (private to this collection; no API promise before 1.0).

The etcd_restore role gathers facts on every node and on the ops box, hands them to the
``etcd_restore_plan`` action plugin, and that plugin calls these functions. Every decision of
a restore lives here, once: which snapshot, which tool and revision bump per member, the
member names and peer URLs, the full initial cluster, the IDs it will produce, the free space
needed, the new directories, what to refuse — and the texts an operator reads: the plan, the
report and the rollback messages.

A refusal is a dict ``{host, cause, fix}``; the planner returns every refusal it finds, never
only the first, so that one run tells the operator everything to fix.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import posixpath
import re

from ansible_collections.kubeops.etcd.plugins.module_utils.identity import (
    cluster_member_ids, compute_cluster_id, id_hex, normalize_peer_url)
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import version_tuple
from ansible_collections.kubeops.etcd.plugins.module_utils.space import restore_space_needed

# etcd's own default member name, used when a manifest has no --name (old kubeadm versions).
ETCD_DEFAULT_NAME = 'default'
RESTORED_SUFFIX = re.compile(r'-restored-[0-9]{8}T[0-9]{6}Z$')
OPS_BOX = 'the ops box'
MIN_BUMP_VERSIONS = 'etcdctl 3.4.27+, etcdctl/etcdutl 3.5.10+ or etcdutl 3.6+'
STEPS = ('stop', 'start_etcd', 'wait_quorum', 'start_apiserver', 'verify')
# Members start this many seconds apart. kubeadm runs etcd with its initial corruption check: a starting member asks
# every peer for its hash, and a peer that is itself starting (port bound, not yet serving) holds the answer for up to
# 7 s; a peer that is down answers at once (connection refused) and one that already serves, quickly. Staggered
# starts keep each member clear of the others' start.
START_STAGGER_SECONDS = 0.3


class PlanError(Exception):
    """Bad input to the planner itself (a bug in the role, not a problem of the cluster)."""


def refusal(host, cause, fix):
    return {'host': host, 'cause': cause, 'fix': fix}


def refusal_text(refusals, intro='The restore was refused before anything was changed'):
    """One message: a first line that names the first host and cause, then one line per refusal."""
    lines = ['%s: %s' % (intro, '; '.join('%s: %s' % (r['host'], r['cause']) for r in refusals[:1]))
             + (' (and %d more problem%s, below)' % (len(refusals) - 1, '' if len(refusals) == 2 else 's')
                if len(refusals) > 1 else '')]
    for item in refusals:
        lines.append('- %s: %s. Fix: %s' % (item['host'], item['cause'].rstrip('.'), item['fix']))
    lines.append('Nothing was stopped or changed in the cluster.')
    return '\n'.join(lines)


# --- the snapshot -----------------------------------------------------------------------------

def parse_snapshot_spec(spec, play_hosts):
    """'latest' | 's3://<bucket>/<key>' | '<inventory host>:<path>' | '<path on the ops box>' -> (kind, host, path).

    kind is 'latest', 's3' (host is then the bucket, path the key), 'node' or 'local'. A colon only
    makes a node path when what precedes it is a host of the play and what follows is absolute, so
    ops-box paths with colons still work.
    """
    spec = (spec or '').strip()
    if not spec:
        raise ValueError('No snapshot given. Run with -e snapshot=<path of a .db file on the ops box>, '
                         '-e snapshot=<control plane>:<path on that node>, -e snapshot=s3://<bucket>/<key> '
                         'or -e snapshot=latest.')
    if spec == 'latest':
        return 'latest', None, None
    if spec.startswith('s3://'):
        bucket, _sep, key = spec[len('s3://'):].partition('/')
        if not bucket or not key or key.endswith('/'):
            raise ValueError('snapshot=%s is not an object: give s3://<bucket>/<key of the .db, .db.age or '
                             '.db.zst.age object>, or snapshot=latest with the role\'s s3_bucket variable set.' % spec)
        return 's3', bucket, key
    host, sep, path = spec.partition(':')
    if sep and host in play_hosts and path.startswith('/'):
        return 'node', host, posixpath.normpath(path)
    return 'local', None, spec


def stored_name(name):
    """How a backup file is stored, from its name: 'x.db.zst.age' -> plain 'x.db', compressed, encrypted.

    The metadata of every form is '<plain>.meta.json' (etcd_backup writes it unencrypted)."""
    base = posixpath.basename(name)
    encrypted = base.endswith('.age')
    plain = base[:-len('.age')] if encrypted else base
    compressed = encrypted and plain.endswith('.zst')
    if compressed:
        plain = plain[:-len('.zst')]
    return {'name': base, 'plain': plain, 'encrypted': encrypted, 'compressed': compressed,
            'metadata': plain + '.meta.json'}


def _newest_complete(candidates, key, stamp):
    """The newest snapshot (plain or encrypted .db) whose metadata lies beside it; ties: name."""
    names = set(c[key] for c in candidates)
    complete = []
    for c in candidates:
        form = stored_name(c[key])
        if form['plain'].endswith('.db') and posixpath.join(posixpath.dirname(c[key]), form['metadata']) in names:
            complete.append(c)
    if not complete:
        return None
    return sorted(complete, key=lambda c: (c[stamp], c[key]))[-1][key]


def choose_latest(candidates):
    """The newest backup written by etcd_backup: a .db (or .db.age, .db.zst.age) whose .meta.json sits beside it.

    candidates: [{path, mtime}] of every file found; newest by metadata 'created' order is not
    available without reading them, so the file's modification time decides (ties: name).
    """
    return _newest_complete(candidates, 'path', 'mtime')


def choose_latest_object(objects):
    """The newest complete backup in an object listing [{key, last_modified (sortable), ...}]:
    its snapshot object and its .meta.json object (uploaded last by etcd_backup) both exist."""
    return _newest_complete(objects, 'key', 'last_modified')


def resolve_source(spec, play_hosts, backup_dir_files=None, objects=None, bucket=None, prefix='', identity_given=True,
                   role='etcd_restore'):
    """Where the snapshot comes from and what must happen to it before the restore reads it.

    Returns {kind: local|node|s3, host, path (local or node), bucket, key, metadata_key, encrypted,
    compressed, plain (the plaintext file name)}; raises ValueError with the operator's fix.
    backup_dir_files: [{path, mtime}] for 'latest' on the ops box; objects: the listing of
    `bucket`/`prefix` for 'latest' from object storage (bucket set means object storage is configured).
    """
    kind, host, path = parse_snapshot_spec(spec, play_hosts)
    source = {'kind': kind, 'host': None, 'path': None, 'bucket': None, 'key': None, 'metadata_key': None}
    if kind == 'latest' and bucket:
        key = choose_latest_object(objects or [])
        if key is None:
            raise ValueError('snapshot=latest, but s3://%s/%s holds no complete backup (a .db, .db.age or '
                             '.db.zst.age object with its .meta.json). Check %s_s3_bucket and '
                             '%s_s3_prefix, or pass -e snapshot=s3://<bucket>/<key>. Nothing was '
                             'changed.' % (bucket, prefix or '', role, role))
        kind, host, path = 's3', bucket, key
    elif kind == 'latest':
        path = choose_latest(backup_dir_files or [])
        if path is None:
            return dict(source, kind='latest')
        kind = 'local'
    form = stored_name(path)
    if kind == 's3':
        source.update(kind='s3', bucket=host, key=path,
                      metadata_key=posixpath.join(posixpath.dirname(path), form['metadata']))
    elif kind == 'node':
        if form['encrypted']:
            raise ValueError('%s on %s is encrypted: its identity lives where the restore runs, not on the '
                             'nodes. Copy it to the ops box (with its .meta.json) and pass -e snapshot=<path '
                             'there>, or restore it from object storage. Nothing was changed.' % (path, host))
        source.update(kind='node', host=host, path=path)
    else:
        source.update(kind='local', path=path)
    if form['encrypted'] and not identity_given:
        raise ValueError('%s is encrypted with age and no identity was given: set %s_age_identity_file to '
                         'the identity file on the ops box, or %s_age_identity (e.g. from an AWX '
                         'credential), with the key whose public key was in etcd_backup_age_recipients. Nothing was '
                         'changed.' % ('s3://%s/%s' % (host, path) if kind == 's3' else path, role, role))
    source.update(encrypted=form['encrypted'], compressed=form['compressed'], plain=form['plain'])
    return source


def check_snapshot(facts):
    """Refusals for the snapshot file; facts as gathered on the ops box or on the node holding it.

    facts: {kind, host, path, exists, is_regular, size, sha256, has_trailing_hash, bolt_error,
            metadata (dict or None), metadata_error (str or None)}
    """
    where = facts.get('host') or OPS_BOX
    path = facts['path']
    problems = []
    if path.endswith('.part'):
        return [refusal(where, '%s is a .part file: etcdctl writes it while a snapshot is still being saved and '
                               'renames it when complete, so it is not a snapshot' % path,
                        'restore the finished file (the same name without .part).')]
    if not facts.get('exists'):
        return [refusal(where, '%s does not exist' % path,
                        'pass the path of a snapshot file (a .db written by playbooks/backup.yml or by etcdctl '
                        'snapshot save), <control plane>:<path>, or -e snapshot=latest.')]
    if not facts.get('is_regular'):
        return [refusal(where, '%s is not a regular file' % path, 'pass the path of the snapshot file itself.')]
    if facts.get('bolt_error'):
        problems.append(refusal(where, '%s is not a complete etcd snapshot: %s' % (path, facts['bolt_error']),
                                'restore another backup; this file is truncated, damaged or not an etcd database.'))
    elif not facts.get('has_trailing_hash'):
        problems.append(refusal(
            where, '%s (%s bytes) does not end with the SHA-256 that etcdctl snapshot save appends: it is truncated, '
                   'damaged, or a raw copy of member/snap/db' % (path, facts.get('size')),
            'restore a complete snapshot written by etcdctl snapshot save or playbooks/backup.yml.'))
    if facts.get('metadata_error'):
        problems.append(refusal(where, 'the metadata file %s.meta.json cannot be read: %s' % (path, facts['metadata_error']),
                                'restore another backup, or move the broken .meta.json away to restore the file as a '
                                'plain snapshot (its origin then cannot be checked).'))
    meta = facts.get('metadata')
    if meta is not None and not facts.get('metadata_error'):
        if meta.get('sha256') != facts.get('sha256') or _int(meta.get('size')) != _int(facts.get('size')):
            problems.append(refusal(
                where, '%s is corrupt or not the file its metadata describes: sha256 %s and %s bytes here, the metadata '
                       'says %s and %s bytes' % (path, facts.get('sha256'), facts.get('size'), meta.get('sha256'),
                                                 meta.get('size')),
                'restore another backup, or copy this one again from where it was taken.'))
    return problems


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def snapshot_summary(facts):
    """What the plan needs to know of the snapshot once it passed check_snapshot."""
    meta = facts.get('metadata') or {}
    status = facts.get('status') or {}
    return {
        'kind': facts['kind'],
        'host': facts.get('host'),
        'path': facts['path'],
        'sha256': facts['sha256'],
        'size': int(facts['size']),
        'has_metadata': bool(facts.get('metadata')),
        'revision': _int(meta.get('revision', status.get('revision'))),
        'total_key': _int(meta.get('total_key', status.get('total_key'))),
        'created': meta.get('created'),
        'etcd_version': meta.get('etcd_version'),
        'source_cluster_id': meta.get('cluster_id'),
        'source_members': [m.get('name') for m in meta.get('members') or [] if isinstance(m, dict)],
        'source_peers': dict((m.get('name') or '', sorted(_comparable_peer_url(u) for u in m.get('peer_urls') or []))
                             for m in meta.get('members') or [] if isinstance(m, dict)),
    }


def _comparable_peer_url(url):
    try:
        return normalize_peer_url(url)
    except ValueError:
        return url


def snapshot_origin(snapshot, members, old_cluster_id):
    """Whether the snapshot comes from this cluster, by its metadata.

    The member names and peer URLs decide, not the cluster ID alone: every restore gives the cluster a new ID,
    so a backup taken before the last restore carries the previous one. Returns {'verdict': 'same' | 'other' |
    'unknown', 'text': the plan's sentence}.
    """
    peers = snapshot.get('source_peers') or {}
    if not snapshot.get('has_metadata') or not peers:
        return {'verdict': 'unknown',
                'text': 'snapshot has no metadata (a plain etcdctl snapshot save file): its origin cannot be checked '
                        'against metadata; make sure it is a snapshot of this cluster'}
    target = dict((m['name'], sorted(_comparable_peer_url(u) for u in m['peer_urls'])) for m in members)
    if not any(peers.values()):
        # metadata that records member names only: compare the names
        target = dict((name, []) for name in target)
    source_id = snapshot.get('source_cluster_id') or '?'
    described = ', '.join('%s=%s' % (name, ','.join(urls)) for name, urls in sorted(peers.items()))
    if peers == target:
        text = 'snapshot taken %s from this cluster (same members and peer URLs: %s), cluster %s, etcd %s' % (
            snapshot.get('created') or '?', described, source_id, snapshot.get('etcd_version') or '?')
        if old_cluster_id and source_id != old_cluster_id:
            text += '; the running cluster has another ID (%s): it was restored or re-created since' % old_cluster_id
        return {'verdict': 'same', 'text': text}
    differences = []
    for name in sorted(set(peers) | set(target)):
        if name not in target:
            differences.append('member %s is not in this cluster' % name)
        elif name not in peers:
            differences.append('this cluster\'s member %s is not in the snapshot\'s' % name)
        elif peers[name] != target[name]:
            differences.append('member %s has peer URL %s there, %s here'
                               % (name, ','.join(peers[name]), ','.join(target[name])))
    return {'verdict': 'other',
            'text': 'snapshot taken %s from ANOTHER cluster: cluster %s with members %s (%s)'
                    % (snapshot.get('created') or '?', source_id, described, '; '.join(differences))}


# --- the plan -----------------------------------------------------------------------------------

def _minor(version):
    parsed = version_tuple(version)
    return parsed[:2] if parsed else None


def new_data_dir(old_data_dir, timestamp):
    """A sibling of the data dir the manifest uses now, named after this run; a previous restore's
    suffix is replaced, not stacked."""
    return '%s-restored-%s' % (RESTORED_SUFFIX.sub('', old_data_dir.rstrip('/')), timestamp)


def _member_plan(host, node, snapshot, options, refusals, warnings):
    info = node.get('info') or {}
    member = info.get('member') or {}
    tools = info.get('tools') or {}
    manifest = member.get('unit') or member.get('manifest_path') or posixpath.join(options['manifests_dir'], 'etcd.yaml')
    name = member.get('name')
    if not name:
        name = ETCD_DEFAULT_NAME
        warnings.append('%s: %s has no --name, so etcd runs as member "%s" (its default); the restore keeps that name.'
                        % (host, manifest, ETCD_DEFAULT_NAME))
    peer_urls = []
    for url in member.get('peer_urls') or []:
        try:
            peer_urls.append(normalize_peer_url(url))
        except ValueError as exc:
            refusals.append(refusal(host, '%s: --initial-advertise-peer-urls has %r, which etcd would not accept (%s)'
                                    % (manifest, url, exc), 'fix the peer URL in the manifest.'))
    if not member.get('peer_urls'):
        refusals.append(refusal(host, '%s has no --initial-advertise-peer-urls; the restore needs each member\'s peer URL'
                                % manifest, 'add the flag to the manifest (kubeadm writes https://<node IP>:2380).'))
    old_dir = member.get('data_dir_host_path') or ''
    etcd_version = member.get('image_version') or ''
    restore_tool = tools.get('restore_tool') or ''
    tool_version = tools.get(restore_tool + '_version') if restore_tool else ''
    if not restore_tool:
        minor = '.'.join(str(p) for p in (_minor(etcd_version) or ())) or '<cluster minor>'
        refusals.append(refusal(
            host, 'no etcd restore tool (etcdutl, or etcdctl before 3.6) was found for the cluster\'s etcd %s'
                  % (etcd_version or '(unknown version)'),
            'install the etcd tools of version %s.x on this node (for 3.5+: etcdutl from the etcd release; for 3.4: '
            'etcdctl), or set etcd_restore_etcdutl_path / etcd_restore_etcdctl_path.' % minor))
    elif etcd_version and _minor(tool_version) != _minor(etcd_version):
        wanted = 'etcdctl' if _minor(etcd_version) == (3, 4) else 'etcdutl'
        refusals.append(refusal(
            host, 'the restore tool is %s %s, but the cluster runs etcd %s (%s)'
                  % (restore_tool, tool_version, etcd_version, member.get('image') or manifest),
            'install %s %s.x on this node or set etcd_restore_%s_path to one.'
            % (wanted, '.'.join(str(p) for p in _minor(etcd_version)), wanted)))
    staged = snapshot['path'] if snapshot['kind'] == 'node' and snapshot['host'] == host else \
        posixpath.join(options['staging_dir'], posixpath.basename(snapshot['path']))
    run_dir = posixpath.join(options['runs_dir'], options['timestamp'])
    plan = {
        'host': host,
        'name': name,
        'peer_urls': sorted(peer_urls),
        'client_urls': list(member.get('advertise_client_urls') or []),
        'manifest': manifest,
        'held_manifest': posixpath.join(options['holding_dir'], 'etcd.yaml'),
        'run_dir': run_dir,
        'prepared_manifest': posixpath.join(run_dir, 'etcd.yaml'),
        'original_manifest': posixpath.join(run_dir, 'etcd.yaml.orig'),
        'replaced_dir': posixpath.join(run_dir, 'replaced'),
        'failed_dir': posixpath.join(run_dir, 'failed'),
        'old_data_dir': old_dir,
        'old_data_dir_exists': bool((info.get('data_dir_stat') or {}).get('exists')),
        'new_data_dir': new_data_dir(old_dir, options['timestamp']) if old_dir else '',
        'staged_snapshot': staged,
        'stage_copy': staged != snapshot['path'] or snapshot['kind'] != 'node',
        'etcd_version': etcd_version,
        'restore_tool': restore_tool,
        'restore_tool_version': tool_version or '',
        'supports_bump_revision': bool(tools.get('supports_bump_revision')),
        'readyz_url': readyz_url(node),
        # static_pod: etcd.yaml of a kubeadm node; systemd: a unit of an external etcd host (etcd_member_info units).
        'kind': member.get('kind') or 'static_pod',
        'unit': member.get('unit'),
        'user': member.get('user'),
        'data_dir_location': member.get('data_dir_location'),
        'unit_backup_dir': posixpath.join(run_dir, 'units'),
    }
    _check_space(host, info, plan, snapshot, options, refusals)
    return plan


def _check_space(host, info, plan, snapshot, options, refusals):
    """The one free-space rule (module_utils/space.py), per filesystem of this node.

    info['data_dir_free_space'] is the filesystem of the data dir's parent (where the restored dir goes);
    info['free_space'] lists the paths the role asked about (the staging dir).
    """
    data_parent = posixpath.dirname(plan['new_data_dir'] or '/')
    data = info.get('data_dir_free_space') or {
        'device': 'data-dir', 'free_bytes': info.get('free_bytes'), 'checked_path': data_parent}
    by_path = dict((entry.get('path'), entry) for entry in info.get('free_space') or [])
    # Unknown filesystem of the staging dir: count the copy on the data dir's, the cautious choice.
    staging = by_path.get(options['staging_dir']) or data
    if data.get('free_bytes') is None or staging.get('free_bytes') is None:
        return
    needed = restore_space_needed(snapshot['size'], {'data_dir': (data['device'], True),
                                                     'staged_snapshot': (staging['device'], plan['stage_copy'])},
                                  options.get('disk_margin_bytes', 0))
    free = {data['device']: int(data['free_bytes']), staging['device']: int(staging['free_bytes'])}
    where = {staging['device']: staging.get('checked_path') or options['staging_dir'],
             data['device']: data.get('checked_path') or data_parent}
    for device, amount in sorted(needed.items(), key=lambda item: str(item[0])):
        if free[device] < amount:
            refusals.append(refusal(
                host, 'only %d MiB free on the filesystem of %s; the restore needs %d MiB there (the restored data dir: '
                      'the %d-byte snapshot + 10 %% + etcd\'s 64 MiB WAL%s, + etcd_restore_disk_margin_bytes %d)'
                      % (free[device] // 2 ** 20, where[device], -(-amount // 2 ** 20), snapshot['size'],
                         ', and the staged copy of the snapshot' if device == staging['device'] and plan['stage_copy']
                         else '', options.get('disk_margin_bytes', 0)),
                'free some space there, or lower etcd_restore_disk_margin_bytes if you are sure.'))


MEMBER_PLAYBOOK = 'playbooks/member.yml'


def external_topology(topology, play_hosts, lost_hosts=None, control_plane_hosts=None, resume=False, rollback=False):
    """Who does what in the play: with stacked etcd every host is a control plane running a member; with external
    etcd (an inventory group of etcd hosts) the etcd hosts run the members and the other hosts of the play are the
    control planes, whose API servers stop before etcd and start after it. Refusals when the play does not hold
    every etcd host, holds no control plane, declares hosts lost (for stacked control planes only), or has etcd hosts
    that are control planes too (control_plane_hosts: the inventory's control-plane group), or is asked to resume or
    undo an unfinished run (resume, rollback): a restore of external etcd writes no journal to do that from."""
    if not topology or topology.get('name') != 'external':
        return {'name': 'stacked', 'etcd_hosts': [], 'control_planes': list(play_hosts), 'refusals': [],
                'plan_line': (topology or {}).get('plan_line') or 'stacked etcd on the control planes'}
    group = topology['etcd_group']
    etcd_hosts = [host for host in play_hosts if host in topology['etcd_hosts']]
    control_planes = [host for host in play_hosts if host not in topology['etcd_hosts']]
    refusals = []
    missing = [host for host in topology['etcd_hosts'] if host not in play_hosts]
    if missing:
        cause = ("the inventory group '%s' lists %s, which %s not in this play (%s); every member is restored at once"
                 % (group, ', '.join(missing), 'is' if len(missing) == 1 else 'are', ', '.join(play_hosts)))
        refusals.append(refusal(
            ', '.join(missing), cause,
            'run playbooks/restore.yml without --limit (it targets the control planes and the etcd group); if those '
            "hosts do not run etcd, remove them from the group '%s'." % group))
    both = [host for host in etcd_hosts if host in (control_plane_hosts or [])]
    if both:
        refusals.append(refusal(
            ', '.join(both), "%s %s in the inventory group '%s' and in the control-plane group: etcd runs beside the API "
                             "server there (kubespray's default layout, etcd as a systemd unit on each control plane); "
                             'restore.yml restores external etcd on hosts of its own only'
                             % (', '.join(both), 'is' if len(both) == 1 else 'are', group),
            'restore it by hand as docs/restore.md, "External etcd", says (backup.yml backs it up as usual).'))
    elif not control_planes:
        refusals.append(refusal(
            ', '.join(play_hosts), 'the play has etcd hosts only; the API servers of the control planes must be '
                                   'stopped before etcd and started after it',
            'run the restore on the control planes and the etcd hosts together (etcd_target_group names the control '
            'planes, default kube_control_plane).'))
    if isinstance(lost_hosts, str):
        lost_hosts = lost_hosts.split(',')
    declared = [str(host).strip() for host in lost_hosts or [] if str(host).strip()]
    if declared:
        refusals.append(refusal(
            ', '.join(declared), 'etcd_restore_lost_hosts declares control planes of stacked etcd lost; with external '
                                 'etcd a restore onto fewer etcd hosts is not supported',
            'bring the lost etcd host back (a new host with the same inventory name and peer URL) and restore onto '
            'every etcd host, or restore by hand onto the others (docs/restore.md, "External etcd").'))
    if resume or rollback:
        refusals.append(refusal(
            ', '.join(etcd_hosts + control_planes),
            '%s finishes or undoes an unfinished run from the journals on the nodes, and a restore of external etcd '
            'writes none' % ('etcd_restore_resume' if resume else 'etcd_restore_rollback (playbooks/restore_abort.yml)'),
            'finish or undo an interrupted restore of external etcd by hand: docs/restore.md, "External etcd", says '
            'where each unit\'s and etcd.yaml\'s previous files and the held manifests are; a new restore.yml run with '
            'a snapshot restores again.'))
    return {'name': 'external', 'etcd_group': group, 'etcd_hosts': etcd_hosts, 'control_planes': control_planes,
            'refusals': refusals, 'plan_line': topology.get('plan_line') or ''}


def readyz_url(node):
    """The API server's /readyz of a node: its manifest's, else its inventory address on the secure port."""
    apiserver = ((node or {}).get('info') or {}).get('apiserver') or {}
    if apiserver.get('readyz_url'):
        return apiserver['readyz_url']
    address = (node or {}).get('address')
    if not address:
        return None
    return 'https://%s:%s/readyz' % ('[%s]' % address if ':' in address else address,
                                     apiserver.get('secure_port') or 6443)


def declared_lost(play_hosts, lost_hosts):
    """The control planes declared lost (etcd_restore_lost_hosts), in play order, or the refusals.

    lost_hosts: a list of inventory hostnames or one comma-separated string. Every one must be a host of the play
    (a typo must not restore a smaller cluster by accident), and at least one control plane must remain.
    """
    if isinstance(lost_hosts, str):
        lost_hosts = lost_hosts.split(',')
    wanted = [str(host).strip() for host in lost_hosts or [] if str(host).strip()]
    refusals = []
    unknown = [host for host in wanted if host not in play_hosts]
    if unknown:
        refusals.append(refusal(', '.join(unknown), 'etcd_restore_lost_hosts names %s, which %s not a control plane '
                                'of this play (%s)' % (', '.join(unknown), 'is' if len(unknown) == 1 else 'are',
                                                       ', '.join(play_hosts)),
                                'name inventory hosts of the restore\'s group exactly as the inventory does.'))
    lost = [host for host in play_hosts if host in wanted]
    if play_hosts and len(lost) == len(play_hosts):
        refusals.append(refusal(', '.join(play_hosts), 'every control plane of the play is declared lost; nothing '
                                'would be left to restore onto', 'leave at least one control plane out of '
                                'etcd_restore_lost_hosts.'))
    return {'lost': lost, 'refusals': refusals}


def _url_host(url):
    rest = str(url).split('://', 1)[-1].split('/', 1)[0]
    if rest.startswith('['):
        return rest[1:].split(']', 1)[0]
    return rest.rsplit(':', 1)[0] if ':' in rest else rest


def lost_member_identities(lost, old_cluster, snapshot):
    """Which etcd member each control plane declared lost ran, from what can be read without it.

    lost: [{host, address}]. A member is the lost host's when its name is the hostname, or when its peer URL is at
    the host's address; the running cluster's member list is asked first, then the snapshot's metadata. A lost
    host whose member is found in neither keeps name None (nothing is known of it, nothing is assumed).
    Returns [{host, address, name, peer_urls, client_urls, source}].
    """
    old_members = [m for m in (old_cluster or {}).get('members') or [] if m.get('name')]
    snap_members = [{'name': name, 'peer_urls': list(urls or [])}
                    for name, urls in sorted(((snapshot or {}).get('source_peers') or {}).items())]
    found = []
    for entry in lost:
        host, address = entry['host'], entry.get('address') or entry['host']
        match, source = None, None
        for candidates, where in ((old_members, 'the running cluster'), (snap_members, "the snapshot's metadata")):
            for member in candidates:
                if member['name'] == host or address in [_url_host(u) for u in member.get('peer_urls') or []]:
                    match, source = member, where
                    break
            if match:
                break
        found.append({'host': host, 'address': address, 'name': match['name'] if match else None,
                      'peer_urls': sorted(match.get('peer_urls') or []) if match else [],
                      'client_urls': list(match.get('client_urls') or []) if match else [],
                      'source': source})
    return found


def quorum_text(before, after):
    """'3 -> 2 members: quorum 2, tolerates no failure (before: 1)'."""
    def tolerates(count):
        failures = (count - 1) // 2
        return 'no failure' if failures == 0 else '%d failure%s' % (failures, '' if failures == 1 else 's')
    return ('%d -> %d members: quorum %d, tolerates %s (before: %s)'
            % (before, after, after // 2 + 1, tolerates(after), tolerates(before)))


def _check_lost(lost, old_cluster, refusals):
    """A control plane declared lost whose etcd member still answers is refused: it would keep serving the old
    data beside the restored cluster."""
    endpoints = (old_cluster or {}).get('endpoints') or []
    for member in lost:
        if not member['name']:
            continue
        answering = [e.get('endpoint') for e in endpoints if e.get('name') == member['name'] and e.get('healthy')]
        if answering:
            refusals.append(refusal(
                member['host'], 'it is declared lost (etcd_restore_lost_hosts), but its etcd member %s answers healthy '
                                'at %s' % (member['name'], ', '.join(answering)),
                'restore with every control plane; or, if it must go, stop its etcd first (move etcd.yaml out of the '
                'manifests dir, or stop its kubelet) so that it cannot serve the old data beside the restored cluster.'))


SURVIVOR = 'survivor'


def choose_survivor(hosts, client_urls, cluster, lost=()):
    """The member to recover from when the cluster lost its quorum and no snapshot is to be used
    (-e snapshot=survivor): the one with the highest raft index (then revision) among the control planes of the play.

    hosts: the control planes of the play that are not declared lost; client_urls: {host: [its member's client URLs]};
    cluster: etcd_cluster_health's ``cluster`` read at all of them (without a quorum it lists, in ``endpoints``, what
    each member that answers on its own reports). Returns {'survivor': {host, endpoint, raft_index, revision,
    cluster_id, member_id}, 'candidates': [...], 'lines': [...], 'refusals': [...]}.
    """
    refusals = []
    if (cluster or {}).get('members'):
        leader = cluster.get('leader_name')
        refusals.append(refusal(
            ', '.join(hosts), 'the etcd cluster still lists its members%s, so it has a quorum: there is nothing to '
                              'recover from a survivor' % (' (leader %s)' % leader if leader else ''),
            'replace the broken or lost members with playbooks/member.yml (no data is lost), or restore a snapshot '
            '(-e snapshot=latest).'))
        return {'survivor': None, 'candidates': [], 'lines': [], 'refusals': refusals}
    by_url = dict((entry.get('endpoint'), entry) for entry in (cluster or {}).get('endpoints') or [])
    candidates, silent = [], []
    for host in hosts:
        answers = [by_url[url] for url in client_urls.get(host) or [] if url in by_url and by_url[url].get('member_id')]
        if not answers:
            silent.append(host)
            continue
        entry = answers[0]
        candidates.append({'host': host, 'endpoint': entry['endpoint'], 'raft_index': entry.get('raft_index') or 0,
                           'revision': entry.get('revision') or 0, 'cluster_id': entry.get('cluster_id'),
                           'member_id': entry.get('member_id'), 'error': entry.get('error')})
    for host in silent:
        refusals.append(refusal(
            host, 'its etcd member does not answer, so its raft index is unknown: its data may be newer than the '
                  'others\' and would be lost',
            'start its etcd (put etcd.yaml back in the manifests dir) so that it can be compared, or declare it lost '
            '(-e etcd_restore_lost_hosts=%s) if its data is gone.' % ','.join(list(lost) + [host])))
    ids = sorted(set(c['cluster_id'] for c in candidates))
    if len(ids) > 1:
        refusals.append(refusal(', '.join(c['host'] for c in candidates), 'the members that answer belong to different '
                                'clusters (%s)' % ', '.join('%s: %s' % (c['host'], c['cluster_id']) for c in candidates),
                                'recover each cluster on its own, or declare the stray control planes lost.'))
    if not candidates and not silent:
        refusals.append(refusal(', '.join(hosts) or '-', 'no etcd member answers on any control plane of the play',
                                'restore a snapshot (-e snapshot=latest).'))
    if refusals:
        return {'survivor': None, 'candidates': candidates, 'lines': [], 'refusals': refusals}
    ranked = sorted(candidates, key=lambda c: (-int(c['raft_index']), -int(c['revision']), hosts.index(c['host'])))
    chosen = ranked[0]
    described = ['%s raft index %s, revision %s (%s)' % (c['host'], c['raft_index'], c['revision'], c['error'] or 'answers')
                 for c in ranked]
    lines = ['NO QUORUM: recovering from the surviving member with the highest raft index, without a snapshot',
             'candidates: %s' % '; '.join(described),
             'chosen: %s (member %s of cluster %s): a snapshot is taken from it now (a member serves one without a '
             'leader) and restored on %s, as any snapshot' % (chosen['host'], chosen['member_id'], chosen['cluster_id'],
                                                              ', '.join(hosts)),
             'kept: every write %s had applied (revision %s); lost: whatever only the lost members had received and '
             '%s had not (nothing, if it was in sync when the quorum was lost)%s'
             % (chosen['host'], chosen['revision'], chosen['host'],
                '' if len(ranked) == 1 else '; the data of %s is replaced by %s\'s'
                % (', '.join(c['host'] for c in ranked[1:]), chosen['host']))]
    return {'survivor': chosen, 'candidates': ranked, 'lines': lines, 'refusals': []}


def plan_restore(hosts, nodes, snapshot_facts, old_cluster, options):
    """The restore plan, or the refusals that stop it.

    hosts: the inventory hosts of the play, in order. nodes: {host: {info: etcd_member_info result,
    held: [manifest names already held aside], address: ansible_host}}. snapshot_facts: as for
    check_snapshot (plus 'status' when read on a node). old_cluster: etcd_cluster_health's
    ``cluster`` (or None when unreachable). options: timestamp, bump_revision, disk_margin_bytes,
    staging_dir, runs_dir, manifests_dir, holding_dir, restart_kubelet.
    Returns {'plan': dict or None, 'refusals': [...], 'warnings': [...]}.
    """
    for key in ('timestamp', 'staging_dir', 'runs_dir', 'manifests_dir', 'holding_dir'):
        if not options.get(key):
            raise PlanError('option %s is required' % key)
    refusals = list(check_snapshot(snapshot_facts))
    warnings = []
    if refusals:
        return {'plan': None, 'refusals': refusals, 'warnings': warnings}
    snapshot = snapshot_summary(snapshot_facts)
    members = []
    for host in hosts:
        node = nodes.get(host) or {}
        if not node.get('info'):
            refusals.append(refusal(host, 'no facts were gathered from this control plane',
                                    'check that it is reachable and run the restore again.'))
            continue
        refusals.extend(_pod_refusals(host, node, options))
        members.append(_member_plan(host, node, snapshot, options, refusals, warnings))

    control_planes = _control_plane_plans(options.get('control_planes'), options, refusals)
    names = [m['name'] for m in members]
    for name in sorted(set(n for n in names if names.count(n) > 1)):
        refusals.append(refusal(', '.join(m['host'] for m in members if m['name'] == name),
                                'these control planes all run etcd member "%s"; member names must be unique' % name,
                                'give every etcd.yaml its own --name (kubeadm uses the node name).'))
    seen_urls = {}
    for member in members:
        for url in member['peer_urls']:
            if url in seen_urls:
                refusals.append(refusal('%s, %s' % (seen_urls[url], member['host']),
                                        'both advertise the peer URL %s' % url,
                                        'fix --initial-advertise-peer-urls in their etcd.yaml.'))
            seen_urls[url] = member['host']

    old = _old_cluster_summary(old_cluster)
    lost = lost_member_identities(options.get('lost') or [], old_cluster, snapshot)
    _check_lost(lost, old_cluster, refusals)
    lost_names = [m['name'] for m in lost if m['name']]
    origin = snapshot_origin(snapshot, members + [m for m in lost if m['name']], old['cluster_id'])
    survivor = options.get('survivor')
    if survivor:
        origin = {'verdict': SURVIVOR,
                  'text': 'snapshot taken now from %s\'s etcd member %s without a quorum (raft index %s, revision %s), '
                          'the most advanced survivor of cluster %s'
                          % (survivor['host'], survivor['member_id'], survivor['raft_index'], survivor['revision'],
                             survivor['cluster_id'])}
        warnings.append('recovering without a snapshot from %s\'s data (-e snapshot=survivor). etcd\'s recovery guide '
                        'prefers a snapshot: if a recent backup is good enough, restore it instead.' % survivor['host'])
    snapshot['origin'] = origin['verdict']
    snapshot['origin_text'] = origin['text']
    if origin['verdict'] == 'other':
        if options.get('allow_other_cluster'):
            warnings.append('restoring a snapshot of another cluster, as acknowledged (etcd_restore_allow_other_cluster):'
                            ' %s' % origin['text'])
        else:
            refusals.append(refusal(
                ', '.join(hosts), origin['text'].replace('snapshot taken', 'the snapshot was taken', 1),
                'restore a snapshot of this cluster; to migrate or clone a cluster on purpose, run again with '
                '-e etcd_restore_allow_other_cluster=true.'))
    unplanned = [n for n in old['members'] if n and n not in names and n not in lost_names]
    if unplanned:
        refusals.append(refusal(
            ', '.join(unplanned), 'member(s) %s of the running cluster are not hosts of this play' % ', '.join(unplanned),
            'run the restore against every control plane at once (no --limit), or remove those members first.'))
    if old['unnamed']:
        warnings.append('the running cluster lists %d member(s) that never started (no name); the restored cluster '
                        'will not have them.' % old['unnamed'])
    for learner in old['learners']:
        if learner in names:
            warnings.append('member %s is a learner in the running cluster; the restore makes it a voting member.'
                            % learner)

    bump = int(options.get('bump_revision') or 0)
    no_bump_hosts = [m['host'] for m in members if not m['supports_bump_revision']]
    if bump and no_bump_hosts:
        warnings.append('no revision bump: the restore tool on %s cannot do --bump-revision/--mark-compacted (%s can); '
                        'restart every client of the API server after the restore.'
                        % (', '.join(no_bump_hosts), MIN_BUMP_VERSIONS))
        bump = 0
    for member in members:
        member['bump_revision'] = bump
    # A leader told to stop while its followers stop too spends seconds trying to hand its leadership over;
    # once they are gone it stops at once. So etcd stops on the old leader's node last.
    leader = old['leader_name'] if len(members) > 1 else None
    for member in members:
        member['stop_etcd_last'] = bool(leader) and member['name'] == leader
        member['stop_etcd_after_closed'] = [url for other in members if other is not member
                                            for url in other['peer_urls']] if member['stop_etcd_last'] else []
    for index, member in enumerate(members):
        member['start_delay'] = round(index * START_STAGGER_SECONDS, 1)

    token = 'kubeops-%s' % options['timestamp']
    initial_cluster = ','.join('%s=%s' % (m['name'], url) for m in members for url in m['peer_urls'])
    expected = {}
    if not refusals:
        try:
            ids = cluster_member_ids(initial_cluster, token)
        except ValueError as exc:
            refusals.append(refusal(', '.join(hosts), 'the new cluster cannot be formed: %s' % exc,
                                    'fix the member names and peer URLs in the manifests.'))
        else:
            expected = {'cluster_id': id_hex(compute_cluster_id(ids.values())),
                        'member_ids': dict((name, id_hex(value)) for name, value in ids.items())}
            for member in members:
                member['member_id'] = expected['member_ids'][member['name']]
    if refusals:
        return {'plan': None, 'refusals': refusals, 'warnings': warnings}
    plan = {
        'timestamp': options['timestamp'],
        'token': token,
        'initial_cluster': initial_cluster,
        'names': names,
        'endpoints': _unique(url for m in members for url in m['client_urls']),
        'snapshot': snapshot,
        'bump_revision': bump,
        'min_revision': (snapshot['revision'] or 0) + bump,
        'old_cluster': old,
        'cluster_id': expected['cluster_id'],
        'members': members,
        'warnings': warnings,
        'restart_kubelet': bool(options.get('restart_kubelet', True)),
        'lost': lost,
        'lost_names': lost_names,
        'topology': 'external' if control_planes else 'stacked',
        # External etcd: the control planes whose API servers stop before etcd and start after it.
        'control_planes': control_planes,
    }
    if lost:
        warnings.append('restoring onto %s only: %s %s declared lost and left out of the new cluster (%s); nothing is '
                        'done on %s. Keep %s off (its kubelet stopped) until `ansible-playbook %s -e '
                        'etcd_member_host=<host>` adds it back to the restored cluster, one host at a time.'
                        % (', '.join(names), ', '.join(m['host'] for m in lost), 'is' if len(lost) == 1 else 'are',
                           quorum_text(len(members) + len(lost), len(members)), 'it' if len(lost) == 1 else 'them',
                           'it' if len(lost) == 1 else 'them', MEMBER_PLAYBOOK))
    return {'plan': plan, 'refusals': [], 'warnings': warnings}


def _pod_refusals(host, node, options):
    """A node whose static pods cannot be stopped (static_pod's check-mode refusal) or are held aside already."""
    refusals = []
    if node.get('pods_error'):
        refusals.append(refusal(host, _first_line(node['pods_error']),
                                'put every control-plane manifest back in %s, once, and run the restore again.'
                                % options['manifests_dir']))
    for name in node.get('held') or []:
        refusals.append(refusal(
            host, '%s is already held in %s instead of %s, so that pod is not running (an interrupted restore?)'
                  % (name, options['holding_dir'], options['manifests_dir']),
            'check it and move it back to %s (docs/restore.md, "Rollback"), then run the restore again.'
            % options['manifests_dir']))
    return refusals


def _control_plane_plans(control_planes, options, refusals):
    """External etcd: each control plane's part (its API server's /readyz), or refusals for what keeps its pods
    from being stopped. control_planes: [{'host', 'node': {info: etcd_member_info, held, pods_error, address}}]."""
    plans = []
    for entry in control_planes or []:
        host, node = entry['host'], entry.get('node') or {}
        if not node.get('info'):
            refusals.append(refusal(host, 'no facts were gathered from this control plane',
                                    'check that it is reachable and run the restore again.'))
            continue
        refusals.extend(_pod_refusals(host, node, options))
        plans.append({'host': host, 'readyz_url': readyz_url(node)})
    return plans


def _unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _old_cluster_summary(cluster):
    cluster = cluster or {}
    members = cluster.get('members') or []
    return {
        'cluster_id': cluster.get('cluster_id') or '',
        'healthy': bool(cluster.get('healthy')),
        'members': [m.get('name') or '' for m in members if m.get('name')],
        'learners': [m.get('name') for m in members if m.get('is_learner') and m.get('name')],
        'unnamed': len([m for m in members if not m.get('name')]),
        'problems': list(cluster.get('problems') or []),
        'revision': cluster.get('revision'),
        'leader_name': cluster.get('leader_name') or '',
    }


def plan_lines(plan, check_mode=False):
    """The plan as an operator reads it before anything changes."""
    snap = plan['snapshot']
    old = plan['old_cluster']
    external = plan.get('topology') == 'external'
    lines = ['Restore plan for %d %s%s:'
             % (len(plan['members']), 'etcd host(s) of external etcd, with control plane(s) %s'
                % ', '.join(cp['host'] for cp in plan['control_planes']) if external else 'control plane(s)',
                ' (CHECK MODE: nothing will be changed)' if check_mode else '')]
    where = 'on %s' % snap['host'] if snap['kind'] == 'node' else 'on the ops box'
    described = 'revision %s, %s keys' % (snap['revision'], snap['total_key']) if snap['revision'] is not None \
        else 'revision and keys read when staged'
    lines.append('snapshot %s %s: %s, %d bytes, sha256 %s, etcd\'s own trailing hash verified'
                 % (snap['path'], where, described, snap['size'], snap['sha256']))
    lines.append(snap['origin_text'] + ('; matches its metadata' if snap['has_metadata'] else ''))
    if old['cluster_id']:
        lines.append('current cluster: id %s, %s, members %s'
                     % (old['cluster_id'], 'healthy' if old['healthy'] else 'UNHEALTHY: ' + '; '.join(old['problems']),
                        ', '.join(old['members'])))
    else:
        lines.append('current cluster: not reachable (%s)' % ('; '.join(old['problems']) or 'no answer'))
    for m in plan.get('lost') or []:
        lines.append('declared lost: %s (%s), left out of the new cluster; nothing is done on it'
                     % (m['host'], 'member %s, peer %s, from %s' % (m['name'], ','.join(m['peer_urls']) or '?', m['source'])
                        if m['name'] else 'its member is unknown: neither the running cluster nor the snapshot names one '
                                          'at %s' % m['address']))
    if plan.get('lost'):
        lines.append('quorum: %s' % quorum_text(len(plan['members']) + len(plan['lost']), len(plan['members'])))
    lines.append('new cluster token %s: new cluster id %s' % (plan['token'], plan['cluster_id']))
    lines.append('initial cluster %s' % plan['initial_cluster'])
    if plan['bump_revision']:
        lines.append('revision bump +%d with --mark-compacted (every watch is cancelled; informers relist)'
                     % plan['bump_revision'])
    else:
        lines.append('revision bump: none')
    for warning in plan['warnings']:
        lines.append('WARNING: %s' % warning)
    if external:
        lines.extend(_external_steps(plan))
        return lines
    lines.append('while the cluster serves: copy the snapshot to every node, restore every member into its new data '
                 'dir, prepare its new etcd.yaml outside the manifests dir')
    last = [m['host'] for m in plan['members'] if m.get('stop_etcd_last')]
    lines.append('outage: stop kube-apiserver, kube-controller-manager, kube-scheduler, then etcd, everywhere%s; swap in '
                 'the prepared etcd.yaml and start etcd everywhere, %.1f s apart; wait for %d healthy members and one '
                 'leader; start the API servers (/readyz), controller-managers and schedulers%s'
                 % (' (on %s, the leader, last)' % last[0] if last else '', START_STAGGER_SECONDS, len(plan['members']),
                    ', restart the kubelets' if plan['restart_kubelet'] else ''))
    for m in plan['members']:
        lines.append('%s: member %s id %s (peer %s), etcd %s, restore with %s %s, bump %s: data dir %s%s -> %s; '
                     'prepared manifest %s'
                     % (m['host'], m['name'], m['member_id'], ','.join(m['peer_urls']), m['etcd_version'] or '?',
                        m['restore_tool'], m['restore_tool_version'], m['bump_revision'] or 'none', m['old_data_dir'],
                        '' if m['old_data_dir_exists'] else ' (missing)', m['new_data_dir'], m['prepared_manifest']))
    return lines


def _external_steps(plan):
    """The steps and members of a restore of external etcd, as plan_lines words them."""
    lines = ['while the cluster serves: copy the snapshot to every etcd host, restore every member into its new data '
             'dir (owned by the service user, 0700), prepare its new etcd.yaml outside the manifests dir (static pods) '
             'or check that its unit can be repointed (systemd)',
             'outage: stop kube-apiserver, kube-controller-manager and kube-scheduler on %s; stop etcd on every etcd '
             'host; point every member at its restored data dir where it is defined (the etcd.yaml, the unit, its '
             'environment or config file; daemon-reload for a unit) and start etcd everywhere; wait for %d healthy '
             'members and one leader; start the API servers (/readyz), controller-managers and schedulers'
             % (', '.join(cp['host'] for cp in plan['control_planes']), len(plan['members']))]
    for m in plan['members']:
        where = ('unit %s, data dir set by %s, runs as %s' % (m['unit'], _location_text(m['data_dir_location']), m['user'])
                 if m['kind'] == 'systemd' else 'static pod, prepared manifest %s' % m['prepared_manifest'])
        lines.append('%s: member %s id %s (peer %s), etcd %s, restore with %s %s, bump %s: data dir %s%s -> %s; %s'
                     % (m['host'], m['name'], m['member_id'], ','.join(m['peer_urls']), m['etcd_version'] or '?',
                        m['restore_tool'], m['restore_tool_version'], m['bump_revision'] or 'none', m['old_data_dir'],
                        '' if m['old_data_dir_exists'] else ' (missing)', m['new_data_dir'], where))
    return lines


def _location_text(location):
    location = location or {}
    if location.get('kind') == 'flag':
        return '--data-dir in ExecStart of %s' % location.get('file')
    if location.get('kind') == 'env':
        return '%s in %s' % (location.get('variable'), location.get('file'))
    if location.get('kind') == 'config':
        return 'key %s of %s' % (location.get('key'), location.get('file'))
    return '?'


# --- after the members were prepared (still before the stop) ------------------------------------

def check_prepared(plan, results):
    """Refusals when a prepared member differs from the plan; the snapshot's revision and keys.

    results: {host: etcd_restore result}. Every member must have the planned IDs, the snapshot's
    SHA-256, and the same revision as every other member.
    """
    refusals = []
    revisions = {}
    for member in plan['members']:
        result = results.get(member['host']) or {}
        host = member['host']
        if result.get('member_id') != member['member_id'] or result.get('cluster_id') != plan['cluster_id']:
            refusals.append(refusal(host, 'the prepared member %s has id %s in cluster %s; the plan says %s in %s'
                                    % (member['name'], result.get('member_id'), result.get('cluster_id'),
                                       member['member_id'], plan['cluster_id']),
                                    'report this as a bug with the plan and the restore result.'))
        if result.get('snapshot_sha256') != plan['snapshot']['sha256']:
            refusals.append(refusal(host, 'the staged snapshot %s has sha256 %s, not %s'
                                    % (member['staged_snapshot'], result.get('snapshot_sha256'),
                                       plan['snapshot']['sha256']),
                                    'check the disk of this node and run the restore again.'))
        revisions[host] = result.get('snapshot_revision')
    expected = plan['snapshot']['revision']
    for host, revision in sorted(revisions.items()):
        if expected is not None and revision != expected:
            refusals.append(refusal(host, 'the staged snapshot has revision %s; the metadata says %s'
                                    % (revision, expected), 'restore another backup.'))
    if expected is None and len(set(revisions.values())) > 1:
        refusals.append(refusal(', '.join(sorted(revisions)), 'the staged copies differ in revision: %s'
                                % ', '.join('%s=%s' % item for item in sorted(revisions.items())),
                                'run the restore again.'))
    first = results.get(plan['members'][0]['host']) or {}
    facts = {'revision': first.get('snapshot_revision'), 'total_key': first.get('snapshot_total_key')}
    return {'refusals': refusals, 'snapshot': facts}


# --- after the restore --------------------------------------------------------------------------

def build_report(plan, results, final_cluster, timings):
    """The report of a successful restore: a dict for set_stats and the lines an operator reads.

    results: {host: etcd_restore result}; final_cluster: etcd_cluster_health's ``cluster``;
    timings: {started, prepared, downtime_started, downtime_ended, finished} (epoch seconds).
    """
    endpoints = final_cluster.get('endpoints') or []
    members = []
    for member in plan['members']:
        result = results.get(member['host']) or {}
        revision_now = [e.get('revision') for e in endpoints if e.get('member_id') == member['member_id']]
        members.append({
            'host': member['host'],
            'name': member['name'],
            'old_data_dir': member['old_data_dir'],
            'new_data_dir': member['new_data_dir'],
            'member_id': member['member_id'],
            'cluster_id': plan['cluster_id'],
            'revision': result.get('revision'),
            'revision_now': revision_now[0] if revision_now else None,
            'restore_seconds': result.get('duration_seconds'),
            'tool': '%s %s' % (member['restore_tool'], member['restore_tool_version']),
            'manifest_backup': posixpath.join(member['replaced_dir'], 'etcd.yaml') if member.get('kind', 'static_pod')
            == 'static_pod' else None,
            'unit': member.get('unit'),
            'unit_backup_dir': member.get('unit_backup_dir') if member.get('kind') == 'systemd' else None,
            'run_dir': member['run_dir'],
        })

    def span(start, end):
        if timings.get(start) is None or timings.get(end) is None:
            return None
        return round(float(timings[end]) - float(timings[start]), 1)

    snap = plan['snapshot']
    report = {
        'status': 'restored',
        'snapshot': snap['path'],
        'snapshot_host': snap['host'],
        'snapshot_kind': snap['kind'],
        'snapshot_sha256': snap['sha256'],
        'snapshot_revision': snap['revision'],
        'snapshot_origin': snap.get('origin'),
        'bump_revision': plan['bump_revision'],
        'revision': final_cluster.get('revision'),
        'token': plan['token'],
        'old_cluster_id': plan['old_cluster']['cluster_id'],
        'cluster_id': final_cluster.get('cluster_id'),
        'leader': final_cluster.get('leader_name'),
        'duration_seconds': span('started', 'finished'),
        'prepare_seconds': span('started', 'prepared'),
        'downtime_seconds': span('downtime_started', 'downtime_ended'),
        'members': members,
        'lost_hosts': [m['host'] for m in plan.get('lost') or []],
        'warnings': list(plan['warnings']),
        'topology': plan.get('topology') or 'stacked',
        'control_planes': [cp['host'] for cp in plan.get('control_planes') or []],
    }
    lines = ['etcd restored from %s%s (revision %s%s) in %s s; the API servers were down for %s s'
             % (snap['path'], ' on %s' % snap['host'] if snap['host'] else '', snap['revision'],
                ', bumped by %d' % plan['bump_revision'] if plan['bump_revision'] else ', not bumped',
                report['duration_seconds'], report['downtime_seconds']),
             'cluster ID %s -> %s, revision now %s, leader %s'
             % (report['old_cluster_id'] or 'unknown', report['cluster_id'], report['revision'], report['leader'])]
    for m in members:
        lines.append('%s: member %s id %s in cluster %s, revision %s (restored at %s) with %s in %s s, data dir %s '
                     '(kept) -> %s, %s'
                     % (m['host'], m['name'], m['member_id'], m['cluster_id'], m['revision_now'], m['revision'],
                        m['tool'], m['restore_seconds'], m['old_data_dir'], m['new_data_dir'],
                        'previous etcd.yaml kept in %s' % m['manifest_backup'] if m['manifest_backup'] else
                        'unit %s repointed, its previous files kept in %s' % (m['unit'], m['unit_backup_dir'])))
    for m in plan.get('lost') or []:
        lines.append('%s: declared lost, not a member of the restored cluster; nothing was done on it. Keep it off '
                     'until you bring it back: ansible-playbook %s -i <inventory> -e etcd_member_host=%s'
                     % (m['host'], MEMBER_PLAYBOOK, m['host']))
    for warning in plan['warnings']:
        lines.append('WARNING: %s' % warning)
    lines.append('The previous data directories are kept as they were; remove them yourself once the cluster is '
                 'known good.')
    return {'report': report, 'lines': lines}


def verify_identity(plan, final_cluster):
    """Problems when the running cluster is not the one the plan produced (a stale member answering)."""
    problems = []
    if final_cluster.get('cluster_id') != plan['cluster_id']:
        problems.append('etcd runs as cluster %s, but the restore produced %s (before the restore: %s)'
                        % (final_cluster.get('cluster_id'), plan['cluster_id'],
                           plan['old_cluster']['cluster_id'] or 'unknown'))
    running = dict((m.get('name'), m.get('id')) for m in final_cluster.get('members') or [])
    for member in plan['members']:
        if running.get(member['name']) != member['member_id']:
            problems.append('member %s runs as %s, the restore gave it %s'
                            % (member['name'], running.get(member['name']), member['member_id']))
    if problems:
        problems.append('a stale member or a reused token is answering; see docs/restore.md, "cluster ID mismatch"')
    return problems


# --- rollback -------------------------------------------------------------------------------------

def failure_text(failures):
    """'on cp2 at step start_etcd (task "..."): msg; ...' from [{host, step, task, msg}]; the same failure on
    several hosts is said once, naming them all."""
    grouped = []
    for f in failures:
        gist = _first_line(f.get('msg'))
        # The cause read inside the node (its etcd container's log) comes first: the check's words follow.
        key = (f.get('step') or '?', f.get('task') or '?', '%s; %s' % (f['cause'], gist) if f.get('cause') else gist)
        for entry in grouped:
            if entry[1] == key:
                entry[0].append(f['host'])
                break
        else:
            grouped.append(([f['host']], key))
    parts = ['on %s at step %s (task "%s"): %s' % ((', '.join(hosts),) + key) for hosts, key in grouped]
    return '; '.join(parts) if parts else 'a control plane failed or became unreachable without a task error'


def healthy_hosts(plan, cluster):
    """The control planes whose member answered healthy in a cluster_health result."""
    healthy = set(entry.get('endpoint') for entry in (cluster or {}).get('endpoints') or [] if entry.get('healthy'))
    return [member['host'] for member in plan['members'] if healthy.intersection(member['client_urls'])]


# The steps after which etcd may not be up on a node: the rollback reads its container first.
ETCD_UP_STEPS = ('start_etcd', 'wait_quorum')


def attribute_failures(plan, failures, containers=None):
    """A failed wait for the restored members is checked from one node, but it is the failure of the nodes whose
    members did not become healthy: name those (all of them when none answered), not the node the check ran on.

    containers: {host: one sentence on its etcd container (static_pod_info's summary)}, read before the rollback
    touched anything; a failure to start etcd or to reach a quorum carries those of the hosts it names as its
    cause (for a taken port: `... its log ends with: ...: bind: address already in use`)."""
    containers = containers or {}
    attributed = []
    for failure in failures:
        cluster = failure.get('cluster')
        hosts = [failure['host']]
        if failure.get('step') == 'wait_quorum' and cluster:
            healthy = healthy_hosts(plan, cluster)
            hosts = [member['host'] for member in plan['members'] if member['host'] not in healthy] or \
                [member['host'] for member in plan['members']]
            failure = dict(failure, host=', '.join(hosts))
        if failure.get('step') in ETCD_UP_STEPS:
            causes = [containers[host] for host in hosts if containers.get(host)]
            if causes:
                failure = dict(failure, cause='; '.join(causes))
        if failure not in attributed:
            attributed.append(failure)
    return attributed


def _first_line(text, limit=400):
    """The gist of an error for the first line of a message: its first line and, for a multi-line error (a
    command's output, a container's log), its last line, which usually holds the cause."""
    lines = [' '.join(line.split()) for line in str(text or 'no message').splitlines()]
    lines = [line for line in lines if line] or ['no message']

    def cut(line):
        return line if len(line) <= limit else line[:limit] + ' ...'
    if len(lines) == 1:
        return cut(lines[0])
    return '%s [...] %s' % (cut(lines[0]), cut(lines[-1]))


def discarded_text(plan, failures):
    """The message when preparing the members failed: nothing was stopped."""
    return ('The restore was refused before anything was stopped: preparing the members failed %s. The cluster kept '
            'serving and was not changed; whatever this run had prepared of the restored data dirs %s, the run dirs %s '
            'and the staged snapshot copies was removed. Fix the cause, then run the restore again.'
            % (failure_text(failures), ', '.join('%s:%s' % (m['host'], m['new_data_dir']) for m in plan['members']),
               ', '.join('%s:%s' % (m['host'], m['run_dir']) for m in plan['members'])))


def lost_members(plan, answered):
    """The members whose control plane did not run the rollback (unreachable since a step of the outage), and
    whether the others are a quorum of the cluster: then the rollback waits for those only, and the cluster serves.

    answered: {host: {'step': the step it was at}} for every control plane that runs the rollback.
    """
    lost = [member for member in plan['members'] if member['host'] not in answered]
    declared = plan.get('lost_names') or []
    steps = [state.get('step') for state in answered.values() if state and state.get('step')]
    # The old cluster, which the rollback brings back, still counts the members declared lost (they are down).
    total = len(plan['members']) + len(declared)
    down = len(lost) + len(declared)
    return {
        'hosts': [member['host'] for member in lost],
        'names': [member['name'] for member in lost] + list(declared),
        'step': steps[0] if steps else '?',
        'up': total - down,
        'total': total,
        'quorum': 2 * (total - down) > total,
    }


def rolled_back_text(plan, failures, rollback_cluster, moved_aside, lost=None, rollback_failures=(), states=None,
                     options=None, containers_after=None):
    """The message when every node is back on its previous data, or when a quorum of the old cluster serves again
    and some nodes are not back: lost (not answering), their rollback failed (their state as read from them), or
    back on their previous files with a member that did not become healthy again (containers_after: {host: one
    sentence on its etcd container, read after the rollback's wait})."""
    cluster = rollback_cluster or {}
    names = dict((member['name'], member['host']) for member in plan['members'])
    lost_hosts = list((lost or {}).get('hosts') or [])
    failed_hosts = [f['host'] for f in rollback_failures or [] if f['host'] not in lost_hosts]
    down_hosts = [names[name] for name in cluster.get('tolerated_down') or []
                  if names.get(name) and names[name] not in lost_hosts + failed_hosts]
    if lost_hosts or failed_hosts or down_hosts:
        return _rolled_back_partly_text(plan, failures, cluster, moved_aside, lost or {'step': '?'}, lost_hosts,
                                        list(rollback_failures or ()), failed_hosts, down_hosts, states or {},
                                        options or {}, containers_after or {})
    return ('etcd restore FAILED %s. ROLLED BACK: every %s runs its previous data directory again (%s); '
            'etcd cluster %s is %s with members %s; the API servers, controller-managers and schedulers are started '
            'again. Restored data directories, moved aside and kept for diagnosis: %s. Fix the cause, then run the '
            'restore again (see docs/restore.md, "Rollback").'
            % (failure_text(failures), 'etcd host' if plan.get('topology') == 'external' else 'control plane',
               ', '.join('%s:%s' % (m['host'], m['old_data_dir']) for m in plan['members']),
               cluster.get('cluster_id') or '?',
               'healthy' if cluster.get('healthy') else 'running but NOT healthy, as it was before the restore',
               ', '.join(m.get('name') or '?' for m in cluster.get('members') or []) or '?',
               ', '.join(moved_aside) or 'none')) + _declared_lost_text(plan)


def _declared_lost_text(plan):
    if not plan.get('lost'):
        return ''
    return (' The control planes declared lost (%s) were left alone, as they were before this run.'
            % ', '.join(m['host'] for m in plan['lost']))


def _rolled_back_partly_text(plan, failures, cluster, moved_aside, lost, lost_hosts, rollback_failures, failed_hosts,
                             down_hosts, states, options, containers_after):
    members = dict((member['host'], member) for member in plan['members'])
    not_back = set(lost_hosts + failed_hosts + down_hosts)
    back = [member for member in plan['members'] if member['host'] not in set(lost_hosts + failed_hosts)]
    serving = [member for member in back if member['host'] not in not_back]
    causes = ['on %s at step %s: it stopped answering (SSH to it failed; no task error was reported)'
              % (host, lost['step']) for host in lost_hosts]
    if failures:
        causes.append(failure_text(failures))
    first = 'etcd restore FAILED %s' % '; '.join(causes)
    if rollback_failures:
        first += '; then the rollback failed %s' % failure_text(rollback_failures)
    total = len(plan['members']) + len(plan.get('lost_names') or [])
    down = sorted(set(cluster.get('tolerated_down') or []) | set(lost.get('names') or [])
                  | set(plan.get('lost_names') or []))
    lines = [first + '.']
    lines.append('ROLLED BACK on %s: %s previous data director%s again (%s); etcd cluster %s serves with a '
                 'quorum, %d of %d members up (%s down); the API servers, controller-managers and schedulers are '
                 'started again %s.'
                 % (', '.join(m['host'] for m in back), 'it runs its' if len(back) == 1 else 'they run their',
                    'y' if len(back) == 1 else 'ies', ', '.join('%s:%s' % (m['host'], m['old_data_dir']) for m in back),
                    cluster.get('cluster_id') or '?', total - len(down), total, ', '.join(down) or 'none',
                    'on %s' % ', '.join(cp['host'] for cp in plan['control_planes']) if plan.get('control_planes')
                    else 'there'))
    for host in down_hosts:
        member = members[host]
        container = containers_after.get(host)
        if member.get('kind') == 'systemd':
            lines.append(
                'MEMBER DOWN on %s: unit %s points at %s again, but its etcd did not become healthy again within the '
                'wait%s.%s The cluster does not need it to serve; once its etcd runs, it rejoins by itself. On %s, '
                'look at `systemctl status %s` and `journalctl -u %s` (for example a port taken by another process, '
                '`ss -ltnp`); once the cause is fixed, `systemctl restart %s`.'
                % (host, member['unit'], member['old_data_dir'], _endpoint_error(cluster, member),
                   ' Its unit, read after the wait: %s.' % container if container else '', host, member['unit'],
                   member['unit'], member['unit']))
            continue
        lines.append(
            'MEMBER DOWN on %s: its original etcd.yaml is back and points at %s, but its etcd did not become healthy '
            'again within the wait%s.%s The cluster does not need it to serve; once its etcd runs, it rejoins by '
            'itself. On %s, look at the container: `crictl ps -a --name etcd`, then `crictl logs <its ID>` (for example '
            'a port taken by another process, `ss -ltnp`).'
            % (host, member['old_data_dir'], _endpoint_error(cluster, member),
               ' Its container, read after the wait: %s.' % container if container else '', host))
    for host in lost_hosts:
        member = members[host]
        lines.append(
            'NOT ROLLED BACK: %s. Its state is unknown, not assumed: this run may have stopped its etcd, API server, '
            'controller-manager and scheduler (manifests held in %s) and swapped in the restored etcd.yaml (pointing '
            'at %s). When it answers again, run playbooks/restore_abort.yml with the same inventory: it finds this '
            "run in %s's journal and puts it back on %s. By hand instead, on %s: (1) copy %s to %s/etcd.yaml; (2) move "
            'every file from %s back to the manifests dir, etcd.yaml first; (3) check `etcdctl endpoint health '
            "--cluster` and the API server's /readyz."
            % (host, member['held_manifest'].rsplit('/', 1)[0], member['new_data_dir'], host, member['old_data_dir'],
               host, member['original_manifest'], member['manifest'].rsplit('/', 1)[0],
               member['held_manifest'].rsplit('/', 1)[0]))
    for host in failed_hosts:
        member = members.get(host)
        if member is None:
            # External etcd: a control plane, which runs no member; only its API server pods were stopped.
            lines.append(
                'NOT ROLLED BACK: %s, its rollback failed (see above): its kube-apiserver, kube-controller-manager and '
                'kube-scheduler may still be held in %s. Fix the cause there, then move those manifests back to %s and '
                "check the API server's /readyz." % (host, options.get('holding_dir'), options.get('manifests_dir')))
            continue
        lines.append(
            'NOT ROLLED BACK: %s, its rollback failed (see above). As read from it: %s. Fix the cause there, then run '
            "playbooks/restore_abort.yml with the same inventory: it finds this run in %s's journal and puts it back on "
            '%s.' % (host, _state_line(member, states.get(host) or {}, options), host, member['old_data_dir']))
    lines.append('Restored data directories, moved aside and kept for diagnosis: %s. Fix the cause, then run the '
                 'restore again once every %s %s (see docs/restore.md, "Rollback").%s'
                 % (', '.join(moved_aside) or 'none',
                    'etcd host' if plan.get('topology') == 'external' else 'control plane',
                    'answers' if lost_hosts else 'serves',
                    _declared_lost_text(plan)))
    if not serving:
        lines.append('No control plane of this run serves with its member healthy.')
    return ' '.join(lines)


def _endpoint_error(cluster, member):
    errors = [entry.get('error') for entry in cluster.get('endpoints') or []
              if entry.get('endpoint') in member['client_urls'] and entry.get('error')]
    return ' (%s)' % _first_line(errors[0], 200) if errors else ''


def _state_line(member, state, options):
    """'cp2: etcd.yaml is active in ... and points at ...; held manifests: ...', as read from the node."""
    if not state.get('answered'):
        return ('%s: did not answer; its state is unknown (previous data dir %s, restored %s)'
                % (member['host'], member['old_data_dir'], member['new_data_dir']))
    if member.get('kind') == 'systemd':
        return ('%s: unit %s points at %s (previous %s, restored %s); its files as they were before the restore are '
                'kept in %s' % (member['host'], member['unit'], state.get('etcd_data_dir') or 'an unreadable data '
                                'directory', member['old_data_dir'], member['new_data_dir'], member['unit_backup_dir']))
    active, held = state.get('active') or [], state.get('held') or []
    if 'etcd.yaml' in active:
        where = 'is active in %s' % options.get('manifests_dir')
    elif 'etcd.yaml' in held:
        where = 'is HELD in %s (etcd stopped)' % options.get('holding_dir')
    else:
        where = 'was not found in either directory'
    return ('%s: etcd.yaml %s and points at %s (previous %s, restored %s); held manifests: %s; original etcd.yaml '
            'kept as %s' % (member['host'], where, state.get('etcd_data_dir') or 'an unreadable data directory',
                            member['old_data_dir'], member['new_data_dir'], ', '.join(sorted(held)) or 'none',
                            member['original_manifest']))


def rollback_incomplete_text(plan, failures, rollback_failures, states, options):
    """The message when the rollback itself could not finish: each node's state, read from it, and the hand steps.

    states: {host: {answered (bool), active: [manifest names in manifests_dir], held: [names in holding_dir],
             etcd_data_dir (str or None)}}; a node that did not answer is said to be unknown, never guessed.
    """
    lines = ['ROLLBACK INCOMPLETE. The restore failed %s; then the rollback failed %s. State of every control plane now:'
             % (failure_text(failures), failure_text(rollback_failures) if rollback_failures
                else 'a control plane failed or became unreachable')]
    for member in plan['members']:
        lines.append(_state_line(member, states.get(member['host']) or {}, options))
    if plan.get('topology') == 'external':
        lines[0] = lines[0].replace('State of every control plane now:', 'State of every etcd host now:')
        lines.append(
            'To finish by hand, once the cause is fixed: (1) on each etcd host, point the member back at its previous '
            'data dir - a static pod: copy the original etcd.yaml (%s) to %s/etcd.yaml; a unit: copy its files back '
            'from %s (named after their paths), then `systemctl daemon-reload` and `systemctl restart <unit>`; (2) '
            'check etcdctl endpoint health --cluster; (3) on each control plane (%s), move kube-apiserver.yaml, '
            "kube-controller-manager.yaml and kube-scheduler.yaml from %s back to %s and check each API server's "
            '/readyz. The previous data directories were never written to by the restore.'
            % (plan['members'][0]['original_manifest'], options['manifests_dir'], plan['members'][0]['unit_backup_dir'],
               ', '.join(cp['host'] for cp in plan['control_planes']), options['holding_dir'], options['manifests_dir']))
        return '\n'.join(lines)
    lines.append('Once the cause is fixed and every control plane answers, playbooks/restore_abort.yml with the same '
                 "inventory finishes this rollback from the nodes' journals. To finish by hand instead, on each control "
                 'plane: (1) make %s/etcd.yaml the original (copy %s there if '
                 'etcd.yaml points at the restored dir; a held etcd.yaml pointing at the restored dir moves to %s); '
                 '(2) move every file from %s back to %s, etcd.yaml first, then kube-apiserver.yaml, '
                 'kube-controller-manager.yaml and kube-scheduler.yaml; (3) check etcdctl endpoint health --cluster and '
                 'each API server /readyz; (4) restart the kubelets. The previous data directories were never written '
                 'to by the restore.'
                 % (options['manifests_dir'], plan['members'][0]['original_manifest'], plan['members'][0]['failed_dir'],
                    options['holding_dir'], options['manifests_dir']))
    return '\n'.join(lines)
