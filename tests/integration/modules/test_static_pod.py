"""static_pod on the lab: manifests are held aside and brought back unchanged, the module waits for the kubelet
(through crictl), stops the API servers before etcd in one call (``then``), starts etcd from a manifest prepared
outside the manifests dir (``sources``) keeping the one it replaces, refuses ambiguous states before moving anything,
and a wait that times out tells the operator which pod on which host, with crictl's view and the container's last
log lines."""

import os
import shutil
import stat
import subprocess
import time

import pytest
import yaml

from modhelpers import four_runs as module_four_runs, labs, read, run_task, tree_state, wait_healthy

MANIFESTS = "/etc/kubernetes/manifests"
HOLDING = "/etc/kubernetes/kubeops-etcd/held-manifests"
TASK = "Stop or start static pods"
ALL_PODS = ["etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
API_SERVERS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


def run_module(run_playbook, lab, args, check=False):
    return run_task(run_playbook, lab, TASK, "static_pod", args, check=check)


def four_runs(run_playbook, lab, args):
    return module_four_runs(run_playbook, lab, TASK, "static_pod", args)


def running(lab, name):
    return lab.exec("cp1", ["crictl", "ps", "--name", "^%s$" % name, "--state", "running", "-q"]).stdout.split()


def listing(lab, directory):
    path = lab.node_path("cp1", directory)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def write_atomically(path, document):
    """Through a dot file and a rename, so the kubelet never reads a half-written manifest."""
    temp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(temp, "w") as handle:
        yaml.safe_dump(document, handle)
    os.rename(temp, path)


def wait_until(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out waiting until " + what
        time.sleep(0.5)


@pytest.mark.parametrize("lab", labs(216), indirect=True)
def test_stop_and_start_the_control_plane(lab, run_playbook):
    names = ["kube-apiserver", "etcd"]
    contents = dict((name, read(lab.node_path("cp1", "%s/%s.yaml" % (MANIFESTS, name)))) for name in names)
    before = dict((name, running(lab, name)) for name in names)
    assert all(before.values())

    stopped = four_runs(run_playbook, lab, {"names": names, "state": "stopped", "timeout": 60})
    real = stopped[1]
    assert [(p["name"], p["state"], p["changed"]) for p in real["pods"]] == [
        ("kube-apiserver", "stopped", True), ("etcd", "stopped", True)]
    for pod in real["pods"]:
        assert pod["container_ids"] == before[pod["name"]]
        assert pod["held_path"] == "%s/%s.yaml" % (HOLDING, pod["name"])
        assert running(lab, pod["name"]) == []
    assert listing(lab, MANIFESTS) == ["kube-controller-manager.yaml", "kube-scheduler.yaml"]
    assert listing(lab, HOLDING) == ["etcd.yaml", "kube-apiserver.yaml"]
    assert stat.S_IMODE(os.stat(lab.node_path("cp1", HOLDING)).st_mode) == 0o700
    assert lab.etcdctl("endpoint", "health", check=False, timeout=20).returncode != 0

    started = four_runs(run_playbook, lab, {"names": ["etcd", "kube-apiserver"], "state": "started", "timeout": 90})
    real = started[1]
    assert [(p["name"], p["state"], p["changed"]) for p in real["pods"]] == [
        ("etcd", "started", True), ("kube-apiserver", "started", True)]
    for pod in real["pods"]:
        assert pod["container_ids"] and pod["container_ids"] != before[pod["name"]]
        assert set(pod["container_ids"]) <= set(running(lab, pod["name"]) + pod["container_ids"])
        # Moved, never rewritten.
        assert read(lab.node_path("cp1", "%s/%s.yaml" % (MANIFESTS, pod["name"]))) == contents[pod["name"]]
    assert listing(lab, MANIFESTS) == ALL_PODS
    assert listing(lab, HOLDING) == []
    wait_until(lambda: lab.etcdctl("endpoint", "health", check=False, timeout=20).returncode == 0, "etcd is healthy")


@pytest.mark.parametrize("lab", labs(216), indirect=True)
def test_ambiguous_or_missing_manifests_are_refused_before_anything_moves(lab, run_playbook):
    held_copy = lab.node_path("cp1", HOLDING + "/etcd.yaml")
    os.makedirs(os.path.dirname(held_copy), exist_ok=True)
    with open(held_copy, "wb") as handle:
        handle.write(read(lab.node_path("cp1", MANIFESTS + "/etcd.yaml")))
    try:
        for state in ("stopped", "started"):
            run, result = run_module(run_playbook, lab, {"names": ["kube-apiserver", "etcd"], "state": state})
            assert run.rc != 0
            assert result["msg"].startswith("Nothing was moved on cp1:")
            assert "etcd.yaml is both in %s and held in %s" % (MANIFESTS, HOLDING) in result["msg"]
            assert listing(lab, MANIFESTS) == ALL_PODS
            assert listing(lab, HOLDING) == ["etcd.yaml"]
    finally:
        os.unlink(held_copy)

    run, result = run_module(run_playbook, lab, {"names": ["kube-apiserver", "kube-proxy"], "state": "stopped"})
    assert run.rc != 0
    assert "kube-proxy.yaml is neither in %s nor held in %s" % (MANIFESTS, HOLDING) in result["msg"]
    assert listing(lab, MANIFESTS) == ALL_PODS
    assert running(lab, "kube-apiserver")


@pytest.mark.parametrize("lab", labs(216), indirect=True)
def test_then_stops_every_api_server_before_etcd_in_one_call(lab, run_playbook):
    before = dict((name, running(lab, name)) for name in API_SERVERS + ["etcd"])
    assert all(before.values()), before
    args = {"names": API_SERVERS, "then": ["etcd"], "state": "stopped", "timeout": 60}

    stopped = four_runs(run_playbook, lab, args)
    assert [(p["name"], p["state"], p["moved_at"]) for p in stopped[0]["pods"]] == [
        (name, "stopped", None) for name in API_SERVERS + ["etcd"]]
    pods = dict((p["name"], p) for p in stopped[1]["pods"])
    assert [p["name"] for p in stopped[1]["pods"]] == API_SERVERS + ["etcd"]
    for name in API_SERVERS:
        assert pods[name]["container_ids"] == before[name]
        assert pods[name]["moved_at"] <= pods[name]["settled_at"]
        # Every API server container was seen gone before etcd's manifest moved.
        assert pods[name]["settled_at"] <= pods["etcd"]["moved_at"]
    # etcd still ran its original container until its own manifest moved.
    assert pods["etcd"]["container_ids"] == before["etcd"]
    assert pods["etcd"]["moved_at"] <= pods["etcd"]["settled_at"]
    assert all(running(lab, name) == [] for name in API_SERVERS + ["etcd"])
    assert listing(lab, MANIFESTS) == []
    assert listing(lab, HOLDING) == ALL_PODS

    started = four_runs(run_playbook, lab, {"names": ["etcd"], "then": API_SERVERS, "state": "started", "timeout": 90})
    pods = dict((p["name"], p) for p in started[1]["pods"])
    for name in API_SERVERS:
        assert pods["etcd"]["settled_at"] <= pods[name]["moved_at"]
    for name in API_SERVERS + ["etcd"]:
        assert pods[name]["container_ids"] and not set(pods[name]["container_ids"]) & set(before[name])
    assert listing(lab, MANIFESTS) == ALL_PODS
    assert listing(lab, HOLDING) == []
    wait_healthy(lab)


def swap_hostpath(text, old, new):
    line = ("      path: %s\n" % old).encode()
    assert text.count(line) == 1, text
    return text.replace(line, ("      path: %s\n" % new).encode())


def put_back(lab, original):
    """Whatever a failed test left: the original manifests in the manifests dir, nothing held."""
    for name, content in original.items():
        path = lab.node_path("cp1", "%s/%s" % (MANIFESTS, name))
        if not os.path.exists(path) or read(path) != content:
            temp = os.path.join(os.path.dirname(path), ".%s.restore" % name)
            with open(temp, "wb") as handle:
                handle.write(content)
            os.chmod(temp, 0o600)
            os.rename(temp, path)
        held = lab.node_path("cp1", "%s/%s" % (HOLDING, name))
        if os.path.exists(held):
            os.unlink(held)


@pytest.mark.parametrize("lab", labs(216), indirect=True)
def test_sources_start_etcd_from_the_prepared_manifest_and_keep_the_replaced_one(lab, run_playbook):
    node = lab.state["nodes"][0]
    old_dir = node["data_dir_host_path"]
    new_dir = "/var/lib/etcd-prepared-it"
    prepared = "/etc/kubernetes/kubeops-it/prepared/etcd.yaml"
    replaced_dir = "/etc/kubernetes/kubeops-it/replaced"
    original = dict((name, read(lab.node_path("cp1", "%s/%s" % (MANIFESTS, name)))) for name in ALL_PODS)
    lab.etcdctl("put", "/kubeops-it/sources", "before the swap")
    etcd_before = running(lab, "etcd")
    try:
        stop = {"names": ["kube-apiserver"], "then": ["etcd"], "state": "stopped", "timeout": 60}
        run, result = run_module(run_playbook, lab, stop)
        assert run.rc == 0, run
        held_bytes = read(lab.node_path("cp1", HOLDING + "/etcd.yaml"))
        assert held_bytes == original["etcd.yaml"]
        # The prepared member: a copy of the stopped member's data dir, and a manifest that points at it.
        subprocess.run(["cp", "-a", lab.node_path("cp1", old_dir), lab.node_path("cp1", new_dir)], check=True)
        os.makedirs(lab.node_path("cp1", os.path.dirname(prepared)), mode=0o700)
        prepared_bytes = swap_hostpath(held_bytes, old_dir, new_dir)
        with open(lab.node_path("cp1", prepared), "wb") as handle:
            handle.write(prepared_bytes)
        os.chmod(lab.node_path("cp1", prepared), 0o600)
        old_state = tree_state(lab.node_path("cp1", old_dir))

        args = {"names": ["etcd"], "then": ["kube-apiserver"], "state": "started", "timeout": 90,
                "sources": {"etcd": prepared}, "replaced_dir": replaced_dir}
        run, checked = run_module(run_playbook, lab, args, check=True)
        assert run.rc == 0, run
        assert checked["changed"] is True
        assert (checked["pods"][0]["source"], checked["pods"][0]["replaced_path"]) == (prepared, replaced_dir + "/etcd.yaml")
        assert listing(lab, MANIFESTS) == ["kube-controller-manager.yaml", "kube-scheduler.yaml"]
        assert os.path.exists(lab.node_path("cp1", prepared))
        assert not os.path.exists(lab.node_path("cp1", replaced_dir))

        run, real = run_module(run_playbook, lab, args)
        assert run.rc == 0, run
        assert real["changed"] is True
        etcd, apiserver = real["pods"]
        assert (etcd["name"], etcd["state"], etcd["source"], etcd["replaced_path"]) == (
            "etcd", "started", prepared, replaced_dir + "/etcd.yaml")
        assert etcd["container_ids"] and not set(etcd["container_ids"]) & set(etcd_before)
        assert apiserver["container_ids"] and etcd["settled_at"] <= apiserver["moved_at"]
        # The kubelet runs the prepared file, moved there with its mode; the replaced one is kept byte for byte.
        manifest = lab.node_path("cp1", MANIFESTS + "/etcd.yaml")
        assert read(manifest) == prepared_bytes
        assert stat.S_IMODE(os.stat(manifest).st_mode) == 0o600
        assert not os.path.exists(lab.node_path("cp1", prepared))
        assert read(lab.node_path("cp1", replaced_dir + "/etcd.yaml")) == held_bytes
        assert stat.S_IMODE(os.stat(lab.node_path("cp1", replaced_dir)).st_mode) == 0o700
        assert listing(lab, HOLDING) == []
        assert listing(lab, MANIFESTS) == ALL_PODS

        # etcd runs on the prepared data dir: a write lands there, the old data dir stays as it was at the stop.
        wait_healthy(lab)
        assert lab.etcdctl("get", "/kubeops-it/sources", "--print-value-only").stdout.strip() == "before the swap"
        new_state = tree_state(lab.node_path("cp1", new_dir))
        lab.etcdctl("put", "/kubeops-it/sources", "after the swap")
        wait_until(lambda: tree_state(lab.node_path("cp1", new_dir)) != new_state, "etcd writes to the prepared dir")
        assert tree_state(lab.node_path("cp1", old_dir)) == old_state

        # Again (and again in check mode): refused, since etcd runs and the source has gone; nothing moves.
        for check in (False, True):
            run, again = run_module(run_playbook, lab, args, check=check)
            assert run.rc != 0
            assert again["changed"] is False
            assert "etcd.yaml is already in %s, so etcd runs; stop it first" % MANIFESTS in again["msg"]
        assert read(manifest) == prepared_bytes
        assert listing(lab, replaced_dir) == ["etcd.yaml"]

        # Back to the original manifest the same way: the prepared one is kept too, under a new name.
        run, result = run_module(run_playbook, lab, stop)
        assert run.rc == 0, run
        run, back = run_module(run_playbook, lab, dict(args, sources={"etcd": replaced_dir + "/etcd.yaml"}))
        assert run.rc == 0, run
        assert back["pods"][0]["replaced_path"].startswith(replaced_dir + "/etcd.yaml.")
        assert read(lab.node_path("cp1", back["pods"][0]["replaced_path"])) == prepared_bytes
        assert read(manifest) == original["etcd.yaml"]
        wait_healthy(lab)
        assert lab.etcdctl("get", "/kubeops-it/sources", "--print-value-only").stdout.strip() == "before the swap"
    finally:
        put_back(lab, original)
        for path in (new_dir, "/etc/kubernetes/kubeops-it"):
            shutil.rmtree(lab.node_path("cp1", path), ignore_errors=True)
        wait_until(lambda: running(lab, "kube-apiserver") and running(lab, "etcd"), "the control plane runs again")
        wait_healthy(lab)


STUBBORN = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "kubeops-stubborn", "namespace": "kube-system"},
    "spec": {"hostNetwork": True, "containers": [{
        "name": "kubeops-stubborn", "image": "docker.io/library/busybox:1.36",
        # Ignores SIGTERM, so the kubelet needs its 10 s grace period before SIGKILL.
        "command": ["sh", "-c", 'trap "" TERM; echo kubeops-stubborn-started >&2; while true; do sleep 1; done']}]},
}


@pytest.mark.parametrize("lab", labs(216), indirect=True)
def test_stop_timeout_names_pod_and_host_and_shows_crictl_and_logs(lab, run_playbook):
    manifest = lab.node_path("cp1", MANIFESTS + "/kubeops-stubborn.yaml")
    held = lab.node_path("cp1", HOLDING + "/kubeops-stubborn.yaml")
    write_atomically(manifest, STUBBORN)
    try:
        wait_until(lambda: running(lab, "kubeops-stubborn"), "the stubborn pod runs")
        ids = running(lab, "kubeops-stubborn")
        time.sleep(1)
        assert running(lab, "kubeops-stubborn") == ids, "the stubborn pod restarted: %s" % lab.exec(
            "cp1", ["crictl", "ps", "-a", "--name", "kubeops-stubborn"]).stdout
        run, result = run_module(run_playbook, lab, {"names": ["kubeops-stubborn"], "state": "stopped", "timeout": 3})
        assert run.rc != 0, (ids, run, open(lab.state["nodes"][0]["kubelet_log"]).read()[-3000:])
        # The container the kubelet is still stopping (SIGTERM ignored, 10 s grace): the one the message must name.
        # Read after the module, since on a loaded machine SSH set-up can outlast a restart of the pod.
        still = running(lab, "kubeops-stubborn")
        assert len(still) == 1, still
        msg = result["msg"]
        assert "Static pod kubeops-stubborn on cp1 did not stop within 3 seconds" in msg
        assert "Still running: %s" % still[0] in msg
        assert "`crictl ps -a --name ^kubeops-stubborn$`" in msg and "Running" in msg
        assert "last 20 log lines of container %s" % still[0] in msg
        assert "kubeops-stubborn-started" in msg
        assert result["changed"] is True and result["pods"][0]["state"] == "stopped"
        assert os.path.exists(held) and not os.path.exists(manifest)
        # The kubelet kills it after its grace period; the module called again sees it gone.
        run, result = run_module(run_playbook, lab, {"names": ["kubeops-stubborn"], "state": "stopped", "timeout": 30})
        assert run.rc == 0, run
        assert result["changed"] is False
        assert running(lab, "kubeops-stubborn") == []
    finally:
        for path in (manifest, held):
            if os.path.exists(path):
                os.unlink(path)
        wait_until(lambda: not running(lab, "kubeops-stubborn"), "the stubborn pod is gone", timeout=30)


@pytest.mark.parametrize("lab", labs(216), indirect=True)
def test_start_timeout_for_a_pod_that_never_runs(lab, run_playbook):
    never = dict(STUBBORN, metadata={"name": "kubeops-never", "namespace": "kube-system"})
    never["spec"] = {"hostNetwork": True, "containers": [{
        "name": "kubeops-never", "image": "registry.k8s.io/etcd:9.9.9-0", "command": ["etcd"]}]}
    held = lab.node_path("cp1", HOLDING + "/kubeops-never.yaml")
    manifest = lab.node_path("cp1", MANIFESTS + "/kubeops-never.yaml")
    os.makedirs(os.path.dirname(held), exist_ok=True)
    write_atomically(held, never)
    try:
        run, result = run_module(run_playbook, lab, {"names": ["kubeops-never"], "state": "started", "timeout": 3})
        assert run.rc != 0
        assert "Static pod kubeops-never on cp1 did not run within 3 seconds (manifest %s/kubeops-never.yaml)" % MANIFESTS \
            in result["msg"]
        assert "`crictl ps -a --name ^kubeops-never$`" in result["msg"]
        assert os.path.exists(manifest) and not os.path.exists(held)
    finally:
        for path in (manifest, held):
            if os.path.exists(path):
                os.unlink(path)
