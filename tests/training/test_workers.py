"""Several workers share one run list through the cache's locks: every run trained exactly once, a run another
worker holds skipped and come back to at the end (waited for), each worker pinned to its own GPU."""
import json
import re
import threading
import time

import pytest

from glowlib.profiles import profile_config
from glowlib.training.cache import _locked, lock_path, run_dir
from glowlib.workers import order_for, run_workers, work_through


def tiny_runs(n=4):
    sets = ["model.depth=1", "model.width=8", "train.steps=6", "train.eval_every=3", "train.ckpt_every=3",
            "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=32", "data.n_val=32",
            "train.n_test_eval=64", "train.warmup_steps=2", "train.device='cpu'"]
    return [profile_config("smoke", "digits", seed=s, overrides=sets) for s in range(n)]


def trainings(out: str) -> dict[str, list[str]]:
    """{seed: the workers that trained that run}, from the workers' "training" lines (a worker says it only when it
    holds the run's lock and is about to train)."""
    done = {}
    for worker, seed in re.findall(r"^\[worker (\d)\] (?:\[\d/\d\] )?training .* seed (\d)", out, re.M):
        done.setdefault(seed, []).append(worker)
    return done


def test_two_workers_share_a_run_list_and_train_each_run_exactly_once(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    runs = tiny_runs(4)
    assert run_workers(runs, 2) == 0
    done = trainings(capfd.readouterr().out)
    assert sorted(done) == ["0", "1", "2", "3"] and all(len(w) == 1 for w in done.values()), done
    assert {w for (w,) in done.values()} == {"0", "1"}                 # both workers trained some
    for run in runs:
        summary = json.loads((run_dir(run) / "done.json").read_text())
        assert summary["steps"] == 6 and summary["key"] == run.key()
        assert not list(run_dir(run).glob("replaced-*")) and not list(run_dir(run).glob("failed-*"))


def test_a_held_run_is_skipped_then_waited_for(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    held, free = tiny_runs(2)
    lines, outcomes = [], {}
    with _locked(lock_path(held)):                               # another worker is training `held`
        worker = threading.Thread(target=lambda: outcomes.update(work_through([held, free], False, lines.append)))
        worker.start()
        deadline = time.time() + 120
        while not (run_dir(free) / "done.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (run_dir(free) / "done.json").exists()              # went on to the next run
        time.sleep(0.5)
        assert worker.is_alive() and not (run_dir(held) / "done.json").exists()   # and waits for the held one
    worker.join(120)                                             # the holder ended without finishing it
    assert outcomes == {held.key(): "trained", free.key(): "trained"}
    assert any(line.startswith("[1/2] held by another worker, coming back to it") for line in lines)
    assert lines.index(next(x for x in lines if x.startswith("waiting for"))) > \
        lines.index(next(x for x in lines if x.startswith("[2/2] training")))
    assert lines[-2].startswith("training ") and lines[-1].startswith("trained ")


def test_each_worker_starts_at_its_own_share():
    runs = list(range(5))
    assert order_for(runs, 0, 2) == [0, 2, 4, 1, 3]
    assert order_for(runs, 1, 2) == [1, 3, 0, 2, 4]
    assert order_for(runs, 1, 2, only_mine=True) == [1, 3]
    with pytest.raises(ValueError, match="worker_index=2"):
        order_for(runs, 2, 2)


def test_each_worker_gets_its_own_gpu(tmp_path, monkeypatch):
    """With two GPUs visible, worker i's process sees only GPU i (CUDA_VISIBLE_DEVICES), so its runs' "auto"
    device is that GPU and their cache keys stay as they are."""
    import subprocess

    import glowlib.workers as workers
    started = []

    class Started:
        def __init__(self, command, env):
            started.append((command, env))

        def wait(self):
            return 0

    monkeypatch.setattr(workers, "visible_gpus", lambda: ["3", "5"])
    monkeypatch.setattr(subprocess, "Popen", Started)
    assert run_workers(tiny_runs(2), 2) == 0
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["3", "5"]
    assert [c[c.index("--worker-index") + 1] for c, _ in started] == ["0", "1"]
    started.clear()
    assert run_workers(tiny_runs(2), 3) == 0                         # more workers than GPUs: they share them
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["3", "5", "3"]


def test_without_a_gpu_cpu_workers_get_one_core_each_unless_omp_num_threads_says(monkeypatch):
    """No GPU: one worker per usable core (at most runtime.CPU_MAX_WORKERS), each told to use its share of the
    cores as threads; a thread count the user set in OMP_NUM_THREADS is kept."""
    import subprocess

    import glowlib.workers as workers
    from glowlib import runtime
    started = []

    class Started:
        def __init__(self, command, env):
            started.append(env)

        def wait(self):
            return 0

    monkeypatch.setattr(workers, "visible_gpus", lambda: [])
    monkeypatch.setattr(runtime, "visible_gpus", lambda: [])
    monkeypatch.setattr(runtime, "usable_cores", lambda: 6)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.default_workers() == 6
    monkeypatch.setattr(subprocess, "Popen", Started)
    assert run_workers(tiny_runs(2), 3) == 0
    assert [env["OMP_NUM_THREADS"] for env in started] == ["2", "2", "2"]
    started.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert run_workers(tiny_runs(2), 2) == 0
    assert [env["OMP_NUM_THREADS"] for env in started] == ["1", "1"]
    monkeypatch.setattr(runtime, "usable_cores", lambda: 64)
    assert runtime.default_workers() == runtime.CPU_MAX_WORKERS


def test_a_finished_run_says_when_it_finished_and_on_how_many_threads(tmp_path, monkeypatch):
    """done.json records its finish time, the seconds of the whole-test scoring and the threads (what the book adds
    up for trainings side by side); a run finished before that was recorded gets its file's time on loading."""
    import os

    import torch

    from glowlib.training.cache import trained
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    run = tiny_runs(1)[0]
    summary = trained(run, progress=False).summary
    assert summary["threads"] == torch.get_num_threads() and summary["whole_test_s"] >= 0
    written = json.loads((run_dir(run) / "done.json").read_text())
    assert written["finished"] == summary["finished"] and written["finished"][:2] == "20"
    del written["finished"]
    done = run_dir(run) / "done.json"
    done.write_text(json.dumps(written))
    os.utime(done, (1_700_000_000, 1_700_000_000))                  # 2023-11-14
    assert trained(run, progress=False).summary["finished"].startswith("2023-11-1")


def test_workers_are_dealt_the_longest_runs_first_and_unmeasured_ones_last():
    from glowlib.workers import longest_first
    seconds = {"a": 10.0, "b": None, "c": 300.0, "d": 10.0, "e": None}
    assert longest_first(list("abcde"), seconds.get) == ["c", "a", "d", "b", "e"]
