# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether the backup's directory on the ops box outlives the job that writes it (pure, no I/O).

Private to this collection (no API promise before 1.0). The etcd_backup_destination action plugin asks
here before the backup takes any snapshot.

How a job is recognised, from the environment of the ansible-playbook process:

``AWX_ISOLATED_DATA_DIR``
    ansible-runner (the engine of AWX, Tower, AAP and ansible-navigator) sets it for every run to the
    job's artifact dir, ``<private data dir>/artifacts/<ident>`` (``/runner/artifacts/<ident>`` inside an
    execution environment). The private data dir is its grandparent when the parent is named
    ``artifacts`` (the runner's default layout); otherwise only the artifact dir itself is known.
``AWX_PRIVATE_DATA_DIR``
    AWX sets it to the job's private data dir as the AWX node sees it (``/tmp/awx_<id>_<random>``).
``JOB_ID`` with ``AWX_HOST``
    an AWX job: it runs in an execution environment where the private data dir is mounted at ``/runner``.

AWX writes the project, inventory, credentials and extra vars into that private data dir and deletes it
(and the execution environment's container with its ``/runner``) when the job ends; ``ansible-runner
worker`` and ansible-navigator use a temporary one too. The backup's default destination,
``{{ playbook_dir | dirname }}/etcd-backups``, is then the project's checkout inside it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import posixpath

# Where AWX mounts a job's private data dir inside the execution environment.
CONTAINER_ROOT = '/runner'


def job_private_dirs(environ):
    """[(dir, why)] of the directories deleted with the job the environment describes; [] outside a job."""
    found = []
    artifact_dir = environ.get('AWX_ISOLATED_DATA_DIR') or ''
    if artifact_dir:
        artifact_dir = posixpath.normpath(artifact_dir)
        parent = posixpath.dirname(artifact_dir)
        if posixpath.basename(parent) == 'artifacts' and posixpath.dirname(parent) != '/':
            found.append((posixpath.dirname(parent),
                          "the private data dir of this ansible-runner job (AWX_ISOLATED_DATA_DIR=%s is its "
                          "artifacts dir)" % artifact_dir))
        else:
            found.append((artifact_dir, 'the artifact dir of this ansible-runner job (AWX_ISOLATED_DATA_DIR)'))
    private_dir = environ.get('AWX_PRIVATE_DATA_DIR') or ''
    if private_dir:
        found.append((posixpath.normpath(private_dir), 'the private data dir of this AWX job (AWX_PRIVATE_DATA_DIR)'))
    if environ.get('JOB_ID') and environ.get('AWX_HOST'):
        found.append((CONTAINER_ROOT, "the private data dir of AWX job %s as its execution environment mounts it "
                                      "(JOB_ID, AWX_HOST)" % environ['JOB_ID']))
    unique = []
    for entry in found:
        if entry[0] != '/' and entry[0] not in [known[0] for known in unique]:
            unique.append(entry)
    return unique


def is_within(path, directory):
    """Whether the normalised absolute path is directory or lies below it."""
    return path == directory or path.startswith(directory.rstrip('/') + '/')


def vanishing_destination(dest_dir, environ, s3_configured, cwd=None, realpath=None):
    """The refusal text when dest_dir is deleted with the job and nothing goes off-site; None when the backup may go on.

    dest_dir: the backup directory on the ops box (etcd_backup_dest_dir); a relative one is taken relative to cwd.
    environ: the environment of the ansible-playbook process.
    s3_configured: whether the backup also goes to object storage (etcd_backup_s3_bucket is set).
    realpath: optional function resolving symbolic links; both the given and the resolved paths are compared.
    """
    if s3_configured:
        return None
    dirs = job_private_dirs(environ)
    if not dirs:
        return None
    dest = dest_dir if posixpath.isabs(dest_dir) or not cwd else posixpath.join(cwd, dest_dir)
    dest = posixpath.normpath(dest)
    candidates = [dest]
    if realpath is not None:
        candidates.append(posixpath.normpath(realpath(dest)))
    for job_dir, why in dirs:
        job_dirs = [job_dir] + ([posixpath.normpath(realpath(job_dir))] if realpath is not None else [])
        for candidate in candidates:
            if any(is_within(candidate, known) for known in job_dirs):
                return refusal_text(dest_dir, dest, job_dir, why)
    return None


def refusal_text(given, dest, job_dir, why):
    shown = dest if given == dest else '%s (%s)' % (given, dest)
    return ("The backup would be written only to %s on the ops box, inside %s, %s. AWX (like ansible-runner worker "
            "and ansible-navigator) deletes that directory when the job ends, and the backup with it; the default "
            "etcd_backup_dest_dir, {{ playbook_dir | dirname }}/etcd-backups, is the project's checkout there. No "
            "snapshot was taken and nothing was changed. Either set etcd_backup_dest_dir to an absolute path on "
            "persistent storage of the ops box (under AWX: a volume mounted into the execution environment, e.g. "
            "listed in the setting 'Paths to expose to isolated jobs' or in the container group's pod spec), or "
            "send the backup to object storage with etcd_backup_s3_bucket (see docs/backup.md and docs/awx.md)."
            % (shown, job_dir, why))
