"""Contract tests over the plugin registries: a plugin is tested by registering it."""

import pytest

# The checks live in helper modules (shared with the meta-tests): rewrite their asserts so
# that a failure shows the values involved.
pytest.register_assert_rewrite(
    "tests.contracts.measure_contract", "tests.contracts.algorithm_contract"
)
