"""Peak RSS (VmHWM) of the collection's snapshot and restore module processes themselves (not of
etcdctl/etcdutl they run), on cp1, at the current database size: it must stay flat as data grows."""

import json
import os
import subprocess
import sys
import tempfile
import time

WORK = "/var/lib/kubeops-bench-memory"


def module_peak_rss(lab, collections_root, module, args):
    """Run one module standalone inside cp1 and sample its own VmHWM."""
    node = lab.state["nodes"][0]["host"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    argv = lab.nsenter_argv(node) + ["env", "PYTHONPATH=" + collections_root,
                                     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                     sys.executable, "-m", "ansible_collections.kubeops.etcd.plugins.modules." + module,
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


def profile(lab, collections_root, label):
    """One row: etcd_snapshot of the live database, then etcd_restore of that snapshot, on cp1.

    The modules' arguments can change with the collection under test: a module that refuses these
    arguments is reported as an error in the row, not as a benchmark failure."""
    node = lab.state["nodes"][0]
    snap = "%s/snap.db" % WORK
    row = {"size": label}
    try:
        row["etcd_snapshot_peak_rss_kb"], result = module_peak_rss(
            lab, collections_root, "etcd_snapshot", {"endpoints": [node["client_url"]], "dest": snap, "force": True})
        row["snapshot_bytes"] = result.get("size")
        row["etcd_restore_peak_rss_kb"], _result = module_peak_rss(lab, collections_root, "etcd_restore", {
            "snapshot": snap, "data_dir": "%s/restore" % WORK, "name": node["member_name"],
            "initial_cluster": "%s=%s" % (node["member_name"], node["peer_url"]),
            "initial_cluster_token": "bench-memory", "initial_advertise_peer_urls": [node["peer_url"]]})
    except RuntimeError as error:
        row["error"] = str(error)[:500]
    finally:
        lab.exec(node["host"], ["rm", "-rf", WORK])
    return row
