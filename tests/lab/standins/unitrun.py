"""Runs one service unit for the systemctl stand-in, as systemd's service manager would (one process per unit).

`unitrun.py RUN_JSON` (started detached by `systemctl start`, inside the node's namespaces): RUN_JSON holds the
unit's loaded definition (see unitfile.parse_service) and where to report.  Each start of the main process reads
the EnvironmentFile=s again (a missing one fails the start unless it has the `-` prefix), builds the environment
(PATH, LANG, the lab marker, USER/LOGNAME/HOME/SHELL of User=, then Environment=, then the files), expands
ExecStart=, and runs it in WorkingDirectory= (default /) as User=/Group= with the user's supplementary groups,
output appended to the unit's log.  Restart=always/on-failure restart it after RestartSec=.  SIGTERM (systemctl
stop): SIGTERM to the process group, SIGKILL after 10 s.  The state (active/activating/failed/inactive, main PID,
exit code) goes to the status file systemctl reads.  Not imitated: Type=notify readiness, cgroups, the journal.

Lab faults (docs/lab.md "Faults"), as for static pods: before each start it reads
/var/lib/kubelet-standin/faults/<unit>.json (e.g. etcd.service.json); when it exists and its when_manifests_match is
empty or re.search()es the unit's loaded files and its environment files (concatenated), the start fails: exit code 1,
`lab fault: <message>` in the unit's log, then Restart= as for any failure.
"""
import grp
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time

import unitfile
from standinlib import proc_start

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FAULTS = "/var/lib/kubelet-standin/faults"
STOP = []


def write_status(path, **kw):
    kw.setdefault("supervisor_pid", os.getpid())
    kw.setdefault("supervisor_start", proc_start(os.getpid()))
    kw["since"] = time.time()
    with open(path + ".tmp", "w") as f:
        json.dump(kw, f)
    os.replace(path + ".tmp", path)


def prepare(svc, marker):
    """(argv, env, cwd, uid, gid, groups) of one start of the unit's main process."""
    env = {"PATH": PATH, "LANG": "C.UTF-8"}
    if marker:
        env["KUBEOPS_LAB"] = marker
    uid = gid = 0
    groups = []
    user = svc.get("user")
    if user and user not in ("root", "0"):
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
        uid, gid = pw.pw_uid, pw.pw_gid
        groups = [g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem]
        env.update(USER=pw.pw_name, LOGNAME=pw.pw_name, HOME=pw.pw_dir, SHELL=pw.pw_shell)
    elif user:
        env.update(USER="root", LOGNAME="root", HOME="/root", SHELL="/bin/sh")
    if svc.get("group"):
        g = svc["group"]
        gid = int(g) if g.isdigit() else grp.getgrnam(g).gr_gid
    for kv in svc.get("environment") or []:
        k, v = kv.split("=", 1)
        env[k] = v
    for spec in svc.get("environment_files") or []:
        optional = spec.startswith("-")
        path = spec[1:] if optional else spec
        try:
            env.update(unitfile.read_env_file(path))
        except OSError as e:
            if not optional:
                raise RuntimeError("Failed to load environment files: %s: %s" % (path, e.strerror))
    if not svc.get("exec_start"):
        raise RuntimeError("Service has no ExecStart= setting")
    argv = unitfile.expand_exec(svc["exec_start"], env)
    return argv, env, svc.get("working_directory") or "/", uid, gid, groups


def fault(cfg):
    """Message of the lab fault on this unit if it applies now, else None."""
    path = os.path.join(FAULTS, cfg["unit"] + ".json")
    try:
        with open(path) as f:
            spec = json.load(f)
        if not isinstance(spec, dict):
            raise ValueError("not a JSON object")
        regex = spec.get("when_manifests_match") or ""
        if regex:
            text = "".join(t for _p, t in cfg.get("sources") or [])
            for e in cfg["service"].get("environment_files") or []:
                try:
                    with open(e.lstrip("-")) as f:
                        text += f.read()
                except OSError:
                    pass
            if not re.search(regex, text):
                return None
        return str(spec.get("message") or "lab fault")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, re.error) as e:
        return "unusable fault file %s: %s" % (path, e)


def run_once(cfg, log):
    svc = cfg["service"]
    try:
        argv, env, cwd, uid, gid, groups = prepare(svc, cfg.get("marker"))
    except (KeyError, RuntimeError, ValueError) as e:
        log.write("%s: %s\n" % (cfg["unit"], e))
        return None
    message = fault(cfg)
    if message is not None:
        log.write("%s lab fault: %s\n" % (cfg["unit"], message))
        return 1

    def drop():
        if uid or gid:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)

    log.write("%s Started %s: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), cfg["unit"], " ".join(argv)))
    log.flush()
    try:
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, preexec_fn=drop, start_new_session=True)
    except OSError as e:
        log.write("%s: Failed at step EXEC spawning %s: %s\n" % (cfg["unit"], argv[0], e.strerror))
        return None
    write_status(cfg["status_path"], state="active", sub="running", main_pid=child.pid,
                 main_start=proc_start(child.pid), exit_code=None)
    while child.poll() is None and not STOP:
        time.sleep(0.1)
    if STOP:
        stop_child(child)
        return "stopped"
    return child.returncode


def stop_child(child):
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except OSError:
            pass
        deadline = time.time() + wait
        while time.time() < deadline and child.poll() is None:
            time.sleep(0.05)
        if child.poll() is not None:
            return


def main(run_json):
    with open(run_json) as f:
        cfg = json.load(f)
    signal.signal(signal.SIGTERM, lambda s, f: STOP.append(s))
    signal.signal(signal.SIGINT, lambda s, f: STOP.append(s))
    status = cfg["status_path"]
    log = open(cfg["log"], "a", buffering=1)
    svc = cfg["service"]
    while True:
        rc = run_once(cfg, log)
        if rc == "stopped" or STOP:
            log.write("%s Stopped %s.\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), cfg["unit"]))
            write_status(status, state="inactive", sub="dead", main_pid=0, exit_code=None)
            return 0
        failed = rc is None or rc != 0
        log.write("%s %s: main process exited, status=%s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), cfg["unit"],
                                                               "?" if rc is None else rc))
        restart = svc.get("restart", "no")
        if restart == "always" or (restart in ("on-failure", "on-abnormal") and failed):
            write_status(status, state="activating", sub="auto-restart", main_pid=0, exit_code=rc)
            deadline = time.time() + max(0.1, float(svc.get("restart_sec") or 0.1))
            while time.time() < deadline and not STOP:
                time.sleep(0.05)
            if STOP:
                write_status(status, state="inactive", sub="dead", main_pid=0, exit_code=rc)
                return 0
            continue
        write_status(status, state="failed" if failed else "inactive", sub="failed" if failed else "dead",
                     main_pid=0, exit_code=rc)
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
