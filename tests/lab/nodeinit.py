"""Init process of one lab node (runs as `unshare --mount --uts --propagation private nodeinit.py NODE_JSON`).

Inside the fresh mount + UTS namespace it
- sets the hostname (cp1, ...),
- on the etcd hosts of an external-etcd lab, mounts private overlays over /etc and /usr/local/bin (upper dirs in
  the node dir: the node's own /etc/passwd with an etcd user, /etc/systemd/system, /etc/etcd.env, certs, the etcd
  binary), re-binding what was mounted below them,
- bind-mounts the node's private dirs over /etc/kubernetes, /var/lib and /usr/local/sbin
  (the node's bin dir: etcdctl/etcdutl of its version, crictl, systemctl, journalctl stand-ins), the
  systemctl stand-in over /usr/bin/systemctl and a /run/systemd with system/ (when the host
  has them), so Ansible's service_mgr fact says systemd,
- becomes a child subreaper (orphaned containers are re-parented here and reaped),
- starts the node's sshd (-D) and the kubelet stand-in,
- on SIGTERM stops sshd and the kubelet and exits (containers are stopped by `labctl down`).
Everything else of the host filesystem and the host network namespace is shared.
"""
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

MS_BIND = 4096
MS_REC = 16384
PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)


def bind(src, dst):
    if libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "bind %s on %s: %s" % (src, dst, os.strerror(e)))


def submounts(path):
    """Mount points strictly below path (from /proc/self/mountinfo), shallowest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(path.rstrip("/") + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda m: m.count("/"))


def overlay(target, upper, work, stash):
    """A private overlay over target (lower: target itself); mounts below target are bound again on top."""
    below = submounts(target)
    if below:
        os.makedirs(stash, exist_ok=True)
        bind(target, stash)
    opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (target, upper, work)
    if libc.mount(b"overlay", target.encode(), b"overlay", 0, opts.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "overlay on %s: %s" % (target, os.strerror(e)))
    for mp in below:
        if os.path.lexists(mp):
            bind(stash + mp[len(target):], mp)


def record_exit(cfg, pid, status):
    """A container re-parented here (its kubelet was restarted) ended: leave its exit code
    where the kubelet stand-in finds it (<run_dir>/exits/<pid>: "<rc> <time>")."""
    try:
        with open("/var/lib/kubelet-standin/state.json") as f:
            st = json.load(f)
    except (OSError, ValueError):
        return
    if not any(c.get("pid") == pid and c.get("state") == "CONTAINER_RUNNING"
               for c in st.get("containers", {}).values()):
        return
    rc = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    rc = 128 - rc if rc < 0 else rc
    d = os.path.join(cfg["run_dir"], "exits")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, str(pid)), "w") as f:
        f.write("%d %f\n" % (rc, time.time()))


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    log = open(os.path.join(cfg["run_dir"], "init.log"), "a", buffering=1)
    sys.stdout = sys.stderr = log
    socket.sethostname(cfg["hostname"])
    for target, upper, work, stash in cfg.get("overlays", []):
        overlay(target, upper, work, stash)
    for src, dst in cfg["binds"]:
        bind(src, dst)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with open(cfg["init_pidfile"] + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(cfg["init_pidfile"] + ".tmp", cfg["init_pidfile"])

    stop = []
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
    signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
    env = dict(os.environ)
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", cfg["sshd_config"], "-E", cfg["sshd_log"]],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    with open(cfg["kubelet_log"], "ab") as out:
        subprocess.Popen([cfg["python"], os.path.join(cfg["standins"], "kubelet.py"), cfg["kubelet_config"]],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    print("node %s up: sshd pid %d" % (cfg["hostname"], sshd.pid))
    while not stop:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid and pid != sshd.pid:
            record_exit(cfg, pid, status)
        if pid == sshd.pid:
            print("sshd exited; restarting it")
            time.sleep(1)
            sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", cfg["sshd_config"], "-E", cfg["sshd_log"]],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        if pid == 0:
            time.sleep(0.5)
    print("stopping node %s" % cfg["hostname"])
    try:
        sshd.terminate()
        sshd.wait(5)
    except Exception:
        pass


if __name__ == "__main__":
    main()
