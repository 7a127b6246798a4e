"""Interval arithmetic for the benchmark: outage windows from probe samples, and which step each
second of an outage was spent in. Pure functions on (start, end) pairs of wall-clock seconds."""


def down_intervals(samples, end):
    """[(start, end)] during which a server did not answer ok.

    samples: [(time, ok)] in time order, one per probe. A server is down from the first failed probe
    to the next successful one; still down at the last sample means down until `end`."""
    out = []
    down_since = None
    for when, ok in samples:
        if not ok and down_since is None:
            down_since = when
        elif ok and down_since is not None:
            out.append((down_since, when))
            down_since = None
    if down_since is not None:
        out.append((down_since, max(end, down_since)))
    return out


def intersect(first, second):
    """Intersection of two sorted lists of disjoint intervals."""
    out = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            out.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return out


def all_down(per_server):
    """Intervals during which every server was down at once (no server answered ok)."""
    lists = list(per_server.values())
    if not lists:
        return []
    result = lists[0]
    for other in lists[1:]:
        result = intersect(result, other)
    return result


def total(intervals):
    return sum(end - start for start, end in intervals)


BETWEEN = "between steps (no step running)"


def attribute(windows, spans):
    """Seconds of the windows spent in each span's label, in the order the labels first ran (gaps last).

    spans: [(label, start, end)], e.g. one per task and host. At each instant of a window the
    most recently started running span gets the time; an instant in no span goes to BETWEEN.
    The values add up to total(windows) exactly."""
    spans = sorted(spans, key=lambda span: span[1])
    seconds = {}
    order = []
    for window_start, window_end in windows:
        points = {window_start, window_end}
        for _label, start, end in spans:
            if start < window_end and end > window_start:
                points.add(max(start, window_start))
                points.add(min(end, window_end))
        points = sorted(points)
        for left, right in zip(points, points[1:]):
            label = BETWEEN
            for span_label, start, end in spans:
                if start <= left and end >= right:
                    label = span_label  # spans are sorted by start: the last match started last
            if label not in seconds:
                seconds[label] = 0.0
                order.append(label)
            seconds[label] += right - left
    first_start = {}
    for label, start, _end in spans:
        first_start.setdefault(label, start)
    order.sort(key=lambda label: first_start.get(label, float("inf")))
    return [(label, seconds[label]) for label in order]
