"""Benchmark: kubeops.etcd's playbooks against the plain etcdctl/etcdutl procedure, on the lab.

What it measures, on one lab (real sshd, real etcd, kubelet stand-in), same data, same machine:
  backup   - playbooks/backup.yml  vs  `etcdctl snapshot save` on the leader + scp to the ops box
             + sha256sum (what a cron script does);
  restore  - playbooks/restore.yml vs  the correct manual multi-member sequence (stop the API
             servers and etcd on every node, `etcdutl snapshot restore` per member with its own
             --name and the full --initial-cluster, repoint the manifests, start etcd, wait for
             health, start the API servers), each step run on all nodes in parallel over ssh:
             the fastest a careful operator's script can be, with no checks and no rollback;
  round trips - the Ansible task results per host in the restore run;
  memory   - peak RSS (VmHWM) of the etcd_snapshot and etcd_restore module processes themselves
             (not of etcdctl/etcdutl) as the database grows: it must stay flat.
Results: bench/results/<UTC time>.json and a Markdown table on stdout.
"""

import argparse
import concurrent.futures
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import lablib  # noqa: E402
from conftest import run_ansible_playbook  # noqa: E402

PY = sys.executable


def ssh(lab, node, command, check=True):
    proc = subprocess.run(lab.ssh_argv(node) + [command], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("%s on %s failed (rc=%d): %s" % (command, node, proc.returncode, proc.stderr))
    return proc


def on_all(lab, fn):
    nodes = [n["host"] for n in lab.state["nodes"]]
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(fn, nodes))


def wait_until(predicate, timeout=300, interval=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError("timed out")


def etcd_flags(node):
    return "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt " \
           "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key --endpoints=%s" % node["client_url"]


def leader(lab):
    status = json.loads(lab.etcdctl("endpoint", "status", "-w", "json").stdout)
    for entry in status:
        if entry["Status"]["leader"] == entry["Status"]["header"]["member_id"]:
            return next(n for n in lab.state["nodes"] if n["client_url"] == entry["Endpoint"])
    raise RuntimeError("no leader")


def manual_backup(lab, out_dir):
    node = leader(lab)
    remote = "/var/lib/manual-backup/snapshot.db"
    ssh(lab, node["host"], "mkdir -p /var/lib/manual-backup && ETCDCTL_API=3 etcdctl %s snapshot save %s"
        % (etcd_flags(node), remote))
    local = os.path.join(out_dir, "manual-snapshot.db")
    scp = ["scp", "-q", "-i", lab.state["ssh_key"], "-P", str(node["ssh_port"]), "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@%s:%s" % (node["ip"], remote), local]
    subprocess.run(scp, check=True)
    subprocess.run(["sha256sum", local], check=True, capture_output=True)
    return local


def manual_restore(lab, snapshot):
    """The plain procedure, step by step on all nodes in parallel; no checks, no rollback."""
    nodes = {n["host"]: n for n in lab.state["nodes"]}
    token = "manual-%d" % time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S")

    def member_info(host):
        text = open(lab.node_path(host, "/etc/kubernetes/manifests/etcd.yaml")).read()
        flags = dict(line.strip()[len("- --"):].split("=", 1) for line in text.splitlines()
                     if line.strip().startswith("- --") and "=" in line)
        return {"name": flags["name"], "peer": flags["initial-advertise-peer-urls"]}

    info = {h: member_info(h) for h in nodes}
    initial_cluster = ",".join("%s=%s" % (i["name"], i["peer"]) for i in info.values())

    def copy(host):
        n = nodes[host]
        ssh(lab, host, "mkdir -p /var/lib/manual-restore")
        subprocess.run(["scp", "-q", "-i", lab.state["ssh_key"], "-P", str(n["ssh_port"]), "-o",
                        "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        snapshot, "root@%s:/var/lib/manual-restore/snapshot.db" % n["ip"]], check=True)

    def stop(host):
        ssh(lab, host, "mkdir -p /etc/kubernetes/tmp && cd /etc/kubernetes/manifests && "
            "mv kube-apiserver.yaml kube-controller-manager.yaml kube-scheduler.yaml ../tmp/ && "
            "while [ -n \"$(crictl ps --name '^kube-apiserver$' --state running -q)\" ]; do sleep 0.5; done && "
            "mv etcd.yaml ../tmp/ && "
            "while [ -n \"$(crictl ps --name '^etcd$' --state running -q)\" ]; do sleep 0.5; done")

    def restore(host):
        n = nodes[host]
        tool = "etcdutl" if n.get("etcdutl") else "etcdctl"
        old = current_data_dir(lab, host)
        new = "%s-manual-%s" % (old, stamp)
        ssh(lab, host, "ETCDCTL_API=3 %s snapshot restore /var/lib/manual-restore/snapshot.db --name %s "
            "--initial-cluster %s --initial-cluster-token %s --initial-advertise-peer-urls %s --data-dir %s"
            % (tool, shlex.quote(info[host]["name"]), shlex.quote(initial_cluster), token,
               shlex.quote(info[host]["peer"]), new))
        ssh(lab, host, "sed -i 's#path: %s$#path: %s#' /etc/kubernetes/tmp/etcd.yaml && "
            "mv /etc/kubernetes/tmp/etcd.yaml /etc/kubernetes/manifests/" % (old, new))

    def start_rest(host):
        ssh(lab, host, "cd /etc/kubernetes/tmp && "
            "mv kube-apiserver.yaml kube-controller-manager.yaml kube-scheduler.yaml ../manifests/")

    def healthy():
        proc = lab.etcdctl("endpoint", "health", "-w", "json", check=False)
        try:
            return all(e.get("health") for e in json.loads(proc.stdout)) and proc.returncode == 0
        except ValueError:
            return False

    def apiserver_ready(host):
        url = nodes[host]["apiserver_url"] + "/readyz"
        ca = lab.node_path(host, "/etc/kubernetes/pki/ca.crt")
        wait_until(lambda: subprocess.run(["curl", "-sf", "--cacert", ca, url], capture_output=True,
                                          check=False).returncode == 0)

    timings = {}
    for name, step in (("copy", lambda: on_all(lab, copy)), ("stop", lambda: on_all(lab, stop)),
                       ("restore", lambda: on_all(lab, restore)), ("wait_etcd", lambda: wait_until(healthy)),
                       ("start_apiserver", lambda: on_all(lab, start_rest)),
                       ("wait_apiserver", lambda: on_all(lab, apiserver_ready))):
        started = time.time()
        step()
        timings[name] = round(time.time() - started, 2)
    return timings


def current_data_dir(lab, host):
    for path in ("/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/tmp/etcd.yaml"):
        real = lab.node_path(host, path)
        if os.path.exists(real):
            lines = open(real).read().splitlines()
            for i, line in enumerate(lines):
                if line.strip() == "name: etcd-data":
                    # kubeadm writes "- hostPath:\n    path: X\n    type: ...\n  name: etcd-data"
                    for back in lines[max(0, i - 3):i]:
                        if back.strip().startswith("path:"):
                            return back.split(":", 1)[1].strip()
    raise RuntimeError("no etcd-data volume on %s" % host)


def module_peak_rss(lab, module, args):
    """Run one module standalone on cp1 (inside the node) and sample its own VmHWM."""
    node = lab.state["nodes"][0]["host"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    argv = lab.nsenter_argv(node) + ["env", "PYTHONPATH=" + os.path.join(REPO, "build", "collections"),
                                     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                     PY, "-m", "ansible_collections.kubeops.etcd.plugins.modules." + module,
                                     handle.name]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    target = None
    while proc.poll() is None:
        if target is None:
            target = _find_python_child(proc.pid)
        if target:
            try:
                with open("/proc/%d/status" % target) as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        time.sleep(0.02)
    out, err = proc.communicate()
    os.unlink(handle.name)
    result = json.loads(out) if out.strip().startswith("{") else {"failed": True, "msg": err or out}
    if result.get("failed"):
        raise RuntimeError("%s failed: %s" % (module, result.get("msg")))
    return peak, result


def _find_python_child(pid):
    """nsenter -> env -> python: follow the chain to the module's own process."""
    seen = pid
    for _depth in range(5):
        try:
            with open("/proc/%d/comm" % seen) as comm:
                if comm.read().strip().startswith("python"):
                    return seen
            with open("/proc/%d/task/%d/children" % (seen, seen)) as children:
                kids = children.read().split()
        except OSError:
            return None
        if not kids:
            return None
        seen = int(kids[0])
    return None


def memory_profile(lab, sizes_mb, value_bytes):
    rows = []
    loaded = 0
    for size in sizes_mb:
        need = size * 1024 * 1024 - loaded
        if need > 0:
            keys = need // value_bytes
            lab.load(keys, value_bytes)
            loaded += keys * value_bytes
        node = lab.state["nodes"][0]
        conn = {"endpoints": [node["client_url"]]}
        snap = "/var/lib/kubeops-bench/snap-%d.db" % size
        peak_snap, snap_result = module_peak_rss(lab, "etcd_snapshot", dict(conn, dest=snap, force=True))
        peak_restore, _restore_result = module_peak_rss(lab, "etcd_restore", {
            "snapshot": snap, "data_dir": "/var/lib/kubeops-bench/restore-%d" % size, "name": node["member_name"],
            "initial_cluster": "%s=%s" % (node["member_name"], node["peer_url"]),
            "initial_cluster_token": "bench-%d" % size, "initial_advertise_peer_urls": [node["peer_url"]]})
        rows.append({"db_mb": round(snap_result["size"] / 1048576.0, 1), "etcd_snapshot_peak_rss_kb": peak_snap,
                     "etcd_restore_peak_rss_kb": peak_restore})
    lab.exec(lab.state["nodes"][0]["host"], ["rm", "-rf", "/var/lib/kubeops-bench"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--etcd-version", default="3.5.30")
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--ip-base", type=int, default=230)
    parser.add_argument("--repeat", type=int, default=3, help="restore rounds (manual, then playbook, each round)")
    parser.add_argument("--memory-sizes-mb", default="20,100,200",
                        help="database sizes for the module memory profile; empty to skip")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args()

    lab = lablib.Lab("/tmp/kubeops-bench-%d" % args.ip_base)
    lab.down()
    work = tempfile.mkdtemp(prefix="kubeops-bench-")
    report = {"nodes": args.nodes, "etcd_version": args.etcd_version, "keys": args.keys,
              "value_bytes": args.value_bytes, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        lab.up(nodes=args.nodes, etcd_version=args.etcd_version, ip_base=args.ip_base)
        report["load"] = lab.load(args.keys, args.value_bytes)

        started = time.time()
        manual_snapshot = manual_backup(lab, work)
        report["manual_backup_seconds"] = round(time.time() - started, 2)

        backups = os.path.join(work, "backups")
        started = time.time()
        run = run_ansible_playbook(lab.inventory, "playbooks/backup.yml", extra_vars={"etcd_backup_dest_dir": backups})
        report["playbook_backup_seconds"] = round(time.time() - started, 2)
        assert run.rc == 0, run

        # The lab shares 2 cores with everything else: repeat and report the median and the range.
        report["manual_restore_runs"] = []
        report["playbook_restore_runs"] = []
        for _round in range(args.repeat):
            started = time.time()
            steps = manual_restore(lab, manual_snapshot)
            report["manual_restore_runs"].append({"seconds": round(time.time() - started, 2), "steps": steps})

            started = time.time()
            run = run_ansible_playbook(lab.inventory, "playbooks/restore.yml",
                                       extra_vars={"snapshot": "latest", "etcd_restore_backup_dir": backups})
            took = round(time.time() - started, 2)
            assert run.rc == 0, run
            stats = run.stats.get("_run", run.stats).get("etcd_restore", {})
            report["playbook_restore_runs"].append({
                "seconds": took, "downtime_seconds": float(stats.get("downtime_seconds", 0)),
                "slowest_tasks": run.slowest_tasks(8)})
        hosts = sorted(run.summary)
        report["restore_task_results_per_host"] = {h: sum(1 for r in run.results if r["host"] == h) for h in hosts}
        report["restore_tasks_run"] = len(set(r["task"] for r in run.results))

        sizes = [int(s) for s in args.memory_sizes_mb.split(",") if s]
        if sizes:
            report["module_memory"] = memory_profile(lab, sizes, 4096)
    finally:
        lab.down()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".json")
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print_table(report)
    print("\nresults: %s" % path)


def _spread(values):
    values = sorted(values)
    return "%.1f (%.1f-%.1f)" % (statistics.median(values), values[0], values[-1])


def print_table(r):
    manual = r["manual_restore_runs"]
    playbook = r["playbook_restore_runs"]
    manual_down = [run["seconds"] - run["steps"]["copy"] for run in manual]
    print("%d-node lab, etcd %s, %d keys of %d bytes; restore: median (min-max) of %d rounds" % (
        r["nodes"], r["etcd_version"], r["keys"], r["value_bytes"], len(manual)))
    print("")
    print("| what | plain etcdctl/etcdutl | kubeops.etcd |")
    print("|---|---|---|")
    print("| backup, s | %.1f | %.1f |" % (r["manual_backup_seconds"], r["playbook_backup_seconds"]))
    print("| restore, s | %s | %s |" % (_spread([x["seconds"] for x in manual]), _spread([x["seconds"] for x in playbook])))
    print("| API servers down, s | %s | %s |" % (_spread(manual_down), _spread([x["downtime_seconds"] for x in playbook])))
    print("")
    for index, run in enumerate(manual):
        print("manual round %d steps (s): %s" % (index + 1, run["steps"]))
    print("slowest playbook tasks, last round (s): %s" % playbook[-1]["slowest_tasks"])
    print("restore: %s distinct tasks; task results per host: %s" % (
        r["restore_tasks_run"], r["restore_task_results_per_host"]))
    for row in r.get("module_memory", []):
        print("module memory at %(db_mb)s MB: etcd_snapshot %(etcd_snapshot_peak_rss_kb)s kB, "
              "etcd_restore %(etcd_restore_peak_rss_kb)s kB peak RSS" % row)


if __name__ == "__main__":
    main()
