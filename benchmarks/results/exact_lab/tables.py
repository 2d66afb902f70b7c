"""Markdown tables and the combined figures of this folder (decoding vs informative, bracket).

    PYTHONPATH=. python benchmarks/results/exact_lab/tables.py [--docs]

Reads ``success_d{d}.csv``, ``gap_d{d}.csv``, ``bracket.csv``/``bracket_summary.csv`` and
``bracket_cached*.csv`` here; prints the tables; writes ``gap.png`` (all d side by side) and with
``--docs`` copies the PNGs to ``docs/experiments/exact_gap.png`` and ``exact_bracket.png``.
"""

import csv
import glob
import os
import re
import shutil
import sys

from jscore.lowerbound import exact_experiments as E
from jscore.lowerbound import validation as V
from jscore.sweeps.exact_lab import plot_decoding_vs_informative

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, name), newline="") as f:
        return list(csv.DictReader(f))


def num(r):
    out = {}
    for k, v in r.items():
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def main(argv):
    dims = sorted(int(re.findall(r"\d+", os.path.basename(p))[0])
                  for p in glob.glob(os.path.join(HERE, "success_d*.csv")))
    groups = []
    print("| d | K | P(informative) | decoder success | gap (paired) | P(success given informative) |"
          " chains, replicates |")
    print("|---|---|---|---|---|---|---|")
    for d in dims:
        rows = [num(r) for r in read(f"success_d{d}.csv")]
        groups.append((d, rows))
        for r in rows:
            if r["oracle"] != "adversary":
                continue
            e = {c: E.error_bar(r, c) for c in ("informative", "success", "gap")}
            print(f"| {d} | {r['K']} | {r['informative']:.3f} ± {e['informative']:.3f} | "
                  f"{r['success']:.3f} ± {e['success']:.3f} | {r['gap']:.3f} ± {e['gap']:.3f} | "
                  f"{r['success_given_informative']:.3f} | {r['chains']}, {r['replicates']} |")
    print()
    print("| d | M (rates) | K where P(informative) = 1/2 [±2 SE band] | K where success = 1/2 "
          "[±2 SE band] | largest gap (at K) |")
    print("|---|---|---|---|---|")
    for d in dims:
        (g,) = [num(r) for r in read(f"gap_d{d}.csv")]
        units = [num(r) for r in read("success_units.csv") if int(r["d"]) == d]
        ms = sorted({(u["rate"], u["M"]) for u in units})
        mtxt = ", ".join(f"{m:,} ({r:g})" for r, m in ms)
        print(f"| {d} | {mtxt} | {g['K_inf']:.2f} [{g['K_inf_lo']:.2f}, {g['K_inf_hi']:.2f}] | "
              f"{g['K_succ']:.2f} [{g['K_succ_lo']:.2f}, {g['K_succ_hi']:.2f}] | "
              f"{g['max_gap']:.3f} ± {g['max_gap_se']:.3f} ({g['at_K']}) |")
    plot_decoding_vs_informative(groups, os.path.join(HERE, "gap.png"))
    for name in ("bracket_summary.csv", "bracket_cached_summary.csv"):
        if not os.path.exists(os.path.join(HERE, name)):
            continue
        print(f"\n{name}:\n")
        print("| d | M | points | sigma/sigma_c | worst point: SE outside (ratio, side) | points "
              "outside | Bonferroni tolerance | passed |")
        print("|---|---|---|---|---|---|---|---|")
        for s in map(num, read(name)):
            print(f"| {s['d']} | {s['M']:,} | {s['points']} | [{s['min_ratio']:g}, "
                  f"{s['max_ratio']:g}] | {s['max_outside_se']:.2f} ({s['at_ratio']:g}, "
                  f"{s['side']}) | {s['outside']} | {s['tolerance_se']:.2f} | {s['passed']} |")
    if "--docs" in argv:
        root = os.path.join(HERE, "..", "..", "..", "docs", "experiments")
        shutil.copy(os.path.join(HERE, "gap.png"), os.path.join(root, "exact_gap.png"))
        shutil.copy(os.path.join(HERE, "bracket.png"), os.path.join(root, "exact_bracket.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
