"""The 5-bit study (glowlib.studies.bits_5v8): bits/dim across bit depths by known answers, how n-bit images are
shown, and its claim: the low-bit model's Fréchet distance against the high-bit model's shown at the low depth,
paired over training seeds, never past a failed gate."""
import numpy as np
import pandas as pd
import pytest
import torch

from glowlib.analysis import to_uint8
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, NOT_TESTABLE
from glowlib.data import to_float
from glowlib.objective import bits_per_dim
from glowlib.studies import bits_5v8
from judged import claim_of, gates_of, write


def test_bits_per_dim_across_bit_depths_known_answers():
    d = 64
    uniform = torch.zeros(3, dtype=torch.float64)                    # log-density of U[-0.5, 0.5]^D
    bpd5, bpd8 = bits_per_dim(uniform, d, 5), bits_per_dim(uniform, d, 8)
    torch.testing.assert_close(bpd5, torch.full_like(bpd5, 5.0))
    torch.testing.assert_close(bits_5v8.bpd_at_more_bits(bpd5, 5, 8), bpd8)
    # a non-uniform 1-D density, constant on each 5-bit bin with probabilities pi: the 8-bit bins inside a 5-bit
    # bin share its probability equally, so scoring the same density with 8-bit bins must give bpd_5 + 3
    pi = torch.softmax(torch.randn(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 0)
    pixels = torch.arange(256)
    log_density = torch.log(32 * pi[pixels // 8])
    b5 = bits_per_dim(log_density, 1, 5)
    torch.testing.assert_close(bits_5v8.bpd_at_more_bits(b5, 5, 8), bits_per_dim(log_density, 1, 8))
    torch.testing.assert_close(b5, -torch.log2(pi[pixels // 8]))
    with pytest.raises(ValueError):
        bits_5v8.bpd_at_more_bits(8.0, 8, 5)


def test_reduce_bits_is_how_n_bit_images_are_shown():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    for n in (1, 5, 8):
        assert torch.equal(bits_5v8.reduce_bits(images, n), to_uint8(to_float(images, n), n))


def bits_quality(n_seeds, low=100.0, high=150.0):
    rows = [{"source": "real vs real", "model_bits": np.nan, "seed": np.nan, "shown_bits": b, "temperature": np.nan,
             "frechet": 2.0, "precision": 0.9, "recall": 0.9} for b in (5, 8)]
    for bits, fd in ((5, low), (8, high)):
        for s in range(n_seeds):
            for shown in [b for b in (5, 8) if b <= bits]:
                for t in (0.7, 1.0):
                    rows.append({"source": "model", "model_bits": bits, "seed": s, "shown_bits": shown,
                                 "temperature": t, "frechet": fd + 3 * s + t, "precision": 0.5, "recall": 0.4})
    return pd.DataFrame(rows)


def test_bits_5v8_is_paired_over_training_seeds(tmp_path):
    names = [bits_5v8.model_name(b, s) for b in (5, 8) for s in range(3)]
    d = bits_5v8.decisions(bits_quality(3), gates_of(*names))
    assert d.verdict.tolist() == [CONFIRMED, CONFIRMED] and (d.n == 3).all()
    assert d.difference.tolist() == pytest.approx([-50.0, -50.0]) and (d.frechet_real_vs_real == 2.0).all()
    assert bits_5v8.decisions(bits_quality(2), gates_of(*names)).verdict.tolist() == [NOT_TESTABLE] * 2
    gated = bits_5v8.decisions(bits_quality(3), gates_of(*names, fail=["8bit-seed1"]))
    assert (gated.verdict == NOT_TESTABLE).all() and gated.gate.str.contains("8bit-seed1").all()
    bpd = pd.DataFrame([{"model_bits": m, "eval_bits": e, "bpd": 1.0 + e, "seed": 0} for m in (5, 8) for e in (5, 8)])
    write(tmp_path, "bits_5v8", quality=bits_quality(3, low=200.0), bpd=bpd, gates=gates_of(*names))
    claim = claim_of(bits_5v8, tmp_path)
    assert claim.verdict == CONTRADICTED and claim.source == "reviewers" and claim.n_seeds == 3
    assert claim.evidence == "temperature 0.7" and claim.difference == pytest.approx(50.0)
    write(tmp_path, "bits_5v8", quality=bits_quality(3).query("model_bits != 8"), bpd=bpd, gates=gates_of(*names))
    claim = claim_of(bits_5v8, tmp_path)
    assert claim.verdict == NOT_TESTABLE and claim.evidence == bits_5v8.TWO_DEPTHS


def test_the_cpu_profile_leaves_the_5_bit_study_out_with_its_cost_from_the_plan(monkeypatch):
    from glowlib import left_out, plan, studies
    assert "bits_5v8" in studies.left_out("cpu") and "bits_5v8" not in studies.studies_of("cpu")
    own = {r.key() for r in studies.all_runs("cpu")}
    extra = [r for r in bits_5v8.runs("cpu") if r.key() not in own]
    # the 5-bit arm, and the 8-bit arm's seeds beyond the figures' model (seed 0), which the profile trains
    assert extra and 5 in {r.data.n_bits for r in extra}
    assert all(r.train.seed > 0 for r in extra if r.data.n_bits == 8)
    # a step cost stated here (the plan's kept measurements are this machine's): 0.5 s a step, 2 GFLOP, 3,000 ops
    cost = {"s_per_step": 0.5, "setup_s": 1.0, "flops_per_step": 2e9, "ops_per_step": 3000, "objective_ops": 2000}
    monkeypatch.setattr(plan, "measured", lambda runs, threads=None, timed=True:
                        {plan.cost_key(r, threads, timed): cost for r in runs})
    c = left_out.left_out_cost("cpu", "bits_5v8")
    timed = [plan.run_seconds(r, r.train.steps, 0.5, 1.0) for r in extra]
    counted = [plan.gpu_run_seconds(r, r.train.steps, cost) for r in extra]
    assert c["trainings"] == len(extra)
    assert c["serial_seconds"] in (pytest.approx(sum(timed)), pytest.approx(sum(counted)))
    assert c["seconds"] == pytest.approx(plan.makespan(timed if c["serial_seconds"] == pytest.approx(sum(timed))
                                                       else counted, c["workers"]))
    why = left_out.costed_left_out("cpu")["bits_5v8"]
    assert why.startswith(f"costs {c['seconds'] / 3600:.1f} h of training on {c['where']} ({len(extra)} trainings")
    assert why.endswith(studies.left_out("cpu")["bits_5v8"])
    assert left_out.costed_left_out("smoke") == {}


def test_each_pages_h100_cost_sums_its_own_trainings_once_each(monkeypatch):
    """The Cost page's table that each page's footer quotes: a row per page in the book's order (left-out pages
    too, marked), its trainings at the profile counted once each, and each case's minutes the sum of the plan's
    arithmetic over them (``plan.h100_seconds``, here on a stated cost per step)."""
    from glowlib import left_out, plan, studies
    cost = {"flops_per_step": 2e9, "ops_per_step": 3000, "objective_ops": 2000}
    monkeypatch.setattr(plan, "measured", lambda runs, threads=None, timed=True, **k:
                        {plan.cost_key(r, threads, timed): cost for r in runs})
    table = left_out.page_h100_costs("cpu").set_index("notebook")
    assert list(table.index) == list(studies.STUDIES)
    assert not table.loc["bits_5v8", "run"] and table.loc["temperature", "run"]
    assert table.loc["temperature", "page"].startswith("Temperature")
    for name in ("temperature", "bits_5v8", "claims"):
        runs = list({r.key(): r for r in studies.study(name).runs("cpu")}.values())
        assert table.loc[name, "trainings"] == len(runs)
        for case in plan.GPU_SCENARIOS:
            expected = sum(plan.gpu_run_seconds(r, r.train.steps, cost, case) for r in runs) / 60
            assert table.loc[name, f"h100_{case}_min"] == pytest.approx(expected)
    assert table.loc["claims", "trainings"] == 0 and table.loc["temperature", "h100_central_min"] > 0


def test_the_quality_figure_fits_the_books_column_two_panels_a_row():
    """Three panels two a row and one legend in the fourth place, as wide as the book's column, their smallest text
    drawn at least LEGIBLE_PX tall there (measured as the provenance records it: results.figure_facts)."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px
    from glowlib.studies.base import COLUMN_INCHES
    fig = bits_5v8.plot_bits_quality(bits_quality(3))
    panels = [ax for ax in fig.axes if ax.get_xlabel()]
    assert len(panels) == 3 and len({round(ax.get_position().x0, 2) for ax in panels}) == 2
    assert fig.get_size_inches()[0] <= COLUMN_INCHES and drawn_px(fig) >= LEGIBLE_PX
    assert [ax for ax in fig.axes if ax.get_legend()] == [fig.axes[3]]
    assert len(fig.axes[3].get_legend().get_texts()) == 5               # 3 (trained, shown) lines, 2 real vs real
    plt.close(fig)
