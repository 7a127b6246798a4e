"""Helpers of the fault suite: run restore.yml in the background and act on it from outside, at a moment observed
on the nodes (the files of the run's dir, held manifests, running containers), the way an operator's bad night goes:
Ctrl-C or a killed ansible-playbook, a port taken, a hung etcd, a disk filling up. Nothing here reaches into the
roles: every fault is a signal, a socket, a mount or a lab kubelet fault."""

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.join(os.path.dirname(HERE), "playbooks") not in sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "playbooks"))

import pbhelpers as h  # noqa: E402  (tests/integration/playbooks)
from pbrun import BIN_DIR, REPO_ROOT, ansible_env  # noqa: E402

ABORT_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "restore_abort.yml")
PRUNE_PLAYBOOK = os.path.join(REPO_ROOT, "playbooks", "prune.yml")
REFUSED_TASK = "Refuse the restore; the cluster kept serving"
PRUNE_LIST_TASK = "List what restores and backups left on every control plane, and remove what was named"


def runs(lab, host):
    """The run dirs of a node (the runs dir as the host sees it)."""
    return set(h.listdir(lab, host, h.RUNS_DIR) or [])


def journal(lab, host, run):
    with open(lab.node_path(host, os.path.join(h.RUNS_DIR, run, "journal.json"))) as handle:
        return json.load(handle)


def run_path(lab, host, run, name):
    return lab.node_path(host, os.path.join(h.RUNS_DIR, run, name))


def new_runs(lab, before):
    """{host: the one run dir that appeared since `before` ({host: runs}), or None}."""
    found = {}
    for host in h.hosts(lab):
        fresh = sorted(runs(lab, host) - before[host])
        found[host] = fresh[-1] if fresh else None
    return found


def swapped(lab, before, host):
    """Whether the prepared etcd.yaml of the new run was swapped in on host (its original moved to replaced/)."""
    run = new_runs(lab, before)[host]
    return bool(run) and os.path.exists(run_path(lab, host, run, "replaced/etcd.yaml"))


def held(lab, host):
    return set(h.listdir(lab, host, h.HOLDING_DIR) or [])


def first_line(message):
    """What the operator reads first: the message's first line, up to where a rollback message goes on to say
    what was rolled back (that part is one long line)."""
    line = message.splitlines()[0] if message else ""
    return line.split(" ROLLED BACK", 1)[0]


def failure_messages(run):
    return [r["result"].get("msg", "") for r in run.failed() if r["result"].get("msg")]


class Background(object):
    """restore.yml (or any playbook) running in its own process group, its output in a log file."""

    def __init__(self, lab, tmp_path, extra_vars, playbook=h.RESTORE_PLAYBOOK, name="run"):
        self.log_path = str(tmp_path / ("%s.log" % name))
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN_DIR, "ansible-playbook"), "-i", lab.inventory, playbook, "-e", json.dumps(extra_vars)],
            cwd=REPO_ROOT, env=ansible_env(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        with open(self.log_path) as handle:
            return handle.read()

    def wait_until(self, predicate, timeout, what):
        deadline = time.time() + timeout
        while not predicate():
            assert self.proc.poll() is None, "the play ended before %s:\n%s" % (what, self.output()[-6000:])
            assert time.time() < deadline, "never reached %s:\n%s" % (what, self.output()[-6000:])
            time.sleep(0.05)

    def interrupt(self, sig, timeout=120):
        """Send sig to the whole process group (Ctrl-C sends SIGINT to the foreground group), then wait for exit."""
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("ansible-playbook did not exit within %d s of %s:\n%s"
                                 % (timeout, sig, self.output()[-6000:]))
        finally:
            self._log.close()
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


class Watcher(threading.Thread):
    """Runs action() once predicate() holds (polled every 20 ms) while the play runs; stop() ends the watch."""

    def __init__(self, predicate, action, timeout=600):
        threading.Thread.__init__(self, daemon=True)
        self.predicate, self.action, self.timeout = predicate, action, timeout
        self.done = threading.Event()
        self.fired = False
        self.error = None

    def run(self):
        deadline = time.time() + self.timeout
        while not self.done.is_set() and time.time() < deadline:
            try:
                if self.predicate():
                    self.action()
                    self.fired = True
                    return
            except Exception as exc:  # reported by stop()
                self.error = exc
                return
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.join()
        if self.error is not None:
            raise self.error


def leader_host(lab):
    for entry in h.endpoint_status(lab):
        if entry["Status"]["leader"] == entry["Status"]["header"]["member_id"]:
            return [x for x in h.hosts(lab) if lab.node(x)["client_url"] == entry["Endpoint"]][0]
    raise AssertionError("no leader")


def etcd_pid(lab, host):
    """The pid of the etcd process that serves host's client URL, checked in /proc (never 0, never another process)."""
    url = "--listen-client-urls=" + lab.node(host)["client_url"]
    deadline = time.time() + 30
    while time.time() < deadline:
        pid = h.container_pid(lab, host, "etcd")
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except (OSError, ValueError):
            argv = []
        if pid > 1 and os.path.basename(argv[0]) == "etcd" and url in argv:
            return pid
        time.sleep(0.05)
    raise AssertionError("no etcd process of %s found" % host)


def freeze(pids):
    """SIGSTOP: etcd hangs the way a process stuck on a dead disk does; the container still counts as running."""
    for pid in pids:
        assert pid > 1, pid
        os.kill(pid, signal.SIGSTOP)


def thaw(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass


def cluster_ids(lab, hosts):
    """{host: cluster id hex} of the members that answer on those hosts."""
    endpoints = [lab.node(host)["client_url"] for host in hosts]
    proc = lab.etcdctl("endpoint", "status", "-w", "json", endpoints=endpoints, check=False)
    found = {}
    for entry in json.loads(proc.stdout or "[]"):
        host = [x for x in hosts if lab.node(x)["client_url"] == entry["Endpoint"]][0]
        found[host] = format(entry["Status"]["header"]["cluster_id"], "x")
    return found


def take_port(ip, port):
    """Bind and listen on ip:port from the test process (the lab nodes share the host network namespace).
    The socket, or None while the port is still taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As etcd (Go) does: connections of the stopped etcd in TIME_WAIT do not keep the port; a listener does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
        sock.listen(1)
    except OSError:
        sock.close()
        return None
    return sock


def port_taker(ip, port):
    """(take, taken): a Watcher check that binds ip:port as soon as it is free, as another process on the node would,
    and keeps the socket in ``taken`` until the test closes it."""
    taken = []

    def take():
        sock = take_port(ip, port)
        if sock is not None:
            taken.append(sock)
        return bool(taken)
    return take, taken


def etcd_address(lab, host, which="client"):
    """(ip, port) of a node's etcd client or peer URL."""
    url = lab.node(host)["%s_url" % which]
    ip, port = url.split("//", 1)[1].rsplit(":", 1)
    return ip, int(port)


def final_message(run):
    """The message the failed play ends with: the rollback's (complete or not), or the refusal's."""
    for task in (h.ROLLED_BACK_TASK, REFUSED_TASK):
        found = run.task_results(task, "cp1")
        if found and found[-1]["result"].get("msg"):
            return found[-1]["result"]["msg"]
    return " | ".join(failure_messages(run))


def mount_tmpfs(lab, host, path, size):
    """A small filesystem mounted at path inside the node's mount namespace (only the node sees it)."""
    os.makedirs(lab.node_path(host, path), mode=0o700, exist_ok=True)
    lab.exec(host, ["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path], check=True)


def umount(lab, host, path):
    lab.exec(host, ["umount", path], check=True)


def fill(lab, host, directory):
    """Fill the filesystem of directory (as the node sees it) to the last byte with a dot file (the kubelet and
    the collection ignore dot files)."""
    filler = directory + "/.kubeops-test-filler"
    proc = lab.exec(host, ["dd", "if=/dev/zero", "of=" + filler, "bs=4096"])
    assert "No space left on device" in proc.stderr, proc.stderr
    return filler


def node_listing(lab, host, directory):
    """ls -A of a directory as the node sees it (a mount of the node's own is not visible from the host)."""
    return sorted(lab.exec(host, ["ls", "-A", directory], check=True).stdout.split())


STATIC_POD_LOCK = os.path.join(os.path.dirname(h.HOLDING_DIR), ".static_pod.lock")


def hold_static_pod_locks(lab):
    """Take every node's static_pod lock (beside the holding dir), as another static_pod run holds it: a restore's
    stop step then waits on every node with nothing moved. The open descriptors, for release_locks."""
    fds = []
    for host in h.hosts(lab):
        path = lab.node_path(host, STATIC_POD_LOCK)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("%d\n" % os.getpid()).encode("ascii"), 0)
        fds.append(fd)
    return fds


def release_locks(fds):
    for fd in fds:
        os.close(fd)


def mount_namespace(lab, host):
    return lab.exec(host, ["readlink", "/proc/self/ns/mnt"], check=True).stdout.strip()


def lock_waiters(namespace):
    """The processes of a node (its mount namespace: the labs share one pid namespace) that have its static_pod
    lock open: static_pod modules holding it or waiting for it."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/mnt" % pid) != namespace:
                continue
            fds = os.listdir("/proc/%s/fd" % pid)
            if any(os.readlink("/proc/%s/fd/%s" % (pid, fd)) == STATIC_POD_LOCK for fd in fds):
                pids.append(int(pid))
        except OSError:
            continue
    return pids
