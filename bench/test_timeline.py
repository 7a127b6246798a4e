"""Unit tests of the benchmark's interval arithmetic (bench/timeline.py, bench/report.py fit).

Run: .venv/bin/python -m pytest -q bench/test_timeline.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report import fit_line  # noqa: E402
from timeline import BETWEEN, all_down, attribute, down_intervals, intersect, total  # noqa: E402


def test_down_from_first_failed_probe_to_next_successful_one():
    samples = [(0.0, True), (0.1, False), (0.2, False), (0.3, True), (0.4, False), (0.5, True)]
    assert down_intervals(samples, end=1.0) == [(0.1, 0.3), (0.4, 0.5)]


def test_a_server_still_down_at_the_last_probe_is_down_until_the_end():
    assert down_intervals([(0.0, True), (0.2, False), (0.3, False)], end=0.9) == [(0.2, 0.9)]


def test_outage_is_only_when_every_server_is_down_at_once():
    per_server = {"cp1": [(1.0, 5.0)], "cp2": [(2.0, 6.0)], "cp3": [(0.5, 3.0), (4.0, 7.0)]}
    assert all_down(per_server) == [(2.0, 3.0), (4.0, 5.0)]
    assert total(all_down(per_server)) == 2.0


def test_one_server_never_down_means_no_outage():
    assert all_down({"cp1": [(1.0, 5.0)], "cp2": []}) == []


def test_intersect_touching_intervals_is_empty():
    assert intersect([(0.0, 1.0)], [(1.0, 2.0)]) == []


def test_attribution_adds_up_to_the_outage_and_names_the_gaps():
    spans = [("stop", 0.0, 2.0), ("stop", 0.0, 2.5),      # one task on two hosts
             ("restore", 2.6, 4.0), ("start", 4.0, 9.0)]
    windows = [(1.0, 5.0), (8.0, 10.0)]
    result = attribute(windows, spans)
    assert [label for label, _s in result] == ["stop", "restore", "start", BETWEEN]   # gaps last
    seconds = dict(result)
    assert abs(seconds["stop"] - 1.5) < 1e-9
    assert abs(seconds["restore"] - 1.4) < 1e-9
    assert abs(seconds["start"] - 2.0) < 1e-9
    assert abs(seconds[BETWEEN] - (0.1 + 1.0)) < 1e-9        # 2.5-2.6 and 9-10
    assert abs(sum(seconds.values()) - total(windows)) < 1e-9


def test_overlapping_spans_give_the_time_to_the_one_started_last():
    result = dict(attribute([(0.0, 4.0)], [("wait", 0.0, 4.0), ("probe", 1.0, 2.0)]))
    assert result == {"wait": 3.0, "probe": 1.0}


def test_linear_fit_and_its_largest_relative_deviation():
    a, b, worst = fit_line([(0.01, 10.0), (0.2, 20.0), (1.0, 60.0)])
    assert abs((a + b * 0.2) - 20.0) / 20.0 <= worst
    a, b, worst = fit_line([(0.0, 5.0), (1.0, 15.0), (2.0, 25.0)])
    assert (round(a, 6), round(b, 6), round(worst, 6)) == (5.0, 10.0, 0.0)
