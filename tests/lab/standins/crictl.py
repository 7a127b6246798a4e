"""crictl stand-in: reads the kubelet stand-in's state file on this node.

Supported (what backup/restore roles call on a real node):
  crictl ps [-a|--all] [--name REGEX] [--state running|exited|created|unknown] [-q|--quiet]
            [-o|--output table|json|yaml] [--no-trunc] [--pod ID] [--id ID] [--label k=v]
  crictl pods [-q] [--name REGEX] [--state ready|notready] [-o json]
  crictl logs [--tail N] [-f is ignored] CONTAINER-ID(prefix)
  crictl inspect ID (minimal json)   crictl stop [-t S] ID...   crictl version
Not imitated: images, exec, stats, runtime endpoints.
"""
import argparse
import json
import os
import re
import sys
import time

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
        if c["state"] == "CONTAINER_RUNNING":
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
    a = p.parse_args()
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
