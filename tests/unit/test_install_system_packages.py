"""scripts/install-system-packages.sh decides what to install: nothing (no apt-get, no root needed) when every
package is there; the missing ones with one apt-get as root; otherwise a message naming them and the command.
dpkg-query, apt-get and id are stand-ins on PATH that record how they were called."""

import os
import subprocess

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO_ROOT, "scripts", "install-system-packages.sh")


def _stub(directory, name, body):
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


@pytest.fixture
def host(tmp_path):
    """run(missing=(), uid=0, extra_tools=()) -> (CompletedProcess, [apt-get argv strings])."""
    bin_dir = str(tmp_path / "bin")
    os.mkdir(bin_dir)
    log = str(tmp_path / "apt-get.log")

    def run(missing=(), uid=0, extra_tools=()):
        # dpkg-query -W -f=FORMAT PKG...: a status line for every installed package, like the real one.
        _stub(bin_dir, "dpkg-query", 'shift 2\nfor p in "$@"; do case " %s " in *" $p "*) ;; *) echo "$p ii ";; '
              'esac; done\n' % " ".join(missing))
        _stub(bin_dir, "apt-get", 'echo "$*" >> %s\n' % log)
        _stub(bin_dir, "id", "echo %d\n" % uid)
        for tool in extra_tools:
            _stub(bin_dir, tool, "exit 0\n")
        env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
        proc = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, check=False, timeout=60)
        calls = open(log).read().splitlines() if os.path.exists(log) else []
        return proc, calls

    return run


def test_nothing_missing_runs_no_apt_get_even_without_root(host):
    proc, calls = host(missing=(), uid=65534)
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert proc.stdout == "" and proc.stderr == ""


def test_missing_packages_are_installed_as_root_with_one_apt_get(host):
    proc, calls = host(missing=("openssh-server", "age"), uid=0)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["update -q", "install -y -q --no-install-recommends openssh-server age"]
    assert "installing system packages: openssh-server age" in proc.stdout


def test_missing_packages_without_root_name_them_and_the_command(host):
    proc, calls = host(missing=("openssh-server", "zstd"), uid=1000)
    assert proc.returncode == 1
    assert calls == []
    assert "error: missing system packages: openssh-server zstd" in proc.stderr
    assert "apt-get update && apt-get install -y --no-install-recommends openssh-server zstd" in proc.stderr


def test_etcd_on_the_host_path_is_refused(host):
    proc, calls = host(missing=(), uid=0, extra_tools=("etcdctl",))
    assert proc.returncode == 1
    assert calls == []
    assert "error: etcdctl is installed on this host" in proc.stderr
    assert "the lab's missing-tools tests need it absent" in proc.stderr
