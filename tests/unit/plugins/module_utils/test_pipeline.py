# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The streaming pipeline with plain commands (cat, sh, sleep): counting, hashing, blame, timeout, secrets."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.pipeline import Pipeline, Stage, StageFailed, Tap


def random_file(path, size):
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_pipeline_blames_the_command_that_failed_on_its_own(tmp_path):
    src = tmp_path / 'in'
    random_file(src, 3 * 1024 * 1024)
    stages = [Stage('cat', ['/bin/cat']), Stage('false', ['/bin/sh', '-c', 'echo nope >&2; exit 3'])]
    with pytest.raises(StageFailed) as caught:
        Pipeline(stages, [Tap('a'), Tap('b'), Tap('c')], 30, 'test').run(str(src), None)
    assert caught.value.stage == 'false' and caught.value.rc == 3 and caught.value.stderr.strip() == 'nope'


def test_pipeline_counts_and_hashes_every_link(tmp_path):
    src = tmp_path / 'in'
    digest = random_file(src, 1024 * 1024 + 7)
    taps = [Tap('in', digest=True), Tap('mid'), Tap('out', digest=True)]
    Pipeline([Stage('cat', ['/bin/cat']), Stage('cat', ['/bin/cat'])], taps, 30, 'test').run(str(src), None)
    assert [tap.size for tap in taps] == [1024 * 1024 + 7] * 3
    assert taps[0].sha256 == taps[2].sha256 == digest and taps[1].sha256 is None


def test_pipeline_stops_at_the_timeout(tmp_path):
    src = tmp_path / 'in'
    src.write_bytes(b'x')
    with pytest.raises(EtcdModuleError, match='test on .* did not finish within 0.5 seconds'):
        Pipeline([Stage('sleep', ['/bin/sleep', '30'])], [Tap('a'), Tap('b')], 0.5, 'test').run(str(src), None)


def test_pipeline_missing_command(tmp_path):
    src = tmp_path / 'in'
    src.write_bytes(b'x')
    with pytest.raises(EtcdModuleError, match='Cannot run /nonexistent/tool on'):
        Pipeline([Stage('x', ['/nonexistent/tool'])], [Tap('a'), Tap('b')], 5, 'test').run(str(src), None)


def test_pipeline_secret_arrives_through_a_pipe_not_argv(tmp_path):
    src = tmp_path / 'in'
    src.write_bytes(b'')
    out = tmp_path / 'out'
    # The command prints its argv and what it reads from the file it is given.
    stage = Stage('show', ['/bin/sh', '-c', 'echo "argv: $0"; cat "$0"'], secret=b'the-secret',
                  secret_args=lambda path: [path])
    fd = os.open(str(out), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        Pipeline([stage], [Tap('a'), Tap('b')], 10, 'test').run(str(src), fd)
    finally:
        os.close(fd)
    first, second = out.read_text().splitlines()
    assert first.startswith('argv: /dev/fd/') and 'the-secret' not in first
    assert second == 'the-secret'


def test_pipeline_blames_the_reader_that_failed_not_the_writer_it_left_behind(tmp_path):
    src = tmp_path / 'in'
    random_file(src, 4 * 1024 * 1024)
    stages = [Stage('cat', ['/bin/cat']), Stage('reader', ['/bin/sh', '-c', 'head -c 10 >/dev/null; exit 4'])]
    with pytest.raises(StageFailed) as caught:
        Pipeline(stages, [Tap('a'), Tap('b'), Tap('c')], 30, 'test').run(str(src), None)
    assert caught.value.stage == 'reader' and caught.value.rc == 4


def test_pipeline_prefix_check_stops_the_stream(tmp_path):
    src = tmp_path / 'in'
    src.write_bytes(b'not the magic' * 100000)
    taps = [Tap('a'), Tap('b', expect_prefix=b'\x28\xb5\x2f\xfd'), Tap('c')]
    with pytest.raises(EtcdModuleError) as caught:
        Pipeline([Stage('cat', ['/bin/cat']), Stage('cat', ['/bin/cat'])], taps, 30, 'test').run(str(src), None)
    assert caught.value.tap is taps[1]
    assert taps[2].size == 0   # stopped at the first block: nothing reached the next command


def test_pipeline_sink_write_failure_is_reported(tmp_path):
    src = tmp_path / 'in'
    random_file(src, 1024)
    (tmp_path / 'out').write_bytes(b'')
    fd = os.open(str(tmp_path / 'out'), os.O_RDONLY)
    try:
        with pytest.raises(EtcdModuleError, match='Cannot write the output of test on'):
            Pipeline([Stage('cat', ['/bin/cat'])], [Tap('a'), Tap('b')], 30, 'test').run(str(src), fd)
    finally:
        os.close(fd)
