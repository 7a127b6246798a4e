"""Tests of the lab itself (run as root): `.venv/bin/pytest tests/lab -q`.

They use their own lab dirs under /tmp and ip bases 80/100/110/120 (external etcd: 370/380/390) so they
never collide with the integration suites' labs (ip base 10, 40-70, 150+).
"""
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import http.client

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lablib  # noqa: E402

LABCTL = os.path.join(HERE, "labctl")
REPO = os.path.dirname(os.path.dirname(HERE))
# the etcd.yaml kubeadm (v1.31-v1.33) writes on the first control plane (copy of the shared reference)
REFERENCE = os.path.join(HERE, "testdata", "kubeadm-etcd.yaml")

# The lab needs root (namespaces, mounts, sshd): say so instead of skipping silently.
assert os.geteuid() == 0, "tests/lab must run as root: the lab makes namespaces and mounts and starts sshd"


def wait_for(fn, timeout=20.0, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


def crictl(lab, node, *args):
    return lab.exec(node, ["crictl"] + list(args), check=True).stdout


def running_ids(lab, node, name):
    return crictl(lab, node, "ps", "--name", name, "--state", "running", "-q").split()


def container(lab, node, cid):
    with open(lab.state["nodes"][int(node[2:]) - 1]["kubelet_state"]) as f:
        return json.load(f)["containers"][cid]


def ssh(lab, node, cmd):
    return subprocess.run(lab.ssh_argv(node) + [cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=30, check=False)


@pytest.fixture(scope="module")
def lab():
    the_lab = lablib.Lab("/tmp/kubeops-labtest-100")
    the_lab.down()
    t0 = time.time()
    the_lab.up(nodes=3, ip_base=100)
    the_lab.up_seconds = time.time() - t0
    yield the_lab
    the_lab.down()


SLEEPER = """apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  namespace: kube-system
spec:
  containers:
  - command:
    - sh
    - -c
    - echo started %(tag)s; ls /srv/kubeops-lab-data; exec sleep 1000
    image: registry.example/busybox:1
    name: sleeper
    volumeMounts:
    - mountPath: /srv/kubeops-lab-data
      name: data
  hostNetwork: true
  volumes:
  - hostPath:
      path: %(path)s
      type: DirectoryOrCreate
    name: data
"""


# ---- shape ---------------------------------------------------------------------------------------
def test_up_is_fast_and_state_complete(lab):
    assert lab.up_seconds < 30
    st = lab.state
    assert st["phase"] == "up"
    for key in ("inventory", "ssh_key", "ca", "client_cert", "client_key"):
        assert os.path.exists(st[key]), key
    for i, n in enumerate(st["nodes"]):
        assert n["host"] == n["hostname"] == n["member_name"] == "cp%d" % (i + 1)
        assert n["ip"] == "127.0.0.%d" % (101 + i)
        assert n["client_url"] == "https://%s:2379" % n["ip"]
        assert n["peer_url"] == "https://%s:2380" % n["ip"]
        assert n["etcd_version"] == lablib.DEFAULT_VERSION
        assert n["data_dir_host_path"] == "/var/lib/etcd"
        assert n["has_tools"] is True
        assert os.path.isdir(os.path.join(n["root"], "etc/kubernetes/manifests"))


def test_manifest_matches_kubeadm_shape(lab):
    with open(REFERENCE) as f:
        ref = yaml.safe_load(f)
    for i, n in enumerate(lab.state["nodes"]):
        path = lab.node_path(n["host"], "/etc/kubernetes/manifests/etcd.yaml")
        assert os.stat(path).st_mode & 0o777 == 0o600
        with open(path) as f:
            m = yaml.safe_load(f)
        ip = n["ip"]
        # same keys everywhere except the flags the lab must differ in
        assert set(m) == set(ref) and set(m["spec"]) == set(ref["spec"])
        c, rc = m["spec"]["containers"][0], ref["spec"]["containers"][0]
        assert set(c) == set(rc)
        flags = dict(a.split("=", 1) for a in c["command"][1:])
        rflags = dict(a.split("=", 1) for a in rc["command"][1:])
        extra = {"--initial-cluster-state"} if i else set()
        assert set(flags) == set(rflags) | extra
        names = [a.split("=", 1)[0] for a in c["command"][1:]]
        assert names == sorted(names)  # kubeadm sorts flags by name
        assert flags["--name"] == n["member_name"]
        assert flags["--listen-client-urls"] == "https://%s:2379" % ip
        assert flags["--listen-metrics-urls"] == "http://%s:2381" % ip
        expected_ic = ",".join("%s=%s" % (x["member_name"], x["peer_url"]) for x in lab.state["nodes"][:i + 1])
        assert flags["--initial-cluster"] == expected_ic
        if i:
            assert flags["--initial-cluster-state"] == "existing"
        for k in ("--cert-file", "--key-file", "--trusted-ca-file", "--peer-cert-file", "--data-dir",
                  "--snapshot-count", "--client-cert-auth"):
            assert flags[k] == rflags[k]
        assert c["image"] == "registry.k8s.io/etcd:%s-0" % n["etcd_version"]
        assert c["livenessProbe"]["httpGet"]["host"] == ip
        assert c["volumeMounts"] == rc["volumeMounts"]
        assert m["spec"]["volumes"] == ref["spec"]["volumes"]
        assert m["metadata"]["annotations"]["kubeadm.kubernetes.io/etcd.advertise-client-urls"] == n["client_url"]
        api = yaml.safe_load(open(lab.node_path(n["host"], "/etc/kubernetes/manifests/kube-apiserver.yaml")))
        aflags = dict(a.split("=", 1) for a in api["spec"]["containers"][0]["command"][1:])
        assert aflags["--etcd-servers"] == n["client_url"]
        assert aflags["--advertise-address"] == ip


def test_pki(lab):
    n = lab.state["nodes"][1]
    pki = lab.node_path("cp2", "/etc/kubernetes/pki")
    for base in ("etcd/ca", "etcd/server", "etcd/peer", "etcd/healthcheck-client", "apiserver-etcd-client",
                 "ca", "apiserver"):
        assert os.path.exists(os.path.join(pki, base + ".crt")), base
        assert os.stat(os.path.join(pki, base + ".key")).st_mode & 0o777 == 0o600, base
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", os.path.join(pki, "etcd/server.crt")],
                          stdout=subprocess.PIPE, text=True, check=True).stdout
    for san in ("DNS:cp2", "DNS:localhost", "IP Address:%s" % n["ip"], "IP Address:127.0.0.1"):
        assert san in text
    hc = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                         os.path.join(pki, "etcd/healthcheck-client.crt")], stdout=subprocess.PIPE, text=True, check=False).stdout
    assert "TLS Web Client Authentication" in hc and "Server Authentication" not in hc
    # the node's healthcheck-client cert talks to etcd
    p = subprocess.run([n["etcdctl"], "--endpoints=" + n["client_url"], "--cacert=" + pki + "/etcd/ca.crt",
                        "--cert=" + pki + "/etcd/healthcheck-client.crt",
                        "--key=" + pki + "/etcd/healthcheck-client.key", "endpoint", "health"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert p.returncode == 0, p.stdout


def test_cluster_members_and_etcdctl_cli(lab):
    out = subprocess.run([LABCTL, "--dir", lab.dir, "etcdctl", "--", "endpoint", "status", "--cluster", "-w", "json"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    status = json.loads(out)
    assert len(status) == 3
    leaders = {s["Status"]["leader"] for s in status}
    assert len(leaders) == 1
    members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["cp1", "cp2", "cp3"]
    assert not any(m.get("isLearner") for m in members)


# ---- nodes -------------------------------------------------------------------------------------
def test_ssh_sees_node_files_and_tools(lab):
    for n in lab.state["nodes"]:
        p = ssh(lab, n["host"], "hostname; grep -- --name= /etc/kubernetes/manifests/etcd.yaml; "
                                "command -v etcdctl etcdutl crictl systemctl; ls /var/lib")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split()
        assert lines[0] == n["hostname"]
        assert "--name=%s" % n["member_name"] in lines
        assert "/usr/local/sbin/etcdctl" in lines and "/usr/local/sbin/crictl" in lines
        assert "/usr/local/sbin/systemctl" in lines and "/usr/local/sbin/etcdutl" in lines
        assert "kubelet-standin" in lines
    assert not os.path.exists("/etc/kubernetes/manifests")  # host's own view stays untouched
    ver = ssh(lab, "cp3", "etcdctl version").stdout
    assert "etcdctl version: %s" % lablib.DEFAULT_VERSION in ver


def test_ansible_ping(lab):
    ansible = os.path.join(REPO, ".venv", "bin", "ansible")
    if not os.path.exists(ansible):
        ansible = shutil.which("ansible")
    if not ansible:
        pytest.fail("ansible is not installed: run `make install` (the test command does)")
    p = subprocess.run([ansible, "-i", lab.inventory, "kube_control_plane", "-m", "ansible.builtin.ping"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout
    assert p.stdout.count("SUCCESS") == 3


PLAYBOOK = """
- hosts: kube_control_plane
  gather_facts: true
  tasks:
    - ansible.builtin.assert:
        that: ansible_hostname == inventory_hostname
    - ansible.builtin.systemd_service: {name: kubelet, state: restarted}
    - ansible.builtin.service: {name: kubelet, state: started}
      register: svc
    - ansible.builtin.assert: {that: [not svc.changed]}
    - ansible.builtin.command: crictl ps --name '^etcd$' --state running -q
      register: ids
      changed_when: false
    - ansible.builtin.assert: {that: [ids.stdout_lines | length == 1]}
    - ansible.builtin.slurp: {src: /etc/kubernetes/manifests/etcd.yaml}
      register: m
    - ansible.builtin.assert:
        that: ("--name=" ~ inventory_hostname) in (m.content | b64decode)
"""


def test_ansible_playbook_service_and_files(lab, tmp_path):
    pb_bin = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
    if not os.path.exists(pb_bin):
        pb_bin = shutil.which("ansible-playbook")
    if not pb_bin:
        pytest.fail("ansible is not installed: run `make install` (the test command does)")
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    p = subprocess.run([pb_bin, "-i", lab.inventory, str(pb)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout[-4000:]


def test_exec_and_node_path(lab):
    p = lab.exec("cp2", ["sh", "-c", "hostname; cat /etc/kubernetes/marker-test 2>/dev/null || true"])
    assert p.stdout.split()[0] == "cp2"
    with open(lab.node_path("cp2", "/etc/kubernetes/marker-test"), "w") as f:
        f.write("hello-cp2\n")
    try:
        assert "hello-cp2" in lab.exec("cp2", ["cat", "/etc/kubernetes/marker-test"]).stdout
        assert lab.exec("cp1", ["cat", "/etc/kubernetes/marker-test"]).returncode != 0
    finally:
        os.unlink(lab.node_path("cp2", "/etc/kubernetes/marker-test"))
    assert lab.node_path("cp1", "/tmp/x") == "/tmp/x"


# ---- kubelet / crictl ---------------------------------------------------------------------------
def test_crictl_answers(lab):
    out = crictl(lab, "cp1", "ps")
    assert re.match(r"CONTAINER\s+IMAGE\s+CREATED\s+STATE\s+NAME\s+ATTEMPT\s+POD ID\s+POD", out)
    assert "etcd-cp1" in out and "Running" in out
    ids = crictl(lab, "cp1", "ps", "-q").split()
    assert len(ids) == 4 and all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)
    assert len(running_ids(lab, "cp1", "^etcd$")) == 1
    assert len(running_ids(lab, "cp1", "kube-")) == 3
    assert running_ids(lab, "cp1", "^kube-apiserver$") != running_ids(lab, "cp1", "^etcd$")
    js = json.loads(crictl(lab, "cp1", "ps", "-o", "json", "--name", "^etcd$"))
    assert js["containers"][0]["state"] == "CONTAINER_RUNNING"
    assert js["containers"][0]["labels"]["io.kubernetes.pod.name"] == "etcd-cp1"
    eid = running_ids(lab, "cp1", "^etcd$")[0]
    logs = crictl(lab, "cp1", "logs", "--tail", "5", eid[:8])
    assert 0 < len(logs.splitlines()) <= 5
    assert "etcd-cp1" in crictl(lab, "cp1", "pods")


def crictl_exec(lab, node, cid, *args):
    return lab.exec(node, ["crictl", "exec", cid] + list(args))


def test_crictl_exec_offers_only_the_official_images_files(lab):
    node = lab.state["nodes"][0]
    assert (node["etcd_image"], node["etcd_image_kind"]) == ("registry.k8s.io/etcd:3.5.30-0", "official")
    eid = running_ids(lab, "cp1", "^etcd$")[0]
    for tool in ("etcdctl", "etcdutl", "/usr/local/bin/etcdutl"):
        p = crictl_exec(lab, "cp1", eid[:12], tool, "version")
        assert p.returncode == 0 and "version: 3.5.30" in p.stdout, p
    # no shell in the official image: exits 1 like crictl, with runc's words
    p = crictl_exec(lab, "cp1", eid, "sh", "-c", "true")
    assert p.returncode == 1
    assert p.stderr.startswith("FATA[0000] execing command in container %s: " % eid)
    assert 'exec: "sh": executable file not found in $PATH: unknown' in p.stderr
    p = crictl_exec(lab, "cp1", eid, "/bin/sh")
    assert p.returncode == 1 and 'exec: "/bin/sh": stat /bin/sh: no such file or directory' in p.stderr
    # the tool's exit code shows only in the message; -s prints stdout then stderr on stdout
    p = crictl_exec(lab, "cp1", eid, "etcdutl", "snapshot", "status", "/var/lib/etcd/none.db")
    assert p.returncode == 1 and p.stderr.rstrip().endswith("command terminated with exit code 1"), p
    p = lab.exec("cp1", ["crictl", "exec", "-s", eid, "etcdutl", "version"])
    assert p.returncode == 0 and p.stdout == "etcdutl version: 3.5.30\nAPI version: 3.5\n\n\n"
    # a file written in the data dir's hostPath reaches the node; one written elsewhere stays in the container
    tls = ["--endpoints=" + node["client_url"], "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
           "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
           "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key"]
    snap = lab.node_path("cp1", "/var/lib/etcd/lab-exec.db")
    try:
        for where in ("/var/lib/etcd/lab-exec.db", "/tmp/kubeops-lab-exec.db"):
            p = crictl_exec(lab, "cp1", eid, "etcdctl", *(tls + ["snapshot", "save", where]))
            assert p.returncode == 0, p
        assert os.path.getsize(snap) % 512 == 32
        assert not os.path.exists("/tmp/kubeops-lab-exec.db")
        assert not os.path.exists(lab.node_path("cp1", "/tmp/kubeops-lab-exec.db"))
    finally:
        os.unlink(snap)


def test_crictl_exec_into_a_stopped_container_fails_like_crictl(lab):
    old = running_ids(lab, "cp2", "^kube-scheduler$")[0]
    crictl(lab, "cp2", "stop", "-t", "2", old)
    wait_for(lambda: running_ids(lab, "cp2", "^kube-scheduler$") not in ([], [old]), what="scheduler restart")
    p = crictl_exec(lab, "cp2", old, "true")
    assert p.returncode == 1
    assert p.stderr.strip() == ("FATA[0000] execing command in container %s: rpc error: code = Unknown desc = "
                                "container is in CONTAINER_EXITED state" % old)


def test_manifest_out_and_back_stops_and_restarts_etcd(lab):
    mdir = lab.node_path("cp3", "/etc/kubernetes/manifests")
    held = lab.node_path("cp3", "/etc/kubernetes/held")
    os.makedirs(held, exist_ok=True)
    old = running_ids(lab, "cp3", "^etcd$")
    os.rename(os.path.join(mdir, "etcd.yaml"), os.path.join(held, "etcd.yaml"))
    t0 = time.time()
    wait_for(lambda: not running_ids(lab, "cp3", "^etcd$"), 15, what="etcd on cp3 to stop")
    stopped = time.time() - t0
    assert stopped < 5
    assert lab.etcdctl("endpoint", "health", node="cp3", check=False).returncode != 0
    exited = crictl(lab, "cp3", "ps", "-a", "--state", "exited", "--name", "^etcd$", "-q").split()
    assert old[0] in exited
    os.rename(os.path.join(held, "etcd.yaml"), os.path.join(mdir, "etcd.yaml"))
    wait_for(lambda: lab.etcdctl("endpoint", "health", node="cp3", check=False).returncode == 0, 30,
             what="etcd on cp3 healthy again")
    new = running_ids(lab, "cp3", "^etcd$")
    assert new and new != old
    os.rmdir(held)


def test_duplicate_manifest_is_ignored_and_takes_over(lab):
    """kubelet semantics: etcd.yaml.bak with the same pod name is ignored while etcd.yaml is there;
    with etcd.yaml moved away, the .bak takes over and etcd comes back."""
    mdir = lab.node_path("cp3", "/etc/kubernetes/manifests")
    shutil.copy(os.path.join(mdir, "etcd.yaml"), os.path.join(mdir, "etcd.yaml.bak"))
    before = running_ids(lab, "cp3", "^etcd$")
    time.sleep(1.5)
    assert running_ids(lab, "cp3", "^etcd$") == before and len(before) == 1
    held = lab.node_path("cp3", "/etc/kubernetes/held")
    os.makedirs(held, exist_ok=True)
    os.rename(os.path.join(mdir, "etcd.yaml"), os.path.join(held, "etcd.yaml"))
    # the stopped pod is replaced by the one from etcd.yaml.bak
    wait_for(lambda: [i for i in running_ids(lab, "cp3", "^etcd$") if i not in before], 20, what="etcd from .bak")
    os.unlink(os.path.join(mdir, "etcd.yaml.bak"))
    wait_for(lambda: not running_ids(lab, "cp3", "^etcd$"), 15, what="etcd stop")
    os.rename(os.path.join(held, "etcd.yaml"), os.path.join(mdir, "etcd.yaml"))
    wait_for(lambda: lab.etcdctl("endpoint", "health", node="cp3", check=False).returncode == 0, 30,
             what="etcd on cp3 healthy again")
    os.rmdir(held)
    with open(lab.state["nodes"][2]["kubelet_log"]) as f:
        assert "duplicates the one from etcd.yaml: ignored" in f.read()


def test_dotfiles_ignored_extra_files_become_pods_and_changes_recreate(lab):
    mdir = lab.node_path("cp2", "/etc/kubernetes/manifests")
    hidden = os.path.join(mdir, ".sleeper.yaml")
    extra = os.path.join(mdir, "sleeper.yaml.bak")   # not a dot file: the kubelet runs it
    try:
        with open(hidden, "w") as f:
            f.write(SLEEPER % {"tag": "hidden", "path": "/var/lib/sleeper-a"})
        time.sleep(1.5)
        assert not running_ids(lab, "cp2", "^sleeper$")
        os.rename(hidden, extra)
        first = wait_for(lambda: running_ids(lab, "cp2", "^sleeper$"), 10, what="sleeper pod")
        c = container(lab, "cp2", first[0])
        assert c["pod_name"] == "sleeper-cp2"
        # DirectoryOrCreate: made before the container is listed as running, as by the kubelet
        assert os.path.isdir(lab.node_path("cp2", "/var/lib/sleeper-a"))
        assert os.stat(lab.node_path("cp2", "/var/lib/sleeper-a")).st_mode & 0o777 == 0o755
        # content change => pod recreated, new container
        with open(extra + ".tmp", "w") as f:
            f.write(SLEEPER % {"tag": "second", "path": "/var/lib/sleeper-a"})
        os.rename(extra + ".tmp", extra)
        second = wait_for(lambda: [i for i in running_ids(lab, "cp2", "^sleeper$") if i != first[0]], 15,
                          what="recreated sleeper")
        assert container(lab, "cp2", second[0])["pod_id"] != c["pod_id"]
        wait_for(lambda: "started second" in crictl(lab, "cp2", "logs", second[0]), 15, what="log line")
    finally:
        for p in (hidden, extra, extra + ".tmp"):
            if os.path.exists(p):
                os.unlink(p)
    wait_for(lambda: not running_ids(lab, "cp2", "^sleeper$"), 15, what="sleeper stop")


def test_hostpath_change_is_honoured(lab):
    mdir = lab.node_path("cp2", "/etc/kubernetes/manifests")
    b = lab.node_path("cp2", "/var/lib/sleeper-b")
    os.makedirs(b, exist_ok=True)
    open(os.path.join(b, "only-in-b"), "w").close()
    path = os.path.join(mdir, "sleeper.yaml")
    with open(path, "w") as f:
        f.write(SLEEPER % {"tag": "a", "path": "/var/lib/sleeper-a"})
    cid = wait_for(lambda: running_ids(lab, "cp2", "^sleeper$"), 10, what="sleeper")[0]
    time.sleep(0.5)
    assert "only-in-b" not in crictl(lab, "cp2", "logs", cid)
    with open(path, "w") as f:
        f.write(SLEEPER % {"tag": "b", "path": "/var/lib/sleeper-b"})
    cid2 = wait_for(lambda: [i for i in running_ids(lab, "cp2", "^sleeper$") if i != cid], 15, what="new sleeper")[0]
    wait_for(lambda: "only-in-b" in crictl(lab, "cp2", "logs", cid2), 15, what="container sees sleeper-b")
    # the mount point exists only inside the container (private overlay), not on the node/host
    assert not os.path.exists("/srv/kubeops-lab-data")
    os.unlink(path)
    wait_for(lambda: not running_ids(lab, "cp2", "^sleeper$"), 15, what="sleeper stop")
    shutil.rmtree(b)
    shutil.rmtree(lab.node_path("cp2", "/var/lib/sleeper-a"))


def test_etcd_data_hostpath_move(lab):
    """Point etcd-data of cp2 at a copy of its data dir: etcd runs from the new dir."""
    mdir = lab.node_path("cp2", "/etc/kubernetes/manifests")
    held = lab.node_path("cp2", "/etc/kubernetes/held")
    os.makedirs(held, exist_ok=True)
    os.rename(os.path.join(mdir, "etcd.yaml"), os.path.join(held, "etcd.yaml"))
    wait_for(lambda: not running_ids(lab, "cp2", "^etcd$"), 15, what="etcd stop")
    assert lab.exec("cp2", ["cp", "-a", "/var/lib/etcd", "/var/lib/etcd-moved"]).returncode == 0
    with open(os.path.join(held, "etcd.yaml")) as f:
        text = f.read()
    text = text.replace("path: /var/lib/etcd\n", "path: /var/lib/etcd-moved\n")
    with open(os.path.join(held, "etcd.yaml"), "w") as f:
        f.write(text)
    os.rename(os.path.join(held, "etcd.yaml"), os.path.join(mdir, "etcd.yaml"))
    cid = wait_for(lambda: running_ids(lab, "cp2", "^etcd$"), 15, what="etcd start")[0]
    wait_for(lambda: lab.etcdctl("endpoint", "health", node="cp2", check=False).returncode == 0, 30,
             what="etcd healthy")
    pid = container(lab, "cp2", cid)["pid"]
    with open("/proc/%d/mountinfo" % pid) as f:
        mi = [line.split() for line in f]
    # mountinfo field 4 = root of the mount within its filesystem, field 5 = mount point
    assert any(m[4] == "/var/lib/etcd" and m[3].endswith("/var/lib/etcd-moved") for m in mi), mi[-5:]
    lab.etcdctl("put", "/registry/lab-test/moved", "yes")
    assert lab.etcdctl("get", "/registry/lab-test/moved", "--print-value-only", node="cp2").stdout.strip() == "yes"
    os.rmdir(held)


def test_crashed_container_restarts_with_backoff(lab):
    cid = running_ids(lab, "cp1", "^kube-scheduler$")[0]
    c = container(lab, "cp1", cid)
    os.kill(c["pid"], signal.SIGKILL)
    new = wait_for(lambda: [i for i in running_ids(lab, "cp1", "^kube-scheduler$") if i != cid], 10,
                   what="restarted scheduler")
    n = container(lab, "cp1", new[0])
    assert n["attempt"] == c["attempt"] + 1 and n["pod_id"] == c["pod_id"]
    insp = json.loads(crictl(lab, "cp1", "inspect", cid))
    assert insp["status"]["state"] == "CONTAINER_EXITED" and insp["status"]["exitCode"] == 137
    # second crash: back-off doubles (1 s, then 2 s)
    os.kill(n["pid"], signal.SIGKILL)
    t0 = time.time()
    wait_for(lambda: [i for i in running_ids(lab, "cp1", "^kube-scheduler$") if i != new[0]], 15,
             what="second restart")
    assert time.time() - t0 >= 1.5


def test_kubelet_restart_keeps_containers(lab):
    before = sorted(crictl(lab, "cp1", "ps", "-q").split())
    p = ssh(lab, "cp1", "systemctl restart kubelet && systemctl is-active kubelet")
    assert p.returncode == 0 and p.stdout.strip() == "active", p.stderr
    time.sleep(1.5)
    with open(lab.state["nodes"][0]["kubelet_log"]) as f:
        klog = "".join(f.readlines()[-15:])
    assert sorted(crictl(lab, "cp1", "ps", "-q").split()) == before, klog
    p = ssh(lab, "cp1", "systemctl stop kubelet; systemctl is-active kubelet")
    assert p.stdout.strip() == "inactive" and p.returncode == 3
    assert sorted(crictl(lab, "cp1", "ps", "-q").split()) == before  # containers keep running
    assert ssh(lab, "cp1", "systemctl start kubelet").returncode == 0
    assert ssh(lab, "cp1", "systemctl is-active kubelet").stdout.strip() == "active"


def _readyz(n, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    try:
        c = http.client.HTTPSConnection(n["ip"], 6443, context=ctx, timeout=3)
        c.request("GET", "/readyz")
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError as e:
        return None, str(e)


def test_apiserver_follows_etcd(lab):
    n = lab.state["nodes"][0]
    assert _readyz(n, lab.state["k8s_ca"]) == (200, "ok")
    keys = lab.etcdctl("get", "/registry/", "--prefix", "--keys-only").stdout.split()
    assert "/registry/masterleases/%s" % n["ip"] in keys
    assert any(k.startswith("/registry/leases/kube-system/apiserver-") for k in keys)
    assert "/registry/leases/kube-system/kube-scheduler" in keys
    assert "/registry/leases/kube-system/kube-controller-manager" in keys
    mdir = lab.node_path("cp1", "/etc/kubernetes/manifests")
    held = lab.node_path("cp1", "/etc/kubernetes/held")
    os.makedirs(held, exist_ok=True)
    os.rename(os.path.join(mdir, "etcd.yaml"), os.path.join(held, "etcd.yaml"))
    wait_for(lambda: _readyz(n, lab.state["k8s_ca"])[0] == 500, 20, what="readyz 500 without etcd")
    # a fresh API server cannot start without etcd: it crash-loops
    aid = running_ids(lab, "cp1", "^kube-apiserver$")[0]
    os.kill(container(lab, "cp1", aid)["pid"], signal.SIGKILL)
    wait_for(lambda: crictl(lab, "cp1", "ps", "-a", "--name", "^kube-apiserver$", "--state", "exited", "-q")
             .split().__len__() >= 2, 20, what="apiserver crash loop")
    os.rename(os.path.join(held, "etcd.yaml"), os.path.join(mdir, "etcd.yaml"))
    wait_for(lambda: _readyz(n, lab.state["k8s_ca"]) == (200, "ok"), 40, what="apiserver ready again")
    os.rmdir(held)


def test_load(lab):
    r = lab.load(3000, 512)
    assert r["keys"] == 3000 and r["seconds"] < 20
    out = lab.etcdctl("get", "/registry/", "--prefix", "--keys-only").stdout.split()
    for kind in ("namespaces", "configmaps", "secrets", "deployments"):
        assert any(k.startswith("/registry/%s/" % kind) for k in out), kind
    p = subprocess.run([LABCTL, "--dir", lab.dir, "load", "--keys", "200", "--value-bytes", "100"],
                       stdout=subprocess.PIPE, text=True, check=True)
    assert json.loads(p.stdout.splitlines()[-1])["keys"] == 200


def test_status_cli(lab):
    p = subprocess.run([LABCTL, "--dir", lab.dir, "status", "--json"], stdout=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0
    s = json.loads(p.stdout)
    assert all(n["etcd_healthy"] and n["kubelet"] and n["sshd"] for n in s["nodes"])
    p = subprocess.run([LABCTL, "--dir", lab.dir, "inventory"], stdout=subprocess.PIPE, text=True, check=True)
    assert p.stdout.strip() == lab.inventory


def _lab_traces(lab_dir, ips):
    marker = ("KUBEOPS_LAB=" + lab_dir).encode()
    procs = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/environ" % e, "rb") as f:
                    if marker in f.read().split(b"\0"):
                        procs.append(int(e))
            except OSError:
                pass
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if lab_dir in line]
    listening = subprocess.run(["ss", "-ltnH"], stdout=subprocess.PIPE, text=True, check=False).stdout.split()
    busy = [a for a in listening if a.rsplit(":", 1)[0] in ips]
    return procs, mounts, busy


def test_down_leaves_nothing(lab):
    ips = [n["ip"] for n in lab.state["nodes"]]
    # an SSH session left running on a node is cleaned up too
    subprocess.Popen(lab.ssh_argv("cp2") + ["sleep 300"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    time.sleep(1)
    p = subprocess.run([LABCTL, "--dir", lab.dir, "down"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(lab.dir)
    procs, mounts, busy = _lab_traces(lab.dir, ips)
    assert procs == [] and mounts == [] and busy == []
    # idempotent
    p = subprocess.run([LABCTL, "--dir", lab.dir, "down"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0


# ---- options: another lab -----------------------------------------------------------------------
@pytest.mark.parametrize("version", ["3.4.23"])
def test_options_lab(version):
    lab = lablib.Lab("/tmp/kubeops-labtest-110")
    lab.down()
    try:
        lab.up(nodes=2, etcd_version=version, ip_base=110, member_names="etcd-a,etcd-b",
               data_dir="/var/lib/etcd-data", no_tools="cp2", client_port=12379, peer_port=12380, ssh_port=2222)
        st = lab.state
        assert [n["member_name"] for n in st["nodes"]] == ["etcd-a", "etcd-b"]
        members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert sorted(m["name"] for m in members) == ["etcd-a", "etcd-b"]
        assert all(":12380" in m["peerURLs"][0] for m in members)
        m = yaml.safe_load(open(lab.node_path("cp2", "/etc/kubernetes/manifests/etcd.yaml")))
        flags = m["spec"]["containers"][0]["command"]
        assert "--name=etcd-b" in flags and "--data-dir=/var/lib/etcd" in flags
        assert m["spec"]["containers"][0]["image"] == "registry.k8s.io/etcd:%s-0" % version
        vols = {v["name"]: v["hostPath"]["path"] for v in m["spec"]["volumes"]}
        assert vols["etcd-data"] == "/var/lib/etcd-data"
        assert os.path.exists(lab.node_path("cp2", "/var/lib/etcd-data/member"))
        # inventory says nothing about member names; ssh port honoured; no tools on cp2
        inv = open(lab.inventory).read()
        assert "etcd-a" not in inv and "ansible_port=2222" in inv
        assert ssh(lab, "cp1", "command -v etcdctl").returncode == 0
        p = ssh(lab, "cp2", "hostname; command -v etcdctl || echo none; command -v etcdutl || echo none; "
                            "command -v crictl")
        assert p.stdout.split() == ["cp2", "none", "none", "/usr/local/sbin/crictl"], p.stdout
        assert st["nodes"][0]["etcdutl"] is None  # 3.4 has no etcdutl
        assert running_ids(lab, "cp2", "^etcd$")
    finally:
        lab.down()
    assert not os.path.exists(lab.dir)


def test_version_skew_lab():
    lab = lablib.Lab("/tmp/kubeops-labtest-120")
    lab.down()
    try:
        lab.up(nodes=2, etcd_versions="3.5.16,3.5.30", ip_base=120)
        out = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)
        assert sorted(s["Status"]["version"] for s in out) == ["3.5.16", "3.5.30"]
        assert "3.5.16" in ssh(lab, "cp1", "etcdctl version").stdout
        assert "3.5.30" in ssh(lab, "cp2", "etcdctl version").stdout
        # a Kubernetes-built image (3.5.16-0): a shell and etcdctl, no etcdutl (the lab cache's 3.5.16 has one)
        assert [n["etcd_image_kind"] for n in lab.state["nodes"]] == ["kubernetes-built", "official"]
        eid = running_ids(lab, "cp1", "^etcd$")[0]
        p = lab.exec("cp1", ["crictl", "exec", eid, "etcdutl", "version"])
        assert p.returncode == 1 and 'exec: "etcdutl": executable file not found in $PATH: unknown' in p.stderr
        p = lab.exec("cp1", ["crictl", "exec", eid, "sh", "-c", "etcdctl version; command -v etcdutl || echo none"])
        assert p.returncode == 0 and p.stdout.split()[2:] == ["3.5.16", "API", "version:", "3.5", "none"], p
        p = lab.exec("cp1", ["crictl", "exec", "-s", eid, "etcdutl", "version"])
        assert p.returncode == 1 and "synchronously: rpc error: code = Unknown desc = failed to exec in container" \
            in p.stderr
    finally:
        lab.down()


def test_not_root_is_a_clear_error(tmp_path):
    if not shutil.which("setpriv"):
        pytest.fail("setpriv (util-linux) is missing: the CI script installs util-linux")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LABCTL,
                        "--dir", str(tmp_path / "x"), "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, check=False)
    assert p.returncode != 0 and "root" in p.stderr


# ---- lab faults: a static pod that does not come up, injected from outside the product -------------
@pytest.fixture(scope="module")
def fault_lab():
    the_lab = lablib.Lab("/tmp/kubeops-faults-80")
    the_lab.down()
    the_lab.up(nodes=2, ip_base=80)
    yield the_lab
    the_lab.down()


def all_attempts(lab, node, name):
    """Every container crictl lists for `name`, newest first, with its exit code (skipping one that the
    kubelet's container GC removed between `ps` and `inspect`)."""
    out = []
    for c in json.loads(crictl(lab, node, "ps", "-a", "--name", name, "-o", "json"))["containers"]:
        p = lab.exec(node, ["crictl", "inspect", c["id"]])
        if p.returncode == 0:
            c["exitCode"] = json.loads(p.stdout)["status"]["exitCode"]
            out.append(c)
    return out


def faulted_attempts(lab, node, pod, message):
    """Attempt numbers the node's kubelet log reports failed by a lab fault (container named like its pod,
    as in kubeadm's manifests)."""
    with open(lab.node(node)["kubelet_log"]) as f:
        klog = f.read()
    rx = r"container %s of %s-%s attempt=(\d+) failed to start: lab fault: %s;" % (
        re.escape(pod), re.escape(pod), node, re.escape(message))
    return {int(a) for a in re.findall(rx, klog)}


def failing_attempts(lab, node, name, pod_id, count, timeout=60):
    """Poll until `count` attempts of pod `pod_id` failed; no container of `name` may run meanwhile."""
    deadline = time.time() + timeout
    while True:
        assert running_ids(lab, node, name) == [], "%s runs on %s despite the fault" % (name, node)
        attempts = [c for c in all_attempts(lab, node, name) if c["podSandboxId"] == pod_id]
        if len(attempts) >= count:
            return attempts
        assert time.time() < deadline, "only %d failed attempts of %s on %s" % (len(attempts), name, node)
        time.sleep(0.3)


def replace_manifest(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")  # dot file: not loaded
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def test_fault_fails_every_start_until_cleared(fault_lab):
    lab = fault_lab
    mdir = lab.node_path("cp1", "/etc/kubernetes/manifests")
    held = lab.node_path("cp1", "/etc/kubernetes/held")
    os.makedirs(held, exist_ok=True)
    before = running_ids(lab, "cp1", "^kube-scheduler$")
    assert len(before) == 1
    old_pod = container(lab, "cp1", before[0])["pod_id"]
    try:
        p = subprocess.run([LABCTL, "fault", "set", "--node", "cp1", "--pod", "kube-scheduler",
                            "--message", "scheduler image is broken", "--dir", lab.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        assert p.returncode == 0, p.stderr
        fault_file = lab.node_path("cp1", "/var/lib/kubelet-standin/faults/kube-scheduler.json")
        assert p.stdout.strip() == fault_file
        with open(fault_file) as f:
            assert json.load(f) == {"when_manifests_match": "", "message": "scheduler image is broken"}
        # the fault hits the next start, not the running container
        time.sleep(1.5)
        assert running_ids(lab, "cp1", "^kube-scheduler$") == before
        os.rename(os.path.join(mdir, "kube-scheduler.yaml"), os.path.join(held, "kube-scheduler.yaml"))
        wait_for(lambda: not running_ids(lab, "cp1", "^kube-scheduler$"), 15, what="scheduler stop")
        os.rename(os.path.join(held, "kube-scheduler.yaml"), os.path.join(mdir, "kube-scheduler.yaml"))
        new_pod = wait_for(lambda: [q["id"] for q in json.loads(crictl(lab, "cp1", "pods", "-o", "json"))["items"]
                                    if q["metadata"]["name"] == "kube-scheduler-cp1" and q["id"] != old_pod],
                           15, what="new scheduler pod")[0]
        failed = failing_attempts(lab, "cp1", "^kube-scheduler$", new_pod, 3)
        numbers = sorted(c["metadata"]["attempt"] for c in failed)   # each a new container, attempt+1
        assert numbers == list(range(numbers[0], numbers[0] + len(failed)))
        assert len({c["id"] for c in failed}) == len(failed)
        assert all(c["state"] == "CONTAINER_EXITED" and c["exitCode"] == 1 for c in failed)
        table = [re.split(r" {2,}", line)   # CONTAINER IMAGE CREATED STATE NAME ATTEMPT POD ID POD
                 for line in crictl(lab, "cp1", "ps", "-a", "--name", "^kube-scheduler$").splitlines()[1:]]
        assert [r[3] for r in table if r[0] == failed[0]["id"][:13]] == ["Exited"]
        assert crictl(lab, "cp1", "logs", failed[0]["id"]) == "lab fault: scheduler image is broken\n"
        assert set(numbers) <= faulted_attempts(lab, "cp1", "kube-scheduler", "scheduler image is broken")
    finally:
        removed = lab.clear_faults("cp1", "kube-scheduler")
        if os.path.exists(os.path.join(held, "kube-scheduler.yaml")):
            os.rename(os.path.join(held, "kube-scheduler.yaml"), os.path.join(mdir, "kube-scheduler.yaml"))
        os.rmdir(held)
    assert removed == ["kube-scheduler"] and not os.path.exists(fault_file)
    assert lab.clear_faults("cp1", "kube-scheduler") == []   # idempotent
    # the next retry (after back-off) of the same pod runs normally
    cid = wait_for(lambda: running_ids(lab, "cp1", "^kube-scheduler$"), 60, what="scheduler running again")[0]
    c = container(lab, "cp1", cid)
    assert c["pod_id"] == new_pod and c["attempt"] > max(f["metadata"]["attempt"] for f in failed)
    assert "lab fault" not in crictl(lab, "cp1", "logs", cid)


def test_conditional_fault_follows_the_manifests(fault_lab):
    """A fault on etcd that applies only while the node's manifests contain a string."""
    lab = fault_lab
    path = lab.node_path("cp2", "/etc/kubernetes/manifests/etcd.yaml")
    with open(path, "rb") as f:
        original = f.read()
    marker = "-fault-test-restored-"
    assert marker.encode() not in original
    with pytest.raises(lablib.LabError):
        lab.set_fault("cp2", "etcd", when_manifests_match="(unbalanced")
    assert not os.path.exists(lab.node_path("cp2", "/var/lib/kubelet-standin/faults/etcd.json"))
    p = subprocess.run([LABCTL, "fault", "set", "--node", "cp2", "--pod", "etcd",
                        "--when-manifests-match=" + marker, "--message", "restored data dir is corrupt",
                        "--dir", lab.dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0, p.stderr
    try:
        # no match: a restart of the unedited etcd runs normally
        cid = running_ids(lab, "cp2", "^etcd$")[0]
        first = container(lab, "cp2", cid)
        os.kill(first["pid"], signal.SIGKILL)
        again = wait_for(lambda: [i for i in running_ids(lab, "cp2", "^etcd$") if i != cid], 20,
                         what="etcd restarted")[0]
        assert container(lab, "cp2", again)["attempt"] == first["attempt"] + 1
        wait_for(lambda: lab.etcdctl("endpoint", "health", node="cp2", check=False).returncode == 0, 30,
                 what="etcd on cp2 healthy")
        assert running_ids(lab, "cp2", "^etcd$") == [again]
        # the edited manifest matches: the recreated pod never runs, every attempt fails
        replace_manifest(path, original + ("# data dir /var/lib/etcd%s1\n" % marker).encode())
        wait_for(lambda: not running_ids(lab, "cp2", "^etcd$"), 20, what="etcd stop")
        new_pod = wait_for(lambda: [c["podSandboxId"] for c in all_attempts(lab, "cp2", "^etcd$")
                                    if c["podSandboxId"] != first["pod_id"]], 15, what="new etcd pod")[0]
        failed = failing_attempts(lab, "cp2", "^etcd$", new_pod, 2)
        assert all(c["state"] == "CONTAINER_EXITED" and c["exitCode"] == 1 for c in failed)
        assert crictl(lab, "cp2", "logs", failed[0]["id"]) == "lab fault: restored data dir is corrupt\n"
        numbers = [c["metadata"]["attempt"] for c in failed]
        assert set(numbers) <= faulted_attempts(lab, "cp2", "etcd", "restored data dir is corrupt")
        assert lab.etcdctl("endpoint", "health", node="cp2", check=False, timeout=10).returncode != 0
        # the manifest swapped back: the fault no longer matches, etcd runs and the cluster is healthy
        replace_manifest(path, original)
        wait_for(lambda: running_ids(lab, "cp2", "^etcd$"), 30, what="etcd running again")
        wait_for(lambda: lab.etcdctl("endpoint", "health", check=False).returncode == 0, 60,
                 what="every member healthy")
        status = lab.status()
        assert all(n["etcd_healthy"] for n in status["nodes"]), status
        for n in lab.state["nodes"]:
            wait_for(lambda: _readyz(n, lab.state["k8s_ca"]) == (200, "ok"), 60,
                     what="kube-apiserver on %s ready" % n["host"])
        assert os.path.exists(lab.node_path("cp2", "/var/lib/kubelet-standin/faults/etcd.json"))
    finally:
        with open(path, "rb") as f:
            if f.read() != original:
                replace_manifest(path, original)
        p = subprocess.run([LABCTL, "fault", "clear", "--node", "cp2", "--dir", lab.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0 and p.stdout == "removed fault of etcd on cp2\n", p.stderr
    assert not os.path.exists(lab.node_path("cp2", "/var/lib/kubelet-standin/faults/etcd.json"))


def test_node_addresses_go_on_past_254_and_never_end_in_0_or_255():
    assert lablib._node_ip(11) == "127.0.0.11"
    assert lablib._node_ip(254) == "127.0.0.254"
    assert lablib._node_ip(257) == "127.0.1.1"
    assert lablib._node_ip(301) == "127.0.1.45"
    for bad in (0, 1, 255, 256, 511, 512, 65536):
        with pytest.raises(lablib.LabError, match="ip-base out of range"):
            lablib._node_ip(bad)


# ---- external etcd: etcd hosts apart from the control planes (ip bases 370/380/390) -------------------------------
EXTERNAL_BASES = {"systemd-flags": 370, "systemd-env": 380, "static": 390}
SYSTEMD_STYLES = ["systemd-flags", "systemd-env"]


@pytest.fixture(scope="module", params=["systemd-flags", "systemd-env", "static"])
def ext_lab(request):
    """One lab per style: 2 control planes, 3 etcd hosts; the systemd-flags one also runs etcd1's etcd-events unit."""
    style = request.param
    base = EXTERNAL_BASES[style]
    the_lab = lablib.Lab("/tmp/kubeops-extlab-%d" % base)
    the_lab.down()
    the_lab.up(topology="external", nodes=2, etcd_hosts=3, etcd_style=style, ip_base=base,
               etcd_events=style == "systemd-flags")
    yield the_lab
    the_lab.down()


def node_sh(lab, node, script):
    return lab.exec(node, ["sh", "-c", script], check=True).stdout


def main_pid(lab, node, unit="etcd"):
    return int(node_sh(lab, node, "systemctl show -p MainPID --value %s" % unit))


def wait_healthy(lab, what):
    wait_for(lambda: lab.etcdctl("endpoint", "health", check=False, timeout=10).returncode == 0, 60, what=what)


def test_external_members_apiservers_and_cli(ext_lab):
    lab = ext_lab
    st = lab.state
    assert st["topology"] == "external" and st["etcd_style"] in EXTERNAL_BASES
    assert [n["host"] for n in st["nodes"]] == ["cp1", "cp2", "etcd1", "etcd2", "etcd3"]
    assert [n["host"] for n in lab.etcd_nodes()] == ["etcd1", "etcd2", "etcd3"]
    members = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["etcd1", "etcd2", "etcd3"]
    assert sorted(u for m in members for u in m["clientURLs"]) == sorted(n["client_url"] for n in lab.etcd_nodes())
    health = json.loads(lab.etcdctl("endpoint", "health", "-w", "json").stdout)
    assert len(health) == 3 and all(h["health"] for h in health)
    with open(lab.inventory) as f:
        inv = f.read()
    assert "[kube_control_plane]\ncp1 " in inv and "\ncp2 " in inv
    assert "[etcd]\netcd1 " in inv and "\netcd3 " in inv
    servers = ",".join(n["client_url"] for n in lab.etcd_nodes())
    for cp in ("cp1", "cp2"):
        mdir = lab.node_path(cp, "/etc/kubernetes/manifests")
        assert sorted(os.listdir(mdir)) == ["kube-apiserver.yaml", "kube-controller-manager.yaml",
                                            "kube-scheduler.yaml"]
        with open(os.path.join(mdir, "kube-apiserver.yaml")) as f:
            flags = yaml.safe_load(f)["spec"]["containers"][0]["command"]
        assert "--etcd-servers=" + servers in flags
        assert "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt" in flags
        assert "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt" in flags
        assert os.listdir(lab.node_path(cp, "/etc/kubernetes/pki/etcd")) == ["ca.crt"]
        assert _readyz(lab.node(cp), st["k8s_ca"]) == (200, "ok")
    with pytest.raises(lablib.LabError, match="cp1 runs no etcd member"):
        lab.etcdctl("endpoint", "health", node="cp1")
    p = subprocess.run([LABCTL, "--dir", lab.dir, "status", "--json"], stdout=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0
    nodes = {n["host"]: n for n in json.loads(p.stdout)["nodes"]}
    assert nodes["cp1"]["etcd_healthy"] is None and nodes["etcd2"]["etcd_healthy"] is True
    p = subprocess.run([LABCTL, "--dir", lab.dir, "etcdctl", "--node", "etcd2", "--", "endpoint", "status", "-w",
                        "json"], stdout=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["Endpoint"] == lab.node("etcd2")["client_url"]
    assert lab.load(200, 100)["keys"] == 200


@pytest.mark.parametrize("ext_lab", ["static"], indirect=True)
def test_external_static_etcd_hosts_run_kubeadm_static_pods(ext_lab):
    lab = ext_lab
    for n in lab.etcd_nodes():
        assert os.listdir(lab.node_path(n["host"], "/etc/kubernetes/manifests")) == ["etcd.yaml"]
        assert sorted(os.listdir(lab.node_path(n["host"], "/etc/kubernetes/pki/etcd"))) == [
            "ca.crt", "ca.key", "healthcheck-client.crt", "healthcheck-client.key", "peer.crt", "peer.key",
            "server.crt", "server.key"]
        assert len(running_ids(lab, n["host"], "^etcd$")) == 1
    with open(lab.node_path("etcd2", "/etc/kubernetes/manifests/etcd.yaml")) as f:
        flags = yaml.safe_load(f)["spec"]["containers"][0]["command"]
    assert "--initial-cluster=" + ",".join("%s=%s" % (n["member_name"], n["peer_url"])
                                           for n in lab.etcd_nodes()) in flags
    assert not any(f.startswith("--initial-cluster-state") for f in flags)   # "new", kubeadm's default


@pytest.mark.parametrize("ext_lab", SYSTEMD_STYLES, indirect=True)
def test_external_systemctl_cat_show_and_service_user(ext_lab):
    lab = ext_lab
    style = lab.state["etcd_style"]
    out = node_sh(lab, "etcd1", "systemctl cat --no-pager -- etcd.service")
    assert out.startswith("# /etc/systemd/system/etcd.service\n[Unit]\n")
    assert "\n\n# /etc/systemd/system/etcd.service.d/10-lab.conf\n[Service]\n" in out
    with open(lab.node_path("etcd1", "/etc/systemd/system/etcd.service")) as f:
        assert out.split("\n# /etc/systemd/system/etcd.service.d/")[0] == \
            "# /etc/systemd/system/etcd.service\n" + f.read()
    show = dict(line.split("=", 1) for line in node_sh(
        lab, "etcd1", "systemctl show -p ActiveState,User,DropInPaths,EnvironmentFiles etcd").splitlines())
    assert show["ActiveState"] == "active"
    assert show["DropInPaths"] == "/etc/systemd/system/etcd.service.d/10-lab.conf"
    pid = main_pid(lab, "etcd1")
    with open("/proc/%d/environ" % pid, "rb") as f:
        env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    assert env[b"GOMAXPROCS"] == b"2"   # from the drop-in
    etcd_uid = int(node_sh(lab, "etcd1", "id -u etcd"))
    assert etcd_uid != 0
    want_uid = etcd_uid if style == "systemd-flags" else 0
    with open("/proc/%d/status" % pid) as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    assert uids == [str(want_uid)] * 4
    data = os.stat(lab.node_path("etcd1", "/var/lib/etcd"))
    assert (data.st_uid, data.st_gid, data.st_mode & 0o7777) == (want_uid, want_uid, 0o700)
    if style == "systemd-flags":
        assert show["User"] == "etcd" and show["EnvironmentFiles"] == ""
        with open("/proc/%d/cmdline" % pid) as f:
            assert "--data-dir=/var/lib/etcd" in f.read().split("\0")
    else:
        assert show["User"] == "root" and show["EnvironmentFiles"] == "/etc/etcd.env (ignore_errors=no)"
        with open("/proc/%d/cmdline" % pid) as f:
            assert f.read().split("\0")[:-1] == ["/usr/local/bin/etcd"]
        assert env[b"ETCD_DATA_DIR"] == b"/var/lib/etcd" and env[b"ETCD_NAME"] == b"etcd1"
        assert "ETCD_INITIAL_CLUSTER=etcd1=https://" in node_sh(lab, "etcd1", "cat /etc/etcd.env")
    # the node's own /etc (an overlay): the unit is not on the host
    assert not os.path.exists("/etc/systemd/system/etcd.service")


@pytest.mark.parametrize("ext_lab", SYSTEMD_STYLES, indirect=True)
def test_external_changed_unit_takes_effect_only_after_daemon_reload(ext_lab):
    lab = ext_lab
    unit = "/etc/systemd/system/etcd.service"

    def seen(pid):
        with open("/proc/%d/%s" % (pid, where)) as f:
            return f.read().split("\0")

    if lab.state["etcd_style"] == "systemd-flags":
        edit = "sed -i 's/--snapshot-count=10000/--snapshot-count=5000/' %s" % unit
        undo = "sed -i 's/--snapshot-count=5000/--snapshot-count=10000/' %s" % unit
        where = "cmdline"
        new = "--snapshot-count=5000"
    else:
        edit = ("sed 's/^ETCD_SNAPSHOT_COUNT=.*/ETCD_SNAPSHOT_COUNT=5000/' /etc/etcd.env > /etc/etcd-alt.env && "
                "sed -i 's|^EnvironmentFile=/etc/etcd.env$|EnvironmentFile=/etc/etcd-alt.env|' %s" % unit)
        undo = ("sed -i 's|^EnvironmentFile=/etc/etcd-alt.env$|EnvironmentFile=/etc/etcd.env|' %s && "
                "rm /etc/etcd-alt.env" % unit)
        where = "environ"
        new = "ETCD_SNAPSHOT_COUNT=5000"
    try:
        node_sh(lab, "etcd2", edit)
        assert node_sh(lab, "etcd2", "systemctl show -p NeedDaemonReload --value etcd") == "yes\n"
        p = lab.exec("etcd2", ["systemctl", "restart", "etcd"])
        assert p.returncode == 0 and "Run 'systemctl daemon-reload' to reload units." in p.stderr
        assert new not in seen(main_pid(lab, "etcd2"))      # the loaded definition ran
        node_sh(lab, "etcd2", "systemctl daemon-reload")
        assert node_sh(lab, "etcd2", "systemctl show -p NeedDaemonReload --value etcd") == "no\n"
        node_sh(lab, "etcd2", "systemctl restart etcd")
        assert new in seen(main_pid(lab, "etcd2"))
        wait_healthy(lab, "cluster healthy on the new definition")
    finally:
        node_sh(lab, "etcd2", undo + " && systemctl daemon-reload && systemctl restart etcd")
    assert new not in seen(main_pid(lab, "etcd2"))
    wait_healthy(lab, "cluster healthy again")


@pytest.mark.parametrize("ext_lab", SYSTEMD_STYLES, indirect=True)
def test_external_stopping_the_unit_stops_the_member(ext_lab):
    lab = ext_lab
    ansible = os.path.join(REPO, ".venv", "bin", "ansible")
    p = subprocess.run([ansible, "-i", lab.inventory, "etcd3", "-m", "ansible.builtin.systemd_service",
                        "-a", "name=etcd state=stopped"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0 and '"changed": true' in p.stdout, p.stdout
    p = lab.exec("etcd3", ["systemctl", "is-active", "etcd"])
    assert (p.returncode, p.stdout) == (3, "inactive\n")
    assert lab.etcdctl("endpoint", "health", node="etcd3", check=False, timeout=10).returncode != 0
    members = json.loads(lab.etcdctl("member", "list", "-w", "json", node="etcd1").stdout)["members"]
    assert "etcd3" in [m["name"] for m in members]
    assert _readyz(lab.node("cp1"), lab.state["k8s_ca"]) == (200, "ok")     # 2 of 3: quorum
    node_sh(lab, "etcd3", "systemctl start etcd")
    wait_for(lambda: lab.etcdctl("endpoint", "health", node="etcd3", check=False, timeout=10).returncode == 0, 60,
             what="etcd3 back")
    assert lab.exec("etcd3", ["systemctl", "is-active", "etcd"]).stdout == "active\n"


@pytest.mark.parametrize("ext_lab", ["systemd-flags"], indirect=True)
def test_external_two_units_on_one_host_and_unit_faults(ext_lab):
    lab = ext_lab
    ev = lab.state["etcd_events"]
    assert ev["host"] == "etcd1" and ev["unit"] == "etcd-events.service"
    assert ev["client_url"] == lab.node("etcd1")["client_url"].replace(":2379", ":2383")
    events = json.loads(lab.etcdctl("member", "list", "-w", "json", endpoints=[ev["client_url"]]).stdout)
    main = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    assert [m["name"] for m in events["members"]] == ["etcd1-events"]
    assert events["header"]["cluster_id"] != main["header"]["cluster_id"]
    cat = node_sh(lab, "etcd1", "systemctl cat etcd-events")
    assert "--listen-client-urls=%s " % ev["client_url"] in cat and "--data-dir=/var/lib/etcd-events " in cat
    assert lab.exec("etcd2", ["systemctl", "cat", "etcd-events"]).returncode == 1
    # a lab fault on a unit: the start fails (exit 1, logged), Restart=on-failure retries until it is cleared
    lab.set_fault("etcd3", "etcd.service", when_manifests_match="--snapshot-count=10000", message="no start")
    try:
        p = lab.exec("etcd3", ["systemctl", "restart", "etcd"])
        assert p.returncode == 1 and "Job for etcd.service failed" in p.stderr
        with open(lab.node_path("etcd3", "/var/lib/systemd-standin/logs/etcd.log")) as f:
            assert "etcd.service lab fault: no start\n" in f.read()
        assert lab.etcdctl("endpoint", "health", node="etcd3", check=False, timeout=10).returncode != 0
    finally:
        assert lab.clear_faults("etcd3") == ["etcd.service"]
    wait_for(lambda: lab.exec("etcd3", ["systemctl", "is-active", "etcd"]).stdout == "active\n", 30,
             what="restart after the fault is cleared")
    wait_healthy(lab, "etcd3 back after the fault")


def test_external_down_leaves_nothing(ext_lab):
    lab = ext_lab
    ips = [n["ip"] for n in lab.state["nodes"]]
    p = subprocess.run([LABCTL, "--dir", lab.dir, "down"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       check=False)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(lab.dir)
    procs, mounts, busy = _lab_traces(lab.dir, ips)
    assert procs == [] and mounts == [] and busy == []
