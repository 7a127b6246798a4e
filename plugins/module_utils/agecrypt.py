# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Encryption at rest with the age CLI, optionally after zstd: validation, the streams, the file choreography.

Only public keys (recipients) are needed to encrypt, so only they go to the nodes. The identity (private key)
is needed where a restore runs; given as a string it reaches age through a pipe (``-i /dev/fd/N``), never argv,
never a file, and no message or result of this file ever contains it: age's own error text is reduced to what
a person needs (it would otherwise echo the first bytes of a file that is not age-encrypted).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import re

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import remove_if_exists
from ansible_collections.kubeops.etcd.plugins.module_utils.pipeline import Pipeline, PrefixMismatch, Stage, StageFailed, Tap
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import find_tool

AGE_SUFFIX = '.age'
ZSTD_SUFFIX = '.zst'
ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
# bech32's data alphabet (no 1, b, i, o): catches a mistyped key before age does.
_BECH32 = '02-9ac-hj-np-z'
AGE_RECIPIENT = re.compile(r'^age1[%s]{58}$' % _BECH32)
SSH_RECIPIENT = re.compile(r'^(ssh-ed25519|ssh-rsa) AAAA[0-9A-Za-z+/]+={0,2}( [^\r\n]*)?$')
AGE_SECRET_KEY = re.compile(r'^AGE-SECRET-KEY-1[%s]{58}$' % _BECH32.upper())
_SSH_PRIVATE_KEY = re.compile(
    r'^-----BEGIN (OPENSSH|RSA) PRIVATE KEY-----\r?\n[0-9A-Za-z+/=:,\-\s]+-----END \1 PRIVATE KEY-----\s*$')
MIN_COMPRESSION_LEVEL = 1
MAX_COMPRESSION_LEVEL = 19
RECIPIENTS_HINT = 'etcd_backup_age_recipients'


# ---------------------------------------------------------------------------------------------- validation

def validate_recipients(recipients):
    """The recipients, stripped; EtcdModuleError naming each one that is not an age or SSH public key."""
    if not recipients:
        raise EtcdModuleError('No age recipients given: list at least one public key (age1... or ssh-ed25519 AAAA...).')
    cleaned, problems = [], []
    for index, recipient in enumerate(recipients):
        value = to_text(recipient).strip() if recipient is not None else ''
        if AGE_RECIPIENT.match(value) or SSH_RECIPIENT.match(value):
            cleaned.append(value)
            continue
        if value.startswith('AGE-SECRET-KEY-'):
            # A private key in the list of public keys: say so without repeating it.
            problems.append('recipient %d is an age SECRET key, not a public key: remove it from the recipients '
                            '(and treat it as disclosed); give its public key (age-keygen -y) instead' % (index + 1))
        elif '-----BEGIN' in value:
            problems.append('recipient %d is a private key, not a public key: give the .pub line instead' % (index + 1))
        else:
            problems.append('recipient %d %r is neither an age public key (age1 followed by 58 characters) nor an '
                            'SSH public key (ssh-ed25519 AAAA... or ssh-rsa AAAA...)' % (index + 1, value[:80]))
    if problems:
        raise EtcdModuleError('Invalid age recipients: %s.' % '; '.join(problems))
    return cleaned


def identity_problem(identity):
    """Why ``identity`` (text) is not an age identity file, or None. The text never repeats the value.

    Accepted: lines ``AGE-SECRET-KEY-1...`` with blank and ``#`` comment lines (what age-keygen writes), or one
    unencrypted OpenSSH/RSA private key in PEM armor (for SSH recipients).
    """
    text = to_text(identity or '', errors='surrogate_or_replace')
    if not text.strip():
        return 'it is empty'
    if text.lstrip().startswith('-----BEGIN'):
        if _SSH_PRIVATE_KEY.match(text.strip() + '\n'):
            return None
        return 'it starts like a PEM private key but is not one whole OpenSSH or RSA private key block'
    keys = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        if not AGE_SECRET_KEY.match(stripped):
            return ('line %d is not an age secret key (AGE-SECRET-KEY-1 followed by 58 upper-case characters, as '
                    'age-keygen writes it)' % number)
        keys += 1
    if not keys:
        return 'it holds only comments, no AGE-SECRET-KEY-1... line'
    return None


def identity_lines(identity):
    """The non-comment lines of an identity (what must never appear in a message)."""
    text = to_text(identity or '', errors='surrogate_or_replace')
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith('#')]
    return [line for line in lines if not line.startswith('-----')]


def scrub(text, identity):
    """text with every secret line of identity replaced (belt and braces: age never echoes a key)."""
    for line in identity_lines(identity):
        if len(line) >= 8:
            text = text.replace(line, '[identity hidden]')
    return text


def read_identity_file(path):
    """Check that path is a readable identity file; returns nothing (age reads it itself)."""
    try:
        with open(path, 'rb') as handle:
            content = handle.read(1024 * 1024)
    except (IOError, OSError) as exc:
        raise EtcdModuleError('Cannot read the age identity file %s on %s: %s' % (path, node_name(), exc.strerror or exc),
                              identity_file=path)
    problem = identity_problem(content)
    if problem:
        raise EtcdModuleError('%s on %s is not an age identity file: %s. Give the file age-keygen wrote (or an '
                              'unencrypted SSH private key).' % (path, node_name(), problem), identity_file=path)


def check_sha256(value, option):
    """Lower-case hex SHA-256, or EtcdModuleError naming the option."""
    if value is None:
        return None
    value = value.strip().lower()
    if not re.match(r'^[0-9a-f]{64}$', value):
        raise EtcdModuleError('%s must be a SHA-256 in hex (64 characters 0-9a-f).' % option)
    return value


# -------------------------------------------------------------------------------------------------- names

def encrypted_name(src, compress):
    return src + (ZSTD_SUFFIX if compress else '') + AGE_SUFFIX


def decrypted_name(src):
    """(plaintext path, compressed?) from an encrypted file's name: x.db.zst.age -> (x.db, True)."""
    if not src.endswith(AGE_SUFFIX):
        return None, False
    base = src[:-len(AGE_SUFFIX)]
    if base.endswith(ZSTD_SUFFIX):
        return base[:-len(ZSTD_SUFFIX)], True
    return base, False


# -------------------------------------------------------------------------------------------------- tools

class CryptTools(object):
    """age (and zstd when needed) found on this host, with their versions."""

    def __init__(self, age, age_version, zstd=None, zstd_version=None):
        self.age = age
        self.age_version = age_version
        self.zstd = zstd
        self.zstd_version = zstd_version

    @classmethod
    def detect(cls, module, runner, age_path=None, zstd_path=None, need_zstd=False):
        age = find_tool(module, 'age', age_path)
        if not age:
            raise EtcdModuleError('age not found on %s: install it (Debian/Ubuntu: apt install age; any age 1.x '
                                  'release binary) or set age_path.' % node_name())
        result = runner.run([age, '--version'], check_rc=False)
        version = result.stdout.strip().lstrip('v')
        if result.rc != 0 or not re.match(r'^\d+\.\d+', version):
            raise EtcdModuleError('%s on %s is not a working age binary (`%s --version` rc=%s): %s'
                                  % (age, node_name(), age, result.rc, (result.stderr or result.stdout).strip()[:300]))
        if not version.startswith('1.'):
            raise EtcdModuleError('%s on %s is age %s; this collection needs age 1.x.' % (age, node_name(), version))
        tools = cls(age, version)
        if need_zstd:
            zstd = find_tool(module, 'zstd', zstd_path)
            if not zstd:
                raise EtcdModuleError('zstd not found on %s (needed for compressed files): install it (Debian/Ubuntu: '
                                      'apt install zstd) or set zstd_path.' % node_name())
            result = runner.run([zstd, '--version'], check_rc=False)
            match = re.search(r'v(\d+\.\d+\.\d+)', result.stdout)
            if result.rc != 0 or not match:
                raise EtcdModuleError('%s on %s is not a working zstd binary (`%s --version` rc=%s).'
                                      % (zstd, node_name(), zstd, result.rc))
            tools.zstd, tools.zstd_version = zstd, match.group(1)
        return tools

    def check_recipients(self, runner, recipients):
        """Let age itself parse the recipients (encrypting nothing): catches what the shape check cannot."""
        argv = [self.age, '--encrypt']
        for recipient in recipients:
            argv += ['-r', recipient]
        result = runner.run(argv, check_rc=False, data='')
        if result.rc != 0:
            raise EtcdModuleError('age on %s refuses the recipients: %s. Fix %s.'
                                  % (node_name(), age_error(result.stderr), RECIPIENTS_HINT))


def age_error(stderr):
    """age's reason, without its report-a-bug line and without any file content it may quote."""
    lines = [line.strip() for line in to_text(stderr).splitlines() if line.strip()]
    lines = [line for line in lines if 'report unexpected or unhelpful errors' not in line]
    reason = lines[0] if lines else '(no output)'
    if reason.startswith('age: error: '):
        reason = reason[len('age: error: '):]
    # "unexpected intro: <the file's first bytes>" would print what may be plaintext.
    reason = re.sub(r'(unexpected intro|malformed)\b.*', r'\1', reason)
    return reason[:500]


# ----------------------------------------------------------------------------------------------- streams

def encrypt_stream(tools, src, sink_fd, recipients, compress=False, level=3, timeout=3600):
    """src -> [zstd] -> age -> sink_fd. Returns sizes and hashes of the plaintext and the ciphertext."""
    stages, taps = [], [Tap('plaintext', digest=True)]
    if compress:
        stages.append(Stage('zstd', [tools.zstd, '-c', '-q', '-%d' % level]))
        taps.append(Tap('compressed'))
    argv = [tools.age, '--encrypt']
    for recipient in recipients:
        argv += ['-r', recipient]
    stages.append(Stage('age', argv))
    taps.append(Tap('ciphertext', digest=True))
    try:
        Pipeline(stages, taps, timeout, 'Encrypting %s' % src).run(src, sink_fd)
    except StageFailed as exc:
        raise EtcdModuleError('Encrypting %s with %s failed on %s (rc=%s): %s'
                              % (src, exc.stage, node_name(), exc.rc, age_error(exc.stderr) if exc.stage == 'age'
                                 else exc.stderr.strip()[:500]), file=src)
    plaintext, ciphertext = taps[0], taps[-1]
    compressed_size = taps[1].size if compress else None
    return {
        'plaintext_sha256': plaintext.sha256,
        'plaintext_size': plaintext.size,
        'encrypted_sha256': ciphertext.sha256,
        'encrypted_size': ciphertext.size,
        'compressed': bool(compress),
        'compressed_size': compressed_size,
        'compression_ratio': round(float(plaintext.size) / compressed_size, 3) if compressed_size else None,
    }


def decrypt_stream(tools, src, sink_fd, identity=None, identity_file=None, decompress=False, timeout=3600):
    """src -> age --decrypt -> [zstd -d] -> sink_fd (None: hash only). Raises with the cause named:
    wrong identity, not age, corrupted or truncated, not zstd although named .zst."""
    if identity is not None:
        age = Stage('age', [tools.age, '--decrypt'], secret=to_bytes(identity.strip() + '\n'))
    else:
        age = Stage('age', [tools.age, '--decrypt', '-i', identity_file])
    stages, taps = [age], [Tap('ciphertext', digest=True)]
    if decompress:
        stages.append(Stage('zstd', [tools.zstd, '-d', '-c', '-q']))
        taps.append(Tap('decrypted', expect_prefix=ZSTD_MAGIC))
    taps.append(Tap('plaintext', digest=True))
    try:
        Pipeline(stages, taps, timeout, 'Decrypting %s' % src).run(src, sink_fd)
    except PrefixMismatch:
        raise EtcdModuleError(
            '%s on %s decrypted, but what it holds is not zstd-compressed although its name ends in .zst.age. '
            'Rename it to drop .zst (it was encrypted without compression), or give dest explicitly.'
            % (src, node_name()), file=src)
    except StageFailed as exc:
        raise decrypt_error(src, exc, identity, identity_file)
    ciphertext, plaintext = taps[0], taps[-1]
    return {
        'encrypted_sha256': ciphertext.sha256,
        'encrypted_size': ciphertext.size,
        'plaintext_sha256': plaintext.sha256,
        'plaintext_size': plaintext.size,
        'decompressed': bool(decompress),
        # Compressed by someone else under a name without .zst: worth a warning, not a failure.
        'looks_compressed': not decompress and plaintext.head.startswith(ZSTD_MAGIC),
    }


def decrypt_error(src, exc, identity, identity_file):
    host = node_name()
    if exc.stage != 'age':
        return EtcdModuleError('Decompressing %s with zstd failed on %s (rc=%s): %s. The file decrypted but its '
                               'content is not a whole zstd stream: take a new backup.'
                               % (src, host, exc.rc, exc.stderr.strip()[:300]), file=src)
    reason = scrub(age_error(exc.stderr), identity)
    given = 'The identity file %s' % identity_file if identity_file else 'The identity given'
    if 'no identity matched any of the recipients' in reason:
        msg = ('%s does not match any recipient of %s on %s: use the age identity whose public key was in %s when '
               'it was written.' % (given, src, host, RECIPIENTS_HINT))
    elif 'passphrase' in reason:
        msg = ('%s is a passphrase-protected SSH key and age cannot ask for the passphrase here (no terminal) while '
               'decrypting %s on %s: give an unencrypted copy of the key, or an age identity.' % (given, src, host))
    elif 'failed to read header' in reason or 'parsing age header' in reason or 'unexpected intro' in reason:
        msg = ('%s on %s is not an age-encrypted file (or its header is cut off): %s. Check that src is the .age '
               'file the backup wrote.' % (src, host, reason))
    elif 'payload' in reason or 'unexpected EOF' in reason or 'truncated' in reason:
        msg = ('%s on %s is corrupted or truncated: age could not authenticate its content (%s). Nothing was written; '
               'fetch the file again or use another backup.' % (src, host, reason))
    elif 'reading' in reason and ('malformed' in reason or 'error at line' in reason):
        msg = ('age on %s could not read %s: %s. Give the file age-keygen wrote.' % (host, given[0].lower() + given[1:], reason))
    else:
        msg = 'Decrypting %s with age failed on %s (rc=%s): %s' % (src, host, exc.rc, reason)
    return EtcdModuleError(msg, file=src)


# ---------------------------------------------------------------------------------------------- file I/O

def open_part(dest):
    """``<dest>.part`` opened for writing, mode 0600 from the first byte (a stale one of ours is overwritten)."""
    part = dest + '.part'
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0), 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise EtcdModuleError('Cannot write %s on %s: %s' % (part, node_name(), exc.strerror or exc), file=part)
    return part, fd


def fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)) or '.', os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_through_part(dest, writer):
    """Run writer(fd) on ``<dest>.part``, fsync it and return (part path, writer's result).

    On any failure the .part file is removed: nothing partial is ever left.
    """
    part, fd = open_part(dest)
    try:
        result = writer(fd)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_if_exists(part)
        raise
    os.close(fd)
    return part, result


def publish(part, dest):
    """Rename a complete .part file to dest (0600, same dir: atomic) and make the rename durable.

    Not module.atomic_move: for a new dest it chmods to 0666 & ~umask before we could narrow it, a moment in
    which a decrypted snapshot would be readable by every local user.
    """
    try:
        os.chmod(part, 0o600)
        os.rename(part, dest)
        fsync_dir(dest)
    except OSError as exc:
        remove_if_exists(part)
        raise EtcdModuleError('Cannot rename %s to %s on %s: %s' % (part, dest, node_name(), exc.strerror or exc),
                              file=dest)


def remove_plaintext(src):
    """Unlink the plaintext source once its encrypted copy is durable."""
    try:
        os.unlink(src)
        fsync_dir(src)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise EtcdModuleError('%s on %s was encrypted, but removing the plaintext failed: %s. Remove it by hand: it '
                              'holds every Secret of the cluster.' % (src, node_name(), exc.strerror or exc), file=src)
    return True
