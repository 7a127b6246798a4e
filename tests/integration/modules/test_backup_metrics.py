"""etcd_backup_metrics through real ansible-playbook: on the ops box (localhost) and on a lab node over SSH.

A success, a failure and a success again, as scheduled runs would record them: every metric value is read back from
the file with a strict parser of the Prometheus text format (written here, independent of the module's own lenient
one), the failure counter goes up by one, the last success survives the failure, another cluster's series stay as they
were, modes are 0644 (file) / 0755 (created directories) / 0600 (JSON report), and a reader polling the file while the
runs replace it never sees it incomplete.
"""

import json
import os
import re
import stat
import threading
import time

import pytest
import yaml

from pbrun import run_ansible_playbook

P = "kubeops_etcd_backup_"
SHA_SNAPSHOT = "5" * 64
SHA_OBJECT = "6" * 64
NODE_TEXTFILE_DIR = "/var/lib/kubeops-met-textfile/collector"  # node-private: /var/lib is bind-mounted per node
NODE_REPORT_DIR = "/var/lib/kubeops-met-reports"
TASK = "Record the backup run for node_exporter"

# ---- a strict parser of the text exposition format -------------------------------------------------------

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(%s(?:,%s)*)?\})? (\S+)$' % (_LABEL, _LABEL))
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_VALUE_RE = re.compile(r'^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$')


def strict_parse(text):
    """{name: {cluster: float}} of a complete file; AssertionError on anything node_exporter would refuse or that shows
    a partial write: no final newline, a sample before its family's HELP and TYPE, a family split or repeated, a
    repeated series, a line that is no sample, a value that is no finite number."""
    assert text.endswith("\n"), "incomplete file (no final newline): %r" % text[-200:]
    families, kinds, helps, closed, current = {}, {}, set(), set(), None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (number, line)
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helps and name not in closed, where
            helps.add(name)
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in ("gauge", "counter"), where
            name = parts[2]
            assert name in helps and name not in kinds, where
            if current:
                closed.add(current)
            current, kinds[name], families[name] = name, parts[3], {}
        else:
            match = _SAMPLE_RE.match(line)
            assert match, where
            name, labels, value = match.groups()
            assert name == current, "%s: sample outside its family" % where
            assert _VALUE_RE.match(value), where
            labels = dict((key, re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), val))
                          for key, val in _LABEL_RE.findall(labels or ""))
            assert list(labels) == ["cluster"] and labels["cluster"] not in families[name], where
            if kinds[name] == "counter":
                assert name.endswith("_total") and float(value) >= 0, where
            families[name][labels["cluster"]] = float(value)
    return families


def values_of(text, cluster):
    return dict((name[len(P):], samples[cluster]) for name, samples in strict_parse(text).items() if cluster in samples)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read_text(path):
    with open(path) as handle:
        return handle.read()


# ---- the runs ----------------------------------------------------------------------------------------------

def success_report(revision):
    return {"started": "2026-11-22T01:15:00Z", "duration_seconds": 12.5,
            "snapshot": {"path": "/var/backups/etcd/prod-rev%d.db" % revision, "size": 1048608, "sha256": SHA_SNAPSHOT,
                         "revision": revision, "total_key": 1000 + revision, "member_name": "cp1"},
            "uploaded": [{"bucket": "etcd", "key": "prod/prod-rev%d.db.age" % revision, "size": 1048800,
                          "sha256": SHA_OBJECT}],
            "secrets": {"secrets_total": 12, "secrets_plaintext": 9, "secrets_encrypted": 3}}


FAILURE_REPORT = {"started": "2026-11-22T02:15:00Z", "duration_seconds": 3.25,
                  "failure": {"step": "Take a verified snapshot of etcd", "host": "cp1", "message": "etcd is not healthy"}}


def record(inventory, host, args, check=False, diff=False):
    """Run the module once through ansible-playbook on host; (run, result, epoch before, epoch after)."""
    play = yaml.safe_dump([{"name": "kubeops.etcd integration: backup metrics", "hosts": host, "gather_facts": False,
                            "tasks": [{"name": TASK, "kubeops.etcd.etcd_backup_metrics": args}]}], sort_keys=False)
    before = time.time()
    run = run_ansible_playbook(inventory, play, check=check, diff=diff)
    after = time.time()
    assert run.rc == 0, run
    return run, run.result(TASK, host), before, after


class CompletenessWatcher(object):
    """Reads the file as fast as it can while runs replace it; every read must parse strictly."""

    def __init__(self, path):
        self.path = path
        self.reads = 0
        self.problems = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self):
        while not self._stop.is_set():
            try:
                text = read_text(self.path)
            except FileNotFoundError:
                time.sleep(0.005)
                continue
            try:
                strict_parse(text)
            except AssertionError as exc:
                self.problems.append(str(exc))
            self.reads += 1
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        return False


def success_failure_success(inventory, host, textfile_dir, report_dir, local_path):
    """The sequence every test runs; local_path maps a path on host to where this test process reads it."""
    metrics_path = textfile_dir + "/kubeops_etcd_backup.prom"
    base = {"textfile_dir": textfile_dir, "cluster_name": "prod"}
    on_disk = []

    def record_and_read(outcome, report, number):
        _run, result, before, after = record(inventory, host, dict(base, outcome=outcome, report=report,
                                                                   report_path="%s/run%d.report.json" % (report_dir, number)))
        on_disk.append(read_text(local_path(metrics_path)))
        assert result["changed"] is True and result["metrics_path"] == metrics_path
        assert on_disk[-1] == result["metrics"]
        return result, before, after

    with CompletenessWatcher(local_path(metrics_path)) as watcher:
        first, before1, after1 = record_and_read("success", success_report(100), 1)
        failed, before2, after2 = record_and_read("failure", FAILURE_REPORT, 2)
        second, before3, after3 = record_and_read("success", success_report(205), 3)
    assert watcher.problems == [] and watcher.reads > 0, watcher.problems[:3]

    one = values_of(on_disk[0], "prod")
    assert before1 <= one["last_success_timestamp_seconds"] <= after1
    assert one == {"last_success_timestamp_seconds": one["last_success_timestamp_seconds"],
                   "last_attempt_timestamp_seconds": one["last_success_timestamp_seconds"],
                   "last_duration_seconds": 12.5, "last_size_bytes": 1048608, "last_revision": 100,
                   "last_total_keys": 1100, "success": 1, "failures_total": 0, "plaintext_secrets": 9, "uploaded": 1}

    two = values_of(on_disk[1], "prod")
    assert before2 <= two["last_attempt_timestamp_seconds"] <= after2
    assert two == dict(one, last_attempt_timestamp_seconds=two["last_attempt_timestamp_seconds"],
                       last_duration_seconds=3.25, success=0, failures_total=1)

    three = values_of(on_disk[2], "prod")
    assert before3 <= three["last_success_timestamp_seconds"] <= after3
    assert three == {"last_success_timestamp_seconds": three["last_success_timestamp_seconds"],
                     "last_attempt_timestamp_seconds": three["last_success_timestamp_seconds"],
                     "last_duration_seconds": 12.5, "last_size_bytes": 1048608, "last_revision": 205,
                     "last_total_keys": 1205, "success": 1, "failures_total": 1, "plaintext_secrets": 9, "uploaded": 1}

    # node_exporter-readable modes, and nothing else left in its directory.
    assert mode(local_path(metrics_path)) == 0o644
    assert mode(local_path(textfile_dir)) == 0o755 and mode(os.path.dirname(local_path(textfile_dir))) == 0o755
    assert sorted(os.listdir(local_path(textfile_dir))) == ["kubeops_etcd_backup.prom"]

    reports = {}
    for number, result in enumerate((first, failed, second), 1):
        path = local_path("%s/run%d.report.json" % (report_dir, number))
        assert mode(path) == 0o600
        with open(path) as handle:
            reports[number] = json.load(handle)
        assert reports[number] == result["report"]
    assert mode(local_path(report_dir)) == 0o700
    assert reports[2]["outcome"] == "failure" and reports[2]["snapshot"] is None
    assert reports[2]["failure"] == FAILURE_REPORT["failure"]
    assert reports[3]["snapshot"]["revision"] == 205 and reports[3]["uploaded"][0]["key"] == "prod/prod-rev205.db.age"
    assert reports[3]["secrets"]["secrets_plaintext"] == 9 and reports[3]["format"] == 1
    assert second["summary"][0].startswith("etcd backup of cluster prod: SUCCESS in 12.5 s")
    assert failed["summary"][1] == "failed at step Take a verified snapshot of etcd on cp1: etcd is not healthy"
    return metrics_path, second


# ---- on the ops box ----------------------------------------------------------------------------------------

@pytest.fixture
def local_inventory(tmp_path):
    path = tmp_path / "inventory.ini"
    path.write_text("localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    return str(path)


def test_success_failure_success_on_the_ops_box(local_inventory, tmp_path):
    textfile_dir = str(tmp_path / "node_exporter" / "textfile")
    success_failure_success(local_inventory, "localhost", textfile_dir, str(tmp_path / "reports"), lambda path: path)


def test_another_clusters_series_stay_as_they_were(local_inventory, tmp_path):
    textfile_dir = str(tmp_path / "textfile")
    args = {"textfile_dir": textfile_dir, "file_name": "etcd.prom"}
    _run, staging, _b, _a = record(local_inventory, "localhost",
                                   dict(args, cluster_name='staging "eu"', outcome="failure", report=FAILURE_REPORT))
    _run, prod, _b, _a = record(local_inventory, "localhost",
                                dict(args, cluster_name="prod", outcome="success", report=success_report(7)))
    on_disk = read_text(os.path.join(textfile_dir, "etcd.prom"))
    assert on_disk == prod["metrics"]
    assert values_of(on_disk, 'staging "eu"') == values_of(staging["metrics"], 'staging "eu"')
    assert values_of(on_disk, 'staging "eu"')["failures_total"] == 1
    assert 'kubeops_etcd_backup_success{cluster="staging \\"eu\\""} 0\n' in on_disk
    assert values_of(on_disk, "prod")["failures_total"] == 0


def test_check_mode_shows_the_diff_and_writes_nothing(local_inventory, tmp_path):
    textfile_dir = str(tmp_path / "textfile")
    args = {"textfile_dir": textfile_dir, "cluster_name": "prod", "report": FAILURE_REPORT, "outcome": "failure"}
    _run, checked, _b, _a = record(local_inventory, "localhost", args, check=True, diff=True)
    assert not os.path.exists(textfile_dir)
    assert checked["changed"] is True and values_of(checked["metrics"], "prod")["failures_total"] == 1
    assert checked["diff"]["before"] == "" and checked["diff"]["after"] == checked["metrics"]

    _run, written, _b, _a = record(local_inventory, "localhost", args)
    path = os.path.join(textfile_dir, "kubeops_etcd_backup.prom")
    state = (read_text(path), os.stat(path).st_mtime_ns)
    _run, again, _b, _a = record(local_inventory, "localhost", args, check=True, diff=True)
    assert (read_text(path), os.stat(path).st_mtime_ns) == state
    assert again["diff"]["before"] == written["metrics"]
    assert values_of(again["diff"]["after"], "prod")["failures_total"] == 2
    assert values_of(read_text(path), "prod")["failures_total"] == 1


# ---- on a lab node, over SSH -------------------------------------------------------------------------------

@pytest.mark.parametrize("lab", [pytest.param({"nodes": 1, "ip_base": 84, "dir": "/tmp/kubeops-met-84"}, id="1-node")],
                         indirect=True)
def test_success_failure_success_on_a_lab_node(lab):
    def local_path(path):
        return lab.node_path("cp1", path)  # the node's private /var/lib, seen from here
    assert not os.path.exists(NODE_TEXTFILE_DIR), "the host itself must not have the node's directory"
    metrics_path, last = success_failure_success(lab.inventory, "cp1", NODE_TEXTFILE_DIR, NODE_REPORT_DIR, local_path)
    # Written on the node (its private /var/lib), not on the machine that ran ansible-playbook.
    assert not os.path.exists(NODE_TEXTFILE_DIR)
    seen_by_node = lab.exec("cp1", ["cat", metrics_path], check=True).stdout
    assert seen_by_node == last["metrics"]
    assert lab.exec("cp1", ["stat", "-c", "%a %U", metrics_path], check=True).stdout.split() == ["644", "root"]
