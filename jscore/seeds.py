"""Per-seed keys and named sub-streams.

Seed ``i`` of a batch uses ``chain_key(key, i) = fold_in(key, i)``, so sample i does not depend on
the batch size, chunking or devices. Inside one chain, independent streams are derived with
constant tags (``fold_in(chain_key, ORACLE)``), and per-step keys with ``fold_in(stream, step)``:
changing the number of steps leaves the initial draw unchanged, and an oracle's randomness never
shifts the sampler's noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

INIT = 0  #: initial draw y_0 = sigma_0 z
SAMPLER = 1  #: the sampler's own noise (churn, ancestral and Langevin noise, random midpoints)
ORACLE = 2  #: an oracle's own random stream (noisy oracles)
TRAIN = 3  #: training of score networks
DATA = 4  #: exact target samples drawn for metrics


def as_key(key):
    """Accept a typed key (``jax.random.key``) or a raw uint32 key (``jax.random.PRNGKey``)."""
    if isinstance(key, int) and not isinstance(key, bool):
        raise TypeError(
            f"`key` must be a JAX PRNG key, got the int {key}; pass jax.random.key({key})."
        )
    if not hasattr(key, "dtype"):
        raise TypeError(
            f"`key` must be a JAX PRNG key, got {key!r} of type {type(key).__name__}; pass "
            "jax.random.key(0)."
        )
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single key, got a key array of shape {key.shape}.")
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return key
    raise TypeError(
        f"`key` must be a JAX PRNG key (jax.random.key(seed)), got dtype {key.dtype} and shape "
        f"{key.shape}."
    )


def chain_key(key, seed):
    """Key of seed ``seed`` in a batch drawn from ``key``."""
    return jax.random.fold_in(key, seed)


def stream(key, tag: int):
    """Named sub-stream ``tag`` (one of INIT, SAMPLER, ORACLE, TRAIN, DATA) of a chain key."""
    return jax.random.fold_in(key, tag)


def step_key(stream_key, step):
    """Per-step key of a stream: ``fold_in(stream, step)``."""
    return jax.random.fold_in(stream_key, step)


__all__ = ["INIT", "SAMPLER", "ORACLE", "TRAIN", "DATA", "as_key", "chain_key", "stream", "step_key"]
