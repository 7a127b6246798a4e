"""Tiny etcd v3 client over etcd's JSON gRPC gateway (/v3/..., HTTPS + client cert).

The lab has no gRPC library; the gateway is served by etcd 3.4+ on the client port
and is far cheaper on CPU than spawning etcdctl for every request.
"""
import base64
import http.client
import json
import ssl
from urllib.parse import urlparse


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def unb64(s):
    return base64.b64decode(s or "")


class EtcdError(Exception):
    pass


class Client:
    def __init__(self, url, cacert, cert, key, timeout=5.0):
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port or 2379
        self.ctx = ssl.create_default_context(cafile=cacert)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.check_hostname = False
        self.timeout = timeout
        self.conn = None
        self.url = url

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def _req(self, method, path, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
            try:
                data = json.dumps(body).encode() if body is not None else None
                self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                raw = r.read()
                if r.status != 200:
                    raise EtcdError("%s %s: HTTP %d %s" % (method, path, r.status, raw[:300].decode("utf-8", "replace")))
                return json.loads(raw or b"{}")
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt:
                    raise EtcdError("%s%s: %s" % (self.url, path, e))

    def post(self, path, body):
        return self._req("POST", path, body)

    def health(self):
        r = self._req("GET", "/health")
        return str(r.get("health")).lower() == "true"

    def put(self, key, value, lease=None):
        body = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return self.post("/v3/kv/put", body)

    def get(self, key):
        r = self.post("/v3/kv/range", {"key": b64(key)})
        kvs = r.get("kvs") or []
        return unb64(kvs[0].get("value")) if kvs else None

    def grant(self, ttl):
        return self.post("/v3/lease/grant", {"TTL": str(ttl)})["ID"]

    def txn_put_many(self, items):
        return self.post("/v3/kv/txn", {"success": [{"requestPut": {"key": b64(k), "value": b64(v)}}
                                                    for k, v in items]})

    def put_if_absent(self, key, value, lease=None):
        put = {"key": b64(key), "value": b64(value)}
        if lease:
            put["lease"] = str(lease)
        r = self.post("/v3/kv/txn", {"compare": [{"target": "CREATE", "key": b64(key), "create_revision": "0",
                                                  "result": "EQUAL"}],
                                     "success": [{"requestPut": put}]})
        return bool(r.get("succeeded"))
