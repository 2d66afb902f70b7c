"""One K evaluation of the full-vector lower-bound path for a sampler without a scalar reduction.

    python benchmarks/lowerbound_general.py [--sampler unipc] [--dims 10000,100000]

Per d: FullVectorDraws(sampler) at K = round(0.2 sqrt(d)) geometric levels, 4 replicates x 4
lattice points (one chain each), eps = 1/d, p = 2; wall time of the first call (compile + run)
and of a second, uncached call (run only), with the 1-minute load average.
"""
import argparse, json, math, os, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import jax, numpy as np  # noqa: E402
from jscore.lowerbound.general import FullVectorDraws  # noqa: E402
from jscore.store import atomic_write, json_default  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sampler", default="unipc")
    ap.add_argument("--dims", default="10000,100000")
    ap.add_argument("--out", default="benchmarks/results/lowerbound_general/unipc_cpu.json")
    a = ap.parse_args()
    rows = []
    with jax.enable_x64(True):
        for d in map(int, a.dims.split(",")):
            K = max(4, round(0.2 * math.sqrt(d)))
            w = 3.26 * math.sqrt(math.log(d * d) / d)
            f = FullVectorDraws(a.sampler, d, 1.0 / d, 2.0, w, key=jax.random.key(0), n_points=4,
                                n_reps=4)
            t = time.time(); lo, hi, lev = f(K); first = time.time() - t
            f.cache.clear(); t = time.time(); f(K); second = time.time() - t
            r = dict(sampler=a.sampler, d=d, K=K, chains=16, p_lower=float(np.mean(lo)),
                     p_upper=float(np.mean(hi)), p_lower_reps=lo.tolist(), p_upper_reps=hi.tolist(),
                     levels_in_band=lev, wall_first_s=first, wall_run_s=second,
                     load_1min=os.getloadavg()[0])
            print(r, flush=True)
            rows.append(r)
    atomic_write(a.out, json.dumps({"benchmark": "lowerbound_general", "eps": "1/d", "p": 2.0,
                                    "float": "float64", "device": str(jax.devices()[0]),
                                    "rows": rows}, default=json_default, indent=1).encode())


if __name__ == "__main__":
    main()
