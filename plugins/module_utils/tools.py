# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which etcdctl/etcdutl a node uses, and what an etcd release tarball must look like (pure logic).

Order (issue 9): tools on the host of the cluster's minor version; the running etcd container's own tools
(``crictl exec``; the Kubernetes-built images have etcdctl only, etcd's official images etcdctl and etcdutl);
the matching release installed from a mirror. The module etcd_tools gathers the facts and acts; everything
here takes plain values and is unit tested.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import posixpath
import re

from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import version_tuple

# registry.k8s.io/etcd tags from which on the image is etcd's official distroless one (etcdctl and etcdutl in
# /usr/local/bin, no shell): 3.5.24-0 and 3.6.5-0 (kubernetes/k8s.io#8530, k/k#134251); every 3.7+ tag.
# Before those (and 3.4), Kubernetes built the image: etcd, etcdctl and /bin/sh, no etcdutl.
OFFICIAL_FROM = {(3, 5): 24, (3, 6): 5}
KIND_OFFICIAL = 'official'
KIND_KUBERNETES = 'kubernetes-built'
KIND_UNKNOWN = 'unknown'

# uname -m -> the arch in etcd's release asset names
ARCHES = {'x86_64': 'amd64', 'amd64': 'amd64', 'aarch64': 'arm64', 'arm64': 'arm64', 'ppc64le': 'ppc64le',
          's390x': 's390x'}
BINARIES = ('etcd', 'etcdctl', 'etcdutl')
DEFAULT_INSTALL_ROOT = '/var/lib/kubeops-etcd/tools'
# never install into (or below) these: they belong to the distribution
DISTRO_DIRS = ('/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/etc', '/boot', '/opt/bin')

_TAG = re.compile(r'^(v)?(\d+)\.(\d+)\.(\d+)(?:-(\d+))?$')


def minor(version):
    parsed = version_tuple(version)
    return parsed[:2] if parsed else None


def minor_text(version):
    """'3.5' from '3.5.30'."""
    parsed = minor(version)
    return '%d.%d' % (parsed[0], parsed[1]) if parsed else str(version)


def same_minor(first, second):
    return minor(first) is not None and minor(first) == minor(second)


def has_etcdutl(version):
    """etcdutl exists from 3.5 on."""
    parsed = version_tuple(version)
    return parsed is not None and parsed >= (3, 5, 0)


def needed_tools(cluster_version, wanted=('etcdctl', 'etcdutl')):
    """The tools a node needs: 3.4 has no etcdutl (its etcdctl restores), so there etcdutl is not needed."""
    tools = [name for name in ('etcdctl', 'etcdutl') if name in wanted]
    if not has_etcdutl(cluster_version):
        tools = ['etcdctl']
    return tools


def needed_for(purpose, cluster_version):
    """The tools a task needs. A backup streams with etcdctl and checks the file with `snapshot status`, which
    etcdctl has until 3.5 and etcdutl from 3.5 on; a restore takes etcdutl from 3.5 on (etcdctl's restore is
    deprecated there and gone in 3.6) and etcdctl for the live cluster."""
    if purpose == 'backup':
        parsed = minor(cluster_version)
        return ['etcdctl', 'etcdutl'] if parsed and parsed >= (3, 6) else ['etcdctl']
    return needed_tools(cluster_version)


def module_options(source, tools, crictl):
    """What this collection's modules take to use the chosen tools (None: omit the option)."""
    if source == 'container':
        return {'tools_source': 'container', 'etcdctl_path': None, 'etcdutl_path': None, 'crictl_path': crictl}
    return {'tools_source': 'host', 'etcdctl_path': (tools or {}).get('etcdctl'),
            'etcdutl_path': (tools or {}).get('etcdutl'), 'crictl_path': None}


def image_info(image):
    """What an etcd image reference says: {image, tag, version, kind, tools, has_shell}.

    ``registry.k8s.io/etcd:3.5.30-0`` (or a mirror of it with the same tag) is official from 3.5.24-0/3.6.5-0 on;
    ``vX.Y.Z`` tags are etcd's own images (gcr.io/etcd-development/etcd, quay.io/coreos/etcd): no shell, etcdutl
    from 3.5. Anything else is unknown: only ``crictl exec`` can tell.
    """
    info = {'image': image, 'tag': None, 'version': None, 'kind': KIND_UNKNOWN, 'tools': [], 'has_shell': None}
    if not image:
        return info
    reference = image.split('@', 1)[0]
    last = reference.rsplit('/', 1)[-1]
    if ':' not in last or last.split(':', 1)[0] != 'etcd':
        return info
    tag = last.split(':', 1)[1]
    info['tag'] = tag
    match = _TAG.match(tag)
    if not match:
        return info
    v_prefix, major, minor_part, patch, build = match.groups()
    version = (int(major), int(minor_part), int(patch))
    info['version'] = '%d.%d.%d' % version
    if v_prefix or build is None:
        official = True
    else:
        first = OFFICIAL_FROM.get(version[:2])
        official = version[:2] > (3, 6) if first is None else version[2] >= first
    # Whether the image has /bin/sh (the Kubernetes-built kind does, the official distroless kind does not).
    info['has_shell'] = not official
    if official:
        info.update(kind=KIND_OFFICIAL, tools=['etcdctl', 'etcdutl'] if version >= (3, 5, 0) else ['etcdctl'])
    else:
        info.update(kind=KIND_KUBERNETES, tools=['etcdctl'])
    return info


def arch_of(machine):
    return ARCHES.get((machine or '').lower())


def render_template(template, version, arch):
    """A URL (or path) template with {version} and {arch} filled in; other text stays as it is."""
    return template.replace('{version}', version).replace('{arch}', arch)


def default_sums_template(tarball_template):
    """SHA256SUMS next to the tarball, as in etcd's releases: .../v{version}/SHA256SUMS."""
    return posixpath.join(posixpath.dirname(tarball_template.split('?', 1)[0]), 'SHA256SUMS')


def url_file_name(url):
    """The file name a URL or path ends with (query and fragment ignored)."""
    return posixpath.basename(url.split('#', 1)[0].split('?', 1)[0])


def top_dir_name(version, arch):
    return 'etcd-v%s-linux-%s' % (version, arch)


def install_dir(root, version, arch):
    return posixpath.join(root, top_dir_name(version, arch))


def distro_dir(path):
    """The distribution directory path is or lies in, else None."""
    path = posixpath.normpath(path)
    for directory in DISTRO_DIRS:
        if path == directory or path.startswith(directory + '/'):
            return directory
    return None


def sha256_for(sums_text, file_name):
    """The SHA-256 that a SHA256SUMS text gives for file_name (``<hex>  <name>`` or ``<hex> *<name>``), else None.

    A file listed twice with different sums is ambiguous: ValueError.
    """
    found = set()
    for line in (sums_text or '').splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, name = parts
        name = name.strip()
        if name.startswith('*'):
            name = name[1:]
        if posixpath.basename(name) == file_name and re.match(r'^[0-9a-fA-F]{64}$', digest):
            found.add(digest.lower())
    if len(found) > 1:
        raise ValueError('%s is listed %d times with different SHA-256 sums' % (file_name, len(found)))
    return found.pop() if found else None


def unsafe_member(name, kind, linkname=None):
    """Why a tar member may not be unpacked anywhere (absolute, '..', a link leaving its dir, a device), else None."""
    if name.startswith('/') or re.match(r'^[A-Za-z]:', name):
        return 'absolute path'
    parts = [part for part in name.split('/') if part not in ('', '.')]
    if '..' in parts:
        return "'..' in the path"
    if kind in ('symlink', 'hardlink'):
        target = linkname or ''
        if target.startswith('/'):
            return 'link to an absolute path (%s)' % target
        base = parts[:-1] if kind == 'symlink' else []
        depth = len(base)
        for part in [p for p in target.split('/') if p not in ('', '.')]:
            depth += -1 if part == '..' else 1
            if depth < 0:
                return 'link leaving the archive (%s)' % target
    if kind in ('device', 'fifo', 'other'):
        return 'a %s' % kind
    return None


def select_binaries(members, version, arch):
    """From (name, kind, linkname) tar members: {binary: member name} for etcd/etcdctl/etcdutl in the top dir.

    Raises ValueError naming the first unsafe member, a binary that is not a regular file, or a missing
    etcdctl (and etcdutl from 3.5).
    """
    top = top_dir_name(version, arch)
    chosen = {}
    for name, kind, linkname in members:
        reason = unsafe_member(name, kind, linkname)
        if reason:
            raise ValueError('unsafe member %s: %s' % (name, reason))
        parts = [part for part in name.split('/') if part not in ('', '.')]
        if len(parts) == 2 and parts[0] == top and parts[1] in BINARIES:
            if kind != 'file':
                raise ValueError('%s is a %s, not a regular file' % (name, kind))
            chosen[parts[1]] = name
    required = ['etcdctl', 'etcdutl'] if has_etcdutl(version) else ['etcdctl']
    missing = [binary for binary in required if binary not in chosen]
    if missing:
        raise ValueError('no %s in %s/ (a release tarball holds %s/{%s})'
                         % (' or '.join(missing), top, top, ','.join(BINARIES if has_etcdutl(version) else BINARIES[:2])))
    return chosen


def _tool_text(names, version):
    return '%s %s' % (' and '.join(names), version)


def choose(cluster_version, needed, host, container, mirror):
    """The plan: where the node's tools come from.

    cluster_version: '3.5.30' (the image tag in the manifest). needed: ['etcdctl', 'etcdutl'] (see needed_tools).
    host: {'etcdctl': {'path', 'version'} or None, 'etcdutl': ...}.
    container: None when no etcd container runs, else {'id', 'image', 'kind', 'tools': {'etcdctl': version or None,
      'etcdutl': ...}} where the versions are what `crictl exec <id> <tool> version` printed (None: it failed).
    mirror: None when no mirror is configured, else {'url', 'install_dir', 'installed', 'install', 'check_mode'}
      (bools; installed: the release is in install_dir now).
    Returns {'source': 'host'|'container'|'mirror'|None, 'tools': {name: path or command}, 'versions': {...},
    'passed_over': [why each earlier source did not serve], 'plan_line': one sentence}.
    """
    passed_over = []
    wanted = ' and '.join(needed)

    host_ok = True
    for name in needed:
        tool = (host or {}).get(name)
        if not tool:
            passed_over.append('host: no %s on PATH' % name)
            host_ok = False
        elif not same_minor(tool['version'], cluster_version):
            passed_over.append('host: %s %s (%s) is not etcd %s\'s minor version'
                               % (name, tool['version'], tool['path'], cluster_version))
            host_ok = False
    if host_ok:
        tools = dict((name, host[name]['path']) for name in needed)
        versions = dict((name, host[name]['version']) for name in needed)
        line = ' and '.join('%s %s (%s)' % (name, versions[name], tools[name]) for name in needed) + ' on the host'
        return _plan('host', tools, versions, passed_over, line)

    if not container:
        passed_over.append('container: no running etcd container (crictl ps)')
    else:
        missing = []
        for name in needed:
            found = (container.get('tools') or {}).get(name)
            if not found:
                missing.append(name)
            elif not same_minor(found, cluster_version):
                passed_over.append('container: its %s is %s, not etcd %s\'s minor version' % (name, found, cluster_version))
                missing = None
                break
        if missing:
            why = 'a %s image has no %s' % (describe_kind(container.get('kind')), ' or '.join(missing)) \
                if container.get('kind') != KIND_UNKNOWN else 'crictl exec found no %s' % ' or '.join(missing)
            passed_over.append('container %s (%s): %s' % (container['id'][:13], container.get('image'), why))
        elif missing is not None:
            versions = dict((name, container['tools'][name]) for name in needed)
            line = '%s from the running etcd container %s (%s, %s)' % (
                _tool_text(needed, versions[needed[0]]), container['id'][:13], container.get('image'),
                describe_kind(container.get('kind')) + ' image')
            return _plan('container', dict((name, name) for name in needed), versions, passed_over, line)

    if not mirror:
        passed_over.append('mirror: none configured (mirror_url)')
        line = 'no %s %s for etcd %s on this node: %s' % (wanted, 'tool' if len(needed) == 1 else 'tools',
                                                          cluster_version, '; '.join(passed_over))
        return _plan(None, {}, {}, passed_over, line)
    directory = mirror['install_dir']
    tools = dict((name, posixpath.join(directory, name)) for name in needed)
    versions = dict((name, cluster_version) for name in needed)
    if mirror.get('installed'):
        state = 'already installed in %s' % directory
    elif mirror.get('install') and mirror.get('check_mode'):
        state = 'would be installed into %s' % directory
    elif mirror.get('install'):
        state = 'installed into %s' % directory
    else:
        state = 'to be installed into %s (install=true does it)' % directory
    line = '%s from the mirror %s, %s' % (_tool_text(needed, cluster_version), mirror['url'], state)
    return _plan('mirror', tools, versions, passed_over, line)


def describe_kind(kind):
    return {KIND_OFFICIAL: 'official', KIND_KUBERNETES: 'Kubernetes-built'}.get(kind, 'unknown')


def _plan(source, tools, versions, passed_over, line):
    return {'source': source, 'tools': tools, 'versions': versions, 'passed_over': passed_over, 'plan_line': line}
