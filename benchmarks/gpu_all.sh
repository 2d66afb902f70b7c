#!/usr/bin/env bash
# The GPU benchmark set in one command (target: under 10 minutes on one H100/H200).
#
#   bash benchmarks/gpu_all.sh            # from the repository root; PYTHON=... to pick the interpreter
#
# Needs jax with CUDA (pip install -U "jax[cuda12]"), and for the peers diffrax and a CUDA build of
# torch (pip install -e ".[bench]"); missing peers are skipped with a message. Results are written
# to benchmarks/results/*_gpu.json (commit them) and the log to benchmarks/results/gpu_all.log.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export EQX_ON_ERROR=nan
LOG=benchmarks/results/gpu_all.log
mkdir -p benchmarks/results
: > "$LOG"
if ! "$PY" -c "import jax, sys; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)"; then
  echo "no GPU visible to jax ($PY); install jax[cuda12]" | tee -a "$LOG"; exit 1
fi
"$PY" -c "import jax; print(jax.__version__, jax.devices())" 2>&1 | tee -a "$LOG"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv 2>&1 | tee -a "$LOG"
run() {  # run <seconds> <script> [args...]
  local t=$1; shift
  echo "=== $* (timeout ${t}s) ===" | tee -a "$LOG"
  timeout "$t" "$PY" "$@" --device gpu 2>&1 | grep -v "^WARNING" | tee -a "$LOG"
}
run 330 benchmarks/throughput.py --repeats 7
run 90  benchmarks/memory.py
run 60  benchmarks/compile.py
run 90  benchmarks/scale.py --chains 16 --steps 32
echo "done" | tee -a "$LOG"
