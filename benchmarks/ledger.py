"""Cost of exact level counting when the ledger is batched (per-chain grids).

With one grid for all chains the per-chain ledger does not depend on the chain and stays unbatched
under vmap, so counting is free. With per-chain grids (``vmap`` of ``sample_one`` over random
``geometric`` offsets) or data-dependent levels, every chain carries its own buffer of capacity
L = query capacity. The reference update compares each query's sigma with the whole buffer
(O(L) per chain per query); jscore's ledger decides levels queried in non-increasing order in O(1)
and searches only when some chain needs it. This script times both on the same workload, in the
same process, interleaved (EDM Heun with churn, so sigma_hat > sigma_i forces searches on churned
steps, and without churn, where no search is ever needed).

    python benchmarks/ledger.py [--dim 16] [--chains 16384] [--steps 64]
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
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--chains", type=int, default=16384)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jscore as js
    from jscore.counting import Ledger

    class RefLedger(Ledger):
        def _mark_level(self, sigma, charged):  # the original O(capacity) formulation
            sigma = jnp.asarray(sigma, self.seen.dtype)
            is_new = charged & ~jnp.any(self.seen == sigma)
            slot = jnp.minimum(self.levels, self.seen.shape[0] - 1)
            seen = self.seen.at[slot].set(jnp.where(is_new, sigma, self.seen[slot]))
            return eqx.tree_at(lambda l: (l.seen, l.levels), self,
                               (seen, self.levels + is_new.astype(jnp.int32)))

    class RefHeun(js.samplers.Heun):
        def solve(self, oracle, sigmas, x, key, ostate, ledger, record):
            ledger = RefLedger(**{f: getattr(ledger, f) for f in ledger.__dataclass_fields__})
            return super().solve(oracle, sigmas, x, key, ostate, ledger, record)

    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    oracle = js.oracles.Exact(_common.mixture(args.dim, jax.random.key(1)))
    offsets = jax.random.uniform(jax.random.key(3), (args.chains,))
    keys = jax.random.split(jax.random.key(4), args.chains)

    def make(sampler):
        @jax.jit
        def run(offsets, keys):
            def one(o, k):
                sig = js.schedules.geometric(args.steps, 0.002, 80.0, offset=o)
                return js.sample_one(oracle, sampler, sig, k, throw=False)

            return jax.vmap(one)(offsets, keys)

        return run

    cases = {}
    for label, kw in (("no churn", {}), ("churn 40 in [0.05, 50]", dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0))):
        fast, ref = make(js.samplers.Heun(**kw)), make(RefHeun(**kw))
        a, b = fast(offsets, keys), ref(offsets, keys)
        same = all(
            bool(np.array_equal(np.asarray(getattr(a.stats, f)), np.asarray(getattr(b.stats, f))))
            for f in ("queries", "levels", "rounds")
        ) and bool(np.array_equal(np.asarray(a.x), np.asarray(b.x)))
        times = _common.time_interleaved(
            {"fast": lambda: fast(offsets, keys).x, "reference": lambda: ref(offsets, keys).x},
            args.repeats,
        )
        med = {k: _common.median(v) for k, v in times.items()}
        cases[label] = {"seconds": med, "seconds_all": times, "speedup": med["reference"] / med["fast"],
                        "identical_counts_and_states": same,
                        "mean_levels": float(np.mean(np.asarray(a.stats.levels))),
                        "capacity": int(2 * args.steps)}
        print(f"  Heun, {label:24s}: fast {1e3 * med['fast']:8.1f} ms, reference "
              f"{1e3 * med['reference']:8.1f} ms, speed-up {cases[label]['speedup']:.2f}x, "
              f"identical={same}", flush=True)
    payload = {"benchmark": "ledger", "env": env, "device": _common.device_label(env),
               "dim": args.dim, "chains": args.chains, "steps": args.steps, "cases": cases}
    print(f"saved {_common.save_json('ledger', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
