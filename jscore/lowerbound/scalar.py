"""Scalar reduction of rotation-equivariant samplers against the reference oracle (section 7.1).

The reference score of ``Q = Unif(S_r)`` is radial: ``s_Q(y, sigma) = (beta - 1) y / sigma^2`` with
``beta = r A_d(kappa) / |y|`` and ``kappa = r |y| / sigma^2``, so ``D(y, sigma) = beta y``. A sampler
whose update combines ``y``, answers and fresh isotropic Gaussian noise linearly is then
rotation-equivariant, and its queries ``(|x_k|, sigma_k)`` and the overlaps of successive query
directions have a law that a few scalars per step reproduce exactly, at any ``d``:

- every step is written in a small orthonormal frame ``(e, q_perp, f_1, ..., f_m)``: ``e`` the
  direction of the current state, ``q_perp`` the part of the previous query direction orthogonal
  to ``e``, and one new axis ``f_j`` per fresh noise vector;
- the ``j``-th fresh noise ``w_j ~ N(0, I_d)`` has i.i.d. ``N(0, 1)`` coordinates on the ``1 + j``
  axes already in the frame and ``sqrt(chi2_{d-1-j})`` on its own new axis ``f_j``
  (rotation invariance; the coordinates are independent of the past);
- the state carried between steps is ``|y|``, the previous query direction ``(cos phi, sin phi)``
  relative to ``e``, and (DPM-Solver++ 2M) the previous denoiser output along ``e``.

One-evaluation updates (Euler, DDIM, ancestral/DDPM, Euler-Maruyama) are a norm chain (one noise);
EDM Heun with churn adds one noise and queries twice on the same ray; DPM-Solver++ 2M is a
deterministic ray with a two-term history; the randomized midpoint (K = J = 1) needs two noises
per step (a 4-dimensional frame). Cost O(1) per step whatever ``d`` (1e6 and beyond). The update
formulas are docs/sampler_reference.md §1-4, 7 and 10 (EDM/VE form).

Samplers are described by :class:`ScalarSampler` ``(kind, params)``; :func:`scalar_spec` maps a
``js.samplers`` instance (or catalogue-style name) to it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..samplers import DDIM, Euler, EulerAncestral, EulerMaruyama, Heun
from ..samplers.dpm_solver import DPMSolverPP
from ..samplers.midpoint import RandomizedMidpoint
from .informative import bessel_terms

KINDS = ("euler", "ancestral", "euler_maruyama", "heun", "dpmpp_2m", "randomized_midpoint")


class ScalarSampler(NamedTuple):
    """A sampler in scalar form: ``kind`` (one of :data:`KINDS`) and a dict of float ``params``.

    params: ancestral ``eta``; euler_maruyama ``variant`` ("ou" | "variance"); heun ``s_churn``,
    ``s_tmin``, ``s_tmax``, ``s_noise``; dpmpp_2m ``lower_order_final`` (bool).
    """

    kind: str
    params: tuple = ()

    def get(self, name, default):
        return dict(self.params).get(name, default)

    @property
    def slots(self) -> int:
        """Query slots per step (2 for Heun and the randomized midpoint)."""
        return 2 if self.kind in ("heun", "randomized_midpoint") else 1

    @property
    def is_stochastic(self) -> bool:
        if self.kind in ("euler", "dpmpp_2m"):
            return False
        if self.kind == "ancestral":
            return float(self.get("eta", 1.0)) > 0
        if self.kind == "heun":
            return float(self.get("s_churn", 0.0)) > 0
        return True


#: ``sampler type -> reduce(sampler) -> ScalarSampler``: the samplers with a scalar reduction,
#: matched by *exact* type (a subclass may change the update, so it runs on the full-vector path
#: unless it registers its own reduction with :func:`register_scalar_reduction`).
SCALAR_REDUCTIONS: dict = {}

#: Catalogue-style names with a scalar form.
SCALAR_NAMES = {
    "euler": ScalarSampler("euler"),
    "ddim": ScalarSampler("euler"),
    "euler_ancestral": ScalarSampler("ancestral", (("eta", 1.0),)),
    "ddpm": ScalarSampler("ancestral", (("eta", 1.0),)),
    "euler_maruyama": ScalarSampler("euler_maruyama", (("variant", "ou"),)),
    "heun": ScalarSampler("heun"),
    "dpmpp_2m": ScalarSampler("dpmpp_2m"),
    "dpm_solver_pp": ScalarSampler("dpmpp_2m"),
    "randomized_midpoint": ScalarSampler("randomized_midpoint"),
}


def register_scalar_reduction(cls):
    """Decorator: ``@register_scalar_reduction(MySampler)`` on ``reduce(sampler) -> ScalarSampler``
    (raising ``ValueError`` for field values it does not cover) registers it for ``MySampler``."""
    if not isinstance(cls, type):
        raise TypeError(f"register_scalar_reduction: expected a sampler class, got {cls!r}.")

    def deco(fn):
        SCALAR_REDUCTIONS[cls] = fn
        return fn

    return deco


def scalar_spec(sampler) -> ScalarSampler:
    """The :class:`ScalarSampler` of a ``js.samplers`` instance or of a name.

    Instances: by exact type in :data:`SCALAR_REDUCTIONS` (``Euler``, ``DDIM(eta)``,
    ``EulerAncestral(eta)`` with the posterior variance, ``EulerMaruyama(variant)``,
    ``Heun(s_churn, s_tmin, s_tmax, s_noise)``, ``DPMSolverPP(order=2)``, ``RandomizedMidpoint``
    with one point and one Picard round). Names: the keys of :data:`SCALAR_NAMES`. ``ValueError``
    otherwise (then the full-vector path of :mod:`jscore.lowerbound.general` applies).
    """
    if isinstance(sampler, ScalarSampler):
        return sampler
    if isinstance(sampler, str):
        if sampler not in SCALAR_NAMES:
            raise ValueError(
                f"No scalar reduction for sampler name {sampler!r}; available: {', '.join(SCALAR_NAMES)}."
            )
        return SCALAR_NAMES[sampler]
    reduce = SCALAR_REDUCTIONS.get(type(sampler))
    if reduce is None:
        raise ValueError(
            f"No scalar reduction for {type(sampler).__name__}; registered: "
            f"{', '.join(c.__name__ for c in SCALAR_REDUCTIONS)} (exact types; DPMSolverPP with "
            "order=2, RandomizedMidpoint with K = J = 1)."
        )
    return reduce(sampler)


def _concrete(sampler, attr, default):
    v = getattr(sampler, attr, default)
    try:
        return float(v)
    except TypeError:
        raise TypeError(f"{type(sampler).__name__}.{attr} must be concrete for the scalar "
                        "reduction.") from None


def _register_builtin_reductions():
    register_scalar_reduction(Euler)(lambda s: ScalarSampler("euler"))

    def ancestral(s):
        if getattr(s, "variance", "posterior") != "posterior":
            raise ValueError("The scalar reduction covers the posterior (beta-tilde) variance only.")
        eta = _concrete(s, "eta", 1.0)
        return ScalarSampler("euler" if eta == 0 else "ancestral", (("eta", eta),))

    register_scalar_reduction(EulerAncestral)(ancestral)
    register_scalar_reduction(DDIM)(ancestral)
    register_scalar_reduction(EulerMaruyama)(
        lambda s: ScalarSampler("euler_maruyama", (("variant", s.variant),)))
    register_scalar_reduction(Heun)(lambda s: ScalarSampler("heun", tuple(
        (k, _concrete(s, k, dv)) for k, dv in
        (("s_churn", 0.0), ("s_tmin", 0.0), ("s_tmax", math.inf), ("s_noise", 1.0)))))

    @register_scalar_reduction(DPMSolverPP)
    def dpmpp(s):
        if int(getattr(s, "order", 2)) != 2:
            raise ValueError("The scalar reduction covers DPMSolverPP(order=2) (2M) only.")
        return ScalarSampler("dpmpp_2m", (("lower_order_final", bool(getattr(s, "lower_order_final", False))),))

    @register_scalar_reduction(RandomizedMidpoint)
    def midpoint(s):
        if (int(getattr(s, "num_points", 1)), int(getattr(s, "picard_iters", 1))) != (1, 1):
            raise ValueError("The scalar reduction covers RandomizedMidpoint with K = J = 1 only.")
        return ScalarSampler("randomized_midpoint")


_register_builtin_reductions()


def num_queries(spec: ScalarSampler, num_steps: int, ends_at_zero: bool = True) -> int:
    """Queries per chain (docs/sampler_reference.md §15)."""
    if spec.slots == 2:
        return 2 * num_steps - 1 if ends_at_zero else 2 * num_steps
    return num_steps


class Trajectory(NamedTuple):
    """Per-chain record of a reference run; arrays ``(n, q)`` (or ``(q,)`` for one chain).

    ``xi``: query norms ``|x_k|``; ``sigma``: query levels; ``overlap``: cosine between the
    directions of query k and query k-1 (1 for k = 0); ``valid``: slot holds a real query.
    """

    xi: jax.Array
    sigma: jax.Array
    overlap: jax.Array
    valid: jax.Array


# ------------------------------------------------------------------------------ frame algebra
_FRAME = 4  # e, q_perp, f1, f2


def _radial(xi, sigma, d, rho):
    """``beta = D/y`` of the reference denoiser at norm ``xi``: ``r A_d(kappa)/xi``."""
    r = rho * jnp.sqrt(d)
    xi = jnp.maximum(xi, 1e-300)
    kappa = r * xi / (sigma * sigma)
    _, a = bessel_terms(kappa, d)
    return r * a / xi


def _noise(key, j, d):
    """Coordinates of the j-th fresh noise (j = 1, 2) in the frame (e, q_perp, f1, f2)."""
    kg, kc = jax.random.split(key)
    ftype = jnp.result_type(float)
    g = jax.random.normal(kg, (_FRAME,), ftype)
    df = d - 1.0 - j
    tail = jnp.sqrt(2.0 * jax.random.gamma(kc, df / 2.0, (), ftype))
    idx = jnp.arange(_FRAME)
    own = 1 + j
    return jnp.where(idx < own, g, jnp.where(idx == own, tail, 0.0))


def _unit(v):
    n = jnp.sqrt(jnp.sum(v * v))
    return v / jnp.maximum(n, 1e-300), n


def _chain(spec: ScalarSampler, sigmas, key, d, rho, x0_norm=None, num_active=None):
    """One chain; returns a :class:`Trajectory` of length ``slots * N`` (before compaction).

    ``num_active`` (traced int): only the first ``num_active`` steps run (the grid is padded
    beyond them, e.g. to batch several grid lengths in one compiled function); later slots are
    invalid.
    """
    init, step, static_steps = chain_stepper(spec, sigmas, key, d, rho, x0_norm, num_active)
    (u_final, _, _, _), (xi, sig, ov, val) = jax.lax.scan(step, init, jnp.arange(static_steps))
    flat = lambda a: a.reshape(-1)  # noqa: E731
    return Trajectory(flat(xi), flat(sig), flat(ov), flat(val)), u_final


class _Step(NamedTuple):
    """What one step's update sees: the state ``u = |y|`` and ``y = u e``, the levels, the
    step's keys, the step index and the carried ``D_{i-1}`` along ``e`` (DPM-Solver++ 2M)."""

    u: jax.Array
    y: jax.Array
    sigma: jax.Array
    sigma_next: jax.Array
    terminal: jax.Array
    keys: tuple
    i: jax.Array
    dprev: jax.Array


class _Ctx(NamedTuple):
    """The chain's fixed data: spec parameters, dimension, radius scale, grid, active steps."""

    spec: ScalarSampler
    d: object
    rho: object
    sigmas: jax.Array
    n_steps: object
    e0: jax.Array
    k_steps: jax.Array


def _update_euler(cx, st):
    beta = _radial(st.u, st.sigma, cx.d, cx.rho)
    ratio = st.sigma_next / st.sigma
    y_new = (ratio + (1.0 - ratio) * beta) * st.y
    return y_new, [(st.y, st.sigma, True)], st.dprev


def _update_ancestral(cx, st):
    eta = cx.spec.get("eta", 1.0)
    beta = _radial(st.u, st.sigma, cx.d, cx.rho)
    ratio = st.sigma_next / st.sigma
    s_up = eta * st.sigma_next * jnp.sqrt((1.0 - ratio) * (1.0 + ratio))
    s_down = st.sigma_next * jnp.sqrt((1.0 - eta * eta) + eta * eta * ratio * ratio)
    a = beta + s_down * (1.0 - beta) / st.sigma
    y_new = a * st.y + s_up * _noise(st.keys[0], 1, cx.d)
    return y_new, [(st.y, st.sigma, True)], st.dprev


def _update_euler_maruyama(cx, st):
    sigma, sigma_next = st.sigma, st.sigma_next
    beta = _radial(st.u, sigma, cx.d, cx.rho)
    w = _noise(st.keys[0], 1, cx.d)
    if cx.spec.get("variant", "ou") == "ou":
        h = 0.5 * (jnp.log1p(sigma * sigma) - jnp.log1p(sigma_next * sigma_next))
        rho_c = jnp.exp(-h)
        a = rho_c * ((1.0 + h) + 2.0 * h * (1.0 + sigma * sigma) * (beta - 1.0) / (sigma * sigma))
        b = jnp.sqrt(1.0 + sigma_next * sigma_next) * jnp.sqrt(2.0 * h)
    else:
        dv = (sigma - sigma_next) * (sigma + sigma_next)
        a = 1.0 + dv * (beta - 1.0) / (sigma * sigma)
        b = jnp.sqrt(dv)
    y_new = jnp.where(st.terminal, beta * st.y, a * st.y + b * w)
    return y_new, [(st.y, sigma, True)], st.dprev


def _update_heun(cx, st):
    sp, d, rho = cx.spec, cx.d, cx.rho
    sigma, sigma_next, terminal = st.sigma, st.sigma_next, st.terminal
    g = jnp.where((sp.get("s_tmin", 0.0) <= sigma) & (sigma <= sp.get("s_tmax", math.inf)),
                  jnp.minimum(sp.get("s_churn", 0.0) / cx.n_steps, math.sqrt(2.0) - 1.0), 0.0)
    sigma_hat = sigma * (1.0 + g)
    y_hat = st.y + sp.get("s_noise", 1.0) * sigma * jnp.sqrt(g * (2.0 + g)) * _noise(
        st.keys[0], 1, d)
    _, n_hat = _unit(y_hat)
    b1 = _radial(n_hat, sigma_hat, d, rho)
    d1 = (1.0 - b1) * y_hat / sigma_hat
    y_pred = y_hat + (sigma_next - sigma_hat) * d1
    _, n_pred = _unit(y_pred)
    s_safe = jnp.where(terminal, 1.0, sigma_next)
    b2 = _radial(n_pred, s_safe, d, rho)
    d2 = (1.0 - b2) * y_pred / s_safe
    y_corr = y_hat + (sigma_next - sigma_hat) * 0.5 * (d1 + d2)
    y_new = jnp.where(terminal, y_pred, y_corr)
    return y_new, [(y_hat, sigma_hat, True), (y_pred, s_safe, ~terminal)], st.dprev


def _update_dpmpp_2m(cx, st):
    sigma, sigma_next, terminal, i = st.sigma, st.sigma_next, st.terminal, st.i
    beta = _radial(st.u, sigma, cx.d, cx.rho)
    den = beta * st.y
    ratio = sigma_next / sigma  # e^{-h}
    h = jnp.log(sigma) - jnp.log(jnp.where(terminal, 1.0, sigma_next))
    h0 = jnp.log(jnp.where(i > 0, cx.sigmas[jnp.maximum(i - 1, 0)], sigma)) - jnp.log(sigma)
    r0 = h0 / jnp.where(terminal, 1.0, h)
    second = (i > 0) & ~terminal
    if bool(cx.spec.get("lower_order_final", False)):
        second = second & (i < cx.n_steps - 1)
    c = 1.0 / (2.0 * jnp.where(second, r0, 1.0))
    dbar = jnp.where(second, (1.0 + c) * den - c * st.dprev * cx.e0, den)
    y_new = ratio * st.y + (1.0 - ratio) * dbar
    return y_new, [(st.y, sigma, True)], den  # D carried as a vector, re-expressed after


def _update_randomized_midpoint(cx, st):
    d, rho, y = cx.d, cx.rho, st.y
    sigma, sigma_next, terminal = st.sigma, st.sigma_next, st.terminal
    k1, k2, k3 = st.keys
    beta = _radial(st.u, sigma, d, rho)
    s2 = sigma * sigma
    t = 0.5 * jnp.log1p(s2)
    t_next = 0.5 * jnp.log1p(sigma_next * sigma_next)
    h = jnp.where(terminal, 1.0, t - t_next)
    uu = h * jax.random.uniform(k3, (), jnp.result_type(float))
    sigma_m = jnp.sqrt(jnp.expm1(2.0 * (t - uu)))
    rho1 = jnp.exp(-uu)
    rho_all = jnp.exp(-h)
    rho2 = rho_all / rho1
    srel = ((beta - 1.0) / s2 + 1.0 / (1.0 + s2)) * y
    n1 = rho1 * jnp.sqrt(-(1.0 + s2) * jnp.expm1(-2.0 * uu)) * _noise(k1, 1, d)
    y_m = rho1 * rho1 * y + 2.0 * rho1 * (1.0 - rho1) * (1.0 + s2) * srel + n1
    _, n_m = _unit(y_m)
    sm_safe = jnp.where(terminal, 1.0, sigma_m)
    beta_m = _radial(n_m, sm_safe, d, rho)
    srel_m = ((beta_m - 1.0) / (sm_safe * sm_safe) + 1.0 / (1.0 + sm_safe * sm_safe)) * y_m
    b2 = rho2 * jnp.sqrt((1.0 + sigma_next * sigma_next) * jnp.expm1(2.0 * (h - uu)))
    y_corr = (rho_all * rho_all * y + 2.0 * h * (1.0 + sigma_next * sigma_next) * srel_m
              + rho2 * rho2 * n1 + b2 * _noise(k2, 2, d))
    y_new = jnp.where(terminal, beta * y, y_corr)
    return y_new, [(y, sigma, True), (y_m, sm_safe, ~terminal)], st.dprev


_UPDATES = {
    "euler": _update_euler,
    "ancestral": _update_ancestral,
    "euler_maruyama": _update_euler_maruyama,
    "heun": _update_heun,
    "dpmpp_2m": _update_dpmpp_2m,
    "randomized_midpoint": _update_randomized_midpoint,
}


def _query_record(queries, last, has_last):
    """Norms, levels, overlaps with the previous query direction and validity of one step's
    queries; returns ``(xis, sigs, ovs, vals, last query direction, any query so far)``."""
    xis, sigs, ovs, vals = [], [], [], []
    prev, prev_ok = last, has_last
    for vec, s, ok in queries:
        dvec, nrm = _unit(vec)
        ov = jnp.where(prev_ok, jnp.sum(dvec * prev), 1.0)
        ok = jnp.asarray(ok, bool)
        xis.append(nrm)
        sigs.append(s)
        ovs.append(ov)
        vals.append(ok)
        prev = jnp.where(ok, dvec, prev)
        prev_ok = prev_ok | ok
    return xis, sigs, ovs, vals, prev, prev_ok


def _step(cx, carry, i):
    """One step of the chain (see :func:`chain_stepper`)."""
    ftype = jnp.result_type(float)
    u, last, dprev, has_last = carry  # |y|, previous query direction, D_{i-1} along e
    active = i < cx.n_steps
    sigma = jnp.where(active, cx.sigmas[i], 1.0)
    sigma_next = jnp.where(active, cx.sigmas[i + 1], 0.5)
    k1, k2, k3 = jax.random.split(jax.random.fold_in(cx.k_steps, i), 3)
    st = _Step(u, u * cx.e0, sigma, sigma_next, sigma_next <= 0, (k1, k2, k3), i, dprev)
    kind = cx.spec.kind
    if kind not in _UPDATES:  # pragma: no cover - guarded by scalar_spec
        raise ValueError(f"unknown kind {kind}")
    y_new, queries, d_new = _UPDATES[kind](cx, st)
    xis, sigs, ovs, vals, prev, prev_ok = _query_record(queries, last, has_last)
    # re-express in the next frame: e' = y'/|y'|, the last query direction as (cos, sin) in it
    e_new, u_new = _unit(y_new)
    c = jnp.sum(prev * e_new)
    last_new = jnp.stack([c, jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))]
                         + [jnp.zeros((), ftype)] * (_FRAME - 2))
    # deterministic ray (DPM-Solver++ 2M): D_i lies along e'
    dprev_new = jnp.sum(d_new * e_new) if kind == "dpmpp_2m" else dprev
    out = (jnp.stack(xis), jnp.stack(sigs), jnp.stack(ovs), jnp.stack(vals) & active)
    new_carry = (u_new, last_new, dprev_new, prev_ok)
    new_carry = jax.tree.map(lambda a, b: jnp.where(active, a, b), new_carry, carry)
    return new_carry, out


def chain_stepper(spec: ScalarSampler, sigmas, key, d, rho=1.0, x0_norm=None, num_active=None):
    """``(init, step, num_steps)`` of one scalar chain: ``step(carry, i) -> (carry, out)`` with
    ``out = (xi, sigma, overlap, valid)``, arrays ``(slots,)`` for the queries of step ``i``.

    Lets a caller consume the queries as they are made (e.g. a ``while_loop`` over the active
    steps only) instead of storing a whole :class:`Trajectory`; the draws of step ``i`` depend on
    ``(key, i)`` only, so runs on different grids share them (common random numbers).
    """
    ftype = jnp.result_type(float)
    sigmas = jnp.asarray(sigmas, ftype)
    static_steps = sigmas.shape[0] - 1
    n_steps = static_steps
    if num_active is not None:
        n_steps = jnp.asarray(num_active, jnp.int32)
    k_init, k_steps = jax.random.split(key)
    xi0 = sigmas[0] * jnp.sqrt(2.0 * jax.random.gamma(k_init, d / 2.0, (), ftype))
    if x0_norm is not None:
        xi0 = jnp.asarray(x0_norm, ftype)
    e0 = jnp.zeros((_FRAME,), ftype).at[0].set(1.0)
    cx = _Ctx(spec, d, rho, sigmas, n_steps, e0, k_steps)
    init = (xi0, e0, jnp.zeros((), ftype), jnp.zeros((), bool))
    return init, (lambda carry, i: _step(cx, carry, i)), static_steps


def simulate(sampler, sigmas, key, d, num_chains: int, rho=1.0, *, x0_norm=None):
    """Run ``num_chains`` chains of ``sampler`` against the reference oracle in scalar form.

    **Arguments:**
    - ``sampler``: a ``js.samplers`` instance, a name or a :class:`ScalarSampler`.
    - ``sigmas``: decreasing grid ``(N + 1,)`` (may be traced, e.g. random log-offsets).
    - ``key``: chain i uses ``fold_in(key, i)``; ``d``: dimension (number, or traced with d >= 60);
      ``rho``: radius scale (``r = rho sqrt(d)``). Initial point ``y_0 = sigmas[0] z``, or of
      norms ``x0_norm`` ``(num_chains,)`` when given (e.g. to couple with a full-vector run).

    **Returns:** ``(Trajectory, final_norms)``; trajectory arrays ``(num_chains, slots * N)`` with
    ``valid`` marking real queries (Heun and the randomized midpoint have no second query on the
    step into sigma = 0).
    """
    spec = scalar_spec(sampler)
    if not isinstance(d, (jax.Array, jax.core.Tracer)):
        d = float(d)
        if d < 3:
            raise ValueError(f"The scalar reduction needs d >= 3, got {d}.")
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_chains))
    if x0_norm is None:
        return jax.vmap(lambda k: _chain(spec, sigmas, k, d, rho))(keys)
    x0_norm = jnp.broadcast_to(jnp.asarray(x0_norm, jnp.result_type(float)), (num_chains,))
    return jax.vmap(lambda k, x0: _chain(spec, sigmas, k, d, rho, x0))(keys, x0_norm)


__all__ = ["KINDS", "ScalarSampler", "SCALAR_REDUCTIONS", "SCALAR_NAMES", "register_scalar_reduction",
           "scalar_spec", "num_queries", "Trajectory", "simulate"]
