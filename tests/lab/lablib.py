"""kubeops.etcd lab: a local multi-node kubeadm-like control plane (see docs/lab.md).

Each node is a mount + UTS namespace (hostname cpN) with its own /etc/kubernetes,
/var/lib and /usr/local/sbin (node bin dir), its own loopback IP (127.0.0.11, ...),
a real OpenSSH sshd and a kubelet stand-in that runs kubeadm-shaped static pods:
real etcd (cached binaries of the requested version) and Python stand-ins for
kube-apiserver, kube-controller-manager and kube-scheduler.

External etcd (topology="external"): control planes cp1..cpM without etcd and etcd hosts etcd1..etcdN
(inventory group etcd) running etcd as a static pod or a systemd unit (the systemctl stand-in runs unit files;
the etcd hosts have private overlays over /etc and /usr/local/bin): see docs/lab.md "External etcd".

API (used by the test harness):
    lab = Lab(dir)            # dir default: $KUBEOPS_LAB_DIR or <repo>/.lab
    lab.up(nodes=3, etcd_version="3.5.30", ...)   -> inventory path
    lab.up(topology="external", nodes=2, etcd_hosts=3, etcd_style="systemd-flags", etcd_events=True)
    lab.etcd_nodes(), lab.control_planes()        -> node dicts
    lab.down()
    lab.state                 # parsed <dir>/lab.json
    lab.inventory             # inventory path
    lab.etcdctl(*args, node=None, check=True)     -> subprocess.CompletedProcess (text)
    lab.exec(node, argv, check=False, **kw)       -> CompletedProcess (inside the node's namespaces)
    lab.node_path(node, abs_path)                 -> host path of a node-private file
    lab.load(keys, value_bytes)                   -> dict(keys=..., bytes=..., seconds=...)
    lab.set_fault(host, pod, when_manifests_match="", message="lab fault")  -> host path of the fault file
    lab.clear_faults(host, pod=None)              -> pod names whose fault was removed
"""
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STANDINS = os.path.join(HERE, "standins")
sys.path.insert(0, HERE)
sys.path.insert(0, STANDINS)

import etcdfetch  # noqa: E402
import etcdimages  # noqa: E402
import manifests  # noqa: E402
import pki  # noqa: E402
from standinlib import remove_created_mount_points  # noqa: E402

DEFAULT_VERSION = "3.5.30"
PRIVATE_DIRS = ("/etc/kubernetes", "/var/lib")   # node-private trees (bind-mounted in the node)
MOUNTPOINT_MARKER = ".kubeops-lab-mountpoint"
NODE_BIN_MOUNT = "/usr/local/sbin"              # node bin dir is bind-mounted here (first on root's PATH)
FAULTS_DIR = "/var/lib/kubelet-standin/faults"  # read by the kubelet stand-in before each container start
TOPOLOGIES = ("stacked", "external")
ETCD_STYLES = ("static", "systemd-flags", "systemd-env")
OVERLAY_DIRS = ("/etc", "/usr/local/bin")      # private overlays on external etcd hosts (see nodeinit.py)
EVENTS_CLIENT_PORT, EVENTS_PEER_PORT = 2383, 2382   # kubespray's etcd-events ports
# where each style keeps a member's certs: (dir, ca, cert, key, peer cert, peer key); {h} = host name
ETCD_PKI = {
    "static": ("/etc/kubernetes/pki/etcd", "ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"),
    "systemd-flags": ("/etc/etcd/pki", "ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"),
    "systemd-env": ("/etc/ssl/etcd/ssl", "ca.pem", "member-{h}.pem", "member-{h}-key.pem", "member-{h}.pem",
                    "member-{h}-key.pem"),
}
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def _node_ip(number):
    """Loopback address number N: 127.0.0.N up to 254, then 127.0.1.x and on (the whole /8 is loopback).

    Addresses ending in .0 or .255 are refused, so a lab never spans one."""
    high, low = divmod(int(number), 256)
    if number < 2 or high > 255 or low in (0, 255):
        raise LabError("--ip-base out of range: node address %d would be 127.0.%d.%d; pick a base so that "
                       "every node's address ends in 1..254" % (number, high, low))
    return "127.0.%d.%d" % (high, low)


class LabError(Exception):
    pass


def default_dir():
    return os.environ.get("KUBEOPS_LAB_DIR") or os.path.join(REPO, ".lab")


def default_cache():
    return os.environ.get("KUBEOPS_LAB_CACHE") or os.path.join(REPO, ".lab-cache")


def _log(msg):
    sys.stderr.write("labctl: %s\n" % msg)
    sys.stderr.flush()


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _proc_environ(pid):
    try:
        with open("/proc/%s/environ" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _ns_inode(pid, ns):
    try:
        return os.stat("/proc/%s/ns/%s" % (pid, ns)).st_ino
    except OSError:
        return None


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, ValueError):
        return False


def _port_free(ip, port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def check_host():
    """Clear error when the lab cannot run here."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (mount/UTS namespaces, bind mounts, sshd); run as root")
    for tool in ("unshare", "nsenter", "ssh-keygen"):
        if not shutil.which(tool):
            raise LabError("%s not found (util-linux / openssh-client missing)" % tool)
    if not os.path.exists("/usr/sbin/sshd"):
        raise LabError("/usr/sbin/sshd not found: apt-get install openssh-server")
    p = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "true"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if p.returncode != 0:
        raise LabError("Linux mount/UTS namespaces are unavailable here: %s" % p.stdout.strip())
    for tool in ("etcd", "etcdctl", "etcdutl"):
        if shutil.which(tool):
            _log("warning: %s is on the host PATH (%s); the lab's no-tools case expects none"
                 % (tool, shutil.which(tool)))


class Lab:
    def __init__(self, dir=None, cache=None):
        self.dir = os.path.abspath(dir or default_dir())
        self.cache = os.path.abspath(cache or default_cache())
        self._state = None

    # ---- state ----------------------------------------------------------------
    @property
    def state_path(self):
        return os.path.join(self.dir, "lab.json")

    @property
    def state(self):
        if self._state is None:
            try:
                with open(self.state_path) as f:
                    self._state = json.load(f)
            except FileNotFoundError:
                raise LabError("no lab in %s (run `labctl up`)" % self.dir)
        return self._state

    def _save(self, st):
        self._state = st
        _write(self.state_path, json.dumps(st, indent=2) + "\n")

    @property
    def inventory(self):
        return self.state["inventory"]

    def is_up(self):
        return os.path.exists(self.state_path)

    def node(self, name=None):
        nodes = self.state["nodes"]
        if name is None:
            return nodes[0]
        for n in nodes:
            if name in (n["host"], n["hostname"], n["member_name"], n["ip"]):
                return n
        raise LabError("no node %r in the lab (nodes: %s)" % (name, ", ".join(n["host"] for n in nodes)))

    def node_path(self, node, abs_path):
        """Host path of a file as the node sees it (node-private trees map into the node root)."""
        n = self.node(node)
        p = os.path.normpath(abs_path)
        for d in PRIVATE_DIRS:
            if p == d or p.startswith(d + "/"):
                return n["root"] + p
        if p == NODE_BIN_MOUNT or p.startswith(NODE_BIN_MOUNT + "/"):
            return n["bin_dir"] + p[len(NODE_BIN_MOUNT):]
        for target, upper in (n.get("overlays") or {}).items():
            if p == target or p.startswith(target + "/"):
                # the node's own version (upper layer) when it has one, else the host's (lower layer): read
                # only - change such files through lab.exec (an overlay's layers must not change under it)
                mine = upper + p[len(target):]
                return mine if os.path.lexists(mine) else p
        return p

    def etcd_nodes(self):
        """The nodes that run an etcd member: every node when stacked, the etcd hosts when external."""
        return [n for n in self.state["nodes"] if n.get("client_url")]

    def control_planes(self):
        return [n for n in self.state["nodes"] if n.get("role", "control-plane") == "control-plane"]

    # ---- faults -----------------------------------------------------------------
    def _fault_path(self, host, pod):
        if not pod or "/" in pod or pod.startswith("."):
            raise LabError("fault: %r is not a static pod name (metadata.name, e.g. etcd)" % (pod,))
        return self.node_path(host, "%s/%s.json" % (FAULTS_DIR, pod))

    def set_fault(self, host, pod, when_manifests_match="", message="lab fault"):
        """Make every start of a container of static pod `pod` (metadata.name) on `host` fail (exit 1,
        log line `lab fault: <message>`) while `when_manifests_match` is empty or re.search()es the
        node's manifests (all loaded files, concatenated in file name order). The kubelet stand-in
        reads the file before each start, so the fault hits the next start, not a running container.
        On an external etcd host `pod` may name a unit ("etcd.service"): the regex is then searched in the unit's
        loaded files and its environment files (docs/lab.md "Faults on units")."""
        when_manifests_match = when_manifests_match or ""
        try:
            re.compile(when_manifests_match)
        except re.error as e:
            raise LabError("fault: when_manifests_match %r is not a Python regex: %s" % (when_manifests_match, e))
        path = self._fault_path(host, pod)
        _write(path, json.dumps({"when_manifests_match": when_manifests_match, "message": str(message)}) + "\n")
        return path

    def clear_faults(self, host, pod=None):
        """Remove the fault of `pod` on `host` (all faults of the node when pod is None); idempotent.
        -> names of the pods whose fault file was removed."""
        if pod is not None:
            paths = [self._fault_path(host, pod)]
        else:
            fdir = self.node_path(host, FAULTS_DIR)
            try:
                paths = [os.path.join(fdir, e) for e in sorted(os.listdir(fdir)) if e.endswith(".json")]
            except FileNotFoundError:
                paths = []
        removed = []
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(os.path.basename(path)[:-len(".json")])
        return removed

    # ---- commands ---------------------------------------------------------------
    def etcdctl_argv(self, node=None, endpoints=None, patient=True):
        st = self.state
        n = self.node(node) if node else None
        if n and not n.get("client_url") and not endpoints:
            raise LabError("%s runs no etcd member (external etcd: %s)"
                           % (n["host"], ", ".join(x["host"] for x in self.etcd_nodes())))
        eps = endpoints or ([n["client_url"]] if n else [x["client_url"] for x in self.etcd_nodes()])
        tool = (n or st["nodes"][0])["etcdctl"]
        argv = [tool, "--endpoints=" + ",".join(eps), "--cacert=" + st["ca"], "--cert=" + st["client_cert"],
                "--key=" + st["client_key"]]
        if patient:
            # etcdctl gives up dialing after 2 s and on a request after 5 s by default: on a 2-core machine that
            # runs three labs and their playbooks at once, a TLS handshake alone can take longer than that. Probes
            # that expect a member may be down (check=False) keep the defaults, so that they answer quickly.
            argv += ["--dial-timeout=20s", "--command-timeout=60s"]
        return argv

    def etcdctl(self, *args, node=None, check=True, timeout=120, input=None, endpoints=None):
        argv = self.etcdctl_argv(node, endpoints, patient=check) + [str(a) for a in args]
        env = dict(os.environ, ETCDCTL_API="3")
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               timeout=timeout, input=input, check=False)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            p = subprocess.CompletedProcess(argv, 124, out, "etcdctl timed out after %ss" % timeout)
        if check and p.returncode != 0:
            raise LabError("etcdctl %s failed (rc=%d): %s" % (" ".join(map(str, args)), p.returncode,
                                                              p.stderr.strip()))
        return p

    def nsenter_argv(self, node):
        n = self.node(node)
        pid = self._pid(n["init_pidfile"])
        if not pid:
            raise LabError("node %s is not running" % n["host"])
        return ["nsenter", "-t", str(pid), "-m", "-u", "--wd=/", "--"]

    def exec(self, node, argv, check=False, **kw):
        """Run argv inside the node's mount+UTS namespaces (root's default PATH, so node tools resolve)."""
        env = kw.pop("env", None) or {}
        base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb")}
        base.update(env)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.run(self.nsenter_argv(node) + list(argv), env=base, **kw, check=False)
        if check and p.returncode != 0:
            raise LabError("%s on %s failed (rc=%d): %s" % (" ".join(argv), node, p.returncode, p.stderr))
        return p

    def ssh_argv(self, node):
        n = self.node(node)
        return ["ssh", "-i", self.state["ssh_key"], "-p", str(n["ssh_port"])] + SSH_OPTS + ["root@" + n["ip"]]

    @staticmethod
    def _pid(path):
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            return pid if _alive(pid) else None
        except (OSError, ValueError):
            return None

    # ---- up ---------------------------------------------------------------------
    def up(self, nodes=3, etcd_version=None, etcd_versions=None, no_tools=None, member_names=None,
           data_dir=None, client_port=2379, peer_port=2380, ssh_port=22, ip_base=10, apiserver_port=6443,
           wait_apiserver=True, log=_log, topology="stacked", etcd_hosts=3, etcd_style="static", etcd_events=False):
        """Build and start a lab -> inventory path.  topology="external": `nodes` control planes cp1..cpM without
        etcd plus `etcd_hosts` etcd hosts etcd1..etcdN (inventory group etcd) running etcd as `etcd_style`
        (static | systemd-flags | systemd-env); etcd_events: etcd1 also runs etcd-events.service (systemd styles).
        member_names, etcd_versions, data_dir then apply to the etcd hosts."""
        t0 = time.time()
        check_host()
        nodes = int(nodes)
        if not 1 <= nodes <= 7:
            raise LabError("--nodes must be 1..7")
        topology = topology or "stacked"
        if topology not in TOPOLOGIES:
            raise LabError("--topology must be one of %s" % ", ".join(TOPOLOGIES))
        external = topology == "external"
        if external:
            etcd_hosts = int(etcd_hosts)
            if not 1 <= etcd_hosts <= 7:
                raise LabError("--etcd-hosts must be 1..7")
            if etcd_style not in ETCD_STYLES:
                raise LabError("--etcd-style must be one of %s" % ", ".join(ETCD_STYLES))
            if etcd_events and etcd_style == "static":
                raise LabError("--etcd-events needs a systemd style (--etcd-style systemd-flags or systemd-env)")
            members = etcd_hosts
            cp_hosts = ["cp%d" % (i + 1) for i in range(nodes)]
            member_hosts = ["etcd%d" % (i + 1) for i in range(etcd_hosts)]
            hosts = cp_hosts + member_hosts
        elif etcd_events or etcd_style not in (None, "static"):
            raise LabError("--etcd-style and --etcd-events need --topology external")
        else:
            members = nodes
            hosts = member_hosts = ["cp%d" % (i + 1) for i in range(nodes)]
        ips = [_node_ip(ip_base + i + 1) for i in range(len(hosts))]
        if etcd_versions:
            versions = [v.strip() for v in (etcd_versions.split(",") if isinstance(etcd_versions, str)
                                            else etcd_versions)]
            if len(versions) == 1:
                versions *= members
            if len(versions) != members:
                raise LabError("--etcd-versions needs one version per %s (%d given, %d %s)"
                               % ("etcd host" if external else "node", len(versions), members,
                                  "etcd hosts" if external else "nodes"))
        else:
            versions = [etcd_version or DEFAULT_VERSION] * members
        if member_names:
            names = [m.strip() for m in (member_names.split(",") if isinstance(member_names, str) else member_names)]
            if len(names) != members:
                raise LabError("--member-names needs %d names" % members)
        else:
            names = list(member_hosts)
        if external:
            # control planes: no member; their etcdctl (and API server image) follow the first etcd host
            versions = [versions[0]] * nodes + versions
            names = [None] * nodes + names
        if no_tools in (None, "", False):
            no_tools_set = set()
        elif no_tools in ("all", True):
            no_tools_set = set(hosts)
        else:
            no_tools_set = set(x.strip() for x in (no_tools.split(",") if isinstance(no_tools, str) else no_tools))
            bad = no_tools_set - set(hosts)
            if bad:
                raise LabError("--no-tools: unknown nodes %s" % ", ".join(sorted(bad)))
        data_dir = os.path.normpath(data_dir or "/var/lib/etcd")
        if not data_dir.startswith("/var/lib/"):
            raise LabError("--data-dir must be under /var/lib (node-private in the lab)")

        if os.path.exists(self.state_path) or os.path.exists(self.dir) and os.listdir(self.dir):
            log("an old lab exists in %s: taking it down first" % self.dir)
            self.down(log=log)

        ports = [ssh_port, client_port, peer_port, 2381, apiserver_port]
        if etcd_events:
            ports += [EVENTS_CLIENT_PORT, EVENTS_PEER_PORT]
        for ip in ips:
            for port in ports:
                if not _port_free(ip, port):
                    raise LabError("%s:%d is in use (another lab on this --ip-base?)" % (ip, port))

        bindirs = {}
        for v in sorted(set(versions)):
            bindirs[v] = etcdfetch.fetch(self.cache, v, log=log)

        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        python = "/usr/bin/python3" if _has_yaml("/usr/bin/python3") else sys.executable
        st = {"format": 1, "dir": self.dir, "cache": self.cache, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime()),
              "marker": "KUBEOPS_LAB=" + self.dir, "python": python, "ip_base": ip_base,
              "client_port": client_port, "peer_port": peer_port, "ssh_port": ssh_port,
              "apiserver_port": apiserver_port, "etcd_versions": versions[-members:], "data_dir": data_dir,
              "created_host_dirs": [], "nodes": [], "inventory": os.path.join(self.dir, "inventory.ini"),
              "ssh_key": os.path.join(self.dir, "ssh", "id_ed25519"),
              "ca": os.path.join(self.dir, "pki", "etcd", "ca.crt"),
              "ca_key": os.path.join(self.dir, "pki", "etcd", "ca.key"),
              "client_cert": os.path.join(self.dir, "pki", "etcd", "lab-client.crt"),
              "client_key": os.path.join(self.dir, "pki", "etcd", "lab-client.key"),
              "k8s_ca": os.path.join(self.dir, "pki", "ca.crt"), "phase": "creating", "topology": topology}
        if external:
            st.update(etcd_style=etcd_style, etcd_events=None)
        for i, h in enumerate(hosts):
            ip = ips[i]
            nd = os.path.join(self.dir, "nodes", h)
            v = versions[i]
            tools = h not in no_tools_set
            member = names[i] is not None
            st["nodes"].append({
                "host": h, "hostname": h, "ip": ip, "ssh_port": ssh_port, "member_name": names[i],
                "role": "etcd" if external and member else "control-plane",
                "client_url": "https://%s:%d" % (ip, client_port) if member else None,
                "peer_url": "https://%s:%d" % (ip, peer_port) if member else None,
                "apiserver_url": "https://%s:%d" % (ip, apiserver_port) if not (external and member) else None,
                "root": os.path.join(nd, "root"), "run_dir": os.path.join(nd, "run"),
                "bin_dir": os.path.join(nd, "bin"), "etcd_version": v,
                "data_dir_host_path": data_dir if member else None,
                "manifests_dir": "/etc/kubernetes/manifests", "has_tools": tools,
                "etcdctl": os.path.join(bindirs[v], "etcdctl"),
                "etcdutl": os.path.join(bindirs[v], "etcdutl") if os.path.exists(os.path.join(bindirs[v], "etcdutl"))
                else None,
                "etcd_bin_dir": bindirs[v],
                "etcd_image": manifests.etcd_image(v), "etcd_image_kind": etcdimages.etcd_image(
                    manifests.etcd_image(v))["kind"],
                "init_pidfile": os.path.join(nd, "run", "init.pid"),
                "kubelet_pidfile": os.path.join(nd, "run", "kubelet.pid"),
                "sshd_pidfile": os.path.join(nd, "run", "sshd.pid"),
                "kubelet_log": os.path.join(nd, "run", "kubelet.log"),
                "sshd_log": os.path.join(nd, "run", "sshd.log"),
                "kubelet_state": os.path.join(nd, "root", "var", "lib", "kubelet-standin", "state.json"),
            })
            if external and member:
                self._external_member(st["nodes"][-1], nd, etcd_style, data_dir)
        if external and etcd_events:
            self._events_member(st, st["nodes"][nodes])
        self._save(st)
        try:
            self._build(st, python)
            self._start_nodes(st)
            if external:
                self._form_external_cluster(st, log)
            else:
                self._form_cluster(st, log)
            if wait_apiserver:
                self._wait_apiservers(st)
            self._wait_ssh(st)
        except BaseException:
            st["phase"] = "failed"
            self._save(st)
            raise
        st["phase"] = "up"
        st["up_seconds"] = round(time.time() - t0, 2)
        self._save(st)
        if external:
            log("lab up: %d control planes, %d etcd hosts (%s), etcd %s, %.1fs"
                % (nodes, members, etcd_style, ",".join(sorted(set(versions))), time.time() - t0))
        else:
            log("lab up: %d nodes, etcd %s, %.1fs" % (nodes, ",".join(sorted(set(versions))), time.time() - t0))
        return st["inventory"]

    def _build(self, st, python):
        d = self.dir
        # ssh: one key pair for root; authorized_keys read by every node's sshd
        os.makedirs(os.path.join(d, "ssh"), 0o700, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubeops-lab", "-f", st["ssh_key"]],
                       check=True, stdout=subprocess.DEVNULL)
        shutil.copy(st["ssh_key"] + ".pub", os.path.join(d, "ssh", "authorized_keys"))
        os.chmod(os.path.join(d, "ssh", "authorized_keys"), 0o600)
        # PKI: one etcd CA and one Kubernetes CA for the cluster, per-node leaf certs
        etcd_ca = pki.CA(os.path.join(d, "pki", "etcd", "ca")).create("etcd-ca")
        k8s_ca = pki.CA(os.path.join(d, "pki", "ca")).create("kubernetes")
        etcd_ca.issue(os.path.join(d, "pki", "etcd", "lab-client"), "kubeops-lab-client", org="system:masters",
                      client=True)
        pki.keypair(os.path.join(d, "pki", "sa"))
        with open(k8s_ca.crt, "rb") as f:
            k8s_ca_b64 = base64.b64encode(f.read()).decode()
        host_sbin = sorted(os.listdir(NODE_BIN_MOUNT)) if os.path.isdir(NODE_BIN_MOUNT) else []
        external = st.get("topology") == "external"
        if external:
            st["etcd_uid"], st["etcd_gid"] = _free_system_ids()
        for n in st["nodes"]:
            root, run, bindir = n["root"], n["run_dir"], n["bin_dir"]
            for sub in ("etc/kubernetes/manifests", "etc/kubernetes/pki/etcd", "var/lib/kubelet-standin/logs"):
                os.makedirs(os.path.join(root, sub), 0o755, exist_ok=True)
            os.makedirs(run, 0o755, exist_ok=True)
            os.makedirs(bindir, 0o755, exist_ok=True)
            kp = os.path.join(root, "etc/kubernetes/pki")
            h, ip = n["hostname"], n["ip"]
            external_member = external and n["role"] == "etcd"
            # external control planes get only the etcd CA's cert (kubeadm's external-etcd guide)
            for f in ("ca.crt", "ca.key") if not external or n["role"] == "etcd" else ("ca.crt",):
                shutil.copy2(os.path.join(d, "pki", "etcd", f), os.path.join(kp, "etcd", f))
            if not external_member:
                for f in ("ca.crt", "ca.key", "sa.key", "sa.pub"):
                    shutil.copy2(os.path.join(d, "pki", f), os.path.join(kp, f))
            if not external:
                sans_dns, sans_ip = [h, "localhost"], [ip, "127.0.0.1", "::1"]
                etcd_ca.issue(os.path.join(kp, "etcd", "server"), h, dns=sans_dns, ips=sans_ip, server=True,
                              client=True)
                etcd_ca.issue(os.path.join(kp, "etcd", "peer"), h, dns=sans_dns, ips=sans_ip, server=True,
                              client=True)
                etcd_ca.issue(os.path.join(kp, "etcd", "healthcheck-client"), "kube-etcd-healthcheck-client",
                              client=True)
            if external_member:
                self._build_etcd_host(st, n, etcd_ca, d)
            if not external_member or n["etcd_style"] == "static":
                etcd_ca.issue(os.path.join(kp, "apiserver-etcd-client"), "kube-apiserver-etcd-client", client=True)
            if not external_member:
                k8s_ca.issue(os.path.join(kp, "apiserver"), "kube-apiserver",
                             dns=[h, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local", "localhost"],
                             ips=["10.96.0.1", ip, "127.0.0.1"], server=True)
                for conf, user in (("admin.conf", "kubernetes-admin"),
                                   ("controller-manager.conf", "system:kube-controller-manager"),
                                   ("scheduler.conf", "system:kube-scheduler"),
                                   ("kubelet.conf", "system:node:" + h)):
                    _write(os.path.join(root, "etc/kubernetes", conf),
                           manifests.kubeconfig(n["apiserver_url"], k8s_ca_b64, user), 0o600)
            # node bin dir, bind-mounted over /usr/local/sbin (empty on Debian; entries kept as symlinks)
            for e in host_sbin:
                os.symlink(os.path.join(NODE_BIN_MOUNT, e), os.path.join(bindir, e))
            for tool in ("crictl", "systemctl", "journalctl"):
                os.symlink(os.path.join(STANDINS, tool), os.path.join(bindir, tool))
            if n["has_tools"]:
                os.symlink(n["etcdctl"], os.path.join(bindir, "etcdctl"))
                if n["etcdutl"]:
                    os.symlink(n["etcdutl"], os.path.join(bindir, "etcdutl"))
            # sshd
            hostkey = os.path.join(run, "ssh_host_ed25519_key")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h, "-f", hostkey], check=True,
                           stdout=subprocess.DEVNULL)
            _write(os.path.join(run, "sshd_config"), SSHD_CONFIG % {
                "ip": ip, "port": n["ssh_port"], "hostkey": hostkey, "pidfile": n["sshd_pidfile"],
                "authkeys": os.path.join(d, "ssh", "authorized_keys"),
                "path": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
            node_cfg = {"node": h, "hostname": h, "ip": ip, "lab_dir": d, "cache": self.cache, "python": python,
                        "run_dir": run,
                        "standins": STANDINS, "manifests_dir": "/etc/kubernetes/manifests",
                        "kubelet_pidfile": n["kubelet_pidfile"], "kubelet_log": n["kubelet_log"],
                        "etcdctl_image": n["etcdctl"]}
            if n.get("overlays"):
                node_cfg["units"] = True    # the systemctl stand-in runs unit files here (private /etc)
            _write(os.path.join(root, "var/lib/kubelet-standin/node.json"), json.dumps(node_cfg, indent=2))
            binds = [[os.path.join(root, "etc/kubernetes"), "/etc/kubernetes"],
                     [os.path.join(root, "var/lib"), "/var/lib"], [bindir, NODE_BIN_MOUNT]]
            for real in ("/usr/bin/systemctl", "/bin/systemctl", "/usr/bin/journalctl", "/bin/journalctl"):
                # modules that look in /usr/bin before PATH (ansible.builtin.service) get the stand-in too
                if os.path.isfile(real) and not os.path.islink(real) and \
                        not any(b[1] == os.path.realpath(real) for b in binds):
                    binds.append([os.path.join(STANDINS, os.path.basename(real)), os.path.realpath(real)])
            for rc in ROOT_SHELL_RC:
                # a node's root has its own shell start-up files, as on a real node: bash sources ~/.bashrc
                # for every ssh command, and the ops box's (pyenv, cargo) would run in every Ansible task
                if os.path.isfile(rc):
                    _write(os.path.join(run, os.path.basename(rc)), NODE_ROOT_BASHRC)
                    binds.append([os.path.join(run, os.path.basename(rc)), rc])
            if os.path.isdir("/run/systemd"):
                # /run/systemd/system marks "booted with systemd": Ansible's service_mgr fact says
                # systemd and service/systemd modules drive the systemctl stand-in
                os.makedirs(os.path.join(run, "run-systemd", "system"), exist_ok=True)
                binds.append([os.path.join(run, "run-systemd"), "/run/systemd"])
            overlays = [[target, upper, upper[:-len("upper")] + "work", upper[:-len("upper")] + "stash"]
                        for target, upper in sorted((n.get("overlays") or {}).items())]
            init_cfg = dict(node_cfg, binds=binds, overlays=overlays, init_pidfile=n["init_pidfile"],
                            sshd_config=os.path.join(run, "sshd_config"), sshd_log=n["sshd_log"],
                            kubelet_config="/var/lib/kubelet-standin/node.json")
            _write(os.path.join(run, "init.json"), json.dumps(init_cfg, indent=2))

    def _start_nodes(self, st):
        with _HostLock():
            self._start_nodes_locked(st)

    def _start_nodes_locked(self, st):
        # mount points for the node-private trees
        for p in ("/etc/kubernetes", NODE_BIN_MOUNT, "/run/sshd"):
            if p == "/etc/kubernetes" and os.path.isdir(p) and not os.listdir(p) and not self._other_labs():
                # an empty mount point left behind by an older lab: adopt it
                open(os.path.join(p, MOUNTPOINT_MARKER), "w").close()
            if not os.path.isdir(p):
                os.makedirs(p, 0o755, exist_ok=True)
                # marker on the host side of the mount point: any lab's `down` may remove it later
                open(os.path.join(p, MOUNTPOINT_MARKER), "w").close()
                st["created_host_dirs"].append(p)
        self._save(st)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "KUBEOPS_LAB": self.dir}
        for n in st["nodes"]:
            subprocess.Popen(["unshare", "--mount", "--uts", "--propagation", "private", "--", st["python"],
                              os.path.join(HERE, "nodeinit.py"), os.path.join(n["run_dir"], "init.json")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(n["run_dir"], "init.log"), "ab"),
                             env=env, cwd="/", start_new_session=True)
        deadline = time.time() + 30
        for n in st["nodes"]:
            while not (self._pid(n["init_pidfile"]) and self._pid(n["kubelet_pidfile"])):
                if time.time() > deadline:
                    raise LabError("node %s did not start; see %s" % (n["host"],
                                                                      os.path.join(n["run_dir"], "init.log")))
                time.sleep(0.05)
            n["mnt_ns"] = _ns_inode(self._pid(n["init_pidfile"]), "mnt")
            n["uts_ns"] = _ns_inode(self._pid(n["init_pidfile"]), "uts")
        self._save(st)

    def _wait_etcd(self, n, timeout=60, url=None, unit_log=None):
        import etcdgw
        st = self.state
        c = etcdgw.Client(url or n["client_url"], st["ca"], st["client_cert"], st["client_key"], timeout=2)
        deadline = time.time() + timeout
        err = None
        while time.time() < deadline:
            try:
                if c.health():
                    c.close()
                    return
            except Exception as e:
                err = e
            time.sleep(0.2)
        unit_log = unit_log or (n.get("unit_log") if n.get("etcd_unit") else None)
        raise LabError("etcd on %s not healthy after %ds (%s); its last log lines:\n%s"
                       % (n["host"], timeout, err, _tail(unit_log) if unit_log
                          else self._container_log_tail(n, "etcd")))

    def _form_cluster(self, st, log):
        """kubeadm's order: first member alone, then `member add` (learner + promote on 3.5+) before each join."""
        existing = []
        for i, n in enumerate(st["nodes"]):
            mdir = os.path.join(n["root"], "etc/kubernetes/manifests")
            me = "%s=%s" % (n["member_name"], n["peer_url"])
            learner = False
            member_id = None
            if i == 0:
                initial = me
            else:
                first_v = tuple(int(x) for x in existing[0][1]["etcd_version"].split(".")[:2])
                my_v = tuple(int(x) for x in n["etcd_version"].split(".")[:2])
                learner = first_v >= (3, 5) and my_v >= (3, 5)
                args = ["member", "add", n["member_name"], "--peer-urls=" + n["peer_url"], "-w", "json"]
                if learner:
                    args.append("--learner")
                eps = [x[1]["client_url"] for x in existing]
                p = self._retry(lambda: self.etcdctl(*args, endpoints=eps, node=existing[0][1]["host"]))
                member_id = json.loads(p.stdout)["member"]["ID"]
                # kubeadm join writes the members that exist plus itself
                initial = ",".join([x[0] for x in existing] + [me])
            _write(os.path.join(mdir, "etcd.yaml"), manifests.etcd(
                n["member_name"], n["ip"], initial, i > 0, n["etcd_version"], n["data_dir_host_path"],
                st["client_port"], st["peer_port"]), 0o600)
            if learner:
                # a learner serves no reads: promote (fails until it caught up), then check health
                eps = [x[1]["client_url"] for x in existing]
                self._retry(lambda: self.etcdctl("member", "promote", "%x" % member_id, endpoints=eps,
                                                 node=existing[0][1]["host"]), timeout=60)
            self._wait_etcd(n)
            existing.append((me, n))
            etcd_servers = n["client_url"]
            _write(os.path.join(mdir, "kube-apiserver.yaml"),
                   manifests.kube_apiserver(n["ip"], etcd_servers, n["etcd_version"], st["apiserver_port"]), 0o600)
            _write(os.path.join(mdir, "kube-controller-manager.yaml"),
                   manifests.kube_controller_manager(n["etcd_version"]), 0o600)
            _write(os.path.join(mdir, "kube-scheduler.yaml"), manifests.kube_scheduler(n["etcd_version"]), 0o600)
            log("%s: etcd member %s %s" % (n["host"], n["member_name"], "joined" if i else "started"))
        self._write_inventory(st)
        st["phase"] = "cluster-formed"
        self._save(st)

    # ---- external etcd ------------------------------------------------------------------------------------------
    @staticmethod
    def _external_member(n, nd, style, data_dir):
        """Fields of an etcd host of an external lab (lab.json)."""
        pdir, ca, cert, key, peer_cert, peer_key = ETCD_PKI[style]
        h = n["host"]
        n["etcd_style"] = style
        n["etcd_pki"] = {k: os.path.join(pdir, v.format(h=h)) for k, v in (
            ("ca", ca), ("cert", cert), ("key", key), ("peer_cert", peer_cert), ("peer_key", peer_key))}
        n["overlays"] = {t: os.path.join(nd, t.strip("/").replace("/", "-") + "-upper") for t in OVERLAY_DIRS}
        n["etcd_unit"] = None if style == "static" else "etcd.service"
        n["etcd_user"] = {"static": None, "systemd-flags": "etcd", "systemd-env": "root"}[style]
        n["etcd_env_file"] = "/etc/etcd.env" if style == "systemd-env" else None
        n["data_dir"] = data_dir
        n["unit_log"] = os.path.join(nd, "root", "var", "lib", "systemd-standin", "logs", "etcd.log")

    @staticmethod
    def _events_member(st, n):
        """etcd1's second unit: a one-member cluster of its own on kubespray's etcd-events ports."""
        ev = {"unit": "etcd-events.service", "member_name": n["member_name"] + "-events",
              "client_url": "https://%s:%d" % (n["ip"], EVENTS_CLIENT_PORT),
              "peer_url": "https://%s:%d" % (n["ip"], EVENTS_PEER_PORT),
              "data_dir": "/var/lib/etcd-events",
              "env_file": "/etc/etcd-events.env" if n["etcd_style"] == "systemd-env" else None,
              "unit_log": os.path.join(os.path.dirname(n["unit_log"]), "etcd-events.log")}
        n["events"] = ev
        st["etcd_events"] = dict(ev, host=n["host"])

    def _build_etcd_host(self, st, n, etcd_ca, d):
        """An external etcd host's files: its own users, certs, data dir, etcd binary and unit (or nothing more for
        the static style, whose manifest is written when the cluster forms)."""
        for upper in n["overlays"].values():
            base = upper[:-len("upper")]
            for sub in ("upper", "work", "stash"):
                os.makedirs(base + sub, 0o755, exist_ok=True)
        etc_up = n["overlays"]["/etc"]
        uid, gid = st["etcd_uid"], st["etcd_gid"]
        for name, line in (("passwd", "etcd:x:%d:%d:etcd user:/var/lib/etcd:/usr/sbin/nologin\n" % (uid, gid)),
                           ("group", "etcd:x:%d:\n" % gid), ("shadow", "etcd:!:20000::::::\n"),
                           ("gshadow", "etcd:!::\n")):
            host = os.path.join("/etc", name)
            if not os.path.exists(host):
                continue
            with open(host) as f:
                text = f.read()
            if re.search(r"(?m)^etcd:", text):
                line = ""       # the host has the user (or group) already
            if text and not text.endswith("\n"):
                text += "\n"
            hs = os.stat(host)
            _write(os.path.join(etc_up, name), text + line, hs.st_mode & 0o7777)
            os.chown(os.path.join(etc_up, name), hs.st_uid, hs.st_gid)
        h, ip = n["hostname"], n["ip"]
        sans_dns, sans_ip = [h, "localhost"], [ip, "127.0.0.1", "::1"]
        if n["etcd_style"] == "static":
            kp = os.path.join(n["root"], "etc/kubernetes/pki/etcd")
            etcd_ca.issue(os.path.join(kp, "server"), h, dns=sans_dns, ips=sans_ip, server=True, client=True)
            etcd_ca.issue(os.path.join(kp, "peer"), h, dns=sans_dns, ips=sans_ip, server=True, client=True)
            etcd_ca.issue(os.path.join(kp, "healthcheck-client"), "kube-etcd-healthcheck-client", client=True)
            return
        owner = (uid, gid) if n["etcd_user"] == "etcd" else (0, 0)

        def etc_path(p):
            return etc_up + p[len("/etc"):]

        pk = n["etcd_pki"]
        tmp = os.path.join(n["run_dir"], "pki-tmp")
        os.makedirs(tmp, 0o700, exist_ok=True)
        etcd_ca.issue(os.path.join(tmp, "server"), h, dns=sans_dns, ips=sans_ip, server=True, client=True)
        etcd_ca.issue(os.path.join(tmp, "peer"), h, dns=sans_dns, ips=sans_ip, server=True, client=True)
        for src, dst, mode in ((os.path.join(d, "pki", "etcd", "ca.crt"), pk["ca"], 0o644),
                               (os.path.join(tmp, "server.crt"), pk["cert"], 0o644),
                               (os.path.join(tmp, "server.key"), pk["key"], 0o600),
                               (os.path.join(tmp, "peer.crt"), pk["peer_cert"], 0o644),
                               (os.path.join(tmp, "peer.key"), pk["peer_key"], 0o600)):
            if os.path.exists(etc_path(dst)):
                continue    # kubespray's member cert serves as server and peer cert
            os.makedirs(os.path.dirname(etc_path(dst)), 0o755, exist_ok=True)
            shutil.copyfile(src, etc_path(dst))
            os.chmod(etc_path(dst), mode)
            os.chown(etc_path(dst), *owner)
        shutil.rmtree(tmp)
        # the etcd binary where both units expect it (node-private /usr/local/bin)
        ulb = os.path.join(n["overlays"]["/usr/local/bin"], "etcd")
        try:
            os.link(os.path.join(n["etcd_bin_dir"], "etcd"), ulb)
        except OSError:
            shutil.copy2(os.path.join(n["etcd_bin_dir"], "etcd"), ulb)
        initial = ",".join("%s=%s" % (x["member_name"], x["peer_url"]) for x in st["nodes"] if x["role"] == "etcd")
        units = [("etcd", n["member_name"], initial, n["data_dir"], st["client_port"], st["peer_port"],
                  "etcd-cluster", n["etcd_env_file"], "etcd key-value store")]
        ev = n.get("events")
        if ev:
            units.append(("etcd-events", ev["member_name"], "%s=%s" % (ev["member_name"], ev["peer_url"]),
                          ev["data_dir"], EVENTS_CLIENT_PORT, EVENTS_PEER_PORT, "etcd-events-cluster",
                          ev["env_file"], "etcd events"))
        sysdir = os.path.join(etc_up, "systemd", "system")
        os.makedirs(sysdir, 0o755, exist_ok=True)
        # opaque in the overlay: the node's /etc/systemd/system holds its own units only, none of the host's
        os.setxattr(sysdir, "trusted.overlay.opaque", b"y")
        for unit, name, init, data_dir, cport, pport, token, env_file, descr in units:
            settings = manifests.etcd_settings(name, ip, init, data_dir, pk, cport, pport, token)
            if env_file:
                _write(etc_path(env_file), manifests.etcd_env_file(settings, n["etcd_version"]), 0o640)
                text = manifests.etcd_unit_env(env_file, "etcd" if unit == "etcd" else descr)
            else:
                text = manifests.etcd_unit_flags(settings, user=n["etcd_user"], description=descr)
            _write(os.path.join(sysdir, unit + ".service"), text)
            _write(os.path.join(sysdir, unit + ".service.d", "10-lab.conf"), manifests.ETCD_DROPIN)
            dd = n["root"] + data_dir
            os.makedirs(dd, 0o700, exist_ok=True)
            os.chmod(dd, 0o700)
            os.chown(dd, *owner)

    def _form_external_cluster(self, st, log):
        """Every etcd host starts its member at once with the full initial cluster (kubeadm's external-etcd guide,
        kubespray, the Hard Way); then the control planes' static pods point at all of them."""
        ms = [n for n in st["nodes"] if n["role"] == "etcd"]
        initial = ",".join("%s=%s" % (n["member_name"], n["peer_url"]) for n in ms)
        for n in ms:
            if n["etcd_style"] == "static":
                _write(os.path.join(n["root"], "etc/kubernetes/manifests", "etcd.yaml"), manifests.etcd(
                    n["member_name"], n["ip"], initial, False, n["etcd_version"], n["data_dir_host_path"],
                    st["client_port"], st["peer_port"]), 0o600)
            else:
                units = ["etcd.service"] + ([n["events"]["unit"]] if n.get("events") else [])
                self.exec(n["host"], ["systemctl", "daemon-reload"], check=True)
                self.exec(n["host"], ["systemctl", "enable", "--now"] + units, check=True)
        for n in ms:
            self._wait_etcd(n)
            if n.get("events"):
                self._wait_etcd(n, url=n["events"]["client_url"], unit_log=n["events"]["unit_log"])
            log("%s: etcd member %s started (%s)" % (n["host"], n["member_name"], n["etcd_style"]))
        servers = ",".join(n["client_url"] for n in ms)
        for n in st["nodes"]:
            if n["role"] != "control-plane":
                continue
            mdir = os.path.join(n["root"], "etc/kubernetes/manifests")
            _write(os.path.join(mdir, "kube-apiserver.yaml"),
                   manifests.kube_apiserver(n["ip"], servers, n["etcd_version"], st["apiserver_port"]), 0o600)
            _write(os.path.join(mdir, "kube-controller-manager.yaml"),
                   manifests.kube_controller_manager(n["etcd_version"]), 0o600)
            _write(os.path.join(mdir, "kube-scheduler.yaml"), manifests.kube_scheduler(n["etcd_version"]), 0o600)
        self._write_inventory(st)
        st["phase"] = "cluster-formed"
        self._save(st)

    @staticmethod
    def _retry(fn, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                return fn()
            except LabError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

    def _wait_apiservers(self, st, timeout=90):
        import ssl
        import http.client
        ctx = ssl.create_default_context(cafile=st["k8s_ca"])
        ctx.check_hostname = False
        deadline = time.time() + timeout
        for n in st["nodes"]:
            if not n.get("apiserver_url"):
                continue
            while True:
                try:
                    c = http.client.HTTPSConnection(n["ip"], st["apiserver_port"], context=ctx, timeout=2)
                    c.request("GET", "/readyz")
                    if c.getresponse().status == 200:
                        break
                except Exception:
                    pass
                if time.time() > deadline:
                    raise LabError("kube-apiserver on %s not ready after %ds; its last log lines:\n%s"
                                   % (n["host"], timeout, self._container_log_tail(n, "kube-apiserver")))
                time.sleep(0.2)

    @staticmethod
    def _container_log_tail(n, name, lines=15):
        try:
            with open(n["kubelet_state"]) as f:
                cs = [c for c in json.load(f)["containers"].values() if c["name"] == name]
            c = max(cs, key=lambda c: c["created"])
            with open(n["root"] + c["log_path"], errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, ValueError, KeyError):
            return "(no log)"

    def _wait_ssh(self, st, timeout=30):
        deadline = time.time() + timeout
        for n in st["nodes"]:
            while True:
                try:
                    with socket.create_connection((n["ip"], n["ssh_port"]), timeout=1) as s:
                        if s.recv(4).startswith(b"SSH"):
                            break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise LabError("sshd on %s not answering; see %s" % (n["host"], n["sshd_log"]))
                time.sleep(0.1)

    def _write_inventory(self, st):
        lines = ["# kubeops.etcd lab inventory (written by tests/lab/labctl up)", "[kube_control_plane]"]
        for n in st["nodes"]:
            if n.get("role", "control-plane") == "control-plane":
                lines.append("%s ansible_host=%s ansible_port=%d" % (n["host"], n["ip"], n["ssh_port"]))
        if st.get("topology") == "external":
            lines += ["", "[etcd]"]
            lines += ["%s ansible_host=%s ansible_port=%d" % (n["host"], n["ip"], n["ssh_port"])
                      for n in st["nodes"] if n["role"] == "etcd"]
        lines += ["", "[all:vars]", "ansible_user=root",
                  "ansible_ssh_private_key_file=" + st["ssh_key"],
                  "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                  "-o ControlMaster=auto -o ControlPersist=60s -o LogLevel=ERROR'",
                  "ansible_python_interpreter=/usr/bin/python3", ""]
        _write(st["inventory"], "\n".join(lines))

    # ---- down -------------------------------------------------------------------
    def _lab_pids(self, st):
        """Every process of this lab: those carrying its env marker, and those living in one of its node
        namespaces (ssh sessions, whose environment sshd resets).

        A recorded namespace counts only while a process carrying the marker still lives in it: once a
        namespace is freed the kernel hands its inode number to the next namespace made on the machine (another
        lab's node or pod), and a pid file may name a pid reused by anyone. Trusting either after our own
        processes died killed other labs' nodes when labs ran side by side."""
        marker = ("KUBEOPS_LAB=" + self.dir).encode()
        recorded = set()
        for n in (st or {}).get("nodes", []):
            for k in ("mnt_ns", "uts_ns"):
                if n.get(k):
                    recorded.add((k[:3], n[k]))
        me = os.getpid()
        procs = []
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) == me:
                continue
            pid = int(e)
            procs.append((pid, marker in _proc_environ(pid),
                          ("mnt", _ns_inode(pid, "mnt")), ("uts", _ns_inode(pid, "uts"))))
        ours = {ns for _pid, marked, mnt, uts in procs if marked for ns in (mnt, uts) if ns in recorded}
        pids = {pid for pid, marked, mnt, uts in procs if marked or mnt in ours or uts in ours}
        return {p for p in pids if _alive(p)}

    def down(self, log=_log):
        st = None
        try:
            with open(self.state_path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            pass
        if st is None and not os.path.isdir(self.dir):
            return False
        pids = self._lab_pids(st)
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            for p in pids:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            deadline = time.time() + wait
            while time.time() < deadline:
                pids = {p for p in pids if _alive(p)}
                if not pids:
                    break
                time.sleep(0.05)
            pids |= self._lab_pids(st)
            if not pids:
                break
        if pids:
            log("warning: processes still alive: %s" % sorted(pids))
        # mount points a container had to create on the node (see podrun.py)
        for n in (st or {}).get("nodes", []):
            try:
                with open(n["kubelet_state"]) as f:
                    ks = json.load(f)
            except (OSError, ValueError, KeyError):
                continue
            for c in ks.get("containers", {}).values():
                try:
                    with open(c.get("mount_points_created") or "/nonexistent") as f:
                        made = json.load(f)
                except (OSError, ValueError):
                    continue
                remove_created_mount_points(made, keep=PRIVATE_DIRS)
        # host mounts below the lab dir (none are made on the host, but be thorough)
        with open("/proc/self/mounts") as f:
            mps = [line.split()[1] for line in f]
        for mp in sorted((m for m in mps if m == self.dir or m.startswith(self.dir + "/")), reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL, check=False)
        # host mount points made by a lab (this one or an earlier one): remove when no lab runs any more
        with _HostLock():
            if not self._other_labs():
                for p in ("/run/sshd", NODE_BIN_MOUNT, "/etc/kubernetes"):
                    try:
                        if os.listdir(p) == [MOUNTPOINT_MARKER]:
                            os.unlink(os.path.join(p, MOUNTPOINT_MARKER))
                            os.rmdir(p)
                    except OSError:
                        pass
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self._state = None
        return True

    def _other_labs(self):
        mine = ("KUBEOPS_LAB=" + self.dir).encode()
        for e in os.listdir("/proc"):
            if e.isdigit():
                for v in _proc_environ(e):
                    if v.startswith(b"KUBEOPS_LAB=") and v != mine:
                        return True
        return False

    # ---- status -----------------------------------------------------------------
    def status(self):
        st = self.state
        out = {"dir": self.dir, "phase": st.get("phase"), "inventory": st["inventory"], "nodes": []}
        import etcdgw
        for n in st["nodes"]:
            r = {"host": n["host"], "ip": n["ip"], "member_name": n["member_name"], "etcd_version": n["etcd_version"],
                 "node": bool(self._pid(n["init_pidfile"])), "sshd": bool(self._pid(n["sshd_pidfile"])),
                 "kubelet": bool(self._pid(n["kubelet_pidfile"])), "containers": [], "etcd_healthy": False}
            if st.get("topology") == "external":
                r["role"] = n["role"]
                if n["role"] != "etcd":
                    r["etcd_healthy"] = None
                if n.get("etcd_unit"):
                    r["units"] = {}
                    for u in [n["etcd_unit"]] + ([n["events"]["unit"]] if n.get("events") else []):
                        p = self.exec(n["host"], ["systemctl", "is-active", u]) if r["node"] else None
                        r["units"][u] = p.stdout.strip() if p else "unknown"
            try:
                with open(n["kubelet_state"]) as f:
                    ks = json.load(f)
                for c in ks["containers"].values():
                    if c["state"] == "CONTAINER_RUNNING" and not _alive(c["pid"]):
                        c["state"] = "CONTAINER_EXITED"
                    r["containers"].append({"name": c["name"], "pod": c["pod_name"], "id": c["id"][:13],
                                            "state": c["state"].replace("CONTAINER_", "").lower(),
                                            "attempt": c["attempt"]})
            except (OSError, ValueError, KeyError):
                pass
            for url, key in ((n.get("client_url"), "etcd"), ((n.get("events") or {}).get("client_url"), "events")):
                if not url:
                    continue
                try:
                    cl = etcdgw.Client(url, st["ca"], st["client_cert"], st["client_key"], timeout=2)
                    r[key + "_healthy"] = cl.health()
                    cl.close()
                except Exception as e:
                    r[key + "_healthy"] = False
                    r[key + "_error"] = str(e)[:200]
            out["nodes"].append(r)
        return out

    # ---- load -------------------------------------------------------------------
    def load(self, keys, value_bytes, threads=4, prefix="/registry", seed=None):
        """Write `keys` Kubernetes-shaped keys of `value_bytes` each (txn batches over the JSON gateway)."""
        import etcdgw
        st = self.state
        keys, value_bytes = int(keys), int(value_bytes)
        if value_bytes > 1400 * 1024:
            raise LabError("--value-bytes %d: etcd refuses requests over 1.5 MiB (--max-request-bytes); "
                           "Kubernetes objects are at most ~1 MiB" % value_bytes)
        rnd = random.Random(seed)
        nss = max(1, min(100, keys // 50))
        names = []
        for i in range(nss):
            names.append("%s/namespaces/ns-%03d" % (prefix, i))
        kinds = ("configmaps", "secrets", "deployments")
        i = 0
        while len(names) < keys:
            names.append("%s/%s/ns-%03d/obj-%07d" % (prefix, kinds[i % 3], i % nss, i))
            i += 1
        names = names[:keys]
        # value: protobuf-ish magic prefix + random payload (incompressible, like encrypted Secrets)
        head = b"k8s\x00"
        per_batch_bytes = 1024 * 1024
        max_ops = 128
        batches, cur, size = [], [], 0
        for k in names:
            if cur and (len(cur) >= max_ops or size + value_bytes + len(k) > per_batch_bytes):
                batches.append(cur)
                cur, size = [], 0
            cur.append(k)
            size += value_bytes + len(k)
        if cur:
            batches.append(cur)
        lock = threading.Lock()
        errors = []
        t0 = time.time()
        eps = [n["client_url"] for n in self.etcd_nodes()]

        def worker(idx):
            c = etcdgw.Client(eps[idx % len(eps)], st["ca"], st["client_cert"], st["client_key"], timeout=30)
            while True:
                with lock:
                    if not batches or errors:
                        break
                    b = batches.pop()
                items = [(k, head + rnd.randbytes(max(0, value_bytes - len(head)))
                          if hasattr(rnd, "randbytes") else head + os.urandom(max(0, value_bytes - len(head))))
                         for k in b]
                try:
                    c.txn_put_many(items)
                except Exception as e:
                    with lock:
                        errors.append(str(e))
            c.close()

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise LabError("load failed: %s" % errors[0])
        return {"keys": keys, "value_bytes": value_bytes, "bytes": keys * value_bytes,
                "seconds": round(time.time() - t0, 2)}


class _HostLock:
    """Serialises creating host mount points + starting nodes against removing them (flock on
    the lab's code dir: shared by every lab of this checkout, leaves no file behind)."""

    def __enter__(self):
        import fcntl
        self.fd = os.open(HERE, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _free_system_ids():
    """uid and gid of the etcd user of external etcd hosts: the host's etcd user if it has one, else a number that
    no host user or group has."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                x = line.split(":")
                if x[0] == "etcd" and len(x) > 3 and x[2].isdigit() and x[3].isdigit():
                    return int(x[2]), int(x[3])
    except OSError:
        pass
    used = set()
    for path, field in (("/etc/passwd", 2), ("/etc/group", 2)):
        try:
            with open(path) as f:
                used |= {int(x.split(":")[field]) for x in f if x.count(":") >= 2 and x.split(":")[field].isdigit()}
        except OSError:
            pass
    for i in range(999, 100, -1):
        if i not in used:
            return i, i
    raise LabError("no free system uid/gid in 101..999 for the etcd user")


def _has_yaml(python):
    if not os.path.exists(python):
        return False
    return subprocess.run([python, "-c", "import yaml"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0


ROOT_SHELL_RC = tuple(os.path.join(os.path.expanduser("~root"), name) for name in (".bashrc", ".profile"))
NODE_ROOT_BASHRC = "# root's shell start-up file on a kubeops lab node (the ops box's is not run here)\n"

SSHD_CONFIG = """# sshd of a kubeops lab node (runs inside the node's mount+UTS namespace)
ListenAddress %(ip)s:%(port)d
HostKey %(hostkey)s
PidFile %(pidfile)s
AuthorizedKeysFile %(authkeys)s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
AcceptEnv LANG LC_*
MaxSessions 50
MaxStartups 50:30:100
SetEnv PATH=%(path)s
Subsystem sftp internal-sftp
"""
