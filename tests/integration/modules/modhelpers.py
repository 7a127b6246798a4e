"""What the module integration tests share (``import modhelpers``, like the playbook tests' pbhelpers).

A plain module, not a conftest.py: a second conftest.py in this directory would shadow the integration one.
"""

import os
import time

import pytest
import yaml

from pbrun import ETCD_VERSIONS, MODULE_ETCD_VERSIONS

# For labs(versions=...): the modules whose commands change between 3.5 patch releases run on all four.
ALL_VERSIONS = ETCD_VERSIONS
# etcdctl 3.4.23 and etcdutl 3.5.1 predate --bump-revision (3.4.27 / 3.5.10).
BUMP_SUPPORTED = {"3.4.23": False, "3.5.1": False, "3.5.16": True, "3.5.30": True}


def labs(ip_base, nodes=1, versions=None, **options):
    """One lab per etcd version the module tests run on, for ``parametrize("lab", ..., indirect=True)``;
    each takes 4 addresses from ``ip_base`` on, so the labs of one file never share a subnet.
    ``versions=ALL_VERSIONS`` for a module whose flags change between 3.5 patch releases (the restore module)."""
    return [pytest.param(dict({"nodes": nodes, "etcd_version": version, "ip_base": ip_base + 4 * index}, **options), id=version)
            for index, version in enumerate(versions or MODULE_ETCD_VERSIONS)]


def playbook(task_name, module, args, hosts="kube_control_plane"):
    """A play running one kubeops.etcd module task."""
    return yaml.safe_dump([{
        "name": "kubeops.etcd integration: " + task_name,
        "hosts": hosts,
        "gather_facts": False,
        "tasks": [{"name": task_name, "kubeops.etcd." + module: args}],
    }], sort_keys=False)


def run_task(run_playbook, lab, task_name, module, args, host="cp1", check=False, diff=False):
    """(the PlaybookRun, the task's result on host) for one module task."""
    run = run_playbook(lab, playbook(task_name, module, args), check=check, diff=diff)
    return run, run.result(task_name, host)


def four_runs(run_playbook, lab, task_name, module, args, host="cp1", first_changes=True):
    """check, real, again, again in check: the pattern every state-changing module must pass."""
    results = []
    for check in (True, False, False, True):
        run, result = run_task(run_playbook, lab, task_name, module, args, host=host, check=check)
        assert run.rc == 0, run
        results.append(result)
    assert [r["changed"] for r in results] == [first_changes, first_changes, False, False], results
    return results


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def tree_state(path):
    """Names, sizes, mtimes and modes below path (empty when missing): equal means nothing changed."""
    state = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            state[os.path.relpath(full, path)] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return state


def wait_healthy(lab, timeout=90):
    deadline = time.time() + timeout
    while True:
        probe = lab.etcdctl("endpoint", "health", check=False, timeout=20)
        if probe.returncode == 0:
            return
        assert time.time() < deadline, "etcd did not become healthy: %s" % probe.stderr
        time.sleep(1)
