"""Benchmark: kubeops.etcd's restore against two hand-written baselines, on the lab.

For each number of nodes a lab comes up (real sshd, real etcd, kubelet stand-in); for each database
size, data is loaded until etcd's database is about that size, then:
  backup   - playbooks/backup.yml vs `etcdctl snapshot save` on the leader + scp + sha256sum;
  restore  - three procedures on the same lab and the same snapshot file, alternating in each round:
             playbooks/restore.yml, the plain script and the expert script (bench/procedures.py);
  outage   - measured from outside: every API server's /readyz polled every 100 ms over HTTPS; the
             API outage is the time during which no API server answered 200 "ok";
  timeline - every second of each outage attributed to the step (for the playbook: the task, from
             the result_json callback's task_times) that was running;
  check    - after each restore the cluster must serve exactly the snapshot's keys on every member;
  memory   - peak RSS of the etcd_snapshot and etcd_restore module processes at each size.
Results: bench/results/<UTC time>.json and .md; the Markdown report also goes to stdout.
  bench/bench.py --quick                        10M, 3 nodes, 1 round (a few minutes)
  bench/bench.py                                the default matrix (make bench)
  bench/bench.py --sizes 10M,200M,1G --nodes 3,5 --rounds 3    the full matrix
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import lablib  # noqa: E402  (puts tests/lab/standins on sys.path)
from pbrun import PlaybookRun, ansible_env  # noqa: E402

import dataset  # noqa: E402
import memory  # noqa: E402
import procedures  # noqa: E402
import report as markdown  # noqa: E402
from prober import ReadyzProber  # noqa: E402
from timeline import attribute  # noqa: E402

DEFAULTS = {"sizes": "10M,200M", "nodes": "3", "rounds": 3}
QUICK = {"sizes": "10M", "nodes": "3", "rounds": 1}
PROCEDURE_ORDER = ("playbook", "plain", "expert")


def log(msg):
    sys.stderr.write("%s bench: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="database sizes, e.g. 10M,200M,1G (default %s)" % DEFAULTS["sizes"])
    parser.add_argument("--nodes", help="node counts, e.g. 3,5 (default %s)" % DEFAULTS["nodes"])
    parser.add_argument("--rounds", type=int, help="restore rounds per size and node count; each round runs "
                        "the three procedures in a rotating order (default %d)" % DEFAULTS["rounds"])
    parser.add_argument("--quick", action="store_true", help="10M, 3 nodes, 1 round (explicit options win)")
    parser.add_argument("--etcd-version", default="3.5.30")
    parser.add_argument("--value-bytes", type=int, default=1024, help="size of each loaded value")
    parser.add_argument("--ip-base", type=int, default=20, help="lab loopback IPs 127.0.0.<ip-base+N>")
    parser.add_argument("--procedures", default=",".join(PROCEDURE_ORDER),
                        help="restore procedures to run (playbook,plain,expert)")
    parser.add_argument("--ref", help="benchmark this git ref of the collection (exported with git archive) "
                        "instead of the working tree")
    parser.add_argument("--no-memory", action="store_true", help="skip the module memory profile")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.size_list = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.node_list = [int(n) for n in args.nodes.split(",") if n.strip()]
    args.procedure_list = [p.strip() for p in args.procedures.split(",") if p.strip()]
    unknown = set(args.procedure_list) - set(PROCEDURE_ORDER)
    if unknown or not args.procedure_list:
        parser.error("--procedures: choose from %s" % ",".join(PROCEDURE_ORDER))
    if args.rounds < 1 or not args.size_list or not args.node_list:
        parser.error("need at least one size, one node count and one round")
    return args


def command_line(args):
    """The exact command that reproduces the run, every option spelled out."""
    argv = ["bench/bench.py", "--sizes", ",".join(args.size_list), "--nodes", ",".join(map(str, args.node_list)),
            "--rounds", str(args.rounds), "--etcd-version", args.etcd_version, "--value-bytes", str(args.value_bytes),
            "--ip-base", str(args.ip_base)]
    if args.procedure_list != list(PROCEDURE_ORDER):
        argv += ["--procedures", ",".join(args.procedure_list)]
    if args.ref:
        argv += ["--ref", args.ref]
    if args.no_memory:
        argv.append("--no-memory")
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in argv)


def git(*argv):
    return subprocess.run(["git", "-C", REPO] + list(argv), capture_output=True, text=True, check=True).stdout.strip()


def collection_under_test(args, work):
    """The collection's files (working tree, or an exported ref) and a collections root pointing at it."""
    if args.ref:
        commit = git("rev-parse", args.ref)
        source = os.path.join(work, "collection")
        os.makedirs(source)
        archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", commit], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
        describe = "%s (%s, exported)" % (args.ref, commit[:10])
    else:
        commit = git("rev-parse", "HEAD")
        source = REPO
        dirty = bool(git("status", "--porcelain", "--", "plugins", "roles", "playbooks"))
        describe = "working tree at %s%s" % (commit[:10], " with uncommitted changes" if dirty else "")
    root = os.path.join(work, "collections")
    os.makedirs(os.path.join(root, "ansible_collections", "kubeops"))
    os.symlink(source, os.path.join(root, "ansible_collections", "kubeops", "etcd"))
    return {"dir": source, "root": root, "commit": commit, "describe": describe}


def playbook_runner(lab, collection):
    def run(playbook, extra_vars):
        workdir = tempfile.mkdtemp(prefix="kubeops-bench-pb-")
        result_path = os.path.join(workdir, "result.json")
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", lab.inventory,
                os.path.join(collection["dir"], playbook), "-e", json.dumps(extra_vars)]
        env = ansible_env(result_path)
        env["ANSIBLE_COLLECTIONS_PATH"] = collection["root"]
        proc = subprocess.run(argv, cwd=collection["dir"], env=env, capture_output=True, text=True, check=False,
                              timeout=3600)
        data = {}
        if os.path.exists(result_path):
            with open(result_path) as handle:
                data = json.load(handle)
        shutil.rmtree(workdir)
        run = PlaybookRun(argv, proc.returncode, proc.stdout, proc.stderr, data)
        run.task_times = data.get("task_times", [])
        return run
    return run


def settle(lab, prober, timeout=180):
    """Before a run: every API server ready and etcd healthy, then a short pause."""
    clients = procedures.etcd_clients(lab)
    try:
        procedures.wait_until(lambda: procedures.etcd_healthy(clients), timeout=timeout, what="etcd health")
    finally:
        for client in clients:
            client.close()
    procedures.wait_until(lambda: all(prober.probe(n["host"]) for n in lab.state["nodes"]), timeout=timeout,
                          what="every API server's /readyz")
    time.sleep(2)


def measured_run(lab, procedure, fn, data, expected, run_id):
    """One restore with the prober around it; the cluster is checked against the snapshot afterwards."""
    servers = {n["host"]: (n["ip"], lab.state["apiserver_port"]) for n in lab.state["nodes"]}
    prober = ReadyzProber(servers, lab.state["k8s_ca"])
    settle(lab, prober)
    data.disturb(expected, run_id)
    prober.start()
    try:
        time.sleep(0.5)
        started = time.time()
        detail = fn(prober)
        whole = time.time() - started
        back = prober.wait_all_ready(120)
    finally:
        prober.stop()
    seen = prober.report()
    windows = [tuple(w) for w in seen["outage_windows"]]
    spans = detail.pop("spans")
    problems = data.verify(expected)
    if not back:
        problems.append("an API server did not answer /readyz within 120 s of the end of the run")
    run = {"procedure": procedure, "whole_seconds": round(whole, 2), "outage_seconds": seen["outage_seconds"],
           "max_server_down_seconds": seen["max_server_down_seconds"],
           "timeline": [(label, round(s, 3)) for label, s in attribute(windows, spans)],
           "spans": [(label, round(start, 3), round(end, 3)) for label, start, end in spans],
           "prober": seen, "problems": problems}
    run.update(detail)
    if problems:
        raise RuntimeError("%s restore %s: %s" % (procedure, run_id, "; ".join(problems)))
    return run


def bench_config(lab, args, collection, nodes, size, work, data, with_memory):
    """Grow the data to `size`, back it up both ways, and run the rounds of restores."""
    remote = procedures.Remote(lab, os.path.join(work, "ssh-%d" % nodes))
    run_playbook = playbook_runner(lab, collection)
    backups = os.path.join(work, "backups")
    try:
        grown = data.grow_to(parse_size(size), args.value_bytes, log)
        label = "%s-%dn-%d" % (size, nodes, time.time())
        expected = data.record(label)
        log("%s, %d nodes: database %.1f MB, %d keys besides the leases" % (
            size, nodes, grown["db_bytes"] / 1e6, expected["count"]))

        started = time.time()
        manual = procedures.manual_backup(lab, remote, work)
        manual_seconds = time.time() - started
        os.unlink(manual)
        shutil.rmtree(backups, ignore_errors=True)
        started = time.time()
        run = run_playbook("playbooks/backup.yml", {"etcd_backup_dest_dir": backups})
        playbook_seconds = time.time() - started
        if run.rc != 0:
            raise RuntimeError("backup.yml failed:\n%r" % run)
        snapshot = procedures.newest_backup(backups)
        procedures.cleanup_nodes(lab)
        config = {"nodes": nodes, "size": size, "target_bytes": parse_size(size), "db_bytes": grown["db_bytes"],
                  "loads": grown["loads"], "snapshot": os.path.basename(snapshot),
                  "snapshot_bytes": os.path.getsize(snapshot), "data": dataset.summary(expected),
                  "backup": {"manual_seconds": round(manual_seconds, 2), "playbook_seconds": round(playbook_seconds, 2)},
                  "runs": []}
        memory_row = None
        if with_memory:
            log("module memory at %s" % size)
            memory_row = memory.profile(lab, collection["root"], size)

        procs = {
            "playbook": lambda prober: procedures.playbook_restore(run_playbook, snapshot),
            "plain": lambda prober: procedures.plain_restore(lab, remote, snapshot, prober),
            "expert": lambda prober: procedures.expert_restore(lab, remote, snapshot, prober),
        }
        names = args.procedure_list
        for index in range(args.rounds):
            order = names[index % len(names):] + names[:index % len(names)]
            for name in order:
                run_id = "%s-round%d-%s" % (label, index + 1, name)
                result = measured_run(lab, name, procs[name], data, expected, run_id)
                result["round"] = index + 1
                config["runs"].append(result)
                log("%s, %d nodes, round %d, %s: whole %.1f s, API outage %.1f s" % (
                    size, nodes, index + 1, name, result["whole_seconds"], result["outage_seconds"]))
                procedures.cleanup_nodes(lab)
        shutil.rmtree(backups, ignore_errors=True)
        return config, memory_row
    finally:
        remote.close()


def main(argv=None):
    args = parse_args(argv)
    work = tempfile.mkdtemp(prefix="kubeops-bench-")
    lab = lablib.Lab("/tmp/kubeops-bench-%d" % args.ip_base)
    started = time.time()
    results = {"command": command_line(args), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "options": {"sizes": args.size_list, "nodes": args.node_list, "rounds": args.rounds,
                           "etcd_version": args.etcd_version, "value_bytes": args.value_bytes,
                           "procedures": args.procedure_list},
               "machine": {"cpus": os.cpu_count()}, "configs": [], "memory": [], "complete": False}
    try:
        collection = collection_under_test(args, work)
        results["collection"] = {k: collection[k] for k in ("commit", "describe")}
        sizes = sorted(args.size_list, key=parse_size)
        for position, nodes in enumerate(args.node_list):
            lab.down()
            log("lab up: %d nodes, etcd %s" % (nodes, args.etcd_version))
            lab.up(nodes=nodes, etcd_version=args.etcd_version, ip_base=args.ip_base)
            data = dataset.Data(lab)
            try:
                for size in sizes:
                    config, memory_row = bench_config(lab, args, collection, nodes, size, work, data,
                                                      with_memory=position == 0 and not args.no_memory)
                    results["configs"].append(config)
                    if memory_row:
                        results["memory"].append(memory_row)
            finally:
                data.close()
        results["complete"] = True
    except (Exception, KeyboardInterrupt) as error:
        results["error"] = "%s: %s" % (type(error).__name__, error)
        raise
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)
        results["seconds"] = round(time.time() - started, 1)
        results.setdefault("collection", {"commit": "", "describe": "(not set up)"})
        os.makedirs(args.out, exist_ok=True)
        base = os.path.join(args.out, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        with open(base + ".json", "w") as handle:
            json.dump(results, handle, indent=1)
        text = markdown.render(results)
        with open(base + ".md", "w") as handle:
            handle.write(text + "\n")
        print(text)
        print("\nresults: %s.json, %s.md (%.0f s)" % (base, base, results["seconds"]))


if __name__ == "__main__":
    main()
