#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: apiserver_ready
short_description: Wait until a Kubernetes API server answers its readiness endpoint
version_added: 0.1.0
description:
  - Sends C(GET) requests to O(url) (typically C(https://<advertise address>:6443/readyz)) until the API server answers
    HTTP 200, and returns what it answered. A ready API server answers C(/readyz) with C(ok).
  - The server certificate is always verified, against O(ca_path) (the cluster's CA, C(/etc/kubernetes/pki/ca.crt) on a
    kubeadm control plane) or else the system's CAs. There is no option to turn verification off.
  - The request goes straight to the server; proxy environment variables and C(.netrc) are not used.
  - After O(timeout) seconds without a 200, the task fails with the last error (connection refused, TLS error, or the
    HTTP status and body), naming the host and the URL.
author:
  - kubeops.etcd maintainers (@kubeops)
options:
  url:
    description:
      - URL to probe, for example V(https://10.0.0.11:6443/readyz). Only C(https) URLs are accepted.
      - Any path works; the API server is ready when it answers HTTP 200.
    type: str
    required: true
  ca_path:
    description:
      - PEM file of the CA that signed the API server's certificate. Without it the system's CAs are used.
    type: path
  client_cert:
    description:
      - PEM client certificate, for an API server that does not allow anonymous requests to O(url).
      - May also hold the key; otherwise give O(client_key).
    type: path
  client_key:
    description: PEM private key of O(client_cert).
    type: path
  timeout:
    description:
      - Seconds to keep trying. V(0) probes once.
      - A single request waits at most 10 seconds (less when O(timeout) ends sooner).
    type: int
    default: 300
  interval:
    description: Seconds between two attempts.
    type: float
    default: 0.2
extends_documentation_fragment:
  - kubeops.etcd.attributes
  - kubeops.etcd.attributes.ACTIONGROUP_ETCD
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module probes once and reports what it got (RV(ready)); it does not wait and does not fail
        when the API server is not ready.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
notes:
  - The module never reports a change.
seealso:
  - module: kubeops.etcd.static_pod
  - module: kubeops.etcd.etcd_cluster_health
  - name: Kubernetes API health endpoints
    description: What C(/readyz), C(/livez) and C(/healthz) report.
    link: https://kubernetes.io/docs/reference/using-api/health-checks/
'''

EXAMPLES = r'''
- name: Wait until the API server on this node is ready again
  kubeops.etcd.apiserver_ready:
    url: "https://{{ ansible_host }}:6443/readyz"
    ca_path: /etc/kubernetes/pki/ca.crt
    timeout: 180

- name: Ask every check of /readyz, with a client certificate
  kubeops.etcd.apiserver_ready:
    url: "https://{{ ansible_host }}:6443/readyz?verbose"
    ca_path: /etc/kubernetes/pki/ca.crt
    client_cert: /etc/kubernetes/pki/apiserver-kubelet-client.crt
    client_key: /etc/kubernetes/pki/apiserver-kubelet-client.key
  register: apiserver_checks
'''

RETURN = r'''
ready:
  description: Whether the API server answered HTTP 200 (V(false) only in check mode; otherwise the task fails).
  returned: always
  type: bool
  sample: true
status:
  description: HTTP status of the last answer; V(null) when no answer came (connection or TLS error).
  returned: always
  type: int
  sample: 200
content:
  description: Body of the last answer, without surrounding white space (at most 4096 characters).
  returned: always
  type: str
  sample: ok
error:
  description: Why the last attempt was not ready; V(null) when it was.
  returned: always
  type: str
  sample: "connection refused ([Errno 111] Connection refused)"
attempts:
  description: Number of requests sent.
  returned: always
  type: int
  sample: 3
waited_seconds:
  description: Seconds from the first request until the last answer.
  returned: always
  type: float
  sample: 0.45
url:
  description: The URL probed.
  returned: always
  type: str
  sample: https://10.0.0.11:6443/readyz
'''

import os
import socket
import ssl
import time

from http.client import HTTPException
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

from ansible_collections.kubeops.etcd.plugins.module_utils.errors import EtcdModuleError, node_name

REQUEST_TIMEOUT = 10
CONTENT_LIMIT = 4096


def trimmed(body):
    return to_text(body or b'', errors='surrogate_or_replace').strip()[:CONTENT_LIMIT]


def describe_error(exc):
    """A short reason for a failed request: connection refused, TLS error, timeout, ..."""
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, ssl.SSLError):
        return 'TLS error (%s)' % reason
    if isinstance(reason, ConnectionRefusedError):
        return 'connection refused (%s)' % reason
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return 'no answer within the request timeout (%s)' % (reason or 'timed out')
    if isinstance(reason, ConnectionResetError):
        return 'connection reset (%s)' % reason
    if isinstance(exc, UrlsConnectionError) and 'certificate' in str(exc).lower():
        return 'TLS error (%s)' % exc
    return '%s (%s)' % (type(reason).__name__, reason)


def probe(url, ca_path=None, client_cert=None, client_key=None, timeout=REQUEST_TIMEOUT, opener=None):
    """One GET: {'status', 'content', 'error'}; error is None exactly for HTTP 200."""
    try:
        request = opener or open_url
        response = request(url, method='GET', validate_certs=True, ca_path=ca_path, client_cert=client_cert,
                           client_key=client_key, timeout=timeout, use_proxy=False, use_netrc=False,
                           follow_redirects='none')
        status = response.getcode()
        content = trimmed(response.read())
    except HTTPError as exc:
        status = exc.code
        try:
            content = trimmed(exc.read())
        except (IOError, OSError, HTTPException):
            content = ''
    except (URLError, UrlsConnectionError, HTTPException, IOError, OSError, ValueError) as exc:
        return {'status': None, 'content': '', 'error': describe_error(exc)}
    if status == 200:
        return {'status': status, 'content': content, 'error': None}
    return {'status': status, 'content': content,
            'error': 'HTTP %s: %s' % (status, content or '(empty body)')}


def wait_ready(params, once=False, clock=time.time, sleep=time.sleep, opener=None):
    """Probe until HTTP 200 or the timeout; returns the last probe with attempts and waited_seconds."""
    started = clock()
    deadline = started + params['timeout']
    attempts = 0
    while True:
        remaining = deadline - clock()
        request_timeout = min(REQUEST_TIMEOUT, max(1.0, remaining))
        last = probe(params['url'], params['ca_path'], params['client_cert'], params['client_key'],
                     timeout=request_timeout, opener=opener)
        attempts += 1
        now = clock()
        if last['error'] is None or once or now + params['interval'] > deadline:
            break
        sleep(params['interval'])
    last.update(attempts=attempts, waited_seconds=round(clock() - started, 2))
    return last


def check_params(params):
    if not params['url'].lower().startswith('https://'):
        raise EtcdModuleError('url %s is not an https URL; the API server serves /readyz over TLS, e.g. '
                              'https://<advertise address>:6443/readyz.' % params['url'], url=params['url'])
    if params['timeout'] < 0:
        raise EtcdModuleError('timeout must be 0 or more seconds, got %d.' % params['timeout'])
    if not params['interval'] > 0:
        raise EtcdModuleError('interval must be more than 0 seconds, got %s.' % params['interval'])
    for option in ('ca_path', 'client_cert', 'client_key'):
        path = params[option]
        if path and not os.path.isfile(path):
            raise EtcdModuleError('%s %s does not exist on %s (or is not a file); give the PEM file, e.g. '
                                  '/etc/kubernetes/pki/ca.crt for ca_path.' % (option, path, node_name()),
                                  **{option: path})


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type='str', required=True),
            ca_path=dict(type='path'),
            client_cert=dict(type='path'),
            client_key=dict(type='path', no_log=False),
            timeout=dict(type='int', default=300),
            interval=dict(type='float', default=0.2),
        ),
        required_by={'client_key': 'client_cert'},
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_params(params)
        result = wait_ready(params, once=module.check_mode)
        result['ready'] = result['error'] is None
        result['url'] = params['url']
        if not result['ready'] and not module.check_mode:
            raise EtcdModuleError(
                'The API server at %s did not answer HTTP 200 on %s within %d seconds (%d attempts); last: %s. '
                'Check that the kube-apiserver container runs (crictl ps --name kube-apiserver) and its logs, and that '
                'ca_path is the cluster CA.' % (params['url'], node_name(), params['timeout'], result['attempts'],
                                                result['error']), **result)
    except EtcdModuleError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
