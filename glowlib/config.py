"""Configuration: frozen dataclasses for the models (Glow/RealNVP, MaCow), the data and the training, validated
on construction, and ``RunConfig``, their union, whose hash keys the trained-model cache.

Field names follow the paper: K = ``depth`` flow steps per level, L = ``n_levels`` levels (Sec. 3, Fig. 2).
Every default of ``GlowConfig`` is the official CIFAR-10 setting (openai/glow ``train.py`` flags, paper Sec. 5).
This module imports nothing from glowlib, so that any part of the package can read a config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

PERMUTATIONS = ("conv1x1", "shuffle", "reverse", "rotation")
COUPLINGS = ("affine", "additive")
PRECISIONS = ("fp32", "bf16")
DATA_ORDERS = ("stratified", "file")          # glowlib.data.ORDERS
ORIENTATIONS = ("top-down", "bottom-up", "left-right", "right-left")   # of MaCow's masked convolutions
MULTISCALES = ("fine", "glow")                 # MaCow's factoring-out: several parts per level, or Glow's half
# glowlib.models.dequantization: Glow's U(0, 1) noise, or a learned q(u | x)
DEQUANTIZATIONS = ("uniform", "variational")
# GlowConfig fields that change how the model is computed, not what it computes: left out of RunConfig.key(), so
# that a trained model is found in the cache whichever way it was (or will be) run
EXECUTION_FIELDS = ("inv_backprop", "fused", "channels_last")
# TrainConfig fields that change how a run is computed, not what: left out of RunConfig.key() likewise
TRAIN_EXECUTION_FIELDS = ("compile", "deterministic")
COMPILE_MODES = ("auto", "off", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
# The fields each section had when cache keys were first defined, frozen here (never derived from the dataclasses):
# RunConfig.key() always hashes these, and hashes any other field only when it differs from its legacy value
# (LEGACY_VALUES below, else its default). So a
# field added later with a default (precision, y_weight, dequantization were) leaves every existing key as it was,
# while a non-default value, which changes the numbers, gets its own key. The model section's set depends on the
# model type, so that a field one model config already had cannot change the other's keys when it is added there.
_GLOW_KEYED = ("in_channels", "image_size", "n_levels", "depth", "width", "permutation", "lu", "coupling",
               "learn_top", "n_bits", "actnorm", "learned_prior", "n_classes")
KEYED_FIELDS = {
    "model": {"glow": _GLOW_KEYED, "realnvp": _GLOW_KEYED,
              "macow": ("in_channels", "image_size", "n_levels", "depth", "width", "coupling", "n_units", "mcf_width",
                        "kernel_height", "kernel_width", "multiscale", "fine_splits", "learn_top", "learned_prior",
                        "n_bits")},
    "data": ("dataset", "n_bits", "n_val", "data_root"),
    "train": ("optimizer", "lr", "warmup_steps", "batch_size", "steps", "grad_clip", "init_batch", "ema_decay",
              "eval_every", "ckpt_every", "n_train_eval", "n_test_eval", "eval_batch", "nonfinite_policy",
              "max_skips", "device", "seed"),
}
# A field added later whose default changes the numbers (not only how they are computed) names here the value that
# reproduces what the code did before it existed: the key leaves the field out at that value, and hashes the new
# default, so models trained by the old code are never taken for the new behaviour's. data.order: splits used to
# keep the files' order.
LEGACY_VALUES = {"data": {"order": "file"}}


def check_choice(field: str, value, allowed) -> None:
    """Raise a ValueError naming the field, the bad value and the allowed ones."""
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not allowed; choose one of {tuple(allowed)}")


def check_range(field: str, value, low=None, high=None, kind=int) -> None:
    """Raise a ValueError unless ``value`` is a ``kind`` within [low, high] (and finite, for a float)."""
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{field}={value!r} must be of type {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{field}={value!r} must be a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"{field}={value!r} is out of range; allowed: {bounds}")


# Upper bounds of the sizes a config may ask for: far above any run glowlib makes (the paper's largest: CelebA-HQ at
# 256x256, L=6, K=32, width 512, 400,000 steps), far below what would exhaust a machine's memory while the model is
# built (a depth of 10^7 builds 10^7 modules before any check of memory could fail): a mistyped size fails at once.
LIMITS = {"in_channels": 64, "image_size": 4096, "n_levels": 12, "depth": 1024, "width": 16384, "n_classes": 100_000,
          "n_units": 64, "mcf_width": 16384, "kernel_height": 64, "kernel_width": 65, "fine_splits": 64,
          "n_val": 10_000_000, "batch_size": 1_000_000, "steps": 100_000_000, "warmup_steps": 100_000_000,
          "init_batch": 1_000_000, "eval_every": 100_000_000, "ckpt_every": 100_000_000,
          "n_train_eval": 10_000_000, "n_test_eval": 10_000_000, "eval_batch": 1_000_000, "max_skips": 1_000_000,
          "seed": 2 ** 31 - 1}
# Adam(ax)'s step size: above 1 every update overshoots weights of order 1 and the first step diverges
MAX_LR = 1.0


def check_size(field: str, value, low: int = 1) -> None:
    """``check_range`` of an int size field between ``low`` and its ``LIMITS`` bound."""
    check_range(field, value, low, LIMITS[field.split(".")[-1]])


def check_finite_floats(config) -> None:
    """Raise a ValueError naming the first float field of a config dataclass that is NaN or infinite: no run can
    use one, and NaN compares false with every bound, so range checks alone would let it through."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{type(config).__name__}.{f.name}={value!r} must be a finite number")


class MultiScaleConfig:
    """What a multi-scale model's config (``GlowConfig``, ``MaCowConfig``) derives from ``in_channels``,
    ``image_size``, ``n_levels`` and ``split_sizes``: the size check, D and the latents' shapes."""

    def check_levels(self) -> None:
        if self.image_size % 2 ** self.n_levels:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by 2**n_levels={2 ** self.n_levels}; "
                f"each of the n_levels={self.n_levels} levels halves it. Allowed n_levels for this size: "
                f"{[n for n in range(1, 9) if self.image_size % 2 ** n == 0] or 'none (use an even image_size)'}"
            )

    def split_sizes(self, channels: int, last: bool) -> list[int]:
        """Channels factored out by a level with ``channels`` (after its squeeze): the second half, none at the top."""
        return [0] if last else [channels - channels // 2]

    @property
    def n_dims(self) -> int:
        """D = C·H·W, the number of data dimensions that bits/dim divides by."""
        return self.in_channels * self.image_size ** 2

    @property
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Shape (C, H, W) of each level's latent (its split-off parts concatenated), bottom level first (the
        order of ``encode``'s output)."""
        shapes, c, s = [], self.in_channels, self.image_size
        for level in range(self.n_levels):
            c, s = 4 * c, s // 2                        # squeeze: (C, H, W) -> (4C, H/2, W/2)
            if level < self.n_levels - 1:
                n_z = sum(self.split_sizes(c, last=False))
                shapes.append((n_z, s, s))              # split: these channels leave
                c -= n_z
            else:
                shapes.append((c, s, s))
        return shapes


@dataclass(frozen=True)
class GlowConfig(MultiScaleConfig):
    """Architecture of a Glow (or, with :class:`glowlib.RealNVP`, a RealNVP) model."""

    in_channels: int = 3
    image_size: int = 32
    n_levels: int = 3            # L
    depth: int = 32              # K
    width: int = 512             # hidden channels of the coupling network
    permutation: str = "conv1x1"
    lu: bool = True              # LU-decomposed 1x1 conv (paper Sec. 3.2), only used with permutation="conv1x1"
    coupling: str = "affine"
    learn_top: bool = True       # learned mean/log-std of the top prior (official code: --learntop)
    n_bits: int = 8              # the paper's tables use 8-bit data; its CelebA-HQ samples 5-bit
    actnorm: bool = True         # False: the "no normalisation" ablation the reviewers asked for
    learned_prior: bool = True   # False: split-off latents get a standard normal instead of the learned prior
    n_classes: int = 0           # > 0: class-conditional prior (official code: --ycond)
    # dtype of the coupling networks only; "bf16" changes the numbers, so it is part of RunConfig.key() (not an
    # execution field), except that "fp32" is dropped from the key, which keeps the keys made before this field
    precision: str = "fp32"
    # execution only: the same function, computed differently (see EXECUTION_FIELDS and bench/README.md)
    inv_backprop: bool = True    # training memory constant in K: recompute activations through the inverse
    fused: bool = True           # fold ActNorms into the convs next to them, one node for the affine coupling
    channels_last: bool = True   # coupling networks' convs in NHWC layout (mkldnn's fast path on CPU)

    def __post_init__(self):
        check_finite_floats(self)
        for name in ("in_channels", "image_size", "n_levels", "depth", "width"):
            check_size(name, getattr(self, name))
        check_range("n_bits", self.n_bits, 1, 8)
        check_size("n_classes", self.n_classes, 0)
        check_choice("permutation", self.permutation, PERMUTATIONS)
        check_choice("coupling", self.coupling, COUPLINGS)
        check_choice("precision", self.precision, PRECISIONS)
        for flag in ("lu", "learn_top", "actnorm", "learned_prior", *EXECUTION_FIELDS):
            check_range(flag, getattr(self, flag), kind=bool)
        self.check_levels()

    def replace(self, **changes) -> "GlowConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class MaCowConfig(MultiScaleConfig):
    """Architecture of a MaCow model. K = ``depth`` MaCow steps per level, L = ``n_levels`` levels.

    Defaults follow the official CIFAR-10 config (``cifar10-macow.json``) where it applies: 2 groups of 16 steps
    per internal level ("num_steps": [.., [16, 16], ..], "factors": [4, 4]), 256 hidden channels.
    """

    in_channels: int = 3
    image_size: int = 32
    n_levels: int = 3            # L; the official code adds an unsqueezed bottom block, not built here
    depth: int = 32              # K
    width: int = 256             # hidden channels of the Glow step's coupling network
    coupling: str = "affine"
    n_units: int = 2             # MaCow units per step, each 4 MCFs: 8 per step, as official MaCowStep's 4 × 2
    mcf_width: int | None = None  # hidden channels of an MCF; None: min(2·channels, 512), official conv.py
    kernel_height: int = 2       # rows (top-down) a masked conv sees above a pixel
    kernel_width: int = 3        # columns it sees, centred on the pixel's own; odd
    multiscale: str = "fine"     # "glow": factor out half the channels at the end of each level
    fine_splits: int = 2         # "fine": that half leaves in this many parts (official factor 4 = 2 parts of 1/4)
    learn_top: bool = True
    learned_prior: bool = True   # split-off parts get a Gaussian predicted from the kept channels
    n_bits: int = 8
    # dtype of the networks (the MCFs' and the couplings'), as GlowConfig.precision: the scales and shifts as
    # applied, ActNorm, the 1x1 conv, the log-dets and the priors stay float32
    precision: str = "fp32"
    n_classes = 0                # not a field: MaCow has no class-conditional prior (callers read it as Glow's)

    def __post_init__(self):
        check_finite_floats(self)
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("in_channels", "image_size", "n_levels", "depth", "width", "n_units", "kernel_height",
                     "kernel_width", "fine_splits"):
            check_size(name, getattr(self, name))
        check_range("n_bits", self.n_bits, 1, 8)
        if self.mcf_width is not None:
            check_size("mcf_width", self.mcf_width)
        check_choice("coupling", self.coupling, COUPLINGS)
        check_choice("multiscale", self.multiscale, MULTISCALES)
        for flag in ("learn_top", "learned_prior"):
            check_range(flag, getattr(self, flag), kind=bool)
        if self.kernel_width % 2 == 0:
            raise ValueError(f"kernel_width={self.kernel_width} is not allowed; choose an odd width (1, 3, 5, ...) "
                             f"so that the window is centred on the pixel's own column")
        self.check_levels()
        if self.multiscale == "fine" and self.n_levels > 1:
            c = 4 * self.in_channels         # channels of the first level, the binding divisibility constraint
            if c % (2 * self.fine_splits):
                allowed = [m for m in range(1, c // 2 + 1) if c % (2 * m) == 0]
                raise ValueError(f"fine_splits={self.fine_splits} is not allowed for in_channels={self.in_channels}: "
                                 f"half of the first level's {c} channels must split into equal parts; "
                                 f"choose one of {allowed}")
            if self.depth < self.fine_splits:
                raise ValueError(f"fine_splits={self.fine_splits} needs depth >= {self.fine_splits} (one group of "
                                 f"steps before each split); depth={self.depth}")

    def split_sizes(self, channels: int, last: bool) -> list[int]:
        """Channels factored out after each group of steps of a level with ``channels`` (after its squeeze)."""
        if last:
            return [0]
        if self.multiscale == "glow":
            return [channels - channels // 2]
        return [channels // (2 * self.fine_splits)] * self.fine_splits

    def replace(self, **changes) -> "MaCowConfig":
        return dataclasses.replace(self, **changes)


MODEL_TYPES = ("glow", "realnvp", "macow")
OPTIMIZERS = ("adamax", "adam")
# after the warmup: the learning rate held ("constant", the official code's) or brought down to
# ``lr_final_fraction`` of itself along half a cosine by the last step ("cosine")
LR_SCHEDULES = ("constant", "cosine")
NONFINITE_POLICIES = ("skip", "reload")
# the datasets glowlib.data loads (its DATASETS; tests/test_data.py checks that the two agree), named here so that
# a config is validated without importing the data code
DATASET_NAMES = ("mnist5k", "fashion_mnist", "digits", "mnist", "cifar10", "celeba", "patches")


@dataclass(frozen=True)
class DataConfig:
    """Which images, at which bit depth, and how much of the training split is held out for validation."""

    dataset: str = "mnist5k"
    n_bits: int = 8
    n_val: int = 500             # held out of the TRAINING images; checkpoints are chosen on it, never on test
    data_root: str | None = None  # None: $GLOWLIB_DATA, else ~/.glowlib/data (see glowlib.data)
    # how the splits are ordered and drawn (glowlib.data.stratified_order): "stratified", every split and prefix a
    # seeded class-balanced draw; "file", each part in its file's order, which for a file sorted by label (mnist5k)
    # makes every prefix biased
    order: str = "stratified"

    def __post_init__(self):
        check_finite_floats(self)
        check_choice("dataset", self.dataset, DATASET_NAMES)
        check_choice("data.order", self.order, DATA_ORDERS)
        check_range("n_bits", self.n_bits, 1, 8)
        if isinstance(self.n_val, int) and not isinstance(self.n_val, bool) and self.n_val == 0:
            raise ValueError("n_val=0: a validation part is required (checkpoints are chosen on validation "
                             "bits/dim, never on test); hold out at least 1 training image, e.g. n_val=500")
        check_size("n_val", self.n_val)
        if self.data_root is not None and (not isinstance(self.data_root, str) or not self.data_root.strip()):
            raise ValueError(f"data.data_root={self.data_root!r} must be a folder's path as a non-empty string, or "
                             f"None for $GLOWLIB_DATA (else ~/.glowlib/data); e.g. --set data.data_root='/data'")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. Defaults are the official code's (Adamax, lr 1e-3, linear warmup, 256-image ActNorm init)."""

    optimizer: str = "adamax"    # the official code uses Adamax; the paper's text says Adam
    lr: float = 1e-3
    warmup_steps: int = 500      # linear warmup from 0 (official: 10 "epochs" of n_train/10 images)
    batch_size: int = 64         # per process: under torchrun each GPU takes this many (the official n_batch_train)
    steps: int = 2000
    grad_clip: float = 50.0      # max global gradient norm; 0 disables
    init_batch: int = 256        # images for ActNorm's data-dependent initialisation
    ema_decay: float = 0.999     # Polyak averaging of the weights that are evaluated (official code: polyak_epochs)
    eval_every: int = 200
    ckpt_every: int = 200
    n_train_eval: int = 500      # training images re-evaluated like val/test (same weights, same noise protocol)
    n_test_eval: int = 0         # test images in the periodic evaluations (0: all); a final full pass is separate
    eval_batch: int = 500
    nonfinite_policy: str = "reload"  # skip: drop the batch; reload: after `max_skips` in a row, reload and halve lr
    max_skips: int = 3
    device: str = "auto"         # auto: cuda if available, else cpu
    seed: int = 0
    # class-conditional models (model.n_classes > 0): loss = bits/dim + y_weight · cross-entropy of the classifier
    # head in bits per image (official --weight_y; its conditional runs use 0.01). 0: the likelihood alone
    y_weight: float = 0.0
    # "variational": a conditional flow q(u | x) (glowlib.models.dequantization) trained with the model on the ELBO; its
    # evaluations are ELBO bits/dim (importance-weighted with evaluate's n_samples > 1). "uniform": Glow's U(0, 1)
    dequantization: str = "uniform"
    # wall-clock budget in minutes (0: none): when a run has trained this long (a resumed run counting the time
    # spent before), it evaluates, checkpoints and stops at that step; the run's record says so
    max_minutes: float = 0.0
    # > 0: the warmup lasts this fraction of ``steps`` (rounded), so that it scales with the run's length;
    # 0: ``warmup_steps`` as given
    warmup_fraction: float = 0.0
    lr_schedule: str = "constant"
    lr_final_fraction: float = 0.0  # "cosine": the learning rate at the last step, as a fraction of ``lr``
    beta2: float = 0.999            # Adam(ax)'s second-moment decay (torch's default; official: 1 - 1/steps per epoch)
    # execution only (left out of the cache key, TRAIN_EXECUTION_FIELDS): "auto" compiles the step's objective with
    # torch.compile where it pays: on CUDA where the compile time is less than the CUDA graphs save over the run's
    # steps left (glowlib.plan.compile_pays, which the plan counts by), on the CPU only where a bench record measured
    # it faster (glowlib.training.device.compile_mode); "off" runs eager, or a torch.compile mode to force it
    compile: str = "auto"
    # CUDA: deterministic algorithms (torch.use_deterministic_algorithms, cuBLAS workspace, cuDNN without
    # benchmarking), so that a run and its resume repeat bit for bit on the same GPU and software; the CPU always is
    deterministic: bool = False

    def __post_init__(self):
        check_finite_floats(self)
        check_range("max_minutes", self.max_minutes, 0.0, kind=float)
        check_range("warmup_fraction", self.warmup_fraction, 0.0, 1.0, kind=float)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_range("lr_final_fraction", self.lr_final_fraction, 0.0, 1.0, kind=float)
        if not 0.0 < self.beta2 < 1.0:
            raise ValueError(f"beta2={self.beta2!r} must lie strictly between 0 and 1 (torch's default: 0.999)")
        check_choice("dequantization", self.dequantization, DEQUANTIZATIONS)
        check_choice("nonfinite_policy", self.nonfinite_policy, NONFINITE_POLICIES)
        check_choice("compile", self.compile, COMPILE_MODES)
        check_range("lr", self.lr, 0.0, MAX_LR, kind=float)
        check_range("grad_clip", self.grad_clip, 0.0, kind=float)
        check_range("ema_decay", self.ema_decay, 0.0, 1.0, kind=float)
        check_range("y_weight", self.y_weight, 0.0, kind=float)
        for name in ("warmup_steps", "n_train_eval", "n_test_eval", "seed"):
            check_size(name, getattr(self, name), 0)
        for name in ("batch_size", "steps", "init_batch", "eval_every", "ckpt_every", "eval_batch", "max_skips"):
            check_size(name, getattr(self, name))
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device={self.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def model_config_class(model_type: str):
    """The config dataclass of ``model_type``: GlowConfig (Glow and RealNVP) or MaCowConfig."""
    check_choice("model_type", model_type, MODEL_TYPES)
    return MaCowConfig if model_type == "macow" else GlowConfig


def _keyed(section, keyed: tuple[str, ...], left_out: tuple[str, ...] = (), legacy: dict | None = None) -> dict:
    """The fields of one config section that its cache key hashes, as ``dataclasses.asdict`` gives them. A field
    outside ``keyed`` is left out at its legacy value (``LEGACY_VALUES``, else its default)."""
    values = dataclasses.asdict(section)
    legacy = legacy or {}
    out = {}
    for f in dataclasses.fields(section):
        if f.name in left_out:
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        before = legacy.get(f.name, default)
        if f.name not in keyed and before is not dataclasses.MISSING and values[f.name] == before:
            continue                        # added after keys were defined, as it behaved before: as if absent
        out[f.name] = values[f.name]
    return out


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a training run: its hash keys the trained-model cache."""

    model: GlowConfig = GlowConfig()    # a glowlib.MaCowConfig when model_type="macow"
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    model_type: str = "glow"

    def __post_init__(self):
        check_choice("model_type", self.model_type, MODEL_TYPES)
        expected = model_config_class(self.model_type)
        if not isinstance(self.model, expected):
            raise ValueError(f"model_type={self.model_type!r} needs a {expected.__name__}, got a "
                             f"{type(self.model).__name__}; build the model config with {expected.__name__}(...)")
        if self.train.y_weight > 0 and self.train.dequantization != "uniform":
            raise ValueError(f"train.y_weight={self.train.y_weight} with train.dequantization="
                             f"{self.train.dequantization!r} is not supported; use one of them at a time")
        if self.model.n_bits != self.data.n_bits:
            raise ValueError(f"model.n_bits={self.model.n_bits} and data.n_bits={self.data.n_bits} differ; "
                             f"set both (the objective's n_bins must match the data's)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The inverse of ``to_dict``. A field this version does not know (a dict written by a newer one) raises a
        ValueError naming it; a field missing from the dict takes its default (it was added since)."""
        model_cls = model_config_class(d["model_type"])
        sections = {"model": model_cls, "data": DataConfig, "train": TrainConfig}
        for section, cls_ in sections.items():
            known = {f.name for f in dataclasses.fields(cls_)}
            unknown = sorted(set(d[section]) - known)
            if unknown:
                raise ValueError(f"the config has unknown field{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(f'{section}.{n}' for n in unknown)} (not a field of {cls_.__name__} "
                                 f"in this version of glowlib)")
        return cls(model=model_cls(**d["model"]), data=DataConfig(**d["data"]),
                   train=TrainConfig(**d["train"]), model_type=d["model_type"])

    def key(self) -> str:
        """Stable short hash of the config: the trained-model cache's key. Execution fields are left out; a field
        outside ``KEYED_FIELDS`` is left out while at its default (see ``KEYED_FIELDS``)."""
        d = {"model": _keyed(self.model, KEYED_FIELDS["model"][self.model_type], EXECUTION_FIELDS),
             "data": _keyed(self.data, KEYED_FIELDS["data"], legacy=LEGACY_VALUES["data"]),
             "train": _keyed(self.train, KEYED_FIELDS["train"], TRAIN_EXECUTION_FIELDS),
             "model_type": self.model_type}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def override(self, assignments) -> "RunConfig":
        """Apply ``["model.depth=16", "train.lr=5e-4", "model_type=realnvp"]``; values are parsed as Python
        literals where they can be. An unknown key names the allowed ones."""
        import ast
        parts = {"model": {}, "data": {}, "train": {}}
        top = {}
        for item in assignments:
            if "=" not in item:
                raise ValueError(f"--set {item!r}: expected key=value, e.g. model.depth=16")
            key, raw = item.split("=", 1)
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw
            section, _, field = key.partition(".")
            if key == "model_type":
                top["model_type"] = value
                continue
            if section not in parts or not field:
                raise ValueError(f"--set {key!r}: the key must be model_type or <section>.<field> with section "
                                 f"in {tuple(parts)}")
            allowed = [f.name for f in dataclasses.fields(getattr(self, section))]
            if field not in allowed:
                raise ValueError(f"--set {key!r}: {section} has no field {field!r}; allowed: {allowed}")
            if isinstance(value, int) and not isinstance(value, bool) and \
                    isinstance(getattr(getattr(self, section), field), float):
                value = float(value)
            parts[section][field] = value
        if "n_bits" in parts["data"] and "n_bits" not in parts["model"]:
            parts["model"]["n_bits"] = parts["data"]["n_bits"]   # one knob for the bit depth
        if "n_bits" in parts["model"] and "n_bits" not in parts["data"]:
            parts["data"]["n_bits"] = parts["model"]["n_bits"]
        return dataclasses.replace(
            self, model=dataclasses.replace(self.model, **parts["model"]),
            data=dataclasses.replace(self.data, **parts["data"]),
            train=dataclasses.replace(self.train, **parts["train"]), **top)
