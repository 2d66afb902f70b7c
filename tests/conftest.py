"""Shared pytest configuration.

Float64 tests use the ``x64`` fixture, which turns ``jax_enable_x64`` on for the test only.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

# Start the backend now, with the default XLA options: `jscore demo` run in-process by a test would
# otherwise start it at backend optimisation level 0 (its compile-fast mode), and every later test
# in that worker would compile at level 0 too (float results differing in the last bits from a
# fresh process, so bitwise tests would fail depending on test order).
jax.devices()


@pytest.fixture
def x64():
    """Run the test body with jax_enable_x64 on (restored afterwards)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def getkey():
    """Fresh deterministic keys: ``getkey()`` returns fold_in(key(0), counter)."""
    counter = iter(range(10**9))
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))
