"""apiserver_ready on the lab: the API server stand-in serves /readyz over HTTPS with the lab's Kubernetes CA. The
module answers 200/ok when it is ready, fails after its timeout with "connection refused" when the API server pod is
stopped (static_pod), reports a TLS error for the wrong CA, and in check mode probes once without failing."""

import time

import pytest

from modhelpers import run_task

K8S_CA = "/etc/kubernetes/pki/ca.crt"
ETCD_CA = "/etc/kubernetes/pki/etcd/ca.crt"
TASK = "Wait until the API server answers /readyz"

pytestmark = pytest.mark.parametrize(
    "lab", [pytest.param({"nodes": 1, "etcd_version": "3.5.30", "ip_base": 30, "dir": "/tmp/kubeops-modules-30"},
                         id="1-node")], indirect=True, scope="module")


def readyz_url(lab):
    return lab.node("cp1")["apiserver_url"] + "/readyz"


def wait_ready(run_playbook, lab, check=False, **more):
    return run_task(run_playbook, lab, TASK, "apiserver_ready", dict({"url": readyz_url(lab), "ca_path": K8S_CA}, **more),
                    check=check)


def static_pod(run_playbook, lab, state):
    run, result = run_task(run_playbook, lab, "Stop or start the API server", "static_pod",
                           {"names": ["kube-apiserver"], "state": state, "timeout": 60})
    assert run.rc == 0, run
    return result


def apiserver_running(lab):
    return lab.exec("cp1", ["crictl", "ps", "--name", "^kube-apiserver$", "--state", "running", "-q"]).stdout.split()


def test_a_ready_api_server_answers_200_ok(lab, run_playbook):
    for check in (False, True):
        run, result = wait_ready(run_playbook, lab, check=check, timeout=60)
        assert run.rc == 0, run
        assert result["changed"] is False
        assert (result["ready"], result["status"], result["content"], result["error"]) == (True, 200, "ok", None)
        assert result["url"] == readyz_url(lab) and result["attempts"] >= 1


def test_a_stopped_api_server_fails_with_connection_refused_then_is_waited_for(lab, run_playbook):
    stopped = static_pod(run_playbook, lab, "stopped")
    assert stopped["pods"][0]["state"] == "stopped" and apiserver_running(lab) == []
    try:
        run, result = wait_ready(run_playbook, lab, timeout=2, interval=0.5)
        assert run.rc != 0
        assert result["changed"] is False and result["ready"] is False and result["status"] is None
        assert result["msg"].startswith("The API server at %s did not answer HTTP 200 on cp1 within 2 seconds ("
                                        % readyz_url(lab))
        assert "last: connection refused (" in result["msg"]
        assert result["attempts"] >= 2

        run, checked = wait_ready(run_playbook, lab, check=True, timeout=300)
        assert run.rc == 0, run
        assert (checked["changed"], checked["ready"], checked["attempts"]) == (False, False, 1)
        assert checked["error"].startswith("connection refused")
    finally:
        static_pod(run_playbook, lab, "started")
    started = time.time()
    run, result = wait_ready(run_playbook, lab, timeout=120)
    assert run.rc == 0, (run, time.time() - started)
    assert (result["status"], result["content"]) == (200, "ok")
    assert apiserver_running(lab)


def test_the_wrong_ca_is_a_tls_error(lab, run_playbook):
    run, result = wait_ready(run_playbook, lab, ca_path=ETCD_CA, timeout=1)
    assert run.rc != 0
    assert "last: TLS error (" in result["msg"] and "CERTIFICATE_VERIFY_FAILED" in result["msg"]
    assert readyz_url(lab) in result["msg"] and " on cp1 " in result["msg"]
    assert result["status"] is None

    # Without ca_path the system's CAs are used, which do not know the lab's CA either: verification is always on.
    run, result = run_task(run_playbook, lab, TASK, "apiserver_ready", {"url": readyz_url(lab), "timeout": 0})
    assert run.rc != 0
    assert "TLS error (" in result["msg"]
