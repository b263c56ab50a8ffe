"""The standard benchmark set: writes ``results/bench/<name>.json`` (each with its device, thread count, machine
load and command) and ``results/bench/summary.json`` with the headline figures.

    python bench/run_all.py                      # about 20 minutes on 2 CPU cores (18 on an AVX512-BF16 EPYC)
    python bench/run_all.py --quick              # fewer repeats and depths, for a look
    python bench/run_all.py --only sample_64 memory_small

Configurations: ``small`` = 1x32x32, L=3, K=8, width 128, batch 32 (an MNIST-sized Glow); ``cifar`` = 3x32x32,
L=3, K=8, width 512, batch 16 (CIFAR-10's network at K=8); ``64`` = 3x64x64, L=4, K=8, width 512 (sampling only);
``*_bf16``: the same with ``precision="bf16"``, the coupling networks in bf16.
Every script compares against ``bench/reference.py`` in one process, in alternating repeats; every job runs in a
fresh process (as a user would run it), because the state of the C allocator carries over and changes the figures.
``peak`` is this machine's matmul/conv GFLOP/s (``bench/peak.py``); each ``train_*`` job measures the peak again
in its own process, just before its timing, for its ``fraction_of_peak``; ``profile_*`` splits a training step's
time into coupling convs, 1x1 convs, ActNorm, elementwise, optimizer and other (``bench/profile_ops.py``).
``batch_sweep_cifar`` times the ``cifar`` config at batches 8-64 (``bench/batch_sweep.py``), ``*_tuned`` with the C
allocator as ``glowlib.training`` sets it (``glowlib.runtime``; every other job leaves it as a plain port would);
``compile_cifar`` sets ``torch.compile`` against eager.
``--env NAME=VALUE`` sets environment variables of the jobs (e.g. glibc's ``MALLOC_MMAP_THRESHOLD_``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, atomic_write_bytes

SMALL = ["--channels", "1", "--size", "32", "--levels", "3", "--depth", "8", "--width", "128", "--batch", "32"]
CIFAR = ["--channels", "3", "--size", "32", "--levels", "3", "--depth", "8", "--width", "512", "--batch", "16"]
BF16 = ["--set", "precision=bf16"]
SWEEP = CIFAR[:-2] + ["--batches", "8", "16", "32", "64", "--variants", "defaults=",
                      "defaults_without_inv_backprop=inv_backprop=False", "bf16=precision='bf16'",
                      "bf16_without_inv_backprop=precision='bf16' inv_backprop=False"]
BEST = CIFAR[:-1] + ["64", "--allocator", "tuned", "--steps", "2", "--set", "inv_backprop=False"]
SIXTY_FOUR = ["--channels", "3", "--size", "64", "--levels", "4", "--depth", "8", "--width", "512", "--batch", "8"]


def jobs(quick: bool) -> dict[str, tuple[str, list[str]]]:
    r = (lambda n: ["--repeats", str(max(3, n // 3) if quick else n)])
    depths = ["--depths", "8", "32"] if quick else ["--depths", "8", "16", "24", "32"]
    return {
        "peak": ("peak", r(5)),
        "train_small": ("train_throughput", SMALL + r(20)),
        "train_cifar": ("train_throughput", CIFAR + r(8)),
        # precision="bf16": the coupling networks in bf16 (AMX, AVX512-BF16 or tensor cores make it pay)
        "train_small_bf16": ("train_throughput", SMALL + r(20) + BF16),
        "train_cifar_bf16": ("train_throughput", CIFAR + r(8) + BF16),
        # images/s and fraction of peak against the batch (8-64), fp32 and bf16, with and without invertible
        # backprop; the C allocator as it is, and as glowlib.training tunes it (glowlib.runtime)
        "batch_sweep_cifar": ("batch_sweep", SWEEP + r(6)),
        "batch_sweep_cifar_tuned": ("batch_sweep", SWEEP + r(6) + ["--allocator", "tuned"]),
        # torch.compile (inductor) of the stored-activation model against eager, compile time apart
        "compile_cifar": ("options", CIFAR + r(6) + ["--no-reference", "--compile", "--variants",
                                                     "defaults_without_inv_backprop=inv_backprop=False"]),
        "profile_small": ("profile_ops", SMALL + ["--steps", "3" if quick else "5"]),
        "profile_cifar": ("profile_ops", CIFAR + ["--steps", "2" if quick else "3"]),
        "profile_cifar_bf16": ("profile_ops", CIFAR + ["--steps", "2" if quick else "3"] + BF16),
        # the batch sweep's fastest setting: batch 64, stored activations, the allocator as glowlib.training sets it
        "profile_cifar_b64": ("profile_ops", BEST),
        "profile_cifar_b64_bf16": ("profile_ops", BEST + ["precision=bf16"]),
        "options_small": ("options", SMALL + r(12) + ["--what", "both"]),
        "options_cifar": ("options", CIFAR + r(6) + ["--variants", "defaults=", "defaults_without_inv_backprop="
                                                     "inv_backprop=False", "none=inv_backprop=False fused=False "
                                                     "channels_last=False", "bf16=precision='bf16'",
                                                     "bf16_without_inv_backprop=precision='bf16' inv_backprop=False"]),
        "sample_small": ("sample_speed", SMALL + r(20)),
        "sample_cifar": ("sample_speed", CIFAR + r(10)),
        "sample_64": ("sample_speed", SIXTY_FOUR + r(6)),
        "sample_cifar_bf16": ("sample_speed", CIFAR + r(10) + BF16),
        "sample_64_bf16": ("sample_speed", SIXTY_FOUR + r(6) + BF16),
        "encode_small": ("encode_speed", SMALL + r(20)),
        "encode_cifar": ("encode_speed", CIFAR + r(10)),
        "memory_small": ("memory", SMALL + depths),
        "memory_cifar": ("memory", CIFAR + ["--depths", "8", "32"]),
        "grad_accuracy_small": ("grad_accuracy", SMALL + ["--depths", "8", "16", "32"]),
        # width 512 at K=8, fp32 and bf16: invertible backprop in bf16 against its own plain autograd
        "grad_accuracy_cifar": ("grad_accuracy", CIFAR + ["--depths", "8"]),
        "grad_accuracy_cifar_bf16": ("grad_accuracy", CIFAR + ["--depths", "8"] + BF16),
        "round_trip_small": ("round_trip", SMALL + ["--batch", "64"]),
        # the cpu profile's trained models from the cache (each trains first, ~15 min, if it is not there)
        "round_trip_mnist5k": ("round_trip", ["--profile", "cpu", "--dataset", "mnist5k", "--n", "500"]),
        "round_trip_fashion": ("round_trip", ["--profile", "cpu", "--dataset", "fashion_mnist", "--n", "500"]),
    }


def headline(name: str, record: dict) -> dict:
    """The few numbers of a record that the summary (and the book) quote."""
    res = record.get("results", {})
    if record["benchmark"] in ("train_throughput", "train_speed"):     # train_speed: records made before the rename
        out = {"ours_images_per_s": res["ours"]["images_per_s"],
               "reference_images_per_s": res["reference"]["images_per_s"], "ratio": res["ratio"],
               "paired_ratio": res["paired_ratio"]}
        if "flops_per_image" in res["ours"]:
            out.update({f"{who}_{key}": res[who][key] for who in ("ours", "reference")
                        for key in ("flops_per_image", "gflops_per_s", "fraction_of_peak")})
            out["peak_gflops"] = res["peak_gflops"]
        return out
    if record["benchmark"] == "peak":
        return {"peak_gflops": res["peak_gflops"], "peak_entry": res["peak_entry"]}
    if record["benchmark"] == "profile_ops":
        return {"step_ms": res["step_ms"], "share": {g: v["share"] for g, v in res["groups"].items()}}
    if record["benchmark"] == "sample_speed":
        return {"ours_ms_per_image": res["ours"]["ms_per_image"],
                "ours_T0_ms_per_image": res["ours_T0"]["ms_per_image"],
                "reference_ms_per_image": res["reference"]["ms_per_image"], "speedup": res["speedup"],
                "paired_speedup": res["paired_speedup"]}
    if record["benchmark"] == "encode_speed":
        return {k: res[k] if not isinstance(res[k], dict) else res[k]["ms_per_image"] for k in res}
    if record["benchmark"] == "memory":
        return {"growth": record["growth"],
                "peak_mb": {f"{r['variant']}_K{r['depth']}": r["peak_mb"] for r in record["rows"]}}
    if record["benchmark"] == "grad_accuracy":
        return {f"K{r['depth']}": {k: r[k] for k in ("relative_gradient_error", "model_round_trip_error")}
                for r in record["rows"]}
    if record["benchmark"] == "round_trip":
        return {mode: {k: row[k] for k in ("max_error", "fraction_over_1e-3", "nonfinite_pixels", "ms_per_image")}
                for mode, row in res.items()}
    if record["benchmark"] == "batch_sweep":
        return {"allocator": record["env"].get("allocator"), "best_batch": record["best_batch"],
                "images_per_s": {f"{r['variant']}@{r['batch']}": r["images_per_s"] for r in record["rows"]},
                "model_fraction_of_peak": {f"{r['variant']}@{r['batch']}": r["model_fraction_of_peak"]
                                           for r in record["rows"]}}
    if record["benchmark"] == "options":
        out = {}
        for what, rows in res.items():
            key = "paired_ratio_to_reference" if what == "train" else "paired_speedup_over_reference"
            out[what] = {variant: row.get(key) if key in row else  # no reference timed: the figures themselves
                         {k: row[k] for k in ("images_per_s", "ms_per_image", "first_step_s") if k in row}
                         for variant, row in rows.items()}
        return out
    return {}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default=str(ROOT / "results" / "bench"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="*", help="names of the jobs to run (default: all)")
    p.add_argument("--threads", default="2")
    p.add_argument("--device", default="cpu", help="e.g. cuda: every job runs there")
    p.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="environment of the jobs")
    args = p.parse_args(argv)
    env = dict(os.environ, **dict(item.split("=", 1) for item in args.env))
    out_dir = Path(args.out_dir)
    todo = jobs(args.quick)
    names = args.only or list(todo)
    unknown = set(names) - set(todo)
    if unknown:
        raise SystemExit(f"unknown job(s) {sorted(unknown)}; choose from {list(todo)}")
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in names:
        script, script_args = todo[name]
        t = time.perf_counter()
        out = out_dir / f"{name}.json"
        cmd = [sys.executable, str(Path(__file__).with_name(f"{script}.py")), *script_args, "--threads", args.threads,
               "--device", args.device, "--out", str(out)]
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        record = json.loads(out.read_text())
        record["env"]["job_env"] = dict(item.split("=", 1) for item in args.env)
        atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
        summary[name] = {"script": f"bench/{script}.py", "args": script_args, "wall_s": time.perf_counter() - t,
                         "env": record["env"], **headline(name, record)}
        atomic_write_bytes(summary_path, (json.dumps(summary, indent=1) + "\n").encode())
        print(f"{name}: {json.dumps(headline(name, record))}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
