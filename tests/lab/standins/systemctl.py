"""systemctl stand-in of a lab node: the kubelet unit, and on external-etcd hosts service units from unit files.

  systemctl start|stop|restart|is-active|is-enabled|status|show [-p P --value] kubelet[.service]
  systemctl daemon-reload, systemctl --version
`stop` ends the kubelet stand-in only; its containers keep running (as with the real
kubelet).  `start` runs a new kubelet stand-in detached inside this node's namespaces;
it re-adopts the running containers.

On a node whose node.json says `"units": true` (the etcd hosts of an external-etcd lab, whose /etc is a private
overlay) every other unit is a service unit read from /etc/systemd/system or /run/systemd/system with its drop-ins
(unitfile.py says what is read) and run by unitrun.py:
  start|stop|restart|try-restart|reload-or-restart|is-active|is-failed|is-enabled|enable [--now]|disable [--now]|
  status|show [-p P,...] [--value]|cat|list-unit-files [PATTERN]|list-units [PATTERN] [--all]|daemon-reload|reset-failed
As in systemd, a unit is loaded when first used and `daemon-reload` re-reads every unit: until then a changed unit
file or drop-in changes nothing (start/restart run the loaded definition, `show` says NeedDaemonReload=yes, and
start/restart/cat warn).  EnvironmentFile=s are read at each start.  State in /var/lib/systemd-standin
(loaded.json, run/<unit>.json, logs/<unit>.log - there is no journal).  Elsewhere other units are not found
(rc 5; is-active prints `inactive`, rc 3).
"""
import fcntl
import fnmatch
import json
import os
import signal
import subprocess
import sys
import time

import unitfile
from standinlib import proc_start

CONFIG = "/var/lib/kubelet-standin/node.json"
UNITS_STATE = "/var/lib/systemd-standin"
WANTS = "/etc/systemd/system/multi-user.target.wants"
RELOAD_WARNING = ("Warning: The unit file, source configuration file or drop-ins of %s changed on disk. "
                  "Run 'systemctl daemon-reload' to reload units.\n")


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
    want = wanted(argv)
    value_only = "--value" in argv
    for k, v in props:
        if not want or k in want:
            print(v if value_only else "%s=%s" % (k, v))
    return 0


# ---- service units (external-etcd hosts) ------------------------------------------------------------------------
def unit_name(u):
    return u if "." in u else u + ".service"


class Units:
    """The loaded unit definitions of this node (what systemd keeps in memory until daemon-reload)."""

    def __init__(self, c):
        self.c = c
        os.makedirs(os.path.join(UNITS_STATE, "run"), exist_ok=True)
        os.makedirs(os.path.join(UNITS_STATE, "logs"), exist_ok=True)
        self.lock_fd = os.open(os.path.join(UNITS_STATE, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            with open(os.path.join(UNITS_STATE, "loaded.json")) as f:
                self.loaded = json.load(f)
        except (OSError, ValueError):
            self.loaded = {}

    def save(self):
        p = os.path.join(UNITS_STATE, "loaded.json")
        with open(p + ".tmp", "w") as f:
            json.dump(self.loaded, f, indent=1)
        os.replace(p + ".tmp", p)

    @staticmethod
    def read_from_disk(unit):
        fragment, dropins = unitfile.unit_files(unit)
        if not fragment:
            return None
        sources = []
        for path in [fragment] + dropins:
            with open(path) as f:
                sources.append([path, f.read()])
        return {"fragment": fragment, "dropins": dropins, "sources": sources,
                "service": unitfile.parse_service(sources)}

    def get(self, unit):
        """Loaded definition (loading it on first use, as systemd does); None: not found."""
        if unit not in self.loaded:
            d = self.read_from_disk(unit)
            if d is None:
                return None
            self.loaded[unit] = d
            self.save()
        return self.loaded[unit]

    def daemon_reload(self):
        names = set(self.loaded)
        for d in unitfile.UNIT_DIRS:
            try:
                names |= {e for e in os.listdir(d) if e.endswith(".service") and os.path.isfile(os.path.join(d, e))}
            except OSError:
                pass
        new = {}
        for u in sorted(names):
            d = self.read_from_disk(u)
            if d is not None:
                new[u] = d
        self.loaded = new
        self.save()

    def need_reload(self, unit):
        d = self.loaded.get(unit)
        if d is None:
            return False
        fresh = self.read_from_disk(unit)
        return fresh is None or fresh["sources"] != d["sources"]

    def warn_if_changed(self, unit):
        if self.need_reload(unit):
            sys.stderr.write(RELOAD_WARNING % unit)

    # -- runtime state --
    def status(self, unit):
        """{"state", "sub", "main_pid", "exit_code"}: from unitrun's status file, checked against /proc."""
        try:
            with open(os.path.join(UNITS_STATE, "run", unit + ".json")) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return {"state": "inactive", "sub": "dead", "main_pid": 0, "exit_code": None, "supervisor_pid": 0}
        sup = st.get("supervisor_pid") or 0
        if not (sup and proc_start(sup) == st.get("supervisor_start")):
            st["supervisor_pid"] = 0
            if st.get("state") in ("active", "activating"):
                st.update(state="failed", sub="failed", main_pid=0)
        return st

    def start(self, unit):
        d = self.get(unit)
        if d is None:
            sys.stderr.write("Failed to start %s: Unit %s not found.\n" % (unit, unit))
            return 5
        self.warn_if_changed(unit)
        if self.status(unit)["state"] in ("active", "activating"):
            return 0
        run_json = os.path.join(UNITS_STATE, "run", unit + ".start.json")
        status_path = os.path.join(UNITS_STATE, "run", unit + ".json")
        with open(run_json + ".tmp", "w") as f:
            json.dump({"unit": unit, "service": d["service"], "sources": d["sources"], "status_path": status_path,
                       "log": os.path.join(UNITS_STATE, "logs", unit[:-len(".service")] + ".log"),
                       "marker": self.c["lab_dir"]}, f)
        os.replace(run_json + ".tmp", run_json)
        try:
            os.unlink(status_path)
        except OSError:
            pass
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "KUBEOPS_LAB": self.c["lab_dir"], "LANG": "C.UTF-8"}
        p = subprocess.Popen([self.c["python"], os.path.join(self.c["standins"], "unitrun.py"), run_json],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                             cwd="/", start_new_session=True, close_fds=True)
        for dummy in range(200):
            st = self.status(unit)
            if st.get("supervisor_pid") == p.pid or st["state"] == "failed":
                break
            time.sleep(0.025)
        if st["state"] == "failed" or st.get("sub") == "auto-restart":
            sys.stderr.write('Job for %s failed because the control process exited with error code.\n'
                             'See "systemctl status %s" and %s for details.\n'
                             % (unit, unit, os.path.join(UNITS_STATE, "logs", unit[:-len(".service")] + ".log")))
            return 1
        return 0

    def stop(self, unit):
        if unit not in self.loaded and unitfile.unit_files(unit)[0] is None:
            sys.stderr.write("Failed to stop %s: Unit %s not loaded.\n" % (unit, unit))
            return 5
        st = self.status(unit)
        sup = st.get("supervisor_pid")
        if not sup:
            return 0
        os.kill(sup, signal.SIGTERM)
        for dummy in range(400):
            if proc_start(sup) is None:
                break
            time.sleep(0.05)
        return 0

    def enabled(self, unit):
        return os.path.lexists(os.path.join(WANTS, unit))

    def enable(self, unit, on):
        d = self.get(unit)
        if d is None:
            sys.stderr.write("Failed to enable unit: Unit file %s does not exist.\n" % unit)
            return 1
        link = os.path.join(WANTS, unit)
        if on and not os.path.lexists(link):
            os.makedirs(WANTS, exist_ok=True)
            os.symlink(d["fragment"], link)
            sys.stderr.write("Created symlink %s -> %s.\n" % (link, d["fragment"]))
        elif not on and os.path.lexists(link):
            os.unlink(link)
            sys.stderr.write("Removed \"%s\".\n" % link)
        return 0

    def cat(self, unit):
        d = self.get(unit)
        if d is None:
            sys.stderr.write("No files found for %s.\n" % unit)
            return 1
        self.warn_if_changed(unit)
        out = []
        for path in [d["fragment"]] + d["dropins"]:
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                continue
            out.append("%s# %s\n%s" % ("\n" if out else "", path, text))
        sys.stdout.write("".join(out))
        return 0

    def properties(self, unit):
        d = self.get(unit)
        st = self.status(unit)
        svc = d["service"] if d else {}
        pid = st.get("main_pid") or 0
        exec_start = ""
        if svc.get("exec_start"):
            words = svc["exec_start"]
            exec_start = "{ path=%s ; argv[]=%s ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; " \
                         "pid=%d ; code=(null) ; status=0/0 }" % (words[0], " ".join(words), pid)
        env = " ".join(('"%s"' % kv) if " " in kv else kv for kv in svc.get("environment") or [])
        env_files = " ".join("%s (ignore_errors=%s)" % (e.lstrip("-"), "yes" if e.startswith("-") else "no")
                             for e in svc.get("environment_files") or [])
        return [("Type", svc.get("type", "simple")), ("Restart", svc.get("restart", "no")),
                ("MainPID", str(pid)), ("ExecMainPID", str(pid)),
                ("ExecMainStatus", str(st.get("exit_code") or 0)), ("ExecStart", exec_start),
                ("Id", unit), ("Names", unit), ("Description", svc.get("description") or unit),
                ("LoadState", "loaded" if d else "not-found"), ("ActiveState", st["state"]),
                ("SubState", st["sub"]), ("FragmentPath", d["fragment"] if d else ""),
                ("DropInPaths", " ".join(d["dropins"]) if d else ""),
                ("UnitFileState", ("enabled" if self.enabled(unit) else "disabled") if d else ""),
                ("User", svc.get("user") or ""), ("Group", svc.get("group") or ""),
                ("WorkingDirectory", svc.get("working_directory") or ""),
                ("Environment", env), ("EnvironmentFiles", env_files),
                ("NeedDaemonReload", "yes" if self.need_reload(unit) else "no"),
                ("Result", "exit-code" if st["state"] == "failed" else "success")]

    def print_status(self, unit):
        d = self.get(unit)
        if d is None:
            sys.stderr.write("Unit %s could not be found.\n" % unit)
            return 4
        st = self.status(unit)
        svc = d["service"]
        print("* %s - %s" % (unit, svc.get("description") or unit))
        print("     Loaded: loaded (%s; %s)" % (d["fragment"], "enabled" if self.enabled(unit) else "disabled"))
        if d["dropins"]:
            print("    Drop-In: %s" % "\n             ".join(d["dropins"]))
        print("     Active: %s (%s)" % (st["state"], st["sub"]))
        if st.get("main_pid"):
            print("   Main PID: %d (%s)" % (st["main_pid"], os.path.basename(svc["exec_start"][0])))
        return 0 if st["state"] == "active" else 3


def units_main(c, verb, units, argv, quiet):
    us = Units(c)
    if verb in ("daemon-reload", "daemon-reexec"):
        us.daemon_reload()
        return 0
    if verb == "reset-failed":
        return 0
    if verb == "list-unit-files":
        pats = units or ["*"]
        names = set()
        for d in unitfile.UNIT_DIRS:
            try:
                names |= {e for e in os.listdir(d) if e.endswith(".service")}
            except OSError:
                pass
        rows = [n for n in sorted(names) if any(fnmatch.fnmatch(n, unit_name(p)) or fnmatch.fnmatch(n, p)
                                                for p in pats)]
        print("UNIT FILE%s STATE" % (" " * 20))
        for n in rows:
            print("%-29s %s" % (n, "enabled" if us.enabled(n) else "disabled"))
        print("\n%d unit files listed." % len(rows))
        return 0 if rows else 1
    if verb == "list-units":
        names = set(us.loaded) | {"kubelet.service"}
        rows = []
        for n in sorted(names):
            if units and not any(fnmatch.fnmatch(n, unit_name(p)) or fnmatch.fnmatch(n, p) for p in units):
                continue
            if n == "kubelet.service":
                active = bool(kubelet_pid(c))
                rows.append((n, "loaded", "active" if active else "inactive", "running" if active else "dead",
                             "kubelet: The Kubernetes Node Agent"))
                continue
            st = us.status(n)
            if st["state"] == "inactive" and "--all" not in argv and "-a" not in argv:
                continue
            rows.append((n, "loaded", st["state"], st["sub"], us.loaded[n]["service"].get("description") or n))
        legend = "--no-legend" not in argv
        if legend:
            print("  %-28s %-6s %-8s %-8s %s" % ("UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"))
        for r in rows:
            print("%s%-28s %-6s %-8s %-8s %s" % (("" if "--plain" in argv else "  ",) + r))
        if legend:
            print("\n%d loaded units listed." % len(rows))
        return 0
    rc = 0
    now = "--now" in argv
    for u in units:
        u = unit_name(u)
        if verb == "start":
            rc = max(rc, us.start(u))
        elif verb == "stop":
            rc = max(rc, us.stop(u))
        elif verb in ("restart", "try-restart", "reload-or-restart", "reload"):
            if verb == "try-restart" and us.status(u)["state"] != "active":
                continue
            us.stop(u)
            rc = max(rc, us.start(u))
        elif verb in ("enable", "disable"):
            rc = max(rc, us.enable(u, verb == "enable"))
            if now and rc == 0:
                rc = max(rc, us.start(u) if verb == "enable" else us.stop(u))
        elif verb in ("is-active", "is-failed"):
            state = us.status(u)["state"] if us.get(u) else "inactive"
            if not quiet:
                print(state)
            good = state == ("active" if verb == "is-active" else "failed")
            rc = rc or (0 if good else (3 if verb == "is-active" else 1))
        elif verb == "is-enabled":
            if us.get(u) is None:
                sys.stderr.write("Failed to get unit file state for %s: No such file or directory\n" % u)
                rc = 1
                continue
            on = us.enabled(u)
            if not quiet:
                print("enabled" if on else "disabled")
            rc = rc or (0 if on else 1)
        elif verb == "cat":
            rc = max(rc, us.cat(u))
        elif verb == "show":
            show_props(us.properties(u), argv)
        elif verb == "status":
            rc = max(rc, us.print_status(u))
        else:
            sys.stderr.write("systemctl stand-in: unsupported verb %s\n" % verb)
            rc = 1
    return rc


def wanted(argv):
    want = []
    for i, a in enumerate(argv):
        if a in ("-p", "--property") and i + 1 < len(argv):
            want += argv[i + 1].split(",")
        elif a.startswith("--property="):
            want += a.split("=", 1)[1].split(",")
        elif a.startswith("-p") and len(a) > 2:
            want += a[2:].split(",")
    return want


def show_props(props, argv):
    want = wanted(argv)
    value_only = "--value" in argv
    for k, v in props:
        if not want or k in want:
            print(v if value_only else "%s=%s" % (k, v))


def main(argv):
    if "--version" in argv:
        print("systemd 252 (252.0-kubeops-lab-standin)")
        return 0
    skip_next = {"-p", "--property", "-t", "--type", "--state"}
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
    c = cfg()
    if c.get("units"):
        others = [a for a in args[1:] if a not in ("kubelet", "kubelet.service")]
        if others or verb in ("daemon-reload", "daemon-reexec", "list-unit-files", "list-units"):
            rc = 0
            if len(others) < len(args) - 1:   # kubelet named as well: its own code below
                rc = main([a for a in argv if a not in others])
            return max(rc, units_main(c, verb, others, argv, quiet))
    if verb in ("daemon-reload", "daemon-reexec", "reset-failed"):
        return 0
    if not units:
        sys.stderr.write("Too few arguments.\n")
        return 1
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
