"""etcd_tools on 1-node labs without etcd tools on the host: the container's own tools, or the mirror install.

Two labs: etcd 3.5.30 (official image registry.k8s.io/etcd:3.5.30-0: etcdctl and etcdutl, no shell) and 3.5.16
(Kubernetes-built image 3.5.16-0: etcdctl only, so a restore needs etcdutl from the mirror). The mirror is the lab's
loopback release server (tests/lab/mirror.py) serving release-shaped tarballs built from the lab's binaries.
"""

import json
import os
import sys

import pytest

from modhelpers import run_task, tree_state

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "tests", "lab"))
import mirror as lab_mirror  # noqa: E402

INSTALL_ROOT = "/var/lib/kubeops-etcd/tools"

OFFICIAL = pytest.mark.parametrize("lab", [pytest.param(
    {"nodes": 1, "etcd_version": "3.5.30", "ip_base": 14, "no_tools": "all", "dir": "/tmp/kubeops-tools-14"},
    id="3.5.30-official")], indirect=True, scope="module")
KUBERNETES_BUILT = pytest.mark.parametrize("lab", [pytest.param(
    {"nodes": 1, "etcd_version": "3.5.16", "ip_base": 18, "no_tools": "all", "dir": "/tmp/kubeops-tools-18"},
    id="3.5.16-kubernetes-built")], indirect=True, scope="module")


@pytest.fixture(scope="module")
def release_mirror(tmp_path_factory):
    server = lab_mirror.Mirror(str(tmp_path_factory.mktemp("mirror")))
    server.add("3.5.16")
    server.start()
    yield server
    server.stop()


def tools_task(run_playbook, lab, args, check=False):
    return run_task(run_playbook, lab, "Resolve the etcd tools of the node", "etcd_tools", args, check=check)


def crictl_exec(lab, cid, *argv):
    return lab.exec("cp1", ["crictl", "exec", cid] + list(argv))


@OFFICIAL
def test_official_image_resolves_to_the_containers_tools(lab, run_playbook):
    for tool in ("etcdctl", "etcdutl"):
        assert lab.exec("cp1", ["sh", "-c", "command -v " + tool]).returncode != 0, "the lab has host tools"
    run, result = tools_task(run_playbook, lab, {})
    assert run.rc == 0, run
    cid = result["container_id"]
    assert result["changed"] is False and result["source"] == "container"
    assert (result["etcdctl"], result["etcdutl"]) == ("etcdctl", "etcdutl")
    assert result["container_exec"] == ["/usr/local/sbin/crictl", "exec", cid]
    assert result["image"] == "registry.k8s.io/etcd:3.5.30-0" and result["image_kind"] == "official"
    assert result["container_tools"] == {"etcdctl": "3.5.30", "etcdutl": "3.5.30"}
    assert result["host_tools"] == {"etcdctl": None, "etcdutl": None}
    assert result["plan_line"] == ("etcdctl and etcdutl 3.5.30 from the running etcd container %s "
                                   "(registry.k8s.io/etcd:3.5.30-0, official image)" % cid[:13])
    assert result["passed_over"] == ["host: no etcdctl on PATH", "host: no etcdutl on PATH"]
    # what the roles would run: the returned argv prefix and tool work
    p = crictl_exec(lab, cid, result["etcdutl"], "version")
    assert p.returncode == 0 and "etcdutl version: 3.5.30" in p.stdout
    assert not os.path.exists(lab.node_path("cp1", INSTALL_ROOT))


@KUBERNETES_BUILT
def test_kubernetes_built_image_serves_a_backup_and_a_restore_installs_from_the_mirror(
        lab, run_playbook, release_mirror):
    run, backup = tools_task(run_playbook, lab, {"tools": ["etcdctl"]})
    assert run.rc == 0, run
    assert backup["source"] == "container" and backup["etcdctl"] == "etcdctl" and backup["etcdutl"] is None
    assert backup["container_tools"] == {"etcdctl": "3.5.16", "etcdutl": None}
    assert backup["image_kind"] == "kubernetes-built"

    # without a mirror there is nothing that restores: the message says what was tried and what to do
    run, failed = tools_task(run_playbook, lab, {})
    assert run.rc != 0 and run.failed()
    assert "a Kubernetes-built image has no etcdutl" in failed["msg"]
    assert "set mirror_url (and install=true)" in failed["msg"]

    template = release_mirror.template("good")
    url = template.replace("{version}", "3.5.16").replace("{arch}", "amd64")
    install_dir = INSTALL_ROOT + "/etcd-v3.5.16-linux-amd64"
    host_dir = lab.node_path("cp1", install_dir)
    args = {"mirror_url": template, "install": True}
    results = []
    for check in (True, False, False, True):
        run, result = tools_task(run_playbook, lab, args, check=check)
        assert run.rc == 0, run
        results.append(result)
        if check and len(results) == 1:
            assert not os.path.exists(host_dir)
    assert [r["changed"] for r in results] == [True, True, False, False]
    first, installed, again = results[0], results[1], results[2]
    assert first["etcdctl"] is None and first["plan_line"].endswith("would be installed into " + install_dir)
    assert installed["source"] == "mirror"
    assert (installed["etcdctl"], installed["etcdutl"]) == (install_dir + "/etcdctl", install_dir + "/etcdutl")
    assert installed["plan_line"] == ("etcdctl and etcdutl 3.5.16 from the mirror %s, installed into %s"
                                      % (url, install_dir))
    assert again["plan_line"].endswith("already installed in " + install_dir)
    assert "container %s (registry.k8s.io/etcd:3.5.16-0): a Kubernetes-built image has no etcdutl" \
        % installed["container_id"][:13] in installed["passed_over"]
    assert installed["mirror"]["sha256"] == lab_mirror.sha256(release_mirror.path("good", "3.5.16"))

    # only the three binaries, 0755, in a 0755 dir the collection owns; the versions are the cluster's
    assert sorted(os.listdir(host_dir)) == [".kubeops-install.json", "etcd", "etcdctl", "etcdutl"]
    assert os.stat(host_dir).st_mode & 0o7777 == 0o755
    for name in ("etcd", "etcdctl", "etcdutl"):
        assert os.stat(os.path.join(host_dir, name)).st_mode & 0o7777 == 0o755
    for name in ("etcdctl", "etcdutl"):
        p = lab.exec("cp1", [installed[name], "version"])
        assert p.returncode == 0 and "%s version: 3.5.16" % name in p.stdout
    record = json.load(open(os.path.join(host_dir, ".kubeops-install.json")))
    assert record["sha256"] == installed["mirror"]["sha256"] and record["url"] == url
    assert sorted(os.listdir(lab.node_path("cp1", INSTALL_ROOT))) == ["etcd-v3.5.16-linux-amd64"]


@KUBERNETES_BUILT
def test_a_corrupted_tarball_or_a_missing_sums_line_is_refused_with_nothing_unpacked(
        lab, run_playbook, release_mirror, tmp_path):
    root = "/var/lib/kubeops-etcd/tools-refused"
    host_root = lab.node_path("cp1", root)
    for variant, words in (("corrupt", "the download is corrupt or the mirror holds another file"),
                           ("nosum", "has no line for etcd-v3.5.16-linux-amd64.tar.gz")):
        template = release_mirror.template(variant)
        for check in (True, False):
            run, result = tools_task(run_playbook, lab, {"mirror_url": template, "install": True,
                                                         "install_root": root}, check=check)
            if variant == "corrupt" and check:
                # check mode downloads nothing, so only SHA256SUMS is read: the plan, no verdict on the tarball
                assert run.rc == 0 and result["changed"] is True and result["etcdutl"] is None, run
            else:
                assert run.rc != 0 and run.failed(), run
                assert words in result["msg"] and "on cp1" in result["msg"]
            if variant == "nosum":
                assert "/nosum/v3.5.16/SHA256SUMS" in result["msg"] and "set sha256" in result["msg"]
            elif not check:
                assert "/corrupt/v3.5.16/etcd-v3.5.16-linux-amd64.tar.gz has SHA-256" in result["msg"]
            # nothing unpacked, no temporary left behind
            assert tree_state(host_root) == {}
    # a file:// mirror on the node (air-gapped) installs the same release
    local = tmp_path / "v3.5.16"
    local.mkdir()
    for name in ("etcd-v3.5.16-linux-amd64.tar.gz", "SHA256SUMS"):
        os.symlink(release_mirror.path("good", "3.5.16", name), str(local / name))
    template = "file://%s/v{version}/etcd-v{version}-linux-{arch}.tar.gz" % tmp_path
    run, result = tools_task(run_playbook, lab, {"mirror_url": template, "install": True, "install_root": root})
    assert run.rc == 0, run
    assert result["changed"] is True and result["etcdutl"] == root + "/etcd-v3.5.16-linux-amd64/etcdutl"
    assert result["mirror"]["sha256sums_url"] == "file://%s/v3.5.16/SHA256SUMS" % tmp_path


@KUBERNETES_BUILT
def test_install_root_in_a_distro_directory_is_refused(lab, run_playbook, release_mirror):
    run, result = tools_task(run_playbook, lab, {"mirror_url": release_mirror.template("good"), "install": True,
                                                 "install_root": "/usr/local/etcd"})
    assert run.rc != 0 and "lies in /usr, which belongs to the distribution" in result["msg"]
    assert not os.path.exists("/usr/local/etcd")
