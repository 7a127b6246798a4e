"""The benchmark's data: grow the database to a size, record what a snapshot holds, and check that a
restored cluster serves exactly that on every member (so a wrong procedure cannot look fast).

The lab's stand-ins keep writing leases (/registry/leases/, /registry/masterleases/) with TTLs; those
keys are not the snapshot's business after a restore and are left out. Everything else must match:
the set of keys (read on one member, paged), the key count on every member (serializable), and the
values of a sample of keys on every member."""

import hashlib
import random
import time

import etcdgw  # tests/lab/standins, on sys.path once lablib is imported

VOLATILE_PREFIXES = ("/registry/leases/", "/registry/masterleases/")
MARKER = "/bench/snapshot-marker"
AFTER_SNAPSHOT = "/bench/written-after-the-snapshot"
PAGE = 5000


def _prefix_end(prefix):
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def stable_ranges():
    """[key, range_end) pairs covering every key except the volatile prefixes ("\\0" = to the end)."""
    ranges = []
    start = "\0"
    for prefix in sorted(VOLATILE_PREFIXES):
        ranges.append((start, prefix))
        start = _prefix_end(prefix)
    ranges.append((start, "\0"))
    return ranges


class Data(object):
    def __init__(self, lab):
        self.lab = lab
        st = lab.state
        self.clients = {n["host"]: etcdgw.Client(n["client_url"], st["ca"], st["client_cert"], st["client_key"],
                                                 timeout=120) for n in st["nodes"]}
        self.batches = 0

    def close(self):
        for client in self.clients.values():
            client.close()

    def client(self, host=None):
        return self.clients[host or sorted(self.clients)[0]]

    def post(self, host, path, body, attempts=6):
        """One request, retried: right after a restore a member may still be settling (leader
        changes, the kubelets restarted), which is not what this checks."""
        for attempt in range(attempts):
            try:
                return self.client(host).post(path, body)
            except etcdgw.EtcdError:
                if attempt == attempts - 1:
                    raise
                time.sleep(2 + 2 * attempt)
        return None

    def db_size(self):
        """Largest dbSize over the members (the snapshot is a copy of one member's database file)."""
        sizes = [int(self.post(host, "/v3/maintenance/status", {}).get("dbSize", 0)) for host in self.clients]
        return max(sizes)

    def grow_to(self, target_bytes, value_bytes, log):
        """Load Kubernetes-shaped keys until the database is about target_bytes (within 3 %).

        Each load gets its own key prefix so that nothing is overwritten (no history, no compaction
        needed); the ratio of database growth to payload is learnt from each load."""
        ratio = 1.4
        loads = []
        for _attempt in range(8):
            current = self.db_size()
            if current >= target_bytes * 0.97:
                break
            payload = (target_bytes - current) / ratio
            keys = max(1, int(payload // value_bytes))
            prefix = "/registry" if self.batches == 0 else "/registry/bench-load-%d" % self.batches
            self.batches += 1
            result = self.lab.load(keys, value_bytes, prefix=prefix)
            grown = self.db_size() - current
            if grown > 0:
                ratio = max(1.0, grown / float(keys * value_bytes))
            loads.append(result)
            log("loaded %d keys of %d bytes under %s in %.1f s: database %.1f MB"
                % (keys, value_bytes, prefix, result["seconds"], (current + grown) / 1e6))
        return {"db_bytes": self.db_size(), "loads": loads}

    def range_keys(self, host, key, range_end, serializable=False):
        """Every key in [key, range_end), paged so that no member reads a whole large range at once."""
        keys = []
        while True:
            body = {"key": etcdgw.b64(key), "range_end": etcdgw.b64(range_end), "keys_only": True,
                    "limit": str(PAGE), "serializable": serializable}
            reply = self.post(host, "/v3/kv/range", body)
            page = [etcdgw.unb64(kv["key"]) for kv in reply.get("kvs") or []]
            keys.extend(page)
            if not reply.get("more") or not page:
                return keys
            key = page[-1] + b"\0"

    def count(self, host, serializable=True):
        total = 0
        for key, range_end in stable_ranges():
            reply = self.post(host, "/v3/kv/range", {
                "key": etcdgw.b64(key), "range_end": etcdgw.b64(range_end), "count_only": True,
                "serializable": serializable})
            total += int(reply.get("count", 0))
        return total

    def value_hash(self, host, key, serializable=True):
        reply = self.post(host, "/v3/kv/range", {"key": etcdgw.b64(key), "serializable": serializable})
        kvs = reply.get("kvs") or []
        return hashlib.sha256(etcdgw.unb64(kvs[0].get("value"))).hexdigest() if kvs else None

    def record(self, label, samples=48):
        """Mark the data and record what the next snapshot will hold (call right before taking it)."""
        self.post(None, "/v3/kv/put", {"key": etcdgw.b64(MARKER), "value": etcdgw.b64(label)})
        self.post(None, "/v3/kv/deleterange", {"key": etcdgw.b64(AFTER_SNAPSHOT)})
        keys = []
        for key, range_end in stable_ranges():
            keys.extend(self.range_keys(None, key, range_end))
        keys.sort()
        rnd = random.Random(label)
        sample = sorted(set(rnd.sample(keys, min(samples, len(keys))) + [MARKER.encode()]))
        digest = hashlib.sha256(b"\n".join(keys)).hexdigest()
        return {"label": label, "keys": keys, "count": len(keys), "keys_sha256": digest,
                "values": {k.decode(): self.value_hash(None, k.decode(), serializable=False) for k in sample}}

    def disturb(self, expected, run_id):
        """Change the live data after the snapshot: a restore must undo both changes."""
        self.post(None, "/v3/kv/put", {"key": etcdgw.b64(AFTER_SNAPSHOT), "value": etcdgw.b64(run_id)})
        victim = sorted(k for k in expected["values"] if k != MARKER)[0]
        self.post(None, "/v3/kv/deleterange", {"key": etcdgw.b64(victim)})

    def verify(self, expected):
        """Problems found ([] = the cluster serves exactly the snapshot's keys, on every member)."""
        problems = []
        keys = []
        for key, range_end in stable_ranges():
            keys.extend(self.range_keys(None, key, range_end))
        keys.sort()
        if keys != expected["keys"]:
            have, want = set(keys), set(expected["keys"])
            problems.append("key set differs from the snapshot: %d extra (e.g. %s), %d missing (e.g. %s)" % (
                len(have - want), sorted(have - want)[:3], len(want - have), sorted(want - have)[:3]))
        for host in sorted(self.clients):
            count = self.count(host)
            if count != expected["count"]:
                problems.append("%s serves %d keys, the snapshot holds %d" % (host, count, expected["count"]))
            for key, digest in sorted(expected["values"].items()):
                got = self.value_hash(host, key)
                if got != digest:
                    problems.append("%s: value of %s differs from the snapshot's" % (host, key))
                    break
        return problems


def summary(expected):
    """What goes into the results file (not the key list itself)."""
    return {k: v for k, v in expected.items() if k not in ("keys", "values")}
