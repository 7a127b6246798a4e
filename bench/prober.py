"""The outage as a client sees it: every API server's /readyz polled every 100 ms over HTTPS.

One thread per API server, each on its own 100 ms tick; a probe counts as up only on HTTP 200
with the body "ok". Nothing here reads the playbook's or the script's own clock."""

import http.client
import ssl
import threading
import time

from timeline import all_down, down_intervals, total


class ReadyzProber(object):
    def __init__(self, servers, cafile, interval=0.1, timeout=0.5):
        """servers: {name: (ip, port)}; cafile: the CA that signed the API servers' certificates."""
        self.servers = dict(servers)
        self.interval = interval
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=cafile)
        # The lab's serving certificates carry the node IP, but the point here is reachability,
        # not name checks: keep the chain verification, skip the host name match.
        self.context.check_hostname = False
        self.samples = {name: [] for name in self.servers}
        self._stop = threading.Event()
        self._threads = []
        self.started = None
        self.stopped = None

    def probe(self, name):
        ip, port = self.servers[name]
        conn = http.client.HTTPSConnection(ip, port, context=self.context, timeout=self.timeout)
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            return response.status == 200 and response.read().strip() == b"ok"
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _loop(self, name):
        tick = time.time()
        while not self._stop.is_set():
            when = time.time()
            self.samples[name].append((when, self.probe(name)))
            tick += self.interval
            delay = tick - time.time()
            if delay < 0:  # a probe took longer than the interval: start the next one now
                tick = time.time()
                delay = 0
            self._stop.wait(delay)

    def start(self):
        self.started = time.time()
        for name in self.servers:
            thread = threading.Thread(target=self._loop, args=(name,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_all_ready(self, timeout):
        """Block until the newest sample of every server is ok (or timeout); True if they all are."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(samples and samples[-1][1] and samples[-1][0] > self.started for samples in self.samples.values()):
                return True
            time.sleep(self.interval)
        return False

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.stopped = time.time()

    def report(self):
        """Per server: down intervals and seconds; overall: the windows when no server was ok."""
        per_server = {name: down_intervals(samples, self.stopped) for name, samples in self.samples.items()}
        windows = all_down(per_server)
        return {
            "interval_seconds": self.interval,
            "probes": {name: len(samples) for name, samples in self.samples.items()},
            "servers": {name: {"down": [[round(a, 3), round(b, 3)] for a, b in intervals],
                               "down_seconds": round(total(intervals), 2),
                               "ok_at_end": bool(self.samples[name] and self.samples[name][-1][1])}
                        for name, intervals in per_server.items()},
            "outage_windows": [[round(a, 3), round(b, 3)] for a, b in windows],
            "outage_seconds": round(total(windows), 2),
            "max_server_down_seconds": round(max([total(i) for i in per_server.values()] or [0]), 2),
        }
