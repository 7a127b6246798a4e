"""Stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test downloads get-pip.py from ci-files.testing.ansible.com to seed pip into the
virtual environments of its sanity tests. Our CI reaches PyPI only, so `make sanity`
downloads the pip wheel from PyPI next to this script's cached copy and this script does
what get-pip.py does: run pip from that wheel to install pip into the current interpreter.
"""

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = sorted(glob.glob(os.path.join(HERE, "pip-*.whl")))
if not WHEELS:
    sys.exit("no pip wheel beside %s: run `make sanity-bootstrap`" % __file__)

sys.path.insert(0, WHEELS[-1])
from pip._internal.cli.main import main  # noqa: E402  (imported from the wheel)

# get-pip.py options that plain `pip install` does not know.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", HERE] + args))
