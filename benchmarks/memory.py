"""Peak memory of a large ``js.sample`` run relative to the chain state (N x d floats).

For Euler and Heun on the Gaussian-mixture target, the compiled executable's
``memory_analysis()`` gives argument, output, temporary and aliased bytes; the peak is
``arguments + outputs + temporaries - aliased``. Reported as a multiple of the state size
``N d * 4`` bytes, for: chains drawn inside (``num_samples``), user-given ``x_init`` (an argument
that must survive the call, so it is not donated), chains run in 4 chunks (``chunk_size = N/4``:
temporaries scale with the chunk), and with a per-step trace (``Record(every=8, x=True)``) to
show what a trace costs. On GPU the allocator's ``peak_bytes_in_use`` after
actually running the ``num_samples`` case (fresh process) is reported too.

Goal (performance.md): peak within 3x the state without a trace.

    python benchmarks/memory.py                   # CPU: N d = 2^24 (64 MiB state)
    python benchmarks/memory.py --device gpu      # GPU: N d = 2^26, d = 1024
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--log2-size", type=int, default=None)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--run", action="store_true", help="also run the num_samples case (GPU: peak_bytes_in_use)")
    p.add_argument("--threefry-unrolled", action="store_true",
                   help="diagnostic: lower threefry unrolled on CPU (as jax does on GPU) instead of "
                        "jax's CPU rolled loop, whose 4 state-sized temporaries bound noisy steps "
                        "(uses jax internals; for --device cpu only)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    import jax
    import jax.numpy as jnp

    import jscore as js

    lowering = "jax default (CPU: rolled loop)" if args.device == "cpu" else "jax default"
    if args.threefry_unrolled:
        try:
            from jax._src.interpreters import mlir
            from jax._src.random import threefry2x32 as tf

            mlir.register_lowering(tf.threefry2x32_p, tf._threefry2x32_lowering_rule, platform="cpu")
            lowering = "unrolled (GPU's lowering, patched in on CPU)"
        except (ImportError, AttributeError) as e:  # jax internals moved
            print(f"--threefry-unrolled unavailable in this jax ({e}); using the default lowering")
    print(f"threefry lowering: {lowering}")

    log2 = args.log2_size or (26 if args.device == "gpu" else 24)
    d = args.dim
    n = 2**log2 // d
    state = n * d * 4
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    print(f"state: N={n} x d={d} float32 = {state / 2**20:.0f} MiB, {args.steps} steps")
    oracle = js.oracles.Exact(_common.mixture(d, jax.random.key(1)))
    sigmas = js.schedules.karras(args.steps)
    key = jax.random.key(0)
    x_init = jax.ShapeDtypeStruct((n, d), jnp.float32)
    rows = {}
    for sname, sampler in (("euler", js.samplers.Euler()), ("heun", js.samplers.Heun())):
        cases = {
            "num_samples": (lambda o, s, sig, k: js.sample(o, s, sig, k, num_samples=n), ()),
            "x_init": (lambda o, s, sig, k, x: js.sample(o, s, sig, k, x_init=x), (x_init,)),
            f"num_samples+chunk_size={n // 4}": (
                lambda o, s, sig, k: js.sample(o, s, sig, k, num_samples=n, chunk_size=n // 4), (),
            ),
            "num_samples+trace(every=8,x)": (
                lambda o, s, sig, k: js.sample(o, s, sig, k, num_samples=n,
                                               record=js.Record(every=8, x=True)),
                (),
            ),
        }
        for cname, (fn, extra) in cases.items():
            compiled = jax.jit(fn).lower(oracle, sampler, sigmas, key, *extra).compile()
            row = _common.memory_of(compiled)
            if row is None:
                print(f"  {sname:6s} {cname}: memory_analysis() unavailable on this backend")
                continue
            row["peak_over_state"] = row["peak_bytes"] / state
            rows[f"{sname}/{cname}"] = row
            print(
                f"  {sname:6s} {cname:30s} peak {row['peak_bytes'] / 2**20:8.0f} MiB = "
                f"{row['peak_over_state']:.2f} x state (args {row['argument_size_in_bytes'] / state:.2f},"
                f" out {row['output_size_in_bytes'] / state:.2f}, temp {row['temp_size_in_bytes'] / state:.2f})",
                flush=True,
            )
    measured = None
    if args.run or args.device == "gpu":
        res = js.sample(oracle, js.samplers.Heun(), sigmas, key, num_samples=n)
        jax.block_until_ready(res.x)
        stats = jax.devices()[0].memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            measured = {"peak_bytes_in_use": int(stats["peak_bytes_in_use"]),
                        "peak_over_state": stats["peak_bytes_in_use"] / state}
            print(f"  measured (heun, num_samples): peak_bytes_in_use "
                  f"{stats['peak_bytes_in_use'] / 2**20:.0f} MiB = {measured['peak_over_state']:.2f} x state")
        else:
            print("  measured: the backend reports no memory_stats (CPU); compiled analysis only")
        del res
    payload = {"benchmark": "memory", "env": env, "device": _common.device_label(env),
               "n": n, "d": d, "steps": args.steps, "state_bytes": state,
               "threefry_lowering": lowering, "compiled": rows,
               "measured": measured}
    print(f"saved {_common.save_json('memory', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
