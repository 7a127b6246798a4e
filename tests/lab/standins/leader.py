"""kube-controller-manager / kube-scheduler stand-in (shared code).

Imitates leader election only: reads the API server URL and CA from --kubeconfig,
every 2 s asks the API server stand-in to acquire/renew the leader lease
/registry/leases/kube-system/<component> (etcd lease TTL 15 s).  A leader that cannot
renew for 15 s exits 1 ("leaderelection lost"), like the real components; the kubelet
restarts it.  Not imitated: controllers, scheduling, health ports (nothing listens).
"""
import base64
import http.client
import os
import socket
import ssl
import sys
import tempfile
import time
import secrets
from urllib.parse import urlparse

import yaml


def log(msg):
    sys.stderr.write("%s %s\n" % (time.strftime("I%m%d %H:%M:%S"), msg))
    sys.stderr.flush()


def main(component):
    fl = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    with open(fl["kubeconfig"]) as f:
        kc = yaml.safe_load(f)
    cluster = kc["clusters"][0]["cluster"]
    u = urlparse(cluster["server"])
    ca = base64.b64decode(cluster.get("certificate-authority-data", ""))
    ctx = ssl.create_default_context()
    if ca:
        with tempfile.NamedTemporaryFile("wb", delete=False) as t:
            t.write(ca)
        ctx.load_verify_locations(t.name)
        os.unlink(t.name)
    ctx.check_hostname = False
    holder = "%s_%s" % (socket.gethostname(), secrets.token_hex(8))
    leader = False
    last_ok = time.time()
    log("%s stand-in starting, identity %s, apiserver %s" % (component, holder, cluster["server"]))
    while True:
        code = None
        try:
            c = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=3)
            c.request("POST", "/kubeops-lab/leader?name=%s&holder=%s" % (component, holder))
            r = c.getresponse()
            r.read()
            code = r.status
            c.close()
        except Exception as e:
            err = e
        else:
            err = "HTTP %s" % code
        if code == 200:
            if not leader:
                log("successfully acquired lease kube-system/%s" % component)
            leader, last_ok = True, time.time()
        elif code == 409:
            last_ok = time.time()
            if leader:
                log("F leaderelection lost")
                sys.exit(1)
        else:
            if leader and time.time() - last_ok > 15:
                log("F leaderelection lost (cannot renew: %s)" % err)
                sys.exit(1)
        time.sleep(2)


if __name__ == "__main__":
    main(sys.argv.pop(1))
