"""bf16 against fp32 (glowlib.studies.precision, notebooks/precision.py), the round trip it measures
(glowlib.analysis.round_trip), and the profiles' hardware default."""
import pandas as pd
import pytest
import torch

import glowlib.studies.precision as ps
from glowlib import profiles
from glowlib.profiles import default_precision, profile, profile_config


def _table(fp32, bf16, wall=(100.0, 60.0)):
    rows = [dict(precision=p, seed=s, dataset="fashion_mnist", steps=700, wall_s=w, test_bpd=v, test_sem=0.01)
            for p, values, w in (("fp32", fp32, wall[0]), ("bf16", bf16, wall[1])) for s, v in enumerate(values)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("bf16, passes", [((4.53, 4.29), True),     # the cpu run's figures: +0.035 and -0.029
                                          ((4.40, 4.60), False),    # seed 1 worse by 0.28 > spread 0.18
                                          ((4.68, 4.30), True)])    # +0.18 is the spread itself: no worse
def test_compare_sets_the_precisions_difference_beside_the_seeds(bf16, passes):
    c = ps.compare(_table((4.50, 4.32), bf16)).set_index("quantity")
    assert c.loc["fp32_seed_spread"].value == pytest.approx(0.18)
    assert c.loc["bf16_minus_fp32_seed1"].value == pytest.approx(bf16[1] - 4.32)
    assert c.loc["worst_bf16_minus_fp32"].passes is passes
    assert c.loc["mean_speedup"].value == pytest.approx(100 / 60)


def test_compare_needs_both_precisions():
    assert ps.compare(_table((4.5, 4.3), ())).empty


def test_runnable_leaves_bf16_out_without_a_hardware_path_and_says_why(monkeypatch):
    monkeypatch.setattr(ps, "bf16_support", lambda device: (False, "this CPU has neither AMX nor AVX512-BF16"))
    keep, notes = ps.runnable(["fp32", "bf16"], "cpu")
    assert keep == ["fp32"] and len(notes) == 1 and "neither AMX" in notes[0]
    monkeypatch.setattr(ps, "bf16_support", lambda device: (True, "AVX512-BF16"))
    assert ps.runnable(["fp32", "bf16"], "cpu") == (["fp32", "bf16"], [])


def test_configs_change_only_precision_and_seed():
    runs = ps.configs("smoke", "digits", [0, 1], ["fp32", "bf16"])
    assert len({r.key() for r in runs.values()}) == 4
    a, b = runs["fp32", 0], runs["bf16", 0]
    assert b.model.precision == "bf16" and a.model.replace(precision="bf16") == b.model and a.train == b.train
    assert ps.configs("paper", "cifar10", [0], ["fp32"])["fp32", 0].train.steps == profile("paper").precision_steps


@pytest.mark.parametrize("params, match", [(dict(seeds=[1, 1]), "at least two different seeds"),
                                           (dict(precisions=["fp16"]), "fp16"),
                                           (dict(dataset="nope"), "nope"),
                                           (dict(n_round_trip=0), "n_round_trip")])
def test_check_parameters_names_the_bad_value(params, match):
    base = dict(profile="smoke", seed=0, out_dir="", dataset="auto", seeds=[0, 1], precisions=["fp32", "bf16"],
                n_round_trip=10)
    assert ps.check_parameters(**base).dataset == "digits"
    with pytest.raises(ValueError, match=match):
        ps.check_parameters(**{**base, **params})


def test_default_precision_follows_the_hardware_and_the_environment(monkeypatch):
    monkeypatch.delenv("GLOWLIB_PRECISION", raising=False)
    monkeypatch.setattr(profiles, "bf16_support", lambda device: (True, "fast"))
    assert default_precision() == "bf16" and profile_config("smoke", "digits").model.precision == "bf16"
    assert profile_config("smoke", "digits", "macow").model.precision == "bf16"
    monkeypatch.setattr(profiles, "bf16_support", lambda device: (False, "emulated"))
    assert default_precision() == "fp32" and profile_config("smoke", "digits").model.precision == "fp32"
    monkeypatch.setenv("GLOWLIB_PRECISION", "bf16")
    assert profile_config("cpu", "mnist5k").model.precision == "bf16"
    monkeypatch.setenv("GLOWLIB_PRECISION", "half")
    with pytest.raises(ValueError, match="GLOWLIB_PRECISION='half'"):
        default_precision()


def test_trained_bf16_models_round_trip_exactly_in_a_float64_flow(tmp_path, monkeypatch):
    """Two tiny models trained in each precision through the cache; the bf16 ones' round trip in a float64 flow is
    at float64 round-off, and the table has one row per (seed, mode)."""
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    configs = ps.configs("smoke", "digits", [0, 1], ["fp32", "bf16"])
    models = ps.train_all(configs)
    table = ps.evaluate(models)
    assert len(table) == 4 and (table.n_test == 300).all() and table.test_bpd.between(0, 9).all()
    trip = ps.round_trip_table(models, n=50).set_index(["seed", "mode"])
    assert set(trip.index) == {(s, m) for s in (0, 1) for m in ps.ROUND_TRIP_MODES}
    assert (trip.xs("bf16_flow64", level="mode").max_error < 1e-12).all()
    assert (trip.xs("fp32", level="mode").max_error < 1e-5).all()
    assert (trip.fraction_images_bin_changed.xs("bf16_flow64", level="mode") == 0).all()
    assert (trip.fraction_images_bin_changed.xs("fp32", level="mode") == 0).all()     # bin centres: 1e-5 stays in
    comparison = ps.compare(table).set_index("quantity")            # both precisions trained: the page's test
    assert {"fp32_seed_spread", "worst_bf16_minus_fp32", "mean_speedup"} <= set(comparison.index)
    assert (trip.max_error.xs("bf16_flow64", level="mode") <= ps.ROUND_TRIP_TOLERANCE).all()
    assert torch.get_default_dtype() == torch.float32
