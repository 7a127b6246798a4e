"""Make the collection importable as ``ansible_collections.kubeops.etcd`` for every test.

``make collection-link`` (and this file, if it is missing) creates
``build/collections/ansible_collections/kubeops/etcd`` as a link to the repository root,
which is how ansible-core's collection loader and the unit tests find the code.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, "build", "collections")
_LINK = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "kubeops", "etcd")

if not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(REPO_ROOT, _LINK)

if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)

# ansible-core's collection finder must be installed for the
# ``ansible_collections`` namespace to resolve like it does at run time.
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[COLLECTIONS_ROOT])._install()
