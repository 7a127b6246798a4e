"""meta/execution-environment.yml works for ansible-builder both ways it is read (see the file's comment).

Only `ansible-builder create` runs here: it validates the definition and writes the build context. No container
engine exists on CI, so the image is never built (`ansible-builder build`); docs/awx.md says so.
"""

import os
import shutil
import subprocess
import sys

import yaml

from ansible_builder._target_scripts import introspect

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, "build", "collections")
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")


def read(path):
    with open(path) as handle:
        return handle.read()


def requirement_lines(path):
    return [line for line in read(path).splitlines() if line.strip() and not line.startswith("#")]


def test_ansible_builder_create_accepts_the_definition_and_the_containerfile_installs_both_files(tmp_path):
    # The collection root as builder sees it: the definition beside the two dependency files it names.
    root = tmp_path / "collection"
    root.mkdir()
    shutil.copy(os.path.join(REPO, "meta", "execution-environment.yml"), str(root / "execution-environment.yml"))
    for name in ("requirements.txt", "bindep.txt"):
        shutil.copy(os.path.join(REPO, name), str(root / name))
    context = tmp_path / "context"

    proc = subprocess.run([BUILDER, "create", "--file", str(root / "execution-environment.yml"),
                           "--context", str(context), "--output-filename", "Containerfile"],
                          capture_output=True, text=True, check=False, timeout=120)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    definition = yaml.safe_load(read(os.path.join(REPO, "meta", "execution-environment.yml")))
    assert definition["version"] == 3
    # The dependency files land in the context unchanged...
    assert read(str(context / "_build" / "requirements.txt")) == read(os.path.join(REPO, "requirements.txt"))
    assert read(str(context / "_build" / "bindep.txt")) == read(os.path.join(REPO, "bindep.txt"))
    containerfile = read(str(context / "Containerfile"))
    lines = containerfile.splitlines()
    # ...and the Containerfile installs them: introspection merges them, assemble builds the wheels and lists
    # the system packages, the final stage installs the packages bindep selects.
    assert 'ARG EE_BASE_IMAGE="%s"' % definition["images"]["base_image"]["name"] in lines
    assert "COPY _build/requirements.txt requirements.txt" in lines
    assert "COPY _build/bindep.txt bindep.txt" in lines
    introspect_line = [line for line in lines if "introspect.py introspect" in line]
    assert len(introspect_line) == 1, containerfile
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in introspect_line[0]
    assert lines.index("RUN /output/scripts/assemble") > lines.index(introspect_line[0])
    assert "RUN /output/scripts/install-from-bindep && rm -rf /output/wheels" in lines
    assert 'ARG ANSIBLE_INSTALL_REFS="%s %s"' % (definition["dependencies"]["ansible_core"]["package_pip"],
                                                 definition["dependencies"]["ansible_runner"]["package_pip"]) in lines
    for script in ("introspect.py", "assemble", "install-from-bindep"):
        assert os.path.isfile(str(context / "_build" / "scripts" / script)), script


def test_builder_introspection_reads_the_collections_dependencies_relative_to_its_root():
    # What the builder stage runs on every collection an EE definition installs (dependencies.galaxy).
    found = introspect.process(data_dir=COLLECTIONS)
    assert found["python"]["kubeops.etcd"] == requirement_lines(os.path.join(REPO, "requirements.txt"))
    assert found["system"]["kubeops.etcd"] == requirement_lines(os.path.join(REPO, "bindep.txt"))
