"""Compile time of ``js.sample`` per catalogue sampler, retracing, and the persistent cache.

For every sampler in ``js.samplers.catalogue.CATALOGUE`` (default parameters) on the Gaussian
mixture benchmark target: seconds to trace (``lower``) and to compile (``compile``) the batched
``js.sample`` call, and the steady-state run time for scale. Then:

- retracing: ``sample`` with three different values of a numeric hyper-parameter (Heun's
  ``s_churn``) and three different grids of the same length must trace once
  (``js.sampling.TRACE_COUNTS``);
- persistent compilation cache: the same first call (trace + compile + run of Heun) is timed in two
  fresh subprocesses sharing an empty cache directory; the second reads the executable from disk.

    python benchmarks/compile.py [--device gpu] [--dim 64] [--chains 256] [--steps 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _common  # noqa: E402

_CHILD = r"""
import os, sys, time, json
sys.path.insert(0, {root!r})
import jax
jax.config.update("jax_compilation_cache_dir", {cache!r})
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
import jscore as js
t0 = time.perf_counter()
means = 3.0 * jax.random.normal(jax.random.key(1), (16, {dim}))
oracle = js.oracles.Exact(js.targets.GaussianMixture(means, 0.5))
res = js.sample(oracle, js.samplers.Heun(), js.schedules.karras({steps}), jax.random.key(0),
                num_samples={chains})
jax.block_until_ready(res.x)
print(json.dumps({{"first_call_seconds": time.perf_counter() - t0}}))
"""


def compile_times(dim, chains, steps, names=None):
    import jax

    import jscore as js
    from jscore.samplers.catalogue import CATALOGUE

    target = _common.mixture(dim, jax.random.key(1))
    oracle = js.oracles.Exact(target)
    sigmas = js.schedules.karras(steps)
    key = jax.random.key(0)
    rows = {}
    if names:
        unknown = sorted(set(names) - set(CATALOGUE))
        if unknown:
            raise SystemExit(f"--samplers: unknown {unknown}; known: {sorted(CATALOGUE)}")
    for name, factory in CATALOGUE.items():
        if names and name not in names:
            continue
        sampler = factory()
        # data-dependent samplers (adaptive, Picard) need a budget: 4 queries per grid step
        mq = None if sampler.query_capacity(steps, True) is not None else 4 * steps
        fn = jax.jit(
            lambda o, s, sig, k, mq=mq: js.sample(o, s, sig, k, num_samples=chains, max_queries=mq),
        )
        t0 = time.perf_counter()
        lowered = fn.lower(oracle, sampler, sigmas, key)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        out = compiled(oracle, sampler, sigmas, key)
        jax.block_until_ready(out.x)
        times = _common.time_interleaved(
            {name: lambda: compiled(oracle, sampler, sigmas, key).x}, repeats=3, warmup=0
        )[name]
        rows[name] = {
            "trace_seconds": t1 - t0,
            "compile_seconds": t2 - t1,
            "run_seconds_median": _common.median(times),
        }
        print(
            f"  {name:16s} trace {rows[name]['trace_seconds']:6.2f} s  compile "
            f"{rows[name]['compile_seconds']:6.2f} s  run {1e3 * rows[name]['run_seconds_median']:8.1f} ms",
            flush=True,
        )
    return rows


def retrace_counts(dim, chains, steps):
    import jax

    import jscore as js
    from jscore.sampling import TRACE_COUNTS

    oracle = js.oracles.Exact(_common.mixture(dim, jax.random.key(1)))
    key = jax.random.key(0)
    before = TRACE_COUNTS["sample"]
    for churn in (0.0, 5.0, 40.0):
        js.sample(oracle, js.samplers.Heun(s_churn=churn), js.schedules.karras(steps), key,
                  num_samples=chains).x.block_until_ready()
    for smax in (10.0, 80.0, 160.0):
        js.sample(oracle, js.samplers.Heun(), js.schedules.karras(steps, sigma_max=smax), key,
                  num_samples=chains).x.block_until_ready()
    return TRACE_COUNTS["sample"] - before


def persistent_cache(dim, chains, steps, device):
    env = dict(os.environ)
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        code = _CHILD.format(root=str(HERE.parent), cache=cache, dim=dim, steps=steps, chains=chains)
        for run in ("cold", "warm"):
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                               timeout=600)
            if p.returncode != 0:
                raise RuntimeError(p.stderr[-2000:])
            out[run] = json.loads(p.stdout.strip().splitlines()[-1])["first_call_seconds"]
            print(f"  {run} cache: first call (import excluded) {out[run]:.2f} s", flush=True)
        out["entries"] = len(os.listdir(cache))
    out["speedup"] = out["cold"] / out["warm"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--chains", type=int, default=256)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--samplers", default=None,
                   help="comma-separated catalogue names (default: the whole catalogue)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    print(f"compile time of js.sample (d={args.dim}, {args.chains} chains, {args.steps} steps):")
    names = args.samplers.split(",") if args.samplers else None
    rows = compile_times(args.dim, args.chains, args.steps, names)
    traces = retrace_counts(args.dim, args.chains, args.steps)
    print(f"traces for 3 churn values + 3 grids of one length: {traces} (expected 1)")
    print("persistent compilation cache (two fresh processes):")
    cache = persistent_cache(args.dim, args.chains, args.steps, args.device)
    print(f"  speed-up of the first call: {cache['speedup']:.2f}x")
    payload = {"benchmark": "compile", "env": env, "device": _common.device_label(env),
               "dim": args.dim, "chains": args.chains, "steps": args.steps,
               "samplers": rows, "traces_for_6_value_changes": traces, "persistent_cache": cache}
    print(f"saved {_common.save_json('compile', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
