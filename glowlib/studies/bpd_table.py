"""Bits per dimension (Kingma & Dhariwal 2018, Sec. 5.2, Table 2; MaCow's Tables 2-3): RealNVP, Glow and MaCow,
with uniform and variational dequantisation, on every dataset present, beside the published numbers; the
claims of Table 2 and MaCow's decided from the table. The logic of ``notebooks/bpd_table.py``.

Its models are the ones the samples, temperature, interpolation, manipulation and nearest-neighbour notebooks
use (the table's Glow of each dataset is ``base.shared_model``).
"""
from __future__ import annotations

import math
from importlib import resources
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..config import check_choice
from ..data import is_available
from ..profiles import PROFILES, profile_config
from ..results import read_table
from ..training import bits_per_image, evaluate, mean_and_sem, prepare_splits
from .base import (CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE, SEED, Claim, Experiment, available_dataset, cached_model,
                   choice, config_parameters, curves, list_of, n_parameters, need)
from .base import device, plot_splits  # noqa: F401  (the notebook calls them through this module)
from .base import check_values

NOTEBOOK = "bpd_table"
ALWAYS_DATASETS = ("mnist5k", "fashion_mnist", "digits")
OPTIONAL_DATASETS = ("cifar10", "mnist", "celeba")   # in the bits/dim table when their files are present
MODEL_TYPES = ("realnvp", "glow")
# rows of the bits/dim table: a model type, "+vardeq" for variational dequantisation (train.dequantization)
TABLE_MODELS = ("realnvp", "glow", "glow+vardeq", "macow", "macow+vardeq")
# datasets whose table gets the MaCow and variational-dequantisation rows; the others RealNVP and Glow.
# cpu: Fashion-MNIST, the full real dataset a fresh machine has (mnist5k's two rows already take a third of the
# profile's ~90 minutes)
DEQUANT_DATASETS = {"smoke": ("digits",), "cpu": ("fashion_mnist",), "paper": ("cifar10", "mnist")}
# the importance-weighted bound of the table: k samples per image on the first n test images (k x the cost of
# one evaluation, so on a part of the test split at cpu), beside the ELBO (k = 1) on the same images
IW_SAMPLES = {"smoke": (4, 100), "cpu": (8, 2000), "paper": (64, 10_000)}
# the published row each table row is compared with (published_bpd.csv's model column, lower case)
PUBLISHED_MODEL = {"realnvp": "realnvp", "glow": "glow", "macow": "macow",
                   "macow+vardeq": "macow (variational dequantisation)"}
# which published row our dataset is compared with (mnist5k: the same 28x28 digits, 4,000 of them)
PUBLISHED_DATASET = {"mnist5k": "mnist", "mnist": "mnist", "cifar10": "cifar10"}
# training images of the full dataset behind each of ours (CelebA-HQ: the paper's 27,000 training images)
FULL_TRAIN_IMAGES = {"mnist5k": 60_000, "mnist": 60_000, "fashion_mnist": 60_000, "digits": 1_497,
                     "cifar10": 50_000, "celeba": 27_000}


def table_datasets() -> list[str]:
    """The bits/dim table's datasets: the three always present, plus each optional one whose files are here."""
    return list(ALWAYS_DATASETS) + [d for d in OPTIONAL_DATASETS if is_available(d)]


def table_models(profile: str, dataset: str) -> list[str]:
    """The bits/dim table's rows for ``dataset`` at ``profile`` (:data:`TABLE_MODELS`, :data:`DEQUANT_DATASETS`)."""
    check_choice("profile", profile, PROFILES)
    return list(TABLE_MODELS) if dataset in DEQUANT_DATASETS[profile] else list(MODEL_TYPES)


def table_run(profile: str, dataset: str, name: str, seed: int = 0):
    """The RunConfig of the table row ``name`` (one of :data:`TABLE_MODELS`): the profile's preset of its model type,
    with variational dequantisation for a "+vardeq" row."""
    check_choice("model", name, TABLE_MODELS)
    model_type, _, vardeq = name.partition("+")
    return profile_config(profile, dataset, model_type, seed,
                          ["train.dequantization='variational'"] if vardeq else [])


def datasets_or_auto(name, value):
    """"auto" (the bits/dim table's datasets, :func:`table_datasets`) or a list of available datasets."""
    if value == "auto":
        return table_datasets()
    return list_of(available_dataset)(name, value)


PARAMETERS = {**SEED, "datasets": datasets_or_auto, "model_types": list_of(choice(TABLE_MODELS))}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``datasets="auto"`` becomes the table's."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """Every row of the table: each dataset present × the profile's rows for it (:func:`table_models`)."""
    return [table_run(profile, d, m) for d in table_datasets() for m in table_models(profile, d)]


def published_bpd() -> pd.DataFrame:
    """The published numbers (``glowlib/published_bpd.csv``): model, dataset, bpd, kind, source, note."""
    with resources.files("glowlib").joinpath("published_bpd.csv").open() as f:
        return pd.read_csv(f)


def bpd_table(profile: str, datasets, model_types, seed: int = 0) -> Experiment:
    """Our bits/dim table (paper Table 2; MaCow's Tables 2-3): each model's test bits/dim on the FULL test split,
    evaluated on the Polyak weights of the checkpoint chosen on validation, with its standard error; the compute it
    used; and how that compute compares with the paper profile's model for the same data.

    ``model_types`` are rows of :data:`TABLE_MODELS`; a row that the profile does not train for a dataset
    (:func:`table_models`) is left out and listed in the ``skipped`` table. ``test_bpd`` is the ELBO: with uniform
    noise (Glow's) or the learned q(u | x) ("+vardeq"); ``iw_bpd`` is the importance-weighted bound with
    ``iw_k`` samples on the first ``iw_n`` test images, beside ``elbo_iw_images``, the ELBO on the same images.

    Tables: ``bpd`` (one row per dataset × model), ``curves`` (training curves), ``scale`` (ours vs paper),
    ``skipped``.
    """
    rows, scale, curve_frames, models, skipped = [], [], [], {}, []
    k, n_iw = IW_SAMPLES[profile]
    for dataset in datasets:
        for model_type in model_types:
            if model_type not in table_models(profile, dataset):
                skipped.append({"dataset": dataset, "model_type": model_type,
                                "why": f"profile {profile!r} trains it only on {list(DEQUANT_DATASETS[profile])}"})
                continue
            tm = cached_model(table_run(profile, dataset, model_type))
            models[f"{model_type}-{dataset}"] = tm
            splits = prepare_splits(tm.run)
            ev = dict(n_bits=tm.run.data.n_bits, batch_size=tm.run.train.eval_batch, seed=seed,
                      dequantizer=tm.dequantizer)
            per_image = bits_per_image(tm.model, splits.test_x, **ev)
            test, sem = mean_and_sem(per_image)
            part = splits.test_x[:n_iw]
            elbo_part = per_image[:n_iw].mean().item()            # a prefix's values are the first of the whole's
            iw, iw_sem = evaluate(tm.model, part, n_samples=k, **ev)
            steps, batch = tm.summary["steps"], tm.run.train.batch_size
            rows.append({"dataset": dataset, "model_type": model_type,
                         "dequantization": tm.run.train.dequantization, "test_bpd": test, "test_sem": sem,
                         "iw_k": k, "iw_n": len(part), "elbo_iw_images": elbo_part, "iw_bpd": iw, "iw_sem": iw_sem,
                         "n_test": len(splits.test_x), "best_val_bpd": tm.summary["best_val_bpd"],
                         "n_val": len(splits.val_x), "n_train": len(splits.train_x), "steps": steps,
                         "batch_size": batch, "images_seen": steps * batch, "epochs": steps * batch /
                         len(splits.train_x), "wall_s": tm.summary["wall_s"], "n_parameters": n_parameters(tm.model),
                         "n_parameters_dequantizer": 0 if tm.dequantizer is None else n_parameters(tm.dequantizer),
                         "n_bits": tm.run.data.n_bits, "K": tm.run.model.depth, "L": tm.run.model.n_levels,
                         "width": tm.run.model.width})
            paper = table_run("paper", dataset, model_type)
            scale.append({"dataset": dataset, "model_type": model_type, "n_parameters": rows[-1]["n_parameters"],
                          "paper_n_parameters": config_parameters(paper), "images_seen": steps * batch,
                          "paper_images_seen": paper.train.steps * paper.train.batch_size,
                          "n_train": len(splits.train_x), "full_n_train": FULL_TRAIN_IMAGES[dataset]})
            curve_frames.append(curves(tm, dataset=dataset, model_type=model_type,
                                       model=f"{model_type} {dataset}"))
    return Experiment({"bpd": pd.DataFrame(rows), "scale": pd.DataFrame(scale),
                       "curves": pd.concat(curve_frames, ignore_index=True),
                       "skipped": pd.DataFrame(skipped, columns=["dataset", "model_type", "why"])}, models)


def compare_with_published(ours: pd.DataFrame, scale: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Each of our rows beside the paper's number for the same model and data (where there is one), with the
    gap and its computed reasons: model size, images seen and training-set size relative to the paper's scale."""
    reference = published[published.kind.isin(["original", "later-table", "follow-up"])]
    rows = []
    paper = scale[["dataset", "model_type", "paper_n_parameters", "paper_images_seen", "full_n_train"]]
    for r in ours.merge(paper, on=["dataset", "model_type"]).itertuples():
        target = PUBLISHED_DATASET.get(r.dataset)
        match = reference[(reference.dataset == target) &
                          (reference.model.str.lower() == PUBLISHED_MODEL.get(r.model_type, ""))]
        row = {"dataset": r.dataset, "model_type": r.model_type, "ours": r.test_bpd, "ours_sem": r.test_sem,
               "published": match.bpd.iloc[0] if len(match) else np.nan,
               "published_dataset": target if len(match) else "",
               "source": match.source.iloc[0] if len(match) else "no published number for this data",
               "parameters_ratio": r.n_parameters / r.paper_n_parameters,
               "images_seen_ratio": r.images_seen / r.paper_images_seen,
               "train_images_ratio": r.n_train / r.full_n_train}
        row["gap"] = row["ours"] - row["published"]
        rows.append(row)
    return pd.DataFrame(rows)


def explain_differences(comparison: pd.DataFrame) -> list[str]:
    """Sentences, computed from the comparison, saying where ours differs from the published number and why."""
    out = []
    for r in comparison.itertuples():
        if np.isnan(r.published):
            out.append(f"- **{r.model_type} on {r.dataset}**: {r.ours:.3f} ± {r.ours_sem:.3f} bits/dim; no "
                       f"published number for this data to compare with.")
            continue
        reasons = []
        if r.parameters_ratio < 0.5:
            reasons.append(f"{r.parameters_ratio:.1%} of the paper-scale model's parameters")
        if r.images_seen_ratio < 0.5:
            reasons.append(f"{r.images_seen_ratio:.2%} of its training images seen (steps × batch)")
        if r.train_images_ratio < 0.9:
            reasons.append(f"a training set {r.train_images_ratio:.1%} the size of the full one")
        significant = abs(r.gap) > 2 * r.ours_sem
        verdict = (f"{abs(r.gap):.3f} bits/dim {'above' if r.gap > 0 else 'below'} the published "
                   f"{r.published:.2f} ({r.source})" + ("" if significant else ", within twice our standard error"))
        why = f"; ours used {', '.join(reasons)}" if reasons and r.gap > 0 else ""
        out.append(f"- **{r.model_type} on {r.dataset}**: {r.ours:.3f} ± {r.ours_sem:.3f}, {verdict}{why}.")
    return out


# ---------------------------------------------------------------------------------------------------- claims
def _bpd_claims(profile, root) -> list[Claim]:
    texts = ["Glow reaches lower bits/dim than RealNVP (Table 2)",
             "Glow: 3.35 bits/dim on CIFAR-10 (Table 2)",
             "ImageNet 32/64 and LSUN numbers of Table 2",
             "Baselines trained with the same compute, and the compute reported (reviewers)"]
    missing = need(profile, root, "bpd_table")
    if missing:
        return [Claim(c, "paper" if i < 3 else "review", "bpd_table", missing.verdict, missing.evidence)
                for i, c in enumerate(texts)]
    t = read_table(profile, "bpd_table", "bpd", root)
    out = []
    pivot = t.pivot(index="dataset", columns="model_type", values=["test_bpd", "test_sem", "steps", "images_seen",
                                                                   "wall_s", "n_parameters"])
    if {"glow", "realnvp"} <= set(t.model_type):
        parts, n_ok = [], 0
        for d in pivot.index:
            g, r = pivot.loc[d, ("test_bpd", "glow")], pivot.loc[d, ("test_bpd", "realnvp")]
            sem = math.hypot(pivot.loc[d, ("test_sem", "glow")], pivot.loc[d, ("test_sem", "realnvp")])
            n_ok += g < r
            parts.append(f"{d}: Glow {g:.3f} vs RealNVP {r:.3f} (difference {r - g:+.3f}, "
                         f"{abs(r - g) / sem:.1f} standard errors)")
        out.append(Claim(texts[0], "paper", "bpd_table", CONFIRMED if n_ok == len(pivot) else NOT_CONFIRMED,
                         f"Glow is lower on {n_ok} of {len(pivot)} datasets, full test splits. " + "; ".join(parts)))
        same = all(pivot.loc[d, ("images_seen", "glow")] == pivot.loc[d, ("images_seen", "realnvp")]
                   for d in pivot.index)
        ratios = "; ".join(f"{d}: wall time RealNVP/Glow {pivot.loc[d, ('wall_s', 'realnvp')] / pivot.loc[d, ('wall_s', 'glow')]:.2f}, "
                           f"parameters {pivot.loc[d, ('n_parameters', 'realnvp')] / pivot.loc[d, ('n_parameters', 'glow')]:.2f}"
                           for d in pivot.index)
        out.append(Claim(texts[3], "review", "bpd_table", CONFIRMED if same else NOT_CONFIRMED,
                         f"Both models of each dataset saw {'the same' if same else 'different'} numbers of steps "
                         f"and images; the table reports steps, images seen, wall seconds and parameters. {ratios}."))
    else:
        out.append(Claim(texts[0], "paper", "bpd_table", NOT_TESTABLE, "the table ran one model type only"))
    cifar = t[(t.dataset == "cifar10") & (t.model_type == "glow")]
    if len(cifar) and profile == "paper":
        v, sem = cifar.test_bpd.iloc[0], cifar.test_sem.iloc[0]
        out.append(Claim(texts[1], "paper", "bpd_table", CONFIRMED if abs(v - 3.35) <= 0.05 else NOT_CONFIRMED,
                         f"ours {v:.3f} ± {sem:.3f} vs 3.35 (confirmed within 0.05 bits/dim; peer ports reach "
                         f"3.39-3.49)"))
    else:
        why = ("the CIFAR-10 files are not on this machine" if not len(cifar)
               else f"profile {profile!r} trains a far smaller model than the paper's for far fewer steps")
        out.append(Claim(texts[1], "paper", "bpd_table", NOT_TESTABLE, why))
    out.append(Claim(texts[2], "paper", "bpd_table", NOT_TESTABLE,
                     "glowlib reads no ImageNet or LSUN files (see README, Data); the published numbers are listed "
                     "beside ours"))
    if len(out) == 3:
        out.append(Claim(texts[3], "review", "bpd_table", NOT_TESTABLE, "the table ran one model type only"))
    return out


def _macow_claims(profile, root) -> list[Claim]:
    """MaCow's and variational dequantisation's claims, from the bits/dim table's rows (:data:`TABLE_MODELS`)."""
    texts = ["MaCow reaches lower bits/dim than Glow (MaCow, Table 2: CIFAR-10 3.16 vs Glow's 3.35)",
             "Variational dequantisation lowers bits/dim below uniform dequantisation (MaCow Tables 2-3, Flow++)",
             "The importance-weighted bound is no looser than the ELBO (Burda et al.; MaCow's reported bound)"]
    missing = need(profile, root, "bpd_table")
    if missing:
        return [Claim(c, "paper", "bpd_table", missing.verdict, missing.evidence) for c in texts]
    t = read_table(profile, "bpd_table", "bpd", root)
    if "dequantization" not in t.columns:             # a table recorded before the MaCow rows existed
        t = t.assign(dequantization="uniform", iw_bpd=np.nan, elbo_iw_images=np.nan, iw_sem=np.nan, iw_k=0)
    rows = t.set_index(["dataset", "model_type"])

    def compare(claim, pairs, what):
        found = [(d, a, b) for d, a, b in pairs if (d, a) in rows.index and (d, b) in rows.index]
        if not found:
            return Claim(claim, "paper", "bpd_table", NOT_TESTABLE,
                         f"the table has no {what} rows (at profile {profile!r} they are trained on "
                         f"{list(DEQUANT_DATASETS[profile])})")
        parts, n_ok = [], 0
        for d, a, b in found:
            x, y = rows.loc[(d, a)], rows.loc[(d, b)]
            n_ok += x.test_bpd < y.test_bpd
            parts.append(f"{d}: {a} {x.test_bpd:.3f} ± {x.test_sem:.3f} vs {b} {y.test_bpd:.3f} ± {y.test_sem:.3f} "
                         f"(wall {x.wall_s:.0f} s vs {y.wall_s:.0f} s, {x.steps:.0f} vs {y.steps:.0f} steps)")
        return Claim(claim, "paper", "bpd_table", CONFIRMED if n_ok == len(found) else NOT_CONFIRMED,
                     f"Lower on {n_ok} of {len(found)} comparisons, test ELBO bits/dim on the full test split, "
                     f"same dequantisation on both sides of each: " + "; ".join(parts) + ".")

    datasets = sorted(set(t.dataset))
    out = [compare(texts[0], [(d, m, g) for d in datasets for m, g in (("macow", "glow"),
                                                                          ("macow+vardeq", "glow+vardeq"))],
                   "MaCow"),
           compare(texts[1], [(d, f"{m}+vardeq", m) for d in datasets for m in ("glow", "macow")],
                   "variational-dequantisation")]
    iw = t[t.iw_bpd.notna() & (t.iw_k > 1)]
    if not len(iw):
        out.append(Claim(texts[2], "paper", "bpd_table", NOT_TESTABLE, "the table has no importance-weighted bound"))
    else:
        ok = bool((iw.iw_bpd <= iw.elbo_iw_images).all())
        parts = "; ".join(f"{r.dataset} {r.model_type}: ELBO {r.elbo_iw_images:.4f} → k={r.iw_k:.0f} bound "
                          f"{r.iw_bpd:.4f} ({r.iw_bpd - r.elbo_iw_images:+.4f})" for r in iw.itertuples())
        out.append(Claim(texts[2], "paper", "bpd_table", CONFIRMED if ok else NOT_CONFIRMED,
                         f"On the first {int(iw.iw_n.iloc[0])} test images (the same noise for both): {parts}."))
    return out


def claims(profile: str, root=None) -> list[Claim]:
    """Table 2's claims (and the reviewers' question about equal compute), then MaCow's."""
    return _bpd_claims(profile, root) + _macow_claims(profile, root)
