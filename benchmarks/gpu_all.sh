#!/usr/bin/env bash
# The GPU benchmark set in one command (target: under 10 minutes on one H100/H200).
#
#   bash benchmarks/gpu_all.sh            # from anywhere; PYTHON=... to pick the interpreter
#   SMOKE=1 bash benchmarks/gpu_all.sh    # the same scripts at tiny sizes on the CPU (~6 min on a
#                                         # loaded 2-core machine; time limits x5, TIMEOUT_SCALE=...):
#                                         # checks the set runs; writes to a temporary folder
#   ONLY=codebook_oracle,network bash benchmarks/gpu_all.sh   # a subset (e.g. to rerun what failed)
#
# Order = priority: the codebook oracle (goal <= 50 ms per 4096-query batch at d = 64, M = 8.9e6),
# the learned-network workload, the mixture throughput (floor %, ratios to diffrax and PyTorch),
# the default `jscore sweep` end to end (goal < 10 s), the lower-bound experiment at d = 1e6 on
# the full-vector path, memory, compile times, the largest d.
#
# Needs jax with CUDA (pip install -U "jax[cuda12]"), and for the peers diffrax and a CUDA build of
# torch (pip install -e ".[bench]"); missing peers are skipped with a message. Results are written
# to benchmarks/results/*_gpu.json (commit them) and the log to benchmarks/results/gpu_all.log.
# Each script has its own time limit (sum 590 s on the GPU); the exit status is non-zero if any failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export EQX_ON_ERROR=nan
# compile.py: a subset of the catalogue (the whole one takes ~2-4 min of compiles)
CS=euler,heun,euler_ancestral,dpmpp_2m,unipc
if [ "${SMOKE:-0}" = 1 ]; then
  DEV=cpu
  TS=${TIMEOUT_SCALE:-5}  # a shared CPU is slow: the smoke run checks that the set runs, not time
  OUT=$(mktemp -d)
  CB=(--dim 16 --num-codewords 5000 --queries 64 --blocks 512,2048 --repeats 2)  # codebook
  NW=(--chains 128 --steps 4 --repeats 2)                       # network
  T=(--dims 64 --log2-size 12 --steps 8 --repeats 2)            # throughput
  SW=(--dims 100,1000 --no-plot --quiet)                        # jscore sweep
  LB=(--dim 2000 --chains 8 --repeats 2)             # lower bound, full vectors
  M=(--dim 64 --log2-size 14 --steps 8)                         # memory
  C=(--dim 8 --chains 4 --steps 4 --samplers "$CS")             # compile
  S=(--chains 2 --steps 4 --start 1024 --max-log2-dim 12 --time-cap 5)  # scale
else
  DEV=gpu
  TS=${TIMEOUT_SCALE:-1}
  OUT=benchmarks/results
  CB=(--repeats 5)
  NW=()
  T=(--repeats 5)
  SW=()
  LB=()
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
wanted() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }
run() {  # run <seconds> <name> <script> [args...]
  local t=$1 name=$2; shift 2
  wanted "$name" || return 0
  t=$((t * TS))
  echo "=== $* (timeout ${t}s) ===" | tee -a "$LOG"
  if ! timeout "$t" "$PY" "$@" --device "$DEV" --out "$OUT/${name}_$DEV.json" 2>&1 \
      | { grep -v "^WARNING" || true; } | tee -a "$LOG"; then
    echo "!!! $name failed or timed out" | tee -a "$LOG"; FAILED+=("$name")
  fi
}
sweep() {  # the default `jscore sweep` end to end (fresh output folder), wall seconds to JSON
  local t=$(($1 * TS)) name=sweep_default
  wanted sweep || return 0
  echo "=== jscore sweep ${SW[*]} (timeout ${t}s) ===" | tee -a "$LOG"
  local t0=$SECONDS rc=0
  timeout "$t" "$PY" -m jscore sweep "${SW[@]}" --overwrite --out "$OUT/$name" \
    > "$OUT/$name.log" 2>&1 || rc=$?
  local secs=$((SECONDS - t0))
  { grep -v "^WARNING" "$OUT/$name.log" || true; } | tail -n 30 | tee -a "$LOG"
  printf '{"benchmark": "sweep_default", "args": "%s", "wall_seconds": %s, "rc": %s, "load_average": "%s"}\n' \
    "${SW[*]}" "$secs" "$rc" "$(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/${name}_$DEV.json"
  echo "jscore sweep: ${secs} s end to end (rc $rc)" | tee -a "$LOG"
  [ "$rc" = 0 ] || { echo "!!! sweep failed or timed out" | tee -a "$LOG"; FAILED+=(sweep); }
}
START=$SECONDS
run 80  codebook_oracle benchmarks/codebook_oracle.py "${CB[@]}"
run 60  network    benchmarks/network.py "${NW[@]}"
run 180 throughput benchmarks/throughput.py "${T[@]}"
sweep 60
run 50  lowerbound_fullvector benchmarks/lowerbound_fullvector.py "${LB[@]}"
run 50  memory     benchmarks/memory.py "${M[@]}"
run 70  compile    benchmarks/compile.py "${C[@]}"
run 40  scale      benchmarks/scale.py "${S[@]}"
echo "done in $((SECONDS - START)) s; results in $OUT${FAILED[*]:+; FAILED: ${FAILED[*]}}" | tee -a "$LOG"
[ ${#FAILED[@]} -eq 0 ]
