"""prune.yml on a 3-node lab after three real restores in a row, a failed data dir and a moved-aside file made the way
the collection names them: --check lists exactly those with their disk usage and removes nothing; an age and names
remove exactly what was asked; the data dir etcd.yaml points at is refused even when named; a held manifest is listed
loudly and never removed; etcd keeps serving the same keys with the same members throughout."""

import os
import shutil
import subprocess
import time

import pytest

import pbhelpers as h

PRUNE_PLAYBOOK = "playbooks/prune.yml"
LIST_TASK = "List what restores and backups left on every control plane, and remove what was named"
HELD_TASK = "Warn that manifests are held aside by a restore that did not finish (never pruned; resume or abort it)"
FAILED_SUFFIX = ".failed-20261201T000000Z"
MOVED_SUFFIX = ".replaced-20261201T000000Z"

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 3, "etcd_version": "3.5.30", "ip_base": 146, "dir": "/tmp/kubeops-prune-146"},
                         id="3-nodes-etcd-3.5.30")], indirect=True)


@pytest.fixture(scope="module")
def restored(lab, run_playbook, tmp_path_factory):
    """Three restores in a row, then a failed dir and a moved-aside file on every node. What each node holds."""
    snapshot = h.backup(run_playbook, lab, str(tmp_path_factory.mktemp("backups")))["snapshot"]
    data_dirs = []
    for _round in range(3):
        run = h.restore(run_playbook, lab, snapshot)
        assert run.rc == 0, run
        data_dirs.append({host: h.manifest_data_dir(lab, host) for host in h.hosts(lab)})
    state = {}
    for host in h.hosts(lab):
        first, second, active = (dirs[host] for dirs in data_dirs)
        failed = first + FAILED_SUFFIX            # how the rollback names a restored dir it moves aside
        os.mkdir(lab.node_path(host, failed), 0o700)
        with open(lab.node_path(host, failed + "/db"), "wb") as handle:
            handle.write(os.urandom(256 * 1024))
        moved = h.STAGING_DIR + "/" + os.path.basename(snapshot) + MOVED_SUFFIX   # files.move_aside's naming
        os.makedirs(lab.node_path(host, h.STAGING_DIR), mode=0o700, exist_ok=True)
        shutil.copy(snapshot, lab.node_path(host, moved))
        runs = [h.RUNS_DIR + "/" + name for name in h.listdir(lab, host, h.RUNS_DIR)]
        assert len(runs) == 3, runs
        state[host] = {"active": active, "old": ["/var/lib/etcd", first, second], "failed": failed, "moved": moved,
                       "runs": runs}
    return {"nodes": state, "keys": h.keys(lab, with_values=True), "members": h.members(lab)}


def prune(run_playbook, lab, check=False, **extra_vars):
    return run_playbook(lab, PRUNE_PLAYBOOK, extra_vars=extra_vars or None, check=check)


def listed(run, host):
    return {c["path"]: c for c in run.result(LIST_TASK, host)["candidates"]}


def du(lab, host, path):
    out = subprocess.run(["du", "-s", "-B1", lab.node_path(host, path)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def node_files(lab):
    return {host: (h.listdir(lab, host, "/var/lib"), h.listdir(lab, host, h.RUNS_DIR),
                   h.listdir(lab, host, h.STAGING_DIR), h.listdir(lab, host, h.HOLDING_DIR))
            for host in h.hosts(lab)}


def assert_etcd_serves_the_same(lab, restored):
    assert h.keys(lab, with_values=True) == restored["keys"]
    assert h.members(lab) == restored["members"]
    health = lab.etcdctl("endpoint", "health")
    assert health.stdout.count("is healthy") == 3, health


def age(lab, host, path, days):
    """Make a node's path, and everything below it, days old."""
    when = time.time() - days * 86400
    top = lab.node_path(host, path)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(top, (when, when), follow_symlinks=False)


def test_check_mode_lists_exactly_the_leftovers_with_sizes_and_removes_nothing(lab, run_playbook, restored):
    before = node_files(lab)
    run = prune(run_playbook, lab, check=True, etcd_prune_older_than="0")
    assert run.rc == 0, run
    for host, node in restored["nodes"].items():
        found = listed(run, host)
        kinds = {path: c["kind"] for path, c in found.items() if c["kind"] != "backup-staging"}
        expected = dict([(node["active"], "active-data-dir"), (node["failed"], "failed-data-dir"),
                         (node["moved"], "moved-aside")] + [(path, "data-dir") for path in node["old"]]
                        + [(path, "run-dir") for path in node["runs"]])
        assert kinds == expected, host
        for path in node["old"] + [node["failed"], node["moved"]] + node["runs"]:
            assert found[path]["size_bytes"] == du(lab, host, path), path
            assert found[path]["protected"] is None
        assert found[node["failed"]]["size_bytes"] >= 256 * 1024
        assert found[node["active"]]["protected"] == "in use: /etc/kubernetes/manifests/etcd.yaml points at it"
        for staging in [c for c in found.values() if c["kind"] == "backup-staging"]:
            assert staging["protected"] and "etcd_backup_retention_node" in staging["protected"]
        result = run.result(LIST_TASK, host)
        assert sorted(result["selected"]) == sorted(node["old"] + [node["failed"], node["moved"]] + node["runs"])
        assert result["removed"] == []
        table = run.result("Show the leftovers of each control plane (kind, size, age, path, why)", host)["msg"]
        assert [line for line in table if node["failed"] in line][0].startswith("would remove")
        assert [line for line in table if node["active"] in line][0].startswith("KEEP")
    assert node_files(lab) == before
    assert_etcd_serves_the_same(lab, restored)


def test_an_age_and_names_remove_exactly_what_was_asked(lab, run_playbook, restored):
    for host, node in restored["nodes"].items():
        age(lab, host, node["failed"], 10)
        age(lab, host, node["moved"], 9)
    run = prune(run_playbook, lab, etcd_prune_older_than="7d")
    assert run.rc == 0, run
    for host, node in restored["nodes"].items():
        assert sorted(run.result(LIST_TASK, host)["removed"]) == sorted([node["failed"], node["moved"]])
        assert not os.path.lexists(lab.node_path(host, node["failed"]))
        assert not os.path.lexists(lab.node_path(host, node["moved"]))
        for path in node["old"] + node["runs"] + [node["active"]]:
            assert os.path.isdir(lab.node_path(host, path)), path

    first_run = os.path.basename(restored["nodes"]["cp1"]["runs"][0])
    run = prune(run_playbook, lab, etcd_prune_remove="/var/lib/etcd," + first_run)
    assert run.rc == 0, run
    for host, node in restored["nodes"].items():
        assert sorted(run.result(LIST_TASK, host)["removed"]) == sorted(["/var/lib/etcd", node["runs"][0]])
        assert not os.path.lexists(lab.node_path(host, "/var/lib/etcd"))
        assert h.listdir(lab, host, h.RUNS_DIR) == sorted(os.path.basename(p) for p in node["runs"][1:])
        for path in node["old"][1:] + [node["active"]]:
            assert os.path.isdir(lab.node_path(host, path)), path
    assert_etcd_serves_the_same(lab, restored)


def test_the_data_dir_in_use_is_refused_even_when_named(lab, run_playbook, restored):
    before = node_files(lab)
    active = restored["nodes"]["cp1"]["active"]
    run = prune(run_playbook, lab, etcd_prune_remove=[active, restored["nodes"]["cp1"]["old"][1]])
    assert run.rc != 0, run
    for host in h.hosts(lab):
        message = run.result(LIST_TASK, host)["msg"]
        assert "nothing was removed" in message, message
        assert "%s: in use: /etc/kubernetes/manifests/etcd.yaml points at it" % active in message, message
    assert node_files(lab) == before
    assert_etcd_serves_the_same(lab, restored)


def test_a_held_manifest_is_listed_loudly_and_never_removed(lab, run_playbook, restored):
    held = lab.node_path("cp2", h.HOLDING_DIR + "/etcd.yaml")
    # A copy outside /etc/kubernetes/manifests: the kubelet stand-in (like the kubelet) ignores it.
    shutil.copy(lab.node_path("cp2", "/etc/kubernetes/manifests/etcd.yaml"), held)
    try:
        run = prune(run_playbook, lab, etcd_prune_remove="etcd.yaml")
        assert run.rc != 0, run
        message = run.result(LIST_TASK, "cp2")["msg"]
        assert "%s/etcd.yaml: held aside by a restore that did not finish" % h.HOLDING_DIR in message, message
        assert "never removes a held manifest" in message
        assert os.path.isfile(held)

        run = prune(run_playbook, lab, etcd_prune_older_than="0")
        assert run.rc == 0, run
        assert os.path.isfile(held)
        assert run.result(LIST_TASK, "cp2")["held"] == [h.HOLDING_DIR + "/etcd.yaml"]
        warning = run.result(HELD_TASK, "cp2")["msg"]
        assert warning.startswith("WARNING cp2: %s/etcd.yaml held aside" % h.HOLDING_DIR), warning
        assert all(not r["result"].get("msg") for r in run.task_results(HELD_TASK, "cp1"))
        cp2 = listed(run, "cp2")
        # the run dirs stay while a manifest is held (resume or abort needs them); elsewhere they went
        for path in restored["nodes"]["cp2"]["runs"][1:]:
            assert "held" in cp2[path]["protected"] and os.path.isdir(lab.node_path("cp2", path))
        for host in ("cp1", "cp3"):
            assert h.listdir(lab, host, h.RUNS_DIR) == []
        for host, node in restored["nodes"].items():
            assert h.manifest_data_dir(lab, host) == node["active"]
            assert os.path.isdir(lab.node_path(host, node["active"]))
            assert not os.path.lexists(lab.node_path(host, node["old"][1]))
    finally:
        os.remove(held)
    assert_etcd_serves_the_same(lab, restored)
