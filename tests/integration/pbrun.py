"""Running ansible-playbook the way the tests, the benchmark and the demo do: real ansible-playbook against
an inventory, with the result_json callback; a plain module (bench/ and scripts/ import it), not a conftest."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_DIR = os.path.join(REPO_ROOT, "tests", "lab")
CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, "build", "collections")
BIN_DIR = os.path.dirname(sys.executable)

if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

# Every etcd version a kubeadm cluster may run that we can get as a package here.
# KUBEOPS_TEST_ETCD_VERSIONS narrows it (comma-separated) for a quick local run.
ALL_ETCD_VERSIONS = ["3.4.23", "3.5.1", "3.5.16", "3.5.30"]
ETCD_VERSIONS = [
    v for v in os.environ.get("KUBEOPS_TEST_ETCD_VERSIONS", ",".join(ALL_ETCD_VERSIONS)).split(",") if v
]
DEFAULT_ETCD_VERSION = "3.5.30"
# The module tests run on the two ends: 3.4 (no etcdutl, no learners) and 3.5.30, whose etcdctl/etcdutl differ in
# output and flags. The restore module, whose flags also change between 3.5 patch releases (--bump-revision since
# 3.5.10), runs on all four, and the playbooks run every module on 3.5.1 and 3.5.16 too
# (test_pb_no_host_tools_old.py). KUBEOPS_TEST_ETCD_VERSIONS runs every module test on the versions it names.
MODULE_ETCD_VERSIONS = ETCD_VERSIONS if "KUBEOPS_TEST_ETCD_VERSIONS" in os.environ else [
    v for v in ALL_ETCD_VERSIONS if v in ("3.4.23", DEFAULT_ETCD_VERSION)]


class PlaybookRun(object):
    """What one ansible-playbook run did, read from the result_json callback."""

    def __init__(self, argv, rc, stdout, stderr, data):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.results = data.get("results", [])
        self.summary = data.get("summary", {})
        self.stats = data.get("custom_stats", {})
        self.task_seconds = data.get("task_seconds", {})

    def slowest_tasks(self, count=8):
        return sorted(self.task_seconds.items(), key=lambda item: -item[1])[:count]

    def task_results(self, task_name, host=None):
        """Results of every task whose name equals (or ends with) task_name."""
        found = []
        for item in self.results:
            name = item["task"]
            if name == task_name or name.endswith(" : " + task_name) or name.endswith(task_name):
                if host is None or item["host"] == host:
                    found.append(item)
        return found

    def result(self, task_name, host):
        matches = self.task_results(task_name, host)
        assert matches, "task %r did not run on %s; tasks run: %s" % (
            task_name, host, sorted(set(r["task"] for r in self.results)))
        return matches[-1]["result"]

    def failed(self):
        return [r for r in self.results if r["status"] in ("failed", "unreachable")]

    def __repr__(self):
        return "PlaybookRun(rc=%s, argv=%r)\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self.rc, self.argv, self.stdout[-20000:], self.stderr[-5000:])


def ansible_env(result_path=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS_ROOT,
        "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
        "ANSIBLE_CALLBACKS_ENABLED": "result_json",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": BIN_DIR + os.pathsep + env.get("PATH", ""),
    })
    if result_path:
        env["KUBEOPS_RESULT_JSON"] = result_path
    return env


def run_ansible_playbook(inventory, playbook, extra_vars=None, check=False, diff=False, limit=None,
                         extra_args=None, timeout=1800):
    workdir = tempfile.mkdtemp(prefix="kubeops-pb-")
    if "\n" in playbook or playbook.lstrip().startswith("-"):
        path = os.path.join(workdir, "playbook.yml")
        with open(path, "w") as handle:
            handle.write(playbook)
    else:
        path = playbook if os.path.isabs(playbook) else os.path.join(REPO_ROOT, playbook)
    result_path = os.path.join(workdir, "result.json")
    argv = [os.path.join(BIN_DIR, "ansible-playbook"), "-i", inventory, path]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if limit:
        argv += ["--limit", limit]
    argv += list(extra_args or [])
    try:
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=ansible_env(result_path), capture_output=True, check=False,
                              text=True, timeout=timeout)
        data = {}
        if os.path.exists(result_path):
            with open(result_path) as handle:
                data = json.load(handle)
    finally:
        # The run keeps what it needs (output and results); the playbook and result files go.
        shutil.rmtree(workdir, ignore_errors=True)
    return PlaybookRun(argv, proc.returncode, proc.stdout, proc.stderr, data)
