"""The fault cases on etcd 3.4.23 (3-node lab; etcdctl restores, no etcdutl, capnslog logs): ansible-playbook killed
(SIGKILL) after the stop, before the swap, then resumed to exactly the snapshot; cp2's peer port (2380) taken when its
etcd restarts: the others serve, the first line quotes 3.4's log (`C | etcdmain: listen tcp ...: bind: address already
in use`), and cp2 rejoins once the port is free. See faultcases.py."""

import signal

import pytest

import faultcases

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.4.23", "ip_base": 360, "dir": "/tmp/kubeops-faults-360"},
                         id="3-nodes-3.4.23")], indirect=True)


def test_sigkill_after_the_stop_then_resume_gives_exactly_the_snapshot(lab, run_playbook, tmp_path):
    faultcases.killed_after_the_stop_then_resumed(lab, run_playbook, tmp_path, "/kubeops-faults-34-kill/",
                                                  signal.SIGKILL)


def test_peer_port_taken_on_one_node_the_others_serve_then_cp2_comes_back(lab, run_playbook, tmp_path):
    faultcases.port_taken_on_cp2(lab, run_playbook, tmp_path, "/kubeops-faults-34-peer/", which="peer")
