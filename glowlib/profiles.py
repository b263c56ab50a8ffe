"""Named presets: ``smoke`` (CI minutes), ``cpu`` (a 2-core machine; ``make plan PROFILE=cpu`` prints what it
costs there, measured), ``gpu`` (every claim of the paper on CIFAR-10 at reduced scale, sized for a day on one
H100-class GPU), ``paper`` (the official settings, weeks of GPU time). Each is a few named lines built with
``dataclasses.replace``; comments say why. ``python -m glowlib plan --profile P`` prints what a profile trains
and what it costs on the machine at hand."""
from __future__ import annotations

import os
from dataclasses import fields, replace

import torch

from .config import (PRECISIONS, DataConfig, GlowConfig, MaCowConfig, RunConfig, TrainConfig, check_choice,
                     model_config_class)
from .layers import bf16_support

PROFILES = ("smoke", "cpu", "gpu", "paper")

# (C, image_size) of each dataset as loaded; 28x28 images are never padded, so they allow L <= 2
DATASET_SHAPES = {"mnist5k": (1, 28), "fashion_mnist": (1, 28), "mnist": (1, 28), "digits": (1, 8),
                  "cifar10": (3, 32), "celeba": (3, 64)}

# Official CIFAR-10 run (openai/glow README): L=3, K=32, width 512, affine, 1x1 LU, learntop, Adamax 1e-3,
# batch 64 per GPU, 256-image ActNorm init. GlowConfig's defaults are exactly these.
PAPER_MODEL = GlowConfig()
PAPER_TRAIN = TrainConfig(batch_size=64, steps=400_000, warmup_steps=5_000, eval_every=5_000, ckpt_every=5_000,
                          n_train_eval=10_000, ema_decay=0.9995)

# cpu: sized for a 2-core CPU in fp32 (bf16, default_precision(), where the CPU has a bf16 path). K=8 at width 128
# is the configuration bench/ measures against a plain port (bench/run_all.py's ``small``), so the speed measured
# there applies; L=2 is the most that 28x28 allows without padding. The recipe was chosen by bench/recipe.py:
# Fashion-MNIST, 800 steps each, one change at a time at equal wall time, judged on 2,000 validation images
# (results/bench/recipe/<variant>.json, the Cost page's recipe table; best validation bits/dim):
# - Adam, not the official Adamax: 3.823 against 4.175 at the same lr 3e-3 and schedule. Adamax divides by a
#   running max of |gradient| that decays by beta2 = 0.999 a step, so the large gradients of the first steps keep
#   every later step small for thousands of steps, and the ActNorm and prior scales that must grow by ~log(256) to
#   resolve the saturated background move slowly (Adamax at 1e-3: 4.700; at 6e-3: 3.927; at 1e-2: 3.866).
# - lr 3e-3: Adam at 6e-3 ended 0.015 lower (3.808), after trailing until step 600 (4.016 against 3.989 at step
#   500): a difference one training seed cannot resolve, so the rate the Adamax sweep found best is kept.
# - cosine decay to 0 after a warmup of 5% of the steps (both scale with the run's length), not a constant lr
#   after a fixed 500-step warmup: 4.175 against 4.371 (Adamax 3e-3).
# - Polyak averaging kept (the paper's), though with the lr decayed to 0 it changes little: 4.175 with it, 4.166
#   without (Adamax). Gradient clipping at norm 50 kept: without it Adam 3e-3 reached 4.335 against 3.823
#   (results/bench/recipe/no_clip.json). beta2 0.999 kept: the official 1 - 1/(steps per epoch), 0.99890 here,
#   reached 3.851 against 3.823 (results/bench/recipe/beta2_official.json; one seed, so "no better", not "worse").
# - batch 32: at the wall time of 800 steps of 64 (a step of 32 takes 0.59 of one of 64, measured in alternating
#   rounds) it reached 3.725 against 3.823, and its T = 1 draws overflowed less (11.6% against 20.6%); batch 128
#   at the same time reached 4.098 (results/bench/recipe/batch128.json).
# - width 128 at K=8, not K=16 at width 64: the deeper model reached 3.768 at equal time but 41% of its T = 1
#   draws overflowed (more affine inverses compound); K=4 width 256 reached 4.173 (shallow_wide.json). Both timed
#   while other trainings shared the machine: their equal-time step ratios are the records' "timing".
# inv_backprop off: at K=8, width 128 memory is no constraint and recomputation costs ~x1.33 in time
# (bench/options.py); it changes how, not what, the model computes, so cache keys are the same either way.
CPU_MODEL = GlowConfig(n_levels=2, depth=8, width=128, inv_backprop=False)
CPU_TRAIN = TrainConfig(batch_size=32, steps=3_000, warmup_fraction=0.05, eval_every=250, ckpt_every=250, lr=3e-3,
                        optimizer="adam", lr_schedule="cosine")

# cpu steps (of 32 images). Every model that a study compares trains CPU_STEPS[dataset] (three seeds a model,
# paired by seed); one longer run per dataset, the "quality" tier, is the model that the paper's figures (samples,
# temperature, interpolation, manipulation, nearest neighbours) share and the bits/dim table's headline row.
# The whole list must train within the profile's budget of 3 hours on a 2-core CPU without a bf16 path
# (`make plan PROFILE=cpu` measures it; the README gives the figure), which sets the lengths:
# - Fashion-MNIST: bench/quality_vs_time.py's runs of this recipe (2-core Xeon, fp32) reached 3.556 test bits/dim
#   in 2,703 steps (464 s of training) and 3.272 in 8,718 (25 minutes; the plain reference: 4.209 and 3.907); on
#   a 2-core AMD EPYC without a bf16 path, 3.626 in 10 minutes and 3.366 in 25 (the reference: 4.280 and 3.934).
#   The first failed the sanity gates narrowly (classifier confidence on T = 1 samples 0.648 against the 0.653
#   needed; 3.4% of T = 1 draws overflowed), the second passed all three (0.679; none; pixel mean 0.293 against
#   the data's 0.288: the records' "gates", bench/quality_vs_time.py --gates), so the quality run gets 6,000 steps;
#   the compared rows get 600 (19,200 images, about 0.35 of an epoch; the table's four models × three seeds
#   measured 2.3 hours of training at 1,000 steps and 1.5 at 600 on a 2-core AMD EPYC, one thread each) and are
#   judged by likelihood only.
# - mnist5k: the quality run is the additive-coupling model of ``studies.base.study_config`` at 2,500 steps
#   (CPU_QUALITY_OVERRIDES): measured by bench/model_gates.py (results/bench/model_gates/), the affine model's
#   T = 1 draws overflow too often for the sanity gates at 1,500 steps (7.6%) and at 3,000 (2.0%; the gate allows
#   1%), the additive one's never did, and at 1,500 steps its samples fell just short of the classifier-confidence
#   gate, at 2,500 they passed. The official code trains every model whose samples the paper shows with additive
#   coupling. No model is compared on mnist5k at this profile (the bits/dim table leaves its rows out:
#   ``bpd_table.LEFT_OUT_ROWS``), and the reviewers' studies that would compare its models over seeds (5-bit,
#   class-conditional, temperature validity: the "study" tier) are left out of the profile
#   (``studies.registry.LEFT_OUT``).
# ``make plan PROFILE=cpu`` prints the measured cost of the whole list.
CPU_STEPS = {"mnist5k": 1_500, "fashion_mnist": 600, "digits": 1_000}
CPU_QUALITY_STEPS = {"mnist5k": 2_500, "fashion_mnist": 6_000}
CPU_QUALITY_OVERRIDES = {"mnist5k": ["model.coupling='additive'"]}
CPU_STUDY_STEPS = {"mnist5k": 2_500}
TIERS = ("compare", "quality", "study")
CPU_EVALUATIONS = 8            # evaluations per run (each on validation, part of the test split and of training)
# test images of the periodic evaluations: a class-balanced part of Fashion-MNIST's 10,000 (the test split is in
# stratified order), enough to choose nothing (validation chooses) and to draw the curves; the chosen checkpoint
# is scored on the whole split once at the end (``training.cache``, ``test_bpd_full``). mnist5k's 1,000 and the
# 8x8 digits' 297 are evaluated whole.
CPU_TEST_IMAGES = {"fashion_mnist": 2_000}

# smoke: every code path in about a minute, for CI; the numbers mean nothing.
SMOKE_MODEL = GlowConfig(n_levels=2, depth=2, width=32, inv_backprop=False)
SMOKE_TRAIN = TrainConfig(batch_size=32, steps=60, warmup_steps=10, eval_every=20, ckpt_every=20, init_batch=64,
                          n_train_eval=200, eval_batch=250)

# gpu: every claim of the paper tested on CIFAR-10 in a day on one H100-class GPU. The paper's architecture
# (PAPER_MODEL: L=3, K=32, width 512, affine, LU 1x1, learntop) and the ablation's Fig. 3 setting (the same model,
# 3 seeds, each permutation with additive and affine coupling), for fewer steps. Sizing (``glowlib.plan``, which
# prints the same arithmetic for every run): a CIFAR-10 step at 256 images is 6.2 TFLOP (24.1 GFLOP an image,
# forward and backward, counted with torch.utils.flop_counter's formulas) and dispatches about 20,100 aten
# operations (bf16 networks). At an assumed sustained 100 TFLOP/s (a tenth of the H100 SXM's dense bf16 peak:
# small convolutions, 4x4 to 16x16 pixels, and elementwise work) that is 62 ms of arithmetic, while queueing the
# kernels takes the host about 20,100 x 5 us = 100 ms; the step never waits for the GPU, so the two overlap and a
# step takes about 100 ms. The host's share does not grow with the batch, so 256 images a step (the official run's
# global batch was 512: 64 on each of 8 GPUs) get 4x the images per second of 64 in about the same time per step;
# the stored activations take ~43 MB an image (measured, float32), 11 GB at 256. The run list (all data present)
# has 58 CIFAR-10 trainings of this model or its variants (24 ablation runs, 12 depth/normalisation/prior
# variants, the table's rows at 3 seeds, the 5-bit, validity, class-conditional and precision runs) at about 0.1 s
# a step, MaCow's 6 (~83,000 operations a step: ~0.4 s) and the small data sets' 24. 10,000 steps for CIFAR-10
# (57 epochs of its 45,000 training images), 4,000 for MaCow (about the wall time of Glow's 10,000; the bits/dim
# table compares its rows at equal training time too) and GPU_STEPS for the small data sets come to about 20 hours of
# training with its evaluations; the notebooks' own work adds about one. `make plan PROFILE=gpu` prints the
# estimate for the machine it runs on, from steps measured there.
GPU_MODEL = PAPER_MODEL
GPU_TRAIN = TrainConfig(batch_size=256, steps=10_000, warmup_steps=500, warmup_fraction=0.05, eval_every=1_000,
                        ckpt_every=1_000, n_train_eval=5_000, ema_decay=0.999)
# steps per dataset: CIFAR-10 (and CelebA) the most; the small data sets few, since their rows only need to stand
# beside the paper's and 256-image batches cover them many times (mnist5k's 3,500 training images: 110 epochs)
GPU_STEPS = {"cifar10": 10_000, "celeba": 10_000, "fashion_mnist": 4_000, "mnist": 4_000, "mnist5k": 1_500,
             "digits": 1_000}
GPU_MACOW_STEPS = 4_000

# Invertible backprop (recomputing activations through the inverse) where the stored activations of a batch
# would not fit: over ACTIVATION_BUDGET, at ~43 MB an image for the paper's CIFAR-10 model (3x32x32, K=32, width 512,
# float32; measured), growing with pixels, depth and width. At 32x32 they fit (11 GB at 256 images), and the
# recomputation would cost a third more time and a device-to-host wait for each inverse; at 256x256 (CelebA-HQ)
# 64 images would hold ~180 GB. It changes how, not what, the model computes: cache keys are the same either way.
ACTIVATION_BUDGET = 16e9
ACTIVATION_BYTES_PER_IMAGE = 43e6


def stored_activation_bytes(model: GlowConfig, batch: int) -> float:
    """About how many bytes of activations plain autograd keeps for a training step of ``model`` at ``batch``."""
    return ACTIVATION_BYTES_PER_IMAGE * batch * (model.image_size / 32) ** 2 * model.depth / 32 * model.width / 512


# MaCow (Ma et al. 2019): the official CIFAR-10 config (MaCowConfig's defaults) for paper; at smoke and cpu the
# Glow preset's L, coupling width and bit depth with fewer steps per level (each MaCow step is 8 masked conv flows
# and a Glow step), sized so that a MaCow row trains in about the wall time of the Glow row beside it
SMOKE_MACOW = MaCowConfig(n_levels=2, depth=2, width=32, n_units=1)
CPU_MACOW = MaCowConfig(n_levels=2, depth=4, width=128, n_units=1)
_MACOW = {"smoke": SMOKE_MACOW, "cpu": CPU_MACOW, "gpu": MaCowConfig(), "paper": MaCowConfig()}

_PRESETS = {"smoke": (SMOKE_MODEL, SMOKE_TRAIN, 200), "cpu": (CPU_MODEL, CPU_TRAIN, 500),
            "gpu": (GPU_MODEL, GPU_TRAIN, 5_000), "paper": (PAPER_MODEL, PAPER_TRAIN, 5_000)}
# the most validation images a dataset can give: the held-out part must leave most of its training images
# (mnist5k has 4,000, the 8x8 digits 1,497; the others 50,000 or more)
VAL_CAP = {"mnist5k": 500, "digits": 200}

# gpu and paper profiles, other datasets. The paper's CelebA-HQ runs (30,000 images at 256x256, L=6, K=32,
# additive coupling, 5-bit; Sec. 5) need CelebA-HQ's files, which glowlib does not read: its ``celeba`` is the
# aligned CelebA (202,599 images, 178x218), centre-cropped to 148x148, and upsampling those crops to 256x256 would
# not be CelebA-HQ (and would hold 202,599 x 196,608 bytes = 40 GB as uint8). So celeba trains at 64x64 (a
# downsampling: 2.5 GB as uint8, about twice that while the validation part is split off) with the CelebA-HQ
# model's coupling and bit depth, and L=4 as CIFAR-10's 32x32 has L=3.
_PAPER_DATASET_MODEL = {"celeba": dict(n_levels=4, depth=32, coupling="additive", n_bits=5, image_size=64),
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


def shrink_overrides() -> list[str]:
    """``$GLOWLIB_OVERRIDES``: ``"section.field=value"`` items separated by ``;`` that every profile config takes
    before its own overrides, to run a profile's whole pipeline at toy size (e.g. ``model.depth=2;model.width=8;
    train.steps=4``). The values become part of each config, so of its cache key: nothing is mistaken for a run
    at full size."""
    return [item.strip() for item in os.environ.get("GLOWLIB_OVERRIDES", "").split(";") if item.strip()]


def profile_config(profile: str, dataset: str = "mnist5k", model_type: str = "glow", seed: int = 0,
                   overrides=(), tier: str = "compare") -> RunConfig:
    """The RunConfig of ``profile`` for ``dataset``; ``overrides`` are ``"section.field=value"`` strings, applied
    after :func:`shrink_overrides`. ``tier`` (:data:`TIERS`): "compare", the runs that studies compare over seeds;
    "quality", the one longer run of a dataset that the figures share (:data:`CPU_QUALITY_STEPS`); "study", the
    models of the reviewers' studies that judge samples over seeds (:data:`CPU_STUDY_STEPS`). Each is the same
    as "compare" where a profile has no separate one."""
    check_choice("profile", profile, PROFILES)
    check_choice("tier", tier, TIERS)
    check_choice("dataset", dataset, tuple(DATASET_SHAPES))
    model, train, n_val = _PRESETS[profile]
    if model_type == "macow":
        model = _MACOW[profile]
    elif model_type not in ("glow", "realnvp"):
        model_config_class(model_type)                 # raises, naming the allowed model types
    channels, size = DATASET_SHAPES[dataset]
    dataset_model = _PAPER_DATASET_MODEL.get(dataset, {}) if profile in ("gpu", "paper") else {}
    own = {f.name for f in fields(model)}              # MaCowConfig has no permutation, lu, ... to set
    model = replace(model, **{k: v for k, v in {"in_channels": channels, "image_size": size, **dataset_model}.items()
                              if k in own}, precision=default_precision())
    n_val = min(n_val, VAL_CAP.get(dataset, n_val))
    if profile == "gpu":
        steps = min(GPU_STEPS[dataset], GPU_MACOW_STEPS) if model_type == "macow" else GPU_STEPS[dataset]
        every = max(100, steps // 12)
        train = replace(train, steps=steps, eval_every=every, ckpt_every=every)
    if profile in ("gpu", "paper") and model_type != "macow":
        model = replace(model, inv_backprop=stored_activation_bytes(model, train.batch_size) > ACTIVATION_BUDGET)
    if profile == "cpu" and dataset in CPU_STEPS:
        steps = {"quality": CPU_QUALITY_STEPS, "study": CPU_STUDY_STEPS}.get(tier, {}).get(dataset, CPU_STEPS[dataset])
        every = max(50, steps // CPU_EVALUATIONS)
        train = replace(train, steps=steps, eval_every=every, ckpt_every=every,
                        n_test_eval=CPU_TEST_IMAGES.get(dataset, train.n_test_eval))
    own_overrides = CPU_QUALITY_OVERRIDES.get(dataset, []) if profile == "cpu" and tier == "quality" else []
    run = RunConfig(model=model, data=DataConfig(dataset=dataset, n_bits=model.n_bits, n_val=n_val),
                    train=replace(train, seed=seed), model_type=model_type)
    return run.override(shrink_overrides() + own_overrides + list(overrides))


# ---------------------------------------------------------------------------------------------------- experiments
# Permutation ablation (paper Fig. 3: CIFAR-10, 3 seeds) plus the fixed random rotation the reviewers asked for.
ABLATION_PERMUTATIONS = ("reverse", "shuffle", "conv1x1", "rotation")
ABLATION_COUPLINGS = ("additive", "affine")
ABLATION_SEEDS = (0, 1, 2)
# cpu: 24 trainings of a small model (K=4, width 64) on Fashion-MNIST, the most CIFAR-like real data on a fresh
# machine, with the profile's recipe for 600 steps of 32 images (0.33 epoch); curves use the first 1,000 test
# images (a class-balanced part: the test split is in stratified order). Its verdicts are about likelihood only.
_ABLATION = {
    "smoke": ("digits", ["model.depth=2", "model.width=16", "train.steps=30", "train.eval_every=10"]),
    "cpu": ("fashion_mnist", ["model.depth=4", "model.width=64", "train.steps=600", "train.eval_every=60",
                              "train.ckpt_every=300", "train.n_test_eval=1000", "data.n_val=1000"]),
    "gpu": ("cifar10", []),
    "paper": ("cifar10", []),
}


def ablation_config(profile: str, permutation: str, coupling: str, seed: int) -> RunConfig:
    """One run of the permutation × coupling ablation."""
    dataset, overrides = _ABLATION[profile]
    return profile_config(profile, dataset, "glow", seed,
                          overrides + [f"model.permutation={permutation!r}", f"model.coupling={coupling!r}"])
