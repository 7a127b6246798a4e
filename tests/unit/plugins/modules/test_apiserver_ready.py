# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import socket
import ssl
from urllib.error import HTTPError, URLError

import pytest

from ansible_collections.kubeops.etcd.plugins.modules import apiserver_ready

from unit_helpers import run_module

URL = 'https://10.0.0.11:6443/readyz'


class Response(object):
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def getcode(self):
        return self.status

    def read(self):
        return self.body


def http_error(status, body):
    return HTTPError(URL, status, 'Internal Server Error', {}, io.BytesIO(body))


def refused():
    return URLError(ConnectionRefusedError(111, 'Connection refused'))


def bad_certificate():
    error = ssl.SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: '
                                            'unable to get local issuer certificate (_ssl.c:1006)')
    return URLError(error)


class Opener(object):
    """Answers (or raises) in turn, and records what each call asked for."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def __call__(self, url, **kwargs):
        self.calls.append(dict(kwargs, url=url))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.mark.parametrize('error, expected', [
    (refused(), 'connection refused ([Errno 111] Connection refused)'),
    (bad_certificate(), 'TLS error ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed'),
    (URLError(socket.timeout('timed out')), 'no answer within the request timeout (timed out)'),
    (ConnectionResetError(104, 'Connection reset by peer'), 'connection reset ('),
    (URLError(socket.gaierror(-2, 'Name or service not known')), 'gaierror ([Errno -2] Name or service not known)'),
])
def test_errors_are_described_by_their_cause(error, expected):
    assert apiserver_ready.describe_error(error).startswith(expected)


def test_probe_answers_200_with_the_trimmed_body_and_always_verifies_tls():
    opener = Opener(Response(200, b'ok\n'))
    assert apiserver_ready.probe(URL, ca_path='/ca.crt', opener=opener) == {'status': 200, 'content': 'ok', 'error': None}
    call = opener.calls[0]
    assert call['validate_certs'] is True and call['ca_path'] == '/ca.crt'
    assert call['method'] == 'GET' and call['use_proxy'] is False and call['use_netrc'] is False


def test_probe_reports_http_status_and_body_of_a_not_ready_server():
    body = b'[-]etcd failed: reason withheld\nreadyz check failed\n'
    result = apiserver_ready.probe(URL, opener=Opener(http_error(500, body)))
    assert result == {'status': 500, 'content': body.decode().strip(),
                      'error': 'HTTP 500: [-]etcd failed: reason withheld\nreadyz check failed'}


def test_probe_of_another_success_status_is_not_ready():
    result = apiserver_ready.probe(URL, opener=Opener(Response(204, b'')))
    assert result['error'] == 'HTTP 204: (empty body)'


def params(**more):
    base = {'url': URL, 'ca_path': None, 'client_cert': None, 'client_key': None, 'timeout': 10, 'interval': 1.0}
    base.update(more)
    return base


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_retries_until_200_and_counts_attempts():
    clock = Clock()
    opener = Opener(refused(), http_error(500, b'not ready'), Response(200, b'ok'))
    result = apiserver_ready.wait_ready(params(), clock=clock, sleep=clock.sleep, opener=opener)
    assert result == {'status': 200, 'content': 'ok', 'error': None, 'attempts': 3, 'waited_seconds': 2.0}


def test_wait_gives_up_at_the_timeout_with_the_last_error():
    clock = Clock()
    result = apiserver_ready.wait_ready(params(timeout=5), clock=clock, sleep=clock.sleep, opener=Opener(refused()))
    assert result['error'].startswith('connection refused') and result['status'] is None
    assert result['attempts'] == 6 and result['waited_seconds'] == 5.0


def test_a_request_never_waits_beyond_the_timeout():
    clock = Clock()
    opener = Opener(refused())
    apiserver_ready.wait_ready(params(timeout=25, interval=10.0), clock=clock, sleep=clock.sleep, opener=opener)
    assert [call['timeout'] for call in opener.calls] == [10, 10, 5.0]


def test_timeout_zero_probes_once():
    clock = Clock()
    opener = Opener(refused())
    result = apiserver_ready.wait_ready(params(timeout=0), clock=clock, sleep=clock.sleep, opener=opener)
    assert result['attempts'] == 1 and len(opener.calls) == 1


@pytest.fixture
def run(monkeypatch):
    def _run(opener, check=False, **more):
        monkeypatch.setattr(apiserver_ready, 'open_url', opener)
        return run_module(apiserver_ready, dict({'url': URL, 'timeout': 0, 'interval': 0.01}, **more), check=check)[1]
    return _run


def test_ready_server_is_reported_and_nothing_changes(run):
    result = run(Opener(Response(200, b'ok')))
    assert result['changed'] is False and result['ready'] is True
    assert (result['status'], result['content'], result['error'], result['url']) == (200, 'ok', None, URL)


def test_not_ready_fails_naming_host_url_and_last_error(run):
    result = run(Opener(bad_certificate()))
    assert result['failed'] and result['changed'] is False
    assert result['msg'].startswith('The API server at %s did not answer HTTP 200 on %s within 0 seconds (1 attempts); '
                                    'last: TLS error (' % (URL, apiserver_ready.node_name()))
    assert result['ready'] is False and result['status'] is None


def test_check_mode_probes_once_and_does_not_fail(run):
    opener = Opener(http_error(500, b'etcd not ready'))
    result = run(opener, check=True, timeout=300)
    assert 'failed' not in result and result['changed'] is False
    assert (result['ready'], result['status'], result['content'], result['attempts']) == (
        False, 500, 'etcd not ready', 1)
    assert len(opener.calls) == 1


@pytest.mark.parametrize('more, message', [
    ({'url': 'http://10.0.0.11:6443/readyz'}, 'is not an https URL'),
    ({'ca_path': '/nonexistent/ca.crt'}, 'ca_path /nonexistent/ca.crt does not exist on'),
    ({'interval': 0.0}, 'interval must be more than 0 seconds'),
    ({'timeout': -1}, 'timeout must be 0 or more seconds'),
    ({'client_key': '/k.key'}, "missing parameter(s) required by 'client_key': client_cert"),
])
def test_bad_options_fail_before_any_request(run, more, message):
    opener = Opener(Response(200, b'ok'))
    for check in (True, False):
        result = run(opener, check=check, **more)
        assert result['failed'] and message in result['msg']
    assert opener.calls == []
