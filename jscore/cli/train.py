"""``jscore train``: train a denoiser network on a closed-form target and measure its score error.

Example::

    jscore train --target gmm --dim 16 --components 8 --steps 4000 --out runs/gmm16
    jscore train --data digits --size 16 --steps 2000 --out runs/digits16

``--data digits`` trains the convolutional :class:`jscore.nets.DenoiserConv` on the training split
of :func:`jscore.data.digits` (image-shaped states ``(size, size, 1)``); its error is measured
against the exact score of ``js.targets.Empirical(train_images, --bandwidth)``, the law it is
trained on (``--bandwidth 0``: the training images themselves).

writes into ``--out``: ``model.eqx`` (+ ``model.eqx.json``), the training checkpoint
(``train.json``, ``train-*.eqx``; rerunning the same command resumes it), ``target.json``,
``losses.npy``, ``profile.json`` (the measured ``eps(sigma) = ||S_net - s||_{L^p(p_sigma)}`` against
the target's exact score, with confidence intervals) and ``profile.png``. The profile is also
printed as a table. Registered in :mod:`jscore.cli` as the ``train`` sub-command
(``add_parser``/``run``); ``main(argv)`` runs it standalone.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import sys
import time

import numpy as np

from ..env import environment
from ._util import check_out_dir
from ..store import write_json


# arguments of js.train.fit named in its errors -> the flags that set them
FLAGS = {"num_steps": "--steps", "batch_size": "--batch", "learning_rate": "--lr",
         "ema_decay": "--ema", "chunk_size": "--chunk"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    from . import COMMANDS
    from ._util import HelpFormatter

    p = subparsers.add_parser(
        "train",
        help=COMMANDS["train"],
        formatter_class=HelpFormatter,
        description="Train an EDM-preconditioned denoiser MLP by denoising score matching on exact "
        "samples of a closed-form target, save it, and measure its L^p(p_sigma) score error "
        "against the exact score on a grid of noise levels.",
    )
    g = p.add_argument_group("target")
    g.add_argument("--target", choices=("gmm", "gaussian"), default="gmm",
                   help="closed-form target: Gaussian mixture or a Gaussian")
    g.add_argument("--dim", type=int, default=16, help="data dimension d")
    g.add_argument("--components", type=int, default=8, help="gmm: number of components K")
    g.add_argument("--spread", type=float, default=1.0,
                   help="gmm: component means are spread * N(0, I_d)")
    g.add_argument("--target-std", type=float, default=0.3,
                   help="gmm: component std; gaussian: per-coordinate std")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the target (digits: of the train/held-out split), init and training")
    g.add_argument("--data", choices=("digits",), default=None,
                   help="train on a real data set instead of --target (image-shaped states)")
    g.add_argument("--size", type=int, default=8, help="digits: image side 8, 16, 32 or 64")
    g.add_argument("--bandwidth", type=float, default=0.0,
                   help="digits: std of the noise added to a training image (Empirical target)")
    g = p.add_argument_group("network")
    g.add_argument("--width", type=int, default=None,
                   help="hidden units per MLP layer (default 128); digits: channels (default 32)")
    g.add_argument("--depth", type=int, default=3, help="hidden layers of the MLP")
    g.add_argument("--levels", type=int, default=1, help="digits: resolution halvings of the U-Net")
    g.add_argument("--patch", type=int, default=None,
                   help="digits: patch side of the conv net (default size / 8: an 8x8 inner grid)")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    g.add_argument("--batch", type=int, default=256, help="samples per step")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved weights")
    g.add_argument("--sigma-dist", choices=("lognormal", "loguniform"), default="lognormal",
                   help="training distribution of the noise level sigma")
    g.add_argument("--chunk", type=int, default=100, help="steps per jitted chunk")
    g.add_argument("--checkpoint-every", type=int, default=1, help="chunks between checkpoints")
    g.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-n", type=int, default=4096, help="Monte-Carlo samples per level")
    g.add_argument("--eval-levels", type=int, default=13, help="number of sigma levels")
    g.add_argument("--eval-min", type=float, default=0.01, help="smallest sigma evaluated")
    g.add_argument("--eval-max", type=float, default=10.0, help="largest sigma evaluated")
    g.add_argument("--p", type=float, default=2.0, help="exponent of the L^p(p_sigma) error")
    g.add_argument("--no-plot", action="store_true", help="skip profile.png")
    p.add_argument("--out", required=True, help="output directory")
    return p


def make_target(args):
    """The target named by ``--target`` (a deterministic function of the arguments)."""
    import jax
    import jax.numpy as jnp

    import jscore as js

    if args.data == "digits":
        if not (math.isfinite(args.bandwidth) and args.bandwidth >= 0):
            raise ValueError(f"--bandwidth must be finite and >= 0, got {args.bandwidth}.")
        if args.size not in js.data.SIZES:
            raise ValueError(f"--size must be one of {js.data.SIZES}, got {args.size}.")
        ds = js.data.digits(args.size, seed=args.seed)
        return js.targets.Empirical(ds.train, args.bandwidth), {
            "target": "digits", "dim": args.size**2, "size": args.size,
            "bandwidth": args.bandwidth, "seed": args.seed, "n_train": int(ds.train.shape[0])}
    if args.dim < 1:
        raise ValueError(f"--dim must be >= 1, got {args.dim}.")
    if not math.isfinite(args.spread):
        raise ValueError(f"--spread must be a finite number, got {args.spread}.")
    if not args.target_std > 0:
        raise ValueError(f"--target-std must be > 0, got {args.target_std}.")
    if args.target == "gaussian":
        return js.targets.Gaussian(jnp.zeros(args.dim), args.target_std**2), {
            "target": "gaussian", "dim": args.dim, "std": args.target_std}
    if args.components < 1:
        raise ValueError(f"--components must be >= 1, got {args.components}.")
    key = jax.random.fold_in(jax.random.key(args.seed), 0x7461)
    means = args.spread * jax.random.normal(key, (args.components, args.dim))
    spec = {"target": "gmm", "dim": args.dim, "components": args.components,
            "spread": args.spread, "std": args.target_std, "seed": args.seed,
            "means": np.asarray(means).tolist()}
    return js.targets.GaussianMixture(means, args.target_std), spec


def make_model(args, target, sigma_data, key):
    """The network to train: DenoiserConv for ``--data digits``, else DenoiserMLP."""
    import jscore as js

    if args.data == "digits":
        patch = args.size // 8 if args.patch is None else args.patch
        return js.nets.DenoiserConv(target.event_shape, width=32 if args.width is None else args.width,
                                    levels=args.levels, patch=patch, sigma_data=sigma_data, key=key)
    return js.nets.DenoiserMLP(target.dim, width=128 if args.width is None else args.width,
                               depth=args.depth, sigma_data=sigma_data, key=key)


def _check_same_target(path: pathlib.Path, spec: dict, resume: bool) -> None:
    """Refuse (before writing anything) to resume into ``--out`` whose ``target.json`` describes
    another target; ``--no-resume`` starts over."""
    if not resume or not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    if old != json.loads(json.dumps(spec)):
        raise ValueError(
            f"`out`: {str(path.parent)!r} holds a run of another target ({path.name} differs from "
            f"--target {spec['target']} --dim {spec['dim']} ...); use another --out, or "
            "--no-resume to start over there."
        )


def sigma_data_of(target) -> float:
    """Per-coordinate standard deviation of the target (EDM's sigma_data), in closed form."""
    import jscore as js

    if isinstance(target, js.targets.Gaussian):
        return float(np.sqrt(np.mean(np.broadcast_to(np.asarray(target.var), (target.dim,)))))
    m = np.asarray(target.means, np.float64)
    w = np.asarray(target.weights, np.float64)
    mu = w @ m
    var = float(np.mean(w @ (m - mu) ** 2)) + float(target.std) ** 2
    return math.sqrt(var)


def format_table(rows) -> str:
    head = f"{'sigma':>10} {'eps':>10} {'ci_low':>10} {'ci_high':>10} {'|s|_p':>10} {'eps/|s|_p':>10} {'eps_init':>10}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['sigma']:10.4g} {r['eps']:10.4g} {r['ci_low']:10.4g} {r['ci_high']:10.4g} "
            f"{r['score_norm']:10.4g} {r['relative']:10.4g} {r['eps_init']:10.4g}"
        )
    return "\n".join(lines)


def _plot(path, rows, p, title):
    from ..plot import figure, legend_outside, log_scale, save, series, style

    s = np.array([r["sigma"] for r in rows])
    with style():
        fig, (ax,) = figure(size=(4.6, 3.4))
        ax.fill_between(s, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.3,
                        color="C0", label="95% CI")
        ax.plot(s, [r["eps"] for r in rows], label="trained network", **series(0))
        ax.plot(s, [r["eps_init"] for r in rows], label="network at init ($F = 0$)", **series(1))
        ax.plot(s, [r["score_norm"] for r in rows], ":", color="k",
                label=r"$\|s\|_{L^p}$ (exact score)")
        ax.set_xscale("log")
        log_scale(ax, "y", [r[k] for r in rows for k in ("eps", "eps_init", "score_norm",
                                                         "ci_low")])
        ax.set_xlabel(r"$\sigma$")
        ax.set_ylabel(rf"$\varepsilon(\sigma) = \|\hat s - s\|_{{L^{{{p:g}}}(p_\sigma)}}$")
        ax.set_title(title)
        legend_outside(ax)
        save(fig, path)


def run(args) -> int:
    import jax

    import jscore as js

    target, spec = make_target(args)
    if not (0 < args.eval_min < args.eval_max < math.inf) or args.eval_levels < 1:
        raise ValueError("Need 0 < --eval-min < --eval-max < inf and --eval-levels >= 1, got "
                         f"{args.eval_min}, {args.eval_max}, {args.eval_levels}.")
    if not 1 <= args.p < math.inf:
        raise ValueError(f"--p must satisfy 1 <= p < inf, got {args.p}.")
    if args.eval_n < 2:
        raise ValueError(f"--eval-n must be >= 2 (Monte-Carlo samples per level), got {args.eval_n}.")
    out = pathlib.Path(check_out_dir(args.out))
    _check_same_target(out / "target.json", spec, resume=not args.no_resume)
    sd = sigma_data_of(target)
    key = jax.random.key(args.seed)
    k_init, k_train, k_eval = (jax.random.fold_in(key, i) for i in (1, 2, 3))
    model0 = make_model(args, target, sd, k_init)
    t0 = time.perf_counter()
    res = js.train.fit(
        model0, target, k_train, num_steps=args.steps, batch_size=args.batch,
        learning_rate=args.lr, ema_decay=args.ema, sigma_dist=args.sigma_dist,
        chunk_size=args.chunk, checkpoint_dir=out, checkpoint_every=args.checkpoint_every,
        resume=not args.no_resume, progress=not args.no_progress,
    )
    train_s = time.perf_counter() - t0
    write_json(out / "target.json", spec)  # fit made `out`, checked the run
    np.save(out / "losses.npy", res.losses)
    sigmas = np.geomspace(args.eval_min, args.eval_max, args.eval_levels)
    prof = js.metrics.score_error_profile(js.oracles.Network(res.model), target, sigmas, k_eval, args.p, args.eval_n)
    prof0 = js.metrics.score_error_profile(js.oracles.Network(model0), target, sigmas, k_eval, args.p, args.eval_n)
    # ||s||_{L^p(p_sigma)}: the error of the all-zero score, same samples
    norms = js.metrics.score_error_profile(_zero_oracle(), target, sigmas, k_eval, args.p, args.eval_n)
    rows = [
        {"sigma": float(s), "eps": float(e), "ci_low": float(lo), "ci_high": float(hi),
         "se": float(se), "score_norm": float(nm), "relative": float(e / nm), "eps_init": float(e0)}
        for s, e, lo, hi, se, nm, e0 in zip(sigmas, prof.estimate, prof.lower, prof.upper, prof.se,
                                            norms.estimate, prof0.estimate)
    ]
    summary = {
        "target": {k: v for k, v in spec.items() if k != "means"},
        "model": res.model.hyperparams(),
        "train": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "ema": args.ema,
                  "sigma_dist": args.sigma_dist, "seconds": train_s,
                  "final_loss_mean_last_10pct": float(np.mean(res.losses[-max(1, args.steps // 10):]))},
        "eval": {"p": args.p, "n": args.eval_n, "level": prof.level},
        "profile": rows,
        **environment(),
    }
    write_json(out / "profile.json", summary)
    print(f"trained {args.steps} steps in {train_s:.1f} s; final loss "
          f"{summary['train']['final_loss_mean_last_10pct']:.4f}")
    print(f"measured score error eps(sigma) = ||S_net - s||_L^{args.p:g}(p_sigma), n={args.eval_n}, "
          f"{100 * prof.level:.0f}% CI:")
    print(format_table(rows))
    if not args.no_plot:
        _plot(out / "profile.png", rows, args.p,
              f"{spec['target']} d={target.dim}: width {model0.width}, {args.steps} steps")
    print(f"saved to {out}")
    return 0


@functools.lru_cache(maxsize=None)
def _zero_class():
    from jscore.oracles.base import AbstractOracle

    class ZeroScore(AbstractOracle):
        """Answers 0, so its L^p(p_sigma) error is the norm of the exact score."""

        def query(self, x, sigma, state):
            return jnp_zeros_like(x), state

    return ZeroScore


def jnp_zeros_like(x):
    import jax.numpy as jnp

    return jnp.zeros_like(x)


def _zero_oracle():
    return _zero_class()()


def main(argv=None) -> int:
    """Stand-alone entry (``python -m jscore.cli.train``): ``jscore train ARGS``."""
    from . import main as jscore_main

    return jscore_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
