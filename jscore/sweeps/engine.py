"""The sweep engine: plan, compile per bucket, run seed chunks on all local devices, write rows.

Work is split into *units* ``(cell, d, num_steps, seed chunk)``; each unit writes one row.

- **Seeds**: a chunk of ``spec.chunk`` seeds runs as one vmapped call; the last chunk is padded to
  the same size (padding seeds are discarded), so one compiled function serves every chunk. Seed
  ``s`` uses ``fold_in(jax.random.key(spec.key), s)`` exactly as chain ``s`` of ``js.sample``.
- **Devices**: the seed axis is sharded over a ``Mesh`` of the local devices with
  ``NamedSharding(mesh, P("seeds"))``; chains are independent, so results equal a one-device run.
- **Dimensions**: each d runs either exactly (one compilation per d) or zero-padded to the next
  power of two with a mask (:mod:`jscore.sweeps.padding`; one compilation per bucket, the valid d
  is traced), chosen per bucket by cost.
- **Step counts**: a grid of N steps may run inside a compiled grid of L >= N steps: the grid is
  padded with zeros after its final 0 and the chain's query budget is exactly the sampler's cost
  of N steps, so the padded steps find the budget spent, are not charged and leave x frozen (the
  ledger's exhaustion rule). Used only for samplers whose steps do not depend on the grid length;
  unknown samplers are probed once (padded run == exact run) before being padded.
- **Processes and rounds**: the units are run by the one driver,
  :func:`jscore.sweeps.protocol.run_experiment` (see :mod:`jscore.sweeps.sampler_sweep`): with
  ``jax.distributed``, process i of P runs the units of each round with ``index % P == i`` and
  writes ``rows-p<i>.jsonl``; after the last round process 0 consolidates.
- **Chains**: every chain is :func:`jscore.sampling.run_chain` (the loop ``js.sample`` runs), with
  the shape-bucket mask and ``budget_is_cost`` for padded step counts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..env import environment as _environment
from ..samplers.base import AbstractFixedStepSampler
from ..sampling import initial_point, run_chain
from ..seeds import chain_key
from . import measures as _measures
from . import registry as _registry
from .padding import Masked, next_pow2, pad_target

#: counts of kernel compilations and probes in this process (for tests and diagnostics)
ENGINE_STATS = {"compilations": 0, "compile_seconds": 0.0, "probes": 0}

# cost model constants (seconds); rough CPU values, only used to choose padding strategies
COMPILE_SECONDS_ESTIMATE = 2.0
SECONDS_PER_COORD_STEP = {"cpu": 2e-9, "gpu": 2e-11, "tpu": 2e-11}

# samplers known to ignore the grid length (verified in tests/test_sweeps.py); others are probed
_GRID_SAFE_CLASSES = {"Euler", "DDIM", "EulerAncestral", "EulerMaruyama"}


# ----------------------------------------------------------------------------- planning


@dataclasses.dataclass
class Cell:
    index: int
    target: Any  # Component
    oracle: Any
    sampler: Any
    schedule: Any
    oracle_entry: Any
    sampler_obj: Any

    @property
    def id(self) -> str:
        return f"c{self.index:03d}"

    @property
    def labels(self) -> dict:
        return {
            "target": self.target.label,
            "oracle": self.oracle.label,
            "sampler": self.sampler.label,
            "schedule": self.schedule.label,
        }

    @property
    def label(self) -> str:
        lab = self.labels
        return f"{lab['sampler']} | {lab['schedule']} | {lab['oracle']} | {lab['target']}"

    def cost(self, n: int) -> int:
        return int(self.sampler_obj.num_queries(int(n), True))

    def steps_for_budget(self, budget: int) -> int | None:
        n = None
        lo, hi = 1, max(1, budget)
        if self.cost(1) > budget:
            return None
        while lo <= hi:  # costs are increasing in n
            mid = (lo + hi) // 2
            if self.cost(mid) <= budget:
                n, lo = mid, mid + 1
            else:
                hi = mid - 1
        return n


@dataclasses.dataclass
class Plan:
    spec: Any  # the SweepSpec
    cells: list
    ladders: dict  # cell_id -> tuple of step counts
    dim_pad: dict  # (cell_id, d) -> d_pad
    padded: dict  # (cell_id, d) -> whether d runs masked in a padded bucket (shared compilation)
    grid_mode: dict  # cell_id -> "exact" | "pow2" | "max" | "probe"
    backend: str
    notes: list

    def chunks(self):
        c = self.spec.chunk
        s = self.spec.seeds
        return [s[i : i + c] for i in range(0, len(s), c)]

    def grid_length(self, cell, n, d, mode: str | None = None) -> int:
        """The compiled grid length of ``n`` steps of ``cell`` (``mode``: the cell's settled grid
        mode, default the plan's, whose ``"probe:<mode>"`` counts as ``<mode>``)."""
        mode = (mode or self.grid_mode[cell.id]).split(":")[-1]
        if mode == "exact":
            return n
        if mode == "pow2":
            return next_pow2(n)
        return max(n, self.max_steps(cell))

    def max_steps(self, cell) -> int:
        m = max(self.ladders[cell.id], default=1)
        q = self.spec.qstar
        if q is not None and q.search == "bisect":
            m = max(m, q.steps[1])
        return m

    def evaluations_per_task(self, cell) -> int:
        k = len(self.ladders[cell.id])
        q = self.spec.qstar
        if q is not None and q.search == "bisect":
            lo, hi = q.steps
            k += 2 + max(0, math.ceil(math.log2(max(math.log2(hi / lo), 1.0) * 8)))
        return max(k, 1)

    def compilations(self) -> dict:
        """Distinct compiled shapes (exact for ladders, an upper bound for bisections)."""
        keys = set()
        for cell in self.cells:
            steps = set(self.ladders[cell.id])
            q = self.spec.qstar
            if q is not None and q.search == "bisect":
                lo, hi = q.steps
                mode = self.grid_mode[cell.id].split(":")[-1]
                if mode == "max":
                    steps |= {hi}
                elif mode == "pow2":
                    steps |= {2**k for k in range(0, 40) if lo <= 2**k <= 2 * hi}
                else:  # exact grids: each bisection step may need its own length
                    steps |= {("bisect", i) for i in range(2 + math.ceil(math.log2(hi - lo)))}
            if self.grid_mode[cell.id].startswith("probe"):  # one exact-length kernel, once per cell
                keys.add((cell.sampler.label, cell.oracle.label, cell.target.name, "probe"))
            for d in self.spec.dims:
                for n in steps:
                    length = self.grid_length(cell, n, d) if isinstance(n, int) else n
                    keys.add((cell.sampler.label, cell.oracle.label, cell.target.name,
                              self.dim_pad[(cell.id, d)], self.padded[(cell.id, d)], length))
        return {"count": len(keys)}

    def estimated_work(self) -> float:
        """Chain-steps times coordinates over the whole sweep (padding included)."""
        tot = 0.0
        n_seeds = len(self.chunks()) * self.spec.chunk
        for cell in self.cells:
            k = self.evaluations_per_task(cell)
            for d in self.spec.dims:
                tot += k * n_seeds * self.max_steps(cell) * self.dim_pad[(cell.id, d)]
        return tot

    def describe(self) -> str:
        s = self.spec
        lines = [
            f"sweep {s.name!r} (config {s.config_hash})",
            f"  cells: {len(self.cells)} = {len(s.targets)} targets x {len(s.oracles)} oracles x "
            f"{len(s.samplers)} samplers x {len(s.schedules)} schedules",
            f"  dims: {len(s.dims)} ({s.dims[0]}..{s.dims[-1]}); seeds: {len(s.seeds)} in "
            f"{len(self.chunks())} chunks of {s.chunk}",
        ]
        for cell in self.cells:
            pads = sorted({(d, self.dim_pad[(cell.id, d)]) for d in s.dims})
            padded = [f"{d}->{p}" for d, p in pads if self.padded[(cell.id, d)]]
            lines.append(
                f"  {cell.id}: {cell.label}; steps ladder {list(self.ladders[cell.id]) or '-'}; "
                f"grid {self.grid_mode[cell.id]}; padded dims: {', '.join(padded) or 'none'}"
            )
        if s.qstar is not None:
            q = s.qstar
            lines.append(f"  Q*: smallest budget with {q.metric} <= {q.target} ({q.search} over steps {q.steps})")
        lines.append(f"  compilations: <= {self.compilations()['count']}")
        lines.append(f"  estimated work: {self.estimated_work():.3g} coordinate-steps")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


LIVE_CHAIN_ARRAYS = 3  # at least x, the oracle's answer and the update live at once per chain


def device_memory_bytes() -> int:
    """Memory of the first device (``bytes_limit`` where the backend reports it, else the host's
    physical memory)."""
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # pragma: no cover - backends without memory statistics
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(spec) -> None:
    """``ValueError`` before any allocation when one compiled call cannot fit: ``chunk`` chains of
    the largest d need at least ``LIVE_CHAIN_ARRAYS * chunk * d`` floats on one device."""
    item = 8 if jax.config.jax_enable_x64 else 4
    d = max(spec.dims)
    need = LIVE_CHAIN_ARRAYS * spec.chunk * d * item
    have = device_memory_bytes()
    if need > have:
        raise ValueError(
            f"`dims`: d = {d} with `chunk` = {spec.chunk} needs at least {need / 2**30:.3g} GiB per "
            f"compiled call ({LIVE_CHAIN_ARRAYS} arrays of chunk x d x {item} bytes), more than the "
            f"{have / 2**30:.3g} GiB of this device; lower `dims` or `chunk`."
        )


def validate(spec, backend: str | None = None) -> Plan:
    """Check every name, range and combination of ``spec`` on the host and build the plan.

    Raises ``ValueError``/``TypeError`` naming the problem; nothing is compiled.
    """
    if not all(hasattr(spec, f) for f in ("targets", "oracles", "samplers", "schedules", "dims", "seeds")):
        raise TypeError(f"expected a SweepSpec (js.sweeps.SweepSpec or load_spec(path)), got {type(spec).__name__}.")
    backend = backend or jax.default_backend()
    samplers = _check_components(spec)
    check_memory(spec)
    cells = _build_cells(spec, samplers)
    plan = Plan(spec, cells, _ladders(spec, cells), {}, {}, {}, backend, [])
    t_step = SECONDS_PER_COORD_STEP.get(backend, 2e-9)
    for cell in cells:
        _plan_dims(plan, cell, t_step)
    for cell in cells:
        plan.grid_mode[cell.id] = _plan_grid_mode(plan, cell, t_step)
    return plan


def _check_components(spec) -> dict:
    """Every target, oracle, schedule and metric name known; every sampler fixed-step. Returns
    ``{sampler spec: sampler}``."""
    for t in spec.targets:
        if t.name not in _registry.TARGETS:
            raise ValueError(f"Unknown target {t.name!r}; available: {', '.join(sorted(_registry.TARGETS))}.")
    for o in spec.oracles:
        if o.name not in _registry.ORACLES:
            raise ValueError(f"Unknown oracle {o.name!r}; available: {', '.join(_registry.available_oracles())}.")
    for sc in spec.schedules:
        _registry.make_schedule(sc.name, 2, **sc.kwargs)  # raises on bad names/params
    for m in spec.metrics:
        _measures.get_measure(m)
    samplers = {}
    for sp in spec.samplers:
        smp = _registry.make_sampler(sp.name, **sp.kwargs)
        if not isinstance(smp, AbstractFixedStepSampler) or smp.num_queries(4, True) is None:
            raise ValueError(
                f"sampler {sp.label!r} ({type(smp).__name__}) has a data-dependent cost; sweeps over "
                "query budgets support fixed-step samplers (exact cost per step count) only."
            )
        samplers[sp] = smp
    return samplers


def _build_cells(spec, samplers: dict) -> list:
    """Every (target, oracle, sampler, schedule) cell, each (target, oracle) built once at the
    smallest d to catch bad parameters and every metric checked against the cell."""
    probe_d = spec.dims[0]
    cells = []
    i = 0
    for t in spec.targets:
        try:
            target = _registry.TARGETS[t.name](probe_d, **t.kwargs)
        except TypeError as e:
            raise TypeError(f"Bad options {t.kwargs} for target {t.name!r}: {e}") from None
        for o in spec.oracles:
            entry = _registry.ORACLES[o.name]
            entry.build(target, **o.kwargs)
            for sp in spec.samplers:
                for sc in spec.schedules:
                    cell = Cell(i, t, o, sp, sc, entry, samplers[sp])
                    for m in spec.metrics:
                        try:
                            _measures.get_measure(m).check(target, entry, samplers[sp])
                        except ValueError as e:
                            raise ValueError(f"impossible combination in cell {cell.label!r}: {e}") from None
                    cells.append(cell)
                    i += 1
    return cells


def _ladders(spec, cells: list) -> dict:
    """``{cell id: sorted step counts}``: the spec's steps and the steps of every query budget."""
    ladders = {}
    for cell in cells:
        steps = set(spec.steps or ())
        for b in spec.budgets or ():
            n = cell.steps_for_budget(b)
            if n is None:
                raise ValueError(
                    f"query budget {b} is below the {cell.cost(1)} queries one step of "
                    f"{cell.sampler.label!r} costs; raise the smallest budget."
                )
            steps.add(n)
        ladders[cell.id] = tuple(sorted(steps))
    return ladders


def _plan_dims(plan: Plan, cell, t_step: float) -> None:
    """Fill ``plan.dim_pad`` and ``plan.padded`` for ``cell``: each d exact or padded to its
    power-of-two bucket (``dims_mode``; ``auto`` pads when the waste costs less than the
    compilations it saves); notes an oracle that is not mask-aware."""
    spec = plan.spec
    bucketable = cell.oracle_entry.bucketable and cell.target.name in ("gaussian", "gmm")
    if spec.dims_mode == "bucket" and not bucketable:
        raise ValueError(
            f"dims_mode='bucket' needs mask-aware oracles, but oracle {cell.oracle.label!r} is "
            "not registered as bucketable; use dims_mode='auto' or 'exact'."
        )
    buckets: dict[int, list[int]] = {}
    for d in spec.dims:
        buckets.setdefault(next_pow2(d), []).append(d)
    evals = plan.evaluations_per_task(cell)
    steps = plan.max_steps(cell)
    for b, ds in buckets.items():
        if spec.dims_mode == "exact" or not bucketable:
            pad = False
        elif spec.dims_mode == "bucket":
            pad = True
        elif len(ds) == 1:
            pad = False  # one d in the bucket: exact costs the same compilations, no waste
        else:
            waste = sum(b - d for d in ds) * evals * len(spec.seeds) * steps * t_step
            pad = waste < COMPILE_SECONDS_ESTIMATE * (len(ds) - 1)
        for d in ds:
            plan.dim_pad[(cell.id, d)] = b if pad else d
            plan.padded[(cell.id, d)] = pad
    if not bucketable and spec.dims_mode != "exact":
        plan.notes.append(f"{cell.id}: oracle {cell.oracle.label!r} is not mask-aware; one compilation per d")


def _plan_grid_mode(plan: Plan, cell, t_step: float) -> str:
    """The grid padding of ``cell``: ``grid_mode`` where the sampler allows it, ``auto`` chosen
    by cost (``probe:`` when the sampler class is not known to be grid-safe)."""
    spec = plan.spec
    mode = spec.grid_mode
    safe = _grid_safe_by_class(cell.sampler_obj)
    if mode != "exact" and safe is False:
        if spec.grid_mode != "auto":
            raise ValueError(
                f"grid_mode={spec.grid_mode!r}: sampler {cell.sampler.label!r} depends on the grid "
                "length (e.g. Heun's churn uses N); use grid_mode='exact' or 'auto'."
            )
        mode = "exact"
    if mode == "auto":
        mode = _choose_grid_mode(plan, cell, t_step)
        if safe is None and mode != "exact":
            mode = "probe:" + mode
    return mode


def _grid_safe_by_class(sampler) -> bool | None:
    name = type(sampler).__name__
    if name in _GRID_SAFE_CLASSES:
        return True
    if name == "Heun":
        churn = np.asarray(sampler.s_churn)
        return bool(np.all(churn == 0))
    return None


def _choose_grid_mode(plan: Plan, cell, t_step) -> str:
    spec = plan.spec
    steps = list(plan.ladders[cell.id])
    q = spec.qstar
    if q is not None and q.search == "bisect":
        lo, hi = q.steps
        k = plan.evaluations_per_task(cell) - len(steps)
        steps += list(np.geomspace(lo, hi, max(k, 2)).round().astype(int))
    if len(steps) <= 1:
        return "exact"
    nmax = max(steps)
    dsum = sum(plan.dim_pad[(cell.id, d)] for d in spec.dims)
    waste_max = sum(nmax - n for n in steps) * dsum * len(spec.seeds) * t_step
    n_pow2 = len({next_pow2(n) for n in steps})
    waste_pow2 = sum(next_pow2(n) - n for n in steps) * dsum * len(spec.seeds) * t_step
    n_exact = len(set(steps))
    c = COMPILE_SECONDS_ESTIMATE * len(spec.dims)
    costs = {"max": waste_max + c, "pow2": waste_pow2 + c * n_pow2, "exact": c * n_exact}
    return min(costs, key=costs.get)


# ----------------------------------------------------------------------------- kernels


def _kernel_fn(static, d_pad: int, capacity: int, masked: bool, stat_names: tuple, return_x: bool):
    def kernel(dyn, key, seeds, grid, budget, dvalid):
        target, inner, sampler = eqx.combine(dyn, static)
        mask = jnp.arange(d_pad) < dvalid
        oracle = Masked(inner, mask) if masked else inner

        def chain(seed):
            ck = chain_key(key, seed)
            x0 = initial_point(grid, ck, d_pad, mask)
            res = run_chain(oracle, sampler, grid, ck, x0, dim=d_pad, budget=budget,
                            capacity=capacity, mask=mask, budget_is_cost=True)
            x = res.x
            st = res.stats
            out = {"queries": st.queries, "levels": st.levels, "rounds": st.rounds,
                   "status": res.status}
            ctx = {"x": x, "x0": x0, "mask": mask, "target": target}
            out.update(_measures.chain_stats(stat_names, ctx))
            for k, v in st.extra.items():
                out["oracle." + k] = v
            if return_x:
                out["x"] = x
            return out

        return jax.vmap(chain)(seeds)

    return kernel


def _static_key(static) -> tuple:
    leaves, treedef = jax.tree.flatten(static)
    return (treedef, tuple(repr(leaf) for leaf in leaves))


class Runner:
    """Compiles and runs seed chunks of one sweep on the local devices (compile cache included;
    safe to call from several threads, each kernel compiled once)."""

    def __init__(self, num_devices: int | None = None, *, devices=None):
        """``devices``: the devices to shard seed chunks over (default: the first
        ``num_devices`` local devices, all by default)."""
        local = list(devices) if devices is not None else jax.local_devices()
        if num_devices is None:
            num_devices = len(local)
        if not (1 <= num_devices <= len(local)):
            raise ValueError(
                f"`devices={num_devices}` but this process has {len(local)} local device(s); on CPU, "
                "more come from XLA_FLAGS=--xla_force_host_platform_device_count=N."
            )
        self.devices = local[:num_devices]
        self._lock = threading.Lock()
        self._compiling: dict = {}
        self.mesh = Mesh(np.array(self.devices), ("seeds",))
        self.shard = NamedSharding(self.mesh, PartitionSpec("seeds"))
        self.repl = NamedSharding(self.mesh, PartitionSpec())
        self.compiled: dict = {}
        self.num_compilations = 0
        self.compile_seconds = 0.0

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def padded_chunk(self, chunk: int) -> int:
        k = self.num_devices
        return -(-chunk // k) * k

    def run(self, target_p, oracle, sampler, key, seeds, grid, budget, dvalid, *, masked, stat_names,
            return_x=False):
        """Run the chains ``seeds`` (host ints, already padded to a device multiple)."""
        d_pad = target_p.dim
        L = int(grid.shape[0]) - 1
        capacity = int(sampler.query_capacity(L, True) or budget)
        dyn, static = eqx.partition((target_p, oracle, sampler), eqx.is_array)
        args = (
            jax.device_put(dyn, self.repl),
            jax.device_put(key, self.repl),
            jax.device_put(np.asarray(seeds, np.uint32), self.shard),
            jax.device_put(jnp.asarray(grid, jnp.result_type(float)), self.repl),
            jax.device_put(np.int32(budget), self.repl),
            jax.device_put(np.int32(dvalid), self.repl),
        )
        ckey = (
            _static_key(static),
            jax.tree.structure(dyn),
            tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(dyn)),
            d_pad, L, capacity, bool(masked), tuple(stat_names), bool(return_x),
            len(seeds), self.num_devices, jax.config.jax_enable_x64,
        )
        compile_s = 0.0
        with self._lock:  # units may run on several threads: one compilation per key
            key_lock = self._compiling.setdefault(ckey, threading.Lock())
        with key_lock:
            fn = self.compiled.get(ckey)
            if fn is None:
                t0 = time.perf_counter()
                kern = _kernel_fn(static, d_pad, capacity, masked, tuple(stat_names), return_x)
                fn = jax.jit(kern).lower(*args).compile()
                compile_s = time.perf_counter() - t0
                with self._lock:
                    self.compiled[ckey] = fn
                    self.num_compilations += 1
                    self.compile_seconds += compile_s
                    ENGINE_STATS["compilations"] += 1
                    ENGINE_STATS["compile_seconds"] += compile_s
        t0 = time.perf_counter()
        out = jax.device_get(fn(*args))
        run_s = time.perf_counter() - t0
        return out, compile_s, run_s


# ----------------------------------------------------------------------------- tasks


class Task:
    """One ``(cell, d)``: the target, oracle and padding used for every step count and chunk."""

    def __init__(self, plan: Plan, cell: Cell, d: int):
        self.plan, self.cell, self.d = plan, cell, d
        self.d_pad = plan.dim_pad[(cell.id, d)]
        self.target = _registry.TARGETS[cell.target.name](d, **cell.target.kwargs)
        self.masked = plan.padded[(cell.id, d)]
        self.target_p = pad_target(self.target, self.d_pad) if self.masked else self.target
        self.oracle = cell.oracle_entry.build(self.target_p, **cell.oracle.kwargs)
        names = []
        for m in plan.spec.metrics:
            for s in _measures.get_measure(m).stats:
                if s not in names:
                    names.append(s)
        self.stat_names = tuple(names)

    def grid(self, n: int, length: int) -> np.ndarray:
        sc = self.cell.schedule
        g = np.asarray(_registry.make_schedule(sc.name, n, **sc.kwargs))
        if length > n:
            g = np.concatenate([g, np.zeros(length - n, g.dtype)])
        return g


def probe_grid_padding(runner: Runner, task: Task, key, seeds, n: int, length: int) -> bool:
    """Whether ``task``'s sampler gives identical chains for ``n`` steps on a grid zero-padded to
    ``length`` as on the exact grid (all per-chain counts and statistics compared bitwise).

    It runs the production kernels of both grid lengths, so one of the two compilations is reused
    by the sweep whatever the answer.
    """
    ENGINE_STATS["probes"] += 1
    cell = task.cell
    res = []
    for L in (n, length):
        out, _, _ = runner.run(task.target_p, task.oracle, cell.sampler_obj, key, seeds, task.grid(n, L),
                               cell.cost(n), task.d, masked=task.masked, stat_names=task.stat_names)
        res.append(out)
    return all(np.array_equal(res[0][k], res[1][k]) for k in res[0])


def environment(runner: Runner | None = None) -> dict:
    """:func:`jscore.env.environment` of the runner's devices (this process's local ones without one)."""
    return _environment(runner.devices if runner is not None else None)


__all__ = ["validate", "Plan", "Cell", "Runner", "Task", "ENGINE_STATS", "environment", "probe_grid_padding"]
