# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Streams a file through a chain of commands (zstd, age, ...) with memory flat in file size.

Python reads the source in chunks and feeds the first command; between two commands and after the last one
Python pumps the bytes itself, so that every link can be counted and hashed (the plaintext SHA-256, the
compressed size, the ciphertext SHA-256) and checked (zstd's magic bytes). No shell: argv lists, LANG=C, each
command in a session of its own (so that nothing can prompt on the operator's terminal), a timeout for the
whole chain. A secret (an age identity) reaches a command through a pipe it reads as /dev/fd/N: never argv,
never a file.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import os
import signal
import subprocess
import threading

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import FIXED_ENVIRONMENT

CHUNK_SIZE = 256 * 1024
# What we keep of a command's stderr: its first lines say why it failed; the rest is drained and dropped.
STDERR_LIMIT = 16 * 1024


class Stage(object):
    """One command of the chain. ``secret`` (bytes) is written into a pipe whose read end the command gets
    as ``/dev/fd/N``; ``secret_args(path)`` returns the arguments that name it (appended to argv)."""

    def __init__(self, name, argv, secret=None, secret_args=None):
        self.name = name
        self.argv = list(argv)
        self.secret = secret
        self.secret_args = secret_args or (lambda path: ['-i', path])


class Tap(object):
    """What went through one link: byte count, SHA-256 (when asked), the first bytes.

    ``expect_prefix`` makes the link fail as soon as the data does not start with those bytes.
    """

    def __init__(self, name, digest=False, expect_prefix=None):
        self.name = name
        self.size = 0
        self.head = b''
        self.expect_prefix = expect_prefix
        self._digest = hashlib.sha256() if digest else None

    def update(self, block):
        if self._digest is not None:
            self._digest.update(block)
        if len(self.head) < 16:
            self.head += block[:16 - len(self.head)]
        self.size += len(block)

    def prefix_failed(self, at_end=False):
        """True when the data is known not to start with expect_prefix."""
        if not self.expect_prefix:
            return False
        known = self.head[:len(self.expect_prefix)]
        if not self.expect_prefix.startswith(known):
            return True
        return at_end and len(known) < len(self.expect_prefix)

    @property
    def sha256(self):
        return self._digest.hexdigest() if self._digest is not None else None


class StageFailed(EtcdModuleError):
    """A command of the chain exited non-zero; ``stage``, ``rc`` and ``stderr`` (text, bounded) say how."""

    def __init__(self, stage, rc, stderr):
        super(StageFailed, self).__init__(
            '%s failed on %s (rc=%s): %s' % (stage, node_name(), rc, stderr.strip() or '(no output)'))
        self.stage = stage
        self.rc = rc
        self.stderr = stderr


class PrefixMismatch(EtcdModuleError):
    """The data on a link did not start with the bytes its Tap expects; ``tap`` is that Tap."""

    def __init__(self, tap):
        super(PrefixMismatch, self).__init__('data on %s does not start with the expected bytes' % tap.name)
        self.tap = tap


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Pipeline(object):
    """Run ``stages`` over the file ``source`` into the file descriptor ``sink`` (None: discard).

    ``taps`` has one Tap per link: source -> stage 0, stage 0 -> stage 1, ..., last stage -> sink; pass them to
    choose which links are hashed or checked, read them afterwards. :meth:`run` raises EtcdModuleError (a
    StageFailed or PrefixMismatch where it applies) and leaves the sink's content to the caller to discard.
    """

    def __init__(self, stages, taps, timeout, what):
        if len(taps) != len(stages) + 1:
            raise EtcdModuleError('internal error: a pipeline of %d stages needs %d taps' % (len(stages), len(stages) + 1))
        self.stages = stages
        self.taps = taps
        self.timeout = timeout
        self.what = what
        self.processes = []
        self._stderr = []
        self._error = None
        self._lock = threading.Lock()

    # Failures found by a thread: the first one wins, every command is stopped so every thread ends.
    def _abort(self, error):
        with self._lock:
            if self._error is None:
                self._error = error
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.kill()
                except OSError:
                    pass

    def _start(self):
        environment = dict(os.environ)
        environment.update(FIXED_ENVIRONMENT)
        for stage in self.stages:
            argv = list(stage.argv)
            read_end = write_end = None
            pass_fds = ()
            if stage.secret is not None:
                read_end, write_end = os.pipe()
                argv += stage.secret_args('/dev/fd/%d' % read_end)
                pass_fds = (read_end,)
            try:
                process = subprocess.Popen(
                    [to_bytes(arg, errors='surrogate_or_strict') for arg in argv],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=environment, close_fds=True, pass_fds=pass_fds, start_new_session=True, bufsize=0)
            except OSError as exc:
                for fd in (read_end, write_end):
                    if fd is not None:
                        os.close(fd)
                self._abort(EtcdModuleError('Cannot run %s on %s: %s' % (argv[0], node_name(), exc.strerror or exc)))
                return False
            self.processes.append(process)
            self._stderr.append([b''])
            if read_end is not None:
                os.close(read_end)
                # A few hundred bytes: far below the pipe's buffer, so this never waits for the reader.
                try:
                    _write_all(write_end, stage.secret)
                except OSError:
                    pass  # the command died before reading it; its exit status says why
                finally:
                    os.close(write_end)
        return True

    def _collect_stderr(self, index):
        stream = self.processes[index].stderr
        kept = self._stderr[index]
        while True:
            block = stream.read(CHUNK_SIZE)
            if not block:
                return
            if len(kept[0]) < STDERR_LIMIT:
                kept[0] += block[:STDERR_LIMIT - len(kept[0])]

    def _pass_on(self, tap, block, target_fd):
        """Account one block on a link and hand it on; False when the reader is gone or the check failed."""
        tap.update(block)
        if tap.prefix_failed():
            self._abort(PrefixMismatch(tap))
            return False
        try:
            _write_all(target_fd, block)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                return False  # the next command exited; its status tells why
            raise
        return True

    def _feed(self, source):
        """source file -> first command."""
        stdin = self.processes[0].stdin
        try:
            with open(source, 'rb') as handle:
                while True:
                    block = handle.read(CHUNK_SIZE)
                    if not block or not self._pass_on(self.taps[0], block, stdin.fileno()):
                        break
        except (IOError, OSError) as exc:
            self._abort(EtcdModuleError('Cannot read %s on %s: %s' % (source, node_name(), exc.strerror or exc),
                                        file=source))
        finally:
            self._close(stdin)

    def _pump(self, index):
        """command index -> command index + 1."""
        stdout = self.processes[index].stdout
        stdin = self.processes[index + 1].stdin
        tap = self.taps[index + 1]
        try:
            while True:
                block = stdout.read(CHUNK_SIZE)
                if not block:
                    self._check_short(index, tap)
                    break
                if not self._pass_on(tap, block, stdin.fileno()):
                    break
        except (IOError, OSError) as exc:
            self._abort(EtcdModuleError('Streaming from %s to %s failed on %s: %s'
                                        % (self.stages[index].name, self.stages[index + 1].name, node_name(),
                                           exc.strerror or exc)))
        finally:
            self._close(stdin)
            # Drain what is left so the writer never blocks on a full pipe after a failure.
            try:
                while stdout.read(CHUNK_SIZE):
                    pass
            except (IOError, OSError):
                pass

    def _check_short(self, index, tap):
        """At the end of a link: too little data for the expected prefix counts only when the command that
        wrote it succeeded (a failing one, say age with the wrong identity, writes nothing and explains why)."""
        if tap.prefix_failed(at_end=True) and self.processes[index].wait() == 0:
            self._abort(PrefixMismatch(tap))

    def _drain_output(self, sink):
        """last command -> sink, in this thread."""
        stdout = self.processes[-1].stdout
        tap = self.taps[-1]
        while True:
            block = stdout.read(CHUNK_SIZE)
            if not block:
                self._check_short(len(self.processes) - 1, tap)
                return
            tap.update(block)
            if tap.prefix_failed():
                self._abort(PrefixMismatch(tap))
                return
            if sink is not None:
                try:
                    _write_all(sink, block)
                except OSError as exc:
                    self._abort(EtcdModuleError(
                        'Cannot write the output of %s on %s: %s' % (self.what, node_name(), exc.strerror or exc)))
                    return

    @staticmethod
    def _close(stream):
        try:
            stream.close()
        except (IOError, OSError):
            pass

    def run(self, source, sink):
        threads = []
        timer = threading.Timer(self.timeout, lambda: self._abort(EtcdModuleError(
            '%s on %s did not finish within %s seconds and was stopped; raise command_timeout for large files '
            'or slow disks.' % (self.what, node_name(), self.timeout))))
        timer.daemon = True
        try:
            if self._start():
                timer.start()
                workers = [(self._feed, (source,))]
                workers += [(self._pump, (index,)) for index in range(len(self.processes) - 1)]
                workers += [(self._collect_stderr, (index,)) for index in range(len(self.processes))]
                for target, args in workers:
                    thread = threading.Thread(target=target, args=args)
                    thread.daemon = True
                    thread.start()
                    threads.append(thread)
                self._drain_output(sink)
                if self._error is not None:
                    self._abort(self._error)
                for process in self.processes:
                    process.wait()
                for thread in threads:
                    thread.join()
        finally:
            timer.cancel()
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                for stream in (process.stdin, process.stdout, process.stderr):
                    self._close(stream)
        if self._error is not None:
            raise self._error
        self._raise_for_status()
        return self.taps

    def _raise_for_status(self):
        """Blame the first command that failed on its own; one killed by SIGPIPE only lost its reader."""
        failed = [(index, process.returncode) for index, process in enumerate(self.processes) if process.returncode]
        if not failed:
            return
        own = [entry for entry in failed if entry[1] != -signal.SIGPIPE]
        index, rc = (own or failed)[0]
        stderr = to_text(self._stderr[index][0], errors='surrogate_or_replace')
        raise StageFailed(self.stages[index].name, rc, stderr)
