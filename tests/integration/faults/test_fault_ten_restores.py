"""Ten restores in a row alternating two snapshots (A, B, A, B, ...) on a 3-node etcd 3.5.30 lab: each one serves
exactly that snapshot's keys and values under a new cluster ID; then prune.yml lists what the ten runs left, removes
exactly the names the operator gives, never the data dir etcd.yaml points at, and the cluster still serves the last
snapshot."""

import os

import pytest

import faulthelpers as f
from faulthelpers import h

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 350, "dir": "/tmp/kubeops-faults-350"},
                         id="3-nodes-3.5.30")], indirect=True)

PREFIX = "/kubeops-faults-ten/"
ROUNDS = 10


def test_ten_restores_alternating_two_snapshots_are_exact_each_time_then_prune(lab, run_playbook, tmp_path):
    lab.etcdctl("put", PREFIX + "a-only", "a")
    lab.etcdctl("put", PREFIX + "changed", "as-in-a")
    snapshot_a = h.backup(run_playbook, lab, str(tmp_path / "a"))["snapshot"]
    keys_a = h.keys(lab, with_values=True)
    lab.etcdctl("del", PREFIX + "a-only")
    lab.etcdctl("put", PREFIX + "b-only", "b")
    lab.etcdctl("put", PREFIX + "changed", "as-in-b")
    snapshot_b = h.backup(run_playbook, lab, str(tmp_path / "b"))["snapshot"]
    keys_b = h.keys(lab, with_values=True)
    assert keys_a != keys_b

    cluster_ids = [h.cluster_id(lab)]
    data_dirs = {host: [h.manifest_data_dir(lab, host)] for host in h.hosts(lab)}
    for number in range(ROUNDS):
        snapshot, expected = (snapshot_a, keys_a) if number % 2 == 0 else (snapshot_b, keys_b)
        lab.etcdctl("put", PREFIX + "written-between-restores", str(number))
        run = h.restore(run_playbook, lab, snapshot)
        assert run.rc == 0, (number, run)
        assert h.keys(lab, with_values=True) == expected, number
        assert h.cluster_id(lab) not in cluster_ids, number
        cluster_ids.append(h.cluster_id(lab))
        assert sorted(h.members(lab)) == ["cp1", "cp2", "cp3"]
        for host in h.hosts(lab):
            data_dirs[host].append(h.manifest_data_dir(lab, host))
            assert h.readyz(lab, host) == (200, "ok"), (number, host)
            assert h.listdir(lab, host, h.HOLDING_DIR) == []
    last_members = h.members(lab)

    # prune lists the eleven data dirs (the active one kept) and the ten run dirs on every node, removes nothing.
    listing = run_playbook(lab, f.PRUNE_PLAYBOOK)
    assert listing.rc == 0, listing
    removed_names = {}
    for host in h.hosts(lab):
        dirs = data_dirs[host]
        assert len(set(dirs)) == ROUNDS + 1
        found = {c["path"]: c for c in listing.result(f.PRUNE_LIST_TASK, host)["candidates"]}
        assert found[dirs[-1]]["kind"] == "active-data-dir"
        assert {p for p, c in found.items() if c["kind"] == "data-dir"} == set(dirs[:-1]), host
        run_dirs = sorted(p for p, c in found.items() if c["kind"] == "run-dir")
        assert len(run_dirs) == ROUNDS, run_dirs
        assert listing.result(f.PRUNE_LIST_TASK, host)["removed"] == []
        removed_names[host] = (dirs[:-2], run_dirs[:-1])

    # The operator names every data dir but the active one and the one before it, and every run dir but the last,
    # by their table names; the active data dir is named too and must be refused on every node with nothing removed.
    names = sorted({os.path.basename(p) for host in h.hosts(lab) for group in removed_names[host] for p in group})
    refused = run_playbook(lab, f.PRUNE_PLAYBOOK, extra_vars={"etcd_prune_remove": names + [data_dirs["cp1"][-1]]})
    assert refused.rc != 0, refused
    for host in h.hosts(lab):
        result = refused.result(f.PRUNE_LIST_TASK, host)
        assert result.get("removed", []) == [], result
        assert "%s: in use: /etc/kubernetes/manifests/etcd.yaml points at it" % data_dirs["cp1"][-1] in result["msg"]
        for path in data_dirs[host] + run_dirs:
            assert os.path.isdir(lab.node_path(host, path)), path

    pruned = run_playbook(lab, f.PRUNE_PLAYBOOK, extra_vars={"etcd_prune_remove": names})
    assert pruned.rc == 0, pruned
    for host in h.hosts(lab):
        old_dirs, old_runs = removed_names[host]
        assert sorted(pruned.result(f.PRUNE_LIST_TASK, host)["removed"]) == sorted(old_dirs + old_runs), host
        for path in old_dirs + old_runs:
            assert not os.path.lexists(lab.node_path(host, path)), path
        for path in data_dirs[host][-2:]:
            assert os.path.isdir(lab.node_path(host, path + "/member/wal")), path
        assert h.manifest_data_dir(lab, host) == data_dirs[host][-1]
        assert len(f.runs(lab, host)) == 1
        assert h.readyz(lab, host) == (200, "ok")
    # The cluster still serves the last snapshot (B), with the same members.
    assert h.keys(lab, with_values=True) == keys_b
    assert h.members(lab) == last_members
    assert h.cluster_id(lab) == cluster_ids[-1]
    health = lab.etcdctl("endpoint", "health")
    assert health.stdout.count("is healthy") == 3, health
