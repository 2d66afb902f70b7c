"""Denoising score matching for denoiser networks (EDM loss), with EMA weights and checkpoints.

Loss (Karras et al. 2022, EDM): for clean ``x0``, ``sigma ~ p(sigma)`` and ``n ~ N(0, I)``,

    L = E[ lambda(sigma) |D(x0 + sigma n, sigma) - x0|^2 / d ],  lambda = (sigma^2 + sd^2) / (sigma sd)^2,

``sd = sigma_data`` (the model's). At the zero-output initialisation of
:class:`jscore.nets.DenoiserMLP` and data of per-coordinate variance ``sd^2`` the loss is 1.
``p(sigma)`` is log-normal, ``log sigma ~ N(p_mean, p_std^2)`` (EDM: -1.2, 1.2), or log-uniform on
``[sigma_min, sigma_max]``.

Optimiser: ``clip_by_global_norm(grad_clip)`` then ``adamw`` with a linear warm-up to
``learning_rate`` and a cosine decay to ``final_lr_ratio * learning_rate`` at ``num_steps``; weight
decay applies to weight matrices only. EMA of the weights with decay ``min(ema_decay,
(1 + t) / (10 + t))`` at step t.

Randomness: step t uses ``fold_in(stream(key, TRAIN), t)`` only, so a run resumed from a
checkpoint continues exactly the same loss curve. Steps run in jitted chunks of ``chunk_size``
(``lax.scan``); the host loop over chunks shows a tqdm bar and writes atomic checkpoints every
``checkpoint_every`` chunks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import pathlib
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import nets
from ._checks import check_option, check_positive_int, concrete
from .env import versions
from .seeds import TRAIN, as_key, stream
from .store import atomic_write
from .targets.base import AbstractTarget

_SIGMA_DISTS = ("lognormal", "loguniform")
CHECKPOINT_JSON = "train.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """All training settings (recorded in checkpoints). Only ``batch_size``, ``sigma_dist`` and
    ``chunk_size`` shape the compiled program; the numeric ones travel as traced :class:`Knobs`."""

    num_steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    final_lr_ratio: float
    weight_decay: float
    grad_clip: float
    ema_decay: float
    sigma_dist: str
    p_mean: float
    p_std: float
    sigma_min: float
    sigma_max: float
    sigma_data: float
    chunk_size: int

    def knobs(self) -> "Knobs":
        """The numeric settings as traced arrays (changing them never recompiles)."""
        f = lambda v: jnp.asarray(v, jnp.result_type(float))  # noqa: E731
        return Knobs(
            learning_rate=f(self.learning_rate), warmup_steps=f(self.warmup_steps),
            num_steps=f(self.num_steps), final_lr_ratio=f(self.final_lr_ratio),
            weight_decay=f(self.weight_decay), grad_clip=f(self.grad_clip),
            ema_decay=f(self.ema_decay), p_mean=f(self.p_mean), p_std=f(self.p_std),
            log_sigma_min=f(math.log(self.sigma_min)), log_sigma_max=f(math.log(self.sigma_max)),
            sigma_data=f(self.sigma_data),
        )


class Knobs(eqx.Module):
    """Numeric training settings as arrays (traced inside the jitted chunk)."""

    learning_rate: Any
    warmup_steps: Any
    num_steps: Any
    final_lr_ratio: Any
    weight_decay: Any
    grad_clip: Any
    ema_decay: Any
    p_mean: Any
    p_std: Any
    log_sigma_min: Any
    log_sigma_max: Any
    sigma_data: Any

    def learning_rate_at(self, count):
        """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then a cosine decay to
        ``final_lr_ratio * learning_rate`` at ``num_steps``."""
        t = jnp.asarray(count, self.learning_rate.dtype)
        warm = self.warmup_steps
        ramp = jnp.minimum(t / jnp.maximum(warm, 1.0), 1.0)
        frac = jnp.clip((t - warm) / jnp.maximum(self.num_steps - warm, 1.0), 0.0, 1.0)
        cosine = self.final_lr_ratio + (1.0 - self.final_lr_ratio) * 0.5 * (1.0 + jnp.cos(math.pi * frac))
        return self.learning_rate * jnp.where(t < warm, ramp, cosine)

    def optimizer(self) -> optax.GradientTransformation:
        """``clip_by_global_norm`` then ``adamw`` (weight decay on weight matrices only)."""
        mask = lambda params: jax.tree.map(lambda a: a.ndim >= 2, params)  # noqa: E731
        return optax.chain(
            optax.clip_by_global_norm(self.grad_clip),
            optax.adamw(self.learning_rate_at, weight_decay=self.weight_decay, mask=mask),
        )


class TrainState(eqx.Module):
    """Trainable arrays, their EMA, the optimiser state and the number of steps done."""

    params: Any
    ema: Any
    opt_state: Any
    step: Any


class FitResult(NamedTuple):
    """``model``: the EMA-weights model; ``losses``: ``(num_steps,)`` per-step training loss."""

    model: Any
    losses: np.ndarray


def sample_sigmas(key, n: int, sigma_dist: str, knobs: Knobs, dtype):
    """``n`` training noise levels from the configured distribution."""
    if sigma_dist == "lognormal":
        return jnp.exp(knobs.p_mean + knobs.p_std * jax.random.normal(key, (n,), dtype))
    u = jax.random.uniform(key, (n,), dtype)
    return jnp.exp(knobs.log_sigma_min + u * (knobs.log_sigma_max - knobs.log_sigma_min))


def edm_loss(model, x0, sigma, noise, sigma_data):
    """Mean over the batch of ``lambda(sigma) |D(x0 + sigma n, sigma) - x0|^2 / d``; x0 ``(B, d)``."""
    x = x0 + sigma[:, None] * noise
    d = jax.vmap(model)(x, sigma)
    weight = (sigma * sigma + sigma_data**2) / (sigma * sigma_data) ** 2
    return jnp.mean(weight * jnp.mean((d - x0) ** 2, axis=-1))


def _draw_batch(data, key, n):
    if isinstance(data, AbstractTarget):
        return data.sample(key, n)
    idx = jax.random.randint(key, (n,), 0, data.shape[0])
    return data[idx]


@eqx.filter_jit
def _run_chunk(state: TrainState, static, data, key, steps, knobs: Knobs, batch_size: int,
               sigma_dist: str):
    """``len(steps)`` optimisation steps in one ``lax.scan``; returns the new state and losses.

    Only shapes and options are static (model architecture, data kind and shape, ``batch_size``,
    ``sigma_dist``, chunk length); every numeric setting in ``knobs`` is traced.
    """
    opt = knobs.optimizer()

    def loss_fn(params, x0, sigma, noise):
        return edm_loss(eqx.combine(params, static), x0, sigma, noise, knobs.sigma_data)

    def body(state, t):
        kt = jax.random.fold_in(key, t)
        kd, ks, kn = jax.random.split(kt, 3)
        x0 = _draw_batch(data, kd, batch_size)
        sigma = sample_sigmas(ks, batch_size, sigma_dist, knobs, x0.dtype)
        noise = jax.random.normal(kn, x0.shape, x0.dtype)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x0, sigma, noise)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        tf = t.astype(x0.dtype)
        decay = jnp.minimum(knobs.ema_decay, (1.0 + tf) / (10.0 + tf)).astype(x0.dtype)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
        return TrainState(params, ema, opt_state, t + 1), loss

    return jax.lax.scan(body, state, steps)


def _prepare_data(data_or_target, dim):
    if isinstance(data_or_target, AbstractTarget):
        if data_or_target.dim != dim:
            raise ValueError(
                f"The target has dim {data_or_target.dim} but the model has dim {dim}."
            )
        return data_or_target
    try:
        data = jnp.asarray(data_or_target, jnp.result_type(float))
    except (TypeError, ValueError):
        raise TypeError(
            "`data_or_target` must be a jscore target or an (N, d) array of data, got "
            f"{type(data_or_target).__name__}."
        ) from None
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] != dim:
        raise ValueError(
            f"Training data must have shape (N, {dim}) with N >= 1 to match the model's dim, got "
            f"{data.shape}."
        )
    v = concrete(data)
    if v is not None and not np.all(np.isfinite(v)):
        raise ValueError("Training data contains NaN or inf values; clean it before training.")
    return data


def _make_config(model, num_steps, batch_size, learning_rate, warmup_steps, final_lr_ratio,
                 weight_decay, grad_clip, ema_decay, sigma_dist, p_mean, p_std, sigma_min,
                 sigma_max, sigma_data, chunk_size) -> TrainConfig:
    num_steps = check_positive_int("num_steps", num_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    chunk_size = check_positive_int("chunk_size", min(chunk_size, num_steps))
    if warmup_steps is None:
        warmup_steps = min(1000, num_steps // 10)
    warmup_steps = check_positive_int("warmup_steps", warmup_steps, 0)
    check_option("sigma_dist", sigma_dist, _SIGMA_DISTS)
    if sigma_data is None:
        sigma_data = getattr(model, "sigma_data", None)
        if sigma_data is None:
            raise ValueError("The model has no `sigma_data`; pass `sigma_data=` to fit.")

    def pos(name, v, lo=0.0, strict=True):
        v = float(v)
        if not math.isfinite(v) or (v <= lo if strict else v < lo):
            raise ValueError(f"`{name}` must be finite and {'>' if strict else '>='} {lo}, got {v}.")
        return v

    learning_rate = pos("learning_rate", learning_rate)
    final_lr_ratio = pos("final_lr_ratio", final_lr_ratio, strict=False)
    weight_decay = pos("weight_decay", weight_decay, strict=False)
    grad_clip = pos("grad_clip", grad_clip)
    ema_decay = float(ema_decay)
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must lie in [0, 1), got {ema_decay}.")
    sigma_min, sigma_max = pos("sigma_min", sigma_min), pos("sigma_max", sigma_max)
    if sigma_dist == "loguniform" and not sigma_min < sigma_max:
        raise ValueError(f"Need sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
    p_std = pos("p_std", p_std)
    return TrainConfig(num_steps, batch_size, learning_rate, warmup_steps, final_lr_ratio,
                       weight_decay, grad_clip, ema_decay, sigma_dist, float(p_mean), p_std,
                       sigma_min, sigma_max, pos("sigma_data", sigma_data), chunk_size)


def _model_meta(model) -> dict:
    hp = model.hyperparams() if hasattr(model, "hyperparams") else None
    return {"class": type(model).__name__, "hyperparams": hp}


def _key_fingerprint(key) -> str:
    data = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def _data_fingerprint(data) -> str:
    if isinstance(data, AbstractTarget):
        leaves = [np.asarray(x) for x in jax.tree.leaves(eqx.filter(data, eqx.is_array))]
        h = hashlib.sha256(type(data).__name__.encode())
    else:
        leaves = [np.asarray(data)]
        h = hashlib.sha256(b"array")
    for a in leaves:
        h.update(str(a.shape).encode() + str(a.dtype).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _save_train_checkpoint(directory: pathlib.Path, state, losses, meta: dict) -> None:
    """Atomic: write ``train-<step>.eqx``, then ``train.json`` naming it, then drop older files."""
    step = int(meta["step"])
    name = f"train-{step:09d}.eqx"
    data = nets.serialise((state, losses))
    atomic_write(directory / name, data)
    meta = dict(meta, file=name, sha256=hashlib.sha256(data).hexdigest(), format=nets.FORMAT,
                format_version=nets.FORMAT_VERSION, kind="train", versions=versions())
    atomic_write(directory / CHECKPOINT_JSON, json.dumps(meta, indent=2, sort_keys=True))
    for old in directory.glob("train-*.eqx"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _load_train_checkpoint(directory: pathlib.Path, like, expect: dict):
    jp = directory / CHECKPOINT_JSON
    try:
        meta = json.loads(jp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Training checkpoint {jp} is corrupt (invalid JSON: {e}).") from None
    if not isinstance(meta, dict) or meta.get("kind") != "train" or meta.get("format") != nets.FORMAT:
        raise ValueError(f"{jp} is not a jscore training checkpoint.")
    diff = [k for k in expect if meta.get(k) != expect[k]]
    if diff:
        detail = "; ".join(f"{k}: saved {meta.get(k)!r} vs now {expect[k]!r}" for k in diff)
        raise ValueError(
            f"The checkpoint in {directory} was written by a different training run ({detail}). "
            "Use a fresh `checkpoint_dir` or pass resume=False to start over."
        )
    path = directory / str(meta.get("file", ""))
    if not path.is_file():
        raise ValueError(f"Training checkpoint {jp} names {path.name}, which is missing.")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ValueError(f"Training checkpoint {path} is corrupt: SHA-256 mismatch with {jp.name}.")
    state, losses = nets.deserialise(data, like, what=f"training checkpoint {path}")
    return state, losses, int(meta["step"])


def fit(
    model,
    data_or_target,
    key,
    *,
    num_steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    warmup_steps: int | None = None,
    final_lr_ratio: float = 0.01,
    weight_decay: float = 1e-4,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    sigma_dist: str = "lognormal",
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    sigma_data: float | None = None,
    chunk_size: int = 100,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    resume: bool = True,
    progress: bool = False,
    callback: Callable | None = None,
) -> FitResult:
    """Train the denoiser ``model`` by denoising score matching (EDM loss, see module docstring).

    **Arguments:**
    - ``model``: an Equinox denoiser ``D(x, sigma)`` (e.g. :class:`jscore.nets.DenoiserMLP`);
      its inexact arrays are trained.
    - ``data_or_target``: a jscore target (fresh exact samples each step) or an ``(N, d)`` array
      (minibatches drawn uniformly with replacement).
    - ``key``: PRNG key; step t uses ``fold_in(stream(key, TRAIN), t)``.
    - optimiser/EMA/sigma-distribution settings as named; ``warmup_steps`` defaults to
      ``min(1000, num_steps // 10)``; ``sigma_data`` defaults to ``model.sigma_data``.
    - ``chunk_size``: steps per jitted ``lax.scan`` chunk (the tqdm bar advances per chunk).
    - ``checkpoint_dir``: write an atomic checkpoint there every ``checkpoint_every`` chunks and
      at the end (plus ``model.eqx`` with the EMA model for jscore networks). With
      ``resume=True`` an existing checkpoint of the same run (same model, data, key and
      settings; else ``ValueError``) is loaded and training continues from its step, giving
      exactly the result of an uninterrupted run.
    - ``progress``: show a tqdm bar over chunks. ``callback(step, chunk_losses)`` is called on the
      host after each chunk (and after its checkpoint).

    **Returns:** :class:`FitResult` ``(model, losses)``: the EMA model and the ``(num_steps,)``
    loss history (float64 NumPy).
    """
    key = as_key(key)
    dim = _check_model(model)
    data = _prepare_data(data_or_target, dim)
    cfg = _make_config(model, num_steps, batch_size, learning_rate, warmup_steps, final_lr_ratio,
                       weight_decay, grad_clip, ema_decay, sigma_dist, p_mean, p_std, sigma_min,
                       sigma_max, sigma_data, chunk_size)
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)

    params, static = eqx.partition(model, eqx.is_inexact_array)
    knobs = cfg.knobs()
    opt_state = knobs.optimizer().init(params)
    state = TrainState(params, params, opt_state, jnp.zeros((), jnp.int32))
    losses = jnp.full((cfg.num_steps,), jnp.nan, jnp.float32)
    directory, expect, state, losses, done = _open_checkpoint(
        checkpoint_dir, resume, model, cfg, key, data, state, losses)
    state, losses = _train_chunks(state, losses, done, static, data, stream(key, TRAIN), knobs,
                                  cfg, directory, expect, checkpoint_every, progress, callback)
    ema_model = eqx.combine(state.ema, static)
    if directory is not None and type(ema_model).__name__ in nets.MODELS:
        nets.save(directory / "model.eqx", ema_model)
    return FitResult(ema_model, np.asarray(losses, np.float64))


def _check_model(model) -> int:
    """The data dimension of ``model``: a callable Equinox module with an integer ``dim``."""
    if not isinstance(model, eqx.Module) or not callable(model):
        raise TypeError(f"`model` must be a callable Equinox module D(x, sigma), got {type(model).__name__}.")
    dim = getattr(model, "dim", None)
    if not isinstance(dim, numbers.Integral):
        raise TypeError("`model` must have an integer `dim` (the data dimension).")
    return int(dim)


def _open_checkpoint(checkpoint_dir, resume, model, cfg, key, data, state, losses):
    """``(directory, expect, state, losses, done)``: the checkpoint folder (created; None without
    one), the metadata a checkpoint of this run must match, and the state, losses and steps done,
    loaded from an existing checkpoint when ``resume``."""
    if checkpoint_dir is None:
        return None, {}, state, losses, 0
    directory = pathlib.Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    expect = {
        "model": _model_meta(model),
        "train_config": dataclasses.asdict(cfg),
        "key": _key_fingerprint(key),
        "data": _data_fingerprint(data),
    }
    done = 0
    if resume and (directory / CHECKPOINT_JSON).exists():
        state, losses, done = _load_train_checkpoint(directory, (state, losses), expect)
    return directory, expect, state, losses, done


def _train_chunks(state, losses, done, static, data, train_key, knobs, cfg, directory, expect,
                  checkpoint_every, progress, callback):
    """Run the chunks from step ``done`` on (one jitted scan each), checkpointing every
    ``checkpoint_every`` chunks and at the end; returns ``(state, losses)``."""
    bounds = list(range(0, cfg.num_steps, cfg.chunk_size)) + [cfg.num_steps]
    chunks = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if a >= done]
    if done and done not in bounds:
        raise ValueError(
            f"The checkpoint is at step {done}, not at a chunk boundary of chunk_size="
            f"{cfg.chunk_size}; resume with the chunk size it was written with."
        )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(bounds) - 1, initial=len(bounds) - 1 - len(chunks), desc="train",
                   unit="chunk")
    try:
        for j, (a, b) in enumerate(chunks):
            steps = jnp.arange(a, b, dtype=jnp.int32)
            state, chunk_losses = _run_chunk(state, static, data, train_key, steps, knobs,
                                              cfg.batch_size, cfg.sigma_dist)
            losses = losses.at[a:b].set(chunk_losses.astype(jnp.float32))
            done = b
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(jnp.mean(chunk_losses)):.4f}")
            last = b == cfg.num_steps
            if directory is not None and ((j + 1) % checkpoint_every == 0 or last):
                _save_train_checkpoint(directory, state, losses, dict(expect, step=done))
            if callback is not None:
                callback(done, np.asarray(chunk_losses))
    finally:
        if bar is not None:
            bar.close()
    return state, losses

__all__ = ["fit", "FitResult", "TrainConfig", "Knobs", "TrainState", "edm_loss", "sample_sigmas"]
