# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The etcd container's own tools, run through ``crictl exec``, and the files they read and write.

A command run with ``crictl exec <id>`` sees only the image's files and the pod's volumes. etcd's official
images have no shell, so nothing is ever run through one: the argv goes to crictl as is. Files reach the
tools through the hostPath volume that holds etcd's data dir (kubeadm mounts ``/var/lib/etcd`` at the same path):
a file elsewhere on the host is linked (or copied) into a private scratch dir inside that volume for the
command, and what a command writes there is moved out to where it belongs. Scratch dirs are named
``.kubeops-xfer-*`` and removed when the command is done; etcd ignores such entries in its data dir.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import json
import os
import posixpath
import shutil

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import timestamp

TOOLS = ('etcdctl', 'etcdutl')
SCRATCH_PREFIX = '.kubeops-xfer-'


def tools_argument_spec():
    """Where etcdctl/etcdutl run (documented in doc_fragments/tools.py)."""
    return dict(
        tools_source=dict(type='str', choices=['host', 'container'], default='host'),
        crictl_path=dict(type='path'),
    )


def running_etcd_container(runner, crictl):
    """The running etcd container of kube-system as `crictl ps -o json` lists it, or None.

    Raises EtcdModuleError when crictl itself fails (the runtime is down or crictl is misconfigured)."""
    result = runner.run([crictl, 'ps', '--name', '^etcd$', '--state', 'running', '-o', 'json'], check_rc=False)
    if result.rc != 0:
        raise EtcdModuleError('`%s` failed on %s (rc=%s): %s. Check that the container runtime runs and that '
                              'crictl reaches it (/etc/crictl.yaml).'
                              % (result.cmd, node_name(), result.rc, result.stderr.strip()), **result.details())
    try:
        listing = json.loads(result.stdout or '{}')
    except ValueError:
        raise EtcdModuleError('`%s` on %s printed no JSON: %s' % (result.cmd, node_name(), result.stdout[:300]),
                              **result.details())
    for container in listing.get('containers') or []:
        labels = container.get('labels') or {}
        if labels.get('io.kubernetes.pod.namespace', 'kube-system') == 'kube-system':
            return container
    return None


def move_file(source, dest):
    """rename(2), or copy + fsync + remove when source and dest lie on different filesystems."""
    try:
        os.rename(source, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    shutil.copy2(source, dest)
    with open(dest, 'rb') as handle:
        os.fsync(handle.fileno())
    os.unlink(source)


def move_tree(source, dest):
    """rename(2) a directory, or copy it (modes and times kept) and remove the source across filesystems."""
    try:
        os.rename(source, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    try:
        shutil.copytree(source, dest, symlinks=True)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    shutil.rmtree(source, ignore_errors=True)


class ContainerTools(object):
    """Runs etcdctl/etcdutl inside the running etcd container, with files passed through its data volume.

    prefix: the argv that enters the container (``[crictl, 'exec', <id>]``). host_dir/mount_dir: the data
    volume as the host and the container see it.
    """

    def __init__(self, prefix, container_id, image, host_dir, mount_dir, volume_error=None):
        self.prefix = list(prefix)
        self.container_id = container_id
        self.image = image
        self.host_dir = (host_dir.rstrip('/') or '/') if host_dir else None
        self.mount_dir = (mount_dir.rstrip('/') or '/') if mount_dir else None
        self.volume_error = volume_error

    def _require_volume(self):
        if not self.host_dir:
            raise EtcdModuleError(
                'The etcd tools on %s run inside the etcd container %s, which sees host files only through its data '
                'volume, and that volume is unknown: %s' % (node_name(), self.container_id[:13], self.volume_error))

    def argv(self, argv):
        return self.prefix + list(argv) if argv and argv[0] in TOOLS else list(argv)

    def inside(self, host_path):
        """The path a host file has in the container, or None when no volume shows it."""
        self._require_volume()
        relative = posixpath.relpath(posixpath.normpath(host_path), self.host_dir)
        if relative == '..' or relative.startswith('../'):
            return None
        return posixpath.normpath(posixpath.join(self.mount_dir, relative))

    def _owner(self):
        info = os.stat(self.host_dir)
        return info.st_uid, info.st_gid

    @contextlib.contextmanager
    def scratch(self, what):
        """A fresh private dir inside the data volume: yields (host path, container path); removed afterwards.

        Owned by the volume's owner, so a container that runs etcd as another user can write there."""
        self._require_volume()
        host = posixpath.join(self.host_dir, '%s%s-%s-%d' % (SCRATCH_PREFIX, what, timestamp(), os.getpid()))
        try:
            os.mkdir(host, 0o700)
        except OSError as exc:
            raise EtcdModuleError(
                'Cannot create %s on %s to pass files to the etcd container (%s): %s. The etcd tools run inside the '
                'container %s and see only its volumes; free space there or install the tools on the host.'
                % (host, node_name(), self.image, exc.strerror or exc, self.container_id[:13]), path=host)
        try:
            uid, gid = self._owner()
            if (uid, gid) != (os.geteuid(), os.getegid()):
                os.chown(host, uid, gid)
            yield host, self.inside(host)
        finally:
            shutil.rmtree(host, ignore_errors=True)

    @contextlib.contextmanager
    def visible(self, host_path):
        """The container path of a host file to read: itself when a volume shows it, else a link (or a copy)
        in a scratch dir, removed afterwards."""
        inside = self.inside(host_path)
        if inside is not None:
            yield inside
            return
        with self.scratch('read') as (host_dir, container_dir):
            name = posixpath.basename(host_path)
            target = posixpath.join(host_dir, name)
            uid, gid = self._owner()
            try:
                if uid != os.geteuid():
                    raise OSError(errno.EPERM, 'the container user may not read a link to a root-owned file')
                os.link(host_path, target)
            except OSError:
                shutil.copyfile(host_path, target)
                os.chmod(target, 0o600)
                if uid != os.geteuid():
                    os.chown(target, uid, gid)
            yield posixpath.join(container_dir, name)


class HostTools(object):
    """The same interface for tools on the host: paths are what they are."""

    container_id = None

    @staticmethod
    def argv(argv):
        return list(argv)

    @staticmethod
    def inside(host_path):
        return host_path

    @contextlib.contextmanager
    def visible(self, host_path):
        yield host_path
