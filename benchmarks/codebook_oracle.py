"""The exact codebook oracle (one attention head over M codewords) against the device's matmul rate.

Workload: ``n`` queries against a sphere codebook of ``M`` codewords in dimension ``d`` (float32),
one fused streaming pass each (:func:`jscore.targets.codebook.stream_codebook`: log-sum-exp,
posterior mean; ``4 n M d`` flops: the logits and the weighted codeword sum). Timed interleaved in
one process, every round in a fresh order:

- ``stream_B<block>``: the batched pass at each block size (choose the default from these);
  ``stream_B<block>_default``: the same with ``Precision.DEFAULT`` products (TF32 on NVIDIA GPUs),
  with its largest log-sum-exp deviation and the number of adversary decisions (``informative``)
  that differ from the reference pass (one block or the largest, ``Precision.HIGHEST``);
- ``vmap_posterior``: ``jax.vmap(codebook.posterior)`` at the codebook's default block size (the
  path a sampler's chains take);
- ``adversary``: ``jax.vmap(LRAdversary.answer)`` (pass + Bessel terms + the three tests);
- ``xla_matmul`` / ``xla_copy``: the device's float32 matmul and copy rates in the same rounds.

Reported per workload: median ms, GFLOP/s, the fraction of the matmul rate (median over rounds of
the same round's ratio), ms per 4096-query batch, and the compiled temporary memory (XLA's
``memory_analysis``) against the ``n x block`` logits block.

    python benchmarks/codebook_oracle.py                 # CPU: d = 64, M = 2^17 + 37, n = 1024
    python benchmarks/codebook_oracle.py --device gpu    # GPU: d = 64, R = 0.25 (M = 8.9e6), n = 4096
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402

DEFAULTS = {
    "cpu": {"dim": 64, "num_codewords": (1 << 17) + 37, "queries": 1024, "repeats": 7,
            "blocks": [256, 512, 1024, 2048, 4096, 16384], "precisions": ["highest"]},
    "gpu": {"dim": 64, "num_codewords": math.ceil(math.exp(0.25 * 64)), "queries": 4096,
            "repeats": 7, "blocks": [4096, 16384, 65536, 262144],
            "precisions": ["highest", "default"]},
}


def _temp_bytes(fn, *args):
    m = _common.memory_of(fn.lower(*args).compile())
    return None if m is None else m["temp_size_in_bytes"]


def decisions(adv, X, sigma, lse, mean):
    """The adversary's informative flags from a pass's ``lse`` and ``mean`` (as ``answer`` makes them)."""
    import jax
    import jax.numpy as jnp

    cb = adv.codebook
    prm = adv.parameters(sigma, X.dtype)

    def one(x, l, m):
        n2 = jnp.sum(x * x)
        diff = jnp.sqrt(jnp.sum((m - cb.reference.denoise(x, sigma)) ** 2)) / sigma**2
        return ((n2 >= prm.band_lo) & (n2 <= prm.band_hi)
                & (cb.log_lr_from_lse(x, sigma, l) >= prm.log_lambda) & (diff > 0.5 * adv.eps))

    return jax.jit(jax.vmap(one))(X, lse, mean)


def build(dim, M, n, blocks, precisions, key):
    import jax
    import jax.numpy as jnp

    import jscore as js
    from jscore.targets.codebook import stream_codebook

    kc, kx = jax.random.split(key)
    g = jax.random.normal(kc, (M, dim), jnp.float32)
    Y = math.sqrt(dim) * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    cb = js.targets.SphereCodebook(Y)
    sigma = 1.2 * math.sqrt(1.0 / math.expm1(2.0 * math.log(M) / dim))  # near sigma_c
    X = cb.sample_noised(kx, sigma, n)
    inv = jnp.asarray(1.0 / sigma**2, jnp.float32)
    fns, temps = {}, {}
    for prec in precisions:
        pr = getattr(jax.lax.Precision, prec.upper())
        for B in blocks:
            name = f"stream_B{B}" + ("" if prec == "highest" else f"_{prec}")
            f = jax.jit(lambda X, Y, s, B=B, pr=pr: stream_codebook(X, Y, s, block_size=B,
                                                                 precision=pr)[:2])
            fns[name] = lambda f=f: f(X, Y, inv)
            temps[name] = _temp_bytes(f, X, Y, inv)
    post = jax.jit(lambda X, c: jax.vmap(lambda x: c.posterior(x, sigma)[:2])(X))
    fns["vmap_posterior"] = lambda: post(X, cb)
    temps["vmap_posterior"] = _temp_bytes(post, X, cb)
    adv = js.oracles.LRAdversary(cb, 0.05, 2.0)
    ans = jax.jit(lambda X, a: jax.vmap(lambda x: a.answer(x, sigma)[:2])(X))
    fns["adversary"] = lambda: ans(X, adv)
    temps["adversary"] = _temp_bytes(ans, X, adv)
    ref = stream_codebook(X, Y, inv, block_size=None if M * n <= 1 << 26 else blocks[-1])
    ref_flags = decisions(adv, X, sigma, ref.lse, ref.mean)
    check = {}
    for name, f in fns.items():
        if name.startswith("stream"):
            lse, mean = f()
            check[name] = {
                "max_abs_lse_dev": float(jnp.max(jnp.abs(lse - ref.lse))),
                "decision_flips": int(jnp.sum(decisions(adv, X, sigma, lse, mean) != ref_flags)),
                "informative_fraction": float(jnp.mean(ref_flags))}
    return fns, temps, check, sigma, cb.block_size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--num-codewords", type=int, default=None)
    p.add_argument("--queries", type=int, default=None)
    p.add_argument("--blocks", type=lambda s: [int(v) for v in s.split(",")], default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--precisions", type=lambda s: s.split(","), default=None,
                   help="matrix-product precisions to time: highest (float32), default (TF32 on GPUs)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    import jax

    cfg = DEFAULTS[args.device]
    d = args.dim or cfg["dim"]
    M = args.num_codewords or cfg["num_codewords"]
    n = args.queries or cfg["queries"]
    blocks = args.blocks or cfg["blocks"]
    repeats = args.repeats or cfg["repeats"]
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}; d={d} M={M} n={n}")
    precisions = args.precisions or cfg["precisions"]
    fns, temps, check, sigma, default_block = build(d, M, n, blocks, precisions, jax.random.key(0))
    probes, work = _common.roofline_probes(args.device)
    times = _common.time_interleaved({**fns, **probes}, repeats)
    rates = _common.probe_rates(times, work)
    flops = 4.0 * n * M * d
    nbytes = 4.0 * (M * d + 2 * n * d)
    rows = {}
    for name in fns:
        r = _common.roofline(times[name], flops, nbytes, rates)
        B = int(name[len("stream_B"):].split("_")[0]) if name.startswith("stream_B") else default_block
        r.update(seconds_median=_common.median(times[name]), seconds_all=times[name],
                 ms_per_4096_queries=1e3 * _common.median(times[name]) * 4096 / n,
                 block=B, temp_bytes=temps[name], logits_block_bytes=4 * n * min(B, M),
                 **check.get(name, {}))
        rows[name] = r
        print(f"  {name:22s} {1e3 * r['seconds_median']:8.1f} ms  {r['flops_per_s'] / 1e9:6.1f} GFLOP/s"
              f"  {100 * r['fraction_of_matmul']:5.1f}% of matmul  "
              f"temp {(r['temp_bytes'] or 0) / 2**20:7.1f} MiB (n x B: "
              f"{r['logits_block_bytes'] / 2**20:.1f} MiB)"
              + (f"  lse dev {r['max_abs_lse_dev']:.1e}, {r['decision_flips']} flips"
                 if name in check else ""), flush=True)
    for name, r in rates.items():
        unit = "GFLOP/s" if "flops" in r else "GB/s"
        print(f"  {name:16s} {r['rate_median'] / 1e9:8.1f} {unit}")
    best = max((k for k in check if k[len("stream_B"):].isdigit()), key=lambda k: rows[k]["fraction_of_matmul"])
    print(f"best block: {rows[best]['block']} ({100 * rows[best]['fraction_of_matmul']:.0f}% of matmul)")
    _common.stamp_end(env)
    payload = {"benchmark": "codebook_oracle", "env": env, "device": _common.device_label(env),
               "dim": d, "num_codewords": M, "queries": n, "sigma": sigma, "repeats": repeats,
               "flops_per_pass": flops, "probes": rates, "impls": rows, "best_block": rows[best]["block"]}
    path = _common.save_json("codebook_oracle", payload, args.out)
    print(f"saved {path}")
    return payload


if __name__ == "__main__":
    main()
