"""journalctl stand-in of a lab node: the log of a unit the systemctl stand-in runs (its output, as systemd's
journal keeps a service's stdout and stderr), in /var/lib/systemd-standin/logs/<unit>.log.

  journalctl -u|--unit UNIT [-n|--lines N] [--no-pager] [-o|--output cat|short] [-q]
Prints the last N lines (default 10, as journalctl); `-o short` prefixes each line with the unit name only (the
stand-in keeps no timestamps of its own). A unit without a log prints "-- No entries --".
"""
import os
import sys

LOGS = "/var/lib/systemd-standin/logs"


def parse(argv):
    opts = {"unit": None, "lines": 10, "output": "short"}
    it = iter(argv)
    for arg in it:
        key, _eq, value = arg.partition("=")
        if key in ("-u", "--unit"):
            opts["unit"] = value or next(it, None)
        elif key in ("-n", "--lines"):
            opts["lines"] = int(value or next(it, "10"))
        elif key in ("-o", "--output"):
            opts["output"] = value or next(it, "short")
        elif arg in ("--no-pager", "-q", "--quiet", "--no-hostname"):
            continue
        else:
            raise ValueError("unsupported argument %s" % arg)
    if not opts["unit"]:
        raise ValueError("the stand-in needs -u UNIT")
    return opts


def main(argv):
    try:
        opts = parse(argv)
    except ValueError as exc:
        sys.stderr.write("journalctl stand-in: %s\n" % exc)
        return 1
    unit = opts["unit"][:-len(".service")] if opts["unit"].endswith(".service") else opts["unit"]
    try:
        with open(os.path.join(LOGS, unit + ".log"), errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    if not lines:
        print("-- No entries --")
        return 0
    for line in lines[-opts["lines"]:] if opts["lines"] > 0 else []:
        print(line if opts["output"] == "cat" else "%s: %s" % (unit, line))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
