#!/usr/bin/env bash
# The GPU benchmark set in one command (target: under 10 minutes on one H100/H200).
#
#   bash benchmarks/gpu_all.sh            # from anywhere; PYTHON=... to pick the interpreter
#   SMOKE=1 bash benchmarks/gpu_all.sh    # the same scripts at tiny sizes on the CPU (~1-2 min):
#                                         # checks the set runs; writes to a temporary folder
#
# Needs jax with CUDA (pip install -U "jax[cuda12]"), and for the peers diffrax and a CUDA build of
# torch (pip install -e ".[bench]"); missing peers are skipped with a message. Results are written
# to benchmarks/results/*_gpu.json (commit them) and the log to benchmarks/results/gpu_all.log.
# Each script has its own time limit (sum 580 s); the exit status is non-zero if any failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export EQX_ON_ERROR=nan
# compile.py: a subset of the catalogue (the whole one takes ~2-4 min of compiles)
CS=euler,heun,euler_ancestral,dpmpp_2m,unipc
if [ "${SMOKE:-0}" = 1 ]; then
  DEV=cpu
  OUT=$(mktemp -d)
  T=(--dims 64 --log2-size 12 --steps 8 --repeats 2)          # throughput
  M=(--dim 64 --log2-size 14 --steps 8)                         # memory
  C=(--dim 8 --chains 4 --steps 4 --samplers "$CS")             # compile
  S=(--chains 2 --steps 4 --start 1024 --max-log2-dim 12 --time-cap 5)  # scale
else
  DEV=gpu
  OUT=benchmarks/results
  T=(--repeats 7)
  M=()
  C=(--samplers "$CS")
  S=(--chains 16 --steps 32)
fi
LOG=$OUT/gpu_all.log
mkdir -p "$OUT"
: > "$LOG"
if [ "$DEV" = gpu ]; then
  if ! "$PY" -c "import jax, sys; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)"; then
    echo "no GPU visible to jax ($PY); install jax[cuda12]" | tee -a "$LOG"; exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv 2>&1 | tee -a "$LOG"
fi
"$PY" -c "import jax; print(jax.__version__, jax.devices())" 2>&1 | tee -a "$LOG"
FAILED=()
run() {  # run <seconds> <name> <script> [args...]
  local t=$1 name=$2; shift 2
  echo "=== $* (timeout ${t}s) ===" | tee -a "$LOG"
  if ! timeout "$t" "$PY" "$@" --device "$DEV" --out "$OUT/${name}_$DEV.json" 2>&1 \
      | grep -v "^WARNING" | tee -a "$LOG"; then
    echo "!!! $name failed or timed out" | tee -a "$LOG"; FAILED+=("$name")
  fi
}
START=$SECONDS
run 310 throughput benchmarks/throughput.py "${T[@]}"
run 80  memory     benchmarks/memory.py "${M[@]}"
run 110 compile    benchmarks/compile.py "${C[@]}"
run 80  scale      benchmarks/scale.py "${S[@]}"
echo "done in $((SECONDS - START)) s; results in $OUT${FAILED[*]:+; FAILED: ${FAILED[*]}}" | tee -a "$LOG"
[ ${#FAILED[@]} -eq 0 ]
