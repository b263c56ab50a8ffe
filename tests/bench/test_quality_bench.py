"""bench/quality_vs_time.py and bench/recipe.py: the harness gives both contenders the same data and noise, chooses
checkpoints on validation within each budget, and the recipe variants change what they say they change."""
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import quality_vs_time as qvt  # noqa: E402
from bench import recipe  # noqa: E402

TOY = "model.depth=1;model.width=8"


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """Toy-sized models (``$GLOWLIB_OVERRIDES``), small evaluation sets, records under tmp_path."""
    monkeypatch.setenv("GLOWLIB_OVERRIDES", TOY)
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(qvt, "N_TEST_CURVE", 100)
    monkeypatch.setattr(qvt, "EVALS_PER_BUDGET", 4)
    monkeypatch.setattr(qvt, "OUT", tmp_path / "quality_vs_time")


def test_the_reference_sees_the_batches_and_noise_glowlib_trains_on(toy):
    from glowlib.training import prepare_splits
    from glowlib.training.loop import _batch, session
    run = qvt.our_run()
    splits = prepare_splits(run)
    r = session(run, splits)
    for step in (0, 1, len(splits.train_x) // run.train.batch_size + 2):     # across an epoch boundary
        r.step = step
        ours, _, _ = _batch(r)
        assert torch.equal(ours, qvt._batch(run, splits, step, run.train.batch_size)[0])


@pytest.mark.parametrize("contender,budgets", [("reference", [0.04, 0.08]), ("ours", [0.08])])
def test_each_budget_reports_its_validation_chosen_checkpoint_on_the_whole_test_split(toy, contender, budgets):
    record = qvt.train_for(contender, budgets, threads=1)
    assert [c["minutes"] for c in record["chosen"]] == sorted(budgets)
    assert record["n_test"] == 10_000 and len(record["curve"]) >= 2
    for chosen in record["chosen"]:
        within = [c for c in record["curve"] if c["train_s"] <= 60 * chosen["minutes"] * 1.01] or record["curve"][:1]
        assert chosen["val_bpd"] == min(c["val_bpd"] for c in within)
        assert chosen["step"] in [c["step"] for c in within]
        assert 0 < chosen["test_bpd"] < 9 and chosen["test_sem"] > 0
    assert all(c["train_s"] <= 60 * max(budgets) + 30 for c in record["curve"])      # stops at its budget
    if contender == "ours":                   # the schedule was sized to the budget by a measured pilot
        assert record["pilot"]["s_per_step"] > 0 and record["recipe"]["lr_schedule"] == "cosine"
        name = qvt.record_name("ours", budgets, record["machine"])
        assert (qvt.cache_root() / "quality_vs_time" / f"{name}.pt").is_file()
    json.dumps(record)                        # the record is plain JSON


def test_summary_gathers_every_record(toy):
    qvt.OUT.mkdir(parents=True)
    for name, contender in (("reference_1_2min", "reference"), ("ours_2min", "ours")):
        record = {"contender": contender, "model": {"precision": "fp32"}, "machine": "cpu", "threads": 2,
                  "budgets_min": [2.0],
                  "chosen": [{"minutes": 2.0, "step": 5, "train_s": 100.0, "val_bpd": 4.0, "test_bpd": 4.1,
                              "test_sem": 0.01}],
                  "curve": [{"step": 5, "train_s": 100.0, "val_bpd": 4.0, "test_curve_bpd": 4.05}]}
        (qvt.OUT / f"{name}.json").write_text(json.dumps(record))
    rows = qvt.summary()
    assert {r["contender"] for r in rows} == {"reference", "ours"}
    assert {r["minutes"] for r in rows} == {2.0} and not list(qvt.OUT.glob("*.csv"))      # records stay JSON


def test_records_from_two_machines_stand_side_by_side_and_keep_their_gates(toy):
    from glowlib.analysis.bench_records import quality_vs_time
    from glowlib.studies.cost import plot_quality_vs_time
    qvt.OUT.mkdir(parents=True)
    for machine, ours in (("Intel(R) Xeon(R) Processor @ 2.80GHz", 3.3), ("AMD EPYC", 3.4)):
        for contender, bpd in (("ours", ours), ("reference", 3.9)):
            record = {"contender": contender, "model": {"precision": "fp32"}, "machine": machine, "threads": 2,
                      "budgets_min": [25.0], "gates": {"25": {"gates": [{"gate": "g", "passed": True}]}},
                      "chosen": [{"minutes": 25.0, "step": 5, "train_s": 1500.0, "val_bpd": bpd, "test_bpd": bpd,
                                  "test_sem": 0.01}],
                      "curve": [{"step": 5, "train_s": 1500.0, "val_bpd": bpd, "test_curve_bpd": bpd}]}
            (qvt.OUT / f"{qvt.record_name(contender, [25.0], machine)}.json").write_text(json.dumps(record))
    assert len(list(qvt.OUT.glob("*.json"))) == 4          # a second machine's run replaces nothing
    chosen, curves = quality_vs_time(qvt.OUT.parent)
    amd = chosen[chosen.device_name == "AMD EPYC"].set_index("contender")      # one row per machine and contender
    assert len(chosen) == 4 and len(amd) == 2 and (amd.minutes == 25.0).all()
    assert amd.test_bpd["ours"] == 3.4 and amd.test_bpd["reference"] == 3.9
    fig = plot_quality_vs_time(chosen, curves)
    from legible import LEGIBLE_PX, drawn_px
    assert len(fig.axes) == 2 and drawn_px(fig) >= LEGIBLE_PX     # a panel a machine, legible in the book's column
    qvt.add_gates()                     # no kept model on this machine: the recorded gates stay
    assert all(json.loads(p.read_text())["gates"] for p in qvt.OUT.glob("ours_*.json"))


def test_recipe_variants_change_only_what_they_name():
    from glowlib.profiles import profile_config
    for name, (overrides, _, _) in recipe.VARIANTS.items():
        config = recipe.variant_config(name).to_dict()
        plain = profile_config("cpu", recipe.DATASET.get(name, "fashion_mnist"), "glow", 0, recipe.COMMON).to_dict()
        changed = {(section, field) for section in ("model", "train", "data")
                   for field in config[section] if config[section][field] != plain[section][field]}
        named = {tuple(o.split("=")[0].split(".")) for o in overrides}
        if name == "beta2_official":
            named.add(("train", "beta2"))
        assert changed <= named and (changed or not overrides), (name, changed, named)
    with pytest.raises(SystemExit, match="unknown variant"):
        recipe.variant_config("nonsense")


def test_the_equal_time_ratio_is_measured_in_alternating_rounds(monkeypatch):
    monkeypatch.setenv("GLOWLIB_OVERRIDES", TOY)
    timing = recipe.step_time_ratio(recipe.variant_config("adam"), recipe.variant_config("batch32"), rounds=4)
    assert timing["own_over_base"] > 0 and timing["rounds"] == 4
    assert timing["base_s_per_step"] > 0 and timing["own_s_per_step"] > 0


def test_the_workers_bench_compares_one_process_with_one_per_core(monkeypatch, capsys):
    """bench/workers.py: each round's throughput is the sum over its processes of batch / median step, the two
    arrangements alternate (ABBA), and the ratio is taken per round; a child times real training steps."""
    from bench import workers as bench_workers
    calls = []

    def fake_round(args, processes, threads):
        calls.append((processes, threads))
        per = {1: 100.0, 2: 70.0}[processes]             # images/s of each process
        return {"processes": processes, "threads": threads, "images_per_s": per * processes, "children": []}

    monkeypatch.setattr(bench_workers, "round_of", fake_round)
    assert bench_workers.main(["--cores", "2", "--rounds", "4"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert calls == [(1, 2), (2, 1), (2, 1), (1, 2), (1, 2), (2, 1), (2, 1), (1, 2)]
    assert record["ratio_one_per_core"] == pytest.approx(1.4) and record["images_per_s"]["one_process"] == 100
    with pytest.raises(SystemExit, match="at least 2 cores"):
        bench_workers.main(["--cores", "1"])
    before = torch.get_num_threads()
    try:
        one = bench_workers.child("digits", threads=1, steps=2, warmup=1)
    finally:
        torch.set_num_threads(before)
    assert one["threads"] == 1 and one["median_s"] > 0 and one["batch"] == 32


def test_model_gates_variants_are_the_runs_they_name_and_the_summary_reads_every_record(tmp_path, monkeypatch):
    from bench import model_gates
    from glowlib.profiles import profile
    cpu = profile("cpu")
    runs = {name: model_gates.run_of(name) for name in model_gates.VARIANTS}
    assert len({r.key() for r in runs.values()}) == len(runs)
    assert runs["affine_1500"].train.steps == cpu.steps["mnist5k"] and runs["affine_3000"].train.steps == 3000
    assert runs["additive_2500"].train.steps == cpu.study_steps["mnist5k"]
    assert {r.model.coupling for n, r in runs.items() if n.startswith("additive")} == {"additive"}
    monkeypatch.setattr(model_gates, "OUT", tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({
        "variant": "x", "steps": 10, "test_bpd_at_best_val": 2.5,
        "gates": [{"gate": "share of non-finite draws", "value": 0.02, "passed": False}]}))
    assert model_gates.summary() == ["x: 10 steps, test 2.500 bits/dim; share of non-finite draws 0.02 (FAIL)"]


def test_the_cost_page_records_where_its_quality_and_recipe_records_came_from():
    from glowlib.analysis.bench_records import cost_tables
    cost = cost_tables(ROOT / "results" / "bench")
    for folder in ("quality_vs_time", "recipe"):
        names = sorted(p.name for p in (ROOT / "results" / "bench" / folder).glob("*.json"))
        assert names, folder
        for n in names:                 # each shown with its commit, or named as made from uncommitted code
            assert f"{folder}/{n}" in cost.uncommitted or cost.sources[f"{folder}/{n}"]["git_sha"], (folder, n)


def test_records_made_from_uncommitted_code_are_left_out_and_named_on_the_page(monkeypatch):
    """A record whose code was uncommitted is left out of the tables and named in one note (shown, and still
    named, where GLOWLIB_ALLOW_DIRTY=1 asks); clean records and those made outside git are kept."""
    from glowlib.analysis.bench_records import BenchTables, uncommitted_note
    from glowlib.results import ALLOW_DIRTY_ENV
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    into = BenchTables()
    kept = {name: into.keep(name, {"git_sha": "abc", "git_dirty": dirty}) for name, dirty in
            [("recipe/adam.json", True), ("recipe/cosine.json", False), ("train_x.json", True),
             ("b.json", "unknown")]}
    assert kept == {"recipe/adam.json": False, "recipe/cosine.json": True, "train_x.json": False, "b.json": True}
    assert set(into.sources) == {"recipe/cosine.json", "b.json"}
    note = uncommitted_note(into.uncommitted)
    assert note.startswith("2 records") and "`recipe/adam.json`" in note and "`train_x.json`" in note
    assert "left out" in note and "cosine" not in note
    assert uncommitted_note([]) is None
    monkeypatch.setenv(ALLOW_DIRTY_ENV, "1")
    shown = BenchTables()
    assert shown.keep("recipe/adam.json", {"git_dirty": True}) and shown.uncommitted == ["recipe/adam.json"]
    assert "GLOWLIB_ALLOW_DIRTY=1" in uncommitted_note(shown.uncommitted, shown=True)


@pytest.mark.parametrize("script, argv", [(recipe, ["--variant", "cosine", "--threads", "1"]),
                                          (qvt, ["--contender", "ours", "--minutes", "1"])])
def test_a_benchmark_refuses_uncommitted_code_before_it_trains(script, argv, monkeypatch, capsys):
    """Its records are results the Cost page shows: in a checkout with uncommitted changes it stops before any
    work, in one line saying how to go on, unless GLOWLIB_ALLOW_DIRTY=1 says to record anyway."""
    import bench.common as common
    from glowlib.results import ALLOW_DIRTY_ENV
    monkeypatch.setattr(common, "git_state", lambda root=None: {"git_sha": "abc", "git_dirty": True})
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    trained = []
    monkeypatch.setattr(script, "run_variant" if script is recipe else "run_ours",
                        lambda *a, **k: trained.append(a) or {}, raising=False)
    with pytest.raises(SystemExit, match="GLOWLIB_ALLOW_DIRTY=1") as e:
        script.main(argv)
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value) and trained == []
    monkeypatch.setattr(common, "git_state", lambda root=None: {"git_sha": "abc", "git_dirty": False})
    common.refuse_uncommitted()                              # a clean checkout goes on
    monkeypatch.setattr(common, "git_state", lambda root=None: {"git_sha": "abc", "git_dirty": True})
    monkeypatch.setenv(ALLOW_DIRTY_ENV, "1")
    common.refuse_uncommitted()                              # and so does one told to
