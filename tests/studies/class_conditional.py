"""Class-conditional Glow (glowlib.studies.class_conditional): the classification loss it trains with
(train.y_weight: its gradient, y_weight = 0 training exactly as before, cache keys kept) and its claim: samples of
the requested class more often than chance at the official y_weight, over training seeds, never past a failed gate."""
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import glowlib.training.loop as train_module
from glowlib.analysis.stats import CONFIRMED, INCONCLUSIVE, NOT_TESTABLE
from glowlib.config import EXECUTION_FIELDS, KEYED_FIELDS, TrainConfig
from glowlib.models import Glow
from glowlib.objective import bits_per_dim
from glowlib.profiles import profile_config
from glowlib.studies import class_conditional
from judged import claim_of, gates_of, write


def conditional_run(y_weight=None, **train):
    sets = ["model.depth=1", "model.width=8", "model.n_classes=10", "train.steps=6", "train.eval_every=3",
            "train.ckpt_every=3", "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=32",
            "data.n_val=32", "train.warmup_steps=2", "train.device='cpu'", "train.n_test_eval=64"]
    sets += [] if y_weight is None else [f"train.y_weight={y_weight!r}"]
    sets += [f"train.{k}={v!r}" for k, v in train.items()]
    return profile_config("smoke", "digits", overrides=sets)


def test_y_weight_adds_the_classification_loss_and_its_gradient():
    run0, run1 = conditional_run(), conditional_run(0.5)
    torch.manual_seed(0)
    model = Glow(run0.model)
    x, y = torch.rand(8, 1, 8, 8) - 0.5, torch.arange(8)
    model.initialize(x, y)
    with torch.no_grad():
        model.class_prior.weight.add_(0.1 * torch.randn_like(model.class_prior.weight))
        model.classifier.weight.add_(0.1 * torch.randn_like(model.classifier.weight))
    loss0, bpd0 = train_module.training_loss(model, x, y, run0)
    # the loss as before, at the run's own bit depth (the digits' 4: data.BIT_DEPTH)
    assert torch.equal(loss0, bits_per_dim(model(x, y), run0.model.n_dims, run0.model.n_bits).mean())
    loss0.backward()
    assert model.classifier.weight.grad is None                                          # the head is untouched
    model.zero_grad(set_to_none=True)
    loss1, bpd1 = train_module.training_loss(train_module._JointObjective(model), x, y, run1)
    zs, _ = model.encode(x)
    cross_entropy_bits = F.cross_entropy(model.classify(zs), y) / math.log(2)
    torch.testing.assert_close(bpd1, bpd0)
    torch.testing.assert_close(loss1 - bpd1, 0.5 * cross_entropy_bits)
    loss1.backward()
    assert model.classifier.weight.grad.abs().sum() > 0


def test_y_weight_zero_trains_exactly_as_before(tmp_path, monkeypatch):
    train_module.train(conditional_run(), tmp_path / "default", progress=False)

    def refuse(model):
        raise AssertionError("y_weight=0 must not build the classification objective")
    monkeypatch.setattr(train_module, "_JointObjective", refuse)
    train_module.train(conditional_run(0.0), tmp_path / "zero", progress=False)
    a, b = (pd.read_csv(tmp_path / n / "metrics.csv") for n in ("default", "zero"))
    columns = ["train_bpd", "train_eval_bpd", "val_bpd", "test_bpd"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    state = train_module.load_checkpoint(tmp_path / "zero" / "last.pt")
    assert not state["model"]["classifier.weight"].any()                   # zero-initialised, never trained


def test_y_weight_trains_the_head_and_needs_classes(tmp_path):
    run = conditional_run(1.0)
    train_module.train(run, tmp_path / "a", progress=False)
    state = train_module.load_checkpoint(tmp_path / "a" / "last.pt")
    assert state["model"]["classifier.weight"].abs().sum() > 0
    with pytest.raises(ValueError, match="n_classes"):
        train_module.train(run.override(["model.n_classes=0"]), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="y_weight"):
        conditional_run(-1.0)


def test_y_weight_zero_keeps_existing_cache_keys():
    run = profile_config("cpu", "mnist5k", overrides=["data.order='file'"])   # the split the old keys trained on
    d = run.to_dict()
    for name in EXECUTION_FIELDS:
        del d["model"][name]
    del d["train"]["y_weight"], d["train"]["dequantization"]      # both later fields, at their defaults
    del d["data"]["order"]                                         # later too, at its legacy value
    defaults = TrainConfig()
    for name in set(d["train"]) - set(KEYED_FIELDS["train"]):      # later fields, left out at their defaults
        if d["train"][name] == getattr(defaults, name):
            del d["train"][name]
    if "precision" in d["model"] and d["model"]["precision"] == "fp32":
        del d["model"]["precision"]
    assert run.key() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    assert conditional_run(0.01).key() != conditional_run(0.0).key()


def conditional_rows(accuracy):
    rows = [{"source": "real test images", "y_weight": np.nan, "seed": 0, "temperature": np.nan,
             "requested_class": c, "accuracy": 0.95} for c in range(10)]
    for w, acc in accuracy.items():
        for s in range(3):
            for c in range(10):
                rows.append({"source": "model", "y_weight": w, "seed": s, "temperature": 0.7, "requested_class": c,
                             "accuracy": acc + 0.01 * s + 0.001 * c})
    return pd.DataFrame(rows)


def test_class_conditional_is_a_users_claim_decided_over_seeds(tmp_path):
    names = [class_conditional.model_name(w, s) for w in (0.0, 0.01) for s in range(3)]
    per_class = conditional_rows({0.0: 0.1, 0.01: 0.6})
    d = class_conditional.decisions(per_class, gates_of(*names)).set_index("comparison")
    assert d.loc["y_weight=0.01 vs chance", "verdict"] == CONFIRMED
    assert d.loc["y_weight=0.01 vs y_weight=0", "verdict"] == CONFIRMED
    assert d.loc["y_weight=0 vs chance", "verdict"] == INCONCLUSIVE                # the label ignored: chance
    write(tmp_path, "class_conditional", samples=per_class, gates=gates_of(*names))
    claim = claim_of(class_conditional, tmp_path)
    assert claim.source == "users" and claim.verdict == CONFIRMED and claim.n_seeds == 3
    # decided at the official weight against chance, not by the weaker y_weight = 0 row
    assert claim.evidence == "y_weight=0.01 vs chance"
    assert claim.test.startswith("one-sample t-interval") and "1/10" in claim.test     # no second arm: one sample
    assert d.loc["y_weight=0.01 vs y_weight=0", "test"].startswith("paired t-interval")
    assert claim.difference == pytest.approx(d.loc["y_weight=0.01 vs chance", "difference"])
    write(tmp_path, "class_conditional", samples=per_class, gates=gates_of(*names, fail=["y_weight=0.01-seed2"]))
    claim = claim_of(class_conditional, tmp_path)
    assert claim.verdict == NOT_TESTABLE and "y_weight=0.01-seed2" in claim.gate


@pytest.mark.parametrize("temperatures", [(0.7,), (0.7, 1.0), (0.5, 0.7, 1.0)])
def test_the_accuracy_figure_fits_the_books_column_two_panels_a_row(temperatures):
    """One panel per T, two a row, as wide as the book's column, their smallest text drawn at least LEGIBLE_PX tall
    there (measured as the provenance records it: results.figure_facts); one legend under them, over no bar."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px, legends_over_bars
    from glowlib.studies.base import COLUMN_INCHES
    rows = conditional_rows({0.0: 0.1, 0.01: 0.3, 1.0: 0.5})
    model = rows[rows.source == "model"]
    per_class = pd.concat([rows[rows.source != "model"], *(model.assign(temperature=t) for t in temperatures)])
    fig = class_conditional.plot_conditional(per_class)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [f"T = {t:g}" for t in temperatures]
    assert len({round(ax.get_position().x0, 2) for ax in panels}) == min(2, len(temperatures))
    assert fig.get_size_inches()[0] <= COLUMN_INCHES and drawn_px(fig) >= LEGIBLE_PX
    assert len(fig.legends) == 1 and not legends_over_bars(fig)
    plt.close(fig)
