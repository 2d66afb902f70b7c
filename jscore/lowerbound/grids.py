"""Level grids and the common random numbers of the lower-bound scaling sweep.

The lowest layer of the sweep (:mod:`jscore.lowerbound.scaling` and
:mod:`jscore.lowerbound.general` both import it; it imports neither): the level range
``[SIGMA_MIN, SIGMA_MAX]``, the randomly shifted rank-1 lattices (:func:`lattice_points`), the
geometric levels with a random log-offset (:func:`geometric_levels`), the jitted scalar chain
bodies and :class:`SamplerDraws` (one sampler's draws at one d, for any schedule family).

Schedules (docs/experiments/lowerbound_sweep.md, "Any sampler, any schedule"). ``schedule=None``
or ``"geometric"``: K geometric levels ``sigma_max exp(-(k + u) Delta_K)``, ``Delta_K =
log(sigma_max/sigma_min)/K``, with the log-offset ``u = {v + c_K(R)}`` (:meth:`SamplerDraws.offsets`).
This grid is periodic in log sigma with period ``Delta_K``, so moving the hidden critical scale
``h`` of the instance is moving ``u``: the log-offset *is* the hidden scale (modulo one
log-step; ``v`` is its phase relative to the grid), and these are the numbers of the sweep before
schedules existed, bit for bit. Any other family (:func:`jscore.lowerbound.schedule_families.family`)
has a fixed grid ``G = family.grid(K, SIGMA_MIN, SIGMA_MAX)``; the hidden scale enters as a
per-chain log-shift (as in :class:`~jscore.lowerbound.schedule_certificate.GridDraws`): chain n
runs ``G exp(-s_n)``, ``s_n = log h_n - log sigma_c(R_n)``, ``log h_n = log SIGMA_MIN + v_n
log(SIGMA_MAX/SIGMA_MIN)`` (log-uniform on the range, stratified by the lattice coordinate v).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .informative import effective_log_m_py
from .scalar import scalar_spec

SIGMA_MIN, SIGMA_MAX = 0.02, 20.0
_TRACED_MIN_D = 60.0  # traced d uses the Debye regime directly (accurate to 1e-15 from d = 60)


# ----------------------------------------------------------------------------- jit plumbing
_JIT: dict = {}


def _call(name, body, d, *args, static=()):
    """Call ``body(d, *args)`` jitted; d traced for d >= 60 (one compile for a sweep)."""
    big = float(d) >= _TRACED_MIN_D
    key = (name, None if big else float(d), static, jax.config.jax_enable_x64)
    if key not in _JIT:
        if big:
            _JIT[key] = jax.jit(lambda dd, *a: body(dd, *a, *static))
        else:
            _JIT[key] = jax.jit(lambda *a: body(float(d), *a, *static))
    f = _JIT[key]
    if big:
        return f(jnp.asarray(float(d), jnp.result_type(float)), *args)
    return f(*args)


def geometric_levels(K, u, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX):
    """``sigma_k = sigma_max exp(-(k - 1 + u) Delta)``, ``k = 1..K``, ``Delta = log(max/min)/K``."""
    delta = math.log(sigma_max / sigma_min) / K
    k = np.arange(K)
    return sigma_max * np.exp(-(k[None, :] + np.asarray(u)[:, None]) * delta)


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def lattice_points(n: int, shift):
    """Rank-1 (Fibonacci-type) lattice of ``n`` points in ``[0, 1)^2`` with a random shift.

    Points ``({i/n + s_1}, {i g/n + s_2})``, ``g`` the integer nearest ``n (sqrt 5 - 1)/2``
    coprime to ``n``. Each shifted lattice is an unbiased estimate of a 2-D integral
    (randomised quasi-Monte Carlo); independent shifts are independent replicates. ``shift``:
    ``(2,)``. Returns ``(n, 2)`` host floats.
    """
    n = int(n)
    g = max(1, int(round(n * _GOLDEN)))
    while math.gcd(g, n) != 1:
        g += 1
    i = np.arange(n)
    pts = np.stack([i / n, (i * g % n) / n], axis=1) + np.asarray(shift, float)[None, :]
    return pts - np.floor(pts)


def _sides_chain(sig, log_m, key, d, K, eps, p, width, spec):
    """One trajectory's ``(p_lower, p_upper, levels_in_band)`` on the padded grid ``sig``
    ``(k_max + 1,)`` (K active levels, then zeros).

    One ``fori_loop`` over the K active steps (no padding work): each step's queries get their
    two sides (:func:`~jscore.lowerbound.informative.informative_sides`) at the trajectory's own
    rate; ``p_upper`` is the union bound ``min(1, sum_k pi_k^hi)``, ``p_lower`` the cap-merged
    single-codeword model on the lower sides (docs/certified_bound.md §2).
    """
    from .informative import informative_sides
    from .scalar import chain_stepper
    from .trajectory import critical_band

    ftype = jnp.result_type(float)
    band_lo, band_hi = critical_band(d, width)
    half_w = 0.5 * width
    init, step, _ = chain_stepper(spec, sig, key, d, 1.0, None, K)
    ninf = jnp.asarray(-jnp.inf, ftype)

    def body(i, c):
        chain, s_up, total, cur, prev_t, last_lvl, nlev = c
        chain, (xis, sigs, ovs, vals) = step(chain, i)
        sd = informative_sides(xis, sigs, d, None, eps, p, 1.0, log_m=log_m)
        for j in range(xis.shape[0]):
            ok = vals[j]
            s_up = s_up + jnp.where(ok, sd.upper[j], 0.0)
            tt = jnp.clip(sd.t_lower[j], 1e-12, 1.0)
            ratio = jnp.minimum(tt, prev_t) / jnp.maximum(tt, prev_t)
            empty = (sd.t_lower[j] >= 1.0) | (prev_t >= 1.0)
            merge = (ovs[j] >= ratio) | empty | jnp.isinf(cur) & jnp.isinf(total)
            li = jnp.where(ok, sd.log_intensity_lower[j], -jnp.inf)
            new_total = jnp.where(merge, total, jnp.logaddexp(total, cur))
            new_cur = jnp.where(merge, jnp.maximum(cur, li), li)
            total = jnp.where(ok, new_total, total)
            cur = jnp.where(ok, new_cur, cur)
            prev_t = jnp.where(ok, tt, prev_t)
            ls = jnp.log(jnp.maximum(sigs[j], 1e-300))
            inb = ok & (sigs[j] >= band_lo) & (sigs[j] <= band_hi)
            take = inb & (jnp.abs(last_lvl - ls) >= half_w)
            last_lvl = jnp.where(take, ls, last_lvl)
            nlev = nlev + take.astype(jnp.int32)
        return chain, s_up, total, cur, prev_t, last_lvl, nlev

    c0 = (init, jnp.zeros((), ftype), ninf, ninf, jnp.ones((), ftype),
          jnp.asarray(jnp.inf, ftype), jnp.zeros((), jnp.int32))
    _, s_up, total, cur, _, _, nlev = jax.lax.fori_loop(0, K, body, c0)
    p_hi = jnp.minimum(s_up, 1.0)
    p_lo = jnp.minimum(-jnp.expm1(-jnp.exp(jnp.minimum(jnp.logaddexp(total, cur), 700.0))), p_hi)
    return p_lo, p_hi, nlev


def _sides_body(d, K, u, log_m, keys, eps, p, width, spec, k_max):
    """Per trajectory ``(p_lower, p_upper, levels_in_band)`` on K geometric levels
    ``sigma_max exp(-(k + u) Delta)``, ``Delta = log(sigma_max/sigma_min)/K`` (:func:`_sides_chain`)."""
    ftype = jnp.result_type(float)
    delta = math.log(SIGMA_MAX / SIGMA_MIN) / K.astype(ftype)
    kk = jnp.arange(k_max + 1, dtype=ftype)

    def one(u, log_m, key):
        sig = jnp.where(kk < K, SIGMA_MAX * jnp.exp(-(kk + u) * delta), 0.0)
        return _sides_chain(sig, log_m, key, d, K, eps, p, width, spec)

    return jax.vmap(one)(u, log_m, keys)


def _grid_sides_body(d, K, log_sig, shift, log_m, keys, eps, p, width, spec, k_max):
    """:func:`_sides_body` on an explicit grid: chain ``n`` runs the levels
    ``exp(log_sig[k] - shift[n])`` for ``k < K`` (``log_sig`` ``(k_max + 1,)``, entries from K on
    ignored; ``shift``, ``log_m`` ``(n,)``). Returns ``(p_lower, p_upper, levels)``, each ``(n,)``."""
    kk = jnp.arange(k_max + 1)

    def one(s, log_m, key):
        sig = jnp.where(kk < K, jnp.exp(log_sig - s), 0.0)
        return _sides_chain(sig, log_m, key, d, K, eps, p, width, spec)

    return jax.vmap(one)(shift, log_m, keys)


def resolve_schedule(schedule):
    """``None`` for the geometric random-offset grid (``None`` or ``"geometric"``), else a family
    object with ``grid(K, sigma_min, sigma_max)`` (a spec string for
    :func:`~jscore.lowerbound.schedule_families.family`, or such an object). A ``user`` grid has
    a fixed K and cannot be swept: ValueError."""
    from .schedule_families import User, family

    if schedule is None:
        return None
    if isinstance(schedule, str):
        if schedule.strip() == "geometric":
            return None
        try:
            fam = family(schedule)
        except ValueError as e:
            raise ValueError(f"`schedule` {schedule!r}: {e}") from None
    elif callable(getattr(schedule, "grid", None)):
        fam = schedule
    else:
        raise TypeError(f"`schedule` must be a family spec such as 'karras:7' or a family object "
                        f"with a .grid(K, sigma_min, sigma_max) method, got {schedule!r}.")
    if isinstance(fam, User):
        raise ValueError(f"`schedule` {schedule!r}: a user grid has a fixed number of levels, so "
                         "there is no K* to search; use `jscore lowerbound schedule` "
                         "(js.lowerbound.schedule_certificate) for a fixed grid, or a family "
                         "such as 'karras:7'.")
    return fam


def schedule_label(schedule) -> str:
    """The text form of a schedule for results and configs (``"geometric"`` for ``None``)."""
    if schedule is None:
        return "geometric"
    return schedule.strip() if isinstance(schedule, str) else repr(schedule)


class Draws:
    """What both paths of the sweep share for one sampler at one d: the lattice of (v, rate)
    points and chain keys (:meth:`_draw_lattice`), the per-point grids of either kind of schedule
    and the per-K cache. ``__call__(K)`` returns ``(lower, upper, levels)`` (see
    :class:`SamplerDraws`); a path implements ``_sides(K) -> (p_lower, p_upper, levels)`` per point.
    Attributes a path sets before :meth:`_draw_lattice`: ``family, d, eps, p, width, k_max,
    n_points, n_reps``."""

    path = ""

    def _draw_lattice(self, key, d, n_points, n_reps, rate_lo, rate_hi):
        """Set ``v, rate, log_m, log_centre`` (each ``(n_reps n_points,)``), ``keys`` and empty caches."""
        shifts = np.asarray(jax.random.uniform(jax.random.fold_in(key, 0), (n_reps, 2)),
                            np.float64)
        pts = np.concatenate([lattice_points(n_points, sh) for sh in shifts])  # (R n, 2)
        self.v = pts[:, 0]
        self.rate = rate_lo + (rate_hi - rate_lo) * pts[:, 1]
        self.log_m = np.array([effective_log_m_py(d, r) for r in self.rate])
        self.log_centre = np.log(SIGMA_MAX) + 0.5 * np.log(np.expm1(2.0 * self.log_m / d))
        self.keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, 1), i))(
            jnp.arange(self.v.size))
        self.cache: dict = {}
        self.points: dict = {}

    def offsets(self, K):
        """Log-offsets ``u = {v + c_K(R)}`` for K levels, ``c_K(R) = log(sigma_max/sigma_c(R))/Delta_K``.

        For each rate ``u`` is uniform on [0, 1) (so every K is estimated without bias), and the
        grid's phase relative to the window centre ``sigma_c(R)`` is ``v`` itself: the lattice
        coordinate that the success mostly depends on is stratified, for every K alike.
        """
        delta = math.log(SIGMA_MAX / SIGMA_MIN) / int(K)
        c = self.log_centre / delta
        return np.mod(self.v + c, 1.0)

    def log_hidden_scale(self):
        """``log h = log SIGMA_MIN + v log(SIGMA_MAX/SIGMA_MIN)`` per point ``(R n,)``: the hidden
        critical scale, log-uniform on the level range (stratified by v)."""
        return math.log(SIGMA_MIN) + self.v * math.log(SIGMA_MAX / SIGMA_MIN)

    def hidden_shift(self):
        """Per-point log-shift ``s = log h - log sigma_c(R)`` ``(R n,)``: chain n runs ``G e^{-s_n}``."""
        log_c = math.log(SIGMA_MAX) - self.log_centre  # log sigma_c at the point's effective rate
        return self.log_hidden_scale() - log_c

    def family_log_grid(self, K):
        """``log family.grid(K, SIGMA_MIN, SIGMA_MAX)`` ``(K,)`` (a non-geometric schedule only)."""
        return np.log(np.asarray(self.family.grid(int(K), SIGMA_MIN, SIGMA_MAX), np.float64))

    def point_grids(self, K):
        """Every point's K levels ``(R n, K)`` (no final 0), for either kind of schedule."""
        if self.family is None:
            return geometric_levels(K, self.offsets(K))
        return np.exp(self.family_log_grid(K)[None, :] - self.hidden_shift()[:, None])

    def _finish(self, K, lo, hi, lev):
        lo, hi = np.asarray(lo), np.asarray(hi)
        shape = (self.n_reps, self.n_points)
        out = (lo.reshape(shape).mean(1), hi.reshape(shape).mean(1), float(np.mean(np.asarray(lev))))
        self.points[K] = (lo, hi)
        self.cache[K] = out
        return out

    def __call__(self, K):
        K = int(K)
        if K in self.cache:
            return self.cache[K]
        if K > self.k_max:
            nan = np.full(self.n_reps, np.nan)
            return nan, nan, math.nan
        return self._finish(K, *self._sides(K))

    def _sides(self, K):
        raise NotImplementedError


class SamplerDraws(Draws):
    """The common random numbers of one sampler at one d: ``n_reps`` independently shifted
    lattices of ``n_points`` (v, rate) pairs and one chain key per point, reused for every K.
    ``__call__(K)`` returns ``(lower, upper, levels)``: per replicate ``(n_reps,)`` the mean of
    ``p_lower`` and of ``p_upper`` over its points, and the mean level count; the per-point
    values are kept in ``points[K] = (p_lower (R n,), p_upper (R n,))``.

    ``schedule``: ``None``/``"geometric"`` (K levels with the log-offset ``u = {v + c_K(R)}``,
    :meth:`offsets`), or a family (spec or object, :func:`resolve_schedule`): the fixed grid
    ``family.grid(K, SIGMA_MIN, SIGMA_MAX)`` shifted per chain by the hidden scale
    (:meth:`hidden_shift`). See the module docstring."""


    path = "scalar"

    def __init__(self, name, d, eps, p, width, *, key, n_points=64, n_reps=8, k_max=1024,
                 rate_lo=0.15, rate_hi=0.45, schedule=None):
        self.spec = scalar_spec(name)
        self.family = resolve_schedule(schedule)
        self.d, self.eps, self.p, self.width, self.k_max = float(d), eps, p, width, int(k_max)
        self.n_points, self.n_reps = int(n_points), int(n_reps)
        self._draw_lattice(key, d, n_points, n_reps, rate_lo, rate_hi)

    def _sides(self, K):
        """Per point ``(p_lower, p_upper, levels)`` of the scalar reduction: one padded program
        (K traced, levels padded to ``k_max``), run on blocks of :func:`point_block` points so
        that every point count of a sweep shares one compilation."""
        ftype = jnp.result_type(float)
        eps, p, width = (jnp.asarray(x, ftype) for x in (self.eps, self.p, self.width))
        K_arr = jnp.asarray(K, jnp.int32)
        if self.family is None:
            per_point = (self.offsets(K), self.log_m)
        else:
            log_sig = np.zeros(self.k_max + 1)
            log_sig[:K] = self.family_log_grid(K)
            log_sig = jnp.asarray(log_sig, ftype)
            per_point = (self.hidden_shift(), self.log_m)

        def run(first, log_m, keys):
            if self.family is None:
                return _call("sides", _sides_body, self.d, K_arr, jnp.asarray(first, ftype),
                             jnp.asarray(log_m, ftype), keys, eps, p, width,
                             static=(self.spec, self.k_max))
            return _call("grid_sides_padded", _grid_sides_body, self.d, K_arr, log_sig,
                         jnp.asarray(first, ftype), jnp.asarray(log_m, ftype), keys, eps, p,
                         width, static=(self.spec, self.k_max))

        return _in_blocks(run, *per_point, self.keys)


POINT_BLOCK = 512  # the default sweep's 64 offsets x 8 replicates (x1 .. x4 at small K)


def point_block(n: int) -> int:
    """Points per compiled call for ``n`` points: ``POINT_BLOCK``, or the power of two at or
    above ``n`` when that is smaller (small test sweeps are not padded to 512)."""
    return min(POINT_BLOCK, 1 << max(0, int(n) - 1).bit_length())


def _in_blocks(run, *per_point):
    """``run(*block)`` on consecutive blocks of :func:`point_block` points of the arrays
    ``per_point`` (each ``(n, ...)``; the last block padded by repeating its first point, the
    padding dropped), outputs concatenated: each point's result does not depend on the blocks."""
    n = len(per_point[0])
    b = point_block(n)
    outs = []
    for start in range(0, n, b):
        idx = np.arange(start, start + b)
        idx = np.where(idx < n, idx, start)
        outs.append(run(*(x[idx] for x in per_point)))
    m = [np.concatenate([np.asarray(o[j]) for o in outs])[:n] for j in range(len(outs[0]))]
    return tuple(m)


def scale_bins(draws, K, n_scales=8):
    """Per hidden-scale position at K levels: the ``n_scales`` equal bins of the lattice
    coordinate v (log h for a fixed grid, bin j covering ``log h`` in ``log SIGMA_MIN + [j, j+1)
    L / n_scales``; the phase within one log-step for the geometric grid), each bin's mean of
    ``p_lower`` and of ``p_upper`` over all its points (all replicates): ``(lower (J,), upper (J,))``."""
    draws(K)
    lo, hi = draws.points[int(K)]
    b = np.minimum((np.asarray(draws.v) * n_scales).astype(int), n_scales - 1)
    cnt = np.bincount(b, minlength=n_scales)
    if np.any(cnt == 0):
        raise ValueError(f"`n_scales` = {n_scales} leaves a hidden-scale bin without points "
                         f"({draws.v.size} points); use at most {draws.n_points} bins.")
    return np.bincount(b, lo, minlength=n_scales) / cnt, np.bincount(b, hi, minlength=n_scales) / cnt


def worst_over_scales(draws, K, n_scales=8, skip_top=False):
    """The worst case over the hidden scale at K levels: the minimum over the bins of
    :func:`scale_bins` (``skip_top``: without the top bin, hidden scales within a factor
    ``(SIGMA_MAX/SIGMA_MIN)^(1/n_scales)`` of ``SIGMA_MAX``, where a fixed grid starts at a noise
    level comparable to the data's scale). Returns ``(min lower, min upper, bin of the lower
    minimum)``. A minimum of noisy estimates: biased low by Monte-Carlo error."""
    mlo, mhi = scale_bins(draws, K, n_scales)
    if skip_top and n_scales > 1:
        mlo, mhi = mlo[:-1], mhi[:-1]
    return float(mlo.min()), float(mhi.min()), int(np.argmin(mlo))


__all__ = ["SIGMA_MIN", "SIGMA_MAX", "geometric_levels", "lattice_points", "Draws",
           "SamplerDraws", "resolve_schedule", "schedule_label", "scale_bins", "worst_over_scales"]
