"""Sampling with a learned network: jscore's DenoiserMLP oracle against diffrax and PyTorch.

Workload: the :class:`jscore.nets.DenoiserMLP` that ``jscore train`` builds by default (d = 16,
width 128, depth 3, hidden 256, 16 Fourier frequencies), with random weights (its zero-initialised
output layer replaced by a random one, so the network is not trivially linear), queried through
``js.oracles.Network``; PF-ODE Euler and EDM-Heun on a Karras grid; N chains, float32.

Implementations, timed interleaved in one process (``throughput.time_case``):

- ``jscore``: ``js.sample(js.oracles.Network(model), sampler, sigmas, key, x_init=x0)``;
- ``jscore_chunk``: the same with ``chunk_size = N / 4`` (``lax.map`` over 4 chunks: bounds memory);
- ``scan``, ``pyloop``, ``diffrax``: as in ``throughput.py``, with ``model.score`` as the score;
- ``torch``: a hand-written PyTorch module of the same architecture with the same weights (copied
  from the Equinox model; outputs checked against it), in an eager ``torch.no_grad`` loop;
- ``xla_matmul`` / ``xla_copy``: the roofline probes of the same rounds.

Flops per evaluation per chain: ``2 (d w + depth (2 w h) + w d)`` (the chain-batched matrix
products; the sigma embedding and its per-block projections are computed once per step for all
chains, by every implementation). Memory: compiled ``memory_analysis`` of the jscore call with and
without chunking, against the state and the widest activation (``N x hidden`` floats).

    python benchmarks/network.py                  # CPU: N = 2048, 16 steps
    python benchmarks/network.py --device gpu     # GPU: N = 2^16, 32 steps
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402
import throughput  # noqa: E402

DEFAULTS = {"cpu": {"chains": 2048, "steps": 16, "repeats": 5},
            "gpu": {"chains": 1 << 16, "steps": 32, "repeats": 7}}


def make_model(dim, width, depth, key):
    """The default ``jscore train`` network with a random (non-zero) output layer."""
    import equinox as eqx
    import jax

    import jscore as js

    k1, k2 = jax.random.split(key)
    model = js.nets.DenoiserMLP(dim, width=width, depth=depth, key=k1)
    w = jax.random.normal(k2, model.proj_out.weight.shape) / math.sqrt(width)
    return eqx.tree_at(lambda m: m.proj_out.weight, model, w)


def torch_model(torch, model, tdev):
    """``score(x, sigma)`` for a batch, same architecture and weights as the Equinox ``model``."""
    import numpy as np

    def t(a):
        return torch.tensor(np.asarray(a), device=tdev)

    def lin(layer):
        return t(layer.weight), t(layer.bias)

    def ln(norm):
        return t(norm.weight), t(norm.bias), float(norm.eps)

    F = torch.nn.functional
    e1, e2, pin, pout = lin(model.embed1), lin(model.embed2), lin(model.proj_in), lin(model.proj_out)
    blocks = [(ln(b.norm), lin(b.cond), lin(b.lin1), lin(b.lin2)) for b in model.blocks]
    nout = ln(model.norm_out)
    freqs = t(np.geomspace(1.0, model.max_freq, model.num_freqs).astype(np.float32))
    sd, w = model.sigma_data, model.width

    def score(x, sigma):
        c_in = 1.0 / math.sqrt(sigma * sigma + sd * sd)
        c = 0.25 * math.log(sigma)
        a = freqs * c
        e = torch.cat([torch.full((1,), c, device=tdev), torch.cos(a), torch.sin(a)])
        emb = F.linear(F.silu(F.linear(e, *e1)), *e2)  # once per step, for all chains
        h = F.linear(c_in * x, *pin)
        for (nw, nb, eps), cond, l1, l2 in blocks:
            y = F.layer_norm(h, (w,), nw, nb, eps) + F.linear(emb, *cond)
            h = h + F.linear(F.silu(F.linear(y, *l1)), *l2)
        f = F.linear(F.silu(F.layer_norm(h, (w,), nout[0], nout[1], nout[2])), *pout)
        return -x * (c_in * c_in) + (sd * c_in / sigma) * f

    return score


def check_torch_model(torch, score_t, model, tdev, key):
    """Largest relative difference of the PyTorch score from the Equinox one on a batch."""
    import jax
    import numpy as np

    x = jax.random.normal(key, (64, model.dim))
    worst = 0.0
    for s in (0.01, 0.5, 20.0):
        ref = np.asarray(jax.vmap(model.score, in_axes=(0, None))(x, s))
        got = score_t(torch.tensor(np.asarray(x), device=tdev), s).cpu().numpy()
        worst = max(worst, float(np.max(np.abs(got - ref)) / np.max(np.abs(ref))))
    return worst


def memory(model, sigmas, n, chunk):
    import jax

    import jscore as js

    oracle = js.oracles.Network(model)
    x = jax.ShapeDtypeStruct((n, model.dim), "float32")
    out = {}
    for name, kw in (("jscore", {}), ("jscore_chunk", {"chunk_size": chunk})):
        fn = jax.jit(lambda o, s, k, x, kw=kw: js.sample(o, js.samplers.Euler(), s, k, x_init=x, **kw).x)
        out[name] = _common.memory_of(fn.lower(oracle, sigmas, jax.random.key(0), x).compile())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--chains", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--samplers", default="euler,heun")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    import jax
    import jax.numpy as jnp

    import jscore as js

    cfg = DEFAULTS[args.device]
    n = args.chains or cfg["chains"]
    repeats = args.repeats or cfg["repeats"]
    args.steps = args.steps or cfg["steps"]
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    model = make_model(args.dim, args.width, args.depth, jax.random.key(1))
    sigmas = js.schedules.karras(args.steps)
    x0 = sigmas[0] * jax.random.normal(jax.random.key(2), (n, args.dim), jnp.float32)
    d, w, h = model.dim, model.width, model.hidden
    flops = 2.0 * n * (d * w + model.depth * 2 * w * h + w * d)
    work = (flops, 8.0 * n * d)
    torch, tdev = throughput.torch_or_none(args.device)
    score_t = torch_dev = None
    if torch is not None:
        score_t = torch_model(torch, model, tdev)
        torch_dev = check_torch_model(torch, score_t, model, tdev, jax.random.key(3))
        print(f"PyTorch network vs Equinox network: max relative score difference {torch_dev:.1e}")
        assert torch_dev < 1e-4, "the PyTorch copy of the network does not match"
    probes = _common.roofline_probes(args.device)
    oracle = js.oracles.Network(model)
    cases = []
    for sname in args.samplers.split(","):
        impls, notes = throughput.build_jax_impls(sname, model, sigmas, args.steps,
                                                  jax.random.key(0), oracle=oracle)
        sampler = {"euler": js.samplers.Euler(), "heun": js.samplers.Heun()}[sname]
        impls["jscore_chunk"] = lambda x0, s=sampler: js.sample(
            oracle, s, sigmas, jax.random.key(0), x_init=x0, chunk_size=n // 4).x
        torch_impl = None
        if torch is not None:
            torch_impl, notes["torch"] = throughput.torch_loop(torch, score_t, sname, sigmas,
                                                               args.steps, tdev)
        else:
            notes["torch"] = tdev
        case = throughput.time_case(sname, d, n, args.steps, repeats, x0, impls, notes,
                                    torch_impl, work, None, probes)
        cases.append(case)
        throughput.print_case(case)
    mem = memory(model, sigmas, n, n // 4)
    state, act = 4 * n * d, 4 * n * h
    for name, m in mem.items():
        if m is not None:
            m.update(peak_over_state=m["peak_bytes"] / state, temp_over_activation=m[
                "temp_size_in_bytes"] / act)
            print(f"  memory {name:13s} peak {m['peak_bytes'] / 2**20:7.2f} MiB = "
                  f"{m['peak_over_state']:.1f} x state, temp {m['temp_over_activation']:.1f} x "
                  f"(N x hidden)")
    _common.stamp_end(env)
    payload = {"benchmark": "network", "env": env, "device": _common.device_label(env),
               "model": model.hyperparams(), "chains": n, "steps": args.steps,
               "flops_per_eval": flops, "torch_max_rel_score_dev": torch_dev,
               "chunk_size": n // 4, "memory": mem, "state_bytes": state,
               "activation_bytes": act, "cases": cases,
               "param_bytes": 4 * sum(x.size for x in jax.tree.leaves(model) if hasattr(x, "size"))}
    print(f"saved {_common.save_json('network', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
