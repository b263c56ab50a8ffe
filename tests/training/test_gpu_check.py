"""bench/gpu_check.sh runs on the CPU in its dry mode: every stage's Python compiles, every stage is recorded,
the summary is written, and everything lands under $OUT (nothing in the tracked results/bench/gpu/)."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_dry_into_out(tmp_path):
    before = sorted((ROOT / "results/bench/gpu").glob("*")) if (ROOT / "results/bench/gpu").is_dir() else []
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["step", "ddp", "resume", "plan", "smoke"]
    assert all(s["outcome"] == "passed" for s in summary["stages"])
    assert (tmp_path / "out" / "README.md").is_file()
    after = sorted((ROOT / "results/bench/gpu").glob("*")) if (ROOT / "results/bench/gpu").is_dir() else []
    assert after == before
