# %% [markdown]
# # 02 · The sampler catalogue and its accounting
#
# Every sampler in jscore reaches the data only through charged score queries
# `S(x, sigma) = grad_x log p_sigma(x)`, and every run reports, per chain,
#
# - **Q** (`res.stats.queries`): oracle calls, including rejected adaptive attempts and correctors;
# - **N_sigma** (`res.stats.levels`): distinct noise levels among those calls (exact float compare);
# - **R** (`res.stats.rounds`): adaptive rounds, the depth of the chain of dependent calls
#   (calls issued together in one round count once; sequential samplers have R = Q).
#
# This notebook runs the whole catalogue on one grid, measures error against queries, shows why
# Heun's 2N - 1 queries touch only N levels, and how parallel and adaptive samplers trade rounds
# for queries. The target is a Gaussian, whose noised score and probability-flow map are known in
# closed form, so every error below is measured against the exact answer.
#
# `SCALE` multiplies the batch size and extends the query ladder (1 is sized for a 2-core CPU).

# %%
import os

SCALE = int(os.environ.get("JSCORE_NOTEBOOK_SCALE", 1))

import io

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import jscore as js

matplotlib.rcParams.update(js.plot.RC)  # jscore's figure style


def show(fig):
    """Render a figure inline as PNG (the Agg backend draws; nothing is written to disk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    display(Image(buf.getvalue()))


DIM = 4
NUM_SAMPLES = 2048 * SCALE
key = jax.random.key(0)

# N(m, diag v) with variances from 0.05 to 4: p_sigma = N(m, diag(v + sigma^2)).
target = js.targets.Gaussian(jnp.linspace(-1.0, 1.0, DIM), jnp.geomspace(0.05, 4.0, DIM))
oracle = js.oracles.Exact(target)

# %% [markdown]
# ## Two exact yardsticks
# - **Distribution error** (every sampler): the output of any of these samplers on a Gaussian
#   target is (close to) Gaussian, so we report the W2 distance between the samples' moment fit
#   and the target, next to the same statistic for exact samples (its Monte-Carlo floor).
# - **Path error** (deterministic samplers): they integrate the probability-flow ODE
#   `dy/dsigma = -sigma S(y, sigma)`, whose exact solution for this target is
#   `y(sigma) = m + sqrt((v + sigma^2) / (v + sigma_0^2)) (y_0 - m)`. Starting every chain from the same
#   `x_init`, the RMS distance to the exact endpoint has no Monte-Carlo noise at all.

# %%
def initial_points(sigma0, n=NUM_SAMPLES):
    """y_0 = sigma_0 z, the same draw js.sample would make, passed explicitly as x_init."""
    return sigma0 * jax.random.normal(jax.random.key(1), (n, DIM))


def path_error(res, x_init, sigma0):
    """RMS over chains of |x - x_exact| for the probability-flow map sigma_0 -> 0."""
    exact = target.mean + jnp.sqrt(target.var / (target.var + sigma0**2)) * (x_init - target.mean)
    return float(jnp.sqrt(jnp.mean(jnp.sum((res.x - exact) ** 2, -1))))


def dist_error(x):
    return float(js.metrics.moment_fit_w2(x, target.mean, target.var))


floor = dist_error(target.sample(jax.random.key(2), NUM_SAMPLES))
print(f"W2 of the moment fit of {NUM_SAMPLES} exact samples (noise floor): {floor:.3f}")

# %% [markdown]
# ## The catalogue on one grid
# `js.samplers.CATALOGUE` maps the short names used by the CLI and sweeps to configured samplers
# (`js.samplers.make(name, **overrides)` builds one). Samplers whose number of queries depends on
# the data (adaptive step size, Picard iteration) report `query_capacity(...) = None` and need a
# `max_queries` budget; a chain that runs out stops with status `budget_exhausted`.
#
# `sampler.num_queries(N, ends_at_zero)` is the exact static count where there is one; the table
# checks it against what the ledger charged.

# %%
N = 12
sigmas = js.schedules.karras(N)  # 12 levels from 80 to 0.002, then 0
x_init = initial_points(sigmas[0])
BUDGET = 400  # for the data-dependent samplers

rows, results = [], {}
for name in js.samplers.CATALOGUE:
    sampler = js.samplers.make(name)
    needs_budget = sampler.query_capacity(N, True) is None
    res = js.sample(oracle, sampler, sigmas, key, x_init=x_init,
                    max_queries=BUDGET if needs_budget else None)
    results[name] = res
    s = js.summarize(res)
    rows.append((name, sampler.num_queries(N, True), s["queries"]["mean"], s["levels"]["mean"],
                 s["rounds"]["mean"], s["status"]["success"], dist_error(res.x)))

print(f"{'sampler':30s} {'Q formula':>9s} {'Q':>7s} {'N_sigma':>7s} {'R':>6s} {'ok':>5s} {'W2':>6s}")
for name, qf, q, l, r, ok, err in rows:
    print(f"{name:30s} {str(qf):>9s} {q:7.1f} {l:7.1f} {r:6.1f} {ok:5d} {err:6.3f}")
print(f"{'(exact samples)':30s} {'':>9s} {'':>7s} {'':>7s} {'':>6s} {'':>5s} {floor:6.3f}")

# %% [markdown]
# Reading the table (N = 12 steps, grid ending at 0):
#
# - one query per step: Euler, DDIM, ancestral, Euler-Maruyama, the exponential integrators,
#   DPM-Solver++ (also its SDE forms `dpmpp_2m_sde`, `dpmpp_3m_sde`), `lms` and UniPC (its
#   corrector reuses the next step's query) all have Q = N_sigma = 12;
# - Heun has Q = 2N - 1 = 23 at N = 12 levels; singlestep DPM-Solver-2/3 pay 2N - 1 and 3N - 2
#   queries, each at its own (off-grid) level, and so does `dpmpp_sde`; the ancestral
#   `dpm_2_ancestral` and `dpmpp_2s_ancestral` pay 2N - 1 queries at only N levels, since at
#   eta = 1 their midpoint level is the next grid level;
# - predictor-corrector and annealed Langevin re-query each level; `single_level` (a negative
#   control) makes all its queries at one level;
# - the randomized midpoint queries a fresh random level per step, so N_sigma = Q;
# - the parallel samplers (`randomized_midpoint_parallel`, `parallel_picard`) are the only ones
#   with R < Q; the adaptive samplers' counts vary per chain.
#
# The W2 column is the error of the whole output distribution (compare with the exact-sample floor
# in the last row). Annealed Langevin and `single_level` fail badly at this budget: started at
# sigma_0 = 80, a handful of Langevin steps per level cannot pull the chains in. They are in the
# catalogue as controls, not as competitive samplers. Catalogue entries are default settings, not
# tuned to this target.
#
# Every chain is independent (no batch-coupled step sizes or norms), so the counts would be the
# same for a batch of one.

# %% [markdown]
# ## Error against queries
# The fair comparison is at equal **queries**, not equal steps: Heun spends two per step,
# DPM-Solver-3 three. For each deterministic sampler we choose the number of steps that gives
# about Q queries, and measure the path error (no Monte-Carlo noise). The adaptive sampler has no
# step count: we vary its tolerance `rtol`, a traced hyper-parameter, so all its points share one
# compilation.

# %%
budgets = [12 * 2**k for k in range(3 + SCALE.bit_length() - 1)]
queries_per_step = {"euler": 1, "heun": 2, "dpmpp_3m_exact": 1}
curves = {}
for name, k in queries_per_step.items():
    pts = []
    for q in budgets:
        n_steps = q // k  # Q = kN - (k - 1): the last step into sigma = 0 is one Tweedie query
        grid = js.schedules.karras(n_steps)
        x0 = initial_points(grid[0])
        res = js.sample(oracle, js.samplers.make(name), grid, key, x_init=x0)
        pts.append((float(res.stats.queries.mean()), path_error(res, x0, grid[0])))
    curves[name] = pts

adaptive_pts = []
for rtol in [0.2, 0.05, 0.0125, 0.003]:  # same compiled program as "adaptive_3" above
    res = js.sample(oracle, js.samplers.Adaptive(order=3, rtol=rtol), sigmas, key, x_init=x_init,
                    max_queries=BUDGET)
    adaptive_pts.append((float(res.stats.queries.mean()), path_error(res, x_init, sigmas[0])))
curves["adaptive_3, rtol 0.2 -> 0.003"] = adaptive_pts

fig, ax = plt.subplots(figsize=(6, 4.2))
for name, pts in curves.items():
    q, e = np.array(pts).T
    ax.loglog(q, e, "o-", label=name)
ax.set_xlabel("queries per chain (Q)")
ax.set_ylabel("path error  RMS |x - x_exact|")
ax.legend(fontsize=8)
ax.set_title(f"Probability-flow samplers on N(m, diag v), d = {DIM}")
fig.tight_layout()
show(fig)
for name, pts in curves.items():
    print(f"{name:30s}", "  ".join(f"Q={q:5.1f}: {e:.1e}" for q, e in pts))
for name in queries_per_step:
    (q0, e0), (q1, e1) = curves[name][-2:]
    print(f"{name:14s} local log-log slope over the last doubling: {np.log(e1 / e0) / np.log(q1 / q0):+.2f}")

# %% [markdown]
# At equal queries the higher-order methods win once the grid resolves the target's smallest
# scale (variance 0.05 here); the slopes tend to -1 (Euler), -2 (Heun) and -3 (DPM-Solver++ 3M with
# the exact third-order coefficient, `dpmpp_3m_exact`; the peers' `dpmpp_3m` tends to -2) only as
# the grid refines, and can be steeper on the way there. DPM-Solver++ 3M
# buys its order with one query per step by reusing past answers (a multistep method), which is
# why it is the cheapest per query among these on long grids. The adaptive sampler picks its own
# grid; tightening `rtol` buys accuracy with queries, and it never needs a step count. (The
# singlestep DPM-Solver-3 has order 3 too, but pays three queries per step; add `"dpm_solver_3": 3`
# to `queries_per_step` to compare.) In float32
# path errors cannot go much below 1e-6.

# %% [markdown]
# ## Why Heun's 2N - 1 queries touch only N levels
# EDM's Heun step from `sigma_i` to `sigma_{i+1}` evaluates the score at `sigma_i` (Euler
# predictor) and at `sigma_{i+1}` (trapezoidal corrector). The corrector's level is the **next**
# grid level, which the next step queries again (at a different point). So N steps make
# 2N - 1 queries (the last step into sigma = 0 is a single Tweedie call) at only the N grid levels.
# `record=js.Record(every=1)` shows the cumulative counts after each step.

# %%
res = js.sample(oracle, js.samplers.Heun(), sigmas, key, num_samples=2, record=js.Record(every=1))
tr = res.trace
print(f"{'step':>4s} {'sigma reached':>13s} {'queries':>7s} {'levels':>6s}")
for i in range(N):
    print(f"{i:4d} {float(tr.sigma[0, i]):13.4f} {int(tr.queries[0, i]):7d} {int(tr.levels[0, i]):6d}")

# %% [markdown]
# After step 0, two queries at two levels (`sigma_0`, `sigma_1`); every later step adds two
# queries but only one new level. DPM-Solver-2, at the same 2N - 1 queries, puts its second
# evaluation at the geometric midpoint `sqrt(sigma_i sigma_{i+1})`, off the grid, hence 2N - 1
# levels. EDM's stochastic Heun ("churn") first raises the noise to `sigma_hat = sigma_i (1 + gamma)`
# and evaluates there, adding one off-grid level per churned step; `s_churn` is a traced field,
# so this reuses the compiled Heun above.

# %%
for label, sampler in [
    ("Heun", js.samplers.Heun()),
    ("Heun, churn in [0.05, 50]", js.samplers.Heun(s_churn=40.0, s_tmin=0.05, s_tmax=50.0)),
    ("DPM-Solver-2", js.samplers.DPMSolver(order=2)),
]:
    r = js.sample(oracle, sampler, sigmas, key, x_init=x_init)  # reuses the catalogue's compilations
    print(f"{label:28s} Q = {int(r.stats.queries[0]):3d}   N_sigma = {int(r.stats.levels[0]):3d}")

# %% [markdown]
# The lower bound of Xun & Price concerns both numbers: any sampler needs about sqrt(d) adaptive
# queries **and** about sqrt(d) distinct levels on its hard family (notebook 03). Counting levels
# separately is what lets an experiment see which of the two a sampler is short of.

# %% [markdown]
# ## Parallel and adaptive samplers: rounds against queries
# A **round** is a set of queries issued together, whose inputs depend only on earlier rounds.
# Parallel samplers spend extra queries to cut rounds (wall-clock depth on parallel hardware):
#
# - `ParallelPicard(window=p, tol)` (ParaDiGMS) re-evaluates a window of p levels per round and
#   slides it past the entries that converged. `tol = 0` accepts one entry per round (R = N,
#   Q = Np - p(p-1)/2, output identical to its base map, Euler); `tol = inf` accepts the whole
#   window (R = ceil(N/p), Q = N, but the output is the unrefined first guess). `tol` is a traced
#   field, so the sweep below compiles once.
# - `RandomizedMidpoint(num_points=K, picard_iters=J)` evaluates K random midpoints per round:
#   R = (N-1)(1+J) + 1 rounds for Q = (N-1)(1+JK) + 1 queries (catalogue entry: K = 4, J = 2).
# - The adaptive samplers are sequential (R = Q), but Q itself is data-dependent, per chain.
#
# Picard pays off on long grids, so we use N = 48 here.

# %%
N_LONG = 48
grid_long = js.schedules.karras(N_LONG)
x_long = initial_points(grid_long[0])  # Euler on this grid was compiled above
euler_long = js.sample(oracle, js.samplers.Euler(), grid_long, key, x_init=x_long)
picard = []
for tol in [0.0, 0.03, 0.1, 0.3, 1.0, float("inf")]:
    r = js.sample(oracle, js.samplers.ParallelPicard(window=8, tol=tol), grid_long, key,
                  x_init=x_long, max_queries=1000)
    picard.append((tol, float(r.stats.queries.mean()), float(r.stats.rounds.mean()),
                   path_error(r, x_long, grid_long[0])))
p = 8
print(f"ParallelPicard(window={p}) on karras({N_LONG}): predicted tol=0 -> R = {N_LONG}, "
      f"Q = {N_LONG * p - p * (p - 1) // 2};  tol=inf -> R = {-(-N_LONG // p)}, Q = {N_LONG}")
print(f"{'tol':>6s} {'Q':>6s} {'R':>6s} {'path error':>10s}")
for tol, q, r, e in picard:
    print(f"{tol:6.2f} {q:6.1f} {r:6.1f} {e:10.2e}")
print(f"Euler (the base map): Q = R = {N_LONG}, path error {path_error(euler_long, x_long, grid_long[0]):.2e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
ax = axes[0]
for name, res in results.items():
    q, r = float(res.stats.queries.mean()), float(res.stats.rounds.mean())
    parallel = r < q - 1e-6
    ax.scatter(q, r, s=30 if parallel else 12, c="C3" if parallel else "0.4")
    if parallel or name.startswith("adaptive"):
        ax.annotate(name, (q, r), fontsize=7, xytext=(4, -8), textcoords="offset points")
lim = [8, 400]
ax.plot(lim, lim, c="0.8", lw=1, label="R = Q (sequential)")
ax.set_xscale("log"); ax.set_yscale("log")
ax.set_xlabel("queries per chain (Q)"); ax.set_ylabel("rounds per chain (R)")
ax.set_title(f"catalogue on karras({N})")
ax.legend(fontsize=8)
ax = axes[1]
q_p, r_p, e_p = np.array([(q, r, e) for _, q, r, e in picard]).T
sc = ax.scatter(q_p, r_p, c=np.log10(e_p), cmap="viridis", s=40, zorder=3)
for (tol, q, r, e) in picard:
    ax.annotate(f"tol={tol:g}", (q, r), fontsize=7, xytext=(4, 4), textcoords="offset points")
ax.scatter([N_LONG], [N_LONG], marker="x", c="k", label="Euler (R = Q = N)")
ax.set_xlabel("queries per chain (Q)"); ax.set_ylabel("rounds per chain (R)")
ax.set_title(f"ParallelPicard(window={p}) on karras({N_LONG})")
fig.colorbar(sc, ax=ax, label="log10 path error")
ax.legend(fontsize=8)
fig.tight_layout()
show(fig)

# %% [markdown]
# With a tolerance around 0.1, Picard reaches Euler's accuracy in about a third of the rounds
# for about 2.5 times the queries; loosening it further cuts rounds at a visible cost in error.
# Every chain slides its own window, so these counts are per chain, not a batch maximum.
#
# For the adaptive samplers the number of queries is decided by the error controller, per chain.
# The histogram shows its spread over chains started at different points:

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
for name in ["adaptive", "adaptive_3", "adaptive_ggf"]:
    q = np.asarray(results[name].stats.queries)
    ax.hist(q, bins=np.arange(q.min(), q.max() + 2) - 0.5, alpha=0.6, label=name)
ax.set_xlabel("queries per chain"); ax.set_ylabel("chains")
ax.legend()
fig.tight_layout()
show(fig)
for name in ["adaptive", "adaptive_3", "adaptive_ggf"]:
    print(name, js.summarize(results[name])["status"])
