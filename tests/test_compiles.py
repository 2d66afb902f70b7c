"""CompileCounter counts XLA compilations through jax.monitoring."""

import jax
import jax.numpy as jnp

from jscore.compiles import CompileCounter


def test_counts_one_compilation_per_new_shape_and_none_for_cached_calls():
    def f(x):  # a fresh function: nothing of it is in jax's caches
        return jnp.sin(x) * 3.0 + x.sum()

    g = jax.jit(f)
    a, b = jnp.ones(3), jnp.ones(5)  # made outside: building them compiles too
    with CompileCounter() as cc:
        g(a).block_until_ready()
        g(b).block_until_ready()
    assert cc.compilations == 2
    assert cc.compile_s > 0
    assert cc.summary().startswith("2 compilations, ")
    with CompileCounter() as again:
        g(a).block_until_ready()
        g(b).block_until_ready()
    assert again.compilations == 0 and again.compile_s == 0.0
    assert again.as_dict() == {"compilations": 0, "compile_s": 0.0, "trace_s": 0.0}


def test_nested_counters_both_count_and_a_closed_counter_stops():
    g = jax.jit(lambda x: jnp.cos(x) - 2.0 * x)
    a, b, c = jnp.ones(4), jnp.ones(6), jnp.ones(7)
    with CompileCounter() as outer:
        with CompileCounter() as inner:
            g(a).block_until_ready()
        g(b).block_until_ready()
    g(c).block_until_ready()  # after both closed: not counted
    assert (inner.compilations, outer.compilations) == (1, 2)
