"""The fault suite shares its cases between the etcd versions through faultcases.py: let pytest rewrite the asserts
there (and in faulthelpers.py) as it does in test modules, so that a failure shows the values compared."""

import pytest

pytest.register_assert_rewrite("faulthelpers", "faultcases")
