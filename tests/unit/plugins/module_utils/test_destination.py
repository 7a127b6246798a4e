# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import destination

# What ansible-runner sets for `ansible-runner run /tmp/job1 -p playbooks/backup.yml` (ident 7).
RUNNER = {'AWX_ISOLATED_DATA_DIR': '/tmp/job1/artifacts/7', 'HOME': '/root'}
# What an AWX job sees inside its execution environment.
AWX = {'AWX_ISOLATED_DATA_DIR': '/runner/artifacts/42', 'AWX_PRIVATE_DATA_DIR': '/tmp/awx_42_ab12cd',
       'JOB_ID': '42', 'AWX_HOST': 'https://awx.example.com', 'INVENTORY_ID': '3'}


def test_outside_a_runner_job_any_destination_is_kept():
    assert destination.job_private_dirs({'HOME': '/root', 'PWD': '/tmp/job1/project'}) == []
    assert destination.vanishing_destination('/tmp/job1/project/etcd-backups', {'HOME': '/root'}, False) is None


def test_the_default_destination_inside_the_private_data_dir_is_refused_with_both_fixes():
    text = destination.vanishing_destination('/tmp/job1/project/etcd-backups', RUNNER, False)
    assert text.startswith('The backup would be written only to /tmp/job1/project/etcd-backups on the ops box, '
                           'inside /tmp/job1, the private data dir of this ansible-runner job '
                           '(AWX_ISOLATED_DATA_DIR=/tmp/job1/artifacts/7 is its artifacts dir).')
    assert 'deletes that directory when the job ends' in text
    assert 'No snapshot was taken and nothing was changed.' in text
    assert 'set etcd_backup_dest_dir to an absolute path on persistent storage' in text
    assert 'a volume mounted into the execution environment' in text
    assert 'etcd_backup_s3_bucket' in text


def test_object_storage_makes_a_destination_inside_the_job_acceptable():
    assert destination.vanishing_destination('/tmp/job1/project/etcd-backups', RUNNER, True) is None
    assert destination.vanishing_destination('/runner/project/etcd-backups', AWX, True) is None


@pytest.mark.parametrize('dest', ['/srv/etcd-backups', '/tmp/job10/etcd-backups', '/tmp/job1-backups',
                                  '/tmp/job1/project/../../srv/etcd-backups'])
def test_a_destination_outside_the_private_data_dir_is_kept(dest):
    assert destination.vanishing_destination(dest, RUNNER, False) is None


@pytest.mark.parametrize('dest', ['/tmp/job1', '/tmp/job1/', '/tmp/job1/artifacts/7/backups', '/tmp//job1/./x'])
def test_the_private_data_dir_itself_and_everything_below_it_is_refused(dest):
    assert 'inside /tmp/job1,' in destination.vanishing_destination(dest, RUNNER, False)


def test_an_awx_job_knows_the_execution_environment_mount_and_the_node_side_dir():
    assert destination.job_private_dirs(AWX) == [
        ('/runner', 'the private data dir of this ansible-runner job (AWX_ISOLATED_DATA_DIR=/runner/artifacts/42 '
                    'is its artifacts dir)'),
        ('/tmp/awx_42_ab12cd', 'the private data dir of this AWX job (AWX_PRIVATE_DATA_DIR)'),
    ]
    assert 'inside /runner,' in destination.vanishing_destination('/runner/project/etcd-backups', AWX, False)
    assert 'inside /tmp/awx_42_ab12cd, the private data dir of this AWX job (AWX_PRIVATE_DATA_DIR)' in \
        destination.vanishing_destination('/tmp/awx_42_ab12cd/project/etcd-backups', AWX, False)
    assert destination.vanishing_destination('/var/lib/etcd-backups', AWX, False) is None


def test_an_awx_job_without_the_runner_variable_still_refuses_runner():
    environ = {'JOB_ID': '42', 'AWX_HOST': 'https://awx.example.com'}
    text = destination.vanishing_destination('/runner/project/etcd-backups', environ, False)
    assert 'inside /runner, the private data dir of AWX job 42 as its execution environment mounts it' in text
    # JOB_ID alone is too common a name to mean AWX.
    assert destination.job_private_dirs({'JOB_ID': '42'}) == []


def test_an_artifact_dir_outside_the_runner_layout_is_the_only_dir_known():
    environ = {'AWX_ISOLATED_DATA_DIR': '/var/log/runner-artifacts/7'}
    assert destination.job_private_dirs(environ) == [
        ('/var/log/runner-artifacts/7', 'the artifact dir of this ansible-runner job (AWX_ISOLATED_DATA_DIR)')]
    assert destination.vanishing_destination('/var/log/etcd-backups', environ, False) is None
    assert destination.vanishing_destination('/var/log/runner-artifacts/7/b', environ, False) is not None


def test_the_root_directory_is_never_taken_for_a_job_dir():
    assert destination.job_private_dirs({'AWX_ISOLATED_DATA_DIR': '/artifacts/7', 'AWX_PRIVATE_DATA_DIR': '/'}) == [
        ('/artifacts/7', 'the artifact dir of this ansible-runner job (AWX_ISOLATED_DATA_DIR)')]


def test_a_relative_destination_is_taken_relative_to_the_current_directory():
    text = destination.vanishing_destination('etcd-backups', RUNNER, False, cwd='/tmp/job1/project')
    assert text.startswith('The backup would be written only to etcd-backups (/tmp/job1/project/etcd-backups) ')
    assert destination.vanishing_destination('etcd-backups', RUNNER, False, cwd='/srv') is None


def test_symbolic_links_are_followed_both_ways():
    links = {'/srv/backups-link': '/tmp/job1/project/etcd-backups', '/tmp/job1': '/data/runner/job1'}

    def realpath(path):
        for link, target in links.items():
            if destination.is_within(path, link):
                return target + path[len(link):]
        return path

    # A link on persistent storage that points into the job.
    text = destination.vanishing_destination('/srv/backups-link', RUNNER, False, realpath=realpath)
    assert 'inside /tmp/job1,' in text
    # The job dir is itself a link: the resolved destination is compared with the resolved job dir.
    assert destination.vanishing_destination('/data/runner/job1/project/etcd-backups', RUNNER, False,
                                             realpath=realpath) is not None
    assert destination.vanishing_destination('/data/other', RUNNER, False, realpath=realpath) is None
