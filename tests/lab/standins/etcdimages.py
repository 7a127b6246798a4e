"""What each etcd image holds: the lab's one table of image tags, kinds and contents.

The kubelet stand-in records a container's contents when it starts it, `crictl exec` offers only those files,
lablib reports each node's image kind (lab.json `etcd_image_kind`). Pure: no imports beyond re.
"""
import re

# What each registry.k8s.io/etcd image holds (DOMAIN.md "Which tool does what"; kubernetes/k8s.io#8530, #8676,
# k/k#134251). Tags up to 3.5.21-0 and 3.6.0-0 .. 3.6.4-0 are built by Kubernetes (cluster/images/etcd: etcd,
# etcdctl, a shell); 3.5.24-0+ and 3.6.5-0+ are etcd's official distroless image (etcd, etcdctl, etcdutl in
# /usr/local/bin, no shell). Rows: (first tag version, last tag version, kind); contents by kind: path in the image ->
# the lab cache's binary of the tag's version (a name) or the host file standing in for it (an absolute path).
ETCD_IMAGE_TAGS = (
    ((3, 0, 0), (3, 5, 21), "kubernetes-built"),
    ((3, 5, 24), (3, 5, 999), "official"),
    ((3, 6, 0), (3, 6, 4), "kubernetes-built"),
    ((3, 6, 5), (99, 0, 0), "official"),
)
ETCD_IMAGE_CONTENTS = {
    "kubernetes-built": {"/usr/local/bin/etcd": "etcd", "/usr/local/bin/etcdctl": "etcdctl", "/bin/sh": "/bin/sh"},
    "official": {"/usr/local/bin/etcd": "etcd", "/usr/local/bin/etcdctl": "etcdctl",
                 "/usr/local/bin/etcdutl": "etcdutl"},
}
# PATH of both kinds of image (the runtime's default; the official image sets the same)
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def etcd_image(image):
    """{"version", "tag", "kind", "contents"} of an etcd image reference (`.../etcd:3.5.30-0`), None otherwise.
    A tag between the rows (3.5.22-0, 3.5.23-0: never published) counts as the Kubernetes-built kind."""
    m = re.match(r"^(?:[^/]+/)*etcd:(v?(\d+)\.(\d+)\.(\d+)\S*)", image or "")
    if not m:
        return None
    version = tuple(int(x) for x in m.group(2, 3, 4))
    kind = "kubernetes-built"
    for first, last, row_kind in ETCD_IMAGE_TAGS:
        if first <= version <= last:
            kind = row_kind
    return {"version": "%d.%d.%d" % version, "tag": m.group(1), "kind": kind,
            "contents": dict(ETCD_IMAGE_CONTENTS[kind])}
