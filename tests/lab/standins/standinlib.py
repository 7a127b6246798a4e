"""What the stand-ins share with each other and with lablib on the host (the stand-ins dir is on sys.path for both:
a stand-in runs as a script from it, lablib puts it there)."""
import os


def proc_start(pid):
    """Start time of pid (clock ticks) or None when gone/zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def remove_created_mount_points(paths, keep=()):
    """Remove, deepest first, the mount points a container had to create (see podrun.py): empty directories and
    empty files, none below a ``keep`` prefix. What is gone, not empty or not removable stays."""
    for p in reversed(paths):
        if p.startswith(tuple(keep)):
            continue
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                os.rmdir(p)
            elif os.path.isfile(p) and os.path.getsize(p) == 0:
                os.unlink(p)
        except OSError:
            pass
