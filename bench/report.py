"""The benchmark's Markdown report: per (size, nodes) the three restore procedures, the ratios
against the targets of issue 7, where the outage went, and across the matrix the scaling with
nodes and size and the module memory."""

import statistics

PROCEDURES = (("playbook", "playbook (kubeops.etcd)"), ("plain", "plain script"), ("expert", "expert script"))
TARGET_CONFIG = ("200M", 3)   # the issue sets the outage targets at 200 MB on 3 nodes


def median(values):
    return statistics.median(values) if values else None


def spread(values):
    if not values:
        return "–"
    values = sorted(values)
    if len(values) == 1:
        return "%.1f" % values[0]
    return "%.1f (%.1f–%.1f)" % (statistics.median(values), values[0], values[-1])


def ratio(a, b):
    return a / b if a is not None and b else None


def verdict(value, limit):
    if value is None:
        return "–"
    return "yes" if value <= limit else "**no**"


def fmt(value, pattern="%.2f"):
    return "–" if value is None else pattern % value


def mb(size_bytes):
    return "%.0f MB" % (size_bytes / 1e6) if size_bytes >= 1e8 else "%.1f MB" % (size_bytes / 1e6)


def runs_of(config, procedure, key):
    return [run[key] for run in config["runs"] if run["procedure"] == procedure]


def median_run(config, procedure):
    runs = sorted((r for r in config["runs"] if r["procedure"] == procedure), key=lambda r: r["outage_seconds"])
    return runs[(len(runs) - 1) // 2] if runs else None


def config_section(config):
    lines = []
    lines.append("### %s database (snapshot %s, %d keys), %d nodes" % (
        config["size"], mb(config["snapshot_bytes"]), config["data"]["count"], config["nodes"]))
    lines.append("")
    lines.append("| restore | whole restore, s | API outage (no API server ready), s | longest one API server was not ready, s |")
    lines.append("|---|---|---|---|")
    for key, title in PROCEDURES:
        if not any(r["procedure"] == key for r in config["runs"]):
            continue
        lines.append("| %s | %s | %s | %s |" % (
            title, spread(runs_of(config, key, "whole_seconds")), spread(runs_of(config, key, "outage_seconds")),
            spread(runs_of(config, key, "max_server_down_seconds"))))
    lines.append("")
    backup = config["backup"]
    lines.append("Backup: plain `etcdctl snapshot save` + `scp` + `sha256sum` %.1f s, `backup.yml` %.1f s." % (
        backup["manual_seconds"], backup["playbook_seconds"]))
    lines.append("")
    med = {key: {"whole": median(runs_of(config, key, "whole_seconds")),
                 "outage": median(runs_of(config, key, "outage_seconds"))} for key, _title in PROCEDURES}
    binding = (config["size"], config["nodes"]) == TARGET_CONFIG
    note = "" if binding else " (binding at 200M, 3 nodes)"
    rows = [("API outage, playbook / plain", ratio(med["playbook"]["outage"], med["plain"]["outage"]), 0.7, note),
            ("API outage, playbook / expert", ratio(med["playbook"]["outage"], med["expert"]["outage"]), 1.25, note),
            ("whole restore, playbook / plain", ratio(med["playbook"]["whole"], med["plain"]["whole"]), 1.3, "")]
    lines.append("| ratio of medians | value | target | met |")
    lines.append("|---|---|---|---|")
    for title, value, limit, suffix in rows:
        lines.append("| %s | %s | ≤ %.2f%s | %s |" % (title, fmt(value), limit, suffix, verdict(value, limit)))
    lines.append("")
    playbook = median_run(config, "playbook")
    if playbook and playbook.get("task_results_per_host"):
        own = playbook.get("own_downtime_seconds")
        lines.append("Playbook, round %d: %d distinct tasks; task results per host: %s%s." % (
            playbook["round"], playbook["distinct_tasks"],
            ", ".join("%s %d" % item for item in sorted(playbook["task_results_per_host"].items())),
            "; its own clock said the API servers were down %.1f s" % float(own) if own not in (None, "") else ""))
        lines.append("")
    for key, title in PROCEDURES:
        run = median_run(config, key)
        if not run:
            continue
        lines.append("Where the %s's outage went (round %d, %.1f s without any ready API server):" % (
            title, run["round"], run["outage_seconds"]))
        lines.append("")
        lines.append("| step | s of outage |")
        lines.append("|---|---|")
        for label, seconds in run["timeline"]:
            if seconds >= 0.005:
                lines.append("| %s | %.2f |" % (label, seconds))
        lines.append("| **total** | **%.2f** |" % sum(s for _l, s in run["timeline"]))
        lines.append("")
    return lines


def scaling_nodes(configs):
    lines = []
    by_key = {(c["size"], c["nodes"]): c for c in configs}
    node_counts = sorted(set(c["nodes"] for c in configs))
    if len(node_counts) < 2:
        return lines
    base = node_counts[0]
    lines.append("### More nodes (target: %s nodes ≤ 1.15 × %d nodes, playbook)" % (
        " and ".join(str(n) for n in node_counts[1:]), base))
    lines.append("")
    lines.append("| size | procedure | nodes | whole restore, s | × %d nodes | API outage, s | × %d nodes | met |" % (
        base, base))
    lines.append("|---|---|---|---|---|---|---|---|")
    for size in sorted(set(c["size"] for c in configs), key=lambda s: by_key_size(configs, s)):
        if (size, base) not in by_key:
            continue
        ref = by_key[(size, base)]
        for key, title in PROCEDURES:
            ref_whole = median(runs_of(ref, key, "whole_seconds"))
            ref_outage = median(runs_of(ref, key, "outage_seconds"))
            for nodes in node_counts[1:]:
                if (size, nodes) not in by_key:
                    continue
                cfg = by_key[(size, nodes)]
                whole = median(runs_of(cfg, key, "whole_seconds"))
                outage = median(runs_of(cfg, key, "outage_seconds"))
                w_ratio, o_ratio = ratio(whole, ref_whole), ratio(outage, ref_outage)
                met = verdict(max(w_ratio or 0, o_ratio or 0), 1.15) if key == "playbook" else ""
                lines.append("| %s | %s | %d | %s | %s | %s | %s | %s |" % (
                    size, title, nodes, fmt(whole, "%.1f"), fmt(w_ratio), fmt(outage, "%.1f"), fmt(o_ratio), met))
    lines.append("")
    return lines


def by_key_size(configs, size):
    return min(c["target_bytes"] for c in configs if c["size"] == size)


def fit_line(points):
    """Least squares t = a + b * x; returns a, b and the largest deviation relative to t."""
    n = len(points)
    mean_x = sum(x for x, _y in points) / n
    mean_y = sum(y for _x, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _y in points)
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx if sxx else 0.0
    a = mean_y - b * mean_x
    worst = max(abs(y - (a + b * x)) / y for x, y in points if y) if points else 0.0
    return a, b, worst


def scaling_size(configs):
    lines = []
    sizes = sorted(set(c["size"] for c in configs), key=lambda s: by_key_size(configs, s))
    if len(sizes) < 3:
        if len(sizes) == 2:
            lines.append("(Linearity in size needs three sizes; this run has two.)")
            lines.append("")
        return lines
    lines.append("### Database size (target: time grows linearly; fit t = a + b × GB, largest deviation ≤ 10 %)")
    lines.append("")
    lines.append("| procedure | nodes | whole restore at %s, s | a, s | b, s/GB | largest deviation | linear |" % (
        " / ".join(sizes)))
    lines.append("|---|---|---|---|---|---|---|")
    for nodes in sorted(set(c["nodes"] for c in configs)):
        cfgs = [c for c in configs if c["nodes"] == nodes]
        cfgs.sort(key=lambda c: c["snapshot_bytes"])
        for key, title in PROCEDURES:
            points = [(c["snapshot_bytes"] / 1e9, median(runs_of(c, key, "whole_seconds"))) for c in cfgs]
            points = [p for p in points if p[1] is not None]
            if len(points) < 3:
                continue
            a, b, worst = fit_line(points)
            lines.append("| %s | %d | %s | %.1f | %.1f | %.0f %% | %s |" % (
                title, nodes, " / ".join("%.1f" % y for _x, y in points), a, b, worst * 100,
                "yes" if worst <= 0.10 else "**no**"))
    lines.append("")
    return lines


def memory_section(rows):
    lines = []
    if not rows:
        return lines
    lines.append("### Module memory (target: flat; peak RSS of the module process itself)")
    lines.append("")
    lines.append("| database | snapshot | `etcd_snapshot` peak RSS | `etcd_restore` peak RSS |")
    lines.append("|---|---|---|---|")
    for row in rows:
        if "error" in row:
            lines.append("| %s | – | %s | |" % (row["size"], row["error"].replace("|", "/").splitlines()[0][:120]))
            continue
        lines.append("| %s | %s | %.1f MB | %.1f MB |" % (
            row["size"], mb(row.get("snapshot_bytes") or 0), row["etcd_snapshot_peak_rss_kb"] / 1024.0,
            row["etcd_restore_peak_rss_kb"] / 1024.0))
    good = [r for r in rows if "error" not in r]
    if len(good) >= 2:
        values = [r[k] for r in good for k in ("etcd_snapshot_peak_rss_kb", "etcd_restore_peak_rss_kb")]
        snap = [r["etcd_snapshot_peak_rss_kb"] for r in good]
        rest = [r["etcd_restore_peak_rss_kb"] for r in good]
        growth = max(max(snap) / float(min(snap)), max(rest) / float(min(rest)))
        lines.append("")
        lines.append("Largest growth from the smallest to the largest database: %.0f %% (flat: ≤ 10 %%): %s." % (
            (growth - 1) * 100, "yes" if growth <= 1.10 and min(values) > 0 else "**no**"))
    lines.append("")
    return lines


def render(report):
    lines = ["## Results (%s, %d cores)" % (report["started"][:10], report["machine"]["cpus"]), ""]
    lines.append("Command: `%s`" % report["command"])
    lines.append("")
    lines.append("Collection under test: %s; etcd %s; values of %d bytes; median (min–max) of %d round(s), "
                 "the three procedures alternating within each round." % (
                     report["collection"]["describe"], report["options"]["etcd_version"],
                     report["options"]["value_bytes"], report["options"]["rounds"]))
    lines.append("")
    for config in report["configs"]:
        lines.extend(config_section(config))
    lines.extend(scaling_nodes(report["configs"]))
    lines.extend(scaling_size(report["configs"]))
    lines.extend(memory_section(report.get("memory", [])))
    if not report.get("complete"):
        lines.append("**The run did not complete**: %s" % report.get("error", "interrupted"))
        lines.append("")
    return "\n".join(lines)
