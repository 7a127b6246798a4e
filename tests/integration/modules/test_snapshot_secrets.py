"""The plaintext-Secrets count of etcd_snapshot and etcd_snapshot_info on the lab, for every etcd version.

Secrets go into a real 1-node etcd through the lab's etcdctl (values on stdin: clear-text ones start with
``k8s\\x00`` as the API server writes them, encrypted ones with ``k8s:enc:<provider>:v1:<key>:``); one is rewritten
from clear text to encrypted, one is deleted, one is deleted and written again, and clear-text values under other
prefixes must not count. The snapshot is taken through ansible-playbook; the counts in the result, in the metadata
file on the node's disk and in etcd_snapshot_info's answer must be exact, and agree with what etcd itself lists.
"""

import json
import random
import shutil
import string

import pytest

from modhelpers import labs, run_task

BACKUP_DIR = "/var/lib/kubeops-it/secrets"   # node-private (/var/lib is bind-mounted per node)
DEST = BACKUP_DIR + "/etcd.db"


def secret_labs():
    """modhelpers.labs(126), 1 node each, in this suite's own lab dirs."""
    params = []
    for param in labs(126, nodes=1):
        options = dict(param.values[0])
        options["dir"] = "/tmp/kubeops-sec-%d" % options["ip_base"]
        params.append(pytest.param(options, id=param.id))
    return params


pytestmark = pytest.mark.parametrize("lab", secret_labs(), indirect=True, scope="module")


def noise(size=48):
    rnd = random.Random(size)
    return "".join(rnd.choice(string.ascii_letters + string.digits) for _index in range(size))


def plain(name):
    return "k8s\x00\n\x0c\n\x02v1\x12\x06Secret" + name + noise()


def encrypted(provider="aescbc", key="key1"):
    return "k8s:enc:%s:v1:%s:" % (provider, key) + noise()


def put(lab, key, value):
    lab.etcdctl("put", key, input=value)   # value on stdin: etcdctl reads it there when only the key is given


def write_secrets(lab):
    """The writes; returns the counts they must give."""
    for number in range(1, 4):
        put(lab, "/registry/secrets/default/plain-%d" % number, plain("plain-%d" % number))
    put(lab, "/registry/secrets/kube-system/bootstrap-token-abcdef", plain("token"))
    for number in range(1, 3):
        put(lab, "/registry/secrets/app/enc-%d" % number, encrypted())
    put(lab, "/registry/secrets/app/kms-1", encrypted("kms", "vault"))
    put(lab, "/registry/secrets/app/rotated", plain("rotated"))
    put(lab, "/registry/secrets/app/rotated", encrypted())
    put(lab, "/registry/secrets/app/gone", plain("gone"))
    lab.etcdctl("del", "/registry/secrets/app/gone")
    put(lab, "/registry/secrets/app/back", plain("back"))
    lab.etcdctl("del", "/registry/secrets/app/back")
    put(lab, "/registry/secrets/app/back", encrypted("secretbox", "key2"))
    for key in ("/registry/configmaps/default/settings", "/registry/secretsx/default/a",
                "/registry/Secrets/default/a"):
        put(lab, key, plain("not-a-secret"))
    return {"secrets_total": 9, "secrets_plaintext": 4, "secrets_encrypted": 5,
            "encryption_providers": ["aescbc", "kms", "secretbox"]}


def test_snapshot_counts_plaintext_and_encrypted_secrets(lab, run_playbook):
    expected = write_secrets(lab)
    # What etcd itself lists under the prefix agrees with the count the writes must give.
    listed = json.loads(lab.etcdctl("get", "/registry/secrets/", "--prefix", "-w", "json").stdout)
    assert listed["count"] == expected["secrets_total"]
    backup_dir = lab.node_path("cp1", BACKUP_DIR)
    shutil.rmtree(backup_dir, ignore_errors=True)

    run, taken = run_task(run_playbook, lab, "Take an etcd snapshot", "etcd_snapshot", {"dest": DEST})
    assert run.rc == 0, run
    assert taken["changed"] is True and taken["secrets"] == expected
    with open(lab.node_path("cp1", DEST + ".meta.json")) as handle:
        metadata = json.load(handle)
    assert metadata["secrets"] == expected
    assert metadata["sha256"] == taken["sha256"]
    assert not any("Could not count the Secrets" in warning for warning in taken.get("warnings", []))

    run, info = run_task(run_playbook, lab, "Read the etcd snapshot", "etcd_snapshot_info",
                         {"path": DEST, "require_metadata": True})
    assert run.rc == 0, run
    assert info["snapshot"]["secrets"] == expected
    assert info["snapshot"]["metadata"]["secrets"] == expected
