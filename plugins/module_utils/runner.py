# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one way this collection runs etcdctl/etcdutl: argv lists, LANG=C, a timeout."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import subprocess
import time

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.kubeops.etcd.plugins.module_utils.containers import ContainerTools, HostTools, running_etcd_container
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import parse_version_output, version_tuple

DEFAULT_TIMEOUT = 60

# C locale so messages are parseable; API v3 because etcdctl 3.4 still defaults
# to it only when told (and the variable is harmless for 3.5+).
FIXED_ENVIRONMENT = {'LANG': 'C', 'LC_ALL': 'C', 'ETCDCTL_API': '3'}

# Some stderr lines are noise we never want in a message or a decision.
_DEPRECATION_NOTICE = re.compile(r'^Deprecated: Use `etcdutl snapshot (status|restore)` instead\.?\s*$')


class CommandResult(object):
    """Outcome of one command: rc, stdout/stderr (text), argv and duration (seconds)."""

    def __init__(self, rc, stdout, stderr, argv, duration):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.argv = argv
        self.duration = duration

    @property
    def cmd(self):
        return ' '.join(self.argv)

    def stderr_without_notices(self):
        """stderr minus etcdctl 3.5's 'Deprecated: Use etcdutl ...' notice."""
        lines = [line for line in self.stderr.splitlines() if not _DEPRECATION_NOTICE.match(line.strip())]
        return '\n'.join(line for line in lines if line.strip())

    def error_summary(self, limit=2000):
        """The part of stderr a person needs: etcdctl's own error lines.

        Drops the deprecation notice and the client library's JSON log lines
        (their "error" field is kept when nothing else is left), and cuts a Go
        crash (SIGBUS on a truncated bbolt file) down to its first lines.
        """
        lines = [line.rstrip() for line in self.stderr_without_notices().splitlines() if line.strip()]
        plain = [line for line in lines if not line.lstrip().startswith('{"level"')]
        if not plain:
            errors = []
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get('error'):
                    errors.append('%s: %s' % (entry.get('msg', ''), entry['error']))
            plain = errors[-1:]
        for index, line in enumerate(plain):
            if line.startswith(('goroutine ', '[signal ')):
                plain = plain[:index + 1] if line.startswith('[signal ') else plain[:index]
                break
        summary = '; '.join(plain)
        return summary if len(summary) <= limit else summary[:limit] + '...'

    def details(self):
        return {'cmd': self.cmd, 'rc': self.rc, 'stdout': self.stdout, 'stderr': self.stderr}

    def __repr__(self):
        return 'CommandResult(rc=%r, argv=%r, duration=%.3f)' % (self.rc, self.argv, self.duration)


class Runner(object):
    """Runs commands for one module invocation.

    The timeout defaults to the module's ``command_timeout`` option (60 s when
    the module has no such option). Never uses a shell.
    """

    def __init__(self, module):
        self.module = module
        params = getattr(module, 'params', None) or {}
        self.default_timeout = params.get('command_timeout') or DEFAULT_TIMEOUT
        # Where etcdctl/etcdutl run: on the host, or in the etcd container (EtcdTools.detect sets it).
        self.place = HostTools()

    def run(self, argv, check_rc=True, timeout=None, env=None, data=None):
        if not isinstance(argv, (list, tuple)) or not argv:
            raise EtcdModuleError('internal error: Runner.run needs a non-empty argv list, got %r' % (argv,))
        argv = [to_text(arg, errors='surrogate_or_strict') for arg in self.place.argv(argv)]
        timeout = timeout or self.default_timeout
        environment = dict(os.environ)
        environment.update(FIXED_ENVIRONMENT)
        if env:
            environment.update(env)
        started = time.time()
        try:
            process = subprocess.Popen(
                [to_bytes(arg, errors='surrogate_or_strict') for arg in argv],
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=environment, close_fds=True)
        except OSError as exc:
            raise EtcdModuleError(
                'Cannot run %s on %s: %s' % (argv[0], node_name(), exc.strerror or exc),
                cmd=' '.join(argv))
        try:
            stdout, stderr = process.communicate(
                input=to_bytes(data, errors='surrogate_or_strict') if data is not None else None,
                timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise EtcdModuleError(
                '`%s` on %s did not finish within %s seconds and was stopped; check that etcd is reachable '
                'or raise command_timeout. stderr: %s'
                % (' '.join(argv), node_name(), timeout, to_text(stderr, errors='surrogate_or_replace').strip()),
                cmd=' '.join(argv), rc=None, stderr=to_text(stderr, errors='surrogate_or_replace'))
        result = CommandResult(
            process.returncode,
            to_text(stdout, errors='surrogate_or_replace'),
            to_text(stderr, errors='surrogate_or_replace'),
            argv,
            time.time() - started)
        if check_rc and result.rc != 0:
            raise command_error(result)
        return result


def command_error(result, what=None, fix=None):
    """EtcdModuleError for a failed command, naming the host, the command, rc and stderr."""
    reason = result.error_summary() or result.stdout.strip()[:2000] or '(no output)'
    msg = '%s failed on %s (rc=%s): %s' % (what or '`%s`' % result.cmd, node_name(), result.rc, reason)
    if fix:
        msg = '%s. %s' % (msg.rstrip('. '), fix)
    return EtcdModuleError(msg, **result.details())


def find_tool(module, name, path=None, required=False):
    """Absolute path of a tool: the given path (must be executable), else PATH."""
    if path:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
        raise EtcdModuleError(
            '%s_path %s on %s is not an executable file; fix the path or leave it unset to search PATH.'
            % (name, path, node_name()), path=path)
    found = module.get_bin_path(name, required=False, opt_dirs=['/usr/local/bin', '/usr/bin', '/opt/bin'])
    if found is None and required:
        raise EtcdModuleError(missing_tool_message(name))
    return found


def missing_tool_message(name, purpose=None):
    hints = {
        'etcdctl': 'install etcdctl of the cluster\'s etcd minor version (Debian/Ubuntu: etcd-client) or set etcdctl_path',
        'etcdutl': 'install etcdutl 3.5 or newer (Debian/Ubuntu: etcd-server) or set etcdutl_path',
    }
    return '%s%s not found on %s: %s.' % (
        name, ' (needed to %s)' % purpose if purpose else '', node_name(), hints.get(name, 'install it'))


def etcdctl_conn_args(endpoints, cacert, cert, key):
    """etcdctl connection flags. TLS verification stays on: no --insecure-* flags, ever."""
    args = []
    if endpoints:
        if not isinstance(endpoints, (list, tuple)):
            endpoints = [endpoints]
        args.append('--endpoints=%s' % ','.join(endpoints))
    if cacert:
        args.append('--cacert=%s' % cacert)
    if cert:
        args.append('--cert=%s' % cert)
    if key:
        args.append('--key=%s' % key)
    return args


class EtcdTools(object):
    """etcdctl/etcdutl found on this host, detected once per module run."""

    def __init__(self, etcdctl=None, etcdutl=None, etcdctl_version=None, etcdutl_version=None,
                 supports_bump_revision=False):
        # set when the tools are the running etcd container's (tools_source=container)
        self.container_id = None
        self.etcdctl = etcdctl
        self.etcdutl = etcdutl
        self.etcdctl_version = etcdctl_version
        self.etcdutl_version = etcdutl_version
        self.supports_bump_revision = supports_bump_revision

    @staticmethod
    def etcdctl_has_snapshot_file_commands(version):
        """etcdctl < 3.6 still has snapshot status/restore (deprecated in 3.5, removed in 3.6)."""
        parsed = version_tuple(version)
        return parsed is not None and parsed < (3, 6)

    @property
    def restore_tool(self):
        if self.etcdutl:
            return 'etcdutl'
        if self.etcdctl and self.etcdctl_has_snapshot_file_commands(self.etcdctl_version):
            return 'etcdctl'
        return None

    @property
    def restore_path(self):
        return {'etcdutl': self.etcdutl, 'etcdctl': self.etcdctl}.get(self.restore_tool)

    @property
    def restore_tool_version(self):
        return {'etcdutl': self.etcdutl_version, 'etcdctl': self.etcdctl_version}.get(self.restore_tool)

    # snapshot status works on the same tools as restore.
    status_tool = restore_tool
    status_path = restore_path
    status_tool_version = restore_tool_version

    def require_etcdctl(self, purpose='talk to etcd'):
        if not self.etcdctl:
            raise EtcdModuleError(missing_tool_message('etcdctl', purpose))
        return self.etcdctl

    def require_status_tool(self):
        if not self.status_path:
            raise EtcdModuleError(
                'No tool to read snapshot files on %s: need etcdutl (3.5+), or etcdctl older than 3.6 '
                '(found etcdctl %s). Install etcdutl 3.5 or newer (Debian/Ubuntu: etcd-server) or set etcdutl_path.'
                % (node_name(), self.etcdctl_version or 'none'))
        return self.status_path

    def as_dict(self):
        return {
            'etcdctl': self.etcdctl,
            'etcdctl_version': self.etcdctl_version,
            'etcdutl': self.etcdutl,
            'etcdutl_version': self.etcdutl_version,
            'restore_tool': self.restore_tool,
            'supports_bump_revision': self.supports_bump_revision,
            'source': 'container' if self.container_id else 'host',
            'container_id': self.container_id,
        }

    @classmethod
    def detect(cls, module, runner, etcdctl_path=None, etcdutl_path=None, probe_restore_help=True):
        """The tools this module run uses: on the host (paths, else PATH), or, with the module option
        tools_source=container, those of the running etcd container (then ``runner`` runs them there)."""
        params = getattr(module, 'params', None) or {}
        if params.get('tools_source') == 'container':
            tools = cls._in_container(module, runner)
        else:
            etcdctl = find_tool(module, 'etcdctl', etcdctl_path)
            etcdutl = find_tool(module, 'etcdutl', etcdutl_path)
            tools = cls(etcdctl=etcdctl, etcdutl=etcdutl)
            if etcdctl:
                tools.etcdctl_version = cls._version(runner, etcdctl)
            if etcdutl:
                tools.etcdutl_version = cls._version(runner, etcdutl)
        if probe_restore_help and tools.restore_path:
            result = runner.run([tools.restore_path, 'snapshot', 'restore', '--help'], check_rc=False)
            tools.supports_bump_revision = '--bump-revision' in result.stdout + result.stderr
        return tools

    @classmethod
    def _in_container(cls, module, runner):
        params = module.params
        crictl = find_tool(module, 'crictl', params.get('crictl_path'))
        if not crictl:
            raise EtcdModuleError('tools_source=container needs crictl on %s, and it is not on PATH; set crictl_path.'
                                  % node_name())
        container = running_etcd_container(runner, crictl)
        if not container:
            raise EtcdModuleError(
                'tools_source=container, but no etcd container runs on %s (`%s ps --name ^etcd$ --state running`). '
                'Start etcd, or give the node tools of its own (etcdctl_path/etcdutl_path, or kubeops.etcd.etcd_tools '
                'with mirror_url).' % (node_name(), crictl))
        host_dir = mount_dir = error = None
        try:
            from ansible_collections.kubeops.etcd.plugins.module_utils.manifest import EtcdManifest
            manifest = EtcdManifest.load(params.get('manifest_path') or '/etc/kubernetes/manifests/etcd.yaml')
            host_dir, mount_dir = manifest.data_dir_host_path, manifest.data_dir
        except EtcdModuleError as exc:
            error = exc.msg
        image = container.get('image')
        image = image.get('image') if isinstance(image, dict) else image
        runner.place = ContainerTools([crictl, 'exec', container['id']], container['id'], image or '', host_dir,
                                      mount_dir, error)
        tools = cls()
        for name in ('etcdctl', 'etcdutl'):
            result = runner.run([name, 'version'], check_rc=False)
            version = parse_version_output(result.stdout) if result.rc == 0 else None
            if version:
                setattr(tools, name, name)
                setattr(tools, name + '_version', version)
        if not tools.etcdctl and not tools.etcdutl:
            raise EtcdModuleError(
                'The etcd container %s on %s offers neither etcdctl nor etcdutl (`crictl exec %s etcdctl version` '
                'failed); give the node tools of its own.' % (container['id'][:13], node_name(), container['id'][:13]))
        tools.container_id = container['id']
        return tools

    @staticmethod
    def _version(runner, path):
        result = runner.run([path, 'version'], check_rc=False)
        version = parse_version_output(result.stdout)
        if result.rc != 0 or version is None:
            raise EtcdModuleError(
                'Cannot tell the version of %s on %s (`%s version` rc=%s): %s. Is it an etcd tool?'
                % (path, node_name(), path, result.rc, (result.stderr or result.stdout).strip()),
                **result.details())
        return version
