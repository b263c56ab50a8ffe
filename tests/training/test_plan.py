"""The plan of a profile: every training with its size and measured cost, cached or not, the total, the missing data;
measurements kept for the next plan; missing data stops ``make reproduce`` before anything trains."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import glowlib.plan as plan
from glowlib.profiles import profile_config
from glowlib.training import run_dir, trained

ROOT = Path(__file__).resolve().parents[2]


def tiny(seed=0, dataset="digits", **train):
    sets = ["model.depth=1", "model.width=8", "train.steps=40", "train.eval_every=10", "train.batch_size=16",
            "train.init_batch=32", "data.n_val=32", "train.device='cpu'"]
    sets += [f"train.{k}={v!r}" for k, v in train.items()]
    return profile_config("smoke", dataset, seed=seed, overrides=sets)


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    runs = [tiny(0), tiny(1), tiny(0, steps=80)]
    monkeypatch.setattr(plan, "all_runs", lambda profile: runs)
    return runs


def test_the_plan_measures_each_step_once_and_says_what_is_cached(two_runs, monkeypatch):
    cached, partial, fresh = two_runs
    trained(cached, progress=False)                      # a whole cache entry: done.json, metrics, best.pt
    run_dir(partial).mkdir(parents=True)
    (run_dir(partial) / "metrics.csv").write_text("step,val_bpd\n10,3.0\n20,2.9\n")
    p = plan.plan("smoke")
    rows = p["rows"]
    assert [r.status for r in rows] == ["cached", "partial (step 20)", "to train"]
    assert [r.steps_left for r in rows] == [0, 20, 80]
    cost = rows[2].cost                                  # seeds and steps share one measurement
    assert rows[0].cost == rows[1].cost == cost and cost["syncs_per_step"] == 0
    assert cost["s_per_step"] > 0 and cost["flops_per_step"] > 0 and cost["ops_per_step"] > 100
    assert rows[0].seconds == 0 and rows[2].seconds > rows[1].seconds > 0
    assert p["serial_seconds"] == pytest.approx(sum(r.seconds for r in rows))
    assert p["seconds"] == pytest.approx(plan.makespan([r.seconds for r in rows], p["workers"]))
    text = plan.format_plan(p)
    assert "3 trainings" in text and "total: 2 of 3 trainings to run" in text and "H100-class" in text
    assert text.count("glow digits L2 K1 w8") == 3
    monkeypatch.setattr(plan, "measure", lambda *a, **k: pytest.fail("measured again"))
    started = time.perf_counter()
    assert plan.plan("smoke")["rows"][2].cost == cost                    # kept: a second plan is fast
    assert time.perf_counter() - started < 10
    assert json.loads(plan.measurements_path().read_text())


def test_missing_data_is_named_with_how_to_get_it_and_stops_before_measuring(two_runs, monkeypatch, capsys):
    two_runs.append(tiny(0, dataset="cifar10"))
    monkeypatch.setattr(plan, "is_available", lambda name, root=None: name != "cifar10")
    monkeypatch.setattr(plan, "measure", lambda *a, **k: pytest.fail("measured although data is missing"))
    assert plan.main("smoke", check_data=True) == 2
    out, err = capsys.readouterr()
    assert "MISSING DATA: cifar10" in out and "make data" in out and "nothing was trained" in err


def test_the_cli_prints_the_plan_and_reproduce_starts_with_it(tmp_path):
    env = {"GLOWLIB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "glowlib", "plan", "--profile", "smoke", "--no-measure"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plan of profile smoke:") and "to train" in done.stdout
    steps = subprocess.run(["make", "-n", "reproduce-steps", "PROFILE=smoke"], capture_output=True, text=True,
                           cwd=ROOT, timeout=60).stdout
    assert "glowlib plan --profile smoke --check-data" in steps
    assert steps.index("plan PROFILE=smoke CHECK_DATA=1") < steps.index("make --no-print-directory models")


def test_make_models_shows_a_line_per_run_with_its_estimate(two_runs, capsys):
    from glowlib.workers import work_through
    plan.plan("smoke")                                                 # measurements kept
    work_through(two_runs[1:2], progress="lines", log=print)
    out = capsys.readouterr().out
    assert "[1/1] training glow digits L2 K1 w8" in out and ", about " in out
    assert "step 40/40 (100%)" in out and "bits/dim" in out and "left" in out


def test_the_total_is_the_wall_time_of_the_workers_sharing_the_list():
    assert plan.makespan([3, 1, 1, 1], 2) == 3                    # the long one alone, the three short ones beside
    assert plan.makespan([1, 1, 1, 1], 2) == 2
    assert plan.makespan([1, 2, 3], 1) == 6
    assert plan.makespan([5], 4) == 5
    assert plan.makespan([1, 1, 1, 1, 4], 2) == 4                 # dealt longest first, not in list order (5)


def test_a_cpu_step_is_measured_at_the_threads_a_worker_gets(two_runs):
    """Each of N CPU workers runs at its share of the cores: the plan times steps at that many threads, keeps the
    figure under a key that names them, and puts this process's threads back."""
    import torch
    run, before = two_runs[0], torch.get_num_threads()
    cpu = torch.device("cpu")
    assert plan.measurement_key(run, cpu, 1) != plan.measurement_key(run, cpu, 2)
    assert plan.measurement_key(run, cpu) == plan.measurement_key(run, cpu, before)
    cost = plan.measure(run, cpu, n_warmup=1, n_timed=1, threads=1)
    assert cost["threads"] == 1 and torch.get_num_threads() == before
    one = plan.plan("smoke", workers=1)
    assert one["workers"] == 1 and one["seconds"] == pytest.approx(one["serial_seconds"])
    assert "1 worker(s)" in plan.format_plan(one)


def test_a_run_is_counted_compiled_on_the_gpu_only_where_compiling_pays_for_itself():
    """The H100 cases in order, optimistic <= central <= pessimistic, for a short run and a long one. A short run
    (1,000 steps, below CUDA_COMPILE_MIN_STEPS: compiling would take longer than the eager steps it replaces) is
    counted eager in every case, so
    its central figure is the eager arithmetic and below the pessimistic one; a long run (100,000 steps) is counted
    compiled where a case has CUDA graphs, its compile time included."""
    cost = {"flops_per_step": 0.7e9, "ops_per_step": 3_700, "objective_ops": 3_000}  # a digits Glow's step, roughly
    for steps in (1_000, 100_000):
        run = tiny(steps=steps, eval_every=1_000, device="auto")
        assert plan.compiles_on_gpu(run)
        cases = {case: plan.gpu_run_seconds(run, steps, cost, case) for case in plan.GPU_SCENARIOS}
        assert cases["optimistic"] <= cases["central"] <= cases["pessimistic"], (steps, cases)
        for case, figures in plan.GPU_SCENARIOS.items():
            eager = plan.run_seconds(run, steps, plan.gpu_step_seconds(cost, case))
            if figures["graph_launch_s"] is None:
                assert cases[case] == eager
                continue
            compiled = figures["compile_s"] + plan.run_seconds(run, steps, plan.gpu_step_seconds(cost, case, True))
            assert cases[case] == (eager if steps == 1_000 else compiled) == min(eager, compiled), (steps, case)
    assert plan.gpu_run_seconds(tiny(compile="off"), 40, cost) == plan.run_seconds(tiny(), 40,
                                                                                   plan.gpu_step_seconds(cost))


def test_every_h100_case_counts_a_run_compiled_exactly_where_training_compiles_it():
    """Training compiles a run on CUDA by one rule (``training.device.compile_mode`` with its steps left: at least
    CUDA_COMPILE_MIN_STEPS), and the plan counts every case by that same answer: what training does, not the
    cheapest thing it could do."""
    import torch
    from glowlib.training.device import CUDA_COMPILE_MIN_STEPS, compile_mode
    cost = {"flops_per_step": 0.7e9, "ops_per_step": 3_700, "objective_ops": 3_000}
    cuda = torch.device("cuda")
    for steps in (CUDA_COMPILE_MIN_STEPS - 1, CUDA_COMPILE_MIN_STEPS, 100_000):
        run = tiny(steps=steps, eval_every=1_000, device="auto")
        compiles = compile_mode(run.train.compile, cuda, False, steps) is not None
        assert compiles == (steps >= CUDA_COMPILE_MIN_STEPS) == plan.compiles_on_gpu(run, steps)
        for case, figures in plan.GPU_SCENARIOS.items():
            eager = plan.run_seconds(run, steps, plan.gpu_step_seconds(cost, case))
            compiled = figures["compile_s"] + plan.run_seconds(run, steps, plan.gpu_step_seconds(cost, case, True))
            counted = compiled if compiles and figures["graph_launch_s"] is not None else eager
            assert plan.gpu_run_seconds(run, steps, cost, case) == counted, (steps, case)
    assert compile_mode("auto", cuda, False, None) is not None, "a run of unknown length compiles"
    assert compile_mode("default", cuda, False, 10) == "default", "a mode asked for is a mode given"
    assert compile_mode("auto", cuda, True, 100_000) is None, "invertible backprop stays eager"
    assert not plan.compiles_on_gpu(tiny(steps=100_000, compile="off"), 100_000)


@pytest.mark.parametrize("profile, counted", [("gpu", True), ("smoke", False)])
def test_the_gpu_plan_also_counts_the_datasets_make_data_fetches(monkeypatch, capsys, profile, counted):
    """Without CIFAR-10 and MNIST the run list lacks the bits/dim table's rows of them, which a GPU box trains (it
    needs CIFAR-10 anyway): the gpu plan adds one line with them counted in; a CPU profile says to plan again."""
    import glowlib.data as data
    monkeypatch.setattr(plan, "all_runs", lambda profile: [])
    monkeypatch.setattr(data, "_LOCATORS", {**data._LOCATORS, "cifar10": _absent, "mnist": _absent})
    asked = []
    monkeypatch.setattr(plan, "with_fetched", lambda profile, fetched, workers, log: asked.append(fetched) or
                        {"n": 7, "cases": {"optimistic": 3600.0, "central": 7200.0, "pessimistic": 36000.0},
                         "disk": 2e9, "fetched": fetched})
    assert plan.main(profile, measure_steps=True) == 0
    out = capsys.readouterr().out
    line = "with cifar10 and mnist present (`make data`): 7 trainings; on an H100-class GPU central 2.0 h " \
           "(optimistic 60 min, pessimistic 10.0 h)"
    assert (line in out) == counted and asked == ([["cifar10", "mnist"]] if counted else [])
    assert ("the next line counts them in" in out) == counted and ("then plan again" in out) != counted


def _absent(root):
    from glowlib.data import DataNotFoundError
    raise DataNotFoundError("absent")


def test_with_fetched_builds_the_run_list_as_if_the_data_were_there_and_sums_it(monkeypatch):
    from glowlib.data import is_available
    runs = [tiny(seed=s, steps=40) for s in range(2)]
    seen = []
    monkeypatch.setattr(plan, "all_runs", lambda profile: seen.append(is_available("cifar10")) or runs)
    cost = {"flops_per_step": 1e9, "ops_per_step": 2_000, "objective_ops": 1_500}
    monkeypatch.setattr(plan, "measured", lambda runs, log=None, timed=True: {plan.count_key(r): cost for r in runs})
    w = plan.with_fetched("gpu", ["cifar10"], workers=1)
    assert seen == [True] and w["n"] == 2 and w["fetched"] == ["cifar10"]
    for case in plan.GPU_SCENARIOS:
        assert w["cases"][case] == pytest.approx(sum(plan.gpu_run_seconds(r, 40, cost, case) for r in runs))
    assert w["disk"] == plan.disk_needed([plan.run_disk(r) for r in runs], 1)
