"""Fixtures for the integration suites: real ansible-playbook, real SSH, real etcd, on the lab.

* ``lab`` (module scope, indirect): ``@pytest.mark.parametrize("lab", [{"nodes": 3,
  "etcd_version": "3.5.30", "ip_base": 40}], indirect=True)`` brings a lab up with those
  ``labctl up`` options and takes it down after the module.
* ``run_playbook(lab, playbook, extra_vars=None, check=False, diff=False, limit=None)`` runs
  ``ansible-playbook`` against the lab's inventory and returns a :class:`PlaybookRun`.
  ``playbook`` is a path (absolute, or relative to the repository root) or YAML text.
"""

import pytest

from pbrun import DEFAULT_ETCD_VERSION, run_ansible_playbook


@pytest.fixture(scope="session")
def run_playbook():
    def _run(lab, playbook, **kwargs):
        return run_ansible_playbook(lab.inventory, playbook, **kwargs)
    return _run


def _lab_dir(options):
    # Short, fixed paths: sshd control sockets and unix sockets have length limits.
    return "/tmp/kubeops-lab-%s" % options.get("ip_base", 10)


@pytest.fixture(scope="module")
def lab(request):
    from lablib import Lab  # tests/lab/lablib.py

    options = dict(getattr(request, "param", None) or {})
    options.setdefault("nodes", 3)
    options.setdefault("etcd_version", DEFAULT_ETCD_VERSION)
    options.setdefault("ip_base", 10)
    the_lab = Lab(options.pop("dir", None) or _lab_dir(options))
    the_lab.down()
    try:
        the_lab.up(**options)
        yield the_lab
    finally:
        the_lab.down()
