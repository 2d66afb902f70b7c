"""Bracket check on the cached exact-lab rows of ``benchmarks/results/lowerbound_validation``.

Those rows (d = 40, 56, 64, R = 0.25, codebook seed = d) were measured by
``benchmarks/lowerbound_validation.py`` before the upper side existed; their queries are
``reference_points(d, sigma, n, point_seed(d, k))`` with ``k`` the index of the ratio in that
script's list, so the query norms can be regenerated without the codebook and both sides
evaluated at them. At d = 40 the lab is rerun here to confirm the regenerated points are the
cached ones (identical fractions). Writes ``bracket_cached.csv``, ``bracket_cached_summary.csv``
and ``bracket_cached.png`` next to this file.

    PYTHONPATH=. python benchmarks/results/exact_lab/bracket_cached.py
"""

import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

from jscore.lowerbound import validation as V  # noqa: E402
from jscore.store import write_csv  # noqa: E402
from jscore.sweeps.exact_lab import plot_bracket  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "lowerbound_validation")
RATIOS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 1.0, 1.3, 1.6, 1.9, 2.1, 2.3, 2.5,
          2.7, 3.0]  # the list of benchmarks/lowerbound_validation.py


def main():
    groups, summaries = [], []
    for d in (40, 56, 64):
        lab = json.load(open(os.path.join(SRC, f"lab_d{d}_R0.25.json")))
        rows = []
        ns = lab["n"] if isinstance(lab["n"], list) else [lab["n"]] * len(RATIOS)
        for r in lab["rows"]:
            k = RATIOS.index(r["ratio"])
            if 0.4 <= r["ratio"] <= 3.0:
                rows.append(dict(r, n=ns[k], point_seed=V.point_seed(d, k), seed=d))
        if d == 40:  # the regenerated queries are the cached ones: rerun the lab, same fractions
            again = V.exact_informative_fraction(40, 0.25, [r["ratio"] for r in rows],
                                                 [r["n"] for r in rows], seed=40,
                                                 indices=[RATIOS.index(r["ratio"]) for r in rows])
            bad = [(a["ratio"], a["exact"], b["exact"]) for a, b in zip(again, rows)
                   if a["exact"] != b["exact"]]
            print("d=40 rerun differs from cache:" if bad else "d=40 rerun == cache", bad)
        rows = V.bracket_check(rows)
        groups.append(rows)
        summaries.append(V.bracket_summary(rows))
        print(summaries[-1], flush=True)
    flat = [r for g in groups for r in g]
    cols = ["d", "rate", "M", "ratio", "n", "seed", "point_seed", "sigma", "exact", "exact_se",
            "lower", "upper", "formula", "outside_se", "side"]
    write_csv(os.path.join(HERE, "bracket_cached.csv"), [{c: r[c] for c in cols} for r in flat])
    write_csv(os.path.join(HERE, "bracket_cached_summary.csv"), summaries)
    plot_bracket(groups, os.path.join(HERE, "bracket_cached.png"), summaries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
