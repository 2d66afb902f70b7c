"""``jscore lowerbound scale``: the sqrt(d) scaling sweep of the lower-bound lab from one command.

Prints a table on stdout and writes ``scaling.json`` (after every dimension), ``scaling.csv`` and
``scaling.png`` (K*(d) and N(d) with fitted slopes and bootstrap CIs next to the window-profile
collapse) into ``--out``. The default configuration (d = 1e2 ... 1e6, Euler, Euler ancestral
and Heun in scalar form) runs in a few minutes on 2 CPU cores.

Registered by ``jscore.cli`` through :func:`add_parser` / :func:`run`; also runnable as
``python -m jscore.cli.lowerbound scale``.
"""

from __future__ import annotations

import argparse
import sys


def _floats(text: str):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str):
    return [v.strip() for v in text.split(",") if v.strip()]


def add_parser(subparsers):
    """Add the ``lowerbound`` command (with its ``scale`` sub-command) to ``subparsers``."""
    from ..lowerbound.scaling import DEFAULT_DIMS, DEFAULT_SAMPLERS

    p = subparsers.add_parser(
        "lowerbound", help="lower-bound lab: codebook-free large-d simulation and the sqrt(d) sweep"
    )
    sub = p.add_subparsers(dest="lowerbound_command", required=True)
    s = sub.add_parser("scale", help="window width, N(d), K*(d) per sampler, slopes, figure")
    s.add_argument("--dims", type=_floats, default=list(DEFAULT_DIMS),
                   help="comma-separated dimensions (default: %(default)s)")
    s.add_argument("--samplers", type=_names, default=list(DEFAULT_SAMPLERS),
                   help="comma-separated sampler names in scalar form: euler, ddim, "
                        "euler_ancestral, euler_maruyama, heun, dpmpp_2m, randomized_midpoint "
                        "(default: %(default)s)")
    s.add_argument("--p", type=float, default=2.0, help="L^p exponent of the accuracy (default 2)")
    s.add_argument("--eps", default="1/d", help="accuracy rule: 1/d, 1/sqrt(d), 1/d^2 or a number")
    s.add_argument("--rate", type=float, default=0.3, help="rate of the window table (0.3)")
    s.add_argument("--rate-lo", type=float, default=0.15)
    s.add_argument("--rate-hi", type=float, default=0.45)
    s.add_argument("--n-rates", type=int, default=9, help="rate grid size for N, K*, searcher")
    s.add_argument("--n-xi", type=int, default=1000, help="reference-norm draws per profile")
    s.add_argument("--offsets", type=int, default=8, help="random log-offsets per K (samplers)")
    s.add_argument("--chains", type=int, default=2, help="chains per offset (stochastic samplers)")
    s.add_argument("--k-max", type=int, default=1024, help="largest number of levels tried")
    s.add_argument("--robustness", action="store_true",
                   help="also the p x eps robustness grid of the window width")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="results/lowerbound_scale",
                   help="output folder for JSON, CSV and PNG (default: %(default)s)")
    s.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run the sub-command parsed by :func:`add_parser`; returns the exit code."""
    from ..lowerbound.scaling import eps_value, format_table, scaling

    if getattr(args, "lowerbound_command", "scale") != "scale":
        raise SystemExit(f"unknown lowerbound command {args.lowerbound_command!r}")
    eps = args.eps
    try:
        eps = float(eps)
    except ValueError:
        eps_value(100.0, eps)  # validates the rule name
    results = scaling(
        dims=args.dims, samplers=args.samplers, p=args.p, eps=eps, rate=args.rate,
        rate_lo=args.rate_lo, rate_hi=args.rate_hi, n_rates=args.n_rates, n_xi=args.n_xi,
        n_offsets=args.offsets, n_chains=args.chains, k_max=args.k_max,
        robustness=args.robustness, seed=args.seed, out_dir=args.out,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(format_table(results))
    print(f"results: {args.out}/scaling.json, scaling.csv, scaling.png "
          f"({results['elapsed_s']:.0f} s)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jscore")
    add_parser(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["lowerbound"]:
        argv = ["lowerbound"] + argv
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
