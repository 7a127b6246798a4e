"""crictl stand-in: reads the kubelet stand-in's state file on this node.

Supported (what backup/restore roles call on a real node):
  crictl ps [-a|--all] [--name REGEX] [--state running|exited|created|unknown] [-q|--quiet]
            [-o|--output table|json|yaml] [--no-trunc] [--pod ID] [--id ID] [--label k=v]
  crictl pods [-q] [--name REGEX] [--state ready|notready] [-o json]
  crictl logs [--tail N] [-f is ignored] CONTAINER-ID(prefix)
  crictl inspect ID (minimal json)   crictl stop [-t S] ID...   crictl version
  crictl exec [-i] [-s] [-t] [--timeout S] CONTAINER-ID(prefix) CMD [ARG...]
Not imitated: images, stats, runtime endpoints, exec's filter flags (--name, --pod, ...).

exec, as containerd runs it: only into a running container; the command runs in the container's mount
namespace inside a root of its own that holds the image's files only (the kubelet stand-in records them per
container from its contents table: a Kubernetes-built etcd image has /bin/sh and etcdctl, the official one
etcdctl and etcdutl and no shell), the container's hostPath volumes at their mountPaths, /proc, /dev and the
host's libraries (read-only; the lab's binaries are dynamically linked, a real image brings its own). So a file
the command writes reaches the node only through a hostPath volume, and a command the image lacks fails as with
runc: `exec: "etcdutl": executable file not found in $PATH`. crictl's exit code is 0 or 1: the command's own
exit code shows only in the message (`command terminated with exit code N`; with -s `command '...' exited with N`),
and -s prints the command's stdout, then its stderr, both on stdout (crictl's ExecSync). Containers of other
images (the kube-* stand-ins) have no contents list: exec runs there in the container's mount namespace with the
node's files.
"""
import argparse
import ctypes
import json
import os
import re
import secrets
import subprocess
import sys
import time

from etcdimages import IMAGE_PATH
from standinlib import proc_start

STATE = "/var/lib/kubelet-standin/state.json"


def load():
    try:
        with open(STATE) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return {"pods": {}, "containers": {}}
    for c in st.get("containers", {}).values():
        if c["state"] == "CONTAINER_RUNNING" and proc_start(c["pid"]) != c.get("proc_start"):
            c["state"] = "CONTAINER_EXITED"   # the kubelet notices within 0.5 s; be exact now
    return st


def ago(ns):
    s = max(0, int(time.time() - ns / 1e9))
    if s < 60:
        return "%d seconds ago" % s if s != 1 else "1 second ago"
    if s < 3600:
        return "%d minutes ago" % (s // 60) if s >= 120 else "About a minute ago"
    return "%d hours ago" % (s // 3600) if s >= 7200 else "About an hour ago"


STATES = {"running": "CONTAINER_RUNNING", "exited": "CONTAINER_EXITED", "created": "CONTAINER_CREATED",
          "unknown": "CONTAINER_UNKNOWN"}


def cmd_ps(a):
    st = load()
    cs = list(st["containers"].values())
    if a.state:
        want = STATES.get(a.state.lower())
        if not want:
            sys.exit("FATA[0000] unsupported state: %s" % a.state)
        cs = [c for c in cs if c["state"] == want]
    elif not a.all:
        cs = [c for c in cs if c["state"] == "CONTAINER_RUNNING"]
    if a.name:
        rx = re.compile(a.name)
        cs = [c for c in cs if rx.search(c["name"])]
    if a.pod:
        cs = [c for c in cs if c["pod_id"].startswith(a.pod)]
    if a.id:
        cs = [c for c in cs if c["id"].startswith(a.id)]
    for lab in a.label or []:
        k, dummy, v = lab.partition("=")
        cs = [c for c in cs if labels(c).get(k) == v]
    cs.sort(key=lambda c: c["created"], reverse=True)
    if a.quiet:
        for c in cs:
            print(c["id"])
        return 0
    if a.output in ("json", "yaml"):
        out = {"containers": [{
            "id": c["id"], "podSandboxId": c["pod_id"],
            "metadata": {"name": c["name"], "attempt": c["attempt"]},
            "image": {"image": c["image"], "annotations": {}, "userSpecifiedImage": c["image"]},
            "imageRef": c["image"], "state": c["state"], "createdAt": str(c["created"]),
            "labels": labels(c), "annotations": {"io.kubernetes.container.restartCount": str(c["attempt"])}}
            for c in cs]}
        if a.output == "json":
            print(json.dumps(out, indent=2))
        else:
            import yaml
            print(yaml.safe_dump(out, sort_keys=False), end="")
        return 0
    t = (lambda s: s) if a.no_trunc else (lambda s: s[:13])
    rows = [("CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD")]
    for c in cs:
        rows.append((t(c["id"]), c["image"] if a.no_trunc else c["image"], ago(c["created"]),
                     c["state"].replace("CONTAINER_", "").capitalize(), c["name"], str(c["attempt"]),
                     t(c["pod_id"]), c["pod_name"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    return 0


def labels(c):
    return {"io.kubernetes.container.name": c["name"], "io.kubernetes.pod.name": c["pod_name"],
            "io.kubernetes.pod.namespace": c["pod_namespace"], "io.kubernetes.pod.uid": c["pod_uid"]}


def find(st, prefix):
    m = [c for c in st["containers"].values() if c["id"].startswith(prefix)]
    if not m:
        sys.stderr.write('E0000 rpc error: code = NotFound desc = an error occurred when try to find container '
                         '"%s": not found\n' % prefix)
        sys.exit(1)
    if len(m) > 1:
        sys.exit("FATA[0000] ambiguous container id prefix %s" % prefix)
    return m[0]


def cmd_logs(a):
    c = find(load(), a.id)
    try:
        with open(c["log_path"], "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    if a.tail is not None and a.tail >= 0:
        lines = data.splitlines(True)
        data = b"".join(lines[-a.tail:]) if a.tail else b""
    sys.stdout.buffer.write(data)
    return 0


def cmd_inspect(a):
    st = load()
    out = []
    for i in a.ids:
        c = find(st, i)
        out.append({"status": {"id": c["id"], "metadata": {"name": c["name"], "attempt": c["attempt"]},
                               "state": c["state"], "createdAt": str(c["created"]),
                               "exitCode": c.get("exit_code") or 0, "image": {"image": c["image"]},
                               "labels": labels(c), "logPath": c["log_path"]},
                    "info": {"pid": c["pid"] if c["state"] == "CONTAINER_RUNNING" else 0}})
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
    return 0


def cmd_stop(a):
    """Stop running containers (SIGTERM, SIGKILL after --timeout); the kubelet restarts them."""
    import signal
    st = load()
    for i in a.ids:
        c = find(st, i)
        # the recorded pid is this container's only while its start time matches (pids are reused)
        if c["state"] == "CONTAINER_RUNNING" and proc_start(c["pid"]) == c.get("proc_start"):
            try:
                os.killpg(c["pid"], signal.SIGTERM)
            except OSError:
                pass
            deadline = time.time() + a.timeout
            while time.time() < deadline and proc_start(c["pid"]) == c.get("proc_start"):
                time.sleep(0.05)
            if proc_start(c["pid"]) == c.get("proc_start"):
                try:
                    os.killpg(c["pid"], signal.SIGKILL)
                except OSError:
                    pass
        print(c["id"])
    return 0


NODE_CONFIG = "/var/lib/kubelet-standin/node.json"
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
# the host's libraries stand in for the image's own (read-only)
LIB_DIRS = ("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64")


def fatal(msg):
    sys.stderr.write("FATA[0000] %s\n" % msg)
    sys.stderr.flush()
    return 1


def resolve_in_image(contents, cmd):
    """Path of cmd inside the image, or runc's error text when the image has no such file."""
    if "/" in cmd:
        return (cmd, None) if cmd in contents else (None, "stat %s: no such file or directory" % cmd)
    for d in IMAGE_PATH.split(":"):
        if os.path.join(d, cmd) in contents:
            return os.path.join(d, cmd), None
    return None, "executable file not found in $PATH"


def _enter_container(pid, contents, mounts):
    """preexec_fn: join the container's mount namespace; for an image with a contents list, chroot into a root that
    holds only those files, the volumes, /proc, /dev and the libraries."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret, what):
        if ret != 0:
            e = ctypes.get_errno()
            raise OSError(e, "%s: %s" % (what, os.strerror(e)))

    def mount(src, dst, flags, fstype=None):
        check(libc.mount(src.encode() if src else None, dst.encode(), fstype, flags, None),
              "mount %s on %s" % (src, dst))

    def enter():
        try:
            fd = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY)
            check(libc.setns(fd, CLONE_NEWNS), "setns")
            os.close(fd)
            os.chdir("/")
            if contents is None:
                return
            check(libc.unshare(CLONE_NEWNS), "unshare")
            mount(None, "/", MS_REC | MS_PRIVATE)
            # open every source before the new root hides anything
            sources = [(path, os.open(host, os.O_PATH), False) for path, host in sorted(contents.items())]
            for m in mounts:
                sources.append((m["mount_path"], os.open(m["mount_path"], os.O_PATH), bool(m.get("read_only"))))
            links = []
            for d in LIB_DIRS + ("/dev", "/proc"):
                if os.path.islink(d):
                    links.append((d, os.readlink(d)))
                elif os.path.isdir(d):
                    sources.append((d, os.open(d, os.O_PATH), d in LIB_DIRS))
            root = "/tmp"   # any directory: this mount namespace is the command's alone
            mount("tmpfs", root, 0, b"tmpfs")
            os.mkdir(root + "/tmp", 0o1777)   # images have a /tmp; what lands there stays in the container
            for d, target in links:
                os.symlink(target, root + d)
            for path, fd, read_only in sources:
                dst = root + path
                if os.path.isdir("/proc/self/fd/%d" % fd):
                    os.makedirs(dst, 0o755, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
                    open(dst, "a").close()
                mount("/proc/self/fd/%d" % fd, dst, MS_BIND | MS_REC)
                if read_only:
                    mount(None, dst, MS_REMOUNT | MS_BIND | MS_RDONLY)
                os.close(fd)
            os.chroot(root)
            os.chdir("/")
        except OSError as e:
            sys.stderr.write("FATA[0000] lab: cannot enter container: %s\n" % e)
            sys.stderr.flush()
            raise
    return enter


def cmd_exec(a):
    st = load()
    c = find(st, a.id)
    where = "execing command in container %s%s: " % (c["id"], " synchronously" if a.sync else "")
    if a.tty and not a.interactive:
        return fatal(where + "tty=true must be specified with interactive=true")
    if c["state"] != "CONTAINER_RUNNING":
        return fatal(where + "rpc error: code = Unknown desc = container is in %s state" % c["state"])
    contents = c.get("image_contents")
    argv = list(a.command)
    if contents is not None:
        target, err = resolve_in_image(contents, argv[0])
    else:
        target, err = argv[0], None
    exec_id = secrets.token_hex(32)
    if err is None:
        try:
            with open(NODE_CONFIG) as f:
                lab_dir = json.load(f).get("lab_dir", "")
        except (OSError, ValueError):
            lab_dir = os.environ.get("KUBEOPS_LAB", "")
        env = {"PATH": IMAGE_PATH, "HOSTNAME": os.uname().nodename, "HOME": "/root", "KUBEOPS_LAB": lab_dir}
        if contents is None:
            env["PATH"] = "/usr/local/sbin:" + IMAGE_PATH
        pipe = subprocess.PIPE if a.sync else None
        try:
            p = subprocess.Popen([target] + argv[1:], executable=target, env=env, stdout=pipe, stderr=pipe,
                                 stdin=None if a.interactive else subprocess.DEVNULL, close_fds=True,
                                 preexec_fn=_enter_container(c["pid"], contents, c.get("mounts") or []))
            out, errout = p.communicate(timeout=a.timeout or None)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return fatal(where + "rpc error: code = DeadlineExceeded desc = context deadline exceeded")
        except OSError as e:   # the exec itself failed (a bare name not on PATH, a missing loader, ...)
            err = "executable file not found in $PATH" if "/" not in argv[0] and e.errno == 2 \
                else "%s: %s" % (argv[0], e.strerror)
        except subprocess.SubprocessError as e:
            return fatal(where + "rpc error: code = Unknown desc = %s" % e)
    if err is not None:
        oci = 'failed to exec in container: failed to start exec "%s": OCI runtime exec failed: exec failed: ' \
              'unable to start container process: exec: "%s": %s: unknown' % (exec_id, argv[0], err)
        if a.sync:
            return fatal(where + "rpc error: code = Unknown desc = " + oci)
        return fatal(where + "Internal error occurred: error executing command in container: " + oci)
    if a.sync:
        if rc != 0:
            return fatal(where + "command '%s' exited with %d: %s" % (" ".join(argv), rc,
                                                                      errout.decode(errors="replace")))
        sys.stdout.write(out.decode(errors="replace") + "\n" + errout.decode(errors="replace") + "\n")
        return 0
    if rc != 0:
        return fatal(where + "command terminated with exit code %d" % (rc if rc >= 0 else 128 - rc))
    return 0


def cmd_pods(a):
    st = load()
    pods = list(st["pods"].values())
    if a.name:
        rx = re.compile(a.name)
        pods = [p for p in pods if rx.search(p["name"])]
    if a.quiet:
        for p in pods:
            print(p["id"])
        return 0
    if a.output == "json":
        items = [{"id": p["id"], "metadata": {"name": p["name"], "uid": p["uid"], "namespace": p["namespace"],
                                              "attempt": 0},
                  "state": "SANDBOX_READY", "createdAt": str(p["created"])} for p in pods]
        print(json.dumps({"items": items}, indent=2))
        return 0
    rows = [("POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME")]
    for p in pods:
        rows.append((p["id"][:13], ago(p["created"]), "Ready", p["name"], p["namespace"], "0", "(default)"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    return 0


def main():
    p = argparse.ArgumentParser(prog="crictl")
    p.add_argument("-r", "--runtime-endpoint")
    p.add_argument("-i", "--image-endpoint")
    p.add_argument("-t", "--timeout")
    p.add_argument("-D", "--debug", action="store_true")
    sub = p.add_subparsers(dest="cmd")
    ps = sub.add_parser("ps")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("--name")
    ps.add_argument("--state")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("-o", "--output", default="table")
    ps.add_argument("--no-trunc", action="store_true")
    ps.add_argument("-p", "--pod")
    ps.add_argument("--id")
    ps.add_argument("--label", action="append")
    ps.add_argument("-v", "--verbose", action="store_true")
    lg = sub.add_parser("logs")
    lg.add_argument("--tail", type=int)
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-t", "--timestamps", action="store_true")
    lg.add_argument("id")
    ins = sub.add_parser("inspect")
    ins.add_argument("-o", "--output", default="json")
    ins.add_argument("ids", nargs="+")
    pods = sub.add_parser("pods")
    pods.add_argument("--name")
    pods.add_argument("--state")
    pods.add_argument("-q", "--quiet", action="store_true")
    pods.add_argument("-o", "--output", default="table")
    sp = sub.add_parser("stop")
    sp.add_argument("-t", "--timeout", type=int, default=10)
    sp.add_argument("ids", nargs="+")
    sub.add_parser("version")
    ex = sub.add_parser("exec")
    ex.add_argument("-i", "--interactive", action="store_true")
    ex.add_argument("-s", "--sync", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("--timeout", type=int, default=0)
    ex.add_argument("id")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    if a.cmd == "exec":
        if not a.command:
            sys.stderr.write("crictl exec: CONTAINER-ID and COMMAND are required\n")
            return 1
        if a.command[0] == "--":
            a.command = a.command[1:]
        return cmd_exec(a)
    if a.cmd == "ps":
        return cmd_ps(a)
    if a.cmd == "logs":
        return cmd_logs(a)
    if a.cmd == "inspect":
        return cmd_inspect(a)
    if a.cmd == "stop":
        return cmd_stop(a)
    if a.cmd == "pods":
        return cmd_pods(a)
    if a.cmd == "version":
        print("Version:  0.1.0\nRuntimeName:  kubeops-lab\nRuntimeVersion:  0.1.0\nRuntimeApiVersion:  v1")
        return 0
    p.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
