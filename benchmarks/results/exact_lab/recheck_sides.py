"""Re-evaluate both sides of the bracket on the measured rows of ``bracket.csv`` (in place).

The measured columns (``exact``, ``exact_se``, ...) are kept; ``lower``, ``upper``, ``formula``,
``outside_se`` and ``side`` are recomputed with the current
``jscore.lowerbound.informative.informative_bounds`` at the same query norms (no codebook is
needed), then ``bracket_summary.csv`` and ``bracket.png`` are rebuilt.

    PYTHONPATH=. python benchmarks/results/exact_lab/recheck_sides.py
"""

import csv
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

from jscore.lowerbound import exact_experiments as E  # noqa: E402
from jscore.lowerbound import validation as V  # noqa: E402
from jscore.store import write_csv  # noqa: E402
from jscore.sweeps.exact_lab import plot_bracket  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    path = os.path.join(HERE, "bracket.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = V.bracket_check(rows)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=E.BRACKET_FIELDS)
        w.writeheader()
        w.writerows({c: r[c] for c in E.BRACKET_FIELDS} for r in out)
    os.replace(tmp, path)
    groups = {}
    for r in out:
        groups.setdefault((int(r["d"]), int(r["n"])), []).append(r)
    groups = [sorted(g, key=lambda r: float(r["ratio"])) for _, g in sorted(groups.items())]
    summaries = [V.bracket_summary(g) for g in groups]
    write_csv(os.path.join(HERE, "bracket_summary.csv"), summaries)
    plot_bracket(groups, os.path.join(HERE, "bracket.png"), summaries)
    for s in summaries:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
