"""What the benchmark runs on the lab: the backups and the three restore procedures.

  playbook - playbooks/restore.yml of the collection under test;
  plain    - the classic manual sequence: stop the API servers and etcd on every node, restore each
             member with etcdutl (etcdctl on 3.4), repoint its manifest and put it back, wait for etcd,
             start the API servers;
  expert   - the fastest correct procedure: every member restored into a new dir and its new
             etcd.yaml prepared outside the manifests dir while the old cluster still serves; only
             then stop the API servers, then etcd, swap the manifest on every node at once, wait for
             etcd, start the API servers.
Both scripts: each step on every node at once over ssh (one multiplexed connection per node), the
same snapshot file, --name/--initial-cluster/--initial-advertise-peer-urls from each node's
manifest, a fresh token, --bump-revision 1000000000 --mark-compacted where the tool has them, no
checks and no rollback. Each procedure returns its steps as [(label, start, end)] for the timeline.
"""

import concurrent.futures
import glob
import json
import os
import shlex
import shutil
import subprocess
import time

import etcdgw  # tests/lab/standins, on sys.path once lablib is imported

STAGE_DIR = "/var/lib/kubeops-bench-stage"
HOLD_DIR = "/etc/kubernetes/tmp"
CONTROL_PLANE = "kube-apiserver.yaml kube-controller-manager.yaml kube-scheduler.yaml"
BUMP = 1000000000


class Remote(object):
    """ssh to the lab's nodes, one multiplexed master connection per node (closed by close())."""

    def __init__(self, lab, control_dir):
        self.lab = lab
        self.nodes = {n["host"]: n for n in lab.state["nodes"]}
        self.control_dir = control_dir
        os.makedirs(control_dir, exist_ok=True)
        self.mux = ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/%%C" % control_dir, "-o", "ControlPersist=120"]

    def hosts(self):
        return sorted(self.nodes)

    def ssh(self, host, command):
        argv = self.lab.ssh_argv(host)
        proc = subprocess.run(argv[:-1] + self.mux + [argv[-1], command], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError("on %s: %s failed (rc=%d): %s" % (host, command, proc.returncode, proc.stderr.strip()))
        return proc.stdout

    def scp(self, host, local, remote):
        node = self.nodes[host]
        argv = ["scp", "-q", "-i", self.lab.state["ssh_key"], "-P", str(node["ssh_port"]), "-o",
                "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"] + self.mux
        subprocess.run(argv + [local, "root@%s:%s" % (node["ip"], remote)], check=True)

    def fetch(self, host, remote, local):
        node = self.nodes[host]
        argv = ["scp", "-q", "-i", self.lab.state["ssh_key"], "-P", str(node["ssh_port"]), "-o",
                "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"] + self.mux
        subprocess.run(argv + ["root@%s:%s" % (node["ip"], remote), local], check=True)

    def on_all(self, fn, hosts=None):
        hosts = self.hosts() if hosts is None else hosts
        if not hosts:
            return []
        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
            return list(pool.map(fn, hosts))

    def close(self):
        for host in self.hosts():
            argv = self.lab.ssh_argv(host)
            subprocess.run(argv[:-1] + self.mux + ["-O", "exit", argv[-1]], capture_output=True, check=False)


class Steps(object):
    """Runs named steps and keeps their wall-clock spans."""

    def __init__(self):
        self.spans = []

    def run(self, label, fn):
        start = time.time()
        result = fn()
        self.spans.append((label, start, time.time()))
        return result

    def seconds(self):
        return {label: round(end - start, 2) for label, start, end in self.spans}


def wait_until(predicate, timeout=300, interval=0.5, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError("timed out after %ds waiting for %s" % (timeout, what))


# ---- reading the nodes ----------------------------------------------------------------------------
def manifest_text(lab, host):
    for path in ("/etc/kubernetes/manifests/etcd.yaml", HOLD_DIR + "/etcd.yaml"):
        real = lab.node_path(host, path)
        if os.path.exists(real):
            with open(real) as handle:
                return handle.read()
    raise RuntimeError("no etcd.yaml on %s" % host)


def member_info(lab, host):
    flags = dict(line.strip()[len("- --"):].split("=", 1) for line in manifest_text(lab, host).splitlines()
                 if line.strip().startswith("- --") and "=" in line)
    return {"name": flags.get("name", "default"), "peer": flags["initial-advertise-peer-urls"]}


def current_data_dir(lab, host):
    lines = manifest_text(lab, host).splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "name: etcd-data":
            # kubeadm writes "- hostPath:\n    path: X\n    type: ...\n  name: etcd-data"
            for back in lines[max(0, i - 3):i]:
                if back.strip().startswith("path:"):
                    return back.split(":", 1)[1].strip()
    raise RuntimeError("no etcd-data volume in etcd.yaml on %s" % host)


def etcd_healthy(clients):
    for client in clients:
        try:
            if not client.health():
                return False
        except etcdgw.EtcdError:
            return False
    return True


def etcd_clients(lab, timeout=2):
    st = lab.state
    return [etcdgw.Client(n["client_url"], st["ca"], st["client_cert"], st["client_key"], timeout=timeout)
            for n in st["nodes"]]


def cleanup_nodes(lab):
    """Between runs: remove every etcd data dir but the one in use, and snapshot copies left on the
    nodes (backup staging, restore staging), so that the lab's disk holds one cluster's worth."""
    removed = 0
    for node in lab.state["nodes"]:
        host = node["host"]
        keep = os.path.realpath(lab.node_path(host, current_data_dir(lab, host)))
        top = lab.node_path(host, "/var/lib")
        for root, dirs, files in os.walk(top):
            if root[len(top):].count(os.sep) >= 3:
                dirs[:] = []
                continue
            for name in list(dirs):
                path = os.path.join(root, name)
                if os.path.isdir(os.path.join(path, "member")):
                    dirs.remove(name)
                    if os.path.realpath(path) != keep:
                        shutil.rmtree(path)
                        removed += 1
            for name in files:
                if name.endswith(".db") or name.endswith(".db.part"):
                    os.unlink(os.path.join(root, name))
                    removed += 1
    return removed


def leader(lab):
    status = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)
    for entry in status:
        if entry["Status"]["leader"] == entry["Status"]["header"]["member_id"]:
            return next(n for n in lab.state["nodes"] if n["client_url"] == entry["Endpoint"])
    raise RuntimeError("no leader")


def leader_host(lab):
    return leader(lab)["host"]


# ---- backups ------------------------------------------------------------------------------------


def manual_backup(lab, remote, out_dir):
    """`etcdctl snapshot save` on the leader, scp to the ops box, sha256sum: what a cron script does."""
    node = leader(lab)
    path = "/var/lib/manual-backup/snapshot.db"
    remote.ssh(node["host"], "mkdir -p /var/lib/manual-backup && ETCDCTL_API=3 etcdctl "
               "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
               "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key --endpoints=%s snapshot save %s"
               % (node["client_url"], path))
    local = os.path.join(out_dir, "manual-snapshot.db")
    remote.fetch(node["host"], path, local)
    subprocess.run(["sha256sum", local], check=True, capture_output=True)
    return local


def newest_backup(backup_dir):
    """The newest snapshot backup.yml wrote (whether restore.yml accepts it is restore.yml's call)."""
    found = glob.glob(os.path.join(backup_dir, "*.db"))
    if not found:
        raise RuntimeError("backup.yml wrote no *.db into %s" % backup_dir)
    return max(found, key=os.path.getmtime)


# ---- the restore procedures -----------------------------------------------------------------------
def _plan(lab, procedure):
    hosts = [n["host"] for n in lab.state["nodes"]]
    info = {h: member_info(lab, h) for h in hosts}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for host in hosts:
        old = current_data_dir(lab, host)
        info[host]["old"] = old
        info[host]["new"] = os.path.join(os.path.dirname(old), "etcd-%s-%s" % (procedure, stamp))
    return {"info": info, "token": "%s-%d" % (procedure, time.time() * 1000),
            "initial_cluster": ",".join("%s=%s" % (info[h]["name"], info[h]["peer"]) for h in hosts)}


def _restore_command(lab, host, plan):
    """etcdutl (etcdctl where the node has no etcdutl) restore with the bump where the tool has it."""
    node = lab.node(host)
    tool = "etcdutl" if node.get("etcdutl") else "ETCDCTL_API=3 etcdctl"
    member = plan["info"][host]
    return ("bump=; if %s snapshot restore --help 2>&1 | grep -q -- --bump-revision; then "
            "bump='--bump-revision %d --mark-compacted'; fi; "
            "%s snapshot restore %s/snapshot.db --name %s --initial-cluster %s --initial-cluster-token %s "
            "--initial-advertise-peer-urls %s --data-dir %s $bump >/dev/null"
            % (tool, BUMP, tool, STAGE_DIR, shlex.quote(member["name"]), shlex.quote(plan["initial_cluster"]),
               plan["token"], shlex.quote(member["peer"]), member["new"]))


def _wait_gone(name, interval):
    return ("while [ -n \"$(crictl ps --name '^%s$' --state running -q)\" ]; do sleep %s; done"
            % (name, interval))


def _copy(remote, snapshot):
    def one(host):
        remote.ssh(host, "mkdir -p %s" % STAGE_DIR)
        remote.scp(host, snapshot, STAGE_DIR + "/snapshot.db")
    remote.on_all(one)


def _apiservers_ready(lab, prober):
    hosts = [n["host"] for n in lab.state["nodes"]]
    return all(prober.probe(host) for host in hosts)


def plain_restore(lab, remote, snapshot, prober):
    """The classic sequence, as the previous benchmark ran it (0.5 s polls)."""
    plan = _plan(lab, "plain")
    steps = Steps()

    def stop(host):
        remote.ssh(host, "mkdir -p %s && cd /etc/kubernetes/manifests && mv %s %s/ && %s && mv etcd.yaml %s/ && %s"
                   % (HOLD_DIR, CONTROL_PLANE, HOLD_DIR, _wait_gone("kube-apiserver", 0.5), HOLD_DIR,
                      _wait_gone("etcd", 0.5)))

    def restore(host):
        member = plan["info"][host]
        remote.ssh(host, _restore_command(lab, host, plan))
        remote.ssh(host, "sed -i 's#path: %s$#path: %s#' %s/etcd.yaml && mv %s/etcd.yaml /etc/kubernetes/manifests/"
                   % (member["old"], member["new"], HOLD_DIR, HOLD_DIR))

    def start_rest(host):
        remote.ssh(host, "cd %s && mv %s /etc/kubernetes/manifests/" % (HOLD_DIR, CONTROL_PLANE))

    clients = etcd_clients(lab)
    steps.run("copy the snapshot to every node", lambda: _copy(remote, snapshot))
    steps.run("stop the API servers, then etcd", lambda: remote.on_all(stop))
    steps.run("restore, repoint and start etcd, per node", lambda: remote.on_all(restore))
    steps.run("wait for etcd health", lambda: wait_until(lambda: etcd_healthy(clients), what="etcd health"))
    steps.run("start the API servers", lambda: remote.on_all(start_rest))
    steps.run("wait for every /readyz", lambda: wait_until(lambda: _apiservers_ready(lab, prober),
                                                           what="the API servers"))
    for client in clients:
        client.close()
    remote.on_all(lambda host: remote.ssh(host, "rm -rf %s" % STAGE_DIR))
    return {"spans": steps.spans, "steps": steps.seconds()}


def expert_restore(lab, remote, snapshot, prober):
    """Restore and prepare while the old cluster serves; the outage is stop, swap, start (0.1 s polls)."""
    plan = _plan(lab, "expert")
    steps = Steps()
    new_manifest = HOLD_DIR + "/etcd.yaml.new"

    def prepare(host):
        member = plan["info"][host]
        remote.ssh(host, "%s && mkdir -p %s && sed 's#path: %s$#path: %s#' /etc/kubernetes/manifests/etcd.yaml > %s"
                   % (_restore_command(lab, host, plan), HOLD_DIR, member["old"], member["new"], new_manifest))

    def stop_apiservers(host):
        remote.ssh(host, "cd /etc/kubernetes/manifests && mv %s %s/ && %s"
                   % (CONTROL_PLANE, HOLD_DIR, _wait_gone("kube-apiserver", 0.1)))

    def stop_etcd(host):
        remote.ssh(host, "mv /etc/kubernetes/manifests/etcd.yaml %s/etcd.yaml.old && %s"
                   % (HOLD_DIR, _wait_gone("etcd", 0.1)))

    # A leader that is stopped while its followers stop too may spend etcd's request timeout (7 s)
    # on a failed leadership transfer; once its followers are gone it has no one to hand over to
    # and stops at once.
    lead = leader_host(lab)
    followers = [h for h in remote.hosts() if h != lead]

    # Members start 0.3 s apart, as the playbook does: with kubeadm's initial corruption check a member that
    # starts while a peer is itself starting waits up to 7 s for that peer (see restore_plan.START_STAGGER_SECONDS).
    order = remote.hosts()

    def swap(host):
        remote.ssh(host, "sleep %.1f && mv %s /etc/kubernetes/manifests/etcd.yaml"
                   % (0.3 * order.index(host), new_manifest))

    def start_rest(host):
        remote.ssh(host, "cd %s && mv %s /etc/kubernetes/manifests/" % (HOLD_DIR, CONTROL_PLANE))

    clients = etcd_clients(lab, timeout=1)
    steps.run("copy the snapshot to every node", lambda: _copy(remote, snapshot))
    steps.run("restore and prepare etcd.yaml (old cluster serving)", lambda: remote.on_all(prepare))
    steps.run("stop the API servers", lambda: remote.on_all(stop_apiservers))
    steps.run("stop etcd on the followers", lambda: remote.on_all(stop_etcd, followers))
    steps.run("stop etcd on the leader", lambda: stop_etcd(lead))
    steps.run("swap etcd.yaml on every node", lambda: remote.on_all(swap))
    steps.run("wait for etcd health", lambda: wait_until(lambda: etcd_healthy(clients), interval=0.1,
                                                         what="etcd health"))
    steps.run("start the API servers", lambda: remote.on_all(start_rest))
    steps.run("wait for every /readyz", lambda: wait_until(lambda: _apiservers_ready(lab, prober), interval=0.1,
                                                           what="the API servers"))
    for client in clients:
        client.close()
    remote.on_all(lambda host: remote.ssh(host, "rm -rf %s %s/etcd.yaml.old" % (STAGE_DIR, HOLD_DIR)))
    return {"spans": steps.spans, "steps": steps.seconds()}


def playbook_restore(run_playbook, snapshot):
    """playbooks/restore.yml with the snapshot's path; its timeline is every task on every host."""
    run = run_playbook("playbooks/restore.yml", {"snapshot": snapshot})
    if run.rc != 0:
        raise RuntimeError("restore.yml failed:\n%r" % run)
    times = run.task_times
    if not times:
        raise RuntimeError("the result_json callback wrote no task_times (is it the one in tests/integration?)")
    spans = [(entry["task"].split(" : ")[-1], entry["start"], entry["end"]) for entry in times]
    hosts = sorted(run.summary)
    stats = run.stats.get("_run", run.stats)
    return {"spans": spans, "slowest_tasks": run.slowest_tasks(8),
            "own_downtime_seconds": (stats.get("etcd_restore") or {}).get("downtime_seconds"),
            "task_results_per_host": {h: sum(1 for r in run.results if r["host"] == h) for h in hosts},
            "distinct_tasks": len(set(r["task"] for r in run.results))}
