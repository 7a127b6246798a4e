#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_tools
short_description: Find or install the etcdctl and etcdutl a kubeadm etcd node needs
version_added: 0.2.0
description:
  - Resolves, on a control plane node, where C(etcdctl) and C(etcdutl) of the cluster's etcd version come from, and
    says which in RV(plan_line). First choice, tools on the host of the cluster's minor version; second, the running
    etcd container's own tools through C(crictl exec); third, the matching etcd release from a mirror
    (O(mirror_url)), installed into a directory the collection owns.
  - The cluster's version is the tag of the etcd image in the static pod manifest (O(manifest_path)), unless
    O(etcd_version) is set.
  - With O(topology=external) (etcd on hosts of its own, no etcd manifest on this control plane) the version is the
    lowest one the members report to C(etcdctl endpoint status), asked with any C(etcdctl) on the host at the
    API server's C(--etcd-servers) with its C(--etcd-cafile), C(--etcd-certfile) and C(--etcd-keyfile) (read from
    O(apiserver_manifest_path)), unless O(etcd_version) is set. The etcd container is then not a source.
  - The container's tools are checked by running C(crictl exec <id> etcdctl version) and C(etcdutl version), not
    assumed from the image. Images C(registry.k8s.io/etcd) up to C(3.5.21-0) and C(3.6.0-0) to C(3.6.4-0) are built
    by Kubernetes and hold C(etcdctl) only (and a shell); C(3.5.24-0) and later, C(3.6.5-0) and later are etcd's
    official images with C(etcdctl) and C(etcdutl) and no shell. A command run through C(crictl exec) sees only the
    container's files and its C(hostPath) volumes, so files must pass through the data directory's volume.
  - With O(install=true) and O(mirror_url), downloads the release tarball, checks it against the line for its exact
    file name in the release's C(SHA256SUMS) (or O(sha256)) before anything is unpacked (a missing line is a
    failure), then unpacks only C(etcd), C(etcdctl) and C(etcdutl) from its top directory
    C(etcd-vX-linux-ARCH/) into C(<install_root>/etcd-vX-linux-ARCH/), atomically (a temporary directory, then a
    rename). Never writes into C(/usr), C(/bin), C(/sbin), C(/lib*), C(/etc) or C(/boot).
  - An installed release whose recorded tarball SHA-256 and binaries match is left as it is (not changed).
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  manifest_path:
    description:
      - kubeadm static pod manifest of etcd on the node; its etcd image tag gives the cluster's etcd version.
      - Not read with O(topology=external).
    type: path
    default: /etc/kubernetes/manifests/etcd.yaml
  topology:
    description:
      - V(stacked), etcd runs on this control plane as the static pod O(manifest_path) (kubeadm's default).
      - V(external), etcd runs on hosts of its own; this control plane reaches it through O(apiserver_manifest_path).
    type: str
    choices: [stacked, external]
    default: stacked
  apiserver_manifest_path:
    description:
      - kube-apiserver static pod manifest whose C(--etcd-servers) and C(--etcd-cafile/--etcd-certfile/--etcd-keyfile)
        reach the cluster to ask its version, with O(topology=external).
    type: path
    default: /etc/kubernetes/manifests/kube-apiserver.yaml
  etcd_version:
    description:
      - The cluster's etcd version (C(3.5.30)) when the image has no usable tag (a digest only). Overrides the tag.
    type: str
  tools:
    description:
      - The tools the caller needs. A 3.4 cluster has no C(etcdutl); there C(etcdctl) restores and only it is needed.
      - The first source that has every needed tool wins.
      - Default both, or what O(purpose) needs.
    type: list
    elements: str
    choices: [etcdctl, etcdutl]
  purpose:
    description:
      - Ask for the tools of a task instead of naming them.
      - V(backup) needs C(etcdctl), plus C(etcdutl) from etcd 3.6 on (its C(etcdctl) no longer checks snapshot files).
      - V(restore) needs C(etcdctl) and C(etcdutl); for 3.4 only C(etcdctl), which restores.
    type: str
    choices: [backup, restore]
  etcdctl_path:
    description:
      - C(etcdctl) on the host to use first (it must be of the cluster's minor version). Default from C(PATH).
    type: path
  etcdutl_path:
    description:
      - C(etcdutl) on the host to use first, as O(etcdctl_path).
    type: path
  mirror_url:
    description:
      - Where the release tarball is, as a template with C({version}) (C(3.5.30)) and C({arch}) (C(amd64)), like
        etcd's release assets
        C(https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-{arch}.tar.gz).
      - C(https://) (certificates verified), C(http://), C(file://) or a plain path on the node (air-gapped sites).
      - Unset, the mirror is not a source.
    type: str
  sha256sums_url:
    description:
      - Template of the release's C(SHA256SUMS) (lines C(<hex>  <file name>)).
      - Default C(SHA256SUMS) in the directory of O(mirror_url), as in etcd's releases.
    type: str
  sha256:
    description:
      - The tarball's SHA-256 as published for the release, when O(sha256sums_url) is not available. Replaces the
        C(SHA256SUMS) check.
    type: str
  install:
    description:
      - Install the release from the mirror when the mirror is the source. Without it the module only reports.
    type: bool
    default: false
  install_root:
    description:
      - Directory the collection owns for installed releases; each goes into C(etcd-vX-linux-ARCH/) below it.
    type: path
    default: /var/lib/kubeops-etcd/tools
  arch:
    description:
      - Architecture in the release's file name (C(amd64), C(arm64), C(ppc64le), C(s390x)). Default from the node.
    type: str
  ca_path:
    description:
      - PEM file of the CA that signed an internal HTTPS mirror. Certificates are always verified.
    type: path
  timeout:
    description:
      - Seconds to wait for the mirror to answer (each request).
    type: int
    default: 60
  crictl_path:
    description:
      - C(crictl) to find and enter the etcd container. Default from PATH.
    type: path
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
    details:
      - Detects everything and reads C(SHA256SUMS) (a missing line fails in check mode too), but downloads and
        installs nothing; C(changed) says whether an install would happen.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A release already installed from the same tarball (same SHA-256) is not installed again.
notes:
  - Not in the C(kubeops.etcd.etcd) action group, since it takes no etcd connection options.
  - When RV(source=container), RV(etcdctl) and RV(etcdutl) are command names inside the container; run them as
    RV(container_exec) followed by the tool and its arguments. C(crictl exec) exits 1 whatever the tool's exit code.
seealso:
  - module: kubeops.etcd.etcd_member_info
'''

EXAMPLES = r'''
- name: Find the etcd tools of each control plane node
  kubeops.etcd.etcd_tools:
  become: true
  register: etcd_tools

- name: Use the node's tools, else the container's, else install the release from an internal mirror
  kubeops.etcd.etcd_tools:
    mirror_url: https://mirror.example.internal/etcd/v{version}/etcd-v{version}-linux-{arch}.tar.gz
    ca_path: /etc/pki/internal-ca.pem
    install: true
  become: true
  register: etcd_tools

- name: Install from a release copied onto the node (air-gapped), with its SHA256SUMS beside it
  kubeops.etcd.etcd_tools:
    mirror_url: /srv/etcd-releases/v{version}/etcd-v{version}-linux-{arch}.tar.gz
    install: true
  become: true

- name: Say where the tools come from
  ansible.builtin.debug:
    msg: "{{ etcd_tools.plan_line }}"
'''

RETURN = r'''
source:
  description: Where the tools come from, C(host), C(container) or C(mirror).
  returned: always
  type: str
  sample: container
plan_line:
  description: One sentence for the run's plan, naming the tools, their version and source.
  returned: always
  type: str
  sample: etcdctl and etcdutl 3.5.30 from the running etcd container 95da0fbbb3436 (registry.k8s.io/etcd:3.5.30-0, official image)
passed_over:
  description: Why each earlier source did not serve.
  returned: always
  type: list
  elements: str
  sample: ["host: no etcdctl on PATH", "host: no etcdutl on PATH"]
etcdctl:
  description:
    - Path of C(etcdctl) to pass as C(etcdctl_path) (C(host), C(mirror)), or the command inside the container
      (C(container)). V(null) when not needed or (O(install=false)) not installed yet.
  returned: always
  type: str
  sample: /var/lib/kubeops-etcd/tools/etcd-v3.5.16-linux-amd64/etcdctl
etcdutl:
  description: As RV(etcdctl), for C(etcdutl) (V(null) for a 3.4 cluster).
  returned: always
  type: str
  sample: /var/lib/kubeops-etcd/tools/etcd-v3.5.16-linux-amd64/etcdutl
etcd_version:
  description: The cluster's etcd version the tools match (its minor version).
  returned: always
  type: str
  sample: 3.5.16
image:
  description: The etcd image of the manifest, V(null) with O(topology=external).
  returned: always
  type: str
  sample: registry.k8s.io/etcd:3.5.16-0
version_source:
  description: Where RV(etcd_version) comes from (the manifest, the O(etcd_version) option or the members' status).
  returned: always
  type: str
  sample: the etcd image tag in /etc/kubernetes/manifests/etcd.yaml
image_kind:
  description: C(official), C(kubernetes-built) or C(unknown), from the image tag.
  returned: always
  type: str
  sample: kubernetes-built
container_id:
  description: ID of the running etcd container, V(null) when none runs.
  returned: always
  type: str
module_options:
  description:
    - The options to give this collection's modules on this node so that they use these tools
      (C(tools_source), C(etcdctl_path), C(etcdutl_path), C(crictl_path)); V(null) values are to be omitted.
  returned: always
  type: dict
  sample: {tools_source: container, etcdctl_path: null, etcdutl_path: null, crictl_path: /usr/bin/crictl}
container_exec:
  description: argv prefix that runs a command in the etcd container (C([crictl, exec, <id>])), V(null) without one.
  returned: always
  type: list
  elements: str
host_tools:
  description: etcdctl and etcdutl found on the host (path and version, V(null) when absent).
  returned: always
  type: dict
container_tools:
  description: What C(crictl exec <id> <tool> version) printed, per tool (V(null) when it failed or no container runs).
  returned: always
  type: dict
mirror:
  description: The mirror install, when O(mirror_url) is set and the mirror is the source.
  returned: when the mirror is the source
  type: dict
  contains:
    url:
      description: The tarball's URL.
      type: str
    sha256sums_url:
      description: The C(SHA256SUMS) checked (V(null) when O(sha256) was given).
      type: str
    sha256:
      description: The tarball's expected SHA-256.
      type: str
    install_dir:
      description: Where the release is (or would be) installed.
      type: str
    installed:
      description: Whether the release is installed now.
      type: bool
    moved_aside:
      description: An earlier, different install in RV(mirror.install_dir), renamed with a timestamp suffix.
      type: str
'''

import json
import os
import platform
import shutil
import tarfile
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves.urllib.parse import unquote, urlparse
from ansible.module_utils.urls import open_url

from ansible_collections.kubeops.etcd.plugins.module_utils.connection import (
    endpoint_versions,
    load_apiserver_manifest,
    resolve_apiserver_connection,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.containers import running_etcd_container
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import move_aside, sha256_file, timestamp
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import parse_version_output
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner, find_tool
from ansible_collections.kubeops.etcd.plugins.module_utils import tools as resolver
from ansible_collections.kubeops.etcd.plugins.module_utils.topology import EXTERNAL, TOPOLOGIES, STACKED, lowest_version

MARKER = '.kubeops-install.json'
CHUNK = 1024 * 1024


def host_tools(module, runner):
    found = {}
    for name in ('etcdctl', 'etcdutl'):
        path = find_tool(module, name, module.params[name + '_path'])
        found[name] = None
        if path:
            result = runner.run([path, 'version'], check_rc=False)
            version = parse_version_output(result.stdout)
            if result.rc == 0 and version:
                found[name] = {'path': path, 'version': version}
    return found


def etcd_container(module, runner):
    """(crictl path, the running etcd container as crictl ps shows it) or (crictl, None)."""
    crictl = find_tool(module, 'crictl', module.params['crictl_path'])
    if not crictl:
        return None, None
    try:
        return crictl, running_etcd_container(runner, crictl)
    except EtcdModuleError as exc:
        module.warn('%s The etcd container is not used.' % exc.msg)
        return crictl, None


def container_tools(runner, crictl, container_id):
    """The version each tool prints through crictl exec (None when the image lacks it or it fails)."""
    found = {}
    for name in ('etcdctl', 'etcdutl'):
        result = runner.run([crictl, 'exec', container_id, name, 'version'], check_rc=False)
        found[name] = parse_version_output(result.stdout) if result.rc == 0 else None
    return found


def open_location(location, params):
    """A readable binary stream of a URL (http, https, file) or a path on the node."""
    parsed = urlparse(location)
    try:
        if parsed.scheme in ('http', 'https'):
            return open_url(location, timeout=params['timeout'], validate_certs=True, ca_path=params['ca_path'],
                            http_agent='kubeops.etcd etcd_tools')
        if parsed.scheme == 'file':
            return open(unquote(parsed.path), 'rb')
        if not parsed.scheme:
            return open(location, 'rb')
    except Exception as exc:  # urllib, ssl and OS errors all say what went wrong in their text
        code = getattr(exc, 'code', None)
        raise EtcdModuleError(
            'Cannot read %s on %s: %s%s. Check mirror_url/sha256sums_url, that the mirror serves this etcd '
            'release%s.' % (location, node_name(), 'HTTP %s ' % code if code else '', to_native(exc),
                            ' and ca_path for an internal CA' if parsed.scheme == 'https' else ''),
            url=location)
    raise EtcdModuleError('Unsupported scheme in %s on %s: use https://, http://, file:// or a path.'
                          % (location, node_name()), url=location)


def expected_sha256(params, version, arch, tarball_url, name):
    if params['sha256']:
        return params['sha256'].strip().lower(), None
    template = params['sha256sums_url'] or resolver.default_sums_template(params['mirror_url'])
    sums_url = resolver.render_template(template, version, arch)
    handle = open_location(sums_url, params)
    try:
        text = to_native(handle.read(4 * CHUNK), errors='surrogate_or_replace')
    finally:
        handle.close()
    try:
        digest = resolver.sha256_for(text, name)
    except ValueError as exc:
        raise EtcdModuleError('%s on %s: %s. Fix the mirror\'s SHA256SUMS.' % (sums_url, node_name(), exc),
                              url=sums_url)
    if digest is None:
        raise EtcdModuleError(
            'SHA256SUMS at %s has no line for %s, so %s cannot be checked and nothing was unpacked on %s (etcd '
            'v3.5.18 shipped such an incomplete SHA256SUMS). Add the line `<sha256>  %s` with the checksum etcd '
            'published for it to the mirror\'s SHA256SUMS, or set sha256 to that checksum.'
            % (sums_url, name, tarball_url, node_name(), name), url=sums_url)
    return digest, sums_url


def read_marker(directory):
    """The install record of directory when it and every binary it lists are intact, else None."""
    try:
        with open(os.path.join(directory, MARKER)) as handle:
            marker = json.load(handle)
        for name, digest in marker['files'].items():
            path = os.path.join(directory, name)
            if not os.access(path, os.X_OK) or sha256_file(path) != digest:
                return None
        return marker
    except (IOError, OSError, ValueError, KeyError, TypeError, AttributeError, EtcdModuleError):
        return None


def download(params, url, directory, expected):
    """Stream url to directory/<name>.part; returns its path after checking the SHA-256."""
    import hashlib
    name = resolver.url_file_name(url)
    part = os.path.join(directory, name + '.part')
    digest = hashlib.sha256()
    handle = open_location(url, params)
    try:
        with open(part, 'wb') as out:
            while True:
                block = handle.read(CHUNK)
                if not block:
                    break
                digest.update(block)
                out.write(block)
    except (IOError, OSError) as exc:
        raise EtcdModuleError('Cannot download %s to %s on %s: %s' % (url, part, node_name(), exc), url=url)
    finally:
        handle.close()
    if digest.hexdigest() != expected:
        raise EtcdModuleError(
            '%s has SHA-256 %s, but the release lists %s: the download is corrupt or the mirror holds another file. '
            'Nothing was unpacked on %s. Replace the mirror\'s copy with the tarball etcd published and retry.'
            % (url, digest.hexdigest(), expected, node_name()), url=url, sha256=digest.hexdigest(), expected=expected)
    return part


def _member_kind(member):
    if member.isfile():
        return 'file'
    if member.isdir():
        return 'dir'
    if member.issym():
        return 'symlink'
    if member.islnk():
        return 'hardlink'
    if member.isfifo():
        return 'fifo'
    if member.ischr() or member.isblk():
        return 'device'
    return 'other'


def unpack(tarball, url, version, arch, stage):
    """etcd/etcdctl/etcdutl of the tarball's top dir into stage (0755); returns {name: sha256}."""
    try:
        with tarfile.open(tarball, 'r:*') as archive:
            members = archive.getmembers()
            try:
                chosen = resolver.select_binaries([(m.name, _member_kind(m), m.linkname) for m in members],
                                                  version, arch)
            except ValueError as exc:
                raise EtcdModuleError(
                    '%s is not an etcd release tarball that can be unpacked safely on %s: %s. Nothing was '
                    'unpacked; point mirror_url at the release etcd published.' % (url, node_name(), exc), url=url)
            digests = {}
            for name, member_name in chosen.items():
                source = archive.extractfile(member_name)
                target = os.path.join(stage, name)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
                with os.fdopen(fd, 'wb') as out:
                    shutil.copyfileobj(source, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(target, 0o755)
                digests[name] = sha256_file(target)
            return digests
    except (tarfile.TarError, EOFError, IOError, OSError) as exc:
        raise EtcdModuleError('Cannot unpack %s on %s: %s. Nothing was installed.' % (url, node_name(), exc), url=url)


def install_release(module, runner, version, arch, url, expected, directory):
    """Download, check, unpack into a temporary dir, check the versions, rename into place. Returns moved_aside."""
    root = os.path.dirname(directory)
    if not os.path.isdir(root):
        os.makedirs(root, 0o755)
    work = tempfile.mkdtemp(prefix='.download-', dir=root)
    moved = None
    try:
        tarball = download(module.params, url, work, expected)
        stage = tempfile.mkdtemp(prefix='.%s-' % os.path.basename(directory), dir=root)
        try:
            files = unpack(tarball, url, version, arch, stage)
            for name in ('etcdctl', 'etcdutl'):
                if name not in files:
                    continue
                result = runner.run([os.path.join(stage, name), 'version'], check_rc=False)
                found = parse_version_output(result.stdout)
                if result.rc != 0 or found != version:
                    raise EtcdModuleError(
                        '%s from %s reports version %s on %s (rc=%s), not %s: the mirror serves the wrong release. '
                        'Nothing was installed.' % (name, url, found, node_name(), result.rc, version),
                        **result.details())
            with open(os.path.join(stage, MARKER), 'w') as handle:
                json.dump({'version': version, 'arch': arch, 'url': url, 'sha256': expected, 'files': files},
                          handle, indent=2, sort_keys=True)
            os.chmod(os.path.join(stage, MARKER), 0o644)
            os.chmod(stage, 0o755)
            if os.path.lexists(directory):
                moved = move_aside(directory, timestamp())
            os.rename(stage, directory)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return moved


def external_version(module, runner):
    """(version, where it comes from) of an external cluster: the lowest version its members report."""
    params = module.params
    path = params['apiserver_manifest_path']
    conn = resolve_apiserver_connection(load_apiserver_manifest(path))
    etcdctl = find_tool(module, 'etcdctl', params['etcdctl_path'])
    if not etcdctl:
        raise EtcdModuleError(
            'No etcdctl on %s to ask the external etcd cluster (%s) its version. Install etcdctl (any 3.x) on this '
            'control plane, or set etcd_version to the version the etcd hosts run.'
            % (node_name(), ', '.join(conn.endpoints)), path=path)
    versions, unreachable = endpoint_versions(runner, etcdctl, conn)
    version = lowest_version(versions)
    if not version:
        raise EtcdModuleError(
            'No member of the external etcd cluster answered etcdctl endpoint status from %s at %s (%s): check that etcd '
            'runs on the etcd hosts and that %s\'s --etcd-cafile/--etcd-certfile/--etcd-keyfile belong to it, or set '
            'etcd_version.' % (node_name(), ', '.join(conn.endpoints),
                               '; '.join('%s: %s' % item for item in sorted(unreachable.items())) or 'no answer', path),
            path=path)
    return version, 'the lowest version the members at %s report' % ', '.join(conn.endpoints)


def cluster_version(module, runner):
    """(version, image, where the version comes from): the option, else the manifest's image or the members."""
    params = module.params
    if params['topology'] == EXTERNAL:
        if params['etcd_version']:
            return params['etcd_version'], None, 'the etcd_version option'
        version, source = external_version(module, runner)
        return version, None, source
    from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest
    manifest = EtcdManifest.load(params['manifest_path'])
    image = manifest.image
    version = params['etcd_version'] or resolver.image_info(image)['version']
    if not resolver.minor(version):
        raise EtcdModuleError(
            'Cannot tell the etcd version on %s: the image %r in %s has no version tag. Set etcd_version.'
            % (node_name(), image, params['manifest_path']), path=params['manifest_path'])
    source = 'the etcd_version option' if params['etcd_version'] else 'the etcd image tag in %s' % manifest.path
    return version, image, source


def run_module(module):
    params = module.params
    runner = Runner(module)
    version, image, version_source = cluster_version(module, runner)
    info = resolver.image_info(image)
    needed = resolver.needed_for(params['purpose'], version) if params['purpose'] \
        else resolver.needed_tools(version, params['tools'] or ['etcdctl', 'etcdutl'])

    host = host_tools(module, runner)
    for name in ('etcdctl', 'etcdutl'):
        given = params[name + '_path']
        if given and host[name] and not resolver.same_minor(host[name]['version'], version):
            # A path set by hand that is not of the cluster's version is a mistake to fix, not a source to skip.
            raise EtcdModuleError(
                '%s_path %s on %s is %s %s, but the cluster runs etcd %s (%s): point it at %s of etcd %s, or unset it '
                'to use the etcd container\'s tools or the mirror.'
                % (name, given, node_name(), name, host[name]['version'], version,
                   params['manifest_path'] if params['topology'] == STACKED else version_source, name,
                   resolver.minor_text(version) + '.x'), path=given)
    # With external etcd no member runs here: a container on this node is not the cluster's.
    crictl, container = etcd_container(module, runner) if params['topology'] == STACKED else (None, None)
    found_in_container = {'etcdctl': None, 'etcdutl': None}
    container_facts = None
    if container:
        found_in_container = container_tools(runner, crictl, container['id'])
        container_facts = {'id': container['id'], 'image': image, 'kind': info['kind'], 'tools': found_in_container}

    mirror = None
    arch = params['arch'] or resolver.arch_of(platform.machine())
    if params['mirror_url']:
        if not arch:
            raise EtcdModuleError('etcd publishes no release for %s (%s); set arch.' % (node_name(), platform.machine()))
        if resolver.distro_dir(params['install_root']):
            raise EtcdModuleError(
                'install_root %s on %s lies in %s, which belongs to the distribution; the collection installs only '
                'into a directory of its own (default /var/lib/kubeops-etcd/tools).'
                % (params['install_root'], node_name(), resolver.distro_dir(params['install_root'])))
        directory = resolver.install_dir(params['install_root'], version, arch)
        url = resolver.render_template(params['mirror_url'], version, arch)
        mirror = {'url': url, 'install_dir': directory, 'installed': False, 'install': params['install'],
                  'check_mode': module.check_mode}

    plan = resolver.choose(version, needed, host, container_facts, mirror)
    changed = False
    mirror_result = None
    if plan['source'] == 'mirror':
        name = resolver.url_file_name(mirror['url'])
        expected, sums_url = expected_sha256(params, version, arch, mirror['url'], name)
        marker = read_marker(mirror['install_dir'])
        installed = bool(marker and marker.get('sha256') == expected)
        mirror_result = {'url': mirror['url'], 'sha256sums_url': sums_url, 'sha256': expected,
                         'install_dir': mirror['install_dir'], 'installed': installed, 'moved_aside': None}
        if not installed and params['install']:
            changed = True
            if not module.check_mode:
                mirror_result['moved_aside'] = install_release(module, runner, version, arch, mirror['url'],
                                                               expected, mirror['install_dir'])
                mirror_result['installed'] = True
        mirror['installed'] = installed
        plan = resolver.choose(version, needed, host, container_facts, mirror)
        if not mirror_result['installed']:
            plan['tools'] = {}
    elif plan['source'] is None:
        raise EtcdModuleError(
            '%s. Install etcdctl%s of etcd %s on the host, or set mirror_url (and install=true) to install the '
            'release into %s.' % (plan['plan_line'][0].upper() + plan['plan_line'][1:],
                                  ' and etcdutl' if 'etcdutl' in needed else '', resolver.minor_text(version),
                                  params['install_root']),
            passed_over=plan['passed_over'], host_tools=host, container_tools=found_in_container)

    result = {
        'changed': changed, 'source': plan['source'], 'plan_line': plan['plan_line'], 'passed_over': plan['passed_over'],
        'etcdctl': plan['tools'].get('etcdctl'), 'etcdutl': plan['tools'].get('etcdutl'),
        'etcd_version': version, 'version_source': version_source, 'image': image, 'image_kind': info['kind'],
        'container_id': container['id'] if container else None,
        'container_exec': [crictl, 'exec', container['id']] if container else None,
        'host_tools': host, 'container_tools': found_in_container,
        'module_options': resolver.module_options(plan['source'], plan['tools'], crictl),
    }
    if mirror_result:
        result['mirror'] = mirror_result
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            manifest_path=dict(type='path', default='/etc/kubernetes/manifests/etcd.yaml'),
            topology=dict(type='str', choices=list(TOPOLOGIES), default=STACKED),
            apiserver_manifest_path=dict(type='path', default='/etc/kubernetes/manifests/kube-apiserver.yaml'),
            etcd_version=dict(type='str'),
            tools=dict(type='list', elements='str', choices=['etcdctl', 'etcdutl']),
            purpose=dict(type='str', choices=['backup', 'restore']),
            etcdctl_path=dict(type='path'),
            etcdutl_path=dict(type='path'),
            mirror_url=dict(type='str'),
            sha256sums_url=dict(type='str'),
            sha256=dict(type='str'),
            install=dict(type='bool', default=False),
            install_root=dict(type='path', default=resolver.DEFAULT_INSTALL_ROOT),
            arch=dict(type='str'),
            ca_path=dict(type='path'),
            timeout=dict(type='int', default=60),
            crictl_path=dict(type='path'),
        ),
        mutually_exclusive=[('tools', 'purpose')],
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
