#!/usr/bin/env bash
# The GPU check: what a CPU cannot test, on the GPUs of this machine, in under 8 minutes: each stage has its own
# time limit (step 100, ddp 45, resume 45, plan 90, smoke 180 s; each killed 5 s after it), so one stage that hangs
# or fails costs only its own share and the summary says which. The plan keeps every step it measured, so a rerun
# goes on from there. Run it from the repository root after `make env`:
#
#     OUT=/tmp/gpu_check bash bench/gpu_check.sh     # everything under $OUT (default: results/bench/gpu/)
#     GPU_CHECK_DRY=1 OUT=/tmp/x bash bench/gpu_check.sh   # no GPU needed: each stage's command is printed, not
#                                                          # run (a test runs this to catch errors in the script)
#
# Stages:
#   step      the gpu profile's CIFAR-10 training step (the paper's architecture, 256 images, bf16 networks) on
#             cuda:0, eager and compiled (train.compile: CUDA graphs): per step the host's enqueue time (the
#             wall time of the Python call) and the device time (CUDA events around the step, after a sync), FLOPs,
#             dispatched operations and host syncs (the plan's counter), the syncs CUDA itself reports
#             (torch.cuda.set_sync_debug_mode("warn") over 5 steps), peak memory; beside the plan's three cases
#   ddp       two processes training one run: NCCL with 2+ GPUs; with one GPU two ranks over gloo on CUDA tensors
#   resume    a short smoke run on CUDA stopped and resumed, compared with the same run uninterrupted
#   plan      `python -m glowlib plan --profile gpu` on this machine (steps measured, eager)
#   smoke     the smoke profile's models and every notebook on CUDA, in a cache and a results folder of their own
#             under $OUT (fresh: no executed notebook is reused)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/bench/gpu}
DRY=${GPU_CHECK_DRY:-0}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export GLOWLIB_CACHE=${GLOWLIB_CACHE:-$OUT/cache}
STATUS="$TMP/status"
: > "$STATUS"

if [ ! -x "$PY" ]; then echo "error: $PY is missing; run make env first" >&2; exit 2; fi
if [ "$DRY" = 1 ]; then
  NGPU=1
elif ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: CUDA is not available to $PY; this check needs a GPU (GPU_CHECK_DRY=1 checks the script without one)" >&2
  exit 2
else
  NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
fi
export PY TMP OUT NGPU DRY

# stage NAME LIMIT COMMAND...: run one stage under a time limit, its output in $OUT/NAME.log; record the outcome
stage() {
  local name=$1 limit=$2; shift 2
  local start=$(date +%s)
  echo "== $name (at most ${limit} s)"
  if [ "$DRY" = 1 ]; then
    { echo "dry run: $*"; for arg in "$@"; do case $arg in *.py) $PY -m py_compile "$arg" || exit 1;; esac; done; } \
      > "$OUT/$name.log" 2>&1
  else
    timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  fi
  local rc=$?
  local took=$(( $(date +%s) - start ))
  local what=passed
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then what="timed out"; elif [ $rc -ne 0 ]; then what="failed ($rc)"; fi
  echo "$name|$what|$took" >> "$STATUS"
  echo "   $what in ${took} s; log: $OUT/$name.log"
  tail -n 3 "$OUT/$name.log" | sed 's/^/   | /'
}

# ---------------------------------------------------------------------------------------------------- step
cat > "$TMP/step.py" <<'EOF'
import json, sys, time, warnings
import torch
from glowlib.plan import GPU_SCENARIOS, StepCounter, count_meta, gpu_host_seconds, gpu_step_seconds
from glowlib.profiles import profile_config
from glowlib.results import hardware
from glowlib.training.loop import session, tf32_state, train_step

record = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "hardware": hardware("cuda:0"),
          "tf32": tf32_state()}
for mode in ("off", "auto"):                          # eager, then compiled (CUDA graphs)
    run = profile_config("gpu", "cifar10", overrides=[f"train.compile={mode!r}"])
    start = time.perf_counter()
    r = session(run, device="cuda")
    for _ in range(3):                                # compile, record the graphs, warm up
        train_step(r)
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    counter = StepCounter()
    with counter:
        train_step(r)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")            # CUDA's own view: a warning at each synchronising call
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            train_step(r)
    torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    host, device = [], []
    for _ in range(20):                               # host: the call's wall time; device: events around it
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        t = time.perf_counter()
        train_step(r)
        host.append(time.perf_counter() - t)
        end.record()
        torch.cuda.synchronize()
        device.append(begin.elapsed_time(end) / 1e3)
    start = time.perf_counter()                       # queued back to back, as training runs
    for _ in range(20):
        train_step(r)
    torch.cuda.synchronize()
    pipelined = (time.perf_counter() - start) / 20
    counted = count_meta(run)
    compiled = mode == "auto"
    record[mode] = {
        "warmup_s": warm, "host_enqueue_s_median": sorted(host)[10], "device_s_median": sorted(device)[10],
        "s_per_step_pipelined": pipelined, "images_per_s": run.train.batch_size / pipelined,
        "ops_per_step_dispatched": counter.n_ops, "host_syncs_counted": counter.n_syncs,
        "cuda_sync_warnings_in_5_steps": len([w for w in caught if "synchroniz" in str(w.message).lower()]),
        "max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9,
        "flops_per_step": counted["flops_per_step"],
        "plan": {case: {"host_s": gpu_host_seconds(counted, case, compiled),
                        "step_s": gpu_step_seconds(counted, case, compiled)} for case in GPU_SCENARIOS}}
    record[mode]["measured_over_central"] = pipelined / record[mode]["plan"]["central"]["step_s"]
    del r
    torch.cuda.empty_cache()
json.dump(record, open(sys.argv[1], "w"), indent=1)
print(json.dumps({m: {k: record[m][k] for k in ("host_enqueue_s_median", "device_s_median", "s_per_step_pipelined",
                                               "host_syncs_counted", "cuda_sync_warnings_in_5_steps",
                                               "measured_over_central")} for m in ("off", "auto")}))
EOF
stage step 100 $PY "$TMP/step.py" "$OUT/step.json"

# ---------------------------------------------------------------------------------------------------- ddp
# two ranks training one run: NCCL with 2+ GPUs (one each); with one GPU both share it, over gloo on CUDA tensors
cat > "$TMP/ddp.py" <<'EOF'
import os, sys, torch, torch.distributed as dist
from glowlib.profiles import profile_config
from glowlib.training import train
rank, ngpu = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
torch.cuda.set_device(rank % ngpu)
if ngpu < 2:
    dist.init_process_group("gloo")
run = profile_config("smoke", "digits", overrides=["train.steps=20", "train.eval_every=10", "train.batch_size=16",
                                                  f"train.device='cuda:{rank % ngpu}'" if ngpu < 2 else "train.device='auto'"])
result = train(run, sys.argv[1], progress=False)
print({"rank": rank, "backend": dist.get_backend(), "step": result.step})
EOF
ddp_stage() {
  $PY -m torch.distributed.run --standalone --nproc_per_node=2 "$TMP/ddp.py" "$TMP/ddp"
}
export -f ddp_stage
stage ddp 45 bash -c ddp_stage

# ---------------------------------------------------------------------------------------------------- resume
cat > "$TMP/resume.py" <<'EOF'
import sys, torch
from glowlib.profiles import profile_config
from glowlib.training import load_checkpoint, train
run = profile_config("smoke", "digits", overrides=["train.steps=40", "train.eval_every=20", "train.ckpt_every=20",
                                                  "train.device='cuda'", "train.deterministic=True"])
out = sys.argv[1]
train(run, f"{out}/whole", progress=False)
train(run, f"{out}/parts", stop_after=20, progress=False)
train(run, f"{out}/parts", resume=True, progress=False)
a, b = load_checkpoint(f"{out}/whole/last.pt"), load_checkpoint(f"{out}/parts/last.pt")
same = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
print({"bit_exact_resume_on_cuda": same})
sys.exit(0 if same else 1)
EOF
stage resume 45 $PY "$TMP/resume.py" "$TMP/resume"

# ---------------------------------------------------------------------------------------------------- plan
stage plan 90 $PY -m glowlib plan --profile gpu --workers 1

# ---------------------------------------------------------------------------------------------------- smoke
smoke_stage() {
  touch "$TMP/stamp"                   # the environment is in place: make must not reinstall it
  GLOWLIB_CACHE="$OUT/smoke-cache" make --no-print-directory models PROFILE=smoke STAMP="$TMP/stamp" WORKERS=4 &&
  GLOWLIB_CACHE="$OUT/smoke-cache" make --no-print-directory -j4 results PROFILE=smoke STAMP="$TMP/stamp" \
      RESULTS="$OUT/results/smoke"
}
export -f smoke_stage
stage smoke 180 bash -c smoke_stage

# ---------------------------------------------------------------------------------------------------- summary
$PY - "$OUT" "$STATUS" "$NGPU" <<'EOF'
import json, sys
from pathlib import Path
out, status, ngpu = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
stages = [dict(zip(("stage", "outcome", "seconds"), line.split("|"))) for line in status.read_text().splitlines()]
step = json.loads((out / "step.json").read_text()) if (out / "step.json").is_file() else {}
plan = [l for l in (out / "plan.log").read_text().splitlines()
        if l.startswith(("total:", "  optimistic", "  central", "  pessimistic", "disk:"))] \
    if (out / "plan.log").is_file() else []
summary = {"gpus": ngpu, "stages": stages, "step": {k: v for k, v in step.items() if k != "hardware"}, "plan": plan}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
lines = ["# GPU check", "", f"{ngpu} GPU(s): {step.get('device', '?')}; torch {step.get('torch', '?')}; written by "
         "`bench/gpu_check.sh`.", "", "| stage | outcome | seconds |", "|---|---|---|"]
lines += [f"| {s['stage']} | {s['outcome']} | {s['seconds']} |" for s in stages]
for mode, name in (("off", "eager"), ("auto", "compiled (CUDA graphs)")):
    if mode in step:
        m = step[mode]
        lines += ["", f"## The gpu profile's CIFAR-10 step, {name}", "",
                  f"- {m['s_per_step_pipelined']:.4f} s a step queued back to back ({m['images_per_s']:.0f} images/s);"
                  f" host enqueue {m['host_enqueue_s_median'] * 1e3:.1f} ms, device {m['device_s_median'] * 1e3:.1f} ms"
                  f" (medians of 20)",
                  f"- the plan: central {m['plan']['central']['step_s'] * 1e3:.1f} ms (host "
                  f"{m['plan']['central']['host_s'] * 1e3:.1f} ms); measured / central = "
                  f"{m['measured_over_central']:.2f}",
                  f"- {m['ops_per_step_dispatched']:,} operations dispatched; host syncs {m['host_syncs_counted']} "
                  f"counted, {m['cuda_sync_warnings_in_5_steps']} reported by CUDA in 5 steps; peak memory "
                  f"{m['max_memory_allocated_gb']:.1f} GB"]
if plan:
    lines += ["", "## The gpu profile's plan on this machine", ""] + plan
(out / "README.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
! grep -q "|failed\||timed out" "$STATUS"
