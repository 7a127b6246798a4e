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
            fail("hostPath type check failed: %s is not a directory" % p)
    elif t == "File":
        if not os.path.isfile(p):
            fail("hostPath type check failed: %s is not a file" % p)
    elif not os.path.exists(p):
        fail("error mounting %s: no such file or directory" % p)


def main():
    spec = json.loads(sys.argv[1])
    for m in spec["mounts"]:
        prepare_host_path(m)
    if libc.unshare(CLONE_NEWNS) != 0:
        fail("unshare(CLONE_NEWNS): %s" % os.strerror(ctypes.get_errno()))
    _mount(None, "/", MS_REC | MS_PRIVATE)
    created = []
    for m in spec["mounts"]:
        src, dst = m["host_path"], m["mount_path"]
        isdir = stat.S_ISDIR(os.stat(src).st_mode)
        if not os.path.lexists(dst):
            # A container runtime creates missing mount points inside the image rootfs.
            # The lab has no image rootfs: create it on the node and note it, so the
            # kubelet stand-in removes it again when the container is gone.
            if isdir:
                os.makedirs(dst, 0o755)
            else:
                os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
                open(dst, "a").close()
            created.append(dst)
        try:
            _mount(src, dst, MS_BIND | MS_REC)
            if m.get("read_only"):
                _mount(None, dst, MS_REMOUNT | MS_BIND | MS_RDONLY)
        except OSError as e:
            fail(str(e))
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
