"""Largest dimension d for Gaussian-mixture sampling on one device.

Euler on a Karras grid (default 32 steps), K = 16 mixture, N chains (default 16), float32. d
doubles from ``--start`` while (a) the compiled executable's peak memory (``memory_analysis``)
stays under ``--mem-frac`` of the device's memory (GPU: allocator limit; CPU: MemAvailable) and
(b) one run takes at most ``--time-cap`` seconds. Every size is run and checked (all chains
finite, exact query counts); reported: the largest d that ran, its time, coordinate-queries per
second, and why the doubling stopped.

    python benchmarks/scale.py                       # CPU, bounded by time and memory
    python benchmarks/scale.py --device gpu          # GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402


def available_bytes(device):
    import jax

    if device == "gpu":
        stats = jax.devices()[0].memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--start", type=int, default=2**14)
    p.add_argument("--max-log2-dim", type=int, default=34)
    p.add_argument("--time-cap", type=float, default=None, help="seconds per run (CPU 20, GPU 30)")
    p.add_argument("--mem-frac", type=float, default=None, help="CPU 0.25 (shared machine), GPU 0.9")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    import jax
    import numpy as np

    import jscore as js

    time_cap = args.time_cap or (20.0 if args.device == "cpu" else 30.0)
    mem_frac = args.mem_frac or (0.25 if args.device == "cpu" else 0.9)
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    sigmas = js.schedules.karras(args.steps)
    sampler = js.samplers.Euler()
    rows, stop = [], "max dimension reached"
    d = args.start
    while d <= 2**args.max_log2_dim:
        n = args.chains
        budget = mem_frac * available_bytes(args.device)
        try:
            oracle = js.oracles.Exact(_common.mixture(d, jax.random.key(1)))
            fn = jax.jit(lambda o, k: js.sample(o, sampler, sigmas, k, num_samples=n))
            t0 = time.perf_counter()
            compiled = fn.lower(oracle, jax.random.key(0)).compile()
            t_compile = time.perf_counter() - t0
            m = compiled.memory_analysis()
            peak = None
            if m is not None:
                peak = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                        - m.alias_size_in_bytes)
            if peak is not None and peak > budget:
                stop = f"d={d}: predicted peak {peak / 2**30:.1f} GiB > {budget / 2**30:.1f} GiB"
                break
            t0 = time.perf_counter()
            res = compiled(oracle, jax.random.key(0))
            jax.block_until_ready(res.x)
            t_run = time.perf_counter() - t0
        except Exception as e:  # out of memory at allocation time, etc.
            stop = f"d={d}: {type(e).__name__}: {str(e)[:200]}"
            break
        ok = bool(np.all(np.isfinite(np.asarray(res.x)))) and bool(
            np.all(np.asarray(res.stats.queries) == args.steps))
        row = {"d": d, "n": n, "compile_seconds": t_compile, "run_seconds": t_run,
               "peak_bytes_predicted": peak, "finite_and_counts_exact": ok,
               "coord_queries_per_s": n * d * args.steps / t_run}
        rows.append(row)
        print(f"  d = 2^{int(np.log2(d)):2d} = {d:11d}: run {t_run:7.2f} s, compile {t_compile:5.1f} s, "
              f"peak {0 if peak is None else peak / 2**20:9.0f} MiB, {row['coord_queries_per_s']:.2e} "
              f"coord-q/s, ok={ok}", flush=True)
        del res, oracle, compiled
        if not ok:
            stop = f"d={d}: non-finite result or wrong counts"
            break
        if t_run > time_cap:
            stop = f"d={d}: run took {t_run:.1f} s > time cap {time_cap:.0f} s"
            break
        d *= 2
    largest = rows[-1]["d"] if rows else None
    print(f"largest d run: {largest} ({args.chains} chains, {args.steps} Euler steps); stopped: {stop}")
    payload = {"benchmark": "scale", "env": env, "device": _common.device_label(env),
               "chains": args.chains, "steps": args.steps, "time_cap_s": time_cap,
               "mem_frac": mem_frac, "rows": rows, "largest_d": largest, "stopped": stop}
    print(f"saved {_common.save_json('scale', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
