#!/usr/bin/env bash
# The GPU check: what a CPU cannot test, on the GPUs of this machine, in under 8 minutes: each stage has its own
# time limit (step 130, ddp 40, resume 40, plan 85, smoke 150 s: 445 s; each killed 5 s after it), so one stage that
# hangs or fails costs only its own share and the summary says which. Run it from the repository root after
# `make env`:
#
#     OUT=/tmp/gpu_check bash bench/gpu_check.sh     # everything under $OUT (default: results/bench/gpu/)
#     GPU_CHECK_DRY=1 OUT=/tmp/x bash bench/gpu_check.sh   # no GPU needed: the stages that a CPU can run (ddp and
#                                                          # resume) run on the CPU, the others import everything
#                                                          # they use and count the step on the meta device; a test
#                                                          # runs this to catch errors in the script
#
# Stages:
#   step      the gpu profile's CIFAR-10 training step (the paper's architecture, 256 images, bf16 networks) on
#             cuda:0, eager and compiled (train.compile: CUDA graphs): per step the host's enqueue time (the wall
#             time of the Python call, the device idle when it starts) and the device's time apart (the step's
#             kernels summed by the profiler; and CUDA events around the step), the time of steps queued back to
#             back, FLOPs, dispatched operations and host syncs (eager: the plan's counter), the syncs CUDA itself
#             reports (torch.cuda.set_sync_debug_mode("warn") over 5 steps), peak memory, the compile time; beside
#             the plan's three cases and the plan's count of the step on the meta device
#   ddp       two processes training one run: NCCL with 2+ GPUs; with one GPU two ranks over gloo on CUDA tensors
#   resume    a short smoke run on CUDA (train.deterministic) stopped and resumed, compared bit for bit with the
#             same run uninterrupted
#   plan      the gpu profile's distinct steps (as the plan counts them), the largest share of the profile's steps
#             first, each timed as `make plan` times it (eager) until 70 s have gone, against the plan's
#             arithmetic for the same step; the measurements are kept in $GLOWLIB_CACHE/plan/ for `make plan`
#   smoke     the smoke profile's models and every notebook on CUDA, in a cache and a results folder of their own
#             under $OUT, both emptied first (a fresh run: no model or executed notebook is reused)
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
BEGIN=$(date +%s)

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
  timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local took=$(( $(date +%s) - start ))
  local what=passed
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then what="timed out"; elif [ $rc -ne 0 ]; then what="failed ($rc)"; fi
  echo "$name|$what|$took" >> "$STATUS"
  echo "   $what in ${took} s; log: $OUT/$name.log"
  tail -n 3 "$OUT/$name.log" | cut -c1-300 | sed 's/^/   | /'
}

# ---------------------------------------------------------------------------------------------------- step
cat > "$TMP/step.py" <<'EOF'
import json, os, sys, time, warnings
import torch
from glowlib.plan import GPU_SCENARIOS, gpu_host_seconds, gpu_step_seconds
from glowlib.profiles import profile_config
from glowlib.results import hardware
from glowlib.step_count import StepCounter, count_meta, kernel_seconds, optimizer_step_counts
from glowlib.training.loop import session, tf32_state, train_step

with warnings.catch_warnings():                       # bf16's speed on the meta device is unknown: nothing runs
    warnings.simplefilter("ignore", RuntimeWarning)
    counted = count_meta(profile_config("gpu", "cifar10"))   # the plan's count, the same for both modes
if os.environ.get("DRY") == "1":
    print(json.dumps({"dry run": "imports and the meta count only", "counted": counted}))
    sys.exit(0)
record = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "hardware": hardware("cuda:0"),
          "tf32": tf32_state(), "counted_on_meta": counted}
for mode in ("off", "auto"):                          # eager, then compiled (CUDA graphs)
    run = profile_config("gpu", "cifar10", overrides=[f"train.compile={mode!r}"])
    compiled = mode == "auto"
    start = time.perf_counter()
    r = session(run, device="cuda")
    for _ in range(3):                                # compile, record the graphs, warm up
        train_step(r)
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    counter = None
    if not compiled:                                  # under a dispatch mode a compiled function runs eager
        counter = StepCounter(host=optimizer_step_counts(r))
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
    host, span = [], []
    for _ in range(20):                               # host: the call's wall time, the device idle at its start
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        begin.record()
        t = time.perf_counter()
        train_step(r)
        host.append(time.perf_counter() - t)
        end.record()
        torch.cuda.synchronize()
        span.append(begin.elapsed_time(end) / 1e3)
    kernels = kernel_seconds(lambda: train_step(r), torch.device("cuda"))   # the device's own time
    start = time.perf_counter()                       # queued back to back, as training runs
    for _ in range(20):
        train_step(r)
    torch.cuda.synchronize()
    pipelined = (time.perf_counter() - start) / 20
    record[mode] = {
        "warmup_s": warm, "host_enqueue_s_median": sorted(host)[10], "device_kernels_s": kernels,
        "device_span_s_median": sorted(span)[10], "s_per_step_pipelined": pipelined,
        "images_per_s": run.train.batch_size / pipelined,
        "ops_per_step_dispatched": counter.n_ops if counter else None,
        "host_syncs_counted": counter.n_syncs if counter else None,
        "flops_per_step_counted": counter.flops if counter else None,
        "cuda_sync_warnings_in_5_steps": len([w for w in caught if "synchroniz" in str(w.message).lower()]),
        "max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9,
        "plan": {case: {"host_s": gpu_host_seconds(counted, case, compiled),
                        "device_s": counted["flops_per_step"] / GPU_SCENARIOS[case]["flops_per_s"],
                        "step_s": gpu_step_seconds(counted, case, compiled)} for case in GPU_SCENARIOS}}
    record[mode]["measured_over_central"] = pipelined / record[mode]["plan"]["central"]["step_s"]
    del r
    torch.cuda.empty_cache()
json.dump(record, open(sys.argv[1], "w"), indent=1)
print(json.dumps({m: {k: record[m][k] for k in ("host_enqueue_s_median", "device_kernels_s", "s_per_step_pipelined",
                                               "host_syncs_counted", "cuda_sync_warnings_in_5_steps",
                                               "measured_over_central")} for m in ("off", "auto")}))
EOF
stage step 130 $PY "$TMP/step.py" "$OUT/step.json"

# ---------------------------------------------------------------------------------------------------- ddp
# two ranks training one run: NCCL with 2+ GPUs (one each); with one GPU both share it, over gloo on CUDA tensors:
# each rank is then told it is the node's first (LOCAL_RANK=0), since glowlib trains rank i on cuda:LOCAL_RANK
# and this machine has no cuda:1. The dry run trains the same two ranks on the CPU over gloo.
cat > "$TMP/ddp.py" <<'EOF'
import os, sys, torch, torch.distributed as dist
from glowlib.profiles import profile_config
from glowlib.training import train
dry = os.environ.get("DRY") == "1"
rank, ngpu = int(os.environ["LOCAL_RANK"]), 0 if dry else torch.cuda.device_count()
if ngpu == 1:
    os.environ["LOCAL_RANK"] = "0"
if ngpu < 2:
    dist.init_process_group("gloo")
run = profile_config("smoke", "digits", overrides=["train.steps=20", "train.eval_every=10", "train.batch_size=16",
                                                  "train.device='cpu'" if dry else "train.device='auto'"])
result = train(run, sys.argv[1], progress=False)
print({"rank": rank, "backend": dist.get_backend(), "device": "cpu" if dry else torch.cuda.current_device(),
       "step": result.step})
EOF
ddp_stage() {
  $PY -m torch.distributed.run --standalone --nproc_per_node=2 "$TMP/ddp.py" "$TMP/ddp"
}
export -f ddp_stage
stage ddp 40 bash -c ddp_stage

# ---------------------------------------------------------------------------------------------------- resume
cat > "$TMP/resume.py" <<'EOF'
import os, sys, torch
from glowlib.profiles import profile_config
from glowlib.training import load_checkpoint, train
device = "'cpu'" if os.environ.get("DRY") == "1" else "'cuda'"
run = profile_config("smoke", "digits", overrides=["train.steps=40", "train.eval_every=20", "train.ckpt_every=20",
                                                  f"train.device={device}", "train.deterministic=True"])
out = sys.argv[1]
train(run, f"{out}/whole", progress=False)
train(run, f"{out}/parts", stop_after=20, progress=False)
train(run, f"{out}/parts", resume=True, progress=False)
a, b = load_checkpoint(f"{out}/whole/last.pt"), load_checkpoint(f"{out}/parts/last.pt")
same = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
print({f"bit_exact_resume_on_{device.strip(chr(39))}": same})
sys.exit(0 if same else 1)
EOF
stage resume 40 $PY "$TMP/resume.py" "$TMP/resume"

# ---------------------------------------------------------------------------------------------------- plan
# The plan of the gpu profile times every distinct step; here as many as 70 s allow, the largest share of the
# profile's steps first, each against the plan's arithmetic applied to the same step's counted operations and
# FLOPs (eager: the plan times eager steps). The dry run lists the smoke profile's steps and counts them.
cat > "$TMP/plan.py" <<'EOF'
import json, os, sys, time, warnings
from glowlib.plan import GPU_SCENARIOS, count_key, describe, gpu_host_seconds, gpu_step_seconds, measured
from glowlib.studies import all_runs
from glowlib.step_count import counted_meta
warnings.simplefilter("ignore", RuntimeWarning)
dry = os.environ.get("DRY") == "1"
profile, budget, out = ("smoke" if dry else "gpu"), float(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
groups = {}
for run in all_runs(profile):
    groups.setdefault(count_key(run), []).append(run)
order = sorted(groups.values(), key=lambda g: -sum(r.train.steps for r in g))
rows, total_steps = [], sum(r.train.steps for g in order for r in g)
for group in order:
    run, steps = group[0], sum(r.train.steps for r in group)
    row = {"training": describe(run), "runs": len(group), "steps": steps}
    if time.perf_counter() - start < budget:
        cost = counted_meta(run) if dry else next(iter(measured([run]).values()))
        row["counted"] = {k: cost.get(k) for k in ("flops_per_step", "ops_per_step", "objective_ops", "syncs_per_step")}
        row["plan"] = {case: {"host_s": gpu_host_seconds(cost, case), "step_s": gpu_step_seconds(cost, case)}
                       for case in GPU_SCENARIOS}
        if not dry:
            row["measured"] = {k: cost.get(k) for k in ("s_per_step", "host_s", "device_s", "setup_s")}
            row["measured_over_central"] = cost["s_per_step"] / row["plan"]["central"]["step_s"]
    rows.append(row)
done = [r for r in rows if "measured" in r]
share = sum(r["steps"] for r in done) / total_steps if total_steps else 0.0
weighted = (sum(r["measured"]["s_per_step"] * r["steps"] for r in done) /
            sum(r["plan"]["central"]["step_s"] * r["steps"] for r in done)) if done else None
summary = {"profile": profile, "distinct_steps": len(rows), "measured": len(done), "share_of_steps_measured": share,
           "measured_over_central_weighted": weighted, "rows": rows}
json.dump(summary, open(out, "w"), indent=1)
print(f"{len(done)} of {len(rows)} distinct steps timed ({share:.0%} of the profile's steps); measured / central "
      f"(eager, steps-weighted): {weighted if weighted is None else round(weighted, 2)}")
EOF
stage plan 85 $PY "$TMP/plan.py" 70 "$OUT/plan.json"

# ---------------------------------------------------------------------------------------------------- smoke
smoke_stage() {
  touch "$TMP/stamp"                   # the environment is in place: make must not reinstall it
  local run=""
  if [ "$DRY" = 1 ]; then run="-n"; fi       # the dry run: make says what it would run
  rm -rf "$OUT/smoke-cache" "$OUT/results/smoke"
  GLOWLIB_CACHE="$OUT/smoke-cache" make $run --no-print-directory models PROFILE=smoke STAMP="$TMP/stamp" WORKERS=4 &&
  GLOWLIB_CACHE="$OUT/smoke-cache" make $run --no-print-directory -j4 results PROFILE=smoke STAMP="$TMP/stamp" \
      RESULTS="$OUT/results/smoke"
}
export -f smoke_stage
stage smoke 150 bash -c smoke_stage

# ---------------------------------------------------------------------------------------------------- summary
$PY - "$OUT" "$STATUS" "$NGPU" "$(( $(date +%s) - BEGIN ))" "$DRY" <<'EOF'
import json, sys
from pathlib import Path
out, status, ngpu, took, dry = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
stages = [dict(zip(("stage", "outcome", "seconds"), line.split("|"))) for line in status.read_text().splitlines()]
step = json.loads((out / "step.json").read_text()) if (out / "step.json").is_file() else {}
planned = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
plan = [l for l in (out / "plan.log").read_text().splitlines() if l.strip()] if (out / "plan.log").is_file() else []
summary = {"gpus": ngpu, "dry_run": dry == "1", "seconds": took, "stages": stages,
           "step": {k: v for k, v in step.items() if k != "hardware"},
           "plan": {k: v for k, v in planned.items() if k != "rows"}}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
lines = ["# GPU check", "", f"{ngpu} GPU(s): {step.get('device', '?')}; torch {step.get('torch', '?')}; written by "
         f"`bench/gpu_check.sh`{' (dry run: no GPU)' if dry == '1' else ''} in {took} s.", "",
         "| stage | outcome | seconds |", "|---|---|---|"]
lines += [f"| {s['stage']} | {s['outcome']} | {s['seconds']} |" for s in stages]
for mode, name in (("off", "eager"), ("auto", "compiled (CUDA graphs)")):
    if mode in step:
        m = step[mode]
        lines += ["", f"## The gpu profile's CIFAR-10 step, {name}", "",
                  f"- {m['s_per_step_pipelined']:.4f} s a step queued back to back ({m['images_per_s']:.0f} images/s);"
                  f" host enqueue {m['host_enqueue_s_median'] * 1e3:.1f} ms (median of 20); device "
                  + (f"{m['device_kernels_s'] * 1e3:.1f} ms in kernels (profiler), " if m['device_kernels_s'] else "")
                  + f"{m['device_span_s_median'] * 1e3:.1f} ms between events around the step; "
                  f"{m['warmup_s']:.0f} s to set up and take 3 steps (compiling included)",
                  f"- the plan: central {m['plan']['central']['step_s'] * 1e3:.1f} ms (host "
                  f"{m['plan']['central']['host_s'] * 1e3:.1f} ms, device {m['plan']['central']['device_s'] * 1e3:.1f}"
                  f" ms); measured / central = {m['measured_over_central']:.2f}",
                  f"- operations dispatched {m['ops_per_step_dispatched'] or 'not counted (compiled)'} "
                  f"(counted on the meta device: {step['counted_on_meta'].get('ops_per_step')}); host syncs "
                  f"{m['host_syncs_counted']} counted, {m['cuda_sync_warnings_in_5_steps']} reported by CUDA in 5 "
                  f"steps; peak memory {m['max_memory_allocated_gb']:.1f} GB"]
if plan:
    lines += ["", "## The gpu profile's distinct steps timed against the plan's arithmetic", ""] + plan[-1:]
(out / "README.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
! grep -q "|failed\||timed out" "$STATUS"
