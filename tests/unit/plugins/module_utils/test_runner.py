# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import sys

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import (
    CommandResult,
    EtcdTools,
    Runner,
    command_error,
    etcdctl_conn_args,
    find_tool,
)

from unit_helpers import RESTORE_TOOLS, FakeModule, fakes


def python(code):
    return [sys.executable, '-c', code]


def test_runner_sets_c_locale_and_api_v3_and_passes_argv_verbatim():
    result = Runner(FakeModule()).run(python(
        'import os, sys; print(os.environ["LANG"], os.environ["LC_ALL"], os.environ["ETCDCTL_API"]); print(sys.argv[1])')
        + ['a b; rm -rf /'])
    assert result.rc == 0
    assert result.stdout.splitlines() == ['C C 3', 'a b; rm -rf /']
    assert result.duration >= 0


def test_runner_extra_env_and_stdin():
    result = Runner(FakeModule()).run(python('import os, sys; print(os.environ["X"] + sys.stdin.read())'),
                                      env={'X': 'x-'}, data='input')
    assert result.stdout.strip() == 'x-input'


def test_runner_failure_names_command_host_rc_and_stderr():
    with pytest.raises(EtcdModuleError) as caught:
        Runner(FakeModule()).run(python('import sys; sys.stderr.write("Error: boom\\n"); sys.exit(3)'))
    message = caught.value.msg
    assert 'rc=3' in message and 'Error: boom' in message and sys.executable in message
    assert ' on ' in message
    assert caught.value.details['rc'] == 3
    assert caught.value.details['stderr'] == 'Error: boom\n'


def test_runner_check_rc_false_returns_failure():
    result = Runner(FakeModule()).run(python('import sys; sys.exit(4)'), check_rc=False)
    assert result.rc == 4


def test_runner_timeout_kills_and_explains():
    with pytest.raises(EtcdModuleError) as caught:
        Runner(FakeModule()).run(python('import time; time.sleep(30)'), timeout=0.5)
    assert 'did not finish within 0.5 seconds' in caught.value.msg
    assert 'command_timeout' in caught.value.msg


def test_runner_default_timeout_from_command_timeout():
    assert Runner(FakeModule({'command_timeout': 7})).default_timeout == 7
    assert Runner(FakeModule()).default_timeout == 60


@pytest.mark.parametrize('argv', ['etcdctl version', [], None])
def test_runner_refuses_anything_but_an_argv_list(argv):
    with pytest.raises(EtcdModuleError):
        Runner(FakeModule()).run(argv)


def test_runner_missing_executable():
    with pytest.raises(EtcdModuleError) as caught:
        Runner(FakeModule()).run(['/nonexistent/etcdctl', 'version'])
    assert 'Cannot run /nonexistent/etcdctl' in caught.value.msg


def _captured(version, name, rc=1):
    return CommandResult(rc, fakes.read(version, name + '.stdout'), fakes.read(version, name + '.stderr'),
                         ['etcdctl'], 0.1)


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_error_summary_cuts_go_crash_on_truncated_snapshot(version):
    summary = _captured(version, 'snapshot_status_truncated_etcdctl', 2).error_summary()
    assert 'SIGBUS' in summary
    assert 'goroutine' not in summary
    assert 'Deprecated' not in summary


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_error_summary_drops_deprecation_notice_and_log_lines(version):
    assert _captured(version, 'snapshot_status_random_etcdctl').error_summary() == 'Error: invalid database'
    summary = _captured(version, 'endpoint_health_one_down').error_summary()
    assert summary == 'Error: unhealthy cluster'


@pytest.mark.parametrize('version', fakes.CAPTURED_VERSIONS)
def test_error_summary_of_snapshot_save_to_several_endpoints(version):
    summary = _captured(version, 'snapshot_save_two_endpoints', 5).error_summary()
    assert summary.startswith('Error: snapshot must be requested to one selected node')


def test_error_summary_uses_json_log_error_when_nothing_else():
    result = CommandResult(1, '', '{"level":"warn","msg":"retrying","error":"connection refused"}\n', ['x'], 0)
    assert result.error_summary() == 'retrying: connection refused'


@pytest.mark.parametrize('version', [v for v in fakes.CAPTURED_VERSIONS if v != '3.4.23'])
def test_stderr_without_notices_ignores_35_deprecation(version):
    result = _captured(version, 'snapshot_status_etcdctl', 0)
    assert 'Deprecated' in result.stderr
    assert result.stderr_without_notices() == ''


def test_command_error_adds_fix():
    result = CommandResult(1, '', 'Error: x\n', ['etcdctl', 'snapshot', 'save'], 0)
    error = command_error(result, what='Saving', fix='Do this.')
    assert error.msg.startswith('Saving failed on ')
    assert error.msg.endswith('Error: x. Do this.')


def test_conn_args_never_disable_tls_verification():
    args = etcdctl_conn_args(['https://a:2379', 'https://b:2379'], '/ca', '/c', '/k')
    assert args == ['--endpoints=https://a:2379,https://b:2379', '--cacert=/ca', '--cert=/c', '--key=/k']
    assert etcdctl_conn_args('https://a:2379', None, None, None) == ['--endpoints=https://a:2379']
    assert not any('insecure' in arg for arg in args)


def test_find_tool_given_path(tmp_path):
    tool = tmp_path / 'etcdctl'
    tool.write_text('#!/bin/sh\n')
    tool.chmod(0o755)
    assert find_tool(FakeModule(), 'etcdctl', str(tool)) == str(tool)
    tool.chmod(0o644)
    with pytest.raises(EtcdModuleError) as caught:
        find_tool(FakeModule(), 'etcdctl', str(tool))
    assert 'etcdctl_path' in caught.value.msg


def test_find_tool_missing_required_names_package_and_option():
    assert find_tool(FakeModule(), 'etcdutl') is None
    with pytest.raises(EtcdModuleError) as caught:
        find_tool(FakeModule(), 'etcdutl', required=True)
    assert 'etcd-server' in caught.value.msg and 'etcdutl_path' in caught.value.msg


@pytest.mark.parametrize('version, restore_tool, bump', RESTORE_TOOLS)
def test_tools_detect_real_version_and_help_outputs(tmp_path, monkeypatch, version, restore_tool, bump):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, version)
    tools = EtcdTools.detect(FakeModule(bin_dirs=[fake.bin]), Runner(FakeModule()))
    expected_version = '3.6.5' if version.startswith('3.6') else version
    assert tools.etcdctl == fake.paths['etcdctl']
    assert tools.etcdctl_version == expected_version
    assert tools.etcdutl_version == (None if version == '3.4.23' else expected_version)
    assert tools.restore_tool == restore_tool
    assert tools.status_tool == restore_tool
    assert tools.restore_path == fake.paths[restore_tool]
    assert tools.supports_bump_revision is bump
    assert tools.as_dict()['restore_tool'] == restore_tool
    assert all(call['env'] == {'LANG': 'C', 'LC_ALL': 'C', 'ETCDCTL_API': '3'} for call in fake.calls())


def test_etcdctl_36_alone_cannot_restore_or_read_snapshots(tmp_path, monkeypatch):
    fake = fakes.FakeEtcd(tmp_path, monkeypatch, '3.6-upstream', tools=['etcdctl'])
    tools = EtcdTools.detect(FakeModule(bin_dirs=[fake.bin]), Runner(FakeModule()))
    assert tools.restore_tool is None and tools.status_path is None
    assert tools.supports_bump_revision is False
    with pytest.raises(EtcdModuleError) as caught:
        tools.require_status_tool()
    assert 'etcdutl' in caught.value.msg and '3.6.5' in caught.value.msg


def test_require_etcdctl_when_missing():
    with pytest.raises(EtcdModuleError) as caught:
        EtcdTools().require_etcdctl('take a snapshot')
    assert 'needed to take a snapshot' in caught.value.msg and 'etcdctl_path' in caught.value.msg


def test_detect_rejects_a_tool_that_is_not_etcd(tmp_path):
    tool = tmp_path / 'etcdctl'
    tool.write_text('#!/bin/sh\necho hello\n')
    tool.chmod(0o755)
    with pytest.raises(EtcdModuleError) as caught:
        EtcdTools.detect(FakeModule(), Runner(FakeModule()), etcdctl_path=str(tool))
    assert 'Cannot tell the version' in caught.value.msg
