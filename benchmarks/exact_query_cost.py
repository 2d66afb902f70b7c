"""Cost of one exact-codebook query per chain vs M (lower-bound lab, issue 5 item 7).

Runs Euler with K = 8 levels (+ final 0) for 100 chains against the LR adversary and the exact
oracle on SphereCodebook(d, R) and reports, per (d, M), the process CPU seconds and the wall
seconds per query per chain (after a warm-up call, so compile time is excluded). CPU time is
the robust number on a shared machine; each query is one streaming pass (logits + weighted
codeword sum, ~4 M d flops). Usage: ``PYTHONPATH=. python benchmarks/exact_query_cost.py OUT.json``.
"""

import json
import sys
import time

import jax
import jax.numpy as jnp

import jscore as js
from jscore.env import environment
from jscore.lowerbound.exact_experiments import offset_grid

CASES = [(32, 0.25), (32, 0.3), (32, 0.35), (48, 0.25)]
CHAINS, K = 100, 8


def main(out):
    rows = []
    for d, rate in CASES:
        cb = js.targets.SphereCodebook.random(jax.random.key(0), d, rate)
        g = jnp.asarray(offset_grid(K, 0.02, 20.0, 0.3))
        for name, orc in [("adversary", js.oracles.LRAdversary(cb, 0.05, 2.0)),
                          ("exact", js.oracles.Exact(cb))]:
            js.sample(orc, js.samplers.Euler(), g, jax.random.key(1),
                      num_samples=CHAINS).x.block_until_ready()
            c0, w0 = time.process_time(), time.perf_counter()
            reps = 3
            for r in range(reps):
                js.sample(orc, js.samplers.Euler(), g, jax.random.key(2 + r),
                          num_samples=CHAINS).x.block_until_ready()
            c, w = time.process_time() - c0, time.perf_counter() - w0
            nq = reps * CHAINS * K
            row = dict(d=d, rate=rate, M=cb.num_codewords, oracle=name,
                       cpu_us_per_query_chain=1e6 * c / nq, wall_us_per_query_chain=1e6 * w / nq,
                       gflop_per_cpu_s=4 * cb.num_codewords * d * nq / c / 1e9)
            rows.append(row)
            print(row, flush=True)
    json.dump(dict(environment=environment(), chains=CHAINS, K=K, rows=rows), open(out, "w"),
              indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "exact_query_cost.json")
