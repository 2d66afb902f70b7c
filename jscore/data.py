"""Real data that ships with a registry package: scikit-learn's 8x8 handwritten digits.

:func:`digits` loads the 1797 images of ``sklearn.datasets.load_digits`` (bundled with
scikit-learn, read offline; install with ``pip install jscore[data]``), maps the pixel values
``0..16`` affinely to ``[-1, 1]`` (``x = v / 8 - 1``), optionally upsamples them to
``size x size`` by a fixed linear map, and splits them into a training and a held-out set by a
seeded permutation.

Upsampling is ``X -> U X U^T`` with a fixed ``(size, 8)`` matrix ``U`` (:func:`upsample_matrix`):
``"bilinear"`` interpolation (pixel centres aligned, edges clamped) or ``"nearest"`` (each pixel
becomes a ``k x k`` block, ``k = size / 8``, so ``U^T U = k I`` and distances scale exactly by
``k``). Both maps are injective and linear, so the upsampled images still span (at most) a
64-dimensional subspace of R^(size^2): the ambient dimension ``d = size^2`` grows, the intrinsic
dimension does not. Values stay in ``[-1, 1]`` (convex combinations of pixels).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SIZES = (8, 16, 32, 64)
MODES = ("bilinear", "nearest")


class Digits(NamedTuple):
    """Image-shaped float32 arrays ``(n, size, size, 1)`` in ``[-1, 1]`` and int labels ``(n,)``."""

    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray


def upsample_matrix(size: int, mode: str = "bilinear", base: int = 8) -> np.ndarray:
    """The ``(size, base)`` interpolation matrix ``U`` (rows sum to 1) of the upsampling ``U X U^T``."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < base or size % base:
        raise ValueError(f"`size` must be a multiple of {base} (one of {SIZES}), got {size!r}.")
    k = size // base
    u = np.zeros((size, base))
    if mode == "nearest":
        u[np.arange(size), np.arange(size) // k] = 1.0
        return u
    # output pixel i has its centre at input coordinate (i + 0.5) / k - 0.5
    c = np.clip((np.arange(size) + 0.5) / k - 0.5, 0.0, base - 1.0)
    lo = np.minimum(np.floor(c).astype(int), base - 2)
    t = c - lo
    u[np.arange(size), lo] = 1.0 - t
    u[np.arange(size), lo + 1] += t
    return u


def digits(size: int = 8, *, held_out: float = 0.2, seed: int = 0, mode: str = "bilinear") -> Digits:
    """scikit-learn's 8x8 digits in ``[-1, 1]``, upsampled to ``size x size``, split by ``seed``.

    **Arguments:** ``size`` in ``(8, 16, 32, 64)`` (``d = size^2``); ``held_out`` fraction of the
    1797 images kept out of training (in ``(0, 1)``); ``seed`` of the split permutation (the split
    does not depend on ``size`` or ``mode``); ``mode`` ``"bilinear"`` or ``"nearest"`` (module
    docstring).

    **Returns:** :class:`Digits` ``(train, test, train_labels, test_labels)``, images of shape
    ``(n, size, size, 1)`` float32.
    """
    if size not in SIZES:
        raise ValueError(f"`size` must be one of {SIZES}, got {size!r}.")
    if not 0.0 < float(held_out) < 1.0:
        raise ValueError(f"`held_out` must be a fraction in (0, 1), got {held_out!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {seed!r}.")
    u = upsample_matrix(size, mode)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "jscore.data.digits needs scikit-learn (it ships the images); install it with "
            "`pip install jscore[data]` or `pip install scikit-learn`."
        ) from None
    raw = load_digits()
    x = raw.images.astype(np.float64) / 8.0 - 1.0  # 0..16 -> [-1, 1]
    x = np.einsum("ia,nab,jb->nij", u, x, u)[..., None].astype(np.float32)
    labels = raw.target.astype(np.int32)
    n = x.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(held_out * n)))
    test, train = perm[:n_test], perm[n_test:]
    return Digits(x[train], x[test], labels[train], labels[test])


__all__ = ["digits", "Digits", "upsample_matrix", "SIZES"]
