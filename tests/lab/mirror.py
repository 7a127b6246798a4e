"""A loopback etcd release mirror for the tests: release-shaped tarballs built from the lab's cached binaries.

    import mirror                                   # tests/lab on sys.path (lablib puts it there)
    m = mirror.Mirror(root)                         # root: a directory the test owns
    m.add("3.5.16")                                 # every variant of that release, see below
    url = m.start()                                 # http://127.0.0.1:<free port>, a child process
    m.template("good")                              # URL template with {version} and {arch}, like etcd's assets
    m.stop()                                        # by PID

or `python3 tests/lab/mirror.py serve ROOT` (prints the URL, serves until SIGTERM).

Each variant is a release tree as under https://github.com/etcd-io/etcd/releases/download/ :
  good/v<ver>/etcd-v<ver>-linux-amd64.tar.gz   top dir etcd-v<ver>-linux-amd64/ with etcd, etcdctl, etcdutl
                                               (3.4: no etcdutl) and README.md, as etcd's release tarballs
  good/v<ver>/SHA256SUMS                       `<hex>  <file>` lines: the tarball's and other assets'
  corrupt/v<ver>/...                           the tarball with bytes changed, the good tarball's SHA256SUMS
  nosum/v<ver>/...                             the good tarball, a SHA256SUMS without its line (as v3.5.18's)
The good tarball is built once per version into <lab cache>/releases (gzip level 1, fixed mtimes).
"""
import gzip
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import etcdfetch  # noqa: E402

ARCH = "amd64"
VARIANTS = ("good", "corrupt", "nosum")
MTIME = 1700000000


def tarball_name(version, arch=ARCH):
    return "etcd-v%s-linux-%s.tar.gz" % (version, arch)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_tarball(cache, version, dest):
    """etcd's release layout from the lab cache's binaries of version (fetched when missing)."""
    bindir = etcdfetch.fetch(cache, version)
    top = "etcd-v%s-linux-%s" % (version, ARCH)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=MTIME) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(top)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
        tar.addfile(info)
        for name in ("README.md", "etcd", "etcdctl", "etcdutl"):
            if name == "README.md":
                data = ("# etcd v%s (kubeops lab mirror)\n" % version).encode()
                info = tarfile.TarInfo("%s/%s" % (top, name))
                info.size, info.mode, info.mtime = len(data), 0o644, MTIME
                tar.addfile(info, io.BytesIO(data))
                continue
            path = os.path.join(bindir, name)
            if not os.path.exists(path):
                continue
            info = tarfile.TarInfo("%s/%s" % (top, name))
            info.size, info.mode, info.mtime = os.path.getsize(path), 0o755, MTIME
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    os.replace(tmp, dest)
    return dest


def release_tarball(cache, version):
    """The good tarball of version in <cache>/releases, built on first use."""
    d = os.path.join(cache, "releases")
    os.makedirs(d, exist_ok=True)
    dest = os.path.join(d, tarball_name(version))
    if not os.path.exists(dest):
        build_tarball(cache, version, dest)
    return dest


def sums_text(version, tarball_sha, with_tarball=True):
    """SHA256SUMS as etcd publishes it: one `<hex>  <file>` line per asset (other assets: stand-in hashes)."""
    lines = []
    for asset in ("etcd-v%s-darwin-amd64.zip" % version, tarball_name(version, "arm64"),
                  tarball_name(version), "etcd-v%s-windows-amd64.zip" % version):
        if asset == tarball_name(version):
            if with_tarball:
                lines.append("%s  %s" % (tarball_sha, asset))
        else:
            lines.append("%s  %s" % (hashlib.sha256(asset.encode()).hexdigest(), asset))
    return "".join(line + "\n" for line in lines)


class Mirror:
    def __init__(self, root, cache=None):
        self.root = os.path.abspath(root)
        self.cache = os.path.abspath(cache or os.environ.get("KUBEOPS_LAB_CACHE")
                                     or os.path.join(os.path.dirname(os.path.dirname(HERE)), ".lab-cache"))
        self.process = None
        self.url = None

    def path(self, variant, version, name=None):
        return os.path.join(self.root, variant, "v" + version, name or tarball_name(version))

    def add(self, version):
        """Every variant of version's release under root; returns the good tarball's SHA-256."""
        good = release_tarball(self.cache, version)
        digest = sha256(good)
        for variant in VARIANTS:
            d = os.path.dirname(self.path(variant, version))
            os.makedirs(d, exist_ok=True)
            target = self.path(variant, version)
            if variant == "corrupt":
                shutil.copyfile(good, target)
                with open(target, "r+b") as handle:
                    handle.seek(os.path.getsize(target) // 2)
                    block = handle.read(64)
                    handle.seek(-len(block), os.SEEK_CUR)
                    handle.write(bytes(b ^ 0xFF for b in block))
            elif not os.path.exists(target):
                os.symlink(good, target)
            with open(os.path.join(d, "SHA256SUMS"), "w") as handle:
                handle.write(sums_text(version, digest, with_tarball=variant != "nosum"))
        return digest

    def template(self, variant="good"):
        """URL template of a variant's tarballs, with {version} and {arch} like etcd's release assets."""
        return "%s/%s/v{version}/etcd-v{version}-linux-{arch}.tar.gz" % (self.url, variant)

    def start(self):
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", self.root],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the mirror server did not start (printed %r)" % self.url)
        return self.url

    def stop(self):
        if self.process is not None:
            try:
                os.kill(self.process.pid, signal.SIGTERM)
            except OSError:
                pass
            self.process.wait(timeout=10)
            self.process.stdout.close()
            self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve(root):
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    handler = functools.partial(Quiet, directory=root)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        print("http://127.0.0.1:%d" % server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(os.path.abspath(sys.argv[2]))
    else:
        sys.exit("usage: mirror.py serve ROOT")
