"""The experiment protocol (jscore.sweeps.protocol): config fields as TOML and flags, keyed units
in the one store, resume / overwrite / refuse, threads and processes giving the same rows."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from helpers import free_address, run_processes
from helpers import repo_env as _env
from jscore.sweeps import protocol
from jscore.sweeps.protocol import (ExperimentResult, UnitExperiment, add_config_flags,
                                    config_from_args, option, run_experiment)

CALLS = []


@dataclasses.dataclass(frozen=True)
class ToyLab(UnitExperiment):
    """Per dimension d: the mean and max of d standard normals drawn from fold_in(seed, d)."""

    experiment = "toylab"
    name: str = option("toy", "run folder suffix")
    dims: tuple = option((3, 5, 8, 13), "dimensions", identity=False)
    seed: int = option(0, "seed of the draws")
    scale: float = option(1.0, "multiplies every draw")
    fail_at: int = option(-1, "raise in this d (test hook)", cli=False, identity=False)
    squared: bool = option(False, "square the draws first")

    def __post_init__(self):
        dims = self.dims
        if isinstance(dims, str):
            dims = tuple(int(x) for x in dims.split(","))
        dims = tuple(dims)
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"`dims` must be ints >= 1, got {self.dims!r}.")
        object.__setattr__(self, "dims", dims)
        if not (isinstance(self.scale, (int, float)) and self.scale > 0):
            raise ValueError(f"`scale` must be a positive number, got {self.scale!r}.")

    def units(self):
        return list(self.dims)

    def run_unit(self, unit, *, log=print):
        CALLS.append(unit)
        if unit == self.fail_at:
            raise RuntimeError(f"killed at d={unit}")
        x = self.scale * jax.random.normal(jax.random.fold_in(jax.random.key(self.seed), unit),
                                           (unit,), jnp.float32)
        x = x * x if self.squared else x
        log(f"d={unit} done")
        return {"d": unit, "mean": float(jnp.mean(x)), "max": float(jnp.max(x)),
                "device": str(x.devices().pop())}

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        files = []
        if out is not None:
            files.append(js.store.write_json(os.path.join(out, "toy.json"), rows))
        text = "\n".join(f"{r['d']:>4} {r['mean']:+.4f}" for r in rows)
        return ExperimentResult(out, self, rows, {"stats": stats}, files, text,
                                complete=len(rows) == len(self.units()))


def _direct(cfg):
    """The rows computed here without the protocol (an independent loop)."""
    out = []
    for d in cfg.dims:
        x = cfg.scale * np.asarray(jax.random.normal(
            jax.random.fold_in(jax.random.key(cfg.seed), d), (d,), jnp.float32))
        x = x * x if cfg.squared else x
        out.append((d, float(np.mean(x, dtype=np.float32)), float(np.max(x))))
    return out


def _values(rows):
    return [(r["d"], r["mean"], r["max"]) for r in rows]


def _matches(rows, direct):
    """Rows equal the direct loop: same d and max exactly, mean to float32 summation order."""
    got = _values(rows)
    return [g[0] for g in got] == [w[0] for w in direct] and all(
        g[2] == w[2] and abs(g[1] - w[1]) <= 1e-6 * (1 + abs(w[1])) for g, w in zip(got, direct))


def test_toml_round_trip_and_unknown_keys():
    cfg = ToyLab(dims=(2, 4), scale=0.5, squared=True)
    text = cfg.to_toml()
    import tomllib

    data = tomllib.loads(text)
    assert data["experiment"] == "toylab" and data["dims"] == [2, 4]
    assert ToyLab.from_dict(data) == cfg
    with pytest.raises(ValueError, match="Unknown toylab keys \\['nope'\\]"):
        ToyLab.from_dict({**data, "nope": 1})
    with pytest.raises(ValueError, match="is not the 'toylab' experiment"):
        ToyLab.from_dict({"experiment": "lowerbound"})
    with pytest.raises(TypeError, match="mutable"):
        option([1, 2], "a list default")


def test_identity_leaves_out_run_only_fields():
    a, b = ToyLab(dims=(3,)), ToyLab(dims=(3, 5))
    assert a.config_hash == b.config_hash  # dims are per unit: more dims resume the same folder
    assert ToyLab(seed=1).config_hash != a.config_hash
    assert "dims" not in a.identity() and a.identity()["experiment"] == "toylab"


def test_generated_flags_defaults_help_and_validation():
    p = argparse.ArgumentParser()
    names = add_config_flags(p, ToyLab)
    assert names == ["name", "dims", "seed", "scale", "squared"]  # fail_at has cli=False
    help_text = p.format_help()
    assert "--scale SCALE" in help_text and "multiplies every draw (default: 1.0)" in help_text
    assert "--dims DIMS" in help_text and "(default: 3,5,8,13)" in help_text
    assert "--squared, --no-squared" in help_text
    ns = p.parse_args(["--seed", "3", "--dims", "4,9", "--squared"])
    assert not hasattr(ns, "scale")  # not given: the config keeps its own default
    cfg = config_from_args(ToyLab, ns)
    assert cfg == ToyLab(seed=3, dims=(4, 9), squared=True)
    base = ToyLab(scale=2.0)
    assert config_from_args(ToyLab, p.parse_args(["--no-squared"]), base=base) == base
    with pytest.raises(ValueError, match="`scale` must be a positive number, got -1.0"):
        config_from_args(ToyLab, p.parse_args(["--scale", "-1"]))
    with pytest.raises(SystemExit):  # argparse: "--seed: invalid int value"
        p.parse_args(["--seed", "x"])


def test_run_resume_refuse_overwrite(tmp_path):
    out = str(tmp_path / "run")
    cfg = ToyLab()
    CALLS.clear()
    res = run_experiment(cfg, out=out, quiet=True, workers=1)
    assert _matches(res.rows, _direct(cfg)) and res.complete
    assert CALLS == [3, 5, 8, 13]
    assert oct(os.stat(os.path.join(out, "units-p0.jsonl")).st_mode & 0o777) == "0o644"
    # resume: nothing is recomputed; adding a dimension computes only it
    CALLS.clear()
    res2 = run_experiment(cfg.replace(dims=(3, 5, 8, 13, 21)), out=out, quiet=True, workers=1)
    assert CALLS == [21] and _values(res2.rows)[:4] == _values(res.rows)
    # another config is refused, naming the way out; overwrite discards
    with pytest.raises(ValueError, match="another toylab experiment configuration.*--overwrite"):
        run_experiment(cfg.replace(seed=1), out=out, quiet=True)
    with pytest.raises(ValueError, match="already holds rows"):
        run_experiment(cfg, out=out, quiet=True, resume=False)
    CALLS.clear()
    res3 = run_experiment(cfg.replace(seed=1), out=out, quiet=True, overwrite=True, workers=1)
    assert CALLS == [3, 5, 8, 13] and _matches(res3.rows, _direct(cfg.replace(seed=1)))
    assert run_experiment(cfg, dry_run=True).startswith("toylab experiment: 4 units")


def test_killed_run_resumes_to_the_same_rows(tmp_path):
    out = str(tmp_path / "killed")
    with pytest.raises(RuntimeError, match="killed at d=8"):
        run_experiment(ToyLab(fail_at=8), out=out, quiet=True, workers=1)
    with open(os.path.join(out, "units-p0.jsonl")) as f:
        kept = [json.loads(line)["unit"] for line in f]
    assert kept == [3, 5]  # finished units are on disk
    # a torn last line (a crash mid-write) is repaired, not fatal
    with open(os.path.join(out, "units-p0.jsonl"), "ab") as f:
        f.write(b'{"unit": 8, "d": 8, "me')
    CALLS.clear()
    res = run_experiment(ToyLab(), out=out, quiet=True, workers=1)
    assert CALLS == [8, 13] and _matches(res.rows, _direct(ToyLab()))


def test_threads_and_local_devices_equal_one_worker(tmp_path):
    cfg = ToyLab(dims=tuple(range(2, 14)))
    one = run_experiment(cfg, out=str(tmp_path / "w1"), quiet=True, workers=1)
    many = run_experiment(cfg, out=str(tmp_path / "w3"), quiet=True, workers=3)
    assert _values(many.rows) == _values(one.rows)  # bitwise, in units() order
    assert many.results["stats"]["workers"] == 3
    assert many.results["stats"]["compilations"] >= 0


_TWO_DEVICES = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, sys.argv[2])
    import jax
    from test_protocol import ToyLab
    from jscore.sweeps.protocol import run_experiment
    assert len(jax.local_devices()) == 2
    cfg = ToyLab(dims=tuple(range(2, 10)))
    a = run_experiment(cfg, out=sys.argv[1] + "/one", quiet=True, workers=1, devices=1)
    b = run_experiment(cfg, out=sys.argv[1] + "/two", quiet=True, workers=2)
    assert [r["mean"] for r in a.rows] == [r["mean"] for r in b.rows]
    assert [r["max"] for r in a.rows] == [r["max"] for r in b.rows]
    print(json.dumps(sorted({r["device"] for r in b.rows})))
""")




def test_units_on_two_forced_host_devices(tmp_path):
    p = subprocess.run([sys.executable, "-c", _TWO_DEVICES, str(tmp_path),
                        os.path.dirname(os.path.abspath(__file__))],
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(json.loads(p.stdout.strip().splitlines()[-1])) == 2  # both devices ran units


_TWO_PROCESSES = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, sys.argv[4])
    import jax
    if sys.argv[2] != "none":
        jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2,
                                   process_id=int(sys.argv[3]))
    from test_protocol import ToyLab
    from jscore.sweeps.protocol import run_experiment
    res = run_experiment(ToyLab(dims=tuple(range(2, 9))), out=sys.argv[1], quiet=True, workers=1)
    print(json.dumps({"rows": [[r["d"], r["mean"], r["max"]] for r in res.rows],
                      "here": res.results["stats"]["units_run_here"], "wrote": bool(res.files)}))
""")


def test_two_processes_equal_one(tmp_path):
    out = str(tmp_path / "mp")
    addr = free_address()
    here = os.path.dirname(os.path.abspath(__file__))
    outs = run_processes([[sys.executable, "-c", _TWO_PROCESSES, out, addr, str(i), here]
                          for i in range(2)])
    got = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    # the one-process reference in a fresh process too (this one's XLA options may differ)
    ref = subprocess.run([sys.executable, "-c", _TWO_PROCESSES, str(tmp_path / "one"), "none", "0",
                          here], env=_env(), capture_output=True, text=True, timeout=240)
    assert ref.returncode == 0, ref.stderr[-3000:]
    want = json.loads(ref.stdout.strip().splitlines()[-1])["rows"]
    assert got[0]["rows"] == want and got[1]["rows"] == want  # every process: the whole result
    assert [g["here"] for g in got] == [4, 3]  # units 0,2,4,6 and 1,3,5
    assert got[0]["wrote"] and not got[1]["wrote"]  # only process 0 writes the result files
    parts = sorted(os.listdir(out))
    assert "units-p0.jsonl" in parts and "units-p1.jsonl" in parts
    assert not [f for f in parts if f.endswith(".done")]


def test_registered_experiment_runs_through_js_sweep_and_toml(tmp_path):
    from jscore.sweeps import EXPERIMENTS, load_spec

    entry = protocol.register_unit_experiment(ToyLab)
    try:
        path = tmp_path / "toy.toml"
        path.write_text(ToyLab(dims=(2, 3)).to_toml())
        spec = load_spec(str(path))
        assert spec == ToyLab(dims=(2, 3))
        res = js.sweep(spec, out=str(tmp_path / "js"), quiet=True, cache_dir=None, workers=1)
        assert _matches(res.rows, _direct(spec))
        assert entry.name == "toylab" and EXPERIMENTS["toylab"] is entry
    finally:
        EXPERIMENTS.pop("toylab", None)


# ----------------------------------------------------------------------------- adaptive units
@dataclasses.dataclass(frozen=True)
class BisectLab(UnitExperiment):
    """Per target t: the smallest n in [1, 2**10] with n**2 >= t, by bisection; a unit is
    [t, n] (one evaluation of n**2), so the next unit depends on the earlier rows."""

    experiment = "bisectlab"
    targets: tuple = option((5, 99, 1000), "thresholds")
    fail_after: int = option(-1, "raise after this many units (test hook)", cli=False,
                             identity=False)

    def units(self):
        return self.next_units({})

    def next_units(self, rows):
        units = []
        for t in self.targets:
            lo, hi = 1, 2 ** 10
            while hi - lo > 1:
                mid = (lo + hi) // 2
                units.append([t, mid])
                row = rows.get(protocol.unit_key([t, mid]))
                if row is None:
                    break
                lo, hi = (lo, mid) if row["value"] >= t else (mid, hi)
        return units

    def run_unit(self, unit, *, log=print):
        CALLS.append(tuple(unit))
        if 0 <= self.fail_after < len(CALLS):
            raise RuntimeError("killed")
        return {"t": unit[0], "n": unit[1], "value": unit[1] ** 2}

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        best = {}
        for r in rows:
            if r["value"] >= r["t"]:
                best[r["t"]] = min(best.get(r["t"], 2 ** 10), r["n"])
        return ExperimentResult(out, self, rows, {"best": best, "stats": stats}, [])


def _bisection_path(t):
    """The sequence of n a sequential bisection evaluates (independent of the protocol)."""
    lo, hi, path = 1, 2 ** 10, []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        path.append(mid)
        lo, hi = (lo, mid) if mid * mid >= t else (mid, hi)
    return path, hi


@pytest.mark.parametrize("workers", [1, 2])
def test_adaptive_units_run_in_rounds(tmp_path, workers):
    CALLS.clear()
    cfg = BisectLab()
    res = run_experiment(cfg, out=str(tmp_path / "b"), quiet=True, workers=workers)
    paths = {t: _bisection_path(t) for t in cfg.targets}
    for t in cfg.targets:
        assert res.results["best"][t] == paths[t][1] == math.ceil(math.sqrt(t))
    # exactly the sequential evaluations, each once, one bisection step per round
    assert sorted(CALLS) == sorted((t, n) for t in cfg.targets for n in paths[t][0])
    assert res.results["stats"]["rounds"] == max(len(p) for p, _ in paths.values()) == 10
    # rows in the order first asked: round by round
    assert [r["unit"] for r in res.rows[:3]] == [[t, 512] for t in cfg.targets]


def test_adaptive_run_killed_mid_way_resumes(tmp_path):
    out = str(tmp_path / "k")
    CALLS.clear()
    with pytest.raises(RuntimeError, match="killed"):
        run_experiment(BisectLab(fail_after=7), out=out, quiet=True, workers=1)
    done = len(CALLS) - 1
    CALLS.clear()
    res = run_experiment(BisectLab(), out=out, quiet=True, workers=1)
    assert len(CALLS) == 30 - done  # only the missing evaluations (10 per target)
    assert res.results["best"] == {5: 3, 99: 10, 1000: 32}


def test_every_builtin_experiment_has_a_dry_run():
    """``js.sweep(config, dry_run=True)`` of every built-in experiment returns a plan whose
    ``describe()`` is text (``jscore sweep FILE --dry-run`` prints it), with nothing run."""
    from jscore.sweeps import EXPERIMENTS, SweepSpec

    for name, entry in EXPERIMENTS.items():
        spec = (SweepSpec(samplers=["euler"], dims="4", steps="2") if entry.spec_type is SweepSpec
                else entry.spec_type())
        text = js.sweep(spec, dry_run=True).describe()
        assert isinstance(text, str) and text, name
