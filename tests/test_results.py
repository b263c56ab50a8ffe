"""Results I/O, notebook parameter validation, the published numbers, and the claims page's computed verdicts.

No training here: the claims are computed from small hand-made results tables whose verdicts are known.
"""
import json

import pandas as pd
import pytest

from glowlib import profiles, results
from glowlib.results import PROVENANCE, REQUIRED_PROVENANCE, Recorder, check_tidy, results_dir
from glowlib.studies import STUDIES, all_runs, base, bpd_table, check_parameters
from glowlib.studies.base import CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE
from glowlib.studies.claims import claims_table


# ---------------------------------------------------------------------------------------------------- Recorder
def _record(out_dir, notebook="samples", tables=("a",), figures=("f",)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rec = Recorder(notebook, out_dir, "smoke", 0, {"profile": "smoke", "seed": 0}, "cpu")
    rec.config("model", {"model": {"depth": 2}})
    for name in tables:
        rec.table(pd.DataFrame({"k": [1, 2], "v": [0.5, 0.25]}), name, keys=["k"])
    for name in figures:
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        rec.figure(fig, name)
        plt.close(fig)
    return rec.finish()


def test_recorder_writes_tables_figures_and_provenance(tmp_path):
    record = _record(tmp_path / "out")
    out = tmp_path / "out"
    saved = json.loads((out / PROVENANCE).read_text())
    assert set(REQUIRED_PROVENANCE) <= set(saved)
    assert saved["profile"] == "smoke" and saved["seed"] == 0 and saved["configs"]["model"]["model"]["depth"] == 2
    assert saved["tables"]["a.csv"]["keys"] == ["k"] and saved["figures"] == {"f.png": {"what": "f"}}
    assert isinstance(saved["git_dirty"], (bool, str)) and saved["wall_s"] >= 0
    assert pd.read_csv(out / "a.csv").shape == (2, 2)
    assert (out / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp")), "temporary files were left behind"
    assert record["notebook"] == "samples"


def test_recorder_removes_only_its_own_stale_outputs(tmp_path):
    out = tmp_path / "out"
    _record(out, tables=("a", "b"))
    (out / "samples.ipynb").write_text("{}")                      # the executed notebook: not the Recorder's
    _record(out, tables=("a",))
    assert (out / "a.csv").exists() and not (out / "b.csv").exists()
    assert (out / "samples.ipynb").exists()


def test_recorder_refuses_a_folder_of_another_notebook(tmp_path):
    out = tmp_path / "out"
    _record(out, notebook="samples")
    with pytest.raises(FileExistsError, match="'samples', not 'temperature'"):
        Recorder("temperature", out, "smoke", 0, {})
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x\n1\n")
    with pytest.raises(FileExistsError, match="no glowlib run wrote"):
        Recorder("samples", other, "smoke", 0, {})
    assert (other / "data.csv").read_text() == "x\n1\n"


@pytest.mark.parametrize("df, keys, message", [
    (pd.DataFrame({"k": []}), ["k"], "empty"),
    (pd.DataFrame({"k": [1, 1], "v": [1, 2]}), ["k"], "same"),
    (pd.DataFrame({"k": [1]}), ["missing"], "key columns"),
    (pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])), [], "nested"),
])
def test_check_tidy_rejects_untidy_tables(df, keys, message):
    with pytest.raises(ValueError, match=message):
        check_tidy(df, keys, "t")


def test_results_names_the_profiles_without_importing_them():
    assert results.PROFILES == profiles.PROFILES


def test_results_dir_names_bad_profile_and_notebook():
    assert results_dir("smoke", "samples", "/r").as_posix() == "/r/smoke/samples"
    with pytest.raises(ValueError, match="profile='huge'.*smoke"):
        results_dir("huge", "samples")
    with pytest.raises(ValueError, match="notebook='../plots' must be a notebook's name"):
        results_dir("smoke", "../plots")


# ---------------------------------------------------------------------------------------------------- parameters
COMMON = dict(profile="smoke", seed=0, out_dir="")


def _temperature(**changes):
    params = dict(COMMON, dataset="mnist5k", temperatures=[0.0, 0.7, 1.0], temperature=0.5, n_samples=10,
                  n_grid=4)
    return check_parameters("temperature", **{**params, **changes})


def test_check_parameters_normalises():
    p = _temperature()
    assert p.temperatures == [0.0, 0.5, 0.7, 1.0]                  # the highlighted T joins the table
    assert p.out_dir.endswith("results/smoke/temperature")
    p = check_parameters("bpd_table", **COMMON, datasets="auto", model_types="glow")
    assert p.datasets[:3] == ["mnist5k", "fashion_mnist", "digits"] and p.model_types == ["glow"]


@pytest.mark.parametrize("changes, message", [
    (dict(profile="huge"), r"profile='huge' is not allowed; choose one of \('smoke', 'cpu', 'paper'\)"),
    (dict(temperature=-0.5), r"temperature=-0.5 is out of range; allowed: \[0.0, inf\]"),
    (dict(temperatures=[0.7, -1]), r"temperatures\[1\]=-1.0 is out of range"),
    (dict(dataset="imagenet"), r"dataset='imagenet' is not allowed; choose one of \('mnist5k'"),
    (dict(n_samples=0), r"n_samples=0 is out of range"),
    (dict(temperature="hot"), r"temperature='hot' must be a number"),
])
def test_check_parameters_names_the_bad_value(changes, message):
    with pytest.raises(ValueError, match=message):
        _temperature(**changes)


def test_check_parameters_rejects_unknown_and_missing_names():
    with pytest.raises(ValueError, match=r"no parameter \['temprature'\]; its parameters are"):
        _temperature(temprature=0.5)
    with pytest.raises(ValueError, match=r"\['n_pairs'\] were not given"):
        check_parameters("interpolation", **COMMON, dataset="mnist5k", n_points=3)
    with pytest.raises(ValueError, match="notebook='plots'"):
        check_parameters("plots", **COMMON)


def test_absent_dataset_is_named_with_the_available_ones(monkeypatch):
    monkeypatch.setattr(base, "is_available", lambda name: name != "cifar10")
    with pytest.raises(ValueError, match=r"dataset='cifar10': its files are not on this machine; available here"):
        check_parameters("interpolation", **COMMON, dataset="cifar10", n_pairs=2, n_points=3)


def test_manipulation_attributes_follow_the_dataset():
    p = check_parameters("manipulation", **COMMON, dataset="mnist5k", attributes="auto", alphas=[-1, 1],
                            n_images=2, n_direction=10)
    assert p.attributes == ["thickness", "slant"] and p.alphas == [-1.0, 1.0]
    with pytest.raises(ValueError, match="Smiling"):
        check_parameters("manipulation", **COMMON, dataset="mnist5k", attributes=["Smiling"], alphas=[1],
                            n_images=2, n_direction=10)


# ---------------------------------------------------------------------------------------------------- published
def test_published_numbers_hold_table_2_and_the_mnist_caveat():
    pub = bpd_table.published_bpd()
    assert {"model", "dataset", "bpd", "source", "note"} <= set(pub.columns)
    original = pub[pub.kind == "original"].set_index(["model", "dataset"]).bpd
    assert original[("Glow", "cifar10")] == 3.35 and original[("RealNVP", "cifar10")] == 3.49
    assert len(original) == 12                                   # 2 models x 6 datasets of Table 2
    mnist = pub[(pub.dataset == "mnist") & (pub.model == "Glow")]
    assert mnist.bpd.iloc[0] == 1.05 and "32x32x3" in mnist.note.iloc[0]
    assert not pub.duplicated(["model", "dataset", "source"]).any()


def test_differences_are_explained_from_the_numbers():
    comparison = pd.DataFrame([
        dict(dataset="mnist5k", model_type="glow", ours=1.30, ours_sem=0.01, published=1.05,
             published_dataset="mnist", source="S", parameters_ratio=0.01, images_seen_ratio=0.001,
             train_images_ratio=0.06, gap=0.25),
        dict(dataset="digits", model_type="glow", ours=4.0, ours_sem=0.01, published=float("nan"),
             published_dataset="", source="", parameters_ratio=1, images_seen_ratio=1, train_images_ratio=1,
             gap=float("nan"))])
    text = bpd_table.explain_differences(comparison)
    assert "0.250 bits/dim above the published 1.05" in text[0] and "1.0% of the paper-scale" in text[0]
    assert "6.0% the size" in text[0] and "no published number" in text[1]


# ---------------------------------------------------------------------------------------------------- claims
def _write(root, notebook, tables, configs=None):
    out = root / "smoke" / notebook
    out.mkdir(parents=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / PROVENANCE).write_text(json.dumps({"notebook": notebook, "configs": configs or {}}))


def _ablation_summary(order):
    rows = []
    for coupling, offset in (("additive", 0.1), ("affine", 0.0)):
        for p, bpd in zip(order, (3.0, 3.2, 3.4, 3.1)):
            rows.append(dict(permutation=p, coupling=coupling, n_seeds=3, test_bpd_mean=bpd + offset,
                             test_bpd_std=0.01, curve_mean_bpd=bpd + offset + 0.5, n_parameters=1000 if p != "conv1x1"
                             else 1002, wall_s_mean=10, wall_s_median=10 if p != "conv1x1" else 10.5))
    return pd.DataFrame(rows)


def test_claims_are_computed_from_results(tmp_path):
    _write(tmp_path, "ablation", {"summary": _ablation_summary(["conv1x1", "shuffle", "reverse", "rotation"])})
    _write(tmp_path, "interpolation", {"reconstruction": pd.DataFrame(dict(
        pair=[0, 1], pixels_differing_a=0, pixels_differing_b=0, max_abs_error_all_pairs=1e-6, half_bin=0.002))})
    table = claims_table("smoke", tmp_path).set_index("claim")
    verdict = table.verdict
    assert verdict["1x1 convolution < shuffle < reverse in final NLL (Fig. 3)"] == CONFIRMED
    assert verdict["Affine coupling reaches lower NLL than additive coupling (Fig. 3)"] == CONFIRMED
    cost = table.loc["The 1x1 convolution costs little: ~0.2% more parameters and ~7% more wall time (Sec. 5.1)"]
    assert cost.verdict == CONFIRMED and "+0.20% parameters and +5.0% training wall time" in cost.evidence
    assert verdict[next(c for c in table.index if c.startswith("Encoding and decoding are exact"))] == CONFIRMED
    # notebooks without results: not testable here, saying how to get them
    bpd = table.loc["Glow reaches lower bits/dim than RealNVP (Table 2)"]
    assert bpd.verdict == NOT_TESTABLE and "make notebook NB=bpd_table" in bpd.evidence
    assert set(table.verdict) <= {CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE}
    assert table["where"].fillna("").isin(set(STUDIES) | {""}).all()


def test_claims_say_not_confirmed_when_the_order_differs(tmp_path):
    _write(tmp_path, "ablation", {"summary": _ablation_summary(["reverse", "shuffle", "conv1x1", "rotation"])})
    verdict = claims_table("smoke", tmp_path).set_index("claim").verdict
    assert verdict["1x1 convolution < shuffle < reverse in final NLL (Fig. 3)"] == NOT_CONFIRMED
    assert verdict["A learned 1x1 convolution beats a fixed random rotation (reviewers: ablate what makes Glow "
                   "work)"] == NOT_CONFIRMED


def test_bpd_claims(tmp_path):
    rows = [dict(dataset=d, model_type=m, test_bpd=b, test_sem=0.01, steps=10, images_seen=640, wall_s=5.0,
                 n_parameters=100) for d, m, b in [("mnist5k", "glow", 1.2), ("mnist5k", "realnvp", 1.3),
                                                   ("digits", "glow", 4.0), ("digits", "realnvp", 3.9)]]
    _write(tmp_path, "bpd_table", {"bpd": pd.DataFrame(rows)})
    table = claims_table("smoke", tmp_path).set_index("claim")
    glow = table.loc["Glow reaches lower bits/dim than RealNVP (Table 2)"]
    assert glow.verdict == NOT_CONFIRMED and "Glow is lower on 1 of 2 datasets" in glow.evidence
    assert table.loc["Glow: 3.35 bits/dim on CIFAR-10 (Table 2)"].verdict == NOT_TESTABLE


def _macow_rows(macow_bpd, vardeq_gain, iw_gain=0.01):
    """A bits/dim table with the MaCow and variational rows on digits: Glow 4.0, MaCow ``macow_bpd``, each
    "+vardeq" row ``vardeq_gain`` lower than its uniform one; importance-weighted bounds ``iw_gain`` below the ELBO."""
    rows = []
    for m, b in [("realnvp", 4.1), ("glow", 4.0), ("glow+vardeq", 4.0 - vardeq_gain), ("macow", macow_bpd),
                 ("macow+vardeq", macow_bpd - vardeq_gain)]:
        rows.append(dict(dataset="digits", model_type=m, dequantization="variational" if "+" in m else "uniform",
                         test_bpd=b, test_sem=0.01, steps=10, images_seen=640, wall_s=5.0, n_parameters=100,
                         iw_k=4, iw_n=100, elbo_iw_images=b, iw_bpd=b - iw_gain, iw_sem=0.01))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("macow_bpd, vardeq_gain, expected", [
    (3.9, 0.05, (CONFIRMED, CONFIRMED)),
    (4.1, 0.05, (NOT_CONFIRMED, CONFIRMED)),
    (3.9, -0.05, (CONFIRMED, NOT_CONFIRMED)),
])
def test_macow_and_dequantisation_claims(tmp_path, macow_bpd, vardeq_gain, expected):
    _write(tmp_path, "bpd_table", {"bpd": _macow_rows(macow_bpd, vardeq_gain)})
    table = claims_table("smoke", tmp_path).set_index("claim")
    macow = table.loc[next(c for c in table.index if c.startswith("MaCow reaches lower bits/dim than Glow"))]
    vardeq = table.loc[next(c for c in table.index if c.startswith("Variational dequantisation lowers"))]
    assert (macow.verdict, vardeq.verdict) == expected
    assert "of 2 comparisons" in macow.evidence
    assert "digits: macow+vardeq" in macow.evidence and "digits: glow+vardeq" in vardeq.evidence
    bound = table.loc[next(c for c in table.index if c.startswith("The importance-weighted bound"))]
    assert bound.verdict == CONFIRMED and "k=4 bound" in bound.evidence


def test_macow_claims_without_its_rows_are_not_testable(tmp_path):
    rows = _macow_rows(3.9, 0.05)
    _write(tmp_path, "bpd_table", {"bpd": rows[rows.model_type.isin(["glow", "realnvp"])].assign(iw_k=1)})
    table = claims_table("smoke", tmp_path).set_index("claim")
    macow = table.loc[next(c for c in table.index if c.startswith("MaCow reaches lower bits/dim than Glow"))]
    assert macow.verdict == NOT_TESTABLE and "['digits']" in macow.evidence
    bound = table.loc[next(c for c in table.index if c.startswith("The importance-weighted bound"))]
    assert bound.verdict == NOT_TESTABLE


def _fit(macow_conv_exponent, macow_ms):
    rows = []
    for model, conv, flops, b, ms in (("glow", 0.0, 2.0, 1.1, 10.0),
                                      ("macow", macow_conv_exponent, 2.0, 1.6, macow_ms)):
        for clock in ("wall", "cpu"):
            rows.append(dict(model=model, clock=clock, height_min=8, height_max=64, exponent=b,
                             exponent_ci_low=b - 0.1, exponent_ci_high=b + 0.1, conv_calls_exponent=conv,
                             flops_exponent=flops, ms_at_height_max=ms))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("conv, ms, expected", [(1.02, 80.0, (CONFIRMED, CONFIRMED)),
                                                (2.0, 80.0, (NOT_CONFIRMED, CONFIRMED)),
                                                (1.0, 5.0, (CONFIRMED, NOT_CONFIRMED))])
def test_sampling_cost_claims(tmp_path, conv, ms, expected):
    table = claims_table("smoke", tmp_path).set_index("claim")
    names = [c for c in table.index if c.startswith("MaCow inverts") or c.startswith("MaCow: wall-clock")]
    assert len(names) == 2 and all(table.loc[c].verdict == NOT_TESTABLE for c in names)   # not run yet
    _write(tmp_path, "sampling_cost", {"fit": _fit(conv, ms)})
    table = claims_table("smoke", tmp_path).set_index("claim")
    assert tuple(table.loc[c].verdict for c in names) == expected
    assert f"H^{conv:.2f}" in table.loc[names[0]].evidence


def test_table_rows_per_profile_and_their_configs():
    assert bpd_table.table_models("cpu", "mnist5k") == ["realnvp", "glow"]
    assert bpd_table.table_models("cpu", "fashion_mnist") == list(bpd_table.TABLE_MODELS)
    run = bpd_table.table_run("smoke", "digits", "macow+vardeq")
    assert run.model_type == "macow" and type(run.model).__name__ == "MaCowConfig"
    assert run.train.dequantization == "variational"
    assert bpd_table.table_run("smoke", "digits", "macow").key() != run.key()
    assert bpd_table.table_run("cpu", "mnist5k", "glow").key() == profiles.profile_config("cpu", "mnist5k").key()
    with pytest.raises(ValueError, match="'glow\\+flow'.*choose one of"):
        bpd_table.table_run("smoke", "digits", "glow+flow")
    needed = {(r.model_type, r.data.dataset, r.train.dequantization) for r in all_runs("smoke")}
    assert {("macow", "digits", "variational"), ("glow", "digits", "variational")} <= needed
    assert ("macow", "mnist5k", "uniform") not in needed


# ---------------------------------------------------------------------------------------------------- git
def test_git_state_is_dirty_for_code_changes_but_not_for_results(tmp_path):
    import subprocess
    from glowlib.results import git_state

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.csv").write_text("x\n1\n")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "results" / "a.csv").write_text("x\n2\n")             # a notebook rewrote its own output
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_state(tmp_path)["git_dirty"] is True
