# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read kubeadm static pod manifests; change the etcd data volume without touching anything else.

PyYAML's composer keeps the position (mark) of every scalar in the original
text.  An edit replaces exactly the characters of one scalar and leaves every
other byte of the file (comments, key order, quoting, line endings) as it was;
the new text is parsed again and compared with the expected document before it
is handed back, so an edit can never produce a manifest that means something
else.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import posixpath
import re
import traceback

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

YAML_MISSING_MSG = (
    'PyYAML is required on %s to read static pod manifests but the Python that runs Ansible modules there '
    'cannot import it: install python3-yaml (Debian/Ubuntu) or python3-pyyaml (RHEL/Fedora), or PyYAML with pip '
    'for the interpreter set in ansible_python_interpreter.')

# A host path we are willing to write unquoted: nothing YAML would read as anything but this string.
_PLAIN_PATH = re.compile(r'^/[A-Za-z0-9_./+@%=-]*$')
_IMAGE_VERSION = re.compile(r'^v?(\d+\.\d+\.\d+)')


def require_yaml():
    if not HAS_YAML:
        raise EtcdModuleError(YAML_MISSING_MSG % node_name(), exception=YAML_IMPORT_ERROR)


def _read_text(path):
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if getattr(exc, 'errno', None) == errno.ENOENT:
            raise EtcdModuleError(
                'Static pod manifest %s does not exist on %s; check the path (kubeadm writes '
                '/etc/kubernetes/manifests/<name>.yaml) or whether the manifest is held aside by static_pod.'
                % (path, node_name()), path=path)
        raise EtcdModuleError('Cannot read static pod manifest %s on %s: %s'
                              % (path, node_name(), exc.strerror or exc), path=path)
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise EtcdModuleError('Static pod manifest %s on %s is not UTF-8 text (%s); the kubelet would not read it either.'
                              % (path, node_name(), exc), path=path)


def _compose(text, path):
    """Return (root node, constructed data) of a single-document YAML text."""
    require_yaml()
    # The pure-Python loader: its marks index characters of ``text`` exactly.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise EtcdModuleError('Static pod manifest %s on %s is not valid YAML: %s'
                              % (path, node_name(), to_text(exc)), path=path)
    finally:
        loader.dispose()
    return node, data


def _node_get(node, key):
    """Value node of ``key`` in a mapping node (the last one wins, as in the constructed data)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found = value_node
    return found


def _norm_dir(path):
    """Absolute POSIX path without a trailing slash or dot components."""
    return posixpath.normpath(path) if path else path


def _path_holds(parent, child):
    """True when ``child`` is ``parent`` or below it."""
    parent = _norm_dir(parent)
    child = _norm_dir(child)
    if parent == '/':
        return child.startswith('/')
    return child == parent or child.startswith(parent + '/')


def image_version(image):
    """'3.5.21' from 'registry.k8s.io/etcd:3.5.21-0' (a digest is ignored); None without a tag."""
    if not image:
        return None
    reference = image.split('@', 1)[0]
    last = reference.rsplit('/', 1)[-1]
    if ':' not in last:
        return None
    match = _IMAGE_VERSION.match(last.split(':', 1)[1])
    return match.group(1) if match else None


def parse_command_flags(argv):
    """``{'--flag': 'value'}`` from a container command/args list.

    Accepts ``--flag=value``, ``--flag value`` and single-dash forms (Go's flag
    package takes both); a flag followed by another flag (or nothing) is a
    boolean set to 'true'.  Keys are always written with two dashes.
    """
    flags = {}
    items = [to_text(item) for item in argv]
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if not item.startswith('-') or item in ('-', '--'):
            continue
        name = '--' + item.lstrip('-')
        if '=' in name:
            name, value = name.split('=', 1)
        elif index < len(items) and not items[index].startswith('-'):
            value = items[index]
            index += 1
        else:
            value = 'true'
        flags[name] = value
    return flags


def split_urls(value):
    return [url.strip() for url in (value or '').split(',') if url.strip()]


class StaticPodManifest(object):
    """A static pod manifest: original text, composed node tree and constructed data."""

    def __init__(self, path, text, node, data):
        self.path = path
        self.text = text
        self.node = node
        self.data = data
        if not isinstance(data, dict) or data.get('kind') != 'Pod':
            raise EtcdModuleError('%s on %s is not a Pod manifest (kind: %s).'
                                  % (path, node_name(), data.get('kind') if isinstance(data, dict) else type(data).__name__),
                                  path=path)

    @classmethod
    def load(cls, path):
        text = _read_text(path)
        return cls.from_text(text, path)

    @classmethod
    def from_text(cls, text, path='<text>'):
        node, data = _compose(text, path)
        return cls(path, text, node, data)

    @property
    def pod_name(self):
        return (self.data.get('metadata') or {}).get('name')

    @property
    def spec(self):
        spec = self.data.get('spec')
        return spec if isinstance(spec, dict) else {}

    def containers(self):
        containers = self.spec.get('containers')
        return [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []

    def volumes(self):
        volumes = self.spec.get('volumes')
        return volumes if isinstance(volumes, list) else []

    def _volume_path_node(self, index):
        """Scalar node of ``spec.volumes[index].hostPath.path``."""
        volumes = _node_get(_node_get(self.node, 'spec'), 'volumes')
        volume = volumes.value[index]
        return _node_get(_node_get(volume, 'hostPath'), 'path')


class EtcdManifest(StaticPodManifest):
    """kubeadm's etcd static pod: flags, data dir and the hostPath volume that holds it."""

    def __init__(self, path, text, node, data):
        super(EtcdManifest, self).__init__(path, text, node, data)
        self.container_index, self.container = self._find_etcd_container()
        command = list(self.container.get('command') or []) + list(self.container.get('args') or [])
        self.flags = parse_command_flags(command[1:] if command and not to_text(command[0]).startswith('-') else command)
        self.data_dir = self.flags.get('--data-dir')
        if not self.data_dir:
            raise EtcdModuleError(
                'The etcd container in %s on %s has no --data-dir flag; kubeadm always sets it. Add '
                '--data-dir=/var/lib/etcd to its command, or point manifest_path at the right file.'
                % (path, node_name()), path=path)
        if not self.data_dir.startswith('/'):
            raise EtcdModuleError('--data-dir=%s in %s on %s is not an absolute path.'
                                  % (self.data_dir, path, node_name()), path=path)
        self.data_volume, self._data_volume_index, self._data_subpath = self._find_data_volume()

    def _find_etcd_container(self):
        containers = self.containers()
        for index, container in enumerate(containers):
            command = container.get('command') or []
            if command and posixpath.basename(to_text(command[0])) == 'etcd':
                return index, container
        for index, container in enumerate(containers):
            if container.get('name') == 'etcd':
                return index, container
        raise EtcdModuleError(
            'No etcd container in %s on %s (looked for a container whose command runs etcd or that is named etcd; '
            'found: %s). Is this the etcd manifest?'
            % (self.path, node_name(), ', '.join(str(c.get('name')) for c in containers) or 'no containers'),
            path=self.path)

    def _find_data_volume(self):
        """The hostPath volume whose mount holds --data-dir (the deepest mount wins, as in the container)."""
        best = None
        for mount in self.container.get('volumeMounts') or []:
            if not isinstance(mount, dict) or not mount.get('mountPath') or not mount.get('name'):
                continue
            mount_path = to_text(mount['mountPath'])
            if _path_holds(mount_path, self.data_dir):
                if best is None or len(_norm_dir(mount_path)) > len(_norm_dir(best['mountPath'])):
                    best = mount
        if best is None:
            raise EtcdModuleError(
                'No volumeMount of the etcd container in %s on %s holds --data-dir=%s, so the data lives inside the '
                'container and would be lost with it. Mount a hostPath volume at %s.'
                % (self.path, node_name(), self.data_dir, self.data_dir), path=self.path)
        mount_path = _norm_dir(to_text(best['mountPath']))
        name = best['name']
        for index, volume in enumerate(self.volumes()):
            if not isinstance(volume, dict) or volume.get('name') != name:
                continue
            host_path = volume.get('hostPath')
            if not isinstance(host_path, dict):
                kind = ', '.join(k for k in volume if k != 'name') or 'nothing'
                raise EtcdModuleError(
                    'Volume %s mounted at %s (holds --data-dir=%s) in %s on %s is not a hostPath volume (it is %s); '
                    'only a hostPath data dir can be restored in place.'
                    % (name, mount_path, self.data_dir, self.path, node_name(), kind), path=self.path)
            host = host_path.get('path')
            if not isinstance(host, str) or not host.startswith('/') or '\n' in host or '\x00' in host \
                    or '..' in host.split('/') or not isinstance(self._volume_path_node(index), yaml.ScalarNode):
                raise EtcdModuleError(
                    'hostPath.path of volume %s in %s on %s is %r, not a plain absolute path; fix the manifest by hand.'
                    % (name, self.path, node_name(), host), path=self.path)
            subpath = posixpath.relpath(_norm_dir(self.data_dir), mount_path)
            if best.get('subPath'):
                subpath = posixpath.normpath(posixpath.join(to_text(best['subPath']), subpath))
            subpath = '' if subpath == '.' else subpath
            volume_info = {'name': name, 'host_path': _norm_dir(host), 'mount_path': mount_path}
            return volume_info, index, subpath
        raise EtcdModuleError(
            'The etcd container in %s on %s mounts volume %s at %s (holds --data-dir=%s) but spec.volumes has no '
            'volume of that name; the kubelet would reject this pod. Fix the manifest.'
            % (self.path, node_name(), name, mount_path, self.data_dir), path=self.path)

    # Read-only views -----------------------------------------------------------------------------
    @property
    def name(self):
        return self.flags.get('--name')

    @property
    def image(self):
        return self.container.get('image')

    @property
    def image_version(self):
        return image_version(self.image)

    @property
    def data_dir_host_path(self):
        """Where --data-dir lives on the host."""
        host = self.data_volume['host_path']
        return posixpath.join(host, self._data_subpath) if self._data_subpath else host

    @property
    def advertise_client_urls(self):
        return split_urls(self.flags.get('--advertise-client-urls'))

    client_urls = advertise_client_urls

    @property
    def listen_client_urls(self):
        return split_urls(self.flags.get('--listen-client-urls'))

    @property
    def peer_urls(self):
        return split_urls(self.flags.get('--initial-advertise-peer-urls'))

    @property
    def listen_peer_urls(self):
        return split_urls(self.flags.get('--listen-peer-urls'))

    @property
    def initial_cluster(self):
        return self.flags.get('--initial-cluster')

    @property
    def initial_cluster_state(self):
        return self.flags.get('--initial-cluster-state')

    def flag(self, name, default=None):
        """A flag value by name, with or without the leading dashes."""
        return self.flags.get('--' + name.lstrip('-'), default)

    # Edit ------------------------------------------------------------------------------------------
    def with_data_dir_host_path(self, new):
        """Text of the manifest with the data volume's hostPath changed so --data-dir lives at ``new``.

        Only the characters of that one scalar change.  Raises EtcdModuleError when
        the edit is impossible or would change anything else.
        """
        if not isinstance(new, str) or not new.startswith('/') or '\n' in new or '\x00' in new:
            raise EtcdModuleError('New data dir %r is not an absolute path.' % (new,), path=self.path)
        new = _norm_dir(new)
        if self._data_subpath:
            suffix = '/' + self._data_subpath
            if not new.endswith(suffix) or new == suffix:
                raise EtcdModuleError(
                    'In %s on %s --data-dir=%s lives in %s of volume %s (mounted at %s), so the new data dir must end '
                    'with %s; got %s. Choose such a path or mount the data dir itself.'
                    % (self.path, node_name(), self.data_dir, self._data_subpath, self.data_volume['name'],
                       self.data_volume['mount_path'], suffix, new), path=self.path)
            new_host = new[:-len(suffix)] or '/'
        else:
            new_host = new
        node = self._volume_path_node(self._data_volume_index)
        if self._node_count(node) != 1:
            raise EtcdModuleError(
                'hostPath.path of volume %s in %s on %s is shared through a YAML alias; edit it by hand.'
                % (self.data_volume['name'], self.path, node_name()), path=self.path)
        start, end = node.start_mark.index, node.end_mark.index
        original = self.text[start:end]
        if original[:1] in ('&', '!', '*') or node.style in ('|', '>'):
            raise EtcdModuleError(
                'hostPath.path of volume %s in %s on %s carries a YAML anchor, tag or block style (%s); '
                'write it as a plain path first.' % (self.data_volume['name'], self.path, node_name(), original),
                path=self.path)
        if node.style == "'":
            replacement = "'%s'" % new_host.replace("'", "''")
        elif node.style == '"' or not _PLAIN_PATH.match(new_host):
            replacement = json.dumps(new_host)
        else:
            replacement = new_host
        text = self.text[:start] + replacement + self.text[end:]
        self._verify_edit(text, new_host)
        return text

    def _node_count(self, target):
        """How often ``target`` appears in the node tree (more than once means an alias)."""
        count = 0
        stack = [self.node]
        seen = set()
        while stack:
            current = stack.pop()
            if current is target:
                count += 1
            if id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, yaml.MappingNode):
                for key_node, value_node in current.value:
                    stack.extend((key_node, value_node))
            elif isinstance(current, yaml.SequenceNode):
                stack.extend(current.value)
        return count

    def _verify_edit(self, text, new_host):
        """Parse the edited text; it must equal the original document but for that one path."""
        try:
            node, data = _compose(text, self.path)
        except EtcdModuleError as exc:
            raise EtcdModuleError('internal error: editing %s would make it invalid YAML (%s); nothing was written.'
                                  % (self.path, exc.msg), path=self.path)
        expected = json.loads(json.dumps(self.data, default=str))
        expected['spec']['volumes'][self._data_volume_index]['hostPath']['path'] = new_host
        if json.loads(json.dumps(data, default=str)) != expected:
            raise EtcdModuleError('internal error: editing hostPath in %s would change more than that path; '
                                  'nothing was written. Edit it by hand.' % self.path, path=self.path)

    # Edit flags -------------------------------------------------------------------------------------
    def _flag_item_nodes(self):
        """``[(sequence key, index, scalar node)]`` of the etcd container's command then args items."""
        containers = _node_get(_node_get(self.node, 'spec'), 'containers')
        container = containers.value[self.container_index] if isinstance(containers, yaml.SequenceNode) else None
        found = []
        for key in ('command', 'args'):
            sequence = _node_get(container, key)
            if isinstance(sequence, yaml.SequenceNode):
                found.extend((key, index, item) for index, item in enumerate(sequence.value))
        return found

    def with_flag_values(self, values):
        """Text of the manifest with each ``--flag`` of ``values`` set to its value.

        A flag written as one ``--flag=value`` item of the etcd container's command (or args) gets the new value in
        that item: only the characters of that one scalar change.  A flag the container does not have yet is added as
        a new item after the last item of its command, written like that item (same indentation, same line
        ending).  A flag written as two items (``--flag value``), more than once, or in a form that cannot be edited
        (an anchor, a tag, a block scalar, a flow sequence) is refused.  The edited text is parsed again and
        compared with the expected document, as for ``with_data_dir_host_path``.
        """
        items = self._flag_item_nodes()
        edits = []
        appended = []
        for flag in sorted(values):
            value = values[flag]
            if not flag.startswith('--') or '=' in flag or not isinstance(value, str) or '\n' in value \
                    or '\x00' in value:
                raise EtcdModuleError('Cannot set %s=%r in %s: not a flag name and a one-line value.'
                                      % (flag, value, self.path), path=self.path)
            matches = []
            for key, index, item in items:
                text = to_text(item.value) if isinstance(item, yaml.ScalarNode) else ''
                if '--' + text.lstrip('-').split('=', 1)[0] == flag and text.startswith('-'):
                    matches.append((key, index, item, text))
            if len(matches) > 1:
                raise EtcdModuleError(
                    'The etcd container in %s on %s gives %s %d times; remove the extra ones by hand first.'
                    % (self.path, node_name(), flag, len(matches)), path=self.path)
            if not matches:
                appended.append(flag)
                continue
            key, index, item, text = matches[0]
            if '=' not in text:
                raise EtcdModuleError(
                    'The etcd container in %s on %s gives %s as two items (flag, then value); write it as one item '
                    '%s=<value> first.' % (self.path, node_name(), flag, flag), path=self.path)
            edits.append((key, index, item, '%s=%s' % (text.split('=', 1)[0], value)))
        expected = json.loads(json.dumps(self.data, default=str))
        container = expected['spec']['containers'][self.container_index]
        # Each change as (position, how): applied from the end of the text, so earlier marks stay right.
        changes = []
        for key, index, item, new_item in edits:
            container[key][index] = new_item
            changes.append((item.start_mark.index, self._scalar_replacer(item, new_item)))
        if appended:
            command_items = [entry for entry in items if entry[0] == 'command'] or items
            if not command_items:
                raise EtcdModuleError('The etcd container in %s on %s has no command to add %s to.'
                                      % (self.path, node_name(), ', '.join(appended)), path=self.path)
            key, _index, last = command_items[-1]
            new_items = ['%s=%s' % (flag, values[flag]) for flag in appended]
            container[key].extend(new_items)
            changes.append((last.end_mark.index, self._items_appender(last, new_items)))
        text = self.text
        for _position, change in sorted(changes, key=lambda entry: -entry[0]):
            text = change(text)
        self._verify_expected(text, expected, 'the flags %s' % ', '.join(sorted(values)))
        return text

    def _scalar_replacer(self, node, new):
        """A function of the text that replaces the characters of scalar ``node`` with ``new``, quoted as it was."""
        what = 'item %s of the etcd command' % new.split('=', 1)[0]
        if self._node_count(node) != 1:
            raise EtcdModuleError('The %s in %s on %s is shared through a YAML alias; edit it by hand.'
                                  % (what, self.path, node_name()), path=self.path)
        start, end = node.start_mark.index, node.end_mark.index
        original = self.text[start:end]
        if original[:1] in ('&', '!', '*') or node.style in ('|', '>'):
            raise EtcdModuleError('The %s in %s on %s carries a YAML anchor, tag or block style (%s); write it as a '
                                  'plain item first.' % (what, self.path, node_name(), original), path=self.path)
        if node.style == "'":
            replacement = "'%s'" % new.replace("'", "''")
        elif node.style == '"':
            replacement = json.dumps(new)
        else:
            replacement = self._plain_or_quoted(new)
        return lambda text: text[:start] + replacement + text[end:]

    @staticmethod
    def _plain_or_quoted(value):
        """``value`` as a plain YAML scalar when it reads back as the same string, else double-quoted."""
        try:
            if yaml.safe_load(value) == value and ': ' not in value and ' #' not in value:
                return value
        except yaml.YAMLError:
            pass
        return json.dumps(value)

    def _items_appender(self, last, new_items):
        """A function of the text that adds ``new_items`` as block sequence items after the line of item ``last``."""
        text = self.text
        line_start = text.rfind('\n', 0, last.start_mark.index) + 1
        prefix = text[line_start:last.start_mark.index]
        line_end = text.find('\n', last.end_mark.index)
        rest = text[last.end_mark.index:line_end if line_end >= 0 else len(text)]
        if not re.match(r'^ *- $', prefix) or rest.strip(' \r') or line_end < 0:
            raise EtcdModuleError(
                'The last item of the etcd command in %s on %s is not written one per line (%s%s); add %s by hand.'
                % (self.path, node_name(), prefix, text[last.start_mark.index:last.end_mark.index],
                   ', '.join(item.split('=', 1)[0] for item in new_items)), path=self.path)
        newline = '\r\n' if rest.endswith('\r') else '\n'
        added = ''.join('%s%s%s' % (prefix, self._plain_or_quoted(item), newline) for item in new_items)
        return lambda current: current[:line_end + 1] + added + current[line_end + 1:]

    def _verify_expected(self, text, expected, what):
        """Parse the edited text; it must be ``expected`` (the original document with the intended change)."""
        try:
            _node, data = _compose(text, self.path)
        except EtcdModuleError as exc:
            raise EtcdModuleError('internal error: editing %s would make it invalid YAML (%s); nothing was written.'
                                  % (self.path, exc.msg), path=self.path)
        if json.loads(json.dumps(data, default=str)) != expected:
            raise EtcdModuleError('internal error: editing %s in %s would change more than that; nothing was written. '
                                  'Edit it by hand.' % (what, self.path), path=self.path)


# kube-apiserver ------------------------------------------------------------------------------------
KUBE_APISERVER_DEFAULT_SECURE_PORT = 6443


def container_flags(container):
    """Flags of a container from its command and args (the binary itself, when named first, is skipped)."""
    argv = list(container.get('command') or []) + list(container.get('args') or [])
    if argv and not to_text(argv[0]).startswith('-'):
        argv = argv[1:]
    return parse_command_flags(argv)


def url_host(address):
    """An address as the host part of a URL: IPv6 literals in brackets."""
    if ':' in address and not address.startswith('['):
        return '[%s]' % address
    return address


class KubeApiServerManifest(StaticPodManifest):
    """kubeadm's kube-apiserver static pod: where it serves and how it reaches etcd."""

    def __init__(self, path, text, node, data):
        super(KubeApiServerManifest, self).__init__(path, text, node, data)
        self.container = self._find_apiserver_container()
        self.flags = container_flags(self.container)
        port = self.flags.get('--secure-port')
        try:
            self.secure_port = int(port) if port is not None else KUBE_APISERVER_DEFAULT_SECURE_PORT
        except ValueError:
            self.secure_port = None
        if self.secure_port is None or not 0 < self.secure_port < 65536:
            raise EtcdModuleError(
                '--secure-port=%s of the kube-apiserver container in %s on %s is not a port number.'
                % (port, path, node_name()), path=path)

    def _find_apiserver_container(self):
        containers = self.containers()
        for container in containers:
            command = container.get('command') or []
            if command and posixpath.basename(to_text(command[0])) == 'kube-apiserver':
                return container
        for container in containers:
            if container.get('name') == 'kube-apiserver':
                return container
        raise EtcdModuleError(
            'No kube-apiserver container in %s on %s (looked for a container whose command runs kube-apiserver or '
            'that is named kube-apiserver; found: %s).'
            % (self.path, node_name(), ', '.join(str(c.get('name')) for c in containers) or 'no containers'),
            path=self.path)

    @property
    def advertise_address(self):
        return self.flags.get('--advertise-address') or None

    @property
    def readyz_url(self):
        """``https://<advertise address>:<secure port>/readyz``, None without --advertise-address."""
        if not self.advertise_address:
            return None
        return 'https://%s:%d/readyz' % (url_host(self.advertise_address), self.secure_port)

    @property
    def encryption_provider_config(self):
        return self.flags.get('--encryption-provider-config') or None

    @property
    def etcd_servers(self):
        return split_urls(self.flags.get('--etcd-servers'))

    def describe(self):
        """The facts the roles need, as etcd_member_info returns them under ``apiserver``."""
        return {
            'manifest_path': self.path,
            'present': True,
            'advertise_address': self.advertise_address,
            'secure_port': self.secure_port,
            'readyz_url': self.readyz_url,
            'encryption_provider_config': self.encryption_provider_config,
            'etcd_servers': self.etcd_servers,
            'etcd_cafile': self.flags.get('--etcd-cafile') or None,
            'etcd_certfile': self.flags.get('--etcd-certfile') or None,
            'etcd_keyfile': self.flags.get('--etcd-keyfile') or None,
        }


def absent_kube_apiserver(path):
    """The ``apiserver`` facts of a node without kube-apiserver.yaml (an external etcd host)."""
    return {
        'manifest_path': path,
        'present': False,
        'advertise_address': None,
        'secure_port': None,
        'readyz_url': None,
        'encryption_provider_config': None,
        'etcd_servers': [],
        'etcd_cafile': None,
        'etcd_certfile': None,
        'etcd_keyfile': None,
    }


def describe_kube_apiserver(path):
    """``apiserver`` facts of the manifest at path; ``present: false`` when there is no file.

    A file that exists but cannot be read or is no kube-apiserver pod is an error naming it and the fix.
    """
    if not os.path.lexists(path):
        return absent_kube_apiserver(path)
    require_yaml()
    if os.path.isfile(path) and not os.access(path, os.R_OK):
        raise EtcdModuleError('%s on %s is not readable by this user; run the task with become: true.'
                              % (path, node_name()), path=path)
    try:
        return KubeApiServerManifest.load(path).describe()
    except EtcdModuleError as exc:
        raise EtcdModuleError(
            '%s Fix %s (kubeadm writes it again with "kubeadm init phase control-plane apiserver"), or set '
            'apiserver_manifest_path to the API server\'s manifest.' % (exc.msg, path), path=path)
