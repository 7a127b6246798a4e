# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""agecrypt with the real age and zstd binaries (local tools, not services)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import stat
import subprocess

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import agecrypt
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError
from ansible_collections.kubeops.etcd.plugins.module_utils.runner import Runner

from unit_helpers import FakeModule

SIZES = [0, 1, 5 * 1024 * 1024]


def keygen(directory, name):
    """(identity text, public key, identity path) from age-keygen."""
    path = os.path.join(str(directory), name)
    subprocess.run(['age-keygen', '-o', path], check=True, capture_output=True)
    with open(path) as handle:
        identity = handle.read()
    public = [line.split(': ', 1)[1].strip() for line in identity.splitlines() if line.startswith('# public key: ')][0]
    return identity, public, path


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp('keys')
    return {'one': keygen(directory, 'one.key'), 'two': keygen(directory, 'two.key')}


@pytest.fixture
def tools():
    module = FakeModule(bin_dirs=['/usr/bin', '/usr/local/bin'])
    return agecrypt.CryptTools.detect(module, Runner(module), need_zstd=True)


def secret_line(identity):
    return [line for line in identity.splitlines() if line.startswith('AGE-SECRET-KEY-1')][0]


def random_file(path, size):
    data = os.urandom(size)
    with open(str(path), 'wb') as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def encrypt_to(tools, src, dest, recipients, compress=False):
    part, stats = agecrypt.write_through_part(str(dest), lambda fd: agecrypt.encrypt_stream(
        tools, str(src), fd, recipients, compress=compress))
    agecrypt.publish(part, str(dest))
    return stats


# ------------------------------------------------------------------------------------------ validation

def test_recipients_accept_age_and_ssh_public_keys(keys):
    ssh = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqnbNiHl2ujvmMLhzm4RJyVmYMMHzwVSIYzKzmVpnWF ops@example.org'
    assert agecrypt.validate_recipients([' %s\n' % keys['one'][1], ssh]) == [keys['one'][1], ssh]


@pytest.mark.parametrize('bad, says', [
    ('age1tooshort', 'recipient 1 \'age1tooshort\' is neither an age public key'),
    ('age1' + 'b' * 58, 'neither an age public key'),   # b is not in bech32's alphabet
    ('ssh-dss AAAAB3NzaC1kc3MAAACBAP', 'neither an age public key'),
    ('', 'recipient 1 \'\' is neither'),
])
def test_recipients_refuse_what_is_not_a_public_key(bad, says):
    with pytest.raises(EtcdModuleError) as caught:
        agecrypt.validate_recipients([bad])
    assert says in caught.value.msg


def test_a_secret_key_among_the_recipients_is_refused_without_repeating_it(keys):
    secret = secret_line(keys['one'][0])
    with pytest.raises(EtcdModuleError) as caught:
        agecrypt.validate_recipients([keys['two'][1], secret])
    assert 'recipient 2 is an age SECRET key' in caught.value.msg
    assert secret not in caught.value.msg and secret[20:40] not in str(caught.value)


def test_no_recipients_is_refused():
    with pytest.raises(EtcdModuleError, match='No age recipients given'):
        agecrypt.validate_recipients([])


def test_identity_shapes(keys, tmp_path):
    assert agecrypt.identity_problem(keys['one'][0]) is None
    assert agecrypt.identity_problem(secret_line(keys['one'][0])) is None
    assert agecrypt.identity_problem('# two keys\n%s\n\n%s\n' % (secret_line(keys['one'][0]),
                                                                 secret_line(keys['two'][0]))) is None
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'ssh')], check=True)
    assert agecrypt.identity_problem((tmp_path / 'ssh').read_text()) is None


@pytest.mark.parametrize('text, says', [
    ('', 'it is empty'),
    ('# only a comment\n', 'only comments'),
    ('# c\nAGE-SECRET-KEY-1NOTAKEY\n', 'line 2 is not an age secret key'),
    ('-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n', 'not one whole OpenSSH or RSA private key block'),
])
def test_identity_problems_never_repeat_the_value(text, says):
    problem = agecrypt.identity_problem(text)
    assert says in problem
    for line in text.splitlines():
        if line.strip() and not line.startswith('#'):
            assert line not in problem


def test_a_lower_case_secret_key_is_not_an_identity(keys):
    assert 'line 1' in agecrypt.identity_problem(secret_line(keys['one'][0]).lower())


def test_scrub_hides_every_secret_line(keys):
    secret = secret_line(keys['one'][0])
    assert agecrypt.scrub('age said %s.' % secret, keys['one'][0]) == 'age said [identity hidden].'


def test_age_error_drops_the_report_line_and_quoted_file_bytes():
    stderr = ('age: error: failed to read header: parsing age header: unexpected intro: "k8s\\x00secret-value"\n'
              'age: report unexpected or unhelpful errors at https://filippo.io/age/report\n')
    assert agecrypt.age_error(stderr) == 'failed to read header: parsing age header: unexpected intro'


@pytest.mark.parametrize('value', ['0' * 63, 'g' * 64, ''])
def test_check_sha256_names_the_option(value):
    with pytest.raises(EtcdModuleError, match='expected_sha256 must be a SHA-256'):
        agecrypt.check_sha256(value, 'expected_sha256')


def test_check_sha256_lower_cases():
    assert agecrypt.check_sha256(' %s ' % ('AB' * 32), 'x') == 'ab' * 32


@pytest.mark.parametrize('src, expected', [
    ('/b/etcd.db.zst.age', ('/b/etcd.db', True)),
    ('/b/etcd.db.age', ('/b/etcd.db', False)),
    ('/b/etcd.db', (None, False)),
])
def test_decrypted_name(src, expected):
    assert agecrypt.decrypted_name(src) == expected


def test_encrypted_name():
    assert agecrypt.encrypted_name('/b/etcd.db', True) == '/b/etcd.db.zst.age'
    assert agecrypt.encrypted_name('/b/etcd.db', False) == '/b/etcd.db.age'


# -------------------------------------------------------------------------------------------- tools

def test_detect_reports_versions(tools):
    assert tools.age == '/usr/bin/age' and tools.age_version.startswith('1.')
    assert tools.zstd == '/usr/bin/zstd' and tools.zstd_version.count('.') == 2


def test_missing_age_says_how_to_install_it(tmp_path):
    module = FakeModule(bin_dirs=[str(tmp_path)])
    with pytest.raises(EtcdModuleError, match='age not found on .*apt install age.*age_path'):
        agecrypt.CryptTools.detect(module, Runner(module))


def test_age_itself_refuses_a_malformed_ssh_key(tools):
    module = FakeModule(bin_dirs=['/usr/bin'])
    with pytest.raises(EtcdModuleError, match='age on .* refuses the recipients'):
        tools.check_recipients(Runner(module), ['ssh-ed25519 AAAAnotbase64ofakey'])


# -------------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize('compress', [False, True], ids=['plain', 'zstd'])
@pytest.mark.parametrize('size', SIZES)
def test_round_trip(tools, keys, tmp_path, size, compress):
    src = tmp_path / 'etcd.db'
    digest = random_file(src, size)
    dest = tmp_path / agecrypt.encrypted_name('etcd.db', compress)
    stats = encrypt_to(tools, src, dest, [keys['one'][1], keys['two'][1]], compress=compress)
    encrypted = dest.read_bytes()
    assert encrypted.startswith(b'age-encryption.org/v1\n')
    assert stats['plaintext_sha256'] == digest and stats['plaintext_size'] == size
    assert stats['encrypted_sha256'] == hashlib.sha256(encrypted).hexdigest()
    assert stats['encrypted_size'] == len(encrypted)
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o600
    assert stats['compressed'] is compress
    if compress:
        assert stats['compressed_size'] > 0 and stats['compression_ratio'] == round(float(size) / stats['compressed_size'], 3)
    else:
        assert stats['compressed_size'] is None and stats['compression_ratio'] is None
    # Either recipient's identity opens it; once as a string through the pipe, once as a file.
    out = tmp_path / 'out.db'
    part, back = agecrypt.write_through_part(str(out), lambda fd: agecrypt.decrypt_stream(
        tools, str(dest), fd, identity=keys['two'][0], decompress=compress))
    agecrypt.publish(part, str(out))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert back['plaintext_sha256'] == digest and back['plaintext_size'] == size
    assert back['encrypted_sha256'] == stats['encrypted_sha256'] and back['encrypted_size'] == len(encrypted)
    check = agecrypt.decrypt_stream(tools, str(dest), None, identity_file=keys['one'][2], decompress=compress)
    assert check['plaintext_sha256'] == digest


def test_compressible_data_reports_a_ratio_above_one(tools, keys, tmp_path):
    src = tmp_path / 'etcd.db'
    src.write_bytes(b'k8s\x00' + b'/registry/configmaps/default/x ' * 100000)
    stats = encrypt_to(tools, src, tmp_path / 'etcd.db.zst.age', [keys['one'][1]], compress=True)
    assert stats['compression_ratio'] > 20
    assert stats['encrypted_size'] < stats['plaintext_size'] / 20


def test_ssh_recipient_and_ssh_identity(tools, tmp_path):
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'ops', '-f', str(tmp_path / 'ssh')], check=True)
    src = tmp_path / 'etcd.db'
    digest = random_file(src, 70000)
    encrypt_to(tools, src, tmp_path / 'etcd.db.age', [(tmp_path / 'ssh.pub').read_text().strip()])
    back = agecrypt.decrypt_stream(tools, str(tmp_path / 'etcd.db.age'), None, identity=(tmp_path / 'ssh').read_text())
    assert back['plaintext_sha256'] == digest


# ------------------------------------------------------------------------------------------- refusals

@pytest.fixture
def encrypted(tools, keys, tmp_path):
    """A 300 kB random file encrypted to key one: (path, plaintext sha256)."""
    src = tmp_path / 'etcd.db'
    digest = random_file(src, 300 * 1024)
    dest = tmp_path / 'etcd.db.age'
    encrypt_to(tools, src, dest, [keys['one'][1]])
    return dest, digest


def decrypt_error(tools, path, output, **kwargs):
    with pytest.raises(EtcdModuleError) as caught:
        part, stats = agecrypt.write_through_part(str(output), lambda fd: agecrypt.decrypt_stream(
            tools, str(path), fd, **kwargs))
    assert not os.path.exists(str(output) + '.part') and not os.path.exists(str(output))
    return caught.value


@pytest.mark.parametrize('compressed', [False, True])
def test_wrong_identity_names_the_file_and_the_fix_and_never_the_key(tools, keys, tmp_path, compressed):
    src = tmp_path / 'etcd.db'
    random_file(src, 1000)
    path = tmp_path / agecrypt.encrypted_name('etcd.db', compressed)
    encrypt_to(tools, src, path, [keys['one'][1]], compress=compressed)
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['two'][0], decompress=compressed)
    assert error.msg == (
        'The identity given does not match any recipient of %s on %s: use the age identity whose public key was '
        'in etcd_backup_age_recipients when it was written.' % (path, os.uname()[1]))
    assert secret_line(keys['two'][0]) not in repr(error.details) + str(error)


def test_wrong_identity_file_is_named(tools, keys, encrypted, tmp_path):
    error = decrypt_error(tools, encrypted[0], tmp_path / 'out', identity_file=keys['two'][2])
    assert error.msg.startswith('The identity file %s does not match any recipient of %s' % (keys['two'][2], encrypted[0]))


def test_truncated_ciphertext_leaves_nothing(tools, keys, encrypted, tmp_path):
    path = encrypted[0]
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 1000])
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['one'][0])
    assert 'is corrupted or truncated: age could not authenticate its content' in error.msg


def test_cut_header_is_not_an_age_file(tools, keys, encrypted, tmp_path):
    path = encrypted[0]
    path.write_bytes(path.read_bytes()[:40])
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['one'][0])
    assert 'is not an age-encrypted file (or its header is cut off)' in error.msg


def test_corrupt_ciphertext_after_the_first_chunks_leaves_nothing(tools, keys, encrypted, tmp_path):
    # age writes the chunks it authenticated before it finds the bad one: the .part must go.
    path = encrypted[0]
    data = bytearray(path.read_bytes())
    data[250 * 1024] ^= 0x01
    path.write_bytes(bytes(data))
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['one'][0])
    assert 'corrupted or truncated' in error.msg


def test_a_plaintext_file_is_not_echoed(tools, keys, tmp_path):
    path = tmp_path / 'etcd.db.age'
    path.write_bytes(b'k8s\x00SECRET-PAYLOAD-THAT-MUST-NOT-SHOW' * 10)
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['one'][0])
    assert 'is not an age-encrypted file' in error.msg and 'SECRET-PAYLOAD' not in error.msg


def test_zst_name_without_zstd_content(tools, keys, tmp_path):
    src = tmp_path / 'etcd.db'
    random_file(src, 5000)
    path = tmp_path / 'etcd.db.zst.age'
    encrypt_to(tools, src, path, [keys['one'][1]], compress=False)
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['one'][0], decompress=True)
    assert 'not zstd-compressed although its name ends in .zst.age' in error.msg


def test_an_empty_plaintext_under_a_zst_name_is_refused(tools, keys, tmp_path):
    src = tmp_path / 'empty'
    src.write_bytes(b'')
    path = tmp_path / 'empty.zst.age'
    encrypt_to(tools, src, path, [keys['one'][1]], compress=False)
    error = decrypt_error(tools, path, tmp_path / 'out', identity=keys['one'][0], decompress=True)
    assert 'not zstd-compressed' in error.msg


def test_plaintext_that_looks_compressed_is_flagged(tools, keys, tmp_path):
    src = tmp_path / 'etcd.db'
    random_file(src, 5000)
    encrypt_to(tools, src, tmp_path / 'etcd.db.zst.age', [keys['one'][1]], compress=True)
    # Renamed without .zst: decrypts fine, stays compressed, and says so.
    os.rename(str(tmp_path / 'etcd.db.zst.age'), str(tmp_path / 'other.age'))
    stats = agecrypt.decrypt_stream(tools, str(tmp_path / 'other.age'), None, identity=keys['one'][0])
    assert stats['looks_compressed'] is True


def test_passphrase_protected_ssh_key_is_refused_without_a_prompt(tools, tmp_path):
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', 'pass phrase', '-f', str(tmp_path / 'ssh')], check=True)
    src = tmp_path / 'etcd.db'
    random_file(src, 100)
    encrypt_to(tools, src, tmp_path / 'etcd.db.age', [(tmp_path / 'ssh.pub').read_text().strip()])
    error = decrypt_error(tools, tmp_path / 'etcd.db.age', tmp_path / 'out', identity=(tmp_path / 'ssh').read_text())
    assert 'is a passphrase-protected SSH key' in error.msg


def test_unreadable_identity_file(tmp_path):
    with pytest.raises(EtcdModuleError, match='Cannot read the age identity file %s' % (tmp_path / 'none')):
        agecrypt.read_identity_file(str(tmp_path / 'none'))
    (tmp_path / 'bad').write_text('hunter2-not-a-key\n')
    with pytest.raises(EtcdModuleError) as caught:
        agecrypt.read_identity_file(str(tmp_path / 'bad'))
    assert 'line 1 is not an age secret key' in caught.value.msg and 'hunter2' not in caught.value.msg


# --------------------------------------------------------------------------------------------- file I/O

def test_write_through_part_removes_the_part_on_failure(tmp_path):
    dest = str(tmp_path / 'x.age')

    def writer(fd):
        os.write(fd, b'half')
        raise EtcdModuleError('stream broke')
    with pytest.raises(EtcdModuleError, match='stream broke'):
        agecrypt.write_through_part(dest, writer)
    assert os.listdir(str(tmp_path)) == []


def test_part_file_is_private_from_the_first_byte(tmp_path):
    dest = str(tmp_path / 'x.age')
    modes = []
    part = agecrypt.write_through_part(dest, lambda fd: modes.append(stat.S_IMODE(os.fstat(fd).st_mode)))[0]
    agecrypt.publish(part, dest)
    assert modes == [0o600] and stat.S_IMODE(os.stat(dest).st_mode) == 0o600 and not os.path.exists(part)


def test_remove_plaintext(tmp_path):
    path = tmp_path / 'etcd.db'
    path.write_bytes(b'x')
    assert agecrypt.remove_plaintext(str(path)) is True and not path.exists()
    assert agecrypt.remove_plaintext(str(path)) is False
