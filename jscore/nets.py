"""Equinox score networks, parameterised as EDM-preconditioned denoisers, and their checkpoints.

:class:`DenoiserMLP` is ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)`` (Karras et al. 2022,
EDM, Table 1) with

    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),   c_noise = log(sigma) / 4,

``sd = sigma_data``. ``F`` is a residual MLP whose blocks are conditioned on a Fourier embedding of
``c_noise``. Its last layer starts at zero, so at initialisation ``D = c_skip x`` is exactly the
denoiser of ``N(0, sd^2 I)`` and the score is ``-x / (sigma^2 + sd^2)``.

The score follows by Tweedie, ``s = (D - x) / sigma^2``, evaluated without cancellation as
``s = -x / (sigma^2 + sd^2) + sd F / (sigma sqrt(sigma^2 + sd^2))``.

Checkpoints: :func:`save` writes ``path`` (``eqx.tree_serialise_leaves``) and ``path.json`` with the
class, its hyper-parameters, the dtype and a SHA-256 of the leaves; :func:`load` rebuilds the model
from the JSON (or checks it against ``like=``) and raises ``ValueError`` on a mismatch or a
corrupt file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_positive_int
from .env import versions
from .store import atomic_write

FORMAT = "jscore.nets"
FORMAT_VERSION = 1


def edm_coefficients(sigma, sigma_data):
    """``(c_skip, c_out, c_in, c_noise)`` of EDM preconditioning at ``sigma > 0``."""
    s2 = sigma * sigma
    sd2 = sigma_data * sigma_data
    r = jnp.sqrt(s2 + sd2)
    return sd2 / (s2 + sd2), sigma * sigma_data / r, 1.0 / r, 0.25 * jnp.log(sigma)


def edm_score(raw, x, sigma, sigma_data):
    """Score of an EDM-preconditioned network ``raw(c_in x, c_noise) = F``:
    ``(D - x) / sigma^2 = -c_in^2 x + (sd c_in / sigma) F``, without the cancellation of ``D - x``."""
    _, _, c_in, c_noise = edm_coefficients(sigma, sigma_data)
    f = raw(c_in * x, c_noise).astype(x.dtype)
    return -x * (c_in * c_in) + (sigma_data * c_in / sigma) * f


def fourier_features(c, num_freqs: int, max_freq: float):
    """``[c, cos(w_k c), sin(w_k c)]`` with ``w_k`` geometric from 1 to ``max_freq``; shape ``(1 + 2K,)``."""
    w = jnp.asarray(np.geomspace(1.0, max_freq, num_freqs), jnp.result_type(c, float))
    a = w * c
    return jnp.concatenate([jnp.reshape(c, (1,)), jnp.cos(a), jnp.sin(a)])


class Linear(eqx.Module):
    """``y = W x + b`` with ``W (out, in)``; initialised like ``eqx.nn.Linear``: U(-1/sqrt(in), 1/sqrt(in))."""

    weight: jax.Array
    bias: jax.Array

    def __call__(self, x):
        return self.weight @ x + self.bias


class _Uniform:
    """Slices of one uniform(-1, 1) draw: all initial weights come from a single random call, so
    building a network compiles one PRNG kernel instead of one per layer."""

    def __init__(self, key, shapes, dtype):
        self.total = sum(i * o + o for i, o in shapes)
        u = jax.random.uniform(key, (self.total,), dtype, -1.0, 1.0)
        # concrete draws are sliced in NumPy (no per-slice compilation); traced ones (eval_shape) in jnp
        self.u = u if isinstance(u, jax.core.Tracer) else np.asarray(u)
        self.pos = 0
        self.dtype = dtype

    def linear(self, n_in, n_out) -> Linear:
        w = self.u[self.pos : self.pos + n_in * n_out].reshape(n_out, n_in)
        self.pos += n_in * n_out
        b = self.u[self.pos : self.pos + n_out]
        self.pos += n_out
        scale = 1.0 / math.sqrt(n_in)
        return Linear(jnp.asarray(w * scale, self.dtype), jnp.asarray(b * scale, self.dtype))


class _Block(eqx.Module):
    norm: eqx.nn.LayerNorm
    cond: Linear
    lin1: Linear
    lin2: Linear

    def __init__(self, width, hidden, dtype, init: _Uniform):
        self.norm = eqx.nn.LayerNorm(width, dtype=dtype)
        self.cond = init.linear(width, width)
        self.lin1 = init.linear(width, hidden)
        self.lin2 = init.linear(hidden, width)

    def __call__(self, h, emb):
        y = self.norm(h) + self.cond(emb)
        return h + self.lin2(jax.nn.silu(self.lin1(y)))


class _EDMDenoiser(eqx.Module):
    """The EDM preconditioning shared by the networks: a subclass provides the bare network
    ``raw(x_in, c_noise)``, the input check ``_check_x(x)`` and the field ``sigma_data``."""

    def __call__(self, x, sigma):
        """Denoiser ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)``."""
        self._check_x(x)
        sigma = jnp.asarray(sigma, x.dtype)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)
        return c_skip * x + c_out * self.raw(c_in * x, c_noise).astype(x.dtype)

    def score(self, x, sigma):
        """``(D - x) / sigma^2 = -x / (sigma^2 + sd^2) + sd F / (sigma sqrt(sigma^2 + sd^2))``."""
        self._check_x(x)
        sigma = jnp.asarray(sigma, x.dtype)
        return edm_score(lambda x_in, c_noise: self.raw(x_in, c_noise), x, sigma, self.sigma_data)


class DenoiserMLP(_EDMDenoiser):
    """EDM-preconditioned residual-MLP denoiser ``D(x, sigma)`` for data in R^d (any ``d``).

    ``model(x, sigma)`` returns ``D`` of shape ``(d,)`` for ``x (d,)``, ``sigma > 0`` scalar;
    ``model.score(x, sigma)`` the implied score; ``model.raw(x_in, c_noise)`` the bare network F.
    Batch with ``jax.vmap``.

    **Arguments:** ``dim`` (d); ``width`` of the residual stream; ``depth`` (number of residual
    blocks); ``hidden`` width inside a block (default ``2 * width``); ``num_freqs`` and ``max_freq``
    of the Fourier embedding of ``c_noise = log(sigma)/4``; ``sigma_data`` (the data's standard
    deviation per coordinate, a static hyper-parameter); ``key``.
    """

    dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    num_freqs: int = eqx.field(static=True)
    max_freq: float = eqx.field(static=True)
    sigma_data: float = eqx.field(static=True)
    embed1: Linear
    embed2: Linear
    proj_in: Linear
    blocks: tuple
    norm_out: eqx.nn.LayerNorm
    proj_out: Linear

    def __init__(
        self,
        dim: int,
        *,
        width: int = 128,
        depth: int = 3,
        hidden: int | None = None,
        num_freqs: int = 16,
        max_freq: float = 64.0,
        sigma_data: float = 1.0,
        key,
    ):
        self.dim = check_positive_int("dim", dim)
        self.width = check_positive_int("width", width)
        self.depth = check_positive_int("depth", depth, 0)
        self.hidden = check_positive_int("hidden", 2 * width if hidden is None else hidden)
        self.num_freqs = check_positive_int("num_freqs", num_freqs)
        self.max_freq = float(max_freq)
        self.sigma_data = float(sigma_data)
        if not (self.max_freq >= 1.0 and math.isfinite(self.max_freq)):
            raise ValueError(f"`max_freq` must be finite and >= 1, got {max_freq}.")
        if not (self.sigma_data > 0 and math.isfinite(self.sigma_data)):
            raise ValueError(f"`sigma_data` must be finite and > 0, got {sigma_data}.")
        dtype = jnp.result_type(float)
        n_emb = 1 + 2 * self.num_freqs
        w, h = self.width, self.hidden
        shapes = [(n_emb, w), (w, w), (self.dim, w)] + [(w, w), (w, h), (h, w)] * self.depth
        init = _Uniform(key, shapes, dtype)
        self.embed1 = init.linear(n_emb, w)
        self.embed2 = init.linear(w, w)
        self.proj_in = init.linear(self.dim, w)
        self.blocks = tuple(_Block(w, h, dtype, init) for _ in range(self.depth))
        self.norm_out = eqx.nn.LayerNorm(w, dtype=dtype)
        # zero last layer: F = 0 at init, so D = c_skip x (the N(0, sd^2 I) denoiser)
        self.proj_out = Linear(jnp.zeros((self.dim, w), dtype), jnp.zeros((self.dim,), dtype))

    def hyperparams(self) -> dict:
        """The constructor's keyword arguments (JSON-serialisable), without ``key``."""
        return dict(
            dim=self.dim,
            width=self.width,
            depth=self.depth,
            hidden=self.hidden,
            num_freqs=self.num_freqs,
            max_freq=self.max_freq,
            sigma_data=self.sigma_data,
        )

    def _check_x(self, x):
        if x.shape != (self.dim,):
            raise ValueError(
                f"DenoiserMLP(dim={self.dim}) takes one point of shape ({self.dim},), got "
                f"{x.shape}; vmap over a batch."
            )

    def raw(self, x_in, c_noise):
        """The bare network ``F(c_in x, c_noise)``, shape ``(d,)``."""
        e = fourier_features(c_noise, self.num_freqs, self.max_freq).astype(x_in.dtype)
        emb = self.embed2(jax.nn.silu(self.embed1(e)))
        h = self.proj_in(x_in)
        for block in self.blocks:
            h = block(h, emb)
        return self.proj_out(jax.nn.silu(self.norm_out(h)))


#: Classes :func:`load` can rebuild from a checkpoint's JSON.
MODELS = {"DenoiserMLP": DenoiserMLP}


# ------------------------------------------------------------------------------------ checkpoints


def _json_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".json")


def _float_dtype_of(tree) -> str:
    dts = {str(x.dtype) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))}
    return dts.pop() if len(dts) == 1 else ",".join(sorted(dts))


def serialise(tree) -> bytes:
    """``eqx.tree_serialise_leaves`` into bytes."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return buf.getvalue()


def deserialise(data: bytes, like, what: str = "checkpoint"):
    """Inverse of :func:`serialise`; ``ValueError`` if ``data`` does not match ``like`` exactly."""
    buf = io.BytesIO(data)
    try:
        out = eqx.tree_deserialise_leaves(buf, like)
    except Exception as e:  # shape/dtype/type mismatch, truncated or garbled numpy records
        raise ValueError(
            f"Could not load the {what}: its arrays do not match the expected structure ({e}). "
            "The file is corrupt or was written for a different architecture."
        ) from None
    if buf.read(1):
        raise ValueError(
            f"Could not load the {what}: the file holds more arrays than the architecture expects "
            "(different architecture?)."
        )
    return out


def write_checkpoint(path, tree, meta: dict) -> None:
    """Atomically write ``tree`` to ``path`` and ``meta`` (+ SHA-256, dtype) to ``path.json``.

    The leaves file is replaced first and the JSON last; the JSON names the leaves' SHA-256, so a
    reader never accepts a leaves file that does not belong to the JSON it reads.
    """
    path = pathlib.Path(path)
    data = serialise(tree)
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION,
                sha256=hashlib.sha256(data).hexdigest(), dtype=_float_dtype_of(tree),
                versions=versions())
    atomic_write(path, data)
    atomic_write(_json_path(path), json.dumps(meta, indent=2, sort_keys=True))


def read_checkpoint_meta(path) -> dict:
    """The JSON of a checkpoint written by :func:`write_checkpoint`; ``ValueError`` if unusable."""
    path = pathlib.Path(path)
    jp = _json_path(path)
    if not path.exists() or not jp.exists():
        raise ValueError(
            f"No checkpoint at {path}: expected both {path.name} and {jp.name} in {path.parent}."
        )
    try:
        meta = json.loads(jp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Checkpoint metadata {jp} is corrupt (invalid JSON: {e}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{jp} is not a jscore checkpoint (missing format={FORMAT!r}).")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{jp} has format version {meta['format_version']}; this jscore reads up to "
            f"{FORMAT_VERSION}. Upgrade jscore."
        )
    return meta


def read_checkpoint(path, like, meta: dict | None = None):
    """Read the leaves at ``path`` into the structure ``like`` after checking the SHA-256."""
    path = pathlib.Path(path)
    meta = read_checkpoint_meta(path) if meta is None else meta
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ValueError(
            f"Checkpoint {path} is corrupt: its SHA-256 does not match the one recorded in "
            f"{_json_path(path).name} (truncated or modified file)."
        )
    return deserialise(data, like, what=f"checkpoint {path}")


def _skeleton(cls, hp: dict, dtype: str | None):
    shapes = eqx.filter_eval_shape(lambda: cls(**hp, key=jax.random.key(0)))
    if dtype and "," not in dtype:
        shapes = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, np.dtype(dtype))
            if isinstance(s, jax.ShapeDtypeStruct) and jnp.issubdtype(s.dtype, jnp.inexact)
            else s,
            shapes,
        )
    return shapes


def save(path, model) -> pathlib.Path:
    """Save ``model`` to ``path`` (leaves) and ``path.json`` (class, hyper-parameters, SHA-256).

    Both files are written atomically. Returns the path of the leaves file.
    """
    if not hasattr(model, "hyperparams") or type(model).__name__ not in MODELS:
        raise TypeError(
            f"`save` needs a jscore network ({', '.join(MODELS)}), got {type(model).__name__}; "
            "for other modules use eqx.tree_serialise_leaves."
        )
    path = pathlib.Path(path)
    write_checkpoint(path, model, {"kind": "model", "class": type(model).__name__,
                                   "hyperparams": model.hyperparams()})
    return path


def load(path, like=None):
    """Load a model saved with :func:`save`.

    Without ``like`` the architecture is rebuilt from the JSON. With ``like`` (a model of the
    expected architecture) the saved hyper-parameters must equal ``like.hyperparams()``.

    **Raises:** ``ValueError`` if the files are missing, corrupt (hash or JSON), or the saved
    architecture differs from ``like`` (the message lists the differing hyper-parameters).
    """
    path = pathlib.Path(path)
    meta = read_checkpoint_meta(path)
    cls_name = meta.get("class")
    if cls_name not in MODELS:
        raise ValueError(f"Checkpoint {path} holds an unknown model class {cls_name!r}.")
    hp = meta.get("hyperparams")
    if not isinstance(hp, dict):
        raise ValueError(f"Checkpoint {path} has no hyper-parameters in its JSON.")
    if like is not None:
        if type(like).__name__ != cls_name:
            raise ValueError(
                f"Checkpoint {path} holds a {cls_name}, but `like` is a {type(like).__name__}."
            )
        want = like.hyperparams()
        diff = {k: (hp.get(k), want.get(k)) for k in set(hp) | set(want) if hp.get(k) != want.get(k)}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs expected {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ValueError(f"Architecture mismatch loading {path}: {detail}.")
        skeleton = like
    else:
        try:
            skeleton = _skeleton(MODELS[cls_name], hp, meta.get("dtype"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"Checkpoint {path} has invalid hyper-parameters {hp}: {e}") from None
    return read_checkpoint(path, skeleton, meta)


__all__ = ["DenoiserMLP", "edm_coefficients", "fourier_features", "save", "load", "MODELS"]


# ------------------------------------------------------------------------ convolutional denoiser


def patchify(img, p: int):
    """``(H, W, C)`` image -> channels-first ``(p p C, H/p, W/p)``: channel ``(i p + j) C + c`` of
    patch ``(a, b)`` is pixel ``img[a p + i, b p + j, c]``."""
    h, w, c = img.shape
    x = jnp.reshape(img, (h // p, p, w // p, p, c))
    return jnp.reshape(jnp.transpose(x, (1, 3, 4, 0, 2)), (p * p * c, h // p, w // p))


def unpatchify(x, p: int):
    """Inverse of :func:`patchify`: ``(p p C, H/p, W/p)`` -> ``(H, W, C)``."""
    k, hp, wp = x.shape
    c = k // (p * p)
    y = jnp.reshape(x, (p, p, c, hp, wp))
    return jnp.reshape(jnp.transpose(y, (3, 0, 4, 1, 2)), (hp * p, wp * p, c))


class Conv(eqx.Module):
    """``k x k`` convolution (zero padding ``k // 2``, ``stride``) of a channels-first ``(C, H, W)``
    array, written as one matrix product over the ``k^2`` shifted views (im2col). XLA:CPU runs
    native convolutions inside the training loop's ``lax.scan`` about 100x slower than outside it;
    matrix products do not have that problem. Initialised like Equinox's ``Conv2d``:
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = k^2 C``."""

    weight: jax.Array  # (out, k * k * in), input index (di * k + dj) * in + c
    bias: jax.Array
    kernel: int = eqx.field(static=True)
    stride: int = eqx.field(static=True)

    def __init__(self, n_in, n_out, kernel, *, stride=1, key, dtype):
        fan_in = kernel * kernel * n_in
        kw, kb = jax.random.split(key)
        lim = 1.0 / math.sqrt(fan_in)
        self.weight = jax.random.uniform(kw, (n_out, fan_in), dtype, -lim, lim)
        self.bias = jax.random.uniform(kb, (n_out,), dtype, -lim, lim)
        self.kernel = kernel
        self.stride = stride

    def __call__(self, x):
        k, st = self.kernel, self.stride
        c, h, w = x.shape
        if k == 1 and st == 1:
            cols = x
        else:
            r = k // 2
            xp = jnp.pad(x, ((0, 0), (r, r), (r, r)))
            ho, wo = (h - 1) // st + 1, (w - 1) // st + 1
            cols = jnp.concatenate(
                [xp[:, di : di + st * (ho - 1) + 1 : st, dj : dj + st * (wo - 1) + 1 : st]
                 for di in range(k) for dj in range(k)], axis=0)
        return jnp.einsum("ok,khw->ohw", self.weight, cols) + self.bias[:, None, None]


class _ConvBlock(eqx.Module):
    """``h + conv(silu(gn(conv(silu(gn(h))) + W emb)))``, channels-first ``(C, H, W)``."""

    norm1: eqx.nn.GroupNorm
    conv1: Conv
    cond: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: Conv

    def __init__(self, ch, n_emb, dtype, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.norm1 = eqx.nn.GroupNorm(math.gcd(8, ch), ch, dtype=dtype)
        self.conv1 = Conv(ch, ch, 3, key=k1, dtype=dtype)
        self.cond = eqx.nn.Linear(n_emb, ch, key=k2, dtype=dtype)
        self.norm2 = eqx.nn.GroupNorm(math.gcd(8, ch), ch, dtype=dtype)
        self.conv2 = Conv(ch, ch, 3, key=k3, dtype=dtype)

    def __call__(self, h, emb):
        y = self.conv1(jax.nn.silu(self.norm1(h))) + self.cond(emb)[:, None, None]
        return h + self.conv2(jax.nn.silu(self.norm2(y)))


class DenoiserConv(_EDMDenoiser):
    """EDM-preconditioned convolutional denoiser ``D(x, sigma)`` for images of shape ``(H, W, C)``.

    The same preconditioning as :class:`DenoiserMLP` (module docstring) around a small U-Net
    ``F`` on non-overlapping ``patch x patch`` patches (the image is reshaped to
    ``(H/patch, W/patch)`` pixels of ``patch^2 C`` channels, as in a patch embedding, so the cost
    grows only linearly in ``d`` at a fixed inner resolution): a 3x3 input convolution to ``width`` channels, ``levels`` resolution halvings (a residual
    block conditioned on the Fourier embedding of ``c_noise``, then a stride-2 convolution that
    doubles the channels), a residual block at the lowest resolution, and the mirror path (nearest
    2x upsampling, concatenation with the skip, a 1x1 convolution, a residual block); the output
    convolution (back to ``patch^2 C`` channels, then un-patched) starts at zero, so at
    initialisation ``D = c_skip x``.

    ``model(x, sigma)`` takes one point, flat ``(d,)`` (``d = H W C``; how :func:`jscore.train.fit`
    and :class:`jscore.oracles.Network` call it) or image-shaped ``(H, W, C)``, and returns ``D`` of
    the same shape; ``model.score(x, sigma)`` the implied score. ``H`` and ``W`` must be divisible
    by ``patch * 2**levels``.

    **Arguments:** ``shape`` ``(H, W, C)``; ``width`` (channels at the patch resolution);
    ``levels``; ``patch`` (side of a patch, default 1: plain pixels);
    ``num_freqs``, ``max_freq`` of the embedding; ``sigma_data``; ``key``.
    """

    shape: tuple = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    patch: int = eqx.field(static=True)
    num_freqs: int = eqx.field(static=True)
    max_freq: float = eqx.field(static=True)
    sigma_data: float = eqx.field(static=True)
    embed1: eqx.nn.Linear
    embed2: eqx.nn.Linear
    conv_in: Conv
    down_blocks: tuple
    downs: tuple
    mid: _ConvBlock
    ups: tuple
    up_blocks: tuple
    norm_out: eqx.nn.GroupNorm
    conv_out: Conv

    def __init__(self, shape, *, width: int = 32, levels: int = 1, patch: int = 1, num_freqs: int = 16,
                 max_freq: float = 64.0, sigma_data: float = 1.0, key):
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        if len(shape) != 3:
            raise ValueError(f"`shape` must be (H, W, C), got {shape!r}; for flat data use DenoiserMLP.")
        self.shape = tuple(check_positive_int(n, s) for n, s in zip(("H", "W", "C"), shape))
        self.dim = math.prod(self.shape)
        self.width = check_positive_int("width", width)
        self.levels = check_positive_int("levels", levels, 0)
        self.patch = check_positive_int("patch", patch)
        self.num_freqs = check_positive_int("num_freqs", num_freqs)
        self.max_freq = float(max_freq)
        self.sigma_data = float(sigma_data)
        if not (self.max_freq >= 1.0 and math.isfinite(self.max_freq)):
            raise ValueError(f"`max_freq` must be finite and >= 1, got {max_freq}.")
        if not (self.sigma_data > 0 and math.isfinite(self.sigma_data)):
            raise ValueError(f"`sigma_data` must be finite and > 0, got {sigma_data}.")
        h, w, c = self.shape
        f = self.patch * 2**self.levels
        if h % f or w % f:
            raise ValueError(
                f"`shape` {self.shape}: H and W must be divisible by patch * 2**levels = {f}; "
                "lower `levels` or `patch`."
            )
        c = self.patch * self.patch * c  # channels of a patch
        dtype = jnp.result_type(float)
        n_emb = 1 + 2 * self.num_freqs
        chs = [self.width * 2**i for i in range(self.levels + 1)]
        keys = iter(jax.random.split(key, 4 + 4 * self.levels))
        self.embed1 = eqx.nn.Linear(n_emb, 4 * self.width, key=next(keys), dtype=dtype)
        self.embed2 = eqx.nn.Linear(4 * self.width, 4 * self.width, key=next(keys), dtype=dtype)
        e = 4 * self.width
        self.conv_in = Conv(c, chs[0], 3, key=next(keys), dtype=dtype)
        self.down_blocks = tuple(_ConvBlock(chs[i], e, dtype, next(keys)) for i in range(self.levels))
        self.downs = tuple(Conv(chs[i], chs[i + 1], 3, stride=2, key=next(keys), dtype=dtype) for i in range(self.levels))
        self.mid = _ConvBlock(chs[-1], e, dtype, next(keys))
        self.ups = tuple(Conv(chs[i + 1] + chs[i], chs[i], 1, key=next(keys), dtype=dtype)
                         for i in range(self.levels))
        self.up_blocks = tuple(_ConvBlock(chs[i], e, dtype, next(keys)) for i in range(self.levels))
        self.norm_out = eqx.nn.GroupNorm(math.gcd(8, chs[0]), chs[0], dtype=dtype)
        out = Conv(chs[0], c, 3, key=jax.random.fold_in(key, 1), dtype=dtype)
        # zero last layer: F = 0 at init, so D = c_skip x (the N(0, sd^2 I) denoiser)
        self.conv_out = eqx.tree_at(lambda m: (m.weight, m.bias), out,
                                    (jnp.zeros_like(out.weight), jnp.zeros_like(out.bias)))

    def hyperparams(self) -> dict:
        """The constructor's keyword arguments (JSON-serialisable), without ``key``."""
        return dict(shape=list(self.shape), width=self.width, levels=self.levels, patch=self.patch,
                    num_freqs=self.num_freqs, max_freq=self.max_freq, sigma_data=self.sigma_data)

    def _check_x(self, x):
        if x.shape not in ((self.dim,), self.shape):
            raise ValueError(
                f"DenoiserConv(shape={self.shape}) takes one point of shape ({self.dim},) or "
                f"{self.shape}, got {x.shape}; vmap over a batch."
            )

    def raw(self, x_in, c_noise):
        """The bare network ``F(c_in x, c_noise)``, of ``x_in``'s shape (flat or ``(H, W, C)``)."""
        e = fourier_features(c_noise, self.num_freqs, self.max_freq).astype(x_in.dtype)
        emb = self.embed2(jax.nn.silu(self.embed1(e)))
        h = self.conv_in(patchify(jnp.reshape(x_in, self.shape), self.patch))
        skips = []
        for block, down in zip(self.down_blocks, self.downs):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for i in reversed(range(self.levels)):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = self.up_blocks[i](self.ups[i](jnp.concatenate([h, skips[i]], axis=0)), emb)
        out = unpatchify(self.conv_out(jax.nn.silu(self.norm_out(h))), self.patch)
        return jnp.reshape(out, x_in.shape)


MODELS["DenoiserConv"] = DenoiserConv
__all__ += ["DenoiserConv"]
