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
    EtcdManifest, KubeApiServerManifest, StaticPodManifest, container_flags, describe_kube_apiserver, image_version,
    parse_command_flags, url_host)

from unit_helpers import kubeadm_apiserver_facts

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


# kube-apiserver ------------------------------------------------------------------------------------

def test_kubeadm_kube_apiserver_facts():
    path = fixture('kubeadm-kube-apiserver.yaml')
    assert describe_kube_apiserver(path) == kubeadm_apiserver_facts(path)


def test_kube_apiserver_ipv6_flags_in_args_as_separate_items_and_encryption_config():
    manifest = KubeApiServerManifest.load(fixture('kube-apiserver-ipv6-encryption.yaml'))
    assert manifest.container['name'] == 'kube-apiserver'  # not the sidecar listed first
    facts = manifest.describe()
    assert facts['advertise_address'] == 'fd00:10::11'
    assert facts['secure_port'] == 8443
    assert facts['readyz_url'] == 'https://[fd00:10::11]:8443/readyz'
    assert facts['encryption_provider_config'] == '/etc/kubernetes/enc/encryption-config.yaml'
    assert facts['etcd_servers'] == ['https://[fd00:10::11]:2379', 'https://[fd00:10::12]:2379']
    assert facts['etcd_keyfile'] == '/etc/kubernetes/pki/apiserver-etcd-client.key'


def test_kube_apiserver_defaults_without_port_and_address():
    text = ('kind: Pod\nspec:\n  containers:\n  - name: api\n    command: [/usr/local/bin/kube-apiserver, '
            '--etcd-servers=https://10.0.0.11:2379]\n')
    facts = KubeApiServerManifest.from_text(text).describe()
    assert facts['secure_port'] == 6443
    assert facts['advertise_address'] is None and facts['readyz_url'] is None
    assert facts['encryption_provider_config'] is None and facts['etcd_cafile'] is None
    assert facts['etcd_servers'] == ['https://10.0.0.11:2379']


def test_missing_kube_apiserver_manifest_is_absent_not_an_error(tmp_path):
    path = str(tmp_path / 'kube-apiserver.yaml')
    assert describe_kube_apiserver(path) == {
        'manifest_path': path, 'present': False, 'advertise_address': None, 'secure_port': None,
        'readyz_url': None, 'encryption_provider_config': None, 'etcd_servers': [], 'etcd_cafile': None,
        'etcd_certfile': None, 'etcd_keyfile': None}


@pytest.mark.parametrize('content, message', [
    ('kind: Pod\nspec: {containers: [\n', 'is not valid YAML'),
    ('kind: Deployment\n', 'is not a Pod manifest'),
    ('kind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: [etcd]\n', 'No kube-apiserver container'),
    ('kind: Pod\nspec:\n  containers:\n  - command: [kube-apiserver, --secure-port=https]\n', 'is not a port number'),
])
def test_unusable_kube_apiserver_manifest_names_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / 'kube-apiserver.yaml'
    path.write_text(content)
    with pytest.raises(EtcdModuleError, match=message) as error:
        describe_kube_apiserver(str(path))
    assert str(path) in error.value.msg
    assert 'set apiserver_manifest_path' in error.value.msg
    assert 'kubeadm init phase control-plane apiserver' in error.value.msg


def test_kube_apiserver_manifest_that_is_a_directory_is_an_error(tmp_path):
    with pytest.raises(EtcdModuleError, match='Cannot read static pod manifest') as error:
        describe_kube_apiserver(str(tmp_path))
    assert 'apiserver_manifest_path' in error.value.msg


def test_container_flags_skip_the_binary_and_join_args():
    assert container_flags({'command': ['kube-apiserver', '--a=1'], 'args': ['--b', '2']}) == {'--a': '1', '--b': '2'}
    assert container_flags({'args': ['--a=1']}) == {'--a': '1'}
    assert container_flags({}) == {}


@pytest.mark.parametrize('address, host', [
    ('10.0.0.11', '10.0.0.11'), ('fd00::11', '[fd00::11]'), ('[fd00::11]', '[fd00::11]'),
    ('cp1.example', 'cp1.example')])
def test_url_host_brackets_ipv6(address, host):
    assert url_host(address) == host


JOINED = 'cp1=https://192.0.2.11:2380,cp2=https://192.0.2.12:2380,cp3=https://192.0.2.13:2380'


def test_flag_values_edit_changes_only_those_items_byte_for_byte():
    original = read('etcd-joined-quoted.yaml')
    manifest = EtcdManifest.load(fixture('etcd-joined-quoted.yaml'))
    edited = manifest.with_flag_values({'--initial-cluster': JOINED, '--initial-cluster-state': 'new'})
    assert changed_lines(original, edited) == [
        (21, '    - --initial-cluster=cp1=https://192.0.2.11:2380,cp2=https://192.0.2.12:2380\n',
         '    - --initial-cluster=%s\n' % JOINED),
        (22, '    - --initial-cluster-state=existing\n', '    - --initial-cluster-state=new\n')]
    again = EtcdManifest.from_text(edited)
    assert (again.initial_cluster, again.initial_cluster_state) == (JOINED, 'new')


def test_missing_flag_is_added_after_the_last_command_item_like_it():
    original = read('kubeadm-etcd.yaml')
    edited = EtcdManifest.from_text(original).with_flag_values(
        {'--initial-cluster': JOINED, '--initial-cluster-state': 'existing'})
    lines = original.splitlines(True)
    last = max(index for index, line in enumerate(lines) if line.startswith('    - --'))
    expected = lines[:last + 1] + ['    - --initial-cluster-state=existing\n'] + lines[last + 1:]
    expected = ''.join(expected).replace('    - --initial-cluster=cp1=https://192.0.2.11:2380\n',
                                         '    - --initial-cluster=%s\n' % JOINED)
    assert edited == expected
    again = EtcdManifest.from_text(edited)
    assert again.initial_cluster_state == 'existing'
    assert again.data_dir_host_path == '/var/lib/etcd'


def test_flag_edit_after_a_data_dir_edit_keeps_both_and_crlf():
    original = read('kubeadm-etcd.yaml').replace('\n', '\r\n')
    moved = EtcdManifest.from_text(original).with_data_dir_host_path('/var/lib/etcd-new')
    edited = EtcdManifest.from_text(moved).with_flag_values({'--initial-cluster-state': 'existing'})
    assert '\r\n    - --initial-cluster-state=existing\r\n' in edited
    assert '\n' not in edited.replace('\r\n', '')
    again = EtcdManifest.from_text(edited)
    assert (again.data_dir_host_path, again.initial_cluster_state) == ('/var/lib/etcd-new', 'existing')


def test_flag_edit_keeps_quotes_and_quotes_a_value_yaml_would_misread():
    text = read('kubeadm-etcd.yaml').replace("    - --initial-cluster=cp1=https://192.0.2.11:2380\n",
                                             "    - '--initial-cluster=cp1=https://192.0.2.11:2380'\n")
    edited = EtcdManifest.from_text(text).with_flag_values({'--initial-cluster': JOINED})
    assert "    - '--initial-cluster=%s'\n" % JOINED in edited
    odd = EtcdManifest.from_text(read('kubeadm-etcd.yaml')).with_flag_values({'--initial-cluster': 'a=b: #c'})
    assert '    - "--initial-cluster=a=b: #c"\n' in odd
    assert EtcdManifest.from_text(odd).initial_cluster == 'a=b: #c'


def test_flag_given_as_two_items_or_twice_is_not_edited():
    with pytest.raises(EtcdModuleError, match='as two items'):
        EtcdManifest.load(fixture('etcd-space-flags.yaml')).with_flag_values({'--name': 'cp9'})
    twice = read('kubeadm-etcd.yaml').replace('    - --snapshot-count=10000\n',
                                              '    - --snapshot-count=10000\n    - --initial-cluster=x=https://a:2380\n')
    with pytest.raises(EtcdModuleError, match='gives --initial-cluster 2 times'):
        EtcdManifest.from_text(twice).with_flag_values({'--initial-cluster': JOINED})


def test_flag_in_args_is_edited_there():
    original = read('etcd-space-flags.yaml').replace('    - --enable-pprof\n', '    - --initial-cluster-state=new\n')
    edited = EtcdManifest.from_text(original).with_flag_values({'--initial-cluster-state': 'existing'})
    assert [change[1:] for change in changed_lines(original, edited)] == [
        ('    - --initial-cluster-state=new\n', '    - --initial-cluster-state=existing\n')]


def test_flag_append_refused_when_the_last_item_is_not_on_its_own_line():
    text = read('kubeadm-etcd.yaml').replace('    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n',
                                             '    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt # last\n')
    with pytest.raises(EtcdModuleError, match='not written one per line'):
        EtcdManifest.from_text(text).with_flag_values({'--initial-cluster-state': 'existing'})


def test_bad_flag_names_and_values_are_refused():
    manifest = EtcdManifest.load(fixture('kubeadm-etcd.yaml'))
    for values in ({'initial-cluster': 'x'}, {'--a=b': 'x'}, {'--initial-cluster': 'a\nb'}):
        with pytest.raises(EtcdModuleError, match='not a flag name'):
            manifest.with_flag_values(values)
