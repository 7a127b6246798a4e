"""One backup/restore round trip by playbooks/backup.yml and restore.yml with the ansible-core of the interpreter
running pytest: `make compat` runs it with the oldest ansible-core that meta/runtime.yml allows, on a 3-node lab
(real sshd, real etcd 3.5.30) of its own addresses."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")
for path in (INTEGRATION, os.path.join(INTEGRATION, "playbooks")):
    if path not in sys.path:
        sys.path.insert(0, path)

import pbhelpers  # noqa: E402  (tests/integration/playbooks)
from ansible.release import __version__ as ANSIBLE_CORE_VERSION  # noqa: E402
from pbrun import BIN_DIR, DEFAULT_ETCD_VERSION, run_ansible_playbook  # noqa: E402  (tests/integration)

IP_BASE = 92
LAB_DIR = "/tmp/kubeops-fresh-%d" % IP_BASE
PREFIX = "/compat/ansible-core-%s/" % ANSIBLE_CORE_VERSION


@pytest.fixture(scope="module")
def lab():
    from lablib import Lab  # tests/lab/lablib.py, on sys.path through pbrun

    the_lab = Lab(LAB_DIR)
    the_lab.down()
    try:
        the_lab.up(nodes=3, etcd_version=DEFAULT_ETCD_VERSION, ip_base=IP_BASE)
        yield the_lab
    finally:
        the_lab.down()


def run_playbook(lab, playbook, **kwargs):
    return run_ansible_playbook(lab.inventory, playbook, **kwargs)


def test_backup_then_restore_brings_back_exactly_the_snapshot(lab, tmp_path):
    # The playbooks run with the ansible-playbook of this interpreter's venv.
    assert os.path.dirname(sys.executable) == BIN_DIR

    snapshot = pbhelpers.backup_with_marker(run_playbook, lab, str(tmp_path / "backups"), PREFIX)
    assert os.path.isfile(snapshot) and os.path.isfile(snapshot + ".meta.json")
    assert oct(os.stat(snapshot).st_mode & 0o777) == oct(0o600)
    members_before = pbhelpers.members(lab)

    run = pbhelpers.restore_round_trip(run_playbook, lab, snapshot, PREFIX)
    assert run.failed() == [], run

    restored = pbhelpers.keys(lab, with_values=True)
    assert restored[PREFIX + "in-snapshot"] == b"yes"
    assert PREFIX + "after-backup" not in restored
    members_after = pbhelpers.members(lab)
    assert sorted(members_after) == sorted(members_before)
    assert set(members_after.values()).isdisjoint(members_before.values())
    for host in pbhelpers.hosts(lab):
        assert pbhelpers.readyz(lab, host) == (200, "ok"), host
