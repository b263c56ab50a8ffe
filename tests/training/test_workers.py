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
    holds the run's lock and is about to train). Not anchored at a line's start: the two processes share the
    captured output, and one's progress line without its newline yet can stand before the other's line."""
    done = {}
    for worker, seed in re.findall(r"\[worker (\d)\] (?:\[\d/\d\] )?training [^\n\[]*? seed (\d)", out):
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


def test_a_failed_run_does_not_stop_the_others(tmp_path, monkeypatch):
    """An out-of-memory error and a checkpoint that cannot be written each end their own run only: the failure is
    recorded (why, where its files are), the next runs train, and the report says how to retry."""
    import torch

    import glowlib.workers as workers
    from glowlib.training.checkpoint import CheckpointWriteError
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    runs = tiny_runs(3)
    real = workers.train_if_free

    def flaky(run, *args, **kwargs):
        if run is runs[0]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        if run is runs[2]:
            raise CheckpointWriteError(f"could not write {run_dir(run) / 'last.pt'}: No space left on device")
        return real(run, *args, **kwargs)

    monkeypatch.setattr(workers, "train_if_free", flaky)
    failures, lines = [], []
    outcomes = work_through(runs, False, lines.append, failures=failures)
    assert outcomes == {runs[0].key(): "failed", runs[1].key(): "trained", runs[2].key(): "failed"}
    assert (run_dir(runs[1]) / "done.json").exists()
    assert [f["key"] for f in failures] == [runs[0].key(), runs[2].key()]
    assert failures[0]["why"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "No space left on device" in failures[1]["why"] and str(run_dir(runs[2])) in failures[1]["files"]
    assert any(line.startswith("[1/3] FAILED") for line in lines)
    report = workers.failure_report(failures, "make models PROFILE=smoke")
    assert report[0].startswith("2 run(s) failed") and "make models PROFILE=smoke" in report[-1]


def test_the_command_ends_non_zero_with_the_failures_listed(tmp_path, monkeypatch, capfd):
    """Through the worker processes: a run whose data is missing fails, the others train, and the command ends
    with status 1 and the list of failures."""
    from glowlib.data import is_available
    if is_available("cifar10"):
        pytest.skip("CIFAR-10 is present here: this test needs a dataset that is missing")
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    good = tiny_runs(2)
    missing = good[0].override(["data.dataset='cifar10'", "model.in_channels=3", "model.image_size=32"])
    assert run_workers([missing] + good, 2, progress=False, retry="make models PROFILE=smoke") == 1
    err = capfd.readouterr().err
    assert "1 run(s) failed" in err and missing.key() in err and "make models PROFILE=smoke" in err
    assert all((run_dir(run) / "done.json").exists() for run in good)


def _children(pid: int) -> list[int]:
    found = []
    for task in __import__("pathlib").Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_signal_stops_every_worker_leaving_resumable_checkpoints(tmp_path, signal_name):
    """SIGTERM (or SIGHUP, or Ctrl-C's SIGINT) to the command that started the workers reaches every worker: each saves its run's
    last.pt at the step it reached and ends, the command ends with 128 + the signal, and the runs resume."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from glowlib.training import load_checkpoint, train
    runs = [run.override(["train.steps=100000", "train.ckpt_every=50000", "train.eval_every=50000"])
            for run in tiny_runs(2)]
    listing = tmp_path / "runs.json"
    listing.write_text(json.dumps([run.to_dict() for run in runs]))
    script = ("import json, sys; from glowlib.config import RunConfig; from glowlib.workers import run_workers; "
              f"runs = [RunConfig.from_dict(d) for d in json.load(open({str(listing)!r}))]; "
              "sys.exit(run_workers(runs, 2, progress=False))")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "GLOWLIB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    command = subprocess.Popen([sys.executable, "-c", script], cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = []
    import threading
    # a worker that never says it trains must fail the test, not hang it: the command is killed after 5 minutes
    # (its workers die with it: PR_SET_PDEATHSIG)
    deadline = threading.Timer(300, command.kill)
    deadline.start()
    try:
        for line in command.stdout:                 # both workers are training
            seen.append(line)
            if sum(" training " in x for x in seen) == 2:
                break
        workers = _children(command.pid)
    finally:
        deadline.cancel()
    assert len(workers) == 2, "".join(seen)
    time.sleep(3)                                   # some steps
    command.send_signal(getattr(signal, signal_name))
    try:
        rest = command.communicate(timeout=120)[0]
    finally:                                        # never leave a worker behind, whatever happened
        for pid in workers + [command.pid]:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    assert command.returncode == 128 + getattr(signal, signal_name), rest
    for pid in workers:                             # none left training in the background
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert f"stopped by {signal_name}" in rest and "Traceback" not in rest
    os.environ["GLOWLIB_CACHE"] = str(tmp_path / "cache")
    try:
        for run in runs:
            folder = run_dir(run)
            assert not (folder / "done.json").exists()
            step = load_checkpoint(folder / "last.pt")["step"]
            assert 0 <= step < 100000
            result = train(run, folder, resume=True, stop_after=2, progress=False)
            assert result.step == step + 2
    finally:
        del os.environ["GLOWLIB_CACHE"]


@pytest.mark.parametrize("command", ["models", "plan"])
def test_a_worker_count_past_the_machine_is_one_line_before_any_process_starts(command, capsys, monkeypatch):
    from glowlib import runtime
    from glowlib.__main__ import main
    started = []
    monkeypatch.setattr("subprocess.Popen", lambda *a, **k: started.append(a))
    too_many = runtime.max_workers() + 1
    assert main([command, "--profile", "smoke", "--workers", str(too_many), "--no-measure"][:5 if command == "models"
                                                                                          else 6]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --workers {too_many}: at most") and err.count("\n") == 1
    assert not started


def test_a_worker_is_stopped_by_sigterm_when_its_parent_is_killed(tmp_path):
    """kill -9 of the models command cannot be passed on: the kernel sends each worker SIGTERM instead, so it saves
    its last.pt and stops rather than training on unseen."""
    import subprocess
    import sys
    marker = tmp_path / "stopped"
    child = ("import os, signal, sys, time\n"
             "from glowlib.workers import die_with_parent\n"
             f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').close(), sys.exit(143)))\n"
             "die_with_parent(os.getppid())\n"
             f"open({str(marker)!r} + '.ready', 'w').close()\n"
             "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)\n"])
    deadline = time.time() + 30
    while not (tmp_path / "stopped.ready").exists() and time.time() < deadline:
        time.sleep(0.1)
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the worker went on after its parent was killed"
