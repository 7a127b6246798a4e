"""`ansible-galaxy collection build` of this repository: the artifact holds what users need and nothing of the
development tree (the lab's etcd binary cache, venvs, build/, caches, backups), and stays small."""

import fnmatch
import os
import subprocess
import sys
import tarfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The ansible-galaxy of the interpreter running the tests: .venv's under `make unit`, the old
# ansible-core's under `make compat`.
ANSIBLE_GALAXY = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")

# Measured: 298,413 bytes (version 0.1.0, December 2026); the bound leaves over 3x headroom for growth.
MAX_ARTIFACT_BYTES = 1000000
MAX_FILE_BYTES = 1000000
# Every top-level entry a user may get; a new one must be added here on purpose (or to build_ignore).
ALLOWED_TOP_LEVEL = {
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "COPYING", "CHANGELOG.rst", "CHANGELOG.md",
    "plugins", "roles", "playbooks", "meta", "docs", "changelogs", "requirements.txt", "bindep.txt",
}
# The shipped trees, compared file by file with the repository's.
SHIPPED_TREES = ("plugins", "roles", "playbooks", "meta", "docs", "changelogs")
FORBIDDEN_PARTS = (".lab-cache", ".lab", ".venv", "build", "__pycache__", "etcd-backups", ".pytest_cache", ".git")
ETCD_BINARIES = ("etcd", "etcdctl", "etcdutl")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """(path, {member name: TarInfo}) of the collection built from the working tree."""
    out = tmp_path_factory.mktemp("galaxy-build")
    proc = subprocess.run([ANSIBLE_GALAXY, "collection", "build", "--output-path", str(out), REPO_ROOT],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = [name for name in os.listdir(str(out)) if name.endswith(".tar.gz")]
    assert len(built) == 1 and built[0].startswith("kubeops-etcd-"), built
    path = os.path.join(str(out), built[0])
    with tarfile.open(path) as tar:
        members = {member.name.rstrip("/"): member for member in tar.getmembers()}
    return path, members


def _repo_files(tree):
    """Files of one shipped tree in the working tree, as the artifact names them."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO_ROOT, tree)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or name.endswith((".pyc", ".pyo", ".retry")):
                continue
            found.add(os.path.relpath(os.path.join(dirpath, name), REPO_ROOT))
    return found


def test_artifact_holds_no_lab_cache_venv_build_output_or_backups(artifact):
    _path, members = artifact
    leaked = sorted(
        name for name in members
        if set(name.split("/")) & set(FORBIDDEN_PARTS)
        or name.startswith("tests/output") or name.startswith(".venv")
        or fnmatch.fnmatch(name, "*.pyc")
    )
    assert leaked == []


def test_artifact_holds_no_etcd_binaries_and_no_large_file(artifact):
    _path, members = artifact
    binaries = sorted(name for name, member in members.items()
                      if member.isfile() and os.path.basename(name) in ETCD_BINARIES)
    assert binaries == []
    large = sorted((name, member.size) for name, member in members.items() if member.size > MAX_FILE_BYTES)
    assert large == []


def test_artifact_is_small(artifact):
    path, _members = artifact
    assert os.path.getsize(path) < MAX_ARTIFACT_BYTES, os.path.getsize(path)


def test_artifact_top_level_is_only_what_users_need(artifact):
    _path, members = artifact
    top_level = {name.split("/")[0] for name in members}
    assert top_level - ALLOWED_TOP_LEVEL == set()
    assert {"MANIFEST.json", "FILES.json", "README.md", "plugins", "roles", "playbooks", "meta"} <= top_level


def test_artifact_holds_every_module_role_and_playbook(artifact):
    _path, members = artifact
    files = {name for name, member in members.items() if member.isfile()}
    modules = [name for name in os.listdir(os.path.join(REPO_ROOT, "plugins", "modules"))
               if name.endswith(".py") and name != "__init__.py"]
    roles = os.listdir(os.path.join(REPO_ROOT, "roles"))
    playbooks = [name for name in os.listdir(os.path.join(REPO_ROOT, "playbooks")) if name.endswith((".yml", ".yaml"))]
    assert modules and roles and playbooks
    assert sorted(m for m in modules if "plugins/modules/" + m not in files) == []
    assert sorted(r for r in roles if "roles/%s/tasks/main.yml" % r not in files) == []
    assert sorted(p for p in playbooks if "playbooks/" + p not in files) == []
    for tree in SHIPPED_TREES:
        assert sorted(_repo_files(tree) - files) == [], tree
