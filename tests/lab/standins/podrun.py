"""Container launcher used by the kubelet stand-in (one process per container).

Imitates what a container runtime does for a hostNetwork static pod with hostPath
volumes: a private mount namespace in which every hostPath volume is bind-mounted
at its mountPath, then exec of the container command.  No image root filesystem,
no PID/network/user namespace, no cgroups: the container sees the node's
filesystem plus its volumes.

argv: podrun.py SPEC_JSON   (spec: {"mounts": [{"host_path", "type", "mount_path", "read_only"}],
                             "argv": [...], "created_file": path-or-null})
"""
import ctypes
import json
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

libc = ctypes.CDLL(None, use_errno=True)


def _mount(src, dst, flags):
    if libc.mount(src.encode() if src else None, dst.encode(), None, flags, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "mount %s on %s: %s" % (src, dst, os.strerror(e)))


def fail(msg):
    sys.stderr.write("Error: failed to create containerd task: %s\n" % msg)
    sys.stderr.flush()
    sys.exit(128)


def prepare_host_path(m):
    """The kubelet's hostPath type check (and creation for *OrCreate). Returns an error text or None."""
    p, t = m["host_path"], m.get("type") or ""
    if t == "DirectoryOrCreate":
        if not os.path.exists(p):
            os.makedirs(p, 0o755)
            os.chmod(p, 0o755)
    elif t == "FileOrCreate":
        if not os.path.exists(p):
            os.makedirs(os.path.dirname(p), 0o755, exist_ok=True)
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
    elif t == "Directory":
        if not os.path.isdir(p):
            return "hostPath type check failed: %s is not a directory" % p
    elif t == "File":
        if not os.path.isfile(p):
            return "hostPath type check failed: %s is not a file" % p
    elif not os.path.exists(p):
        return "error mounting %s: no such file or directory" % p
    return None


def submounts(path):
    """Mount points strictly below path in this mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp != path and mp.startswith(path.rstrip("/") + "/"):
                out.append(mp)
    return out


def nearest_existing(p):
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    return p


def main():
    spec = json.loads(sys.argv[1])
    for m in spec["mounts"]:
        err = prepare_host_path(m)
        if err:
            fail(err)
    if libc.unshare(CLONE_NEWNS) != 0:
        fail("unshare(CLONE_NEWNS): %s" % os.strerror(ctypes.get_errno()))
    _mount(None, "/", MS_REC | MS_PRIVATE)
    # resolve every source (in the new namespace) before anything is mounted over its parents
    fds = [os.open(m["host_path"], os.O_PATH) for m in spec["mounts"]]
    created = []
    overlaid = set()
    isdirs = [stat.S_ISDIR(os.fstat(fd).st_mode) for fd in fds]
    # pass 1: missing mount points.  A container runtime creates them in the container's own
    # rootfs.  The lab has none: put a private overlay (upper dir in the container's scratch
    # dir) over the nearest existing parent, in this mount namespace only, and create the mount
    # point there.  When that parent has mounts below it (e.g. "/"), an overlay would hide them:
    # then the mount point is created on the node and the kubelet stand-in removes it when the
    # container is gone.
    for m, isdir in zip(spec["mounts"], isdirs):
        dst = m["mount_path"]
        if os.path.lexists(dst):
            continue
        anc = nearest_existing(os.path.dirname(dst))
        scratch = spec.get("scratch")
        if scratch and anc not in overlaid and anc != "/" and not submounts(anc) \
                and not any(anc.startswith(o.rstrip("/") + "/") for o in overlaid):
            up = os.path.join(scratch, "ovl%d" % len(overlaid))
            os.makedirs(os.path.join(up, "upper"), exist_ok=True)
            os.makedirs(os.path.join(up, "work"), exist_ok=True)
            opts = "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (anc, up, up)
            if libc.mount(b"overlay", anc.encode(), b"overlay", 0, opts.encode()) == 0:
                overlaid.add(anc)
        if not any(dst.startswith(o.rstrip("/") + "/") for o in overlaid):
            created.append(dst)
        if isdir:
            os.makedirs(dst, 0o755)
        else:
            os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
            open(dst, "a").close()
    # pass 2: bind every hostPath (by the fd opened before anything was mounted)
    for m, fd in zip(spec["mounts"], fds):
        dst = m["mount_path"]
        try:
            _mount("/proc/self/fd/%d" % fd, dst, MS_BIND | MS_REC)
            if m.get("read_only"):
                _mount(None, dst, MS_REMOUNT | MS_BIND | MS_RDONLY)
        except OSError as e:
            fail(str(e))
    for fd in fds:
        os.close(fd)
    if created and spec.get("created_file"):
        with open(spec["created_file"], "w") as f:
            json.dump(created, f)
    argv = spec["argv"]
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        fail('exec: "%s": %s' % (argv[0], e.strerror))


if __name__ == "__main__":
    main()
