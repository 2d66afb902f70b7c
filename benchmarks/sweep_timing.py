"""Wall time, CPU time and XLA compilations of one jscore command, cold, in a fresh process.

Runs ``python -m jscore ARGS`` with the package taken from ``--tree`` (a checkout: the current one
by default, or an older commit's worktree for a before/after pair in the same session), an empty
persistent compilation cache and an empty user cache, and records: wall seconds, user+system CPU
seconds of the child, load average before and after, the compilations and compile seconds the run
logs (``N compilations, X s compiling``), and stdout (the table). Writes
``benchmarks/results/sweep_timing/<label>.json``.

    python benchmarks/sweep_timing.py --label after -- sweep --out /tmp/s_after
    python benchmarks/sweep_timing.py --tree /tmp/old --label before -- sweep --out /tmp/s_before

Time on a quiet machine: anything else running inflates every number (the load is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _compiles(text: str):
    """The last ``N compilations, X s compiling`` in ``text``: ``(N, X)`` or ``(None, None)``."""
    hits = re.findall(r"(\d+) compilations?, ([\d.]+) s compiling", text)
    return (int(hits[-1][0]), float(hits[-1][1])) if hits else (None, None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", default=str(HERE.parent), help="checkout whose jscore is run")
    p.add_argument("--label", required=True, help="result file name (before, after, ...)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then the jscore arguments")
    a = p.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if not args:
        p.error("give the jscore arguments after --, e.g. -- sweep --out /tmp/s")
    tree = os.path.abspath(a.tree)
    cache = tempfile.mkdtemp(prefix="jscore-timing-cache-")
    env = dict(os.environ, PYTHONPATH=tree, XDG_CACHE_HOME=cache)
    cmd = [sys.executable, "-m", "jscore", *args]
    if args[0] == "sweep" and "--cache-dir" not in args and "--no-cache" not in args:
        cmd += ["--cache-dir", os.path.join(cache, "xla")]
    load0 = os.getloadavg()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load1 = os.getloadavg()
    n_comp, comp_s = _compiles(proc.stderr + proc.stdout)
    commit = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    rec = dict(label=a.label, command=["jscore", *args], tree_commit=commit, returncode=proc.returncode,
               wall_s=round(wall, 1), cpu_s=round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 1),
               compilations=n_comp, compile_s=comp_s, load_before=load0, load_after=load1,
               machine=f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
               date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               stdout=proc.stdout, stderr_tail=proc.stderr[-4000:])
    out = HERE / "results" / "sweep_timing" / f"{a.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=1))
    print(f"{a.label}: rc={proc.returncode} wall {wall:.0f} s, cpu {rec['cpu_s']:.0f} s, "
          f"{n_comp} compilations, {comp_s} s compiling, load {load0[0]:.2f} -> {load1[0]:.2f} "
          f"({out})")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
