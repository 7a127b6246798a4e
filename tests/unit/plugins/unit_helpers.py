# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the unit tests share, so that each test file holds only its own tests.

``tests/unit/conftest.py`` puts this directory on ``sys.path`` (``from unit_helpers import ...``) and
patches AnsibleModule's exits with :func:`exit_json` / :func:`fail_json` for every unit test.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib.util
import os
import sys

import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19 (make compat runs the unit tests on 2.16)
    import contextlib
    import json

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args=None):
        """What ansible.module_utils.testing.patch_module_args does on 2.19: the module's arguments for AnsibleModule."""
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures')


def _load_fakes():
    """``tests/unit/fixtures/etcd_outputs/fakes.py``, loaded once under a name no other module can take."""
    name = 'kubeops_etcd_unit_fakes'
    if name not in sys.modules:
        path = os.path.join(FIXTURES, 'etcd_outputs', 'fakes.py')
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


fakes = _load_fakes()


# Per captured etcd version: the tool that restores snapshots and whether it has --bump-revision.
RESTORE_TOOLS = [
    ('3.4.23', 'etcdctl', False),
    ('3.5.1', 'etcdutl', False),
    ('3.5.16', 'etcdutl', True),
    ('3.5.30', 'etcdutl', True),
    ('3.6-upstream', 'etcdutl', True),
]

# A minimal kubeadm etcd manifest: where the modules find the client URL when no endpoints are given.
ETCD_MANIFEST = '''apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.11:2379
    - --data-dir=/var/lib/etcd
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379
    - --name=cp1
    image: registry.k8s.io/etcd:3.5.16-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
  volumes:
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
'''


class ExitJson(Exception):
    """AnsibleModule.exit_json was called; ``args[0]`` is the result."""


class FailJson(Exception):
    """AnsibleModule.fail_json was called; ``args[0]`` is the result."""


def exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def fail_json(self, **kwargs):
    kwargs['failed'] = True
    raise FailJson(kwargs)


def run_module(module, args, check=False, diff=False):
    """Run ``module.main()`` with ``args`` (in check/diff mode if asked): ``(True, result)`` when it
    exited, ``(False, result)`` when it failed."""
    args = dict(args)
    if check:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises((ExitJson, FailJson)) as caught:
            module.main()
    return caught.type is ExitJson, caught.value.args[0]


class FakeModule(object):
    """Just what module_utils use of AnsibleModule: params, get_bin_path (from ``bin_dirs`` only) and atomic_move."""

    def __init__(self, params=None, bin_dirs=()):
        self.params = params or {}
        self.bin_dirs = bin_dirs
        self.moves = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        for directory in self.bin_dirs:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    def atomic_move(self, src, dest):
        self.moves.append((src, dest))
        os.rename(src, dest)


def write_tls(directory):
    """Placeholder cacert/cert/key files in ``directory`` (a pathlib path): option name -> path."""
    paths = {}
    for option in ('cacert', 'cert', 'key'):
        path = directory / ('%s.pem' % option)
        path.write_text('PEM')
        paths[option] = str(path)
    return paths


def kubeadm_apiserver_facts(manifest_path):
    """What etcd_member_info reports of ``fixtures/manifests/kubeadm-kube-apiserver.yaml`` found at manifest_path."""
    return {
        'manifest_path': manifest_path,
        'present': True,
        'advertise_address': '192.0.2.11',
        'secure_port': 6443,
        'readyz_url': 'https://192.0.2.11:6443/readyz',
        'encryption_provider_config': None,
        'etcd_servers': ['https://127.0.0.1:2379'],
        'etcd_cafile': '/etc/kubernetes/pki/etcd/ca.crt',
        'etcd_certfile': '/etc/kubernetes/pki/apiserver-etcd-client.crt',
        'etcd_keyfile': '/etc/kubernetes/pki/apiserver-etcd-client.key',
    }


class FakeSystemd(object):
    """A `systemctl` on PATH that prints, for `systemctl cat <unit>`, what systemd would for the unit files written
    with add() (the unit file, then its drop-ins, each under a `# <path>` line), fails for unknown units as
    systemctl does, lists them for `list-unit-files` (with its legend line), prints what set_state() gave for `show`
    (and a `journalctl` beside it the unit's log), and records every call in ``calls`` (the unit modules may run
    nothing else)."""

    def __init__(self, tmp_path, monkeypatch):
        self.root = tmp_path / 'etc-systemd-system'
        self.root.mkdir()
        self.cats = tmp_path / 'cat'
        self.cats.mkdir()
        self.calls = tmp_path / 'systemctl-calls'
        self.states = tmp_path / 'unit-states'
        self.states.mkdir()
        self.logs = tmp_path / 'unit-logs'
        self.logs.mkdir()
        bin_dir = tmp_path / 'fakebin'
        bin_dir.mkdir()
        script = bin_dir / 'systemctl'
        script.write_text('#!/bin/sh\necho "$*" >> "%s"\n'
                          'if [ "$1" = list-unit-files ]; then echo "UNIT FILE STATE"; '
                          'for f in "%s"/*; do [ -f "$f" ] && echo "${f##*/} enabled"; done; exit 0; fi\n'
                          'if [ "$1" = show ]; then for last; do :; done; cat "%s/$last" 2>/dev/null; exit 0; fi\n'
                          '[ "$1" = cat ] || { echo "unexpected: $*" >&2; exit 3; }\n'
                          'for last; do :; done\n'
                          'if [ -f "%s/$last" ]; then cat "%s/$last"; exit 0; fi\n'
                          'echo "No files found for $last." >&2\nexit 1\n'
                          % (self.calls, self.cats, self.states, self.cats, self.cats))
        os.chmod(str(script), 0o755)
        journalctl = bin_dir / 'journalctl'
        journalctl.write_text('#!/bin/sh\necho "journalctl $*" >> "%s"\n'
                              'while [ $# -gt 0 ]; do [ "$1" = -u ] && unit=$2; shift; done\n'
                              'cat "%s/$unit" 2>/dev/null || echo "-- No entries --"\n' % (self.calls, self.logs))
        os.chmod(str(journalctl), 0o755)
        monkeypatch.setenv('PATH', '%s:%s' % (bin_dir, os.environ['PATH']))

    def set_state(self, unit, properties, log=''):
        """What `systemctl show` prints for the unit (key=value lines) and `journalctl -u` for its log."""
        (self.states / unit).write_text(''.join('%s=%s\n' % item for item in sorted(properties.items())))
        (self.logs / unit).write_text(log)

    def add(self, unit, text, drop_ins=(), mode=0o644):
        """Write the unit file (with mode) and drop-ins ((name, text)); the paths in systemctl cat's order."""
        path = self.root / unit
        path.write_text(text)
        os.chmod(str(path), mode)
        paths = [str(path)]
        for name, drop_in in drop_ins:
            directory = self.root / (unit + '.d')
            directory.mkdir(exist_ok=True)
            (directory / name).write_text(drop_in)
            paths.append(str(directory / name))
        printed = []
        for written in paths:
            with open(written) as handle:
                printed.append('# %s\n%s' % (written, handle.read()))
        (self.cats / unit).write_text('\n'.join(printed))
        return paths
