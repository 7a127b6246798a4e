"""kube-apiserver stand-in.

Imitates what matters to etcd backup/restore tooling:
- reads --etcd-servers, --etcd-cafile/--etcd-certfile/--etcd-keyfile, --advertise-address,
  --secure-port, --tls-cert-file/--tls-private-key-file from its argv;
- at start checks etcd; unreachable etcd => exit 1 (the kubelet restarts it with back-off,
  like the real one crash-looping);
- serves /livez, /readyz, /healthz over HTTPS on <advertise-address>:<secure-port>:
  200 "ok" while its last etcd check (every 2 s) succeeded within 10 s, else 500;
- writes its identity lease /registry/leases/kube-system/apiserver-<id> and its
  endpoint lease /registry/masterleases/<ip> (etcd lease, TTL 15 s) every 5 s;
- POST /kubeops-lab/leader?name=N&holder=H lets the controller-manager and scheduler
  stand-ins hold /registry/leases/kube-system/<N> (value JSON, etcd lease TTL 15 s).
Not imitated: the Kubernetes API, authn/authz, watch caches, protobuf encoding (values are JSON).
etcd access uses etcd's JSON gRPC gateway (no gRPC library here; cheaper than etcdctl).
"""
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import etcdgw  # noqa: E402


def flags(argv):
    out = {}
    for a in argv:
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            out[k] = v
    return out


F = flags(sys.argv[1:])
SERVERS = F.get("etcd-servers", "https://127.0.0.1:2379").split(",")
CA, CERT, KEY = F.get("etcd-cafile"), F.get("etcd-certfile"), F.get("etcd-keyfile")
ADDR = F.get("advertise-address", "127.0.0.1")
PORT = int(F.get("secure-port", "6443"))
ID = "apiserver-" + secrets.token_hex(13)
STATE = {"last_ok": 0.0, "err": "not checked yet"}
LOCK = threading.Lock()


def log(msg):
    sys.stderr.write("%s %s\n" % (time.strftime("I%m%d %H:%M:%S"), msg))
    sys.stderr.flush()


def clients():
    return [etcdgw.Client(u, CA, CERT, KEY, timeout=5) for u in SERVERS]


CLIENTS = clients()


def with_etcd(fn):
    err = None
    for c in CLIENTS:
        try:
            return fn(c)
        except Exception as e:
            err = e
    raise etcdgw.EtcdError(str(err))


def check():
    def h(c):
        if not c.health():
            raise etcdgw.EtcdError("%s unhealthy" % c.url)
        return True
    with LOCK:
        try:
            with_etcd(h)
            STATE["last_ok"] = time.time()
            STATE["err"] = None
            return True
        except Exception as e:
            STATE["err"] = str(e)
            return False


def leases():
    with LOCK:
        def w(c):
            lid = c.grant(15)
            c.put("/registry/masterleases/" + ADDR,
                  json.dumps({"kind": "Endpoints", "subsets": [{"addresses": [{"ip": ADDR}],
                                                                "ports": [{"port": PORT}]}]}), lease=lid)
            c.put("/registry/leases/kube-system/" + ID,
                  json.dumps({"kind": "Lease", "metadata": {"name": ID, "namespace": "kube-system",
                                                            "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver",
                                                                       "kubernetes.io/hostname": socket.gethostname()}},
                              "spec": {"holderIdentity": ID, "leaseDurationSeconds": 3600,
                                       "renewTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}))
        with_etcd(w)


def leader(name, holder):
    key = "/registry/leases/kube-system/" + name
    with LOCK:
        def w(c):
            val = json.dumps({"kind": "Lease", "metadata": {"name": name, "namespace": "kube-system"},
                              "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                                       "renewTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}})
            cur = c.get(key)
            if cur is not None:
                try:
                    if json.loads(cur)["spec"]["holderIdentity"] != holder:
                        return False
                except Exception:
                    pass
                c.put(key, val, lease=c.grant(15))
                return True
            return c.put_if_absent(key, val, lease=c.grant(15))
        return with_etcd(w)


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        p = urlparse(self.path).path
        if p in ("/livez", "/readyz", "/healthz"):
            ok = time.time() - STATE["last_ok"] < 10
            if ok or p == "/livez" and time.time() - STATE["last_ok"] < 60:
                self.reply(200, "ok")
            else:
                self.reply(500, "[-]etcd failed: %s\n%s check failed" % (STATE["err"], p[1:]))
        elif p == "/version":
            self.reply(200, json.dumps({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kubeops-lab"}))
        else:
            self.reply(404, "404 page not found")

    def do_POST(self):
        u = urlparse(self.path)
        if u.path == "/kubeops-lab/leader":
            q = parse_qs(u.query)
            try:
                got = leader(q["name"][0], q["holder"][0])
            except Exception as e:
                self.reply(503, "etcd: %s" % e)
                return
            self.reply(200 if got else 409, "leader" if got else "held by another")
        else:
            self.reply(404, "404 page not found")


def main():
    if not check():
        log("F failed to reach etcd %s: %s" % (SERVERS, STATE["err"]))
        sys.exit(1)
    srv = ThreadingHTTPServer((ADDR, PORT), H)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(F.get("tls-cert-file"), F.get("tls-private-key-file"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    log("I serving securely on %s:%d, etcd %s" % (ADDR, PORT, ",".join(SERVERS)))
    last_lease = 0.0
    while True:
        ok = check()
        if ok and time.time() - last_lease >= 5:
            try:
                leases()
                last_lease = time.time()
            except Exception as e:
                log("E lease update failed: %s" % e)
        elif not ok:
            log("E etcd check failed: %s" % STATE["err"])
        time.sleep(2)


if __name__ == "__main__":
    main()
