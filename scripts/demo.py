"""`make demo`: the whole disaster-recovery story on the lab, start to finish.

lab up (3 control planes, real etcd over real SSH) -> load Kubernetes-shaped data -> backup.yml
-> a simulated disaster (namespaces' ConfigMaps deleted, a rogue key written) -> restore.yml
-snapshot=latest -> verify that exactly the snapshot's keys are back, members healthy under new
IDs, API servers ready -> lab down (always).
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import lablib  # noqa: E402
from pbrun import ansible_env  # noqa: E402

BIN = os.path.dirname(sys.executable)


def say(message):
    print("\n\033[1m==> %s\033[0m" % message, flush=True)


def playbook(lab, path, extra_vars):
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", lab.inventory, path, "-e", json.dumps(extra_vars)]
    print("$ " + " ".join(argv), flush=True)
    handle, result_path = tempfile.mkstemp(prefix="kubeops-demo-", suffix=".json")
    os.close(handle)
    subprocess.run(argv, cwd=REPO, env=ansible_env(result_path), check=True)
    with open(result_path) as handle:
        seconds = json.load(handle).get("task_seconds", {})
    os.unlink(result_path)
    print("slowest tasks:")
    for name, took in sorted(seconds.items(), key=lambda item: -item[1])[:6]:
        print("  %5.1f s  %s" % (took, name))


# The running control plane rewrites its own leases (API server identity, leader election)
# every few seconds: those keys legitimately differ from the snapshot's after a restore.
LIVE_PREFIXES = ("/registry/leases/", "/registry/masterleases/")


def keys(lab):
    out = lab.etcdctl("get", "/registry", "--prefix", "--keys-only", "-w", "json").stdout
    kvs = json.loads(out).get("kvs", [])
    found = set(base64.b64decode(kv["key"]).decode() for kv in kvs)
    return set(k for k in found if not k.startswith(LIVE_PREFIXES))


def members(lab):
    data = json.loads(lab.etcdctl("member", "list", "-w", "json").stdout)
    return data["header"]["cluster_id"], sorted(m["name"] for m in data["members"])


def main():
    lab = lablib.Lab(os.environ.get("KUBEOPS_LAB_DIR", os.path.join(REPO, ".lab")))
    backups = tempfile.mkdtemp(prefix="kubeops-demo-backups-")
    lab.down()
    try:
        say("Bring up a 3-node kubeadm-shaped control plane (etcd 3.5.30, sshd, kubelet stand-in)")
        lab.up(nodes=3, ip_base=int(os.environ.get("KUBEOPS_DEMO_IP_BASE", "10")))
        subprocess.run([os.path.join(REPO, "tests", "lab", "labctl"), "--dir", lab.dir, "etcdctl", "--",
                        "endpoint", "status", "--cluster", "-w", "table"], check=True)

        say("Load 5,000 Kubernetes-shaped keys (namespaces, configmaps, secrets, deployments)")
        print(lab.load(5000, 512))
        before = keys(lab)
        cluster_before, names = members(lab)

        say("Back up: ansible-playbook playbooks/backup.yml")
        playbook(lab, "playbooks/backup.yml", {"etcd_backup_dest_dir": backups})
        print("\n".join(sorted(os.listdir(backups))))

        say("Disaster: every ConfigMap deleted, a rogue key written")
        lab.etcdctl("del", "--prefix", "/registry/configmaps/")
        lab.etcdctl("put", "/registry/rogue/key", "should-not-survive")
        after_disaster = keys(lab)
        print("keys before: %d, after the disaster: %d" % (len(before), len(after_disaster)))

        say("Restore: ansible-playbook playbooks/restore.yml -e snapshot=latest")
        started = time.time()
        playbook(lab, "playbooks/restore.yml", {"snapshot": "latest", "etcd_restore_backup_dir": backups})
        took = time.time() - started

        say("Verify")
        restored = keys(lab)
        cluster_after, names_after = members(lab)
        checks = [
            ("exactly the snapshot's keys are back (%d)" % len(before), restored == before),
            ("the rogue key is gone", "/registry/rogue/key" not in restored),
            ("same member names %s" % names_after, names_after == names),
            ("new cluster ID (%x -> %x)" % (cluster_before, cluster_after), cluster_after != cluster_before),
        ]
        for node in lab.state["nodes"]:
            ca = lab.node_path(node["host"], "/etc/kubernetes/pki/ca.crt")
            ready = subprocess.run(["curl", "-sf", "--cacert", ca, node["apiserver_url"] + "/readyz"],
                                   capture_output=True, text=True, check=False)
            checks.append(("API server on %s ready" % node["host"], ready.returncode == 0))
        if restored != before:
            print("  missing: %s" % sorted(before - restored)[:10])
            print("  unexpected: %s" % sorted(restored - before)[:10])
        for text, ok in checks:
            print("  [%s] %s" % ("ok" if ok else "FAILED", text))
        print("restore took %.1f s" % took)
        if not all(ok for _text, ok in checks):
            sys.exit("demo: verification failed")
        say("Demo passed")
    finally:
        say("Take the lab down")
        lab.down()


if __name__ == "__main__":
    main()
