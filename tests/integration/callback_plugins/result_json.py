# Copyright: kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes every task result and the set_stats data to a JSON file.

The integration tests read that file instead of scraping the human-readable log.
``task_times`` gives the wall-clock start and end of every task on every host (the benchmark
lays them over the outage it measures from outside).
Enabled by tests/integration/conftest.py through ANSIBLE_CALLBACK_PLUGINS and
ANSIBLE_CALLBACKS_ENABLED; the file name comes from KUBEOPS_RESULT_JSON.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
name: result_json
type: aggregate
short_description: write task results to a JSON file for the integration tests
description:
  - Test helper of kubeops.etcd, not shipped as a plugin of the collection.
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "result_json"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._path = os.environ.get("KUBEOPS_RESULT_JSON")
        self._results = []
        self._task_started = {}
        self._host_started = {}
        self._task_times = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        # Wall-clock seconds per task across all hosts: the benchmark lists the slowest.
        self._task_started[task._uuid] = time.time()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_start(self, host, task):
        self._host_started[(task._uuid, host.get_name())] = time.time()

    def _record(self, status, result):
        ended = time.time()
        uuid, host = result._task._uuid, result._host.get_name()
        self._task_times.append({
            "task": result._task.get_name(),
            "host": host,
            "start": round(self._host_started.pop((uuid, host), self._task_started.get(uuid, ended)), 3),
            "end": round(ended, 3),
            "status": status,
        })
        self._results.append({
            "task": result._task.get_name(),
            "action": result._task.action,
            "host": result._host.get_name(),
            "status": status,
            "result": self._clean(result._result),
            "seconds": round(time.time() - self._task_started.get(result._task._uuid, time.time()), 3),
        })

    @staticmethod
    def _clean(data):
        return json.loads(json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        if not self._path:
            return
        summary = {}
        for host in sorted(stats.processed.keys()):
            summary[host] = stats.summarize(host)
        durations = {}
        for entry in self._results:
            durations[entry["task"]] = max(durations.get(entry["task"], 0), entry["seconds"])
        data = {
            "results": self._results,
            "task_seconds": durations,
            "summary": summary,
            "custom_stats": self._clean(getattr(stats, "custom", {})),
            "task_times": self._task_times,
        }
        with open(self._path, "w") as handle:
            json.dump(data, handle, indent=1, default=str)
