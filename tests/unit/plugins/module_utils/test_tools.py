# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import tools

OFFICIAL = 'official'
KUBERNETES = 'kubernetes-built'


@pytest.mark.parametrize('image,kind,tool_names,shell', [
    ('registry.k8s.io/etcd:3.5.21-0', KUBERNETES, ['etcdctl'], True),
    ('registry.k8s.io/etcd:3.5.24-0', OFFICIAL, ['etcdctl', 'etcdutl'], False),
    ('registry.k8s.io/etcd:3.5.30-0', OFFICIAL, ['etcdctl', 'etcdutl'], False),
    ('registry.k8s.io/etcd:3.6.0-0', KUBERNETES, ['etcdctl'], True),
    ('registry.k8s.io/etcd:3.6.4-0', KUBERNETES, ['etcdctl'], True),
    ('registry.k8s.io/etcd:3.6.5-0', OFFICIAL, ['etcdctl', 'etcdutl'], False),
    ('registry.k8s.io/etcd:3.7.0-0', OFFICIAL, ['etcdctl', 'etcdutl'], False),
    ('registry.k8s.io/etcd:3.4.23-0', KUBERNETES, ['etcdctl'], True),
    ('k8s.gcr.io/etcd:3.5.1-0', KUBERNETES, ['etcdctl'], True),
    ('mirror.internal:5000/k8s/etcd:3.5.30-0@sha256:' + 'a' * 64, OFFICIAL, ['etcdctl', 'etcdutl'], False),
    ('gcr.io/etcd-development/etcd:v3.5.16', OFFICIAL, ['etcdctl', 'etcdutl'], False),
    ('quay.io/coreos/etcd:v3.4.23', OFFICIAL, ['etcdctl'], False),
])
def test_image_kind_follows_the_tag(image, kind, tool_names, shell):
    info = tools.image_info(image)
    assert (info['kind'], info['tools'], info['has_shell']) == (kind, tool_names, shell)
    assert info['version'] == re.search(r'etcd:v?(\d+\.\d+\.\d+)', image).group(1)


@pytest.mark.parametrize('image', [None, '', 'registry.k8s.io/etcd@sha256:' + 'b' * 64, 'registry.k8s.io/etcd:latest',
                                   'registry.k8s.io/kube-apiserver:v1.33.0', 'example/notetcd:3.5.30-0'])
def test_image_kind_is_unknown_without_an_etcd_version_tag(image):
    assert tools.image_info(image)['kind'] == 'unknown'
    assert tools.image_info(image)['tools'] == []


def test_needed_tools_drop_etcdutl_for_3_4_only():
    assert tools.needed_tools('3.4.23') == ['etcdctl']
    assert tools.needed_tools('3.5.16') == ['etcdctl', 'etcdutl']
    assert tools.needed_tools('3.6.5', ['etcdutl']) == ['etcdutl']


def host(etcdctl=None, etcdutl=None):
    return {'etcdctl': {'path': '/usr/bin/etcdctl', 'version': etcdctl} if etcdctl else None,
            'etcdutl': {'path': '/usr/bin/etcdutl', 'version': etcdutl} if etcdutl else None}


def container(image, etcdctl=None, etcdutl=None, cid='95da0fbbb3436dadfda33ee021e9493a9dfe22f8'):
    return {'id': cid, 'image': image, 'kind': tools.image_info(image)['kind'],
            'tools': {'etcdctl': etcdctl, 'etcdutl': etcdutl}}


MIRROR = {'url': 'http://127.0.0.1:8080/v3.5.16/etcd-v3.5.16-linux-amd64.tar.gz',
          'install_dir': '/var/lib/kubeops-etcd/tools/etcd-v3.5.16-linux-amd64', 'installed': False, 'install': True}


def test_host_tools_of_the_same_minor_win():
    plan = tools.choose('3.5.30', ['etcdctl', 'etcdutl'], host('3.5.16', '3.5.16'),
                        container('registry.k8s.io/etcd:3.5.30-0', '3.5.30', '3.5.30'), MIRROR)
    assert plan['source'] == 'host'
    assert plan['tools'] == {'etcdctl': '/usr/bin/etcdctl', 'etcdutl': '/usr/bin/etcdutl'}
    assert plan['plan_line'] == 'etcdctl 3.5.16 (/usr/bin/etcdctl) and etcdutl 3.5.16 (/usr/bin/etcdutl) on the host'


def test_host_tools_of_another_minor_give_way_to_the_official_container():
    plan = tools.choose('3.5.30', ['etcdctl', 'etcdutl'], host('3.4.23'),
                        container('registry.k8s.io/etcd:3.5.30-0', '3.5.30', '3.5.30'), None)
    assert plan['source'] == 'container'
    assert plan['tools'] == {'etcdctl': 'etcdctl', 'etcdutl': 'etcdutl'}
    assert plan['plan_line'] == ('etcdctl and etcdutl 3.5.30 from the running etcd container 95da0fbbb3436 '
                                 '(registry.k8s.io/etcd:3.5.30-0, official image)')
    assert plan['passed_over'] == ["host: etcdctl 3.4.23 (/usr/bin/etcdctl) is not etcd 3.5.30's minor version",
                                   'host: no etcdutl on PATH']


def test_an_old_kind_container_serves_a_backup_but_a_restore_needs_the_mirror():
    old = container('registry.k8s.io/etcd:3.5.16-0', '3.5.16', None)
    backup = tools.choose('3.5.16', ['etcdctl'], host(), old, None)
    assert backup['source'] == 'container' and backup['tools'] == {'etcdctl': 'etcdctl'}
    restore = tools.choose('3.5.16', ['etcdctl', 'etcdutl'], host(), old, MIRROR)
    assert restore['source'] == 'mirror'
    assert restore['tools']['etcdutl'] == '/var/lib/kubeops-etcd/tools/etcd-v3.5.16-linux-amd64/etcdutl'
    assert 'container 95da0fbbb3436 (registry.k8s.io/etcd:3.5.16-0): a Kubernetes-built image has no etcdutl' \
        in restore['passed_over']
    assert restore['plan_line'] == ('etcdctl and etcdutl 3.5.16 from the mirror %s, installed into %s'
                                    % (MIRROR['url'], MIRROR['install_dir']))


def test_a_3_4_cluster_restores_with_the_containers_etcdctl():
    plan = tools.choose('3.4.23', tools.needed_tools('3.4.23'), host(),
                        container('registry.k8s.io/etcd:3.4.23-0', '3.4.23', None), None)
    assert plan['source'] == 'container' and plan['tools'] == {'etcdctl': 'etcdctl'}


def test_a_container_tool_of_another_minor_is_not_used():
    plan = tools.choose('3.6.5', ['etcdctl', 'etcdutl'], host(),
                        container('registry.k8s.io/etcd:3.6.5-0', '3.5.30', '3.5.30'), None)
    assert plan['source'] is None
    assert "container: its etcdctl is 3.5.30, not etcd 3.6.5's minor version" in plan['passed_over']


def test_the_mirror_plan_says_whether_it_installs():
    states = []
    for installed, install, check_mode in ((True, True, False), (False, False, False), (False, True, True)):
        mirror = dict(MIRROR, installed=installed, install=install, check_mode=check_mode)
        states.append(tools.choose('3.5.16', ['etcdctl', 'etcdutl'], host(), None, mirror)['plan_line'])
    assert states[0].endswith('already installed in ' + MIRROR['install_dir'])
    assert states[1].endswith('to be installed into %s (install=true does it)' % MIRROR['install_dir'])
    assert states[2].endswith('would be installed into ' + MIRROR['install_dir'])


def test_nothing_available_says_why_for_every_source():
    plan = tools.choose('3.5.16', ['etcdctl', 'etcdutl'], host(), None, None)
    assert plan['source'] is None and plan['tools'] == {}
    assert plan['passed_over'] == ['host: no etcdctl on PATH', 'host: no etcdutl on PATH',
                                   'container: no running etcd container (crictl ps)',
                                   'mirror: none configured (mirror_url)']
    assert plan['plan_line'].startswith('no etcdctl and etcdutl tools for etcd 3.5.16 on this node: host: no etcdctl')


SUMS = ('6d68c52b92eba35462a8823191fea3ff4ba6e99106d602e2ee6966f31c1b7b46  etcd-v3.5.16-darwin-amd64.zip\n'
        'ACF2C93EDC86DA7D7008DFA87901D891A1AF96567814C0BC90935ECCDB6BC3C6 *etcd-v3.5.16-linux-amd64.tar.gz\n'
        '5d87d62393311296dbb9dca188e782e93a2751bbf7788a7858af5c7d256e6de1  etcd-v3.5.16-linux-amd64.tar.gz.asc\n')


def test_sha256sums_line_is_found_for_the_exact_file_name_only():
    assert tools.sha256_for(SUMS, 'etcd-v3.5.16-linux-amd64.tar.gz') == \
        'acf2c93edc86da7d7008dfa87901d891a1af96567814c0bc90935eccdb6bc3c6'
    assert tools.sha256_for(SUMS, 'etcd-v3.5.16-linux-arm64.tar.gz') is None
    assert tools.sha256_for('', 'etcd-v3.5.16-linux-amd64.tar.gz') is None


def test_sha256sums_with_two_different_sums_for_one_file_is_refused():
    text = SUMS + '%s  etcd-v3.5.16-linux-amd64.tar.gz\n' % ('0' * 64)
    with pytest.raises(ValueError, match='listed 2 times'):
        tools.sha256_for(text, 'etcd-v3.5.16-linux-amd64.tar.gz')


def test_url_templates_and_names():
    template = 'https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-{arch}.tar.gz'
    url = tools.render_template(template, '3.5.16', 'amd64')
    assert url == 'https://github.com/etcd-io/etcd/releases/download/v3.5.16/etcd-v3.5.16-linux-amd64.tar.gz'
    assert tools.default_sums_template(template) == 'https://github.com/etcd-io/etcd/releases/download/v{version}/SHA256SUMS'
    assert tools.default_sums_template('/srv/etcd/v{version}/etcd-v{version}-linux-{arch}.tar.gz') == \
        '/srv/etcd/v{version}/SHA256SUMS'
    assert tools.url_file_name(url + '?x=1#y') == 'etcd-v3.5.16-linux-amd64.tar.gz'
    assert tools.arch_of('x86_64') == 'amd64' and tools.arch_of('aarch64') == 'arm64' and tools.arch_of('mips') is None


@pytest.mark.parametrize('path,owner', [('/usr/local/etcd', '/usr'), ('/usr', '/usr'), ('/etc/etcd-tools', '/etc'),
                                        ('/var/lib/kubeops-etcd/tools', None), ('/usrx/tools', None),
                                        ('/opt/kubeops/tools', None)])
def test_distro_directories_are_refused(path, owner):
    assert tools.distro_dir(path) == owner


TOP = 'etcd-v3.5.16-linux-amd64'


def release(*extra):
    return [(TOP, 'dir', ''), (TOP + '/README.md', 'file', ''), (TOP + '/etcd', 'file', ''),
            (TOP + '/etcdctl', 'file', ''), (TOP + '/etcdutl', 'file', ''), (TOP + '/Documentation', 'dir', '')] \
        + list(extra)


def test_release_members_select_only_the_three_binaries():
    assert tools.select_binaries(release(), '3.5.16', 'amd64') == {
        'etcd': TOP + '/etcd', 'etcdctl': TOP + '/etcdctl', 'etcdutl': TOP + '/etcdutl'}
    members = [('etcd-v3.4.23-linux-amd64/', 'dir', ''), ('./etcd-v3.4.23-linux-amd64/etcdctl', 'file', '')]
    assert tools.select_binaries(members, '3.4.23', 'amd64') == {'etcdctl': './etcd-v3.4.23-linux-amd64/etcdctl'}


@pytest.mark.parametrize('member,reason', [
    (('/etc/cron.d/x', 'file', ''), 'absolute path'),
    ((TOP + '/../../x', 'file', ''), "'..' in the path"),
    ((TOP + '/link', 'symlink', '../../../etc/passwd'), 'link leaving the archive'),
    ((TOP + '/link', 'symlink', '/etc/passwd'), 'link to an absolute path'),
    ((TOP + '/hard', 'hardlink', '../x'), 'link leaving the archive'),
    ((TOP + '/dev', 'device', ''), 'a device'),
])
def test_unsafe_members_refuse_the_whole_tarball(member, reason):
    with pytest.raises(ValueError, match='unsafe member .*: ' + reason.replace('(', r'\(')):
        tools.select_binaries(release(member), '3.5.16', 'amd64')


def test_a_binary_that_is_a_link_or_missing_is_refused():
    members = [m for m in release() if not m[0].endswith('/etcdutl')] + [(TOP + '/etcdutl', 'symlink', 'etcdctl')]
    with pytest.raises(ValueError, match='is a symlink, not a regular file'):
        tools.select_binaries(members, '3.5.16', 'amd64')
    with pytest.raises(ValueError, match=r'no etcdutl in etcd-v3.5.16-linux-amd64/'):
        tools.select_binaries([m for m in release() if not m[0].endswith('/etcdutl')], '3.5.16', 'amd64')
    with pytest.raises(ValueError, match='no etcdctl or etcdutl'):
        tools.select_binaries([(m[0].replace(TOP, 'etcd-v3.5.16-linux-arm64'), m[1], m[2]) for m in release()],
                              '3.5.16', 'amd64')


@pytest.mark.parametrize('purpose,version,needed', [
    ('backup', '3.4.23', ['etcdctl']),
    ('backup', '3.5.16', ['etcdctl']),
    # etcdctl 3.6 has no `snapshot status`: the file is checked with etcdutl
    ('backup', '3.6.5', ['etcdctl', 'etcdutl']),
    ('restore', '3.4.23', ['etcdctl']),
    ('restore', '3.5.1', ['etcdctl', 'etcdutl']),
    ('restore', '3.6.5', ['etcdctl', 'etcdutl']),
])
def test_the_tools_each_purpose_needs(purpose, version, needed):
    assert tools.needed_for(purpose, version) == needed


def test_module_options_say_where_the_tools_run():
    assert tools.module_options('container', {'etcdctl': 'etcdctl', 'etcdutl': 'etcdutl'}, '/usr/bin/crictl') == {
        'tools_source': 'container', 'etcdctl_path': None, 'etcdutl_path': None, 'crictl_path': '/usr/bin/crictl'}
    installed = {'etcdctl': '/var/lib/kubeops-etcd/tools/etcd-v3.5.16-linux-amd64/etcdctl',
                 'etcdutl': '/var/lib/kubeops-etcd/tools/etcd-v3.5.16-linux-amd64/etcdutl'}
    assert tools.module_options('mirror', installed, '/usr/bin/crictl') == {
        'tools_source': 'host', 'etcdctl_path': installed['etcdctl'], 'etcdutl_path': installed['etcdutl'],
        'crictl_path': None}
    assert tools.module_options('host', {'etcdctl': '/usr/bin/etcdctl'}, None)['etcdutl_path'] is None
    assert tools.module_options(None, {}, None)['tools_source'] == 'host'
