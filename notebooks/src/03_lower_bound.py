# %% [markdown]
# # 03 · The query lower bound: hard instance, adversary, audit, sqrt(d)
#
# Xun & Price (*Query Lower Bounds for Diffusion Sampling*, arXiv 2604.10857) show that with
# score answers that are only polynomially accurate in L^p, any sampler needs about sqrt(d)
# adaptive queries at about sqrt(d) distinct noise levels. jscore's lower-bound lab
# (`js.lowerbound`) is the package's own reconstruction of that argument, made executable:
#
# 1. the **hard instance**: the uniform law on a random spherical codebook of `M = exp(R d)`
#    points of norm `rho sqrt(d)`, with a hidden rate R;
# 2. an **adversary** oracle, `LRAdversary(codebook, eps, p)`, that answers with the score of a
#    codebook-free reference law Q unless a likelihood-ratio test says the query is informative,
#    and whose error is at most `eps` in `L^p(p_sigma)` at every sigma: the **audit** checks this;
# 3. success against the number of distinct levels under exact, reference and adversarial oracles;
# 4. the codebook-free large-d simulation and the sqrt(d) figure.
#
# `SCALE` multiplies the Monte-Carlo sizes and extends the dimension ladder.

# %%
import os

SCALE = int(os.environ.get("JSCORE_NOTEBOOK_SCALE", 1))

import io
import pathlib
import tempfile

import jax
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


work = pathlib.Path(tempfile.mkdtemp(prefix="jscore-nb03-"))

# %% [markdown]
# ## The hard instance at small d
# `SphereCodebook.random(key, dim, rate, rho)` draws `M = ceil(exp(rate * dim))` codewords on the
# sphere of radius `rho sqrt(d)`. Its noised score is exact (a softmax over codewords, computed
# in blocks), so it is an ordinary jscore target. Its reference `Q` is the uniform law on the same
# sphere (`js.targets.UniformSphere`), which carries no information about the codewords.

# %%
D, RATE, EPS = 16, 0.25, 0.05
codebook = js.targets.SphereCodebook.random(jax.random.key(0), D, RATE)
print(f"d = {D}, rate = {RATE}: M = {codebook.num_codewords} codewords of norm "
      f"{float(np.linalg.norm(np.asarray(codebook.codebook[0]))):.3f} (= sqrt(d))")
print("reference law:", type(codebook.reference).__name__)

# %% [markdown]
# ## The adversary and its audit
# `LRAdversary(codebook, eps, p)` answers the true score `s_P` only where the likelihood ratio
# `dP_sigma/dQ_sigma` at the query is large and `|x|` lies in a typical band; elsewhere it answers
# the reference score `s_Q`. It reports per chain whether any answer was informative
# (`res.stats.informative`). `js.lowerbound.audit` estimates `||O - s_P||_{L^p(P_sigma)}` from
# planted points on a sigma grid around the critical level and gives a one-sided upper
# confidence bound; the adversary is admissible when that bound is `<= eps` everywhere.

# %%
adversary = js.oracles.LRAdversary(codebook, EPS, p=2.0)
audit = js.lowerbound.audit(adversary, codebook, n=2000 * SCALE, key=jax.random.key(1))
print(f"audit passed: {audit.ok};  max upper bound / eps = {audit.margin:.3f}")
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogx(audit.sigma, audit.lp_error, "o-", ms=3, label="L2 error estimate")
ax.semilogx(audit.sigma, audit.upper, "--", label="upper confidence bound")
ax.axhline(EPS, c="k", lw=1, label="eps")
ax2 = ax.twinx()
ax2.semilogx(audit.sigma, audit.informative, c="C3", alpha=0.6, label="informative fraction")
ax2.set_ylabel("informative fraction", color="C3")
ax.set_xlabel("sigma"); ax.set_ylabel("||O - s_P||")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
show(fig)

# %% [markdown]
# The adversary is informative only in a window of sigma around the critical level of the hidden
# rate; outside it the answers carry no information about the codewords, yet the error stays
# below eps. (The spec's mandatory audit uses `n >= 10^4` planted points per level; `SCALE`
# raises n.)
#
# ## Success against the number of levels
# A sampler run on a geometric grid of K levels (with a random log-offset) succeeds when its
# output decodes to a codeword. With the exact oracle a few levels suffice; with the reference
# oracle nothing about the codebook is ever revealed, so success is zero; against the adversary
# the sampler must hit the informative window, which needs enough distinct levels.
# `exact_experiments.success_vs_levels` runs all three.

# %%
from jscore.lowerbound import exact_experiments

Ks = [1, 2, 4, 8]
rows = exact_experiments.success_vs_levels(
    {"euler": js.samplers.Euler()}, D, [RATE], Ks, 32 * SCALE, jax.random.key(2),
    eps=EPS, num_offsets=2)
print(f"{'oracle':>10s} {'K':>3s} {'success':>8s} {'informative':>11s} {'levels':>6s}")
for r in rows:
    print(f"{r['oracle']:>10s} {r['K']:3d} {r['success']:8.2f} {r['informative']:11.2f} {r['levels_mean']:6.1f}")
fig, ax = plt.subplots(figsize=(6, 3.8))
for oracle in ("exact", "adversary", "reference"):
    rs = [r for r in rows if r["oracle"] == oracle]
    ax.plot([r["K"] for r in rs], [r["success"] for r in rs], "o-", label=oracle)
ax.set_xscale("log", base=2); ax.set_xlabel("distinct levels K"); ax.set_ylabel("decoder success")
ax.set_title(f"Euler on the hard instance, d = {D}")
ax.legend(); fig.tight_layout()
show(fig)

# %% [markdown]
# At d = 16 the informative window is wide (order one in log sigma), so a handful of levels
# suffices: these small-d runs check the wiring of the construction, not the scaling. The scaling
# needs large d, where an explicit codebook (`M = exp(R d)` points) cannot be stored.
#
# ## Codebook-free simulation and the sqrt(d) figure
# `js.lowerbound.scaling(...)` never builds a codebook: it reduces the adversary's decision to two
# scalars per query (the query's norm and its largest codeword correlation, whose law is known),
# computes the informative window in log sigma for each hidden rate, and finds K*(d), the number
# of geometric levels (with random log-offsets) at which the probability that *some* answer of the
# adversary is informative reaches 1/2, together with the number of queries of an optimal adaptive
# searcher. An informative answer is necessary for success, so K* is a necessary condition, not
# the point where the sampler succeeds. The window's width shrinks like sqrt(log(d/eps)/d), so
# covering a fixed range of rates needs about sqrt(d / log d) levels.

# %%
dims = (400, 1600, 6400) if SCALE == 1 else (400, 1600, 6400, 25600, 102400)[: 3 + SCALE]
config = js.sweeps.LowerBoundSweep(dims=dims, samplers=("euler",), n_xi=300 * SCALE,
                                   n_offsets=4 * SCALE)
run = js.sweep(config, out=str(work / "scaling"), quiet=True, cache_dir=None)
print(run.table())
display(Image(filename=str(work / "scaling" / "scaling.png")))

# %% [markdown]
# Columns: `window` gives the edges of the informative window in log(sigma/sigma_c) and `w_norm`
# its width scaled by sqrt(d / ln(d/eps)), which is nearly constant (about 3.3): the window shrinks
# like sqrt(log(d/eps)/d), so the number of windows N(d) and K*(d) grow with a log-log slope a
# little below 1/2 (sqrt(d) up to the log). Every K* is a bracket `K*_lo .. K*_hi`: the levels at
# which the upper and the lower side of P(some answer informative) reach 1/2, with the Monte-Carlo
# half-width over independent replicates in percent (the documentation's "Certified bound"
# page). `exact` is the exact-oracle control, measured: the fraction of chains that decoded and
# the queries they used. The optimal adaptive
# searcher (which knows the window centres and stops at the first informative answer) needs fewer
# queries, and its count grows more slowly over this short range; the slopes are estimates from
# three dimensions at `SCALE = 1`, and with only 4 lattice points per replicate the Monte-Carlo
# half-widths of K* here are 5-12%, so the sampler's slope is rough (the default `jscore sweep`
# is sized to at most 3%). The command line runs the full ladder up to d = 10^6:
#
# ```bash
# jscore lowerbound scale --dims 400,1600,6400,25600,102400,409600,1000000 --out runs/lowerbound
# ```
