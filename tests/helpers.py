"""Test helpers: Monte-Carlo tolerances derived from standard errors; child processes (two-process runs)."""

from __future__ import annotations

import os

import numpy as np


def assert_within_se(estimate, expected, se, k: float = 5.0, what: str = "estimate"):
    """Assert ``|estimate - expected| <= k * se`` elementwise.

    With a Gaussian sampling distribution, k = 5 has a two-sided false-alarm rate of 5.7e-7 per
    comparison, so a failure means a real discrepancy, not bad luck. Keys are fixed, so tests are
    deterministic; the SE bound keeps them valid when keys change.
    """
    estimate, expected, se = (np.asarray(a, dtype=np.float64) for a in (estimate, expected, se))
    dev = np.abs(estimate - expected)
    bad = dev > k * se
    if np.any(bad):
        raise AssertionError(
            f"{what}: |estimate - expected| exceeds {k} standard errors at {int(bad.sum())} "
            f"entries; worst deviation {np.max(dev / np.maximum(se, 1e-300)):.2f} SE "
            f"(estimate {estimate[bad][:5] if estimate.ndim else estimate}, expected "
            f"{expected[bad][:5] if expected.ndim else expected})."
        )


def mean_se(x, axis=0):
    """Mean and its standard error sd / sqrt(n) along ``axis``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    return x.mean(axis), x.std(axis, ddof=1) / np.sqrt(n)


def var_se(x, axis=0):
    """Unbiased variance and its standard error under normality, ``var * sqrt(2 / (n - 1))``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    v = x.var(axis, ddof=1)
    return v, v * np.sqrt(2.0 / (n - 1))


# ----------------------------------------------------------------------------- subprocesses
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def repo_env(**extra) -> dict:
    """``os.environ`` with this checkout first on ``PYTHONPATH`` (for child processes), then
    ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def free_address() -> str:
    """``127.0.0.1:<port>`` with a free port, for a ``jax.distributed`` coordinator."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def run_processes(commands, *, env=None, timeout: float = 240) -> list[str]:
    """Start every command at once (e.g. the processes of one ``jax.distributed`` run), wait for
    all, kill any left after ``timeout``; assert each exited 0 (its stderr tail in the message)
    and return their stdouts."""
    import subprocess

    procs = [subprocess.Popen(cmd, env=env if env is not None else repo_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [o for o, _ in outs]
