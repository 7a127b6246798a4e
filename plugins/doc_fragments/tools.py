# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Where etcdctl/etcdutl run; matches module_utils.containers.tools_argument_spec().
    DOCUMENTATION = r'''
options:
  tools_source:
    description:
      - V(host) runs C(etcdctl)/C(etcdutl) of the host (O(etcdctl_path)/O(etcdutl_path), else C(PATH)).
      - V(container) runs the tools of the etcd container that runs on the node now, through
        C(crictl exec <id> <tool> ...), never through a shell (etcd's official images have none). Files reach the
        tools through the data dir's hostPath volume (read from the etcd manifest); a file elsewhere is linked or
        copied into a private C(.kubeops-xfer-*) dir there for the command, and what the tool writes is moved out of
        it; the dir is removed afterwards.
      - M(kubeops.etcd.etcd_tools) tells which applies on a node (its RV(kubeops.etcd.etcd_tools#module:source)).
    type: str
    choices: [host, container]
    default: host
  crictl_path:
    description:
      - C(crictl) used with O(tools_source=container). Default from C(PATH).
    type: path
'''

    # The crictl that reads and stops static pods (static_pod, static_pod_info).
    CRICTL = r'''
options:
  crictl_path:
    description: Path of C(crictl); by default it is looked up in E(PATH), C(/usr/local/bin), C(/usr/bin) and C(/opt/bin).
    type: path
'''
