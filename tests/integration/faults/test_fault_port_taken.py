"""A port taken on one node when etcd restarts, on a 3-node etcd 3.5.30 lab: right after cp2's etcd stops, the test
binds cp2's client address (IP:2379) itself and keeps it (the nodes share the host's network namespace, as another
process on a real node would). etcd cannot start on cp2 on any data. Expected: the cluster keeps serving with the
quorum that remains (cp1 + cp3) with their API servers answering /readyz, the first line names cp2, the step and the
cause; once the port is free again, cp2 comes back with every key, and nothing blocks a new restore."""

import pytest

import faultcases

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 335, "dir": "/tmp/kubeops-faults-335"},
                         id="3-nodes-3.5.30")], indirect=True)


def test_client_port_taken_on_one_node_the_others_serve_then_cp2_comes_back(lab, run_playbook, tmp_path):
    faultcases.port_taken_on_cp2(lab, run_playbook, tmp_path, "/kubeops-faults-port/")
