"""Every module's documentation renders with ansible-doc and matches its argument_spec.

ansible-test sanity's validate-modules checks the same in depth; this keeps the promise
"`ansible-doc kubeops.etcd.<module>` renders every module" visible in the unit suite.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))


@pytest.fixture(scope="module")
def docs():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json"]
    argv += ["kubeops.etcd.%s" % name for name in MODULES]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# Outside the action group, so that `module_defaults: group/kubeops.etcd.etcd` (etcdctl_path, certs, ...)
# never reaches them: the controller-side planner, and the backup's file, storage and metrics modules, which
# run no etcd command.
NOT_IN_ETCD_GROUP = ["etcd_backup_crypt", "etcd_backup_destination", "etcd_backup_metrics", "etcd_backup_prune",
                     "etcd_leftovers", "etcd_member_plan", "etcd_object_store", "etcd_restore_journal", "etcd_restore_plan",
                     "etcd_tools",
                     "etcd_unit_datadir", "etcd_unit_info"]


def test_the_runtime_action_group_lists_every_module_that_runs_on_the_nodes():
    import yaml
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        runtime = yaml.safe_load(handle)
    assert sorted(runtime["action_groups"]["etcd"]) == [m for m in MODULES if m not in NOT_IN_ETCD_GROUP]


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_module_with_examples_and_return(docs, module):
    entry = docs["kubeops.etcd.%s" % module]
    doc = entry["doc"]
    assert doc["short_description"]
    assert doc["options"], "no options documented"
    assert entry["examples"].strip(), "no EXAMPLES"
    assert entry["return"], "no RETURN"
    assert "check_mode" in doc.get("attributes", {}), "check_mode support not declared"
