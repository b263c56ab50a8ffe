"""Named presets: ``smoke`` (CI minutes), ``cpu`` (a 2-core laptop, about 30 minutes a model), ``paper`` (a GPU box,
the official settings). Each is a few named lines built with ``dataclasses.replace``; comments say why."""
from __future__ import annotations

import os
from dataclasses import fields, replace

import torch

from .config import (PRECISIONS, DataConfig, GlowConfig, MaCowConfig, RunConfig, TrainConfig, check_choice,
                     model_config_class)
from .layers import bf16_support

PROFILES = ("smoke", "cpu", "paper")

# (C, image_size) of each dataset as loaded; 28x28 images are never padded, so they allow L <= 2
DATASET_SHAPES = {"mnist5k": (1, 28), "fashion_mnist": (1, 28), "mnist": (1, 28), "digits": (1, 8),
                  "cifar10": (3, 32), "celeba": (3, 64)}

# Official CIFAR-10 run (openai/glow README): L=3, K=32, width 512, affine, 1x1 LU, learntop, Adamax 1e-3,
# batch 64 per GPU, 256-image ActNorm init. GlowConfig's defaults are exactly these.
PAPER_MODEL = GlowConfig()
PAPER_TRAIN = TrainConfig(batch_size=64, steps=400_000, warmup_steps=5_000, eval_every=5_000, ckpt_every=5_000,
                          n_train_eval=10_000, ema_decay=0.9995)

# cpu: the whole profile (about 56 trainings: the bits/dim table's 9 models, the permutation ablation's 24, the
# reviewers' studies' 20, two classifiers, and the precision study's 1 to 3 more) trains in about 90
# minutes on 2 cores in fp32 (bf16, default_precision(), trains about 1.6x faster), so the shared mnist5k model
# gets about 16 of them (3,000 steps; 6,000 steps, 32 minutes, reached 1.73 test bits/dim where 3,000 reached
# 1.94, same seed; results/cpu/bpd_table/curves.csv holds the 3,000-step curve). K=8 at width 128 is the
# configuration bench/ measures against a plain port (bench/run_all.py's ``small``), so the speed measured there
# applies to these models. L=2 is the most that 28x28 allows without padding.
# lr 3e-3, not the official 1e-3: at 1e-3 the ActNorm scales that must grow by ~log(256) to resolve MNIST's
# saturated background take thousands of steps (val 3.76 vs 2.97 bits/dim at step 500, same seed); the Polyak
# weights and validation-chosen checkpoints absorb the extra noise.
# inv_backprop off: at K=8, width 128 memory is no constraint and recomputation costs ~x1.33 in time
# (bench/options.py); it changes how, not what, the model computes, so cache keys are the same either way.
CPU_MODEL = GlowConfig(n_levels=2, depth=8, width=128, inv_backprop=False)
CPU_TRAIN = TrainConfig(batch_size=64, steps=3_000, warmup_steps=500, eval_every=250, ckpt_every=250, lr=3e-3)

# smoke: every code path in about a minute, for CI; the numbers mean nothing.
SMOKE_MODEL = GlowConfig(n_levels=2, depth=2, width=32, inv_backprop=False)
SMOKE_TRAIN = TrainConfig(batch_size=32, steps=60, warmup_steps=10, eval_every=20, ckpt_every=20, init_batch=64,
                          n_train_eval=200, eval_batch=250)

# MaCow (Ma et al. 2019): the official CIFAR-10 config (MaCowConfig's defaults) for paper; at smoke and cpu the
# Glow preset's L, coupling width and bit depth with fewer steps per level (each MaCow step is 8 masked conv flows
# and a Glow step), sized so that a MaCow row trains in about the wall time of the Glow row beside it
SMOKE_MACOW = MaCowConfig(n_levels=2, depth=2, width=32, n_units=1)
CPU_MACOW = MaCowConfig(n_levels=2, depth=4, width=128, n_units=1)
_MACOW = {"smoke": SMOKE_MACOW, "cpu": CPU_MACOW, "paper": MaCowConfig()}

_PRESETS = {"smoke": (SMOKE_MODEL, SMOKE_TRAIN, 200), "cpu": (CPU_MODEL, CPU_TRAIN, 500),
            "paper": (PAPER_MODEL, PAPER_TRAIN, 5_000)}

# paper profile, other datasets: CelebA-HQ used L=6, K=32, additive coupling, 5-bit (paper Sec. 5)
_PAPER_DATASET_MODEL = {"celeba": dict(n_levels=6, depth=32, coupling="additive", n_bits=5, image_size=256),
                        "mnist5k": dict(n_levels=2), "fashion_mnist": dict(n_levels=2), "mnist": dict(n_levels=2),
                        "digits": dict(n_levels=2)}


def default_precision() -> str:
    """The precision the profiles train in: ``"bf16"`` (coupling networks in bf16, everything that decides exactness
    in float32) where the device that ``python -m glowlib train`` picks by default (CUDA if available, else the CPU)
    has a bf16 hardware path (``layers.bf16_support``: tensor cores, AMX or AVX512-BF16), else ``"fp32"``, which is
    also ``GlowConfig``'s own default. ``$GLOWLIB_PRECISION`` (``fp32`` or ``bf16``) overrides it, e.g. to rerun
    the committed fp32 results on a machine with bf16. The choice is part of each run's config, so of its cache key
    and provenance. On a 2-core AMD EPYC with AVX512-BF16 (``results/cpu/precision``) Fashion-MNIST's cpu Glow
    trained 700 steps in 1.6x less wall time in bf16, its test bits/dim within the spread of two fp32 seeds."""
    forced = os.environ.get("GLOWLIB_PRECISION", "")
    if forced:
        check_choice("$GLOWLIB_PRECISION", forced, PRECISIONS)
        return forced
    fast, _ = bf16_support("cuda" if torch.cuda.is_available() else "cpu")
    return "bf16" if fast else "fp32"


def profile_config(profile: str, dataset: str = "mnist5k", model_type: str = "glow", seed: int = 0,
                   overrides=()) -> RunConfig:
    """The RunConfig of ``profile`` for ``dataset``; ``overrides`` are ``"section.field=value"`` strings."""
    check_choice("profile", profile, PROFILES)
    check_choice("dataset", dataset, tuple(DATASET_SHAPES))
    model, train, n_val = _PRESETS[profile]
    if model_type == "macow":
        model = _MACOW[profile]
    elif model_type not in ("glow", "realnvp"):
        model_config_class(model_type)                 # raises, naming the allowed model types
    channels, size = DATASET_SHAPES[dataset]
    dataset_model = _PAPER_DATASET_MODEL.get(dataset, {}) if profile == "paper" else {}
    own = {f.name for f in fields(model)}              # MaCowConfig has no permutation, lu, ... to set
    model = replace(model, **{k: v for k, v in {"in_channels": channels, "image_size": size, **dataset_model}.items()
                              if k in own}, precision=default_precision())
    if dataset == "digits":
        n_val = min(n_val, 200)          # 1,497 training images in all
    if profile == "cpu" and dataset != "mnist5k":
        # the shared mnist5k model gets the largest share; the other table rows share the rest of the ~90 minutes
        # (sized on a 2-core AVX2 machine, where mnist5k's Glow trains at ~200 images/s): Fashion-MNIST's five
        # rows (studies.bpd_table.DEQUANT_DATASETS) 700 steps each, the 8x8 digits' 1,000
        train = replace(train, steps=700 if dataset == "fashion_mnist" else 1_000)
    if profile == "cpu" and model_type == "realnvp":
        # RealNVP's masked couplings run at about half Glow's images/s on 2 cores (mnist5k: ~235 vs ~470), so
        # half the steps is about the same wall time; the bits/dim table states every row's steps and seconds
        train = replace(train, steps=train.steps // 2)
    run = RunConfig(model=model, data=DataConfig(dataset=dataset, n_bits=model.n_bits, n_val=n_val),
                    train=replace(train, seed=seed), model_type=model_type)
    return run.override(list(overrides))


# ---------------------------------------------------------------------------------------------------- experiments
# Permutation ablation (paper Fig. 3: CIFAR-10, 3 seeds) plus the fixed random rotation the reviewers asked for.
ABLATION_PERMUTATIONS = ("reverse", "shuffle", "conv1x1", "rotation")
ABLATION_COUPLINGS = ("additive", "affine")
ABLATION_SEEDS = (0, 1, 2)
# cpu: 24 trainings share about 25 minutes, so each is a small model (K=4, width 64) for 600 steps (~0.7 epoch)
# of Fashion-MNIST, the most CIFAR-like real data on a fresh machine; curves use the first 1,000 test images.
_ABLATION = {
    "smoke": ("digits", ["model.depth=2", "model.width=16", "train.steps=30", "train.eval_every=10"]),
    "cpu": ("fashion_mnist", ["model.depth=4", "model.width=64", "train.steps=600", "train.eval_every=50",
                              "train.ckpt_every=300", "train.n_test_eval=1000", "train.warmup_steps=100",
                              "data.n_val=1000"]),
    "paper": ("cifar10", []),
}


def ablation_config(profile: str, permutation: str, coupling: str, seed: int) -> RunConfig:
    """One run of the permutation × coupling ablation."""
    dataset, overrides = _ABLATION[profile]
    return profile_config(profile, dataset, "glow", seed,
                          overrides + [f"model.permutation={permutation!r}", f"model.coupling={coupling!r}"])
