"""Named presets: ``smoke`` (CI minutes), ``cpu`` (a 2-core machine in about three hours), ``gpu`` (every claim of
the paper on CIFAR-10 at reduced scale, sized for a day on one H100-class GPU), ``paper`` (the official settings,
weeks of GPU time). A profile is one :class:`Profile`: every choice that differs between profiles, the studies'
knobs included, is one of its fields, each with its reason; the presets are a few named lines built with
``dataclasses.replace``. :func:`profile` returns one by name, :func:`profile_config` turns it into a run's config.

The measurements behind these choices are not copied here: they are the records cited beside each field
(``results/bench/``, written by ``bench/``) and the Cost page; ``make plan PROFILE=P`` (``glowlib.plan``) prints
what a profile trains and what it costs on the machine at hand."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

import torch

from .config import (PRECISIONS, DataConfig, GlowConfig, MaCowConfig, RunConfig, TrainConfig, check_choice,
                     model_config_class)
from .data import BIT_DEPTH
from .layers import bf16_support

PROFILES = ("smoke", "cpu", "gpu", "paper")
TIERS = ("compare", "quality", "study")

# (C, image_size) of each dataset as loaded; 28x28 images are never padded, so they allow L <= 2
DATASET_SHAPES = {"mnist5k": (1, 28), "fashion_mnist": (1, 28), "mnist": (1, 28), "digits": (1, 8),
                  "cifar10": (3, 32), "celeba": (3, 64), "patches": (3, 16)}
# the most validation images a dataset can give: the held-out part must leave most of its training images
# (mnist5k has 4,000, the 8x8 digits 1,497; the others 50,000 or more)
VAL_CAP = {"mnist5k": 500, "digits": 200}

# Official CIFAR-10 run (openai/glow README): L=3, K=32, width 512, affine, 1x1 LU, learntop, Adamax 1e-3,
# batch 64 per GPU, 256-image ActNorm init. GlowConfig's defaults are exactly these.
PAPER_MODEL = GlowConfig()
PAPER_TRAIN = TrainConfig(batch_size=64, steps=400_000, warmup_steps=5_000, eval_every=5_000, ckpt_every=5_000,
                          n_train_eval=10_000, ema_decay=0.9995)

# Invertible backprop (recomputing activations through the inverse) where the stored activations of a batch would
# not fit in ACTIVATION_BUDGET; the bytes an image of the paper's CIFAR-10 model stores (float32) are measured by
# bench/memory.py (results/bench/memory_cifar.json) and grow with pixels, depth and width. Where they fit,
# recomputation only costs time (bench/options.py). It changes how, not what, the model computes: cache keys are
# the same either way.
ACTIVATION_BUDGET = 16e9
ACTIVATION_BYTES_PER_IMAGE = 43e6


def stored_activation_bytes(model: GlowConfig, batch: int) -> float:
    """About how many bytes of activations plain autograd keeps for a training step of ``model`` at ``batch``."""
    return ACTIVATION_BYTES_PER_IMAGE * batch * (model.image_size / 32) ** 2 * model.depth / 32 * model.width / 512


# ---------------------------------------------------------------------------------------------------- experiments
# Permutation ablation (paper Fig. 3: CIFAR-10, 3 seeds) plus the fixed random rotation the reviewers asked for.
ABLATION_PERMUTATIONS = ("reverse", "shuffle", "conv1x1", "rotation")
ABLATION_COUPLINGS = ("additive", "affine")
ABLATION_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Profile:
    """Every choice that differs between profiles. A field's comment gives its reason; a mapping keyed by dataset
    (or study) holds only the entries that differ from the rule stated beside it. Mappings are read-only."""

    name: str
    # the Glow every run starts from (its dataset's C and size filled in by profile_config)
    model: GlowConfig
    # optimiser, schedule and evaluations of every run unless a field below changes them
    train: TrainConfig
    # validation images held out of training (less for small datasets: VAL_CAP)
    n_val: int
    # the MaCow rows of the bits/dim table: sized to train in about the wall time of the Glow row beside them
    macow: MaCowConfig
    # per-dataset model changes for images other than the preset's (CelebA's size and coupling, 28x28's L)
    dataset_models: dict = field(default_factory=dict)
    # recompute activations through the inverse where a batch's would not fit ACTIVATION_BUDGET
    inv_backprop_over_budget: bool = True
    # training steps per dataset; a dataset not named trains the preset's own steps and evaluations
    steps: dict = field(default_factory=dict)
    # evaluations (and checkpoints) in a run of a dataset in `steps`, so each curve has the same resolution
    evaluations: int = 12
    # no fewer steps between evaluations than this: an evaluation costs as much as many steps
    min_eval_every: int = 100
    # test images of each periodic evaluation, by dataset (the chosen checkpoint is scored on the whole split)
    test_images: dict = field(default_factory=dict)
    # steps of the "quality" tier, by dataset: the longer run the figures share (else the "compare" length)
    quality_steps: dict = field(default_factory=dict)
    # overrides of the "quality" tier, by dataset: what its figures need that the compared rows do not
    quality_overrides: dict = field(default_factory=dict)
    # steps of the "study" tier, by dataset: the reviewers' models whose samples are judged over seeds
    study_steps: dict = field(default_factory=dict)
    # studies `make reproduce` leaves out, with the reason (their claims: "not testable at this scale")
    left_out: dict = field(default_factory=dict)
    # the permutation ablation's dataset: the paper's CIFAR-10 where the profile can afford it
    ablation_dataset: str = "cifar10"
    # the permutation ablation's changes to the profile's model and schedule
    ablation_overrides: tuple = ()
    # the one Glow that samples, temperature, interpolation, manipulation and nearest neighbours share
    figure_dataset: str = "cifar10"
    # manipulation's dataset: the first present; CelebA has attribute labels, CIFAR-10 only classes
    manipulation_datasets: tuple = ("celeba", "cifar10")
    # labelled data of the 5-bit, temperature-validity and class-conditional studies (a classifier judges samples)
    study_dataset: str = "cifar10"
    # a reviewers' study's own dataset where it is not study_dataset, by study: where the study needs three training
    # seeds of several arms, the 8x8 digits' short runs can afford them and study_dataset's cannot
    study_datasets: dict = field(default_factory=dict)
    # datasets whose bits/dim table gets the MaCow and variational-dequantisation rows (the others: RealNVP, Glow)
    table_dequant_datasets: tuple = ("cifar10",)
    # the importance-weighted bound: (samples per image, test images), k times the cost of one evaluation
    iw_samples: tuple = (16, 5_000)
    # rows of the bits/dim table left out, by dataset: (rows, reason)
    table_left_out: dict = field(default_factory=dict)
    # what_works' depths K at a fixed parameter count: half, the same and twice the reference's
    what_works_depths: tuple = (16, 32, 64)
    # the precision study's dataset: the largest the profile trains
    precision_dataset: str = "cifar10"
    # the precision study's steps (None: the profile's own for its dataset)
    precision_steps: int | None = None
    # class_conditional's y_weights="auto" (None: every weight of class_conditional.Y_WEIGHTS)
    y_weights: tuple | None = None
    # temperature_validity's priors="auto" (None: every prior of temperature_validity.VALIDITY_PRIORS)
    validity_priors: tuple | None = None
    # sampling_cost's Setup (its fields): heights and model size for the machine the profile runs on
    sampling_cost: dict = field(default_factory=dict)
    # the measuring classifier's settings that differ from analysis.ClassifierSettings' defaults, for every page of
    # the profile (studies.base.measuring_classifier)
    classifier: dict = field(default_factory=dict)

    def __post_init__(self):
        check_choice("profile", self.name, PROFILES)
        for f in fields(self):
            if isinstance(getattr(self, f.name), dict):
                object.__setattr__(self, f.name, MappingProxyType(dict(getattr(self, f.name))))


# ---------------------------------------------------------------------------------------------------- presets
# CelebA-HQ's files are not read by glowlib: its ``celeba`` is the aligned CelebA, centre-cropped; upsampled to
# 256x256 it would not be CelebA-HQ and would not fit in memory as uint8. So celeba trains at 64x64 with the paper's
# CelebA-HQ coupling and bit depth (Sec. 5), L=4 as CIFAR-10's 32x32 has L=3; 28x28 and 8x8 allow L=2 unpadded.
_FULL_SIZE_DATASET_MODELS = {"celeba": dict(n_levels=4, depth=32, coupling="additive", n_bits=5, image_size=64),
                             "mnist5k": dict(n_levels=2), "fashion_mnist": dict(n_levels=2), "mnist": dict(n_levels=2),
                             "digits": dict(n_levels=2)}

# paper: the official settings (openai/glow README, the MaCow paper's CIFAR-10 config), weeks of GPU time
PAPER = Profile(
    "paper", model=PAPER_MODEL, train=PAPER_TRAIN, n_val=5_000, macow=MaCowConfig(),
    dataset_models=_FULL_SIZE_DATASET_MODELS,
    table_dequant_datasets=("cifar10", "mnist"),   # the two datasets both papers report
    iw_samples=(64, 10_000),                       # the whole test split, k as in the MaCow paper's evaluation
    precision_steps=20_000,                        # a full run per seed and precision would be four paper runs
    # up to CelebA-HQ's 256x256; L=4 so that the smallest height, 16, still halves L times
    sampling_cost=dict(heights=(16, 32, 64, 128, 256), n_levels=4, depth=8, width=256, batch=8, n_repeats=5,
                       paper_model=True),
)

# gpu: every claim on CIFAR-10 in a day on one H100-class GPU: the paper's model for fewer steps, 256 images a step
# (the host's dispatch, not the arithmetic, bounds a step: a bigger batch is nearly free). `make plan PROFILE=gpu`
# prints the step counts, FLOPs and the measured time of the whole list on the machine at hand.
GPU_TRAIN = TrainConfig(batch_size=256, steps=8_000, warmup_steps=500, warmup_fraction=0.05, eval_every=1_000,
                        ckpt_every=1_000, n_train_eval=5_000, ema_decay=0.999)
GPU = replace(
    PAPER, name="gpu", train=GPU_TRAIN,
    # CIFAR-10 and CelebA the most; the small datasets' rows only stand beside the paper's, and 256-image batches
    # cover them many times over
    steps={"cifar10": 8_000, "celeba": 8_000, "fashion_mnist": 4_000, "mnist": 4_000, "mnist5k": 1_500,
           "digits": 1_000},
    # the cpu profile's stand-ins keep its model size: a paper-size model (44M parameters) on 3,500 or 1,497
    # training images overfits within its first epochs, and its 12 finished runs would fill disk the CIFAR-10 runs
    # need (make plan PROFILE=gpu prints each run's)
    dataset_models={**_FULL_SIZE_DATASET_MODELS, "mnist5k": dict(n_levels=2, depth=8, width=128),
                    "digits": dict(n_levels=2, depth=8, width=128)},
    table_dequant_datasets=("cifar10",),
    iw_samples=(16, 5_000),                        # half the test split: the bound costs k evaluations
    precision_steps=3_000,                         # the precision study compares, it need not converge
)

# cpu: a 2-core CPU in about three hours (`make plan PROFILE=cpu` prints the measured cost; the README the total).
# K=8 at width 128 is bench/run_all.py's ``small`` model, so bench/'s speed records apply; L=2 is the most 28x28
# allows unpadded. The recipe (Adam 3e-3, cosine decay after a warmup scaled with the run, batch 32, Polyak averaging and clipping
# kept, width over depth) was chosen one change at a time at equal wall time by bench/recipe.py: the records are
# results/bench/recipe/<variant>.json and the Cost page's recipe table. inv_backprop off: the activations fit and
# recomputing them costs time (bench/options.py, results/bench/options_small.json).
CPU_MODEL = GlowConfig(n_levels=2, depth=8, width=128, inv_backprop=False)
CPU_TRAIN = TrainConfig(batch_size=32, steps=3_000, warmup_fraction=0.05, eval_every=250, ckpt_every=250, lr=3e-3,
                        optimizer="adam", lr_schedule="cosine")
CPU = replace(
    PAPER, name="cpu", model=CPU_MODEL, train=CPU_TRAIN, n_val=500,
    macow=MaCowConfig(n_levels=2, depth=4, width=128, n_units=1),   # a MaCow step is 8 masked convs and a Glow step
    dataset_models={}, inv_backprop_over_budget=False,
    # the compared models: three seeds each within the budget (make plan PROFILE=cpu); judged by likelihood only
    steps={"mnist5k": 1_500, "fashion_mnist": 600, "digits": 1_000},
    evaluations=8, min_eval_every=50,
    # a class-balanced part of Fashion-MNIST's test split (stratified order) draws the curves; mnist5k and digits
    # are evaluated whole
    test_images={"fashion_mnist": 2_000},
    # the shared models' lengths: the shortest whose samples passed the sanity gates (bench/quality_vs_time.py
    # --gates, results/bench/quality_vs_time/; bench/model_gates.py, results/bench/model_gates/)
    quality_steps={"mnist5k": 2_500, "fashion_mnist": 6_000},
    # mnist5k's affine model overflowed the gates' share of T = 1 draws, the additive one did not
    # (results/bench/model_gates/); the official code samples every model it shows with additive coupling
    quality_overrides={"mnist5k": ("model.coupling='additive'",)},
    study_steps={"mnist5k": 2_500},                # the gated additive model of results/bench/model_gates/
    left_out={"bits_5v8": ("it needs 8-bit images whose model's samples pass the sanity gates, and none here "
                           "has both: the 8x8 digits carry 4 bits (no 8-bit arm), and mnist5k's Glow at the 2,500 "
                           "steps of its study runs fails the recall and class-coverage gates (the samples page), "
                           "so its five trainings would give a claim that is not testable; no run length at which "
                           "it passes them has been measured, and longer runs are not in this profile")},
    # the digits' Glow and RealNVP of the bits/dim table pass every sample gate at their 1,000 steps (the samples
    # page's gates.csv), a run a few CPU-minutes: three seeds of each arm fit where mnist5k's 2,500-step runs do not.
    # The 5-bit study needs 8-bit images, which the digits (4 bits) lack: mnist5k here, and at smoke, which inherits
    # this field and whose study_dataset is the digits
    # The temperature and nearest-neighbour claims judge samples, so they need a model that passes the sample gates
    # at T = 0.7 and 1: mnist5k's figure model (2,500 steps) fails the recall and class-coverage gates (the
    # temperature page's gates.csv of the committed results before the move), the digits' Glow passes every gate at
    # both temperatures (the samples page's gates.csv), its three training seeds the bits/dim table's own
    study_datasets={"temperature_validity": "digits", "class_conditional": "digits", "bits_5v8": "mnist5k",
                    "temperature": "digits", "nearest_neighbours": "digits"},
    # Fashion-MNIST: the most CIFAR-like real data on a fresh machine; a smaller model (K=4, width 64), 600 steps,
    # curves on a class-balanced first 1,000 test images; its verdicts are about likelihood only
    ablation_dataset="fashion_mnist",
    ablation_overrides=("model.depth=4", "model.width=64", "train.steps=600", "train.eval_every=60",
                        "train.ckpt_every=300", "train.n_test_eval=1000", "data.n_val=1000"),
    figure_dataset="mnist5k",                      # its gated quality run is the one the figures can afford
    # thickness and slant are measured from the images; the claim needs three training seeds of a model that passes
    # the sample gates: the digits' Glow, as for the temperature claim (mnist5k's figure model is one seed that fails
    # the recall and class-coverage gates)
    manipulation_datasets=("digits",),
    study_dataset="mnist5k",                       # the figures' dataset: its classifier serves both
    table_dequant_datasets=("fashion_mnist",),     # the full real dataset a fresh machine has, most CIFAR-like
    iw_samples=(8, 2_000),                         # a part of the test split: the bound costs k evaluations
    # Fashion-MNIST: MaCow with variational dequantisation is the costliest row, and the other rows compare its
    # two factors one at a time; mnist5k: Glow against RealNVP is decided on Fashion-MNIST and the digits
    table_left_out={
        "fashion_mnist": (("macow+vardeq",), "the costliest row; MaCow against Glow and variational against "
                                             "uniform dequantisation are each compared on their own"),
        "mnist5k": (("realnvp", "glow"), "Glow against RealNVP is decided on Fashion-MNIST and the 8x8 digits; "
                                         "this dataset's row is its quality run (one seed), the model the figures "
                                         "share")},
    what_works_depths=(2, 4, 8),
    precision_dataset="fashion_mnist",             # the bits/dim table's largest dataset at this profile
    precision_steps=None,
    # the official conditional runs' weight decides the claim (against chance); beside it, y_weight = 0 (the
    # class-conditional prior without the classification loss) says how much of the conditioning the loss brings
    y_weights=(0.0, 0.01),
    # the standard prior alone: with it additive coupling is exact, the yardstick the claim is decided against. The
    # learned prior's affine arm would be the bits/dim table's digits Glow, but there both arms sit at ESS/n's floor
    # of 1/n, which decides nothing (temperature_validity.decisions), so its additive arm is not trained
    validity_priors=("standard",),
    # a laptop core, up to heights where Glow's arithmetic outweighs its fixed costs; the paper's own 256x256 model
    # for its sampling-speed claim fits a CPU's memory, and a few samples of it take about a minute here
    sampling_cost=dict(heights=(8, 16, 32, 64, 128), n_levels=3, depth=4, width=128, batch=4, n_repeats=5,
                       paper_model=True),
)

# smoke: every code path in minutes, for CI (`make test`); the numbers mean nothing. Each training is as short as
# leaves a curve of three evaluations; the evaluations read part of the test split (the chosen checkpoint is scored
# on all of it once), so that Fashion-MNIST's 10,000 test images are not read at every one of them
SMOKE = replace(
    CPU, name="smoke", n_val=200,
    model=GlowConfig(n_levels=2, depth=2, width=32, inv_backprop=False),
    train=TrainConfig(batch_size=32, steps=30, warmup_steps=5, eval_every=10, ckpt_every=10, init_batch=64,
                      n_train_eval=100, n_test_eval=200, eval_batch=250),
    macow=MaCowConfig(n_levels=2, depth=2, width=32, n_units=1),
    steps={}, test_images={}, quality_steps={}, quality_overrides={}, study_steps={}, left_out={},
    table_left_out={},
    ablation_dataset="digits",                     # the 8x8 digits: seconds a run
    ablation_overrides=("model.depth=2", "model.width=16", "train.steps=30", "train.eval_every=10"),
    study_dataset="digits",
    table_dequant_datasets=("digits",),
    iw_samples=(4, 100),
    what_works_depths=(1, 2, 4),
    precision_dataset="digits",
    y_weights=(0.01,),                             # the claim's arm alone: smoke shows the code runs
    validity_priors=None,
    # three repeats: with two, the exponent's t-interval is far too wide to say anything
    sampling_cost=dict(heights=(8, 16, 32), n_levels=2, depth=2, width=32, batch=4, n_repeats=3),
    # a measuring classifier of seconds: every measure runs, none means anything (Fashion-MNIST's 60,000 images
    # for ClassifierSettings' 10 epochs would take the samples page minutes)
    classifier=dict(epochs=2, max_images=1_000),
)

_BY_NAME = {p.name: p for p in (SMOKE, CPU, GPU, PAPER)}


def profile(name: str) -> Profile:
    """The :class:`Profile` called ``name`` (one of :data:`PROFILES`)."""
    check_choice("profile", name, PROFILES)
    return _BY_NAME[name]


def default_precision() -> str:
    """The precision the profiles train in: ``"bf16"`` (coupling networks in bf16, everything that decides exactness
    in float32) where the device that ``python -m glowlib train`` picks by default (CUDA if available, else the CPU)
    has a bf16 hardware path (``layers.bf16_support``: tensor cores, AMX or AVX512-BF16), else ``"fp32"``, which is
    also ``GlowConfig``'s own default. ``$GLOWLIB_PRECISION`` (``fp32`` or ``bf16``) overrides it, e.g. to rerun
    the committed fp32 results on a machine with bf16. The choice is part of each run's config, so of its cache key
    and provenance. What bf16 saves and costs is measured by the precision study (``results/cpu/precision/``)."""
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
    "quality", the one longer run of a dataset that the figures share (``Profile.quality_steps``); "study", the
    models of the reviewers' studies that judge samples over seeds (``Profile.study_steps``). Each is the same
    as "compare" where a profile has no separate one."""
    check_choice("profile", profile, PROFILES)
    check_choice("tier", tier, TIERS)
    check_choice("dataset", dataset, tuple(DATASET_SHAPES))
    p = _BY_NAME[profile]
    model, train = p.model, p.train
    if model_type == "macow":
        model = p.macow
    elif model_type not in ("glow", "realnvp"):
        model_config_class(model_type)                 # raises, naming the allowed model types
    channels, size = DATASET_SHAPES[dataset]
    own = {f.name for f in fields(model)}              # MaCowConfig has no permutation, lu, ... to set
    model = replace(model, **{k: v for k, v in {"in_channels": channels, "image_size": size,
                                                **p.dataset_models.get(dataset, {})}.items()
                              if k in own}, precision=default_precision())
    # never finer than the images carry (data.BIT_DEPTH: the 8x8 digits are 4-bit), else dequantisation leaves
    # empty bins between the levels and the likelihood runs away on them
    model = replace(model, n_bits=min(model.n_bits, BIT_DEPTH.get(dataset, 8)))
    n_val = min(p.n_val, VAL_CAP.get(dataset, p.n_val))
    if dataset in p.steps:
        tiered = {"quality": p.quality_steps, "study": p.study_steps}.get(tier, {})
        steps = tiered.get(dataset, p.steps[dataset])
        every = max(p.min_eval_every, steps // p.evaluations)
        train = replace(train, steps=steps, eval_every=every, ckpt_every=every,
                        n_test_eval=p.test_images.get(dataset, train.n_test_eval))
    if p.inv_backprop_over_budget and model_type != "macow":
        model = replace(model, inv_backprop=stored_activation_bytes(model, train.batch_size) > ACTIVATION_BUDGET)
    own_overrides = list(p.quality_overrides.get(dataset, ())) if tier == "quality" else []
    run = RunConfig(model=model, data=DataConfig(dataset=dataset, n_bits=model.n_bits, n_val=n_val),
                    train=replace(train, seed=seed), model_type=model_type)
    return run.override(shrink_overrides() + own_overrides + list(overrides))


def ablation_config(profile: str, permutation: str, coupling: str, seed: int) -> RunConfig:
    """One run of the permutation × coupling ablation (``Profile.ablation_dataset`` and its overrides)."""
    check_choice("profile", profile, PROFILES)
    p = _BY_NAME[profile]
    return profile_config(profile, p.ablation_dataset, "glow", seed,
                          list(p.ablation_overrides) + [f"model.permutation={permutation!r}",
                                                        f"model.coupling={coupling!r}"])
