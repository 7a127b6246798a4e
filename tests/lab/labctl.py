"""labctl: the kubeops.etcd local multi-node kubeadm control-plane lab (see docs/lab.md)."""
import argparse
import signal
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import lablib  # noqa: E402


def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    p = argparse.ArgumentParser(prog="labctl", description=__doc__)
    p.add_argument("--dir", default=None, help="lab dir (default $KUBEOPS_LAB_DIR or <repo>/.lab)")
    p.add_argument("--cache", default=None, help="binary cache (default $KUBEOPS_LAB_CACHE or <repo>/.lab-cache)")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build and start a lab; prints the inventory path as the last line")
    up.add_argument("--dir", dest="dir2", default=None)
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--etcd-version", default=None, help="default %s; one of %s" % (
        lablib.DEFAULT_VERSION, ", ".join(lablib.etcdfetch.SUPPORTED)))
    up.add_argument("--etcd-versions", default=None, help="per node, comma separated (version skew)")
    up.add_argument("--no-tools", default=None, help="cp2,cp3 or all: no etcdctl/etcdutl on those nodes")
    up.add_argument("--member-names", default=None, help="etcd member names, comma separated")
    up.add_argument("--data-dir", default=None, help="hostPath of the etcd-data volume (default /var/lib/etcd)")
    up.add_argument("--client-port", type=int, default=2379)
    up.add_argument("--peer-port", type=int, default=2380)
    up.add_argument("--ssh-port", type=int, default=22)
    up.add_argument("--ip-base", type=int, default=10, help="node N gets loopback address number ip-base+N: "
                    "127.0.0.<ip-base+N>, past 254 127.0.1.x and on (default 10)")
    up.add_argument("--no-wait-apiserver", action="store_true")
    up.add_argument("--topology", choices=lablib.TOPOLOGIES, default="stacked",
                    help="stacked (default: etcd static pods on the control planes) or external (etcd hosts "
                         "etcd1..N apart from the control planes, inventory group etcd)")
    up.add_argument("--etcd-hosts", type=int, default=3, help="external: number of etcd hosts (default 3)")
    up.add_argument("--etcd-style", choices=lablib.ETCD_STYLES, default="static",
                    help="external: how etcd hosts run etcd: static (kubeadm static pod, default), systemd-flags "
                         "(etcd.service, flags in ExecStart, User=etcd), systemd-env (kubespray: /etc/etcd.env)")
    up.add_argument("--etcd-events", action="store_true",
                    help="external, systemd styles: etcd1 also runs etcd-events.service (own cluster, ports 2383/2382)")
    for name, h in (("down", "stop everything and remove the lab dir (idempotent)"),
                    ("inventory", "print the inventory path")):
        s = sub.add_parser(name, help=h)
        s.add_argument("--dir", dest="dir2", default=None)
    s = sub.add_parser("status", help="nodes, daemons, containers, etcd health")
    s.add_argument("--dir", dest="dir2", default=None)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("etcdctl", help="etcdctl of the lab's version with endpoints and certs: etcdctl [--node cpN] -- ARGS "
                       "(external etcd: the etcd hosts; --events: etcd1's etcd-events cluster)")
    s.add_argument("--dir", dest="dir2", default=None)
    s.add_argument("--node", default=None)
    s.add_argument("--events", action="store_true")
    s.add_argument("args", nargs=argparse.REMAINDER)
    s = sub.add_parser("load", help="write Kubernetes-shaped keys")
    s.add_argument("--dir", dest="dir2", default=None)
    s.add_argument("--keys", type=int, required=True)
    s.add_argument("--value-bytes", type=int, default=1024)
    s.add_argument("--threads", type=int, default=4)
    s = sub.add_parser("exec", help="run a command inside a node's namespaces: exec NODE -- CMD")
    s.add_argument("--dir", dest="dir2", default=None)
    s.add_argument("node")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    s = sub.add_parser("ssh", help="ssh into a node: ssh NODE [-- CMD]")
    s.add_argument("--dir", dest="dir2", default=None)
    s.add_argument("node")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    s = sub.add_parser("fault", help="make a static pod fail to start on a node (lab fault, see docs/lab.md)")
    fsub = s.add_subparsers(dest="fault_cmd", required=True)
    f = fsub.add_parser("set", help="every start of the pod's containers fails while the condition holds")
    f.add_argument("--dir", dest="dir2", default=None)
    f.add_argument("--node", required=True)
    f.add_argument("--pod", required=True, help="static pod metadata.name, e.g. etcd, kube-apiserver")
    f.add_argument("--when-manifests-match", default="",
                   help="Python regex searched in the node's manifests (all, concatenated); empty: always")
    f.add_argument("--message", default="lab fault", help="container log line `lab fault: <message>`")
    f = fsub.add_parser("clear", help="remove the fault of one pod (or all faults) of a node")
    f.add_argument("--dir", dest="dir2", default=None)
    f.add_argument("--node", required=True)
    f.add_argument("--pod", default=None)
    a = p.parse_args(argv)
    lab = lablib.Lab(a.dir2 or a.dir, a.cache)

    def rest(x):
        return x[1:] if x and x[0] == "--" else x

    try:
        if a.cmd == "up":
            inv = lab.up(nodes=a.nodes, etcd_version=a.etcd_version, etcd_versions=a.etcd_versions,
                         no_tools=a.no_tools, member_names=a.member_names, data_dir=a.data_dir,
                         client_port=a.client_port, peer_port=a.peer_port, ssh_port=a.ssh_port,
                         ip_base=a.ip_base, wait_apiserver=not a.no_wait_apiserver, topology=a.topology,
                         etcd_hosts=a.etcd_hosts, etcd_style=a.etcd_style, etcd_events=a.etcd_events)
            print(inv)
            return 0
        if a.cmd == "down":
            if os.geteuid() != 0:
                raise lablib.LabError("down needs root")
            if not lab.down():
                print("labctl: nothing up in %s" % lab.dir, file=sys.stderr)
            return 0
        if a.cmd == "inventory":
            print(lab.inventory)
            return 0
        if a.cmd == "status":
            s = lab.status()
            if a.json:
                print(json.dumps(s, indent=2))
            else:
                print("lab %s (%s)  inventory %s" % (s["dir"], s["phase"], s["inventory"]))
                for n in s["nodes"]:
                    if n["etcd_healthy"] is None:   # external etcd: a control plane without a member
                        print("%-5s %-12s control plane%s node=%s sshd=%s kubelet=%s" % (
                            n["host"], n["ip"], " " * 19, ok(n["node"]), ok(n["sshd"]), ok(n["kubelet"])))
                    else:
                        print("%-4s %-12s member=%-10s etcd=%-7s node=%s sshd=%s kubelet=%s etcd_healthy=%s" % (
                            n["host"], n["ip"], n["member_name"], n["etcd_version"], ok(n["node"]), ok(n["sshd"]),
                            ok(n["kubelet"]), n["etcd_healthy"]))
                    for unit, state in sorted(n.get("units", {}).items()):
                        print("       %-30s %s" % (unit, state))
                    if "events_healthy" in n:
                        print("       %-30s events_healthy=%s" % ("etcd-events", n["events_healthy"]))
                    for c in sorted(n["containers"], key=lambda c: c["pod"]):
                        if c["state"] == "running":
                            print("       %-30s %-8s %s attempt=%d" % (c["pod"], c["state"], c["id"], c["attempt"]))
            return 0 if all(n["etcd_healthy"] is not False and n.get("events_healthy", True)
                            for n in s["nodes"]) else 1
        if a.cmd == "etcdctl":
            eps = None
            if a.events:
                if not lab.state.get("etcd_events"):
                    raise lablib.LabError("--events: this lab has no etcd-events unit (up --etcd-events)")
                eps = [lab.state["etcd_events"]["client_url"]]
            argv = lab.etcdctl_argv(a.node, endpoints=eps) + rest(a.args)
            return subprocess.call(argv, env=dict(os.environ, ETCDCTL_API="3"))
        if a.cmd == "load":
            r = lab.load(a.keys, a.value_bytes, threads=a.threads)
            print(json.dumps(r))
            return 0
        if a.cmd == "exec":
            cmd = rest(a.argv) or ["/bin/bash"]
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                   "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb")}
            return subprocess.call(lab.nsenter_argv(a.node) + cmd, env=env)
        if a.cmd == "ssh":
            return subprocess.call(lab.ssh_argv(a.node) + rest(a.argv))
        if a.cmd == "fault" and a.fault_cmd == "set":
            print(lab.set_fault(a.node, a.pod, when_manifests_match=a.when_manifests_match, message=a.message))
            return 0
        if a.cmd == "fault" and a.fault_cmd == "clear":
            for pod in lab.clear_faults(a.node, a.pod):
                print("removed fault of %s on %s" % (pod, a.node))
            return 0
    except lablib.LabError as e:
        print("labctl: error: %s" % e, file=sys.stderr)
        return 2
    except lablib.etcdfetch.FetchError as e:
        print("labctl: error: %s" % e, file=sys.stderr)
        return 2
    return 1


def ok(b):
    return "up" if b else "DOWN"


if __name__ == "__main__":
    sys.exit(main())
