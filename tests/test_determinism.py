"""Chain i of ``js.sample`` is bitwise identical whatever the batch size and the chain's position.

Chains run in fixed blocks of ``chain_block(d)`` chains (``lax.map`` over ``vmap``-ped blocks),
so every chain is computed by the same program. Without the blocks, XLA fuses a batch-coupled
target's per-chain products (the mixture's ``(K, d) @ (d,)``) into one ``(n, d) @ (d, K)`` matrix
product whose rounding depends on ``n``; the audit found 36 of 64 Euler chains differing (up to
1.1e-5) between ``num_samples=64`` and ``chunk_size=1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.sampling import chain_block

D = 24


def _targets():
    k = jax.random.key(0)
    return {
        "gaussian": js.targets.Gaussian(jnp.linspace(-1.0, 1.0, D), 0.5),
        "mixture": js.targets.GaussianMixture(3.0 * jax.random.normal(k, (16, D)), 0.5),
        "sphere": js.targets.UniformSphere(D, 2.0),
        "codebook": js.targets.SphereCodebook.random(k, D, rate=0.1),
    }


ORACLES = {
    "exact": js.oracles.Exact,
    "noisy": lambda t: js.oracles.Noisy(js.oracles.Exact(t), 0.3),
}


@pytest.mark.parametrize("target_name,oracle_name", [
    ("gaussian", "exact"), ("mixture", "exact"), ("mixture", "noisy"), ("sphere", "noisy"),
    ("codebook", "exact")])
def test_chain_is_bitwise_batch_invariant(target_name, oracle_name):
    oracle = ORACLES[oracle_name](_targets()[target_name])
    sampler = js.samplers.EulerAncestral()
    sig = js.schedules.karras(4)
    key = jax.random.key(5)
    block = chain_block(D)
    n_big = block + 3  # two blocks, the second padded
    big = js.sample(oracle, sampler, sig, key, num_samples=n_big)
    small = js.sample(oracle, sampler, sig, key, num_samples=5)
    np.testing.assert_array_equal(np.asarray(small.x), np.asarray(big.x[:5]))
    np.testing.assert_array_equal(np.asarray(small.stats.queries), np.asarray(big.stats.queries[:5]))
    assert np.all(np.isfinite(np.asarray(big.x)))


def test_position_in_batch_does_not_matter():
    """The same chain (same initial point; Heun without churn uses no noise) at position 0 of one
    batch and at position ``block + 1`` (second block) of another gives the same bits, on the
    mixture."""
    t = _targets()["mixture"]
    oracle = js.oracles.Exact(t)
    sig = js.schedules.karras(6)
    block = chain_block(D)
    x0 = sig[0] * jax.random.normal(jax.random.key(1), (block + 2, D))
    a = js.sample(oracle, js.samplers.Heun(), sig, jax.random.key(2), x_init=x0)
    b = js.sample(oracle, js.samplers.Heun(), sig, jax.random.key(2), x_init=x0[block:][::-1])
    np.testing.assert_array_equal(np.asarray(a.x[block + 1]), np.asarray(b.x[0]))
    np.testing.assert_array_equal(np.asarray(a.x[block]), np.asarray(b.x[1]))


def test_chain_block_depends_on_dim_and_platform_only():
    cb = chain_block
    assert cb(64, "cpu") == 256 and cb(1024, "cpu") == 16 and cb(10**6, "cpu") == 1
    assert cb(64, "gpu") == 2**16 and cb(10**6, "gpu") == 4
    for d in (1, 3, 100, 5000):
        b = cb(d, "cpu")
        assert b & (b - 1) == 0 and 1 <= b <= 256 and (b == 1 or b * d <= 2**14)
