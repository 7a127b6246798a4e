# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""etcd run as a systemd service: what its unit, drop-ins, environment files and config file make of it.

Pure logic, no commands: the modules hand in the text ``systemctl cat <unit>`` printed
and a function that reads files.  Everything is read the way systemd and etcd read it
(systemd's unit file and environment file syntax, ExecStart quoting, specifiers and
``$VAR`` substitution; etcd's flags, ``ETCD_*`` variables and ``--config-file``), and
every value keeps the position of each of its characters in its file, so the data dir
can be repointed where it is defined by replacing exactly those characters.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import posixpath
import re
import shlex
import socket
import traceback

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.kubeops.etcd.plugins.module_utils.crictl import log_cause
from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name
from ansible_collections.kubeops.etcd.plugins.module_utils.files import read_if_exists
from ansible_collections.kubeops.etcd.plugins.module_utils.parsers import parse_version_output

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

WHITESPACE = ' \t\n\r'
COMMENT_CHARS = '#;'
_HEADER = re.compile(r'^# (/.+)$')
_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_DOLLAR_WORD = re.compile(r'^\$([A-Za-z_][A-Za-z0-9_]*)$')
_BRACED_VAR = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$')
# A data dir we write without quotes in a unit, an environment file or YAML: nothing any of them would read otherwise.
SAFE_PATH = re.compile(r'^/[A-Za-z0-9_./+@,=-]*$')
SHELLS = ('sh', 'bash', 'dash', 'ash', 'zsh', 'ksh')
SYSTEM_UNIT_DIRS = ('/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system',
                    '/usr/lib/systemd/system', '/lib/systemd/system')

# etcd's boolean flags: Go's flag package never takes the next word as their value.
BOOL_FLAGS = frozenset((
    'auto-tls', 'client-cert-auth', 'debug', 'enable-grpc-gateway', 'enable-log-rotation', 'enable-pprof',
    'enable-v2', 'force-new-cluster', 'h', 'help', 'peer-auto-tls', 'peer-client-cert-auth', 'pre-vote',
    'socket-reuse-address', 'socket-reuse-port', 'strict-reconfig-check', 'unsafe-no-fsync', 'version',
    'experimental-initial-corrupt-check', 'experimental-enable-lease-checkpoint',
    'experimental-enable-lease-checkpoint-persist', 'experimental-peer-skip-client-san-verification',
    'experimental-enable-distributed-tracing', 'experimental-memory-mlock',
    'experimental-txn-mode-write-with-shared-buffer', 'experimental-stop-grpc-service-on-defrag',
    'experimental-compact-hash-check-enabled', 'initial-corrupt-check', 'enable-lease-checkpoint',
    'peer-skip-client-san-verification', 'enable-distributed-tracing', 'memory-mlock',
    'txn-mode-write-with-shared-buffer', 'stop-grpc-service-on-defrag', 'compact-hash-check-enabled',
))

# The settings we report: etcd flag name -> (result key, config file path, etcd's default).
SETTINGS = (
    ('name', 'name', ('name',), 'default'),
    ('data-dir', 'data_dir', ('data-dir',), None),
    ('listen-client-urls', 'listen_client_urls', ('listen-client-urls',), 'http://localhost:2379'),
    ('advertise-client-urls', 'advertise_client_urls', ('advertise-client-urls',), 'http://localhost:2379'),
    ('listen-peer-urls', 'listen_peer_urls', ('listen-peer-urls',), 'http://localhost:2380'),
    ('initial-advertise-peer-urls', 'peer_urls', ('initial-advertise-peer-urls',), 'http://localhost:2380'),
    ('initial-cluster', 'initial_cluster', ('initial-cluster',), None),
    ('initial-cluster-token', 'initial_cluster_token', ('initial-cluster-token',), 'etcd-cluster'),
    ('initial-cluster-state', 'initial_cluster_state', ('initial-cluster-state',), 'new'),
    ('cert-file', 'cert_file', ('client-transport-security', 'cert-file'), None),
    ('key-file', 'key_file', ('client-transport-security', 'key-file'), None),
    ('trusted-ca-file', 'trusted_ca_file', ('client-transport-security', 'trusted-ca-file'), None),
    ('peer-cert-file', 'peer_cert_file', ('peer-transport-security', 'cert-file'), None),
    ('peer-key-file', 'peer_key_file', ('peer-transport-security', 'key-file'), None),
    ('peer-trusted-ca-file', 'peer_trusted_ca_file', ('peer-transport-security', 'trusted-ca-file'), None),
)
URL_KEYS = ('listen_client_urls', 'advertise_client_urls', 'listen_peer_urls', 'peer_urls')


def require_yaml():
    if not HAS_YAML:
        raise EtcdModuleError(
            'PyYAML is required on %s to read an etcd --config-file but the Python that runs Ansible modules there '
            'cannot import it: install python3-yaml (Debian/Ubuntu) or python3-pyyaml (RHEL/Fedora).' % node_name(),
            exception=YAML_IMPORT_ERROR)


def env_var(flag):
    """ETCD_DATA_DIR for data-dir: how etcd maps a flag to its environment variable."""
    return 'ETCD_' + flag.upper().replace('-', '_')


def text_lines(text):
    """(offset, line without its end) of every line; only \\n (and \\r\\n) end a line."""
    offset = 0
    for raw in text.split('\n'):
        yield offset, raw[:-1] if raw.endswith('\r') else raw
        offset += len(raw) + 1


def line_of(text, offset):
    return text.count('\n', 0, offset) + 1


class Chars(object):
    """A string whose characters remember their offset in a file (None: not written literally there)."""

    def __init__(self, text='', offsets=None):
        self.text = text
        self.offsets = list(offsets) if offsets is not None else [None] * len(text)

    def add(self, char, offset):
        self.text += char
        self.offsets.append(offset)

    def extend(self, other):
        self.text += other.text
        self.offsets.extend(other.offsets)

    def slice(self, start, end=None):
        end = len(self.text) if end is None else end
        return Chars(self.text[start:end], self.offsets[start:end])

    def strip(self):
        start, end = 0, len(self.text)
        while start < end and self.text[start] in WHITESPACE:
            start += 1
        while end > start and self.text[end - 1] in WHITESPACE:
            end -= 1
        return self.slice(start, end)

    def literal_span(self):
        """(start, end) in the file when every character stands there as itself, one after the other; else None."""
        if not self.text or any(offset is None for offset in self.offsets):
            return None
        start = self.offsets[0]
        if self.offsets != list(range(start, start + len(self.text))):
            return None
        return start, start + len(self.text)


class UnitFile(object):
    """One file of a unit (the unit file or a drop-in) and the assignments of its [Service] section."""

    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.settings = list(self._service_settings())

    def _logical_lines(self):
        """systemd's reading: comment lines dropped (also inside a continuation), a line ending in an odd
        number of backslashes continues on the next one, the backslash read as a space."""
        current = None
        for start, body in text_lines(self.text):
            if body.lstrip(WHITESPACE)[:1] in tuple(COMMENT_CHARS):
                continue
            piece = Chars(body, range(start, start + len(body)))
            if current is None:
                current = piece
            else:
                current.extend(piece)
            trailing = len(current.text) - len(current.text.rstrip('\\'))
            if trailing % 2 == 1:
                current.text = current.text[:-1] + ' '
                continue
            yield current
            current = None
        if current is not None:
            yield current

    def _service_settings(self):
        section = None
        for line in self._logical_lines():
            line = line.strip()
            if not line.text:
                continue
            if line.text.startswith('[') and line.text.endswith(']'):
                section = line.text[1:-1]
                continue
            if section != 'Service' or '=' not in line.text:
                continue
            index = line.text.index('=')
            key = line.text[:index].strip()
            value = line.slice(index + 1).strip()
            first = value.offsets[0] if value.text else line.offsets[0]
            yield Setting(key, value, self, line_of(self.text, first))


class Setting(object):
    def __init__(self, key, value, unit_file, line):
        self.key = key
        self.value = value
        self.file = unit_file
        self.line = line


def split_systemctl_cat(text):
    """[(path, text)] of the files ``systemctl cat`` printed: the unit file, then its drop-ins in order.

    Each file starts with a ``# /path`` line, at the top or after the empty line systemctl puts between files.
    """
    files = []
    lines = text.splitlines(True)
    for index, line in enumerate(lines):
        match = _HEADER.match(line.rstrip('\r\n'))
        if match and (index == 0 or not lines[index - 1].strip()):
            if files:
                body = files[-1][1]
                # the separating empty line belongs to systemctl, not to the file
                files[-1][1] = body[:-1] if body.endswith('\n\n') or body == '\n' else body
            files.append([match.group(1), ''])
        elif files:
            files[-1][1] += line
    if not files:
        raise EtcdModuleError('systemctl cat printed no unit file on %s (expected "# /path" header lines): %r'
                              % (node_name(), text[:200]))
    return [tuple(entry) for entry in files]


# ExecStart= words ------------------------------------------------------------------------------------------
_CUNESCAPE = {'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\',
              '"': '"', "'": "'", 's': ' '}


def split_words(value):
    """Split an ExecStart=/Environment= value into words as systemd does (quotes, C escapes); [Chars]."""
    words = []
    text = value.text
    index = 0
    while index < len(text):
        while index < len(text) and text[index] in WHITESPACE:
            index += 1
        if index >= len(text):
            break
        word = Chars()
        quote = None
        while index < len(text):
            char = text[index]
            if quote is None and char in WHITESPACE:
                break
            if char == quote:
                quote = None
            elif quote is None and char in '"\'':
                quote = char
            elif char == '\\' and index + 1 < len(text):
                escaped, used = _cunescape(text, index + 1)
                word.add(escaped, None)
                index += used
            else:
                word.add(char, value.offsets[index])
            index += 1
        if quote is not None:
            raise ValueError('unbalanced quote')
        words.append(word)
    return words


def _cunescape(text, index):
    """(character, characters used after the backslash) of a C escape; unknown escapes stay as written."""
    char = text[index]
    if char in _CUNESCAPE:
        return _CUNESCAPE[char], 1
    if char == 'x' and re.match(r'[0-9a-fA-F]{2}', text[index + 1:index + 3]):
        return chr(int(text[index + 1:index + 3], 16)), 3
    if re.match(r'[0-7]{3}', text[index:index + 3]):
        return chr(int(text[index:index + 3], 8)), 3
    return '\\' + char, 1


def expand_specifiers(chars, specifiers, where):
    """Resolve systemd's %-specifiers; an unknown one is an error (we would guess its value)."""
    result = Chars()
    index = 0
    while index < len(chars.text):
        char = chars.text[index]
        if char != '%':
            result.add(char, chars.offsets[index])
            index += 1
            continue
        name = chars.text[index + 1:index + 2]
        if name == '%':
            result.add('%', None)
        elif name in specifiers:
            result.extend(Chars(specifiers[name]))
        else:
            raise EtcdModuleError(
                '%s uses the systemd specifier %%%s, which kubeops.etcd does not resolve; write the value out '
                'literally.' % (where, name))
        index += 2
    return result


def unit_specifiers(unit, hostname, machine_id=None):
    """The specifiers we resolve: %n %N %p %i %I %H %l %m."""
    base = unit.rsplit('.', 1)[0] if '.' in unit else unit
    prefix, _sep, instance = base.partition('@')
    specifiers = {'n': unit, 'N': base, 'p': prefix, 'i': instance, 'I': instance, 'H': hostname,
                  'l': hostname.split('.')[0]}
    if machine_id:
        specifiers['m'] = machine_id
    return specifiers


def expand_env_words(words, environment):
    """ExecStart's variable substitution: a word ``$NAME`` becomes the value's whitespace-separated words,
    ``${NAME}`` inside a word the value, ``$$`` a dollar sign."""
    result = []
    for word in words:
        match = _DOLLAR_WORD.match(word.text)
        if match:
            result.extend(Chars(part) for part in environment.get(match.group(1), '').split())
            continue
        expanded = Chars()
        position = 0
        for found in _BRACED_VAR.finditer(word.text):
            expanded.extend(word.slice(position, found.start()))
            expanded.extend(Chars('$' if found.group(0) == '$$' else environment.get(found.group(1), '')))
            position = found.end()
        expanded.extend(word.slice(position))
        result.append(expanded)
    return result


# Environment files -----------------------------------------------------------------------------------------
class EnvAssignment(object):
    def __init__(self, key, value, path, text, line):
        self.key = key
        self.value = value
        self.path = path
        self.text = text
        self.line = line


def parse_env_file(path, text):
    """Assignments of an EnvironmentFile as systemd (v254+) reads them, in order; [EnvAssignment].

    Lines starting with # or ; are comments; KEY=value, value unquoted (backslash escapes the next character,
    trailing whitespace dropped), in '...' (verbatim) or "..." (backslash escapes " \\ ` $); a key that is not a
    valid name (``export KEY=...``) is ignored, as systemd ignores it.
    """
    assignments = []
    state = 'pre_key'
    key = ''
    key_line = 1
    value = Chars()
    last_ws = None
    line = 1

    def push():
        stripped = value if last_ws is None else value.slice(0, last_ws)
        name = key.rstrip(WHITESPACE)
        if _ENV_NAME.match(name):
            assignments.append(EnvAssignment(name, stripped, path, text, key_line))

    for offset, char in enumerate(text):
        newline = char in '\n\r'
        if state == 'pre_key':
            if char in COMMENT_CHARS:
                state = 'comment'
            elif char not in WHITESPACE:
                state, key, key_line, value, last_ws = 'key', char, line, Chars(), None
        elif state == 'key':
            if newline:
                state = 'pre_key'
            elif char == '=':
                state = 'pre_value'
            else:
                key += char
        elif state == 'pre_value':
            if newline:
                push()
                state = 'pre_key'
            elif char == "'":
                state = 'single'
            elif char == '"':
                state = 'double'
            elif char == '\\':
                state = 'value_escape'
            elif char not in WHITESPACE:
                state = 'value'
                value.add(char, offset)
        elif state == 'value':
            if newline:
                push()
                state = 'pre_key'
            elif char == '\\':
                state, last_ws = 'value_escape', None
            else:
                if char not in WHITESPACE:
                    last_ws = None
                elif last_ws is None:
                    last_ws = len(value.text)
                value.add(char, offset)
        elif state == 'value_escape':
            state = 'value'
            if not newline:
                value.add(char, None)
        elif state == 'single':
            if char == "'":
                state = 'pre_value'
            else:
                value.add(char, offset)
        elif state == 'double':
            if char == '"':
                state = 'pre_value'
            elif char == '\\':
                state = 'double_escape'
            else:
                value.add(char, offset)
        elif state == 'double_escape':
            state = 'double'
            if char in '"\\`$':
                value.add(char, None)
            elif not newline:
                value.add('\\', None)
                value.add(char, None)
        elif state == 'comment':
            if newline:
                state = 'pre_key'
        if char == '\n':
            line += 1
    if state not in ('pre_key', 'key', 'comment'):
        push()
    return assignments


# The unit --------------------------------------------------------------------------------------------------
class Source(object):
    """Where a setting is defined: kind flag/env/config/default, the file, line, variable or key."""

    def __init__(self, kind, path=None, line=None, variable=None, key=None, chars=None, text=None,
                 wrapped=None, in_unit=False):
        self.kind = kind
        self.path = path
        self.line = line
        self.variable = variable
        self.key = key
        self.chars = chars
        self.text = text
        self.wrapped = wrapped
        self.in_unit = in_unit

    def describe(self):
        if self.kind == 'flag':
            return 'the flag in ExecStart of %s (line %s)' % (self.path, self.line)
        if self.kind == 'env':
            return '%s in %s (line %s)' % (self.variable, self.path, self.line)
        if self.kind == 'config':
            return 'key %s of %s' % (self.key, self.path)
        return "etcd's default"

    def as_dict(self):
        result = {'kind': self.kind, 'file': self.path}
        if self.kind in ('flag', 'env'):
            result['line'] = self.line
        if self.kind == 'env':
            result['variable'] = self.variable
        if self.kind == 'config':
            result['key'] = self.key
        return result


def _unit_error(unit, where, msg):
    return EtcdModuleError('%s of %s on %s: %s' % (where, unit, node_name(), msg), unit=unit)


class EtcdUnit(object):
    """An etcd systemd unit read as systemd and etcd read it.

    ``files``: [(path, text)] from split_systemctl_cat (the module puts the bytes on disk in their place);
    ``read_file(path)``: text of an environment or config file, None when missing.
    """

    def __init__(self, unit, files, read_file, specifiers=None):
        self.unit = unit
        self.files = [UnitFile(path, text) for path, text in files]
        self.read_file = read_file
        self.specifiers = specifiers if specifiers is not None else unit_specifiers(unit, node_name())
        self._read_service()
        self.environment, self.env_sources = self._environment()
        self._read_exec_start()
        self._resolve()

    # systemd -------------------------------------------------------------------------------------------
    def _where(self, setting):
        return '%s= in %s line %d' % (setting.key, setting.file.path, setting.line)

    def _read_service(self):
        self.exec_start = []
        self.environment_settings = []
        self.environment_file_settings = []
        self.user = None
        self.group = None
        self.working_directory = None
        for setting in (s for unit_file in self.files for s in unit_file.settings):
            if setting.key == 'ExecStart':
                # each ExecStart= adds a command; an empty one drops those before it
                self.exec_start = self.exec_start + [setting] if setting.value.text else []
            elif setting.key == 'Environment':
                self.environment_settings = self.environment_settings + [setting] if setting.value.text else []
            elif setting.key == 'EnvironmentFile':
                self.environment_file_settings = (
                    self.environment_file_settings + [setting] if setting.value.text else [])
            elif setting.key in ('User', 'Group', 'WorkingDirectory'):
                value = expand_specifiers(setting.value, self.specifiers, self._where(setting)).text or None
                attribute = {'User': 'user', 'Group': 'group', 'WorkingDirectory': 'working_directory'}[setting.key]
                setattr(self, attribute, value)

    def _words(self, setting):
        try:
            return split_words(setting.value)
        except ValueError:
            raise _unit_error(self.unit, self._where(setting), 'unbalanced quotes; systemd ignores this line. '
                                                               'Fix the quoting.')

    def environment_files(self):
        """[(path, optional, setting)] in the order systemd reads them."""
        result = []
        for setting in self.environment_file_settings:
            raw = expand_specifiers(setting.value, self.specifiers, self._where(setting)).text
            optional = raw.startswith('-')
            path = raw[1:] if optional else raw
            if any(char in path for char in '*?['):
                raise _unit_error(self.unit, self._where(setting),
                                  'EnvironmentFile=%s is a wildcard, which kubeops.etcd does not expand; name the '
                                  'file.' % raw)
            if not path.startswith('/'):
                raise _unit_error(self.unit, self._where(setting), 'EnvironmentFile=%s is not an absolute path; '
                                                                   'systemd ignores it.' % raw)
            result.append((path, optional, setting))
        return result

    def _environment(self):
        """Environment= assignments, then every EnvironmentFile (later ones override): (values, sources)."""
        values, sources = {}, {}
        for setting in self.environment_settings:
            for word in self._words(setting):
                word = expand_specifiers(word, self.specifiers, self._where(setting))
                if '=' not in word.text:
                    continue
                name = word.text.split('=', 1)[0]
                if not _ENV_NAME.match(name):
                    continue
                values[name] = word.text[len(name) + 1:]
                offsets = [offset for offset in word.offsets if offset is not None]
                line = line_of(setting.file.text, offsets[0]) if offsets else setting.line
                sources[name] = Source('env', setting.file.path, line, variable=name,
                                       chars=word.slice(len(name) + 1), text=setting.file.text, in_unit=True)
        self.env_files = []
        for path, optional, setting in self.environment_files():
            text = self.read_file(path)
            self.env_files.append({'path': path, 'optional': optional, 'exists': text is not None})
            if text is None:
                if optional:
                    continue
                raise _unit_error(self.unit, self._where(setting),
                                  'EnvironmentFile %s does not exist, so systemd would not start the unit. Restore the '
                                  'file, or prefix the path with "-" if it is optional.' % path)
            for assignment in parse_env_file(path, text):
                values[assignment.key] = assignment.value.text
                sources[assignment.key] = Source('env', path, assignment.line, variable=assignment.key,
                                                 chars=assignment.value, text=text)
        return values, sources

    def _read_exec_start(self):
        if not self.exec_start:
            raise EtcdModuleError('%s on %s has no ExecStart= (files: %s); is it the etcd unit?'
                                  % (self.unit, node_name(), ', '.join(f.path for f in self.files)), unit=self.unit)
        if len(self.exec_start) > 1:
            raise _unit_error(self.unit, self._where(self.exec_start[-1]),
                              'the unit has %d ExecStart= commands; a service runs one. Put "ExecStart=" (empty) '
                              'before the one that should run in the drop-in that overrides it.'
                              % len(self.exec_start))
        setting = self.exec_start[0]
        self.exec_setting = setting
        words = self._words(setting)
        if words:
            first = words[0]
            prefix = len(first.text) - len(first.text.lstrip('@-:+!|'))
            words[0] = first.slice(prefix)
            if '@' in first.text[:prefix] and len(words) > 1:
                words = [words[0]] + words[2:]
        words = [expand_specifiers(word, self.specifiers, self._where(setting)) for word in words]
        words = expand_env_words(words, self.environment)
        self.argv = [word.text for word in words]
        if not words:
            raise _unit_error(self.unit, self._where(setting), 'ExecStart= runs nothing.')
        program = posixpath.basename(words[0].text)
        self.wrapped = None
        if program in SHELLS:
            self.wrapped = words[0].text
            words = self._shell_words(words, setting)
        elif not program.startswith('etcd') or program in ('etcdctl', 'etcdutl'):
            raise _unit_error(self.unit, self._where(setting),
                              'ExecStart= runs %s, not etcd; kubeops.etcd reads etcd\'s settings when ExecStart runs '
                              'the etcd binary (directly or through sh -c). Point unit at the etcd service.'
                              % words[0].text)
        self.flags = self._parse_flags(words[1:], setting)

    def _shell_words(self, words, setting):
        """The etcd command inside ``sh -c '...'``: read, never rewritten (its characters have no offsets)."""
        script = None
        for index, word in enumerate(words[1:-1], 1):
            if word.text.startswith('-') and 'c' in word.text and not word.text.startswith('--'):
                script = words[index + 1].text
                break
        try:
            parts = shlex.split(script, comments=True) if script else []
        except ValueError:
            parts = []
        for index, part in enumerate(parts):
            name = posixpath.basename(part)
            if name.startswith('etcd') and name not in ('etcdctl', 'etcdutl'):
                args = []
                for arg in parts[index + 1:]:
                    if arg in (';', '&&', '||', '|', '&'):
                        break
                    args.append(Chars(arg))
                return [Chars(part)] + args
        raise _unit_error(self.unit, self._where(setting),
                          'ExecStart= runs a shell (%s) and no etcd command was found in its script; run etcd '
                          'directly (ExecStart=/usr/local/bin/etcd ...).' % words[0].text)

    def _parse_flags(self, words, setting):
        """{flag name: Chars} of etcd's command line, as Go's flag package reads it (the last one wins)."""
        flags = {}
        index = 0
        while index < len(words):
            word = words[index]
            index += 1
            text = word.text
            if text == '--':
                break
            if not text.startswith('-') or text == '-':
                raise _unit_error(self.unit, self._where(setting),
                                  'etcd would stop at %r: it is not a flag ("\'%s\' is not a valid flag"). Remove it '
                                  'or give it to the flag before it with "=".' % (text, text))
            body = text.lstrip('-')
            dashes = len(text) - len(body)
            if '=' in body:
                name = body.split('=', 1)[0]
                value = word.slice(dashes + len(name) + 1)
            elif body in BOOL_FLAGS or index >= len(words):
                name, value = body, Chars('true')
            else:
                name, value = body, words[index]
                index += 1
            flags[name] = value
        return flags

    # etcd ----------------------------------------------------------------------------------------------
    def _flag_source(self, name):
        chars = self.flags[name]
        offsets = [offset for offset in chars.offsets if offset is not None]
        line = line_of(self.exec_setting.file.text, offsets[0]) if offsets else self.exec_setting.line
        return Source('flag', self.exec_setting.file.path, line, chars=chars, text=self.exec_setting.file.text,
                      wrapped=self.wrapped, in_unit=True)

    def _resolve(self):
        self.config_file = None
        config_source = None
        if 'config-file' in self.flags and self.flags['config-file'].text:
            self.config_file = self.flags['config-file'].text
            config_source = self._flag_source('config-file')
        elif self.environment.get('ETCD_CONFIG_FILE'):
            self.config_file = self.environment['ETCD_CONFIG_FILE']
            config_source = self.env_sources['ETCD_CONFIG_FILE']
        self.config_source = config_source
        if self.config_file:
            self.values, self.sources = self._from_config()
        else:
            self._check_conflicts()
            self.values, self.sources = {}, {}
            for flag, _key, _path, _default in SETTINGS:
                if flag in self.flags:
                    self.values[flag] = self.flags[flag].text
                    self.sources[flag] = self._flag_source(flag)
                elif self.environment.get(env_var(flag)):
                    self.values[flag] = self.environment[env_var(flag)]
                    self.sources[flag] = self.env_sources[env_var(flag)]

    def _check_conflicts(self):
        """etcd exits when a flag is given and its ETCD_* variable is set too, even to an empty value."""
        for flag in sorted(self.flags):
            variable = env_var(flag)
            if flag != 'config-file' and variable in self.environment:
                flag_source = self._flag_source(flag)
                env_source = self.env_sources[variable]
                raise EtcdModuleError(
                    '%s on %s sets --%s twice: %s and %s. etcd refuses to start ("conflicting environment variable is '
                    'shadowed by corresponding command-line flag"). Keep one: remove the flag from ExecStart, or '
                    'remove %s from %s, then run systemctl daemon-reload.'
                    % (self.unit, node_name(), flag, flag_source.describe(), env_source.describe(), variable,
                       env_source.path),
                    unit=self.unit, file=flag_source.path, variable_file=env_source.path)

    def _config_path(self):
        path = self.config_file
        return path if path.startswith('/') else posixpath.join(self.working_directory or '/', path)

    def _from_config(self):
        require_yaml()
        path = self._config_path()
        text = self.read_file(path)
        if text is None:
            raise EtcdModuleError(
                'etcd config file %s of %s on %s (from %s) does not exist, so etcd would not start. Restore it or fix '
                'the path.' % (path, self.unit, node_name(), self.config_source.describe()), unit=self.unit, file=path)
        self.config_text = text
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError as exc:
            raise EtcdModuleError('etcd config file %s of %s on %s is not valid YAML: %s'
                                  % (path, self.unit, node_name(), to_text(exc)), unit=self.unit, file=path)
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            raise EtcdModuleError('etcd config file %s of %s on %s is not a YAML mapping.'
                                  % (path, self.unit, node_name()), unit=self.unit, file=path)
        self.config_node = node
        self.config_data = data
        values, sources = {}, {}
        for flag, _key, keys, _default in SETTINGS:
            value = data
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None and value != '':
                values[flag] = to_text(value)
                sources[flag] = Source('config', path, key='.'.join(keys), text=text)
        return values, sources

    # results -------------------------------------------------------------------------------------------
    @property
    def data_dir_source(self):
        return self.sources.get('data-dir') or Source('default')

    @property
    def data_dir(self):
        """Absolute data dir; relative paths (and etcd's default ``<name>.etcd``) live in WorkingDirectory."""
        value = self.values.get('data-dir') or '%s.etcd' % self.values.get('name', 'default')
        working = (self.working_directory or '/').lstrip('-')
        return posixpath.normpath(posixpath.join(working if working.startswith('/') else '/', value))

    def member(self):
        """Name, URLs, initial cluster, certs, data dir and service user of the etcd this unit runs."""
        result = {}
        for flag, key, _path, default in SETTINGS:
            value = self.values.get(flag, default)
            result[key] = split_urls(value) if key in URL_KEYS else value
        result['data_dir'] = self.data_dir
        if not result['initial_cluster']:
            result['initial_cluster'] = ','.join('%s=%s' % (result['name'], url) for url in result['peer_urls'])
        result['user'] = self.user or 'root'
        result['group'] = self.group
        result['config_file'] = self._config_path() if self.config_file else None
        return result

    def data_dir_location(self):
        """Where the data dir is defined; an error for etcd's default, which cannot be repointed."""
        source = self.data_dir_source
        if source.kind == 'default':
            raise EtcdModuleError(
                '%s on %s sets no data dir, so etcd uses its default %s (<name>.etcd in WorkingDirectory), which '
                'cannot be repointed. Set it explicitly: ETCD_DATA_DIR=%s in the environment file or '
                '--data-dir=%s in ExecStart (data-dir: in the config file with --config-file), then run '
                'systemctl daemon-reload.'
                % (self.unit, node_name(), self.data_dir, self.data_dir, self.data_dir), unit=self.unit)
        return source

    def describe(self):
        """What etcd_unit_info returns for this unit."""
        location = self.data_dir_location()
        return {
            'unit': self.unit,
            'fragment_path': self.files[0].path,
            'drop_in_paths': [unit_file.path for unit_file in self.files[1:]],
            'environment_files': self.env_files,
            'exec_start': self.argv,
            'working_directory': self.working_directory,
            'member': self.member(),
            'data_dir_location': location.as_dict(),
        }

    def file_text(self, path):
        for unit_file in self.files:
            if unit_file.path == path:
                return unit_file.text
        return None


def split_urls(value):
    return [url.strip() for url in (value or '').split(',') if url.strip()]


# Reading a unit from this host -------------------------------------------------------------------------------
def read_text(path):
    """Text of a file, None when it does not exist."""
    data = read_if_exists(path)
    if data is None:
        return None
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise EtcdModuleError('%s on %s is not UTF-8 text (%s); fix or replace the file.' % (path, node_name(), exc),
                              file=path)


def load_from_disk(unit, systemctl_cat_output):
    """The unit whose files ``systemctl cat`` named, read from disk (their exact text, for byte-preserving edits)."""
    files = []
    for path, _printed in split_systemctl_cat(systemctl_cat_output):
        text = read_text(path)
        if text is None:
            raise EtcdModuleError('systemctl cat %s on %s names %s, which does not exist; run systemctl daemon-reload '
                                  'and try again.' % (unit, node_name(), path), unit=unit, file=path)
        files.append((path, text))
    machine_id = read_text('/etc/machine-id')
    specifiers = unit_specifiers(unit, socket.gethostname(), machine_id.strip() if machine_id else None)
    return EtcdUnit(unit, files, read_text, specifiers)


# Repointing ------------------------------------------------------------------------------------------------
def with_data_dir(etcd_unit, new_dir):
    """(path, new text) of the one file that defines the data dir, with only that value changed.

    Refuses what cannot be rewritten safely: etcd's default, a flag inside a shell wrapper, a value written with
    quotes, escapes, specifiers or variables spread around it, and new paths that would need quoting.  The new
    text is read again and must give the same unit with only the data dir changed.
    """
    new_dir = posixpath.normpath(new_dir) if new_dir else new_dir
    if not new_dir or not SAFE_PATH.match(new_dir):
        raise EtcdModuleError(
            'New data dir %r is not an absolute path of letters, digits and _ . / + @ , = -; use such a path '
            '(nothing a unit, environment or YAML file would read differently).' % (new_dir,), data_dir=new_dir)
    source = etcd_unit.data_dir_location()
    where = source.describe()
    if source.wrapped:
        raise EtcdModuleError(
            'The data dir of %s on %s is %s, inside a shell command (ExecStart=%s -c ...), which cannot be rewritten '
            'safely. Run etcd directly (ExecStart=/usr/local/bin/etcd --data-dir=...) or set ETCD_DATA_DIR in an '
            'environment file, or edit %s by hand.'
            % (etcd_unit.unit, node_name(), where, source.wrapped, source.path), unit=etcd_unit.unit, file=source.path)
    if source.kind == 'config':
        span = _yaml_span(etcd_unit)
    else:
        span = source.chars.literal_span()
    if span is None:
        raise EtcdModuleError(
            'The data dir of %s on %s is %s, written with quotes, escapes, specifiers or variables around its '
            'characters, which cannot be rewritten safely. Write it as a plain path there (e.g. %s) or edit %s by hand.'
            % (etcd_unit.unit, node_name(), where, etcd_unit.data_dir, source.path),
            unit=etcd_unit.unit, file=source.path)
    text = source.text
    new_text = text[:span[0]] + new_dir + text[span[1]:]
    _check_rewrite(etcd_unit, source, new_text, new_dir)
    return source.path, new_text


def _yaml_span(etcd_unit):
    found = []
    if isinstance(etcd_unit.config_node, yaml.MappingNode):
        found = [value for key, value in etcd_unit.config_node.value
                 if isinstance(key, yaml.ScalarNode) and key.value == 'data-dir']
    if len(found) != 1 or not isinstance(found[0], yaml.ScalarNode) or found[0].tag != 'tag:yaml.org,2002:str':
        return None
    node = found[0]
    start, end = node.start_mark.index, node.end_mark.index
    if node.style in ("'", '"'):
        start, end = start + 1, end - 1
    elif node.style is not None:
        return None
    if etcd_unit.config_text[start:end] != node.value:
        return None
    return start, end


def _check_rewrite(etcd_unit, source, new_text, new_dir):
    """Read the unit again with the new text: only the data dir may differ, and it must be new_dir."""
    def read(path):
        return new_text if path == source.path else etcd_unit.read_file(path)
    files = [(unit_file.path, new_text if unit_file.path == source.path else unit_file.text)
             for unit_file in etcd_unit.files]
    expected = _fingerprint(etcd_unit, source)
    expected['member']['data_dir'] = new_dir
    if expected.get('config') is not None:
        expected['config']['data-dir'] = new_dir
    try:
        after = _fingerprint(EtcdUnit(etcd_unit.unit, files, read, etcd_unit.specifiers), source)
    except EtcdModuleError as exc:
        after = {'error': exc.msg}
    if after != expected:
        raise EtcdModuleError(
            'Rewriting the data dir of %s on %s in %s would change more than the data dir (read back: %r); '
            'nothing was written. Edit the file by hand.' % (etcd_unit.unit, node_name(), source.path, after),
            unit=etcd_unit.unit, file=source.path)


def _location_key(etcd_unit):
    location = etcd_unit.data_dir_source
    return (location.kind, location.path, location.variable, location.key)


def _fingerprint(etcd_unit, source):
    """Everything etcd and systemd would read from the unit, but the data dir's own value."""
    return {
        'member': etcd_unit.member(),
        'flags': dict((name, chars.text) for name, chars in etcd_unit.flags.items()
                      if not (source.kind == 'flag' and name == 'data-dir')),
        'environment': dict((name, value) for name, value in etcd_unit.environment.items()
                            if not (source.kind == 'env' and name == source.variable)),
        'argv0': etcd_unit.argv[:1],
        'service': (etcd_unit.user, etcd_unit.group, etcd_unit.working_directory, etcd_unit.config_file),
        'location': _location_key(etcd_unit),
        'config': dict(etcd_unit.config_data) if etcd_unit.config_file else None,
    }


# Matching units to the API servers ---------------------------------------------------------------------------
_DEFAULT_PORTS = {'http': 80, 'https': 443}
_WILDCARD_HOSTS = ('0.0.0.0', '::', '')


def normalize_url(url):
    """(scheme, host, port) of a client URL: lower case, default ports filled in, path dropped."""
    url = url.strip()
    scheme, _sep, rest = url.partition('://')
    scheme = scheme.lower()
    hostport = rest.split('/', 1)[0]
    if hostport.startswith('['):
        host, _sep, port = hostport[1:].partition(']')
        port = port.lstrip(':')
    elif hostport.count(':') == 1:
        host, port = hostport.split(':')
    else:
        host, port = hostport, ''
    try:
        port = int(port) if port else _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, host.lower(), port


def match_units(members, etcd_servers):
    """Which units serve the API servers' --etcd-servers: [(unit, [urls])], in the order of ``members``.

    ``members``: [(unit, member dict)].  A unit serves a URL its advertise or listen client URLs equal (after
    normalising); a unit listening on 0.0.0.0/[::] serves a URL of its port only when no URL matched it exactly.
    """
    wanted = [(url, normalize_url(url)) for url in etcd_servers]
    result = []
    for unit, member in members:
        own = [normalize_url(url) for url in member['advertise_client_urls'] + member['listen_client_urls']]
        exact = [url for url, norm in wanted if norm in own]
        if not exact:
            wildcards = [(scheme, port) for scheme, host, port in own if host in _WILDCARD_HOSTS]
            exact = [url for url, norm in wanted if (norm[0], norm[2]) in wildcards]
        if exact:
            result.append((unit, exact))
    return result


def serving_units(members, etcd_servers):
    """Names of the units that serve --etcd-servers; an error when none does."""
    matched = match_units(members, etcd_servers)
    if not matched:
        described = '; '.join('%s: %s' % (unit, ','.join(member['advertise_client_urls'] + member['listen_client_urls']))
                              for unit, member in members)
        raise EtcdModuleError(
            'None of the etcd units on %s serves the API servers\' --etcd-servers %s (client URLs: %s). Check '
            'etcd_servers, or name the unit to use.' % (node_name(), ','.join(etcd_servers), described),
            etcd_servers=list(etcd_servers))
    return [unit for unit, _urls in matched]


def load_unit(module, runner, unit):
    """The unit as systemd and etcd read it: `systemctl cat` through the module's Runner, then the files on disk."""
    systemctl = module.get_bin_path('systemctl', required=False)
    if not systemctl:
        raise EtcdModuleError('systemctl not found on %s: etcd units can only be read or changed on a host that runs '
                              'systemd.' % node_name(), unit=unit)
    result = runner.run([systemctl, 'cat', '--no-pager', '--', unit], check_rc=False)
    if result.rc != 0:
        from ansible_collections.kubeops.etcd.plugins.module_utils.runner import command_error
        raise command_error(result, what='Reading unit %s' % unit,
                            fix='Check the unit name (systemctl list-units --all \'etcd*\') or set unit.')
    return load_from_disk(unit, result.stdout)


# Finding the etcd units of a host and the version they run -------------------------------------------------------
UNIT_PATTERN = 'etcd*.service'


def parse_unit_files(text, pattern=UNIT_PATTERN):
    """Unit names from `systemctl list-unit-files` output (legend or not) that match ``pattern``, in name order."""
    names = []
    for line in (text or '').splitlines():
        words = line.split()
        if words and fnmatch.fnmatchcase(words[0], pattern) and words[0] not in names:
            names.append(words[0])
    return sorted(names)


def list_units(module, runner, pattern=UNIT_PATTERN):
    """The service units of this host whose names match ``pattern`` (kubespray and etcd's docs: etcd.service,
    etcd-events.service), as `systemctl list-unit-files` lists them."""
    systemctl = module.get_bin_path('systemctl', required=False)
    if not systemctl:
        raise EtcdModuleError('systemctl not found on %s: etcd units can only be read or changed on a host that runs '
                              'systemd.' % node_name())
    result = runner.run([systemctl, 'list-unit-files', '--no-legend', '--no-pager', '--type=service', '--', pattern],
                        check_rc=False)
    if result.rc != 0:
        from ansible_collections.kubeops.etcd.plugins.module_utils.runner import command_error
        raise command_error(result, what='Listing the etcd units', fix='Check that systemd runs on this host.')
    return parse_unit_files(result.stdout, pattern)


def choose_unit(members, etcd_servers):
    """The unit of ``members`` ([(unit, member)]) that runs the member to restore: the only one, or the only one
    serving the API servers' --etcd-servers. An error naming every unit otherwise."""
    if not members:
        raise EtcdModuleError('No etcd unit (%s) is installed on %s.' % (UNIT_PATTERN, node_name()))
    if not etcd_servers:
        if len(members) == 1:
            return members[0][0]
        raise EtcdModuleError(
            '%s runs several etcd units (%s) and no --etcd-servers of the API servers tell which one serves them. '
            'Name it (etcd_restore_etcd_units).' % (node_name(), ', '.join(unit for unit, _member in members)))
    serving = serving_units(members, etcd_servers)
    if len(serving) > 1:
        raise EtcdModuleError(
            'Several etcd units on %s serve the API servers\' --etcd-servers %s: %s. Name the one to restore '
            '(etcd_restore_etcd_units).' % (node_name(), ','.join(etcd_servers), ', '.join(serving)),
            etcd_servers=list(etcd_servers))
    return serving[0]


def etcd_binary_version(runner, binary):
    """The version `<etcd> --version` prints (3.5.30), '' when the binary cannot say."""
    if not binary or not posixpath.isabs(binary):
        return ''
    result = runner.run([binary, '--version'], check_rc=False)
    if result.rc != 0:
        return ''
    return parse_version_output(result.stdout) or ''


# Why a unit's etcd is not running: its state and the end of its journal ---------------------------------------------
STATE_PROPERTIES = ('ActiveState', 'SubState', 'Result', 'ExecMainStatus')


def parse_show(text):
    """{property: value} from `systemctl show -p ...` output (key=value lines)."""
    values = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep:
            values[key.strip()] = value.strip()
    return values


def unit_summary(host, unit, state, log_text):
    """One sentence on a unit's etcd for a failure message, as crictl.container_summary says it of a static pod:
    its state (and how its last run ended) and the line of its journal that says why etcd stopped."""
    active, sub = state.get('ActiveState') or '?', state.get('SubState') or '?'
    text = 'etcd on %s: unit %s is %s (%s' % (host, unit, active, sub)
    if state.get('Result') and state.get('Result') != 'success':
        text += ', result %s, exit status %s' % (state['Result'], state.get('ExecMainStatus') or '?')
    text += ')'
    cause = log_cause(log_text, last_line=False)
    if cause:
        text += ', its log ends with: %s' % cause
    return text


def read_unit_state(module, runner, unit, lines):
    """The unit's state (systemctl show) and the last ``lines`` lines of its journal (journalctl), '' when there is no
    journalctl; never fails: this only describes a unit for an operator."""
    systemctl = module.get_bin_path('systemctl', required=False)
    state = {}
    if systemctl:
        shown = runner.run([systemctl, 'show', '-p', ','.join(STATE_PROPERTIES), '--', unit], check_rc=False)
        state = parse_show(shown.stdout) if shown.rc == 0 else {}
    journalctl = module.get_bin_path('journalctl', required=False)
    log_text = ''
    if journalctl:
        read = runner.run([journalctl, '-u', unit, '-n', str(lines), '--no-pager', '-o', 'cat'], check_rc=False)
        log_text = read.stdout if read.rc == 0 else ''
    return state, log_text
