"""glowlib.runtime: the C allocator setting that training applies, checked by what glibc then does."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glowlib import runtime

ROOT = Path(__file__).resolve().parents[2]

# malloc 64 MiB, write it, free it, then ask glibc how much free memory its heap holds (mallinfo2, glibc >= 2.33)
PROBE = """
import ctypes, json
from glowlib.runtime import tune_allocator
state = tune_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
n = 64 << 20
p = libc.malloc(n)
ctypes.memset(p, 1, n)
mapped = libc.mallinfo2().hblkhd >= n        # served by its own mmap, not the heap
libc.free(p)
print(json.dumps({"state": state, "mapped": mapped, "heap_free_mb": libc.mallinfo2().fordblks / 2**20}))
"""


def probe(**env):
    import json
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(runtime._glibc() is None, reason="glibc only")
def test_tuned_allocator_keeps_a_freed_large_buffer_in_the_heap():
    tuned, system = probe(GLOWLIB_ALLOCATOR="tuned"), probe(GLOWLIB_ALLOCATOR="system")
    assert tuned["state"]["applied"] and "M_MMAP_THRESHOLD=1073741824" in tuned["state"]["reason"]
    assert not tuned["mapped"] and tuned["heap_free_mb"] >= 64           # kept for the next step
    assert not system["state"]["applied"]
    assert system["mapped"] and system["heap_free_mb"] < 64              # glibc's default: unmapped on free
    unset = probe()                                                       # the default is "tuned"
    assert unset["state"]["allocator"] == "tuned" and not unset["mapped"]
    preset = probe(MALLOC_TOP_PAD_="0")                                   # the environment's own settings win
    assert not preset["state"]["applied"] and "MALLOC_TOP_PAD_" in preset["state"]["reason"]


def test_allocator_choice_names_a_bad_value(monkeypatch):
    monkeypatch.setattr(runtime, "_state", None)
    monkeypatch.setenv("GLOWLIB_ALLOCATOR", "jemalloc")
    with pytest.raises(ValueError, match="GLOWLIB_ALLOCATOR='jemalloc'.*'system'"):
        runtime.tune_allocator()
    with pytest.raises(ValueError, match="'fast'"):
        runtime.tune_allocator("fast")
    assert runtime._state is None                                         # nothing was applied


def test_system_allocator_is_left_alone_and_the_answer_is_kept(monkeypatch):
    monkeypatch.setattr(runtime, "_state", None)
    first = runtime.tune_allocator("system")
    assert first == {"allocator": "system", "applied": False, "reason": "GLOWLIB_ALLOCATOR=system: left as it is"}
    assert runtime.tune_allocator("tuned") is first                       # once per process


def test_the_allocator_changes_no_number_of_a_training_run(tmp_path):
    """The same run trained with the allocator tuned and left alone: identical losses and weights; each
    checkpoint records which was used."""
    import pandas as pd
    import torch

    from glowlib.training import load_checkpoint
    outs = {}
    for choice in ("tuned", "system"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update(PYTHONPATH=str(ROOT), GLOWLIB_ALLOCATOR=choice)
        outs[choice] = tmp_path / choice
        cmd = [sys.executable, "-m", "glowlib", "train", "--profile", "smoke", "--dataset", "digits", "--out",
               str(outs[choice]), "--no-progress", "--set", "train.steps=8", "train.eval_every=4", "model.depth=1"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        assert done.returncode == 0, done.stderr
    a, b = (pd.read_csv(outs[c] / "metrics.csv") for c in ("tuned", "system"))
    losses = ["train_bpd", "train_eval_bpd", "val_bpd", "test_bpd"]
    pd.testing.assert_frame_equal(a[losses], b[losses])
    ca, cb = (load_checkpoint(outs[c] / "last.pt") for c in ("tuned", "system"))
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    assert ca["allocator"]["allocator"] == "tuned" and cb["allocator"]["allocator"] == "system"
    assert ca["allocator"]["applied"] == (runtime._glibc() is not None) and not cb["allocator"]["applied"]


def test_worker_threads_share_the_cores_and_keep_the_users_setting(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    assert [runtime.worker_threads(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert runtime.cpu_workers() == min(8, runtime.CPU_MAX_WORKERS)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.worker_threads(2) == 3
    for bad in ("x", "0", "-2"):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        with pytest.raises(ValueError, match=f"OMP_NUM_THREADS='{bad}'"):
            runtime.worker_threads(2)
    with pytest.raises(ValueError, match="n_workers=0"):
        runtime.worker_threads(0)


def test_usable_cores_is_this_process_s_share_of_the_machine():
    assert 1 <= runtime.usable_cores() <= (os.cpu_count() or 1)
