# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Member and cluster IDs computed exactly as etcd computes them at bootstrap.

etcd does not pick IDs at random when a cluster is bootstrapped (``etcd`` with
``--initial-cluster-state=new`` or ``snapshot restore``):

* member ID (``membership.computeMemberID``): the peer URLs of the member,
  normalised and sorted, joined with no separator, followed by the
  ``--initial-cluster-token``; SHA-1 of those bytes; the first 8 bytes read as a
  big-endian unsigned 64-bit integer.
* cluster ID (``RaftCluster.genID``): the member IDs sorted numerically, each
  written as 8 bytes big-endian, concatenated; SHA-1; first 8 bytes big-endian.

Peer URLs are parsed the way ``types.NewURLs`` does: surrounding white space is
trimmed, the scheme must be http, https, unix or unixs, the host must be
``host:port`` and there must be no path.  ``--initial-cluster`` is parsed like
``types.NewURLsMap``: comma separated ``name=url`` pairs, a name may repeat to
give a member several peer URLs.

Everything here is pure: no I/O, no Ansible.  Functions raise ``ValueError``
with a message fit for an operator; modules wrap it in their own error.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import struct

ALLOWED_SCHEMES = ("http", "https", "unix", "unixs")
DEFAULT_INITIAL_CLUSTER_TOKEN = "etcd-cluster"


def normalize_peer_url(url):
    """Return ``url`` as etcd stores it, or raise ``ValueError`` naming the problem."""
    if not isinstance(url, str):
        raise ValueError("peer URL %r is not a string" % (url,))
    text = url.strip()
    if "://" not in text:
        raise ValueError("peer URL %r has no scheme (expected https://host:port)" % (url,))
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError("peer URL %r: scheme must be one of %s" % (url, ", ".join(ALLOWED_SCHEMES)))
    for sep in ("?", "#"):
        if sep in rest:
            raise ValueError("peer URL %r must not contain a query or fragment" % (url,))
    if "/" in rest:
        host, path = rest.split("/", 1)
        # url.Parse keeps "/" as the path, which etcd rejects as well.
        raise ValueError("peer URL %r must not contain a path (/%s)" % (url, path))
    host = rest
    if "@" in host:
        raise ValueError("peer URL %r must not contain user information" % (url,))
    if not _is_host_port(host):
        raise ValueError("peer URL %r does not have the form host:port" % (url,))
    return "%s://%s" % (scheme, host)


def _is_host_port(host):
    """Mirror Go's ``net.SplitHostPort`` acceptance for the forms etcd users write."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        after = host[end + 1:]
        return after.startswith(":") and ":" not in after[1:]
    # One colon, as SplitHostPort wants; empty host or port parts are accepted there too.
    return host.count(":") == 1


def parse_initial_cluster(initial_cluster):
    """Parse ``--initial-cluster`` into an ordered list of ``(name, [sorted urls])``.

    Names keep the order of their first appearance; every name's URLs are
    normalised and sorted as etcd does.
    """
    if not isinstance(initial_cluster, str) or not initial_cluster.strip():
        raise ValueError("initial cluster is empty (expected name=https://host:2380,...)")
    members = {}
    order = []
    for item in initial_cluster.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError("initial cluster entry %r is not name=url" % (item,))
        name, url = item.split("=", 1)
        name = name.strip()
        if not name:
            raise ValueError("initial cluster entry %r has an empty member name" % (item,))
        if not url.strip():
            raise ValueError("initial cluster entry %r has no URL for member %s" % (item, name))
        if name not in members:
            members[name] = []
            order.append(name)
        members[name].append(normalize_peer_url(url))
    if not order:
        raise ValueError("initial cluster is empty (expected name=https://host:2380,...)")
    seen = {}
    for name in order:
        members[name].sort()
        for url in members[name]:
            if url in seen and seen[url] != name:
                raise ValueError("peer URL %s is listed for both %s and %s in the initial cluster"
                                 % (url, seen[url], name))
            seen[url] = name
    return [(name, members[name]) for name in order]


def compute_member_id(peer_urls, token):
    """Member ID (int) of a member bootstrapped with ``peer_urls`` and ``token``."""
    if isinstance(peer_urls, str):
        peer_urls = [peer_urls]
    urls = sorted(normalize_peer_url(u) for u in peer_urls)
    if not urls:
        raise ValueError("a member needs at least one peer URL")
    if token is None:
        token = DEFAULT_INITIAL_CLUSTER_TOKEN
    data = "".join(urls).encode("utf-8") + token.encode("utf-8")
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def compute_cluster_id(member_ids):
    """Cluster ID (int) of a cluster whose members have ``member_ids`` (ints)."""
    ids = sorted(int(i) for i in member_ids)
    if not ids:
        raise ValueError("a cluster needs at least one member")
    data = b"".join(struct.pack(">Q", i) for i in ids)
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def cluster_member_ids(initial_cluster, token):
    """``{name: member_id}`` for every member of ``initial_cluster`` bootstrapped with ``token``."""
    result = {}
    for name, urls in parse_initial_cluster(initial_cluster):
        member_id = compute_member_id(urls, token)
        if member_id == 0:
            raise ValueError("member %s would get the reserved ID 0; change its peer URLs or the token" % name)
        if member_id in result.values():
            raise ValueError("two members of the initial cluster would get the same ID %s" % id_hex(member_id))
        result[name] = member_id
    return result


def bootstrap_identity(initial_cluster, token, name, advertise_peer_urls=None):
    """IDs a restore (or a new cluster) with these settings produces.

    Also checks what etcd's ``VerifyBootstrap`` checks before it writes anything:
    ``name`` is in ``initial_cluster`` and, when given, ``advertise_peer_urls``
    are exactly that member's URLs.  Returns a dict with ``member_id`` and
    ``cluster_id`` (ints) and ``member_ids`` (``{name: int}``).
    """
    members = dict(parse_initial_cluster(initial_cluster))
    if name not in members:
        raise ValueError("member name %r is not in the initial cluster (%s); --name must be one of %s"
                         % (name, initial_cluster, ", ".join(sorted(members))))
    if advertise_peer_urls is not None:
        if isinstance(advertise_peer_urls, str):
            advertise_peer_urls = advertise_peer_urls.split(",")
        advertised = sorted(normalize_peer_url(u) for u in advertise_peer_urls if u.strip())
        if advertised != members[name]:
            raise ValueError("peer URLs of %s in the initial cluster (%s) differ from the advertised peer URLs (%s)"
                             % (name, ",".join(members[name]), ",".join(advertised)))
    ids = cluster_member_ids(initial_cluster, token)
    return {
        "member_id": ids[name],
        "cluster_id": compute_cluster_id(ids.values()),
        "member_ids": ids,
    }


def id_hex(value):
    """Lowercase hex without padding, as etcdctl prints IDs in its tables."""
    return "%x" % int(value)
