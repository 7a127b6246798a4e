"""kubelet stand-in: static pods only.

Imitates the parts of the kubelet that etcd backup/restore tooling touches:
- watches the static pod dir (/etc/kubernetes/manifests: its mtime every 0.05 s, as quick as the
  kubelet's inotify watch; a full sync every 0.5 s) and
  loads *every* regular file whose name does not start with a dot (so a stray
  `etcd.yaml.bak` is a pod of its own, as with the real kubelet); a pod is identified by
  its file path and content (the kubelet's static pod UID), and of two files with the
  same namespace/name only the first (file name order) runs - the kubelet drops duplicate
  pod full names: with `etcd.yaml` moved away, a left-over `etcd.yaml.bak` takes over;
- pod name = metadata.name + "-" + node name (`etcd-cp1`);
- runs each container (command + args) with hostNetwork, its hostPath volumes
  bind-mounted at their mountPaths in a private mount namespace (podrun.py);
  `DirectoryOrCreate` creates a missing host dir 0755, `FileOrCreate` an empty file;
- stops a pod whose manifest disappeared (SIGTERM, SIGKILL after a grace period),
  recreates a pod whose manifest content changed;
- restarts crashed containers with back-off 1, 2, 4, 8, 10 s (real: 10 s .. 5 min),
  every restart is a new container ID with attempt+1;
- keeps a container log per container under /var/lib/kubelet-standin/logs and a
  state file /var/lib/kubelet-standin/state.json that the crictl stand-in reads;
- containers survive a kubelet restart (`systemctl restart kubelet`): the new
  kubelet re-adopts them from the state file (pid + process start time);
- lab faults, injected from outside the product: before every start of a container of
  pod P (first start and each restart after back-off) it reads
  /var/lib/kubelet-standin/faults/P.json ({"when_manifests_match": regex,
  "message": text}, P = metadata.name); when the file exists and the regex is empty or
  re.search()es the concatenated text of every loaded manifest (file name order), the
  container exits at once with code 1 and logs `lab fault: <message>` (an unusable fault
  file fails the container too, saying why); the usual back-off applies and each retry
  reads the file again.
Not imitated: probes, images (an image maps to a directory of binaries: etcd:<v>-0 to
the lab's etcd <v>, kube-* to the Python stand-ins, anything else runs host binaries; for
`crictl exec` an etcd image has a contents list, see etcdimages.py),
resources, non-hostPath volumes, the API server connection, mirror pods.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

import yaml

from etcdimages import etcd_image
from podrun import prepare_host_path
from standinlib import proc_start, remove_created_mount_points

CONFIG = "/var/lib/kubelet-standin/node.json"
BASE = "/var/lib/kubelet-standin"
STATE = BASE + "/state.json"
LOGS = BASE + "/logs"
FAULTS = BASE + "/faults"
GRACE = 10.0
POLL = 0.5
WATCH = 0.05
BACKOFF_MAX = 10.0
KEEP_EXITED = 3

_sigterm = False


def log(msg):
    sys.stdout.write("%s kubelet: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


def proc_state(pid, start):
    """alive | zombie | gone for the process pid that started at `start`."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return "gone"
    rest = data[data.rindex(")") + 2:].split()
    if int(rest[19]) != start:
        return "gone"
    return "zombie" if rest[0] in ("Z", "X") else "alive"


def now_ns():
    return time.time_ns()


class Kubelet:
    def __init__(self, cfg):
        self.cfg = cfg
        self.node = cfg["node"]
        self.manifests = cfg.get("manifests_dir", "/etc/kubernetes/manifests")
        self.pods = {}        # sha256(file name, content sha256) -> pod dict
        self.containers = {}  # id -> container dict
        self.exit_codes = {}  # pid -> rc (reaped children)
        self.keys = {}        # manifest sha256 -> (namespace, name) or None
        self.dups = {}        # file name -> sha256 already reported as duplicate
        self.manifest_text = ""  # every loaded manifest, concatenated in file name order (for faults)
        os.makedirs(LOGS, exist_ok=True)
        os.makedirs(FAULTS, exist_ok=True)
        self.load_state()

    # ---- state ----------------------------------------------------------------
    def load_state(self):
        try:
            with open(STATE) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return
        self.pods = {hashlib.sha256((p["file"] + "\0" + p["hash"]).encode()).hexdigest(): p
                     for p in st.get("pods", {}).values()}
        self.containers = st.get("containers", {})
        for c in self.containers.values():
            if c["state"] == "CONTAINER_RUNNING":
                if proc_start(c["pid"]) == c.get("proc_start"):
                    log("re-adopted container %s (%s) pid %d" % (c["id"][:13], c["pod_name"], c["pid"]))
                else:
                    self.mark_exited(c, None)

    def save_state(self):
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"node": self.node, "pods": self.pods, "containers": self.containers,
                       "updated": time.time()}, f)
        os.replace(tmp, STATE)

    # ---- images -----------------------------------------------------------------
    def image_contents(self, image):
        """(kind, {path in the image: host file}) of an etcd image, (None, None) for any other image."""
        info = etcd_image(image)
        if info is None:
            return None, None
        d = os.path.join(self.cfg["cache"], "etcd-" + info["version"])
        files = {}
        for path, source in info["contents"].items():
            host = source if source.startswith("/") else os.path.join(d, source)
            if os.path.exists(host):
                files[path] = host
        return info["kind"], files

    def image_path(self, image):
        m = re.match(r"^(?:[^/]+/)*etcd:v?(\d+\.\d+\.\d+)", image)
        if m:
            d = os.path.join(self.cfg["cache"], "etcd-" + m.group(1))
            if not os.path.isdir(d):
                return None, "failed to pull image %r: not found in the lab cache %s" % (image, d)
            return d, None
        if re.match(r"^(?:[^/]+/)*kube-(apiserver|controller-manager|scheduler):", image):
            return self.cfg["standins"], None
        return "", None

    # ---- pods -------------------------------------------------------------------
    def pod_key(self, h, data):
        """(namespace, name) of a manifest, None when it does not parse (cached by content hash)."""
        if h not in self.keys:
            if len(self.keys) > 200:
                self.keys.clear()
            try:
                doc = yaml.safe_load(data)
                meta = doc.get("metadata") or {}
                if not doc["spec"]["containers"]:
                    raise ValueError("no containers")
                self.keys[h] = (meta.get("namespace") or "default", meta["name"])
            except Exception as e:  # the kubelet logs and ignores unparsable manifests
                log("could not process manifest (sha256 %s): %s" % (h[:12], e))
                self.keys[h] = None
        return self.keys[h]

    def sync(self):
        """Pods are identified by file path + content (the kubelet's static pod UID); a second file
        with the same namespace/name is ignored (the first in file name order wins), as the
        kubelet drops duplicate pod full names."""
        desired = {}
        seen = {}
        texts = []
        try:
            names = sorted(os.listdir(self.manifests))
        except OSError:
            names = []
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(self.manifests, name)
            if not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            texts.append(data.decode("utf-8", errors="replace"))
            h = hashlib.sha256(data).hexdigest()
            key = self.pod_key(h, data)
            if key is None:
                continue
            if key in seen:
                if self.dups.get(name) != h:
                    log("static pod %s/%s from %s duplicates the one from %s: ignored" % (key + (name, seen[key])))
                    self.dups[name] = h
                continue
            seen[key] = name
            # like the kubelet's static pod UID: hash of the content and the file's path
            desired[hashlib.sha256((name + "\0" + h).encode()).hexdigest()] = (name, h, data)
        self.manifest_text = "".join(texts)
        changed = False
        for k in list(self.pods):
            pod = self.pods[k]
            if k not in desired:
                log("stopping pod %s (manifest %s removed or changed)" % (pod["name"], pod["file"]))
                self.stop_pod(pod)
                del self.pods[k]
                changed = True
        for k, (fname, h, data) in desired.items():
            if k in self.pods:
                continue
            pod = self.new_pod(fname, h, data)
            if pod is not None:
                self.pods[k] = pod
                changed = True
        for pod in self.pods.values():
            changed |= self.sync_pod(pod)
        changed |= self.gc()
        if changed:
            self.save_state()

    def new_pod(self, fname, h, data):
        try:
            doc = yaml.safe_load(data)
            meta = doc.get("metadata") or {}
            spec = doc["spec"]
            containers = spec["containers"]
            name = meta["name"]
        except Exception as e:  # kubelet logs and ignores unparsable manifests
            if getattr(self, "_bad", {}).get(fname) != h:
                log("could not process manifest %s: %s" % (fname, e))
                self.__dict__.setdefault("_bad", {})[fname] = h
            return None
        volumes = {}
        for v in spec.get("volumes") or []:
            if "hostPath" in v:
                volumes[v["name"]] = v["hostPath"]
        ctrs = []
        for c in containers:
            mounts = []
            for vm in c.get("volumeMounts") or []:
                hp = volumes.get(vm["name"])
                if hp:
                    mounts.append({"host_path": hp["path"], "type": hp.get("type", ""),
                                   "mount_path": vm["mountPath"], "read_only": bool(vm.get("readOnly"))})
            env = {e["name"]: str(e.get("value", "")) for e in c.get("env") or [] if "name" in e}
            ctrs.append({"name": c["name"], "image": c.get("image", ""),
                         "argv": [str(a) for a in (c.get("command") or []) + (c.get("args") or [])],
                         "mounts": mounts, "env": env, "current": None, "attempt": 0,
                         "restart_at": 0.0, "backoff": 0.0})
        pod = {"file": fname, "hash": h, "name": "%s-%s" % (name, self.node), "meta_name": name,
               "namespace": meta.get("namespace", "default"), "id": secrets.token_hex(32),
               "uid": secrets.token_hex(16), "created": now_ns(), "containers": ctrs}
        log("new pod %s from %s" % (pod["name"], fname))
        return pod

    def sync_pod(self, pod):
        changed = False
        t = time.time()
        for ct in pod["containers"]:
            cid = ct["current"]
            c = self.containers.get(cid) if cid else None
            if c and c["state"] == "CONTAINER_RUNNING":
                rc = self.exit_codes.pop(c["pid"], None)
                if rc is None:
                    st = proc_state(c["pid"], c["proc_start"])
                    if st == "alive":
                        continue
                    # not our child (re-adopted after a kubelet restart): the node's init reaps it
                    # and records the exit code
                    rc = self.exit_file(c)
                    if rc is None and st == "zombie" and t - c.setdefault("dead_seen", t) < 3:
                        continue
                self.mark_exited(c, rc)
                ran = t - c["started"] / 1e9
                ct["backoff"] = 1.0 if (ct["backoff"] == 0 or ran > 60) else min(ct["backoff"] * 2, BACKOFF_MAX)
                ct["restart_at"] = t + ct["backoff"]
                log("container %s of %s exited (rc=%s); restart in %.0fs" % (ct["name"], pod["name"], rc,
                                                                             ct["backoff"]))
                changed = True
            if t >= ct["restart_at"]:
                self.start_container(pod, ct)
                changed = True
        return changed

    def start_container(self, pod, ct):
        cid = secrets.token_hex(32)
        attempt = ct["attempt"] if ct["current"] is None else ct["attempt"] + 1
        logf = os.path.join(LOGS, "%s_%s_%s_%d.log" % (pod["name"], ct["name"], cid[:12], attempt))
        c = {"id": cid, "name": ct["name"], "image": ct["image"], "pod_id": pod["id"], "pod_name": pod["name"],
             "pod_namespace": pod["namespace"], "pod_uid": pod["uid"], "attempt": attempt, "created": now_ns(),
             "started": now_ns(), "finished": 0, "exit_code": None, "pid": 0, "proc_start": None,
             "state": "CONTAINER_CREATED", "log_path": logf, "mount_points_created": logf + ".mounts"}
        ct["attempt"] = attempt
        ct["current"] = cid
        self.containers[cid] = c
        img_dir, err = self.image_path(ct["image"])
        # what `crictl exec` offers: the image's files only (see crictl.py), the volumes as the container sees them
        c["image_kind"], c["image_contents"] = self.image_contents(ct["image"])
        c["mounts"] = ct["mounts"]
        if err:
            self.fail_start(pod, ct, c, 128, err)
            return
        fault = self.fault(pod)
        if fault is not None:
            self.fail_start(pod, ct, c, 1, "lab fault: " + fault)
            return
        # volumes are set up before the container is created (the kubelet's volume manager), so a
        # container listed as running already has its DirectoryOrCreate dirs
        for m in ct["mounts"]:
            try:
                err = prepare_host_path(m)
            except OSError as e:
                err = "hostPath %s: %s" % (m["host_path"], e)
            if err:
                self.fail_start(pod, ct, c, 128, "Error: failed to create containerd task: " + err)
                return
        env = {"PATH": ((img_dir + ":") if img_dir else "") + "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": "/root", "HOSTNAME": os.uname().nodename, "KUBEOPS_LAB": self.cfg["lab_dir"],
               "KUBEOPS_LAB_NODE": self.node, "KUBEOPS_LAB_POD": pod["name"],
               "KUBEOPS_LAB_CONTAINER": cid, "KUBEOPS_LAB_CACHE": self.cfg["cache"],
               "KUBEOPS_LAB_ETCDCTL": self.cfg.get("etcdctl_image", "")}
        env.update(ct["env"])
        c["scratch"] = os.path.join(self.cfg["run_dir"], "containers", cid) if self.cfg.get("run_dir") else None
        spec = {"mounts": ct["mounts"], "argv": ct["argv"] or ["/bin/false"],
                "created_file": c["mount_points_created"], "scratch": c["scratch"]}
        with open(logf, "ab") as out:
            p = subprocess.Popen([self.cfg["python"], os.path.join(self.cfg["standins"], "podrun.py"), json.dumps(spec)],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 cwd="/", start_new_session=True)
        c["pid"] = p.pid
        c["proc_start"] = proc_start(p.pid)
        c["state"] = "CONTAINER_RUNNING"
        log("started container %s of %s id=%s pid=%d attempt=%d" % (ct["name"], pod["name"], cid[:13], p.pid, attempt))

    def fault(self, pod):
        """Message of the lab fault on this pod if it applies now, else None (see the docstring)."""
        path = os.path.join(FAULTS, pod["meta_name"] + ".json")
        try:
            with open(path) as f:
                spec = json.load(f)
            if not isinstance(spec, dict):
                raise ValueError("not a JSON object")
            regex = spec.get("when_manifests_match") or ""
            if regex and not re.search(regex, self.manifest_text):
                return None
            return str(spec.get("message") or "lab fault")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, re.error) as e:
            return "unusable fault file %s: %s" % (path, e)

    def fail_start(self, pod, ct, c, rc, text):
        """The container never runs: it exits at once with rc, `text` in its log, then back-off."""
        with open(c["log_path"], "a") as f:
            f.write(text + "\n")
        self.mark_exited(c, rc)
        ct["backoff"] = min(max(ct["backoff"] * 2, 1.0), BACKOFF_MAX)
        ct["restart_at"] = time.time() + ct["backoff"]
        log("container %s of %s attempt=%d failed to start: %s; restart in %.0fs"
            % (ct["name"], pod["name"], c["attempt"], text, ct["backoff"]))

    def exit_file(self, c):
        if not self.cfg.get("run_dir"):
            return None
        path = os.path.join(self.cfg["run_dir"], "exits", str(c["pid"]))
        try:
            with open(path) as f:
                rc, when = f.read().split()
            os.unlink(path)
            if float(when) >= c["started"] / 1e9 - 1:
                return int(rc)
        except (OSError, ValueError):
            pass
        return None

    def mark_exited(self, c, rc):
        c["state"] = "CONTAINER_EXITED"
        c["finished"] = now_ns()
        c["exit_code"] = rc if rc is not None else c.get("exit_code")
        self.cleanup_mount_points(c)

    def cleanup_mount_points(self, c):
        if c.get("scratch"):
            shutil.rmtree(c["scratch"], ignore_errors=True)
        f = c.get("mount_points_created")
        if not f or not os.path.exists(f):
            return
        try:
            with open(f) as fh:
                paths = json.load(fh)
            remove_created_mount_points(paths)
            os.unlink(f)
        except (OSError, ValueError):
            pass

    def stop_pod(self, pod):
        running = [self.containers[ct["current"]] for ct in pod["containers"]
                   if ct["current"] in self.containers
                   and self.containers[ct["current"]]["state"] == "CONTAINER_RUNNING"]
        # a recorded pid is the container's only while its start time matches (pids are reused)
        running = [c for c in running if proc_start(c["pid"]) == c["proc_start"]]
        for c in running:
            try:
                os.killpg(c["pid"], signal.SIGTERM)
            except OSError:
                pass
        deadline = time.time() + GRACE
        while running and time.time() < deadline:
            self.reap()
            running = [c for c in running if proc_start(c["pid"]) == c["proc_start"]]
            if running:
                time.sleep(0.05)
        for c in running:
            log("container %s of %s did not stop in %.0fs: SIGKILL" % (c["name"], c["pod_name"], GRACE))
            try:
                os.killpg(c["pid"], signal.SIGKILL)
            except OSError:
                pass
        t = time.time()
        while running and time.time() < t + 5:
            self.reap()
            running = [c for c in running if proc_start(c["pid"]) == c["proc_start"]]
            time.sleep(0.05)
        for ct in pod["containers"]:
            c = self.containers.get(ct["current"]) if ct["current"] else None
            if c and c["state"] == "CONTAINER_RUNNING":
                self.mark_exited(c, self.exit_codes.pop(c["pid"], None))

    def gc(self):
        """Keep a few exited containers per (pod, container) like the kubelet's container GC."""
        groups = {}
        for c in self.containers.values():
            if c["state"] != "CONTAINER_RUNNING":
                groups.setdefault((c["pod_name"], c["name"]), []).append(c)
        changed = False
        for lst in groups.values():
            lst.sort(key=lambda c: c["created"])
            for c in lst[:-KEEP_EXITED]:
                del self.containers[c["id"]]
                try:
                    os.unlink(c["log_path"])
                except OSError:
                    pass
                changed = True
        return changed

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rc = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
                else (status >> 8)
            self.exit_codes[pid] = 128 - rc if rc < 0 else rc  # killed by signal N: 128+N like runc

    def _manifests_stamp(self):
        try:
            return os.stat(self.manifests).st_mtime_ns
        except OSError:
            return None

    def run(self):
        log("started on node %s, watching %s" % (self.node, self.manifests))
        last_sync, last_stamp = 0.0, None
        while not _sigterm:
            self.reap()
            # The real kubelet sees a manifest change at once (inotify): a file moved in or out changes the
            # dir's mtime, checked every WATCH seconds; everything else (exits, restarts) every POLL seconds.
            stamp = self._manifests_stamp()
            if stamp != last_stamp or time.time() - last_sync >= POLL:
                last_stamp, last_sync = stamp, time.time()
                try:
                    self.sync()
                except Exception as e:  # keep going like a daemon
                    log("sync error: %r" % (e,))
            time.sleep(WATCH)
        self.save_state()
        log("stopping (containers keep running)")


def main():
    def on_term(signum, frame):
        global _sigterm
        _sigterm = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(sys.argv[1] if len(sys.argv) > 1 else CONFIG) as f:
        cfg = json.load(f)
    pidfile = cfg["kubelet_pidfile"]
    with open(pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(pidfile + ".tmp", pidfile)
    try:
        Kubelet(cfg).run()
    finally:
        try:
            with open(pidfile) as f:
                if int(f.read().strip() or 0) == os.getpid():
                    os.unlink(pidfile)
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    main()
