# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one free-space rule of a restore (private to this collection; no API promise before 1.0).

The planner applies it across every path of a node before anything changes; the etcd_restore
module applies the same function to its own data dir as a last guard.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# etcd preallocates its first write-ahead log segment (64 MiB) in a new data dir.
WAL_PREALLOCATION = 64 * 2 ** 20


def restored_dir_bytes(snapshot_size):
    """Bytes a restored data dir takes: the database (the snapshot less its hash, rounded up by 10 %)
    plus the preallocated WAL segment."""
    return int(int(snapshot_size) * 1.1) + WAL_PREALLOCATION


def restore_space_needed(snapshot_size, paths, margin_bytes=0):
    """Bytes needed per filesystem for one member's restore.

    ``paths`` maps a purpose ('data_dir', 'staged_snapshot') to ``(device, needs_copy)``: the
    filesystem (st_dev) the path lies on and, for the staged snapshot, whether this run must still
    write the copy there. The margin is added once per filesystem that receives anything.
    Returns ``{device: bytes}``.
    """
    needed = {}
    for purpose, (device, needs_copy) in sorted(paths.items()):
        if purpose == 'data_dir':
            amount = restored_dir_bytes(snapshot_size)
        elif needs_copy:
            amount = int(snapshot_size)
        else:
            continue
        needed[device] = needed.get(device, 0) + amount
    return dict((device, amount + int(margin_bytes)) for device, amount in needed.items())
