# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # How the module reaches etcd; matches module_utils.connection.connection_argument_spec().
    DOCUMENTATION = r'''
options:
  endpoints:
    description:
      - etcd client URLs, for example V(https://10.0.0.11:2379).
      - When not set, the module reads C(--advertise-client-urls) from O(manifest_path), the kubeadm
        static pod manifest of the etcd member on the target host.
      - Modules that look at the whole cluster use these endpoints to read the member list, then ask
        every member at its own client URLs.
    type: list
    elements: str
  cacert:
    description:
      - CA certificate that signed the etcd server certificates.
      - TLS verification is always on; there is no option to turn it off.
    type: path
    default: /etc/kubernetes/pki/etcd/ca.crt
  cert:
    description:
      - Client certificate for etcd. kubeadm creates C(healthcheck-client.crt) for this purpose.
    type: path
    default: /etc/kubernetes/pki/etcd/healthcheck-client.crt
  key:
    description:
      - Private key of O(cert). Only its path is passed to etcdctl; the key itself is never read by the module.
    type: path
    default: /etc/kubernetes/pki/etcd/healthcheck-client.key
  etcdctl_path:
    description:
      - Path of C(etcdctl). When not set, C(PATH) is searched (plus C(/usr/local/bin), C(/usr/bin), C(/opt/bin)).
      - Use the same minor version as the cluster's etcd.
    type: path
  etcdutl_path:
    description:
      - Path of C(etcdutl) (etcd 3.5 and newer), used to read snapshot files.
      - When not set, C(PATH) is searched. Without C(etcdutl), C(etcdctl) older than 3.6 is used instead.
    type: path
  manifest_path:
    description:
      - kubeadm static pod manifest of the local etcd member, used to find O(endpoints) when they are not given.
    type: path
    default: /etc/kubernetes/manifests/etcd.yaml
  command_timeout:
    description:
      - Seconds after which an C(etcdctl)/C(etcdutl) command is stopped and the module fails.
    type: int
    default: 60
requirements:
  - C(etcdctl) (and for snapshot files C(etcdutl) 3.5+ or C(etcdctl) before 3.6) on the target host.
  - PyYAML on the target host when O(endpoints) is read from the manifest (Debian/Ubuntu C(python3-yaml)).
'''
