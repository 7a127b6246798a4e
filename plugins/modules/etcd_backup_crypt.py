#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: etcd_backup_crypt
short_description: Encrypt a backup file with age (optionally zstd-compressed first), or decrypt and verify one
version_added: 0.2.0
description:
  - O(mode=encrypt) encrypts O(src) with the C(age) CLI to one or more O(recipients) (public keys), optionally
    compressing it with C(zstd) first. Only public keys are needed, so this runs on the node that took the snapshot
    and the plaintext never has to leave it.
  - O(mode=decrypt) decrypts O(src) with an age identity (private key) given as O(identity) or O(identity_file),
    decompresses it when its name ends in C(.zst.age), and checks the result against O(expected_sha256) and the
    encrypted file against O(expected_encrypted_sha256). This runs where the restore runs (the ops box, AWX).
  - Everything streams in chunks through pipes (Python reads the file, hashes it, feeds C(zstd) and C(age), hashes
    what comes out); memory stays flat whatever the file size. No shell is used.
  - Output is written to C(<dest>.part) with mode C(0600), fsynced, checked, and renamed to O(dest) only when complete
    and verified. A wrong identity, a corrupted or truncated file or a hash mismatch leaves no output at all.
  - A missing parent directory of O(dest) is created with mode C(0700).
  - O(identity) reaches C(age) through a pipe, as C(-i /dev/fd/N); it is never written to a file, never put on a
    command line and never returned or included in a message.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  mode:
    description:
      - V(encrypt) or V(decrypt).
    type: str
    required: true
    choices: [encrypt, decrypt]
  src:
    description:
      - The file to encrypt (O(mode=encrypt)) or the C(.age) file to decrypt (O(mode=decrypt)).
    type: path
    required: true
  dest:
    description:
      - Where to write the result.
      - Default for O(mode=encrypt) is O(src) plus C(.zst) (when O(compress=true)) plus C(.age).
      - Default for O(mode=decrypt) is O(src) without C(.age) and without C(.zst); required when O(src) does not end
        in C(.age). Ignored with O(verify_only=true).
    type: path
  recipients:
    description:
      - Public keys to encrypt to (O(mode=encrypt) only, required there). Any one matching identity decrypts.
      - Each is an age public key (C(age1) followed by 58 characters, from C(age-keygen -y)) or an SSH public key
        line (C(ssh-ed25519 AAAA...) or C(ssh-rsa AAAA...)).
      - A private key given here is refused (without being repeated in the message).
    type: list
    elements: str
  compress:
    description:
      - Compress with C(zstd) before encrypting (O(mode=encrypt) only). The default O(dest) then ends in
        C(.zst.age), which is how O(mode=decrypt) knows to decompress.
      - etcd snapshots are mostly protobuf and compress well unless their values are already encrypted or random.
    type: bool
    default: false
  compression_level:
    description:
      - zstd level, 1 (fastest) to 19 (smallest).
    type: int
    default: 3
  remove_src:
    description:
      - Remove the plaintext O(src) after O(dest) is complete, fsynced and renamed (O(mode=encrypt) only).
      - This keeps a snapshot, which holds every Secret of the cluster, from lingering unencrypted on the node. The
        file is unlinked, not overwritten block by block (meaningless on SSDs and copy-on-write filesystems), so keep
        staging directories on encrypted or node-private storage.
      - When O(src) is already gone and O(dest) exists, the module assumes an earlier run finished and changes
        nothing.
    type: bool
    default: false
  identity:
    description:
      - The age identity (private key) to decrypt with (O(mode=decrypt) only), that is the content of the file
        C(age-keygen) writes (C(AGE-SECRET-KEY-1...) lines; comment lines allowed), or an unencrypted OpenSSH private
        key when the recipients were SSH keys.
      - Handed to C(age) through a pipe; never logged, written to a file, put on a command line or returned.
      - Mutually exclusive with O(identity_file); one of them is required for O(mode=decrypt).
    type: str
  identity_file:
    description:
      - Path of an age identity file on the host that runs the module (O(mode=decrypt) only).
    type: path
  expected_sha256:
    description:
      - SHA-256 the decrypted (and decompressed) content must have, as recorded when the backup was taken. A mismatch
        fails and writes nothing.
      - When O(dest) already has this SHA-256, nothing is decrypted and nothing changes.
    type: str
  expected_encrypted_sha256:
    description:
      - SHA-256 the encrypted O(src) must have (checked in the same pass that decrypts it). A mismatch fails and
        writes nothing.
    type: str
  verify_only:
    description:
      - Decrypt, decompress and hash, compare with O(expected_sha256) and O(expected_encrypted_sha256), and write
        nothing (O(mode=decrypt) only). Proves that the identity opens O(src) and that its content is intact
        without the plaintext touching any disk; a restore's preflight uses it.
      - Check mode does the same for O(mode=decrypt).
    type: bool
    default: false
  force:
    description:
      - When O(dest) exists and this module cannot show that it already holds the result, move it aside to
        C(<dest>.<UTC timestamp>) once the new file is complete, instead of failing. Nothing is deleted.
      - O(mode=encrypt) cannot tell what an existing O(dest) holds (the plaintext hash cannot be checked without the
        identity), so an existing O(dest) always needs O(force=true) while O(src) exists.
    type: bool
    default: false
  age_path:
    description:
      - Path of the C(age) binary. Default is C(age) from PATH (also C(/usr/local/bin), C(/usr/bin), C(/opt/bin)).
    type: path
  zstd_path:
    description:
      - Path of the C(zstd) binary, needed when compressing or decompressing. Default is C(zstd) from PATH.
    type: path
  command_timeout:
    description:
      - Seconds the whole stream (read, compress, encrypt, write, or the reverse) may take before it is stopped and
        the module fails.
    type: int
    default: 3600
extends_documentation_fragment:
  - kubeops.etcd.attributes
attributes:
  check_mode:
    support: full
    details:
      - O(mode=encrypt) checks the tools and lets C(age) parse the recipients, and reports what it would write.
      - O(mode=decrypt) decrypts and hashes without writing (as O(verify_only=true)), so a wrong identity or a
        corrupted file fails in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - O(mode=decrypt) changes nothing when O(dest) already holds the expected plaintext.
      - O(mode=encrypt) with O(remove_src=true) changes nothing once O(src) is gone and O(dest) exists; without it,
        a second run fails unless O(force=true), since an encrypted file cannot be compared with its source.
requirements:
  - C(age) 1.x on the host that runs the module (Debian/Ubuntu package C(age)).
  - C(zstd) on that host when O(compress=true) or O(src) ends in C(.zst.age) (Debian/Ubuntu package C(zstd)).
notes:
  - Keep the identity out of files on the ops box where you can, for example in an AWX credential or Ansible Vault,
    passed as a variable to O(identity). With C(ANSIBLE_PIPELINING) on, the module's arguments go to the module
    through a pipe; without it Ansible writes them to a temporary file of the module run (removed afterwards).
  - A wrong identity fails with the message that the identity does not match any recipient of O(src).
seealso:
  - module: kubeops.etcd.etcd_snapshot
  - name: age
    description: The age file encryption format and tool.
    link: https://age-encryption.org
'''

EXAMPLES = r'''
- name: Encrypt the new snapshot on the node for the backup recipients, then remove the plaintext
  kubeops.etcd.etcd_backup_crypt:
    mode: encrypt
    src: /var/backups/etcd/etcd-20261122T013500Z.db
    recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqnbNiHl2ujvmMLhzm4RJyVmYMMHzwVSIYzKzmVpnWF ops@example.org
    compress: true
    remove_src: true
  become: true
  register: etcd_backup_encrypted

- name: Prove on the ops box that the identity opens the backup, without writing the plaintext
  kubeops.etcd.etcd_backup_crypt:
    mode: decrypt
    src: /srv/etcd-backups/etcd-20261122T013500Z.db.zst.age
    identity: "{{ etcd_restore_age_identity }}"
    expected_sha256: "{{ etcd_backup_metadata.sha256 }}"
    verify_only: true
  delegate_to: localhost

- name: Decrypt the backup for the restore
  kubeops.etcd.etcd_backup_crypt:
    mode: decrypt
    src: /srv/etcd-backups/etcd-20261122T013500Z.db.zst.age
    dest: /srv/etcd-restore/etcd.db
    identity_file: /etc/kubeops-etcd/backup-identity.txt
    expected_sha256: "{{ etcd_backup_metadata.sha256 }}"
    expected_encrypted_sha256: "{{ etcd_backup_metadata.encrypted_sha256 }}"
  delegate_to: localhost
'''

RETURN = r'''
mode:
  description: The O(mode) that ran.
  returned: always
  type: str
  sample: encrypt
src:
  description: The input file.
  returned: always
  type: str
  sample: /var/backups/etcd/etcd.db
dest:
  description: The file written (or that would be written in check mode); V(null) with O(verify_only=true).
  returned: always
  type: str
  sample: /var/backups/etcd/etcd.db.zst.age
plaintext_sha256:
  description:
    - SHA-256 of the plaintext (what was encrypted, or what decryption produced).
    - V(null) in check mode for O(mode=encrypt), and when O(src) was already encrypted and removed by an earlier run.
  returned: success
  type: str
  sample: 1041d7d203aa1f2c20344e06fcac1ac2937fe148d46f6b34f6a69c74d1f3546c
plaintext_size:
  description: Size of the plaintext in bytes (in check mode for O(mode=encrypt), the size of O(src)).
  returned: success
  type: int
  sample: 20512
encrypted_sha256:
  description: SHA-256 of the encrypted file (V(null) in check mode for O(mode=encrypt)).
  returned: success
  type: str
  sample: 7f0c2dd2b3c6d0a8c0a45e1f0a7e7d3b8ab4b7c4e1d4a2b8e6b6f0c2d0e4a9b1
encrypted_size:
  description: Size of the encrypted file in bytes (V(null) in check mode for O(mode=encrypt)).
  returned: success
  type: int
  sample: 4890
compressed:
  description: Whether the plaintext was compressed with zstd before encryption (O(mode=encrypt)), or is
    decompressed after decryption (O(mode=decrypt)).
  returned: success
  type: bool
  sample: true
compressed_size:
  description: Size of the zstd stream that was encrypted, V(null) without compression or before it ran.
  returned: success and O(mode=encrypt)
  type: int
  sample: 4802
compression_ratio:
  description: RV(plaintext_size) divided by RV(compressed_size) (rounded to 3 decimals), V(null) without compression.
  returned: success and O(mode=encrypt)
  type: float
  sample: 4.271
recipients_count:
  description: How many recipients the file is encrypted to.
  returned: success and O(mode=encrypt)
  type: int
  sample: 2
src_removed:
  description: Whether the plaintext O(src) was removed (would be, in check mode) after encryption.
  returned: success and O(mode=encrypt)
  type: bool
  sample: true
verified_only:
  description: Whether decryption only verified (O(verify_only=true) or check mode) and wrote nothing.
  returned: success and O(mode=decrypt)
  type: bool
  sample: false
moved_aside:
  description: Where an existing O(dest) went (would go, in check mode) with O(force=true).
  returned: success
  type: list
  elements: str
  sample: ["/var/backups/etcd/etcd.db.age.20261122T013500Z"]
age_version:
  description: Version of the C(age) binary used.
  returned: success
  type: str
  sample: 1.1.1
zstd_version:
  description: Version of the C(zstd) binary used, V(null) when none was needed.
  returned: success
  type: str
  sample: 1.5.4
node:
  description: Host name of the machine that ran the module.
  returned: always
  type: str
  sample: cp1
'''

import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeops.etcd.plugins.module_utils.agecrypt import (
    MAX_COMPRESSION_LEVEL,
    MIN_COMPRESSION_LEVEL,
    CryptTools,
    check_sha256,
    decrypt_stream,
    decrypted_name,
    encrypt_stream,
    encrypted_name,
    identity_problem,
    publish,
    read_identity_file,
    remove_plaintext,
    validate_recipients,
    write_through_part,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import (
    make_private_dir,
    move_aside,
    remove_if_exists,
    sha256_file,
    timestamp,
)
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner

ENCRYPT_ONLY = ('recipients', 'compress', 'remove_src')
DECRYPT_ONLY = ('identity', 'identity_file', 'expected_sha256', 'expected_encrypted_sha256', 'verify_only')


def check_options(params):
    other = DECRYPT_ONLY if params['mode'] == 'encrypt' else ENCRYPT_ONLY
    given = [name for name in other if params[name] not in (None, False, [])]
    if given:
        raise EtcdModuleError('%s only appl%s to mode=%s; remove %s for mode=%s.' % (
            ', '.join(given), 'ies' if len(given) == 1 else 'y',
            'decrypt' if params['mode'] == 'encrypt' else 'encrypt', 'it' if len(given) == 1 else 'them',
            params['mode']))
    if params['command_timeout'] <= 0:
        raise EtcdModuleError('command_timeout must be a positive number of seconds.')


def check_paths(src, dest):
    if os.path.abspath(src) == os.path.abspath(dest):
        raise EtcdModuleError('src and dest are the same file (%s); give another dest.' % src)
    if dest.endswith('.part'):
        raise EtcdModuleError('dest %s ends in .part, the name of unfinished files; choose another name.' % dest)
    if os.path.isdir(dest):
        raise EtcdModuleError('dest %s on %s is a directory; give a file path.' % (dest, node_name()), file=dest)


def encrypt(module, runner, result):
    params = module.params
    recipients = validate_recipients(params['recipients'])
    compress = params['compress']
    level = params['compression_level']
    if compress and not MIN_COMPRESSION_LEVEL <= level <= MAX_COMPRESSION_LEVEL:
        raise EtcdModuleError('compression_level must be between %d and %d, not %d.'
                              % (MIN_COMPRESSION_LEVEL, MAX_COMPRESSION_LEVEL, level))
    src = params['src']
    dest = params['dest'] or encrypted_name(src, compress)
    check_paths(src, dest)
    tools = CryptTools.detect(module, runner, params['age_path'], params['zstd_path'], need_zstd=compress)
    result.update(dest=dest, age_version=tools.age_version, zstd_version=tools.zstd_version, compressed=compress,
                  recipients_count=len(recipients), compressed_size=None, compression_ratio=None,
                  plaintext_sha256=None, plaintext_size=None, encrypted_sha256=None, encrypted_size=None,
                  src_removed=False)
    dest_exists = os.path.lexists(dest)
    if not os.path.isfile(src):
        if dest_exists and params['remove_src'] and not os.path.lexists(src):
            # An earlier run encrypted and removed src: done.
            result.update(encrypted_sha256=sha256_file(dest), encrypted_size=os.path.getsize(dest))
            return False
        raise EtcdModuleError('%s does not exist on %s (or is not a regular file); nothing to encrypt.'
                              % (src, node_name()), file=src)
    if dest_exists and not params['force']:
        raise EtcdModuleError(
            '%s already exists on %s and an encrypted file cannot be compared with %s without the identity. '
            'Choose another dest, move the file away, or set force=true to move it aside to %s.<UTC timestamp>.'
            % (dest, node_name(), src, dest), file=dest)
    tools.check_recipients(runner, recipients)
    if module.check_mode:
        result.update(plaintext_size=os.path.getsize(src), src_removed=params['remove_src'])
        if dest_exists:
            result['moved_aside'] = ['%s.%s' % (dest, timestamp())]
        return True

    make_private_dir(os.path.dirname(os.path.abspath(dest)))
    part, stats = write_through_part(dest, lambda fd: encrypt_stream(
        tools, src, fd, recipients, compress, level, params['command_timeout']))
    size_now = os.path.getsize(src)
    written = os.path.getsize(part)
    if size_now != stats['plaintext_size'] or written != stats['encrypted_size']:
        remove_if_exists(part)
        raise EtcdModuleError('%s on %s changed while it was encrypted (%d bytes read, %d now; %d written of %d): '
                              'is another process writing it? Nothing was written.'
                              % (src, node_name(), stats['plaintext_size'], size_now, written,
                                 stats['encrypted_size']), file=src)
    if dest_exists:
        result['moved_aside'] = [move_aside(dest, timestamp())]
    publish(part, dest)
    if sha256_file(dest) != stats['encrypted_sha256']:
        raise EtcdModuleError('%s on %s does not read back as what age wrote (SHA-256 differs): the disk or filesystem '
                              'lost data. The plaintext %s was kept; check the disk and run again with force=true.'
                              % (dest, node_name(), src), file=dest)
    result.update(stats)
    if params['remove_src']:
        result['src_removed'] = remove_plaintext(src)
    return True


def compare(stats, src, expected_sha256, expected_encrypted_sha256):
    """EtcdModuleError when a hash differs from what the backup recorded (checked before anything is renamed)."""
    if expected_encrypted_sha256 and stats['encrypted_sha256'] != expected_encrypted_sha256:
        raise EtcdModuleError(
            '%s on %s has SHA-256 %s, not the expected_encrypted_sha256 %s: the file changed since the backup wrote '
            'it (corrupted in storage or transfer, or another file). Nothing was written; fetch it again or use '
            'another backup.' % (src, node_name(), stats['encrypted_sha256'], expected_encrypted_sha256), file=src)
    if expected_sha256 and stats['plaintext_sha256'] != expected_sha256:
        raise EtcdModuleError(
            '%s on %s decrypts to content with SHA-256 %s, not the expected_sha256 %s: it is not the backup the '
            'metadata describes. Nothing was written; check that src and its metadata belong together.'
            % (src, node_name(), stats['plaintext_sha256'], expected_sha256), file=src)


def decrypt(module, runner, result):
    params = module.params
    src = params['src']
    identity, identity_file = params['identity'], params['identity_file']
    if identity is not None:
        problem = identity_problem(identity)
        if problem:
            raise EtcdModuleError('The identity given is not an age identity: %s. Give the content of the file '
                                  'age-keygen wrote (or an unencrypted SSH private key).' % problem)
    else:
        read_identity_file(identity_file)
    expected = check_sha256(params['expected_sha256'], 'expected_sha256')
    expected_encrypted = check_sha256(params['expected_encrypted_sha256'], 'expected_encrypted_sha256')
    default_dest, decompress = decrypted_name(src)
    verify_only = params['verify_only']
    dest = None if verify_only else (params['dest'] or default_dest)
    if not verify_only and not dest:
        raise EtcdModuleError('src %s does not end in .age, so there is no default dest: give dest.' % src)
    if dest:
        check_paths(src, dest)
    if not os.path.isfile(src):
        raise EtcdModuleError('%s does not exist on %s (or is not a regular file); nothing to decrypt.'
                              % (src, node_name()), file=src)
    tools = CryptTools.detect(module, runner, params['age_path'], params['zstd_path'], need_zstd=decompress)
    result.update(dest=dest, age_version=tools.age_version, zstd_version=tools.zstd_version, compressed=decompress,
                  verified_only=bool(verify_only or module.check_mode))

    dest_exists = bool(dest) and os.path.lexists(dest)
    dest_sha256 = sha256_file(dest) if dest_exists else None
    if dest_exists and expected:
        if dest_sha256 == expected:
            encrypted_sha256 = sha256_file(src)
            compare({'encrypted_sha256': encrypted_sha256, 'plaintext_sha256': dest_sha256}, src, expected,
                    expected_encrypted)
            result.update(plaintext_sha256=dest_sha256, plaintext_size=os.path.getsize(dest),
                          encrypted_sha256=encrypted_sha256, encrypted_size=os.path.getsize(src))
            return False
        if not params['force']:
            raise EtcdModuleError(
                '%s already exists on %s and its SHA-256 %s is not the expected_sha256. Move it away, choose another '
                'dest, or set force=true to move it aside to %s.<UTC timestamp>.' % (dest, node_name(), dest_sha256, dest),
                file=dest)

    def stream(sink):
        return decrypt_stream(tools, src, sink, identity=identity, identity_file=identity_file,
                              decompress=decompress, timeout=params['command_timeout'])

    if verify_only or module.check_mode:
        stats = stream(None)
        compare(stats, src, expected, expected_encrypted)
        would_change = not verify_only and stats['plaintext_sha256'] != dest_sha256
        if would_change and dest_exists:
            if not params['force']:
                raise_existing(dest, src)
            result['moved_aside'] = ['%s.%s' % (dest, timestamp())]
        report(module, result, stats, src)
        return would_change

    make_private_dir(os.path.dirname(os.path.abspath(dest)))
    part, stats = write_through_part(dest, stream)
    try:
        compare(stats, src, expected, expected_encrypted)
        if dest_exists and stats['plaintext_sha256'] == dest_sha256:
            remove_if_exists(part)
            report(module, result, stats, src)
            return False
        if dest_exists:
            if not params['force']:
                raise_existing(dest, src)
            result['moved_aside'] = [move_aside(dest, timestamp())]
    except EtcdModuleError:
        remove_if_exists(part)
        raise
    publish(part, dest)
    report(module, result, stats, src)
    return True


def raise_existing(dest, src):
    raise EtcdModuleError('%s already exists on %s and holds something other than the plaintext of %s. Move it away, '
                          'choose another dest, or set force=true to move it aside to %s.<UTC timestamp>.'
                          % (dest, node_name(), src, dest), file=dest)


def report(module, result, stats, src):
    if stats['looks_compressed']:
        module.warn('%s decrypted to zstd-compressed content, but its name does not end in .zst.age, so it was not '
                    'decompressed.' % src)
    result.update(plaintext_sha256=stats['plaintext_sha256'], plaintext_size=stats['plaintext_size'],
                  encrypted_sha256=stats['encrypted_sha256'], encrypted_size=stats['encrypted_size'])


def run_module(module, result):
    check_options(module.params)
    runner = Runner(module)
    if module.params['mode'] == 'encrypt':
        return encrypt(module, runner, result)
    return decrypt(module, runner, result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type='str', required=True, choices=['encrypt', 'decrypt']),
            src=dict(type='path', required=True),
            dest=dict(type='path'),
            recipients=dict(type='list', elements='str'),
            compress=dict(type='bool', default=False),
            compression_level=dict(type='int', default=3),
            remove_src=dict(type='bool', default=False),
            identity=dict(type='str', no_log=True),
            identity_file=dict(type='path'),
            expected_sha256=dict(type='str'),
            expected_encrypted_sha256=dict(type='str'),
            verify_only=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            age_path=dict(type='path'),
            zstd_path=dict(type='path'),
            command_timeout=dict(type='int', default=3600),
        ),
        required_if=[
            ('mode', 'encrypt', ('recipients',)),
            ('mode', 'decrypt', ('identity', 'identity_file'), True),
        ],
        mutually_exclusive=[('identity', 'identity_file')],
        supports_check_mode=True,
    )
    result = {'mode': module.params['mode'], 'src': module.params['src'], 'dest': module.params['dest'],
              'node': node_name()}
    try:
        changed = run_module(module, result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pragma: no cover - reported with a traceback for bug reports
        module.fail_json(msg='Unexpected error on %s: %s' % (node_name(), exc), exception=traceback.format_exc())
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
