# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import manifest as manifest_utils
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import (
    EtcdManifest, StaticPodManifest, image_version, parse_command_flags)

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'manifests')


def fixture(name):
    return os.path.join(FIXTURES, name)


def read(name):
    with open(fixture(name), 'rb') as handle:
        return handle.read().decode('utf-8')


def changed_lines(before, after):
    """Lines that differ; both texts must have the same number of lines."""
    before_lines = before.splitlines(True)
    after_lines = after.splitlines(True)
    assert len(before_lines) == len(after_lines)
    return [(index, old, new) for index, (old, new) in enumerate(zip(before_lines, after_lines)) if old != new]


def test_kubeadm_manifest_is_read():
    manifest = EtcdManifest.load(fixture('kubeadm-etcd.yaml'))
    assert manifest.name == 'cp1'
    assert manifest.data_dir == '/var/lib/etcd'
    assert manifest.data_volume == {'name': 'etcd-data', 'host_path': '/var/lib/etcd', 'mount_path': '/var/lib/etcd'}
    assert manifest.data_dir_host_path == '/var/lib/etcd'
    assert manifest.image == 'registry.k8s.io/etcd:3.5.21-0'
    assert manifest.image_version == '3.5.21'
    assert manifest.advertise_client_urls == ['https://192.0.2.11:2379']
    assert manifest.client_urls == ['https://192.0.2.11:2379']
    assert manifest.listen_client_urls == ['https://127.0.0.1:2379', 'https://192.0.2.11:2379']
    assert manifest.peer_urls == ['https://192.0.2.11:2380']
    assert manifest.listen_peer_urls == ['https://192.0.2.11:2380']
    assert manifest.initial_cluster == 'cp1=https://192.0.2.11:2380'
    assert manifest.initial_cluster_state is None
    assert manifest.flags['--cert-file'] == '/etc/kubernetes/pki/etcd/server.crt'
    assert manifest.flags['--client-cert-auth'] == 'true'
    assert manifest.flag('trusted-ca-file') == manifest.flag('--trusted-ca-file') == '/etc/kubernetes/pki/etcd/ca.crt'
    assert manifest.pod_name == 'etcd'


def test_data_dir_edit_changes_only_that_line_byte_for_byte():
    original = read('kubeadm-etcd.yaml')
    manifest = EtcdManifest.load(fixture('kubeadm-etcd.yaml'))
    edited = manifest.with_data_dir_host_path('/var/lib/etcd-restore-20261122T013500Z')
    assert changed_lines(original, edited) == [
        (86, '      path: /var/lib/etcd\n', '      path: /var/lib/etcd-restore-20261122T013500Z\n')]
    # The certificate volume's path and the container's --data-dir stay.
    again = EtcdManifest.from_text(edited)
    assert again.data_dir == '/var/lib/etcd'
    assert again.data_dir_host_path == '/var/lib/etcd-restore-20261122T013500Z'


def test_edit_keeps_comments_and_double_quotes():
    original = read('etcd-joined-quoted.yaml')
    manifest = EtcdManifest.load(fixture('etcd-joined-quoted.yaml'))
    assert manifest.initial_cluster_state == 'existing'
    edited = manifest.with_data_dir_host_path('/var/lib/etcd-new')
    assert changed_lines(original, edited) == [
        (88, '      path: "/var/lib/etcd"   # keep quoted\n', '      path: "/var/lib/etcd-new"   # keep quoted\n')]


def test_edit_keeps_single_quotes():
    original = read('etcd-space-flags.yaml')
    edited = EtcdManifest.load(fixture('etcd-space-flags.yaml')).with_data_dir_host_path("/var/lib/it's")
    assert [change[2] for change in changed_lines(original, edited)] == ["      path: '/var/lib/it''s'\n"]
    assert EtcdManifest.from_text(edited).data_dir_host_path == "/var/lib/it's"


def test_edit_quotes_a_path_yaml_would_misread():
    original = read('kubeadm-etcd.yaml')
    edited = EtcdManifest.from_text(original).with_data_dir_host_path('/var/lib/etcd #2: new')
    assert [change[2] for change in changed_lines(original, edited)] == ['      path: "/var/lib/etcd #2: new"\n']
    assert EtcdManifest.from_text(edited).data_dir_host_path == '/var/lib/etcd #2: new'


def test_edit_keeps_crlf_line_endings_and_a_bom():
    original = '\ufeff' + read('kubeadm-etcd.yaml').replace('\n', '\r\n')
    edited = EtcdManifest.from_text(original).with_data_dir_host_path('/data/etcd2')
    assert edited == original.replace('      path: /var/lib/etcd\r\n', '      path: /data/etcd2\r\n')


def test_data_volume_is_found_by_mount_not_by_name():
    manifest = EtcdManifest.load(fixture('etcd-renamed-volume.yaml'))
    assert manifest.data_volume == {'name': 'data', 'host_path': '/data/etcd', 'mount_path': '/var/lib/etcd'}
    original = read('etcd-renamed-volume.yaml')
    edited = manifest.with_data_dir_host_path('/data/etcd-restored')
    changes = changed_lines(original, edited)
    assert [change[1:] for change in changes] == [('      path: /data/etcd\n', '      path: /data/etcd-restored\n')]
    assert '/srv/etcd-backup' in edited


def test_parent_mount_gives_host_path_below_it_and_edit_keeps_the_sub_path():
    manifest = EtcdManifest.load(fixture('etcd-parent-mount.yaml'))
    assert manifest.data_volume['mount_path'] == '/var/lib'
    assert manifest.data_dir_host_path == '/mnt/disk1/etcd'
    edited = manifest.with_data_dir_host_path('/mnt/disk2/etcd')
    assert EtcdManifest.from_text(edited).data_dir_host_path == '/mnt/disk2/etcd'
    with pytest.raises(EtcdModuleError, match='must end with /etcd'):
        manifest.with_data_dir_host_path('/mnt/disk2/etcd-restored')


def test_flags_given_as_separate_items_and_in_args_are_read():
    manifest = EtcdManifest.load(fixture('etcd-space-flags.yaml'))
    assert manifest.name == 'cp1'
    assert manifest.data_dir == '/var/lib/etcd'
    assert manifest.flags['--enable-pprof'] == 'true'
    assert manifest.image_version == '3.4.23'


def test_parse_command_flags_forms():
    assert parse_command_flags(['-name', 'a', '--x=1=2', '--bool', '--last']) == {
        '--name': 'a', '--x': '1=2', '--bool': 'true', '--last': 'true'}


@pytest.mark.parametrize('image, version', [
    ('registry.k8s.io/etcd:3.5.21-0', '3.5.21'),
    ('myregistry:5000/etcd:3.5.16-0', '3.5.16'),
    ('registry.k8s.io/etcd:v3.4.23@sha256:abc', '3.4.23'),
    ('registry.k8s.io/etcd', None),
    ('myregistry:5000/etcd', None),
    ('registry.k8s.io/etcd:latest', None),
    (None, None),
])
def test_image_version(image, version):
    assert image_version(image) == version


@pytest.mark.parametrize('name, message', [
    ('does-not-exist.yaml', 'does not exist'),
    # .txt: a deliberately broken manifest that yamllint (ansible-test sanity) must not lint
    ('etcd-invalid-yaml.txt', 'is not valid YAML'),
    ('kube-apiserver.yaml', 'No etcd container'),
    ('etcd-no-datadir.yaml', 'has no --data-dir'),
    ('etcd-no-mount.yaml', 'No volumeMount of the etcd container'),
    ('etcd-no-volume.yaml', 'spec.volumes has no volume of that name'),
    ('etcd-emptydir.yaml', 'not a hostPath volume'),
    ('etcd-relative-hostpath.yaml', 'not a plain absolute path'),
])
def test_unusable_manifests_give_a_clear_error(name, message):
    with pytest.raises(EtcdModuleError, match=message) as error:
        EtcdManifest.load(fixture(name))
    assert fixture(name) in error.value.msg


def test_anchored_host_path_is_read_but_not_edited():
    manifest = EtcdManifest.load(fixture('etcd-anchored-hostpath.yaml'))
    assert manifest.data_dir_host_path == '/var/lib/etcd'
    with pytest.raises(EtcdModuleError, match='anchor'):
        manifest.with_data_dir_host_path('/var/lib/etcd2')


def test_aliased_host_path_is_not_edited():
    text = read('etcd-anchored-hostpath.yaml') + 'extra: *datadir\n'
    manifest = EtcdManifest.from_text(text)
    with pytest.raises(EtcdModuleError, match='shared through a YAML alias'):
        manifest.with_data_dir_host_path('/var/lib/etcd2')


def test_relative_new_data_dir_is_refused():
    with pytest.raises(EtcdModuleError, match='not an absolute path'):
        EtcdManifest.load(fixture('kubeadm-etcd.yaml')).with_data_dir_host_path('var/lib/etcd2')


def test_not_a_pod_is_refused():
    with pytest.raises(EtcdModuleError, match='not a Pod manifest'):
        StaticPodManifest.from_text('kind: Deployment\n')


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / 'etcd.yaml'
    path.write_bytes(b'\xff\xfe kind: Pod')
    with pytest.raises(EtcdModuleError, match='not UTF-8'):
        EtcdManifest.load(str(path))


def test_missing_pyyaml_says_what_to_install(monkeypatch):
    monkeypatch.setattr(manifest_utils, 'HAS_YAML', False)
    with pytest.raises(EtcdModuleError, match='install python3-yaml'):
        EtcdManifest.load(fixture('kubeadm-etcd.yaml'))
