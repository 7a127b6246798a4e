# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import containers
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError

PREFIX = ['/usr/bin/crictl', 'exec', '95da0fbbb3436aaa']


def place(tmp_path, mount='/var/lib/etcd'):
    volume = tmp_path / 'var-lib-etcd'
    volume.mkdir(mode=0o700, exist_ok=True)
    return containers.ContainerTools(PREFIX, PREFIX[2], 'registry.k8s.io/etcd:3.5.30-0', str(volume), mount), volume


def test_only_etcd_tools_are_run_in_the_container(tmp_path):
    tools = place(tmp_path)[0]
    assert tools.argv(['etcdctl', 'version']) == PREFIX + ['etcdctl', 'version']
    assert tools.argv(['etcdutl', 'snapshot', 'status', '/x']) == PREFIX + ['etcdutl', 'snapshot', 'status', '/x']
    assert tools.argv(['/usr/bin/tar', '--list']) == ['/usr/bin/tar', '--list']


def test_host_paths_map_into_the_data_volume_only(tmp_path):
    tools, volume = place(tmp_path)
    assert tools.inside(str(volume)) == '/var/lib/etcd'
    assert tools.inside(str(volume / 'member' / 'snap' / 'db')) == '/var/lib/etcd/member/snap/db'
    assert tools.inside(str(volume) + '-restored-x/member') is None
    assert tools.inside(str(tmp_path / 'elsewhere')) is None
    assert tools.inside(str(volume / '..' / 'escape')) is None


def test_a_scratch_dir_is_private_inside_the_volume_and_removed_afterwards(tmp_path):
    tools, volume = place(tmp_path)
    with tools.scratch('snapshot') as (host_dir, container_dir):
        assert os.path.dirname(host_dir) == str(volume)
        assert os.path.basename(host_dir).startswith('.kubeops-xfer-snapshot-')
        assert container_dir == '/var/lib/etcd/' + os.path.basename(host_dir)
        assert os.stat(host_dir).st_mode & 0o777 == 0o700
        with open(os.path.join(host_dir, 'snapshot.db'), 'w') as handle:
            handle.write('x')
    assert os.listdir(str(volume)) == []


def test_a_scratch_dir_is_removed_when_the_command_fails(tmp_path):
    tools, volume = place(tmp_path)
    with pytest.raises(RuntimeError):
        with tools.scratch('restore'):
            raise RuntimeError('etcdutl failed')
    assert os.listdir(str(volume)) == []


def test_a_file_outside_the_volume_is_linked_in_for_the_command_and_the_link_removed(tmp_path):
    tools, volume = place(tmp_path)
    snapshot = tmp_path / 'staging' / 'snap.db'
    snapshot.parent.mkdir()
    snapshot.write_bytes(b'etcd')
    with tools.visible(str(snapshot)) as seen:
        assert seen.startswith('/var/lib/etcd/.kubeops-xfer-read-') and seen.endswith('/snap.db')
        linked = os.path.join(str(volume), seen[len('/var/lib/etcd/'):])
        assert os.path.samefile(linked, str(snapshot))
    assert os.listdir(str(volume)) == [] and snapshot.read_bytes() == b'etcd'
    # a file the volume shows already is passed by its container path, nothing is linked
    inside = volume / 'member'
    inside.mkdir()
    with tools.visible(str(inside / 'db')) as seen:
        assert seen == '/var/lib/etcd/member/db'
    assert os.listdir(str(volume)) == ['member']


def test_unknown_volume_is_an_error_that_names_the_container(tmp_path):
    tools = containers.ContainerTools(PREFIX, PREFIX[2], 'img', None, None, 'etcd.yaml was not found')
    assert tools.argv(['etcdctl', 'version'])[:3] == PREFIX
    with pytest.raises(EtcdModuleError, match='inside the etcd container 95da0fbbb3436, which sees host files only '
                                              'through its data volume, and that volume is unknown: etcd.yaml was not'):
        tools.inside('/var/lib/kubeops-etcd/backups/x.db')


def test_moves_across_filesystems_copy_then_remove(tmp_path, monkeypatch):
    source = tmp_path / 'a'
    source.mkdir()
    (source / 'member').mkdir()
    (source / 'member' / 'db').write_bytes(b'data')
    os.chmod(str(source / 'member' / 'db'), 0o600)
    single = tmp_path / 'file'
    single.write_bytes(b'snap')
    real_rename = os.rename

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, 'Invalid cross-device link')
    monkeypatch.setattr(os, 'rename', cross_device)
    containers.move_tree(str(source), str(tmp_path / 'b'))
    containers.move_file(str(single), str(tmp_path / 'moved'))
    monkeypatch.setattr(os, 'rename', real_rename)
    assert not source.exists() and not single.exists()
    assert (tmp_path / 'b' / 'member' / 'db').read_bytes() == b'data'
    assert os.stat(str(tmp_path / 'b' / 'member' / 'db')).st_mode & 0o777 == 0o600
    assert (tmp_path / 'moved').read_bytes() == b'snap'


def test_host_tools_change_nothing():
    host = containers.HostTools()
    assert host.argv(['etcdctl', 'version']) == ['etcdctl', 'version']
    with host.visible('/var/lib/kubeops-etcd/backups/x.db') as seen:
        assert seen == '/var/lib/kubeops-etcd/backups/x.db'
