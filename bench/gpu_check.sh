#!/usr/bin/env bash
# The GPU check: what a CPU cannot test, on the GPUs of this machine, in under 8 minutes: each stage has its own
# time limit (80 + 50 + 70 + 230 s, each killed 5 s after it), so the whole stays bounded even when a stage hangs.
# A stage that runs out of time says so in the summary; the plan keeps every step it measured, so a rerun goes on
# from there. Run it from the repository root after `make env`:
#
#     bash bench/gpu_check.sh            # writes results/bench/gpu/{README.md,summary.json,*.json,*.log}
#
# Stages:
#   step      the gpu profile's CIFAR-10 training step (the paper's architecture, 256 images, bf16 networks) on
#             cuda:0: its time (glowlib.plan.measure), FLOPs, dispatched operations and host syncs (the plan's
#             counter), the syncs CUDA itself reports (torch.cuda.set_sync_debug_mode("warn") over 5 steps),
#             GPU utilisation (nvidia-smi sampled every 100 ms over 30 steps), peak memory, TF32 state; and the
#             plan's assumption for an H100-class GPU (glowlib.plan.ASSUMED_GPU) beside the measured time
#   torchrun  `torchrun --nproc_per_node=<GPUs>`: every rank reports the GPU it trained on (each its own), then a
#             short smoke training under torchrun
#   plan      `python -m glowlib plan --profile gpu` on this machine: the gpu profile's estimate from measured
#             steps (kept in $GLOWLIB_CACHE/plan/steps.json, so a later `make plan PROFILE=gpu` reuses them)
#   smoke     the smoke profile's models and every notebook on CUDA (`make models results PROFILE=smoke`, the
#             notebooks into results/smoke/), in a cache of its own: 4 workers share the GPU(s) (tiny models) and
#             4 notebooks run at once
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=results/bench/gpu
PY=.venv/bin/python
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export GLOWLIB_CACHE=${GLOWLIB_CACHE:-$PWD/checkpoints}
STATUS="$TMP/status"
: > "$STATUS"

if [ ! -x "$PY" ]; then echo "error: $PY is missing; run make env first" >&2; exit 2; fi
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: CUDA is not available to $PY; this check needs a GPU" >&2; exit 2
fi
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
export PY TMP OUT NGPU

# stage NAME LIMIT COMMAND...: run one stage under a time limit, its output in $OUT/NAME.log; record the outcome
stage() {
  local name=$1 limit=$2; shift 2
  local start=$(date +%s)
  echo "== $name (at most ${limit} s)"
  timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.log" 2>&1
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
import json, os, subprocess, sys, time, warnings
import torch
from glowlib.plan import ASSUMED_GPU, StepCounter, gpu_step_seconds, measure, optimizer_step_counts, probe_session
from glowlib.profiles import profile_config
from glowlib.results import hardware
from glowlib.training.loop import tf32_state, train_step

run = profile_config("gpu", "cifar10")
cost = measure(run, n_warmup=3, n_timed=20)
r = probe_session(run, run.train.batch_size, "cuda")
for _ in range(3):
    train_step(r)
torch.cuda.synchronize()
counter = StepCounter(host=optimizer_step_counts(r))
with counter:
    train_step(r)
torch.cuda.synchronize()
torch.cuda.set_sync_debug_mode("warn")                 # CUDA's own view: a warning at each synchronising call
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(5):
        train_step(r)
torch.cuda.set_sync_debug_mode("default")
cuda_syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
torch.cuda.synchronize()
gpu = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
smi = subprocess.Popen(["nvidia-smi", "-i", gpu, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                        "-lms", "100"], stdout=subprocess.PIPE, text=True)
torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
for _ in range(30):
    train_step(r)
torch.cuda.synchronize()
seconds = (time.perf_counter() - start) / 30
smi.terminate()
samples = [int(x) for x in smi.communicate()[0].split() if x.strip().isdigit()]
assumed = gpu_step_seconds(cost)
record = {"config": run.to_dict(), "batch": run.train.batch_size, "device": torch.cuda.get_device_name(0),
          "s_per_step_measured": cost["s_per_step"], "s_per_step_30_steps": seconds,
          "images_per_s": run.train.batch_size / seconds, "flops_per_step": cost["flops_per_step"],
          "achieved_tflops": cost["flops_per_step"] / seconds / 1e12, "ops_per_step": counter.n_ops,
          "host_syncs_per_step_counted": counter.n_syncs, "host_syncs_counted": dict(counter.syncs),
          "cuda_sync_warnings_in_5_steps": len(cuda_syncs), "cuda_sync_warnings": cuda_syncs[:10],
          "gpu_utilisation_percent_mean": sum(samples) / len(samples) if samples else None,
          "gpu_utilisation_samples": len(samples), "max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9,
          "assumed_gpu": ASSUMED_GPU, "s_per_step_assumed": assumed, "measured_over_assumed": seconds / assumed,
          "tf32": tf32_state(), "hardware": hardware("cuda:0"), "torch": torch.__version__}
json.dump(record, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: record[k] for k in ("s_per_step_30_steps", "s_per_step_assumed", "ops_per_step",
                                           "host_syncs_per_step_counted", "cuda_sync_warnings_in_5_steps",
                                           "gpu_utilisation_percent_mean", "max_memory_allocated_gb")}))
EOF
stage step 80 $PY "$TMP/step.py" "$OUT/step.json"

# ---------------------------------------------------------------------------------------------------- torchrun
cat > "$TMP/ranks.py" <<'EOF'
import json, os, sys
import torch, torch.distributed as dist
from glowlib.training.device import training_device
from glowlib.training.loop import maybe_init_distributed
device = training_device("auto")
maybe_init_distributed(device)
world = dist.get_world_size() if dist.is_initialized() else 1
mine = torch.tensor([device.index], device=device)
every = [torch.zeros_like(mine) for _ in range(world)]
if world > 1:
    dist.all_gather(every, mine)
else:
    every = [mine]
if int(os.environ.get("RANK", "0")) == 0:
    devices = [int(t.item()) for t in every]
    json.dump({"world_size": world, "device_of_rank": devices, "each_rank_its_own_gpu": len(set(devices)) == world},
              open(sys.argv[1], "w"))
    print(json.dumps({"device_of_rank": devices}))
if dist.is_initialized():
    dist.destroy_process_group()
EOF
torchrun_stage() {
  $PY -m torch.distributed.run --standalone --nproc_per_node="$NGPU" "$TMP/ranks.py" "$OUT/torchrun.json" &&
  $PY -m torch.distributed.run --standalone --nproc_per_node="$NGPU" -m glowlib train --profile smoke \
      --dataset digits --out "$TMP/ddp" --no-progress --set train.steps=40 train.eval_every=20 train.batch_size=16
}
export -f torchrun_stage
stage torchrun 50 bash -c torchrun_stage

# ---------------------------------------------------------------------------------------------------- plan
stage plan 70 $PY -m glowlib plan --profile gpu

# ---------------------------------------------------------------------------------------------------- smoke
smoke_stage() {
  touch "$TMP/stamp"                   # the environment is in place: make must not reinstall it
  GLOWLIB_CACHE="$TMP/cache" make --no-print-directory models PROFILE=smoke STAMP="$TMP/stamp" WORKERS=4 &&
  GLOWLIB_CACHE="$TMP/cache" make --no-print-directory -j4 results PROFILE=smoke STAMP="$TMP/stamp"
}
export -f smoke_stage
stage smoke 230 bash -c smoke_stage

# ---------------------------------------------------------------------------------------------------- summary
$PY - "$OUT" "$STATUS" "$NGPU" <<'EOF'
import json, sys
from pathlib import Path
out, status, ngpu = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
stages = [dict(zip(("stage", "outcome", "seconds"), line.split("|"))) for line in status.read_text().splitlines()]
step = json.loads((out / "step.json").read_text()) if (out / "step.json").is_file() else {}
ranks = json.loads((out / "torchrun.json").read_text()) if (out / "torchrun.json").is_file() else {}
plan_total = [l for l in (out / "plan.log").read_text().splitlines() if l.startswith("total:")] \
    if (out / "plan.log").is_file() else []
summary = {"gpus": ngpu, "stages": stages, "step": {k: v for k, v in step.items() if k not in ("config", "hardware")},
           "torchrun": ranks, "plan_total": plan_total[-1] if plan_total else None}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
lines = ["# GPU check", "", f"{ngpu} GPU(s): {step.get('device', '?')}; torch {step.get('torch', '?')}; written by "
         "`bench/gpu_check.sh`.", "", "| stage | outcome | seconds |", "|---|---|---|"]
lines += [f"| {s['stage']} | {s['outcome']} | {s['seconds']} |" for s in stages]
if step:
    lines += ["", "## The gpu profile's CIFAR-10 step (L=3, K=32, width 512, 256 images, bf16 networks)", "",
              f"- {step['s_per_step_30_steps']:.4f} s a step ({step['images_per_s']:.0f} images/s), "
              f"{step['achieved_tflops']:.1f} TFLOP/s of matmuls and convolutions "
              f"({step['flops_per_step'] / 1e12:.2f} TFLOP a step)",
              f"- the plan's assumption for an H100-class GPU: {step['s_per_step_assumed']:.4f} s a step "
              f"(measured / assumed = {step['measured_over_assumed']:.2f})",
              f"- {step['ops_per_step']:,} aten operations dispatched a step; host syncs a step: "
              f"{step['host_syncs_per_step_counted']} counted, {step['cuda_sync_warnings_in_5_steps']} reported by "
              f"CUDA's sync debug mode in 5 steps",
              f"- GPU utilisation {step['gpu_utilisation_percent_mean']}% (mean of "
              f"{step['gpu_utilisation_samples']} nvidia-smi samples over 30 steps); peak memory "
              f"{step['max_memory_allocated_gb']:.1f} GB",
              f"- TF32: {step['tf32']}"]
if ranks:
    lines += ["", f"## torchrun: device of each rank {ranks['device_of_rank']} "
              f"({'each its own GPU' if ranks['each_rank_its_own_gpu'] else 'SHARED: ranks on the same GPU'})"]
if plan_total:
    lines += ["", "## The gpu profile's plan on this machine", "", plan_total[-1]]
(out / "README.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
! grep -q "|failed\||timed out" "$STATUS"
