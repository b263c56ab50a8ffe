"""Sampling cost against image height (glowlib.studies.sampling_cost): MaCow's inverse runs O(H) passes in sequence while
Glow's is constant (counted, never timed), the growth fit on synthetic times with a known exponent, the timing
table's shape, and the parameter checks. Nothing here asserts anything about speed."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from glowlib.analysis.claims import decide_claims
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, t_quantile
from glowlib.results import PROVENANCE
from glowlib.studies import sampling_cost as sc
from glowlib.layers import MaskedConvFlow
from glowlib.results import check_tidy

# one channel, L = 2 (MaCow's fine split needs K >= 2), one MaCow unit per step: 8x8 to 32x32 in milliseconds
TINY = sc.Setup(heights=(8, 16, 32), channels=1, n_levels=2, depth=2, width=8, n_units=1, batch=2, n_repeats=2,
                n_warmup=1)
PARAMS = dict(profile="smoke", seed=0, out_dir="/tmp/unused", models=["glow", "macow"], heights="auto",
              temperature=0.7, n_repeats="auto", batch="auto")


# ---------------------------------------------------------------------------------------------------- structure
def masked_conv_calls(net, run) -> int:
    """Calls of MaCow's masked convolutions (the network of every MaskedConvFlow) while ``run()`` runs."""
    calls = []
    hooks = [m.conv.register_forward_hook(lambda *_: calls.append(1)) for m in net.modules()
             if isinstance(m, MaskedConvFlow)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return len(calls)


def test_macow_sampling_runs_one_masked_conv_per_row_and_encoding_one_per_flow():
    """Sampling runs every masked conv once per row (or column) of its level: Σ_l K·units·4·H/2^l calls, so twice
    the calls at twice the height; encoding runs each once, whatever the height."""
    per_flow = TINY.depth * TINY.n_units * 4                     # masked conv flows per level
    for h in TINY.heights:
        net = sc.build("macow", h, TINY)
        rows = sum(h // 2 ** level for level in range(1, TINY.n_levels + 1))
        assert masked_conv_calls(net, lambda: net.sample(1, 0.7)) == per_flow * rows
        x = torch.rand(1, 1, h, h) - 0.5
        assert masked_conv_calls(net, lambda: net.encode(x)) == per_flow * TINY.n_levels


def test_sequential_convolutions_grow_linearly_for_macow_and_stay_constant_for_glow_while_flops_grow_as_h2():
    """count_work (what the notebook records): MaCow's convolutions per sample are a + b·H with b > 0, Glow's do
    not change with H; both models' FLOPs grow as H² (the same total work order: only the sequence differs)."""
    work = {(m, h): sc.count_work(sc.build(m, h, TINY)) for m in sc.MODELS for h in TINY.heights}
    glow = [work["glow", h]["conv_calls"] for h in TINY.heights]
    macow = [work["macow", h]["conv_calls"] for h in TINY.heights]
    assert glow[0] > 0 and len(set(glow)) == 1
    steps = np.diff(macow)                                        # heights 8, 16, 32: steps of 8 and 16 rows
    assert steps[0] > 0 and steps[1] == 2 * steps[0]
    assert work["macow", 8]["op_calls"] > work["glow", 8]["op_calls"]
    for m in sc.MODELS:
        flops = [work[m, h]["flops"] for h in TINY.heights]
        assert flops[1] / flops[0] == pytest.approx(4, rel=0.02) and flops[2] / flops[1] == pytest.approx(4, rel=0.02)


# ---------------------------------------------------------------------------------------------------- timing table
def test_timing_table_has_one_row_per_model_height_and_repeat_with_positive_times():
    df = sc.measure(TINY, temperature=0.7, seed=3)
    expected = set(itertools.product(sc.MODELS, TINY.heights, range(TINY.n_repeats)))
    assert set(zip(df.model, df.height, df.repeat)) == expected and len(df) == len(expected)
    check_tidy(df, sc.KEYS["timings"], "timings")
    assert (df.ms_per_image > 0).all() and (df.cpu_ms_per_image >= 0).all() and (df.batch == TINY.batch).all()
    assert (df.flops_per_image > 0).all() and (df.temperature == 0.7).all()
    assert {"device", "device_name", "threads", "torch_version", "n_parameters"} <= set(df.columns)
    macow = df[df.model == "macow"].groupby("height").conv_calls.first()
    assert macow.is_monotonic_increasing and df[df.model == "glow"].conv_calls.nunique() == 1
    # the tables and the figure made from it
    fit = sc.fit_growth(df)
    check_tidy(fit, sc.KEYS["fit"], "fit")
    assert set(zip(fit.model, fit.clock)) == set(itertools.product(sc.MODELS, sc.CLOCKS))
    assert fit.flops_exponent.to_numpy() == pytest.approx(2, abs=0.05)
    check_tidy(sc.local_exponents(df), sc.KEYS["local"], "local")
    values = sc.page_values(fit, sc.ratio_trend(df))
    assert values["last_height_to"] == 32 and values["ratio_trend"] in ("rises", "falls",
                                                                         "shows no trend these repeats can resolve")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.close(sc.plot_growth(df, fit))


# ---------------------------------------------------------------------------------------------------- growth fit
def synthetic(exponents: dict, heights=(8, 16, 32, 64, 128), n_repeats=30, noise=0.05, seed=0) -> pd.DataFrame:
    """Times c·H^b with multiplicative log-normal noise of standard deviation ``noise``, in the timing table's
    layout."""
    rng = np.random.default_rng(seed)
    rows = [{"model": m, "height": h, "repeat": r, "ms_per_image": 0.01 * h ** b * math.exp(noise * rng.normal()),
             "cpu_ms_per_image": 0.02 * h ** b, "flops_per_image": 1000 * h ** 2, "conv_calls": 10 + h * (m == "macow")}
            for m, b in exponents.items() for h in heights for r in range(n_repeats)]
    return pd.DataFrame(rows)


def test_fit_recovers_known_exponents_with_a_calibrated_error():
    heights, n, noise = (8, 16, 32, 64, 128), 30, 0.05
    fit = sc.fit_growth(synthetic({"glow": 1.0, "macow": 2.0}, heights, n, noise)).set_index(["model", "clock"])
    for model, b in {"glow": 1.0, "macow": 2.0}.items():
        wall, cpu = fit.loc[(model, "wall")], fit.loc[(model, "cpu")]
        assert wall.exponent == pytest.approx(b, abs=0.03)
        assert wall.exponent_ci_low < b < wall.exponent_ci_high
        # one repeat's slope has standard error noise/√Sxx; the mean over n repeats √n less
        log_h = np.log(heights)
        expected_se = noise / math.sqrt(((log_h - log_h.mean()) ** 2).sum()) / math.sqrt(n)
        assert 0.6 < wall.exponent_se / expected_se < 1.5
        assert wall.r2 > 0.99 and wall.n_repeats == n
        # noise-free times: the exact exponent, no spread, a perfect line
        assert cpu.exponent == pytest.approx(b, abs=1e-9) and cpu.exponent_se == pytest.approx(0, abs=1e-9)
        assert cpu.r2 == pytest.approx(1) and cpu.last_exponent == pytest.approx(b)
        assert wall.flops_exponent == pytest.approx(2)
    assert fit.loc[("glow", "wall")].conv_calls_exponent == pytest.approx(0)
    assert 0.5 < fit.loc[("macow", "wall")].conv_calls_exponent < 1      # 10 + H: towards 1 as H grows


def test_fit_sees_a_steepening_curve_in_its_local_exponents_and_least_squares_error():
    """Fixed cost plus quadratic work (t = 50 + H²): the local exponents rise towards 2, and the least-squares
    error of one power law through curved points is large even without noise."""
    rows = [{"model": "macow", "height": h, "repeat": r, "ms_per_image": 50 + h ** 2, "cpu_ms_per_image": 50 + h ** 2}
            for h in (4, 8, 16, 32, 64, 128) for r in range(2)]
    df = pd.DataFrame(rows)
    local = sc.local_exponents(df, clocks=("wall",))
    assert local.exponent.is_monotonic_increasing and local.exponent.iloc[-1] == pytest.approx(2, abs=0.02)
    fit = sc.fit_growth(df, clocks=("wall",))
    assert fit.exponent_se.iloc[0] == pytest.approx(0) and fit.exponent_se_ols.iloc[0] > 0.05
    assert fit.local_exponent_max.iloc[0] == pytest.approx(local.exponent.max())
    assert (fit.local_exponent_min.iloc[0], fit.local_exponent_max.iloc[0]) == pytest.approx((0.79, 1.99), abs=0.005)
    straight = sc.fit_growth(synthetic({"macow": 2.0})).iloc[0]
    assert straight.local_exponent_max - straight.local_exponent_min < 0.1


def test_page_values_set_the_two_exponents_apart_by_their_intervals():
    df = synthetic({"glow": 1.0, "macow": 2.0})
    values = sc.page_values(sc.fit_growth(df), sc.ratio_trend(df))
    assert values["exponent_difference"] == pytest.approx(1.0, abs=0.03)
    assert values["exponent_intervals"] == "do not overlap"
    top = sc.per_flop(df).query("height == 128").set_index("model").ms_per_image
    assert top["macow"] / top["glow"] == pytest.approx(128, rel=0.1)                     # 0.01·128² / (0.01·128)
    same = synthetic({"glow": 2.0, "macow": 2.0}, n_repeats=3, noise=0.3)
    assert sc.page_values(sc.fit_growth(same), sc.ratio_trend(same))["exponent_intervals"] == "overlap"


def test_fit_needs_two_heights():
    df = synthetic({"macow": 2.0}, heights=(16,))
    with pytest.raises(ValueError, match="heights \\[16\\].*two heights"):
        sc.fit_growth(df)


# ---------------------------------------------------------------------------------------------------- ratios
def paired_timings(ratio_of_height, log_noise=(0.0, 0.1, -0.1), heights=(8, 16, 32, 64)) -> pd.DataFrame:
    """Glow at 0.01·H ms, MaCow at ``ratio_of_height(H)`` times Glow's, each repeat's MaCow time off by the repeat's
    ``log_noise`` (a log factor), so that the per-height log ratios have a known mean and spread."""
    rows = []
    for h in heights:
        for r, e in enumerate(log_noise):
            glow = 0.01 * h * (1 + 0.5 * r)                              # load that falls on both alike
            rows += [{"model": "glow", "height": h, "repeat": r, "ms_per_image": glow, "cpu_ms_per_image": glow},
                     {"model": "macow", "height": h, "repeat": r, "ms_per_image": glow * ratio_of_height(h) * math.exp(e),
                      "cpu_ms_per_image": glow * ratio_of_height(h)}]
    return pd.DataFrame(rows)


def test_ratios_are_paired_by_repeat_with_a_t_interval_of_the_log_ratio():
    table = sc.ratios(paired_timings(lambda h: 20.0)).set_index("height")
    half = t_quantile(0.95, 2) * 0.1 / math.sqrt(3)                       # log ratios 0, +0.1, -0.1: sd 0.1
    for h in (8, 16, 32, 64):
        r = table.loc[h]
        assert r.n_repeats == 3 and r.ratio == pytest.approx(20.0)
        assert (r.ci_low, r.ci_high) == pytest.approx((20 * math.exp(-half), 20 * math.exp(half)))
    # the load of each repeat (x1, x1.5, x2 on both models) cancels; the CPU clock has no noise at all
    cpu = sc.ratios(paired_timings(lambda h: 20.0), clock="cpu")
    assert (cpu.ci_high - cpu.ci_low).abs().max() < 1e-9


@pytest.mark.parametrize("ratio, words, sign", [(lambda h: 2.0 * h, "rises", 1), (lambda h: 400.0 / h, "falls", -1),
                                                (lambda h: 20.0, "shows no trend", 0)])
def test_the_ratios_trend_is_read_from_its_interval(ratio, words, sign):
    timings = paired_timings(ratio, log_noise=(0.0, 0.0, 0.0))
    # noise that differs from height to height and repeat to repeat, so that the repeats' slopes differ
    wobble = {(8, 1): 0.05, (64, 1): -0.05, (16, 2): 0.05, (32, 2): -0.05}
    macow = timings.model == "macow"
    timings.loc[macow, "ms_per_image"] *= [math.exp(wobble.get((h, r), 0.0))
                                           for h, r in zip(timings[macow].height, timings[macow].repeat)]
    trend = sc.ratio_trend(timings).iloc[0]
    assert trend.exponent == pytest.approx(sign, abs=0.05) and trend.exponent_ci_low < trend.exponent_ci_high
    assert trend.last_height_from == 32 and trend.height_max == 64
    values = sc.page_values(sc.fit_growth(timings), sc.ratio_trend(timings))
    assert values["ratio_trend"].startswith(words) and values["ratio_exponent"] == trend.exponent
    assert list(sc.ratios(timings).height) == [8, 16, 32, 64]
    if sign:
        assert trend.last_change == pytest.approx(2.0 ** sign, rel=0.1)


def write_results(root, timings: pd.DataFrame, paper_speed: pd.DataFrame | None = None) -> None:
    out = root / "smoke" / "sampling_cost"
    out.mkdir(parents=True, exist_ok=True)
    fit = pd.DataFrame([dict(model=m, clock="wall", height_min=8, height_max=64, exponent=1.0, exponent_ci_low=0.9,
                             exponent_ci_high=1.1, conv_calls_exponent=c, flops_exponent=2.0, ms_at_height_max=1.0)
                        for m, c in (("glow", 0.0), ("macow", 1.0))])
    tables = {"fit": fit, "ratios": sc.ratios(timings), "ratio_trend": sc.ratio_trend(timings)}
    if paper_speed is not None:
        tables["paper_speed"] = paper_speed
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / PROVENANCE).write_text('{"notebook": "sampling_cost"}')


@pytest.mark.parametrize("ratio, noise, verdict", [
    (lambda h: 20.0 * h / 8, (0.0, 0.1, -0.1), CONFIRMED),                 # slower at every height
    (lambda h: 0.5, (0.0, 0.1, -0.1), CONTRADICTED),                       # faster
    (lambda h: 1.0 if h == 64 else 5.0, (0.0, 0.3, -0.3), INCONCLUSIVE),   # not told apart at H = 64
    (lambda h: 20.0, (0.0, 0.1), NOT_TESTABLE),                            # two repeats
])
def test_the_wall_clock_claim_is_decided_from_the_per_height_ratios(tmp_path, ratio, noise, verdict):
    write_results(tmp_path, paired_timings(ratio, log_noise=noise))
    table, numbers = decide_claims(sc.CLAIMS, "smoke", tmp_path)
    claims = table.set_index("id")
    c = claims.loc["sampling_cost.macow_wall_clock"]
    assert c.verdict == verdict
    if verdict != NOT_TESTABLE:
        assert c.test == sc.RATIO_TEST and c.ci_low <= c.difference <= c.ci_high and c.evidence == "ratios.csv"
        named = numbers[numbers.id == "sampling_cost.macow_wall_clock"].set_index("name").value
        assert {"ratio at H = 8", "ratio at H = 64", "trend exponent"} <= set(named.index)
    if verdict == INCONCLUSIVE:
        assert c.difference == pytest.approx(1.0) and named["deciding height"] == 64
    assert claims.loc["sampling_cost.macow_sequential_passes"].verdict == CONFIRMED
    # without the paper's model timed (results older than its table) the paper's figure is not decided
    assert claims.loc["sampling_cost.paper_sampling_speed"].verdict == NOT_TESTABLE
    assert "predate paper_speed.csv" in claims.loc["sampling_cost.paper_sampling_speed"].evidence


def test_the_claims_are_not_testable_without_both_models_or_with_older_results(tmp_path):
    write_results(tmp_path, paired_timings(lambda h: 20.0))
    (tmp_path / "smoke" / "sampling_cost" / "ratios.csv").unlink()
    claims = decide_claims(sc.CLAIMS, "smoke", tmp_path)[0].set_index("id")
    assert claims.loc["sampling_cost.macow_wall_clock"].verdict == NOT_TESTABLE
    assert "predate ratios.csv" in claims.loc["sampling_cost.macow_wall_clock"].evidence
    fit = pd.read_csv(tmp_path / "smoke" / "sampling_cost" / "fit.csv")
    fit[fit.model == "glow"].to_csv(tmp_path / "smoke" / "sampling_cost" / "fit.csv", index=False)
    claims = decide_claims(sc.CLAIMS, "smoke", tmp_path)[0].set_index("id")
    assert (claims.verdict == NOT_TESTABLE).all()


# ---------------------------------------------------------------------------------------------------- the paper's speed
def test_the_paper_speed_model_is_the_papers_celeba_hq_glow_and_the_stand_in_runs_its_code():
    paper = sc.paper_speed_config(sc.Setup(heights=(8,), paper_model=True))
    assert (paper.image_size, paper.n_levels, paper.depth, paper.width, paper.coupling, paper.n_bits,
            paper.in_channels) == (256, 6, 32, 512, "additive", 5, 3)
    assert sc.setup("cpu").paper_model and sc.setup("paper").paper_model and not sc.setup("smoke").paper_model
    assert sc.published_sampling_ms(256) == 130.0
    assert sc.GTX_1080_TI_FLOPS == pytest.approx(11.34e12, rel=1e-3)
    with torch.device("meta"):                      # the paper's size, counted without memory or time
        assert sum(p.numel() for p in sc.Glow(paper).parameters()) > 100e6


def test_the_paper_speed_table_carries_each_repeat_to_the_card_by_the_ratio_of_peaks():
    s = sc.Setup(heights=(8,), n_repeats=3, n_warmup=1)
    df = sc.measure_paper_speed(s, temperature=0.7, seed=1)
    check_tidy(df, sc.KEYS["paper_speed"], "paper_speed")
    assert list(df.repeat) == [0, 1, 2] and not df.paper_model.any() and (df.image_size == 32).all()
    net = sc.Glow(sc.STAND_IN_SPEED_MODEL)
    with torch.no_grad():                           # ActNorm started, so that it samples through the fused path
        net.initialize(torch.rand(1, 3, 32, 32) - 0.5)
    net.eval()
    assert (df.flops_per_image == sc.count_work(net)["flops"]).all() and (df.paper_ms == 130.0).all()
    assert (df.ms_per_image > 0).all() and (df.peak_gflops > 0).all()
    # the estimate is the time here scaled by this device's peak over the card's, and the share what was reached
    assert df.estimate_ms.to_numpy() == pytest.approx(df.ms_per_image * df.peak_gflops / df.card_peak_gflops)
    assert df.share_of_peak.to_numpy() == pytest.approx(df.flops_per_image / (df.ms_per_image / 1e3)
                                                        / (df.peak_gflops * 1e9))


def paper_speed_rows(ratios, paper_model=True):
    """A paper_speed table whose repeats' estimated card times are ``ratios`` x the paper's 130 ms."""
    return pd.DataFrame([{"repeat": r, "paper_model": paper_model, "image_size": 256 if paper_model else 32,
                          "ms_per_image": 3000.0, "peak_gflops": 200.0, "share_of_peak": 0.5,
                          "flops_per_image": 4.8e11, "card_peak_gflops": 11339.776, "paper_ms": 130.0,
                          "estimate_ms": 130.0 * x} for r, x in enumerate(ratios)])


@pytest.mark.parametrize("ratios, verdict", [
    ((0.3, 0.32, 0.31), CONFIRMED),                # fast enough even at a 2.5th of this device's share of its peak
    ((0.5, 0.6, 0.55), INCONCLUSIVE),              # under the figure, but not by the transfer's spread
    ((1.5, 1.6, 1.55), INCONCLUSIVE),              # slower than the paper's, within what the transfer could explain
    ((3.0, 3.5, 3.2), INCONCLUSIVE),               # the card could still do it at a larger share of its peak
    ((0.5, 0.6), NOT_TESTABLE),                    # two repeats
])
def test_the_paper_speed_claim_is_decided_from_the_estimated_card_time(tmp_path, ratios, verdict):
    write_results(tmp_path, paired_timings(lambda h: 20.0), paper_speed_rows(ratios))
    table, numbers = decide_claims(sc.CLAIMS, "smoke", tmp_path)
    c = table.set_index("id").loc["sampling_cost.paper_sampling_speed"]
    assert c.verdict == verdict
    if verdict != NOT_TESTABLE:
        geometric = math.exp(np.log(ratios).mean())
        assert c.difference == pytest.approx(geometric) and c.ci_low < c.difference < c.ci_high
        assert c.test == sc.PAPER_SPEED_TEST
        named = numbers[numbers.id == "sampling_cost.paper_sampling_speed"].set_index("name").value
        assert named["estimate ms"] == pytest.approx(130 * geometric) and named["paper ms"] == 130
        assert named["card share needed"] == pytest.approx(4.8e11 / (0.13 * 11339.776e9))


def test_the_paper_speed_is_contradicted_only_where_the_cards_whole_peak_could_not_do_it(tmp_path):
    rows = paper_speed_rows((3.0, 3.5, 3.2)).assign(flops_per_image=2e12)   # 2 TFLOP in 130 ms: 15 TFLOP/s
    write_results(tmp_path, paired_timings(lambda h: 20.0), rows)
    c = decide_claims(sc.CLAIMS, "smoke", tmp_path)[0].set_index("id").loc["sampling_cost.paper_sampling_speed"]
    assert c.verdict == CONTRADICTED and 2e12 / (0.13 * 11339.776e9) > 1


def test_a_stand_in_decides_nothing(tmp_path):
    write_results(tmp_path, paired_timings(lambda h: 20.0), paper_speed_rows((0.5, 0.6, 0.55), paper_model=False))
    c = decide_claims(sc.CLAIMS, "smoke", tmp_path)[0].set_index("id").loc["sampling_cost.paper_sampling_speed"]
    assert c.verdict == NOT_TESTABLE and "stand-in" in c.evidence


# ---------------------------------------------------------------------------------------------------- parameters
def test_auto_parameters_become_the_profiles_setup():
    p = sc.check_parameters(**PARAMS)
    smoke = sc.setup("smoke")
    assert p.heights == list(smoke.heights) and p.batch == smoke.batch and p.n_repeats == smoke.n_repeats
    assert p.out_dir == "/tmp/unused"
    p = sc.check_parameters(**{**PARAMS, "heights": [32, 8], "batch": 2, "n_repeats": 3})
    assert p.heights == [8, 32] and p.batch == 2 and p.n_repeats == 3
    assert sc.setup("smoke", p.heights, p.batch, p.n_repeats) == sc.Setup(**{**vars(smoke), "heights": (8, 32),
                                                                               "batch": 2, "n_repeats": 3})
    assert sc.check_parameters(**{**PARAMS, "out_dir": ""}).out_dir.endswith("smoke/sampling_cost")


@pytest.mark.parametrize("change, match", [
    ({"models": ["glow", "pixelcnn"]}, r"models\[1\]='pixelcnn' is not allowed; choose one of \('glow', 'macow'\)"),
    ({"models": ["macow", "macow"]}, r"models=\['macow', 'macow'\] repeats a model"),
    ({"heights": [8, 10]},
     r"heights\[1\]=10 is not divisible by 2\*\*n_levels=4 \(each of the L=2 levels of profile .smoke.*multiples of 4"),
    ({"heights": [16, 16]}, r"repeats a height"),
    ({"heights": []}, r"heights=\[\] must be a non-empty list"),
    ({"heights": "all"}, r"heights='all' must be a non-empty list"),
    ({"temperature": 0}, r"temperature=0.0 is out of range; allowed: \[0.001, 10.0\]"),
    ({"temperature": -0.7}, r"temperature=-0.7 is out of range"),
    ({"n_repeats": 1}, r"n_repeats=1 is out of range; allowed: \[2, inf\]"),
    ({"batch": 0}, r"batch=0 is out of range"),
    ({"profile": "huge"}, r"profile='huge' is not allowed"),
    ({"seed": -1}, r"seed=-1 is out of range"),
    ({"height": [8]}, r"has no parameter \['height'\]; its parameters are"),
])
def test_bad_parameters_name_the_value_and_the_fix(change, match):
    with pytest.raises(ValueError, match=match):
        sc.check_parameters(**{**PARAMS, **change})


def test_missing_parameters_are_named():
    params = {k: v for k, v in PARAMS.items() if k != "temperature"}
    with pytest.raises(ValueError, match=r"parameters \['temperature'\] were not given"):
        sc.check_parameters(**params)


def test_library_calls_check_their_arguments():
    with pytest.raises(ValueError, match="heights\\[0\\]=6 is not divisible by 2\\*\\*n_levels=4"):
        sc.Setup(heights=(6, 8), n_levels=2)
    with pytest.raises(ValueError, match="model='realnvp' is not allowed"):
        sc.model_config("realnvp", 8, TINY)
    with pytest.raises(ValueError, match="models\\[0\\]='realnvp' is not allowed"):
        sc.measure(TINY, models=["realnvp"])
    with pytest.raises(ValueError, match="temperature=0.0 is out of range"):
        sc.measure(TINY, temperature=0.0)
    with pytest.raises(ValueError, match="clock='gpu' is not allowed"):
        sc.fit_growth(synthetic({"glow": 1.0}), clocks=("gpu",))


def test_the_growth_figure_fits_the_books_column_two_places_a_row():
    """The three panels and panel a's legend two a row, as wide as the book's column, their smallest text drawn at
    least LEGIBLE_PX tall there (measured as the provenance records it: results.figure_facts)."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px
    from glowlib.studies.base import COLUMN_INCHES
    df = synthetic({"glow": 1.0, "macow": 2.0}, n_repeats=3)
    fig = sc.plot_growth(df, sc.fit_growth(df))
    panels = [ax for ax in fig.axes if ax.get_xlabel()]
    assert len(panels) == 3 and len({round(ax.get_position().x0, 2) for ax in fig.axes}) == 2
    assert fig.get_size_inches()[0] <= COLUMN_INCHES and drawn_px(fig) >= LEGIBLE_PX
    assert len(fig.axes[1].get_legend().get_texts()) == 6                 # a's fits and guides, beside it
    plt.close(fig)
