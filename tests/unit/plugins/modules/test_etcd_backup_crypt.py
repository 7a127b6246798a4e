# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""etcd_backup_crypt through main(), with the real age and zstd binaries."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import stat
import subprocess

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import etcd_backup_crypt

from unit_helpers import run_module


def run(args, check=False):
    return run_module(etcd_backup_crypt, args, check=check)


def keygen(directory, name):
    path = os.path.join(str(directory), name)
    subprocess.run(['age-keygen', '-o', path], check=True, capture_output=True)
    with open(path) as handle:
        identity = handle.read()
    public = [line.split(': ', 1)[1].strip() for line in identity.splitlines() if line.startswith('# public key: ')][0]
    secret = [line for line in identity.splitlines() if line.startswith('AGE-SECRET-KEY-1')][0]
    return {'identity': identity, 'public': public, 'path': path, 'secret': secret}


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp('keys')
    return {'one': keygen(directory, 'one.key'), 'two': keygen(directory, 'two.key')}


@pytest.fixture
def snapshot(tmp_path):
    """A compressible 2 MB 'snapshot' and its SHA-256."""
    path = tmp_path / 'backups' / 'etcd.db'
    path.parent.mkdir()
    data = b''.join(b'/registry/secrets/ns-%04d/obj value %s\n' % (index, os.urandom(8).hex().encode())
                    for index in range(40000))
    path.write_bytes(data)
    os.chmod(str(path), 0o600)
    return path, hashlib.sha256(data).hexdigest()


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def sha256(path):
    with open(str(path), 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def encrypt(src, keys, **extra):
    args = dict(mode='encrypt', src=str(src), recipients=[keys['one']['public']])
    args.update(extra)
    ok, result = run(args)
    assert ok, result
    return result


def assert_secret_absent(result, keys):
    text = repr(result)
    for key in keys.values():
        assert key['secret'] not in text and key['secret'][16:50] not in text


# -------------------------------------------------------------------------------------------- encrypt

def test_encrypt_compressed_then_decrypt_round_trip(snapshot, keys):
    src, digest = snapshot
    size = os.path.getsize(str(src))
    result = encrypt(src, keys, compress=True, compression_level=5, remove_src=True)
    dest = str(src) + '.zst.age'
    assert result['changed'] is True and result['dest'] == dest
    assert result['plaintext_sha256'] == digest and result['plaintext_size'] == size
    assert result['encrypted_sha256'] == sha256(dest) and result['encrypted_size'] == os.path.getsize(dest)
    assert result['compressed'] is True and result['compression_ratio'] > 1.5
    assert result['compression_ratio'] == round(float(result['plaintext_size']) / result['compressed_size'], 3)
    assert result['age_version'].startswith('1.') and result['zstd_version']
    assert result['src_removed'] is True and not src.exists()
    assert mode_of(dest) == 0o600 and os.listdir(str(src.parent)) == ['etcd.db.zst.age']

    ok, back = run(dict(mode='decrypt', src=dest, identity=keys['one']['identity'], expected_sha256=digest,
                        expected_encrypted_sha256=result['encrypted_sha256']))
    assert ok, back
    assert back['changed'] is True and back['dest'] == str(src) and sha256(src) == digest
    assert back['plaintext_sha256'] == digest and back['encrypted_sha256'] == result['encrypted_sha256']
    assert back['compressed'] is True and back['verified_only'] is False
    assert mode_of(src) == 0o600
    assert_secret_absent(back, keys)


def test_encrypt_without_compression_to_a_new_private_dir(snapshot, keys, tmp_path):
    src, digest = snapshot
    dest = tmp_path / 'offsite' / 'deep' / 'etcd.db.age'
    result = encrypt(src, keys, dest=str(dest))
    assert result['dest'] == str(dest) and result['compressed'] is False
    assert result['compression_ratio'] is None and result['compressed_size'] is None
    assert result['src_removed'] is False and src.exists()
    assert mode_of(dest.parent) == 0o700 and mode_of(dest.parent.parent) == 0o700 and mode_of(dest) == 0o600


def test_encrypt_check_mode_writes_nothing(snapshot, keys):
    src = snapshot[0]
    before = sorted(os.listdir(str(src.parent)))
    ok, result = run(dict(mode='encrypt', src=str(src), recipients=[keys['one']['public']], compress=True,
                          remove_src=True), check=True)
    assert ok and result['changed'] is True
    assert result['dest'] == str(src) + '.zst.age' and result['plaintext_size'] == os.path.getsize(str(src))
    assert result['plaintext_sha256'] is None and result['src_removed'] is True
    assert sorted(os.listdir(str(src.parent))) == before


def test_encrypt_check_mode_lets_age_judge_the_recipients(snapshot):
    src = snapshot[0]
    ok, result = run(dict(mode='encrypt', src=str(src), recipients=['ssh-ed25519 AAAAnotakey']), check=True)
    assert not ok and 'refuses the recipients' in result['msg'] and 'etcd_backup_age_recipients' in result['msg']


def test_encrypt_refuses_an_existing_dest_then_moves_it_aside_with_force(snapshot, keys):
    src = snapshot[0]
    dest = str(src) + '.age'
    with open(dest, 'wb') as handle:
        handle.write(b'older backup')
    ok, result = run(dict(mode='encrypt', src=str(src), recipients=[keys['one']['public']]))
    assert not ok
    assert result['msg'].startswith('%s already exists on %s and an encrypted file cannot be compared' % (dest, os.uname()[1]))
    assert 'force=true' in result['msg']
    assert open(dest, 'rb').read() == b'older backup'
    result = encrypt(src, keys, force=True)
    moved = result['moved_aside'][0]
    assert moved.startswith(dest + '.') and open(moved, 'rb').read() == b'older backup'
    assert sha256(dest) == result['encrypted_sha256']


def test_encrypt_after_remove_src_is_idempotent(snapshot, keys):
    src = snapshot[0]
    first = encrypt(src, keys, remove_src=True)
    second = encrypt(src, keys, remove_src=True)
    assert second['changed'] is False and second['encrypted_sha256'] == first['encrypted_sha256']
    assert second['plaintext_sha256'] is None and second['src_removed'] is False


def test_encrypt_missing_src(tmp_path, keys):
    ok, result = run(dict(mode='encrypt', src=str(tmp_path / 'none.db'), recipients=[keys['one']['public']]))
    assert not ok and 'none.db does not exist on' in result['msg']


@pytest.mark.parametrize('args, says', [
    (dict(compress=True, compression_level=22), 'compression_level must be between 1 and 19, not 22'),
    (dict(identity='x'), 'identity only applies to mode=decrypt; remove it for mode=encrypt'),
    (dict(verify_only=True, expected_sha256='0' * 64), 'expected_sha256, verify_only only apply to mode=decrypt'),
    (dict(dest='/tmp/x.age.part'), 'ends in .part'),
    (dict(age_path='/nonexistent/age'), 'age_path /nonexistent/age on'),
])
def test_encrypt_refusals(snapshot, keys, args, says):
    src = snapshot[0]
    params = dict(mode='encrypt', src=str(src), recipients=[keys['one']['public']])
    params.update(args)
    ok, result = run(params)
    assert not ok and says in result['msg'], result


def test_encrypt_requires_recipients(snapshot):
    ok, result = run(dict(mode='encrypt', src=str(snapshot[0])))
    assert not ok and 'recipients' in result['msg']


def test_a_secret_key_given_as_recipient_is_refused_and_not_repeated(snapshot, keys):
    ok, result = run(dict(mode='encrypt', src=str(snapshot[0]), recipients=[keys['two']['secret']]))
    assert not ok and 'is an age SECRET key' in result['msg']
    assert_secret_absent(result, keys)


# -------------------------------------------------------------------------------------------- decrypt

@pytest.fixture
def encrypted(snapshot, keys):
    src, digest = snapshot
    result = encrypt(src, keys, compress=True, remove_src=True)
    return result['dest'], digest, result['encrypted_sha256']


def test_verify_only_proves_the_identity_and_writes_nothing(encrypted, keys, tmp_path):
    path, digest, encrypted_sha256 = encrypted
    before = sorted(os.listdir(os.path.dirname(path)))
    ok, result = run(dict(mode='decrypt', src=path, identity=keys['one']['identity'], verify_only=True,
                          expected_sha256=digest, expected_encrypted_sha256=encrypted_sha256))
    assert ok and result['changed'] is False and result['verified_only'] is True and result['dest'] is None
    assert result['plaintext_sha256'] == digest and result['encrypted_sha256'] == encrypted_sha256
    assert sorted(os.listdir(os.path.dirname(path))) == before
    assert_secret_absent(result, keys)


@pytest.mark.parametrize('check', [False, True], ids=['verify_only', 'check_mode'])
def test_a_wrong_identity_is_refused_before_anything_is_written(encrypted, keys, check):
    path = encrypted[0]
    before = sorted(os.listdir(os.path.dirname(path)))
    args = dict(mode='decrypt', src=path, identity=keys['two']['identity'])
    if not check:
        args['verify_only'] = True
    ok, result = run(args, check=check)
    assert not ok
    assert result['msg'] == ('The identity given does not match any recipient of %s on %s: use the age identity whose '
                             'public key was in etcd_backup_age_recipients when it was written.' % (path, os.uname()[1]))
    assert sorted(os.listdir(os.path.dirname(path))) == before
    assert_secret_absent(result, keys)


def test_check_mode_decrypt_writes_nothing_and_says_it_would(encrypted, keys):
    path, digest = encrypted[:2]
    ok, result = run(dict(mode='decrypt', src=path, identity_file=keys['one']['path'], expected_sha256=digest), check=True)
    assert ok and result['changed'] is True and result['verified_only'] is True
    assert result['plaintext_sha256'] == digest and not os.path.exists(result['dest'])


def test_decrypt_is_idempotent(encrypted, keys):
    path, digest = encrypted[:2]
    args = dict(mode='decrypt', src=path, identity=keys['one']['identity'], expected_sha256=digest)
    ok, first = run(args)
    assert ok and first['changed'] is True
    mtime = os.stat(first['dest']).st_mtime_ns
    ok, second = run(args)
    assert ok and second['changed'] is False and second['plaintext_sha256'] == digest
    ok, third = run(args, check=True)
    assert ok and third['changed'] is False
    # Without expected_sha256 the module decrypts and finds the same content: still no change.
    ok, fourth = run(dict(mode='decrypt', src=path, identity=keys['one']['identity']))
    assert ok and fourth['changed'] is False
    assert os.stat(first['dest']).st_mtime_ns == mtime and not os.path.exists(first['dest'] + '.part')


def test_decrypt_refuses_a_different_existing_dest_then_moves_it_aside(encrypted, keys):
    path, digest = encrypted[:2]
    dest = path[:-len('.zst.age')]
    with open(dest, 'wb') as handle:
        handle.write(b'something else')
    args = dict(mode='decrypt', src=path, identity=keys['one']['identity'])
    ok, result = run(args)
    assert not ok and 'already exists on' in result['msg'] and 'force=true' in result['msg']
    assert open(dest, 'rb').read() == b'something else' and not os.path.exists(dest + '.part')
    ok, result = run(dict(args, expected_sha256=digest))
    assert not ok and 'is not the expected_sha256' in result['msg']
    ok, result = run(dict(args, force=True))
    assert ok and result['changed'] is True and sha256(dest) == digest
    assert open(result['moved_aside'][0], 'rb').read() == b'something else'


@pytest.mark.parametrize('option, says', [
    ('expected_sha256', 'decrypts to content with SHA-256'),
    ('expected_encrypted_sha256', 'not the expected_encrypted_sha256'),
])
def test_a_hash_mismatch_writes_nothing(encrypted, keys, option, says):
    path = encrypted[0]
    before = sorted(os.listdir(os.path.dirname(path)))
    ok, result = run({'mode': 'decrypt', 'src': path, 'identity': keys['one']['identity'], option: 'ab' * 32})
    assert not ok and says in result['msg'] and 'Nothing was written' in result['msg']
    assert sorted(os.listdir(os.path.dirname(path))) == before


def test_a_truncated_file_writes_nothing(encrypted, keys):
    path = encrypted[0]
    with open(path, 'rb') as handle:
        data = handle.read()
    with open(path, 'wb') as handle:
        handle.write(data[:len(data) // 2])
    before = sorted(os.listdir(os.path.dirname(path)))
    ok, result = run(dict(mode='decrypt', src=path, identity=keys['one']['identity']))
    assert not ok and 'is corrupted or truncated' in result['msg']
    assert sorted(os.listdir(os.path.dirname(path))) == before


def test_a_malformed_identity_is_refused_without_repeating_it(encrypted):
    path = encrypted[0]
    bogus = 'AGE-SECRET-KEY-1THISISNOTAVALIDKEYBUTLOOKSLIKEONE'
    ok, result = run(dict(mode='decrypt', src=path, identity='# mine\n%s\n' % bogus))
    assert not ok and 'line 2 is not an age secret key' in result['msg'] and bogus not in repr(result)


@pytest.mark.parametrize('args, says', [
    (dict(), 'mode is decrypt but any of the following are missing: identity, identity_file'),
    (dict(identity='x', identity_file='/y'), 'mutually exclusive'),
    (dict(identity='x', remove_src=True), 'remove_src only applies to mode=encrypt'),
])
def test_decrypt_option_refusals(encrypted, args, says):
    ok, result = run(dict(mode='decrypt', src=encrypted[0], **args))
    assert not ok and says in result['msg'], result


def test_decrypt_needs_dest_for_a_name_without_age(tmp_path, keys):
    src = tmp_path / 'backup.bin'
    src.write_bytes(b'x')
    ok, result = run(dict(mode='decrypt', src=str(src), identity=keys['one']['identity']))
    assert not ok and 'does not end in .age, so there is no default dest: give dest' in result['msg']
