"""Name registries used by sweep specs: targets, oracles, schedules and samplers.

Targets and oracles are *families in d*: a builder receives the dimension. Oracles are resolved
by name when a sweep is validated, so oracle classes that live in other modules (e.g.
``js.oracles.Noisy``) plug in through :func:`register_oracle`; a name whose class is missing from
this jscore build gives a clear error before any compute.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import nets as _nets
from .. import oracles as _oracles
from .. import schedules as _schedules
from ..samplers import catalogue as _catalogue
from ..targets import Gaussian, GaussianCodebook, GaussianMixture, SphereCodebook


# ----------------------------------------------------------------------------- targets


def gaussian_family(dim: int, mean: float = 0.0, var: float = 1.0):
    """``N(mean 1, var I)`` in ``dim`` dimensions (scalar mean and variance)."""
    if not isinstance(mean, (int, float)) or not isinstance(var, (int, float)):
        raise TypeError(f"gaussian: `mean` and `var` must be numbers, got mean={mean!r}, var={var!r}.")
    if var <= 0:
        raise ValueError(f"gaussian: `var` must be > 0, got {var}.")
    return Gaussian.isotropic(dim, mean=float(mean), var=float(var))


def gmm_family(dim: int, k: int = 2, radius: float = 4.0, std: float = 1.0, seed: int = 0, weights=None):
    """``k`` isotropic components of std ``std`` whose means are random directions of norm ``radius``.

    Means come from ``numpy.random.default_rng(seed)`` in float64 at the exact ``dim`` (so they do
    not depend on padding); ``weights`` default to uniform.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"gmm: `k` must be a positive int, got {k!r}.")
    if std < 0 or radius < 0:
        raise ValueError(f"gmm: `std` and `radius` must be >= 0, got std={std}, radius={radius}.")
    g = np.random.default_rng(seed).standard_normal((k, dim))
    g *= radius / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    w = None if weights is None else np.asarray(weights, np.float64)
    if w is not None and w.shape != (k,):
        raise ValueError(f"gmm: `weights` must have {k} entries, got {w.shape}.")
    return GaussianMixture(jnp.asarray(g, jnp.result_type(float)), float(std), w)


def _codebook_family(cls, name):
    def family(dim: int, rate: float = 0.5, rho: float = 1.0, seed: int = 0):
        if not isinstance(seed, int):
            raise TypeError(f"{name}: `seed` must be an int, got {seed!r}.")
        return cls.random(jax.random.key(seed), dim, rate, rho)

    family.__name__ = f"{name}_family"
    family.__doc__ = (f"``{cls.__name__}.random(key(seed), dim, rate, rho)``: ``ceil(exp(rate * dim))`` "
                      "codewords (the adversary's hidden codebook).")
    return family


TARGETS: dict[str, Callable] = {
    "gaussian": gaussian_family,
    "gmm": gmm_family,
    "sphere_codebook": _codebook_family(SphereCodebook, "sphere_codebook"),
    "gaussian_codebook": _codebook_family(GaussianCodebook, "gaussian_codebook"),
}


# ----------------------------------------------------------------------------- oracles


@dataclasses.dataclass(frozen=True)
class OracleEntry:
    """How to build an oracle for a target.

    - ``build(target, **params) -> oracle`` (raise ``ValueError``/``TypeError`` on bad params);
    - ``bucketable``: whether padded dimensions with :class:`jscore.sweeps.padding.Masked` give the
      unpadded answers (true for exact oracles; oracles drawing random perturbations over all
      coordinates are not, unless written mask-aware);
    - ``is_exact``: answers are the target's exact score (allows closed-form error metrics).
    """

    build: Callable
    bucketable: bool = False
    is_exact: bool = False
    requires: str | None = None  #: name of the js.oracles class it needs, if any


def _exact(target):
    return _oracles.Exact(target)


def _from_js(class_name: str, issue: str):
    """Build ``js.oracles.<class_name>(Exact(target), **params)``, resolved when used."""

    def build(target, **params):
        cls = getattr(_oracles, class_name, None)
        if cls is None:
            raise ValueError(
                f"Oracle {class_name!r} is not available in this jscore build (js.oracles."
                f"{class_name} is missing; it lands with {issue}). Available oracles: "
                f"{', '.join(available_oracles())}."
            )
        try:
            return cls(_oracles.Exact(target), **params)
        except TypeError as e:
            raise TypeError(f"Bad options {params} for oracle {class_name}: {e}") from None

    return build


def _load_factory(path: str):
    mod, sep, attr = str(path).partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"network: `factory` must be 'module:function', got {path!r}.")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"network: cannot import factory {path!r}: {e}") from None
    if not callable(fn):
        raise TypeError(f"network: factory {path!r} is not callable.")
    return fn


def network_oracle(target, checkpoint: str | None = None, factory: str | None = None, **params):
    """A learned oracle for a cell at dimension ``target.dim``.

    - ``checkpoint``: a ``jscore train`` output directory or model file (``.../model.eqx``), read with
      :func:`jscore.nets.load`; ``{d}`` in the path is replaced by the cell's dimension, so one
      spec can sweep per-d checkpoints. The model must answer in the cell's dimension.
    - ``factory``: ``"module:function"``, called as ``function(dim, **params)``; it returns a
      jscore oracle, or a denoiser model ``D(x, sigma)`` (wrapped in :class:`jscore.oracles.Network`).
    """
    if (checkpoint is None) == (factory is None):
        raise ValueError("network: pass exactly one of `checkpoint` (a jscore train model file) or "
                         "`factory` ('module:function').")
    d = target.dim
    if checkpoint is not None:
        if params:
            raise TypeError(f"network: options {sorted(params)} only apply with `factory`.")
        path = pathlib.Path(str(checkpoint).replace("{d}", str(d)))
        if path.is_dir():  # a `jscore train --out` directory
            path = path / "model.eqx"
        oracle = _oracles.Network(_nets.load(path))
    else:
        made = _load_factory(factory)(d, **params)
        oracle = made if isinstance(made, _oracles.AbstractOracle) else _oracles.Network(made)
    if oracle.dim is not None and oracle.dim != d:
        raise ValueError(f"network: the model answers in dimension {oracle.dim} but the cell has "
                         f"d = {d}; use a checkpoint per d ('{{d}}' in the path) or restrict `dims`.")
    return oracle


def adversary_oracle(target, eps: float, p: float = 2.0):
    """:class:`jscore.oracles.LRAdversary` hiding a codebook target (``sphere_codebook``, ...)."""
    return _oracles.LRAdversary(target, eps, p)


def reference_oracle(target):
    """:class:`jscore.oracles.Reference` of a codebook target: the hypothesis-free control."""
    reference = getattr(target, "reference", None)
    if reference is None:
        raise TypeError(f"reference: needs a codebook target, got {type(target).__name__}.")
    return _oracles.Reference(reference)


ORACLES: dict[str, OracleEntry] = {
    "exact": OracleEntry(_exact, bucketable=True, is_exact=True),
    "noisy": OracleEntry(_from_js("Noisy", "the noisy-oracle issue"), requires="Noisy"),
    "network": OracleEntry(network_oracle),
    "adversary": OracleEntry(adversary_oracle),
    "reference": OracleEntry(reference_oracle),
}


def register_oracle(name: str, build: Callable, *, bucketable: bool = False, is_exact: bool = False):
    """Make ``name`` usable in sweep specs: ``build(target, **params) -> oracle``."""
    ORACLES[name.lower()] = OracleEntry(build, bucketable, is_exact)


def available_oracles() -> list[str]:
    return sorted(n for n, e in ORACLES.items() if e.requires is None or hasattr(_oracles, e.requires))


# ----------------------------------------------------------------------------- schedules

SCHEDULES = ("karras", "geometric", "vp_linear", "cosine", "ou_uniform")


def make_schedule(name: str, n: int, **params):
    """``js.schedules.<name>(n, **params)`` as a grid of ``n + 1`` levels ending at 0."""
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; available: {', '.join(SCHEDULES)}.")
    fn = getattr(_schedules, name)
    if "append_zero" in params or "n" in params:
        raise ValueError(f"schedule {name!r}: `n` and `append_zero` are set by the sweep; remove them.")
    try:
        inspect.signature(fn).bind(n, **params)
    except TypeError as e:
        raise TypeError(f"Bad options {params} for schedule {name!r}: {e}") from None
    return fn(n, **params)


# ----------------------------------------------------------------------------- samplers


def make_sampler(name: str, **params):
    """``js.samplers.catalogue.make(name, **params)``."""
    return _catalogue.make(name, **params)


def find_sampler_name(class_name: str, **options) -> str | None:
    """Catalogue name of the sampler class ``class_name`` (a class or a ``functools.partial`` of
    one whose keywords include ``options``), if registered."""
    for k, v in _catalogue.CATALOGUE.items():
        func = getattr(v, "func", v)
        keywords = getattr(v, "keywords", {}) or {}
        if getattr(func, "__name__", None) != class_name:
            continue
        if all(keywords.get(o, None) == val for o, val in options.items()):
            return k
    return None


__all__ = [
    "TARGETS",
    "ORACLES",
    "OracleEntry",
    "SCHEDULES",
    "register_oracle",
    "available_oracles",
    "make_schedule",
    "make_sampler",
    "gaussian_family",
    "gmm_family",
    "network_oracle",
    "adversary_oracle",
    "reference_oracle",
]
