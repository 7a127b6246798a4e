"""A real S3-protocol server for the tests: moto's server mode (``moto_server``) on loopback, with IAM auth on.

Use it from any test file (a plain module like pbrun, not a conftest)::

    from s3server import s3_server_fixture
    s3_server = s3_server_fixture()          # in a conftest.py or a test module: a session-scoped fixture

    def test_x(s3_server):
        s3_server["endpoint_url"], s3_server["access_key"], s3_server["secret_key"], s3_server["region"]
        s3_server.client().create_bucket(Bucket="b")      # boto3 client with the valid credentials

or directly: ``with S3Server() as server: ...``.

Why IAM auth: moto accepts any credentials by default, so a test of wrong credentials would pass
for the wrong reason. The server starts without auth; the fixture creates an IAM user with an
allow-all policy and an access key, and a role whose assumed-role credentials carry a session token
(``session_credentials``); then it switches moto's auth on (``POST /moto-api/reset-auth`` with
``0``, what ``INITIAL_NO_AUTH_ACTION_COUNT=0`` does at start-up). From then on every request must be
signed with a key moto issued: an unknown access key gives ``InvalidAccessKeyId``, a wrong secret
``SignatureDoesNotMatch`` (HEAD requests get a bare 403, as from AWS). The keys are random (moto
generates them), so a test can grep the output for them.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

BIN_DIR = os.path.dirname(sys.executable)
REGION = "us-east-1"
_ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server(dict):
    """moto_server on 127.0.0.1:<free port>; a dict {endpoint_url, access_key, secret_key, region} plus helpers."""

    def __init__(self, auth=True):
        super(S3Server, self).__init__()
        self.auth = auth
        self.process = None
        self.log_path = None
        self.session_credentials = None

    def start(self):
        port = free_port()
        endpoint = "http://127.0.0.1:%d" % port
        handle, self.log_path = tempfile.mkstemp(prefix="kubeops-moto-", suffix=".log")
        log = os.fdopen(handle, "wb")
        moto = os.path.join(BIN_DIR, "moto_server")
        self.process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except (urllib.error.URLError, OSError):
                if self.process.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not answer on %s; its log: %s" % (endpoint, self.log_tail()))
                time.sleep(0.1)
        self.update(endpoint_url=endpoint, region=REGION, access_key="AKIAKUBEOPSBOOTSTRAP",
                    secret_key="kubeops-bootstrap-secret-not-checked")
        if self.auth:
            self._enable_auth()
        return self

    def _enable_auth(self):
        import boto3
        iam = boto3.client("iam", **self._boto_kwargs())
        iam.create_user(UserName="kubeops-backup")
        iam.put_user_policy(UserName="kubeops-backup", PolicyName="allow-all", PolicyDocument=_ALLOW_ALL)
        key = iam.create_access_key(UserName="kubeops-backup")["AccessKey"]
        role = iam.create_role(RoleName="kubeops-backup", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName="kubeops-backup", PolicyName="allow-all", PolicyDocument=_ALLOW_ALL)
        sts = boto3.client("sts", **self._boto_kwargs())
        temporary = sts.assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="kubeops-test",
                                    DurationSeconds=43200)["Credentials"]
        self.session_credentials = {"access_key": temporary["AccessKeyId"], "secret_key": temporary["SecretAccessKey"],
                                    "session_token": temporary["SessionToken"]}
        request = urllib.request.Request(self["endpoint_url"] + "/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()
        self.update(access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])

    def _boto_kwargs(self, **credentials):
        return {"endpoint_url": self["endpoint_url"], "region_name": self["region"],
                "aws_access_key_id": credentials.get("access_key", self["access_key"]),
                "aws_secret_access_key": credentials.get("secret_key", self["secret_key"]),
                "aws_session_token": credentials.get("session_token")}

    def client(self, **credentials):
        """A boto3 S3 client (path-style) with the server's valid credentials, or the ones given."""
        import boto3
        from botocore.config import Config
        return boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **self._boto_kwargs(**credentials))

    def module_args(self, **more):
        """The etcd_object_store options that reach this server with the valid credentials."""
        args = {"endpoint_url": self["endpoint_url"], "region": self["region"], "path_style": True,
                "access_key": self["access_key"], "secret_key": self["secret_key"]}
        args.update(more)
        return args

    def secrets(self):
        """Every credential value a test must never find in output."""
        values = [self["access_key"], self["secret_key"]]
        if self.session_credentials:
            values += list(self.session_credentials.values())
        return values

    def log_tail(self, size=4000):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as handle:
            return handle.read()[-size:].decode("utf-8", "replace")

    def stop(self):
        """Stop the server we started, by its PID (SIGTERM, SIGKILL after 5 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)
            self.log_path = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def s3_server_fixture(scope="session", auth=True):
    """A pytest fixture yielding a started :class:`S3Server`; assign it to a name in a conftest or test module."""
    @pytest.fixture(scope=scope)
    def s3_server():
        with S3Server(auth=auth) as server:
            yield server
    return s3_server
