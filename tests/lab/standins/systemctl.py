"""systemctl stand-in for the kubelet unit of a lab node.

  systemctl start|stop|restart|is-active|is-enabled|status|show [-p P --value] kubelet[.service]
  systemctl daemon-reload, systemctl --version
`stop` ends the kubelet stand-in only; its containers keep running (as with the real
kubelet).  `start` runs a new kubelet stand-in detached inside this node's namespaces;
it re-adopts the running containers.  Other units: "not found" (rc 5; is-active rc 3).
"""
import json
import os
import signal
import subprocess
import sys
import time

CONFIG = "/var/lib/kubelet-standin/node.json"


def cfg():
    with open(CONFIG) as f:
        return json.load(f)


def kubelet_pid(c):
    try:
        with open(c["kubelet_pidfile"]) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if b"kubelet.py" not in f.read():
                return None
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return None
        return pid
    except (OSError, ValueError):
        return None


def start(c):
    if kubelet_pid(c):
        return 0
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "KUBEOPS_LAB": c["lab_dir"], "KUBEOPS_LAB_NODE": c["node"], "LANG": "C.UTF-8"}
    out = open(c["kubelet_log"], "ab")
    # double fork via setsid so the kubelet does not belong to this (ssh) session
    subprocess.Popen([c["python"], os.path.join(c["standins"], "kubelet.py"), CONFIG],
                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd="/",
                     start_new_session=True, close_fds=True)
    for dummy in range(100):
        if kubelet_pid(c):
            return 0
        time.sleep(0.05)
    sys.stderr.write("Job for kubelet.service failed.\n")
    return 1


def stop(c):
    pid = kubelet_pid(c)
    if not pid:
        return 0
    os.kill(pid, signal.SIGTERM)
    for dummy in range(200):
        if not kubelet_pid(c):
            return 0
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    return 0


def show(c, unit, argv):
    pid = kubelet_pid(c) if unit == "kubelet" else None
    known = unit == "kubelet"
    props = [("Id", unit + ".service"), ("Names", unit + ".service"),
             ("Description", "kubelet: The Kubernetes Node Agent" if known else unit + ".service"),
             ("LoadState", "loaded" if known else "not-found"),
             ("ActiveState", "active" if pid else "inactive"), ("SubState", "running" if pid else "dead"),
             ("UnitFileState", "enabled" if known else ""), ("MainPID", str(pid or 0)),
             ("ExecMainPID", str(pid or 0)), ("FragmentPath", "/lib/systemd/system/kubelet.service" if known else "")]
    want = []
    for i, a in enumerate(argv):
        if a in ("-p", "--property") and i + 1 < len(argv):
            want += argv[i + 1].split(",")
        elif a.startswith("--property="):
            want += a.split("=", 1)[1].split(",")
        elif a.startswith("-p") and len(a) > 2:
            want += a[2:].split(",")
    value_only = "--value" in argv
    for k, v in props:
        if not want or k in want:
            print(v if value_only else "%s=%s" % (k, v))
    return 0


def main(argv):
    if "--version" in argv:
        print("systemd 252 (252.0-kubeops-lab-standin)")
        return 0
    skip_next = {"-p", "--property"}
    args = []
    it = iter(argv)
    for a in it:
        if a in skip_next:
            next(it, None)
        elif not a.startswith("-"):
            args.append(a)
    quiet = "-q" in argv or "--quiet" in argv
    if not args:
        sys.stderr.write("systemctl stand-in: command required\n")
        return 1
    verb, units = args[0], [u[:-8] if u.endswith(".service") else u for u in args[1:]]
    if verb in ("daemon-reload", "daemon-reexec", "reset-failed"):
        return 0
    if not units:
        sys.stderr.write("Too few arguments.\n")
        return 1
    c = cfg()
    rc = 0
    if verb == "show":
        for u in units:
            show(c, u, argv)
        return 0
    for u in units:
        if u != "kubelet":
            if verb == "is-active":
                if not quiet:
                    print("inactive")
                rc = 3
                continue
            sys.stderr.write("Failed to %s %s.service: Unit %s.service not found.\n" % (verb, u, u))
            rc = 5
            continue
        if verb == "start":
            rc |= start(c)
        elif verb == "stop":
            rc |= stop(c)
        elif verb in ("restart", "try-restart", "reload-or-restart"):
            stop(c)
            rc |= start(c)
        elif verb in ("enable", "disable"):
            pass
        elif verb == "is-active":
            active = bool(kubelet_pid(c))
            if not quiet:
                print("active" if active else "inactive")
            rc = rc or (0 if active else 3)
        elif verb == "is-enabled":
            print("enabled")
        elif verb == "status":
            pid = kubelet_pid(c)
            print("* kubelet.service - kubelet: The Kubernetes Node Agent (kubeops lab stand-in)")
            print("     Loaded: loaded (/lib/systemd/system/kubelet.service; enabled)")
            print("     Active: %s" % ("active (running)" if pid else "inactive (dead)"))
            if pid:
                print("   Main PID: %d (kubelet)" % pid)
            rc = rc or (0 if pid else 3)
        else:
            sys.stderr.write("systemctl stand-in: unsupported verb %s\n" % verb)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
