"""Model configuration: one frozen dataclass, validated on construction.

Field names follow the paper: K = ``depth`` flow steps per level, L = ``n_levels`` levels (Sec. 3, Fig. 2).
Every default is the official CIFAR-10 setting (openai/glow ``train.py`` flags, paper Sec. 5).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PERMUTATIONS = ("conv1x1", "shuffle", "reverse", "rotation")
COUPLINGS = ("affine", "additive")
PRECISIONS = ("fp32", "bf16")
DEQUANTIZATIONS = ("uniform", "variational")   # glowlib.dequantization: Glow's U(0, 1) noise, or a learned q(u | x)
# GlowConfig fields that change how the model is computed, not what it computes: left out of RunConfig.key(), so
# that a trained model is found in the cache whichever way it was (or will be) run
EXECUTION_FIELDS = ("inv_backprop", "fused", "channels_last")
# fields added after models were trained and cached: left out of RunConfig.key() while at these defaults, so that
# those models keep their keys; any other value changes the numbers and so the key
LATER_FIELDS = {"model": {"precision": "fp32"}, "train": {"y_weight": 0.0, "dequantization": "uniform"}}


def check_choice(field: str, value, allowed) -> None:
    """Raise a ValueError naming the field, the bad value and the allowed ones."""
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not allowed; choose one of {tuple(allowed)}")


def check_range(field: str, value, low=None, high=None, kind=int) -> None:
    """Raise a ValueError unless ``value`` is a ``kind`` within [low, high]."""
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{field}={value!r} must be of type {kind.__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"{field}={value!r} is out of range; allowed: {bounds}")


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
        check_range("in_channels", self.in_channels, 1)
        check_range("image_size", self.image_size, 1)
        check_range("n_levels", self.n_levels, 1)
        check_range("depth", self.depth, 1)
        check_range("width", self.width, 1)
        check_range("n_bits", self.n_bits, 1, 8)
        check_range("n_classes", self.n_classes, 0)
        check_choice("permutation", self.permutation, PERMUTATIONS)
        check_choice("coupling", self.coupling, COUPLINGS)
        check_choice("precision", self.precision, PRECISIONS)
        for flag in ("lu", "learn_top", "actnorm", "learned_prior", *EXECUTION_FIELDS):
            check_range(flag, getattr(self, flag), kind=bool)
        self.check_levels()

    def replace(self, **changes) -> "GlowConfig":
        return dataclasses.replace(self, **changes)


MODEL_TYPES = ("glow", "realnvp", "macow")
OPTIMIZERS = ("adamax", "adam")
NONFINITE_POLICIES = ("skip", "reload")


@dataclass(frozen=True)
class DataConfig:
    """Which images, at which bit depth, and how much of the training split is held out for validation."""

    dataset: str = "mnist5k"
    n_bits: int = 8
    n_val: int = 500             # held out of the TRAINING images; checkpoints are chosen on it, never on test
    data_root: str | None = None  # None: $GLOWLIB_DATA, else ~/.glowlib/data (see glowlib.data)

    def __post_init__(self):
        from .data import DATASETS
        check_choice("dataset", self.dataset, DATASETS)
        check_range("n_bits", self.n_bits, 1, 8)
        check_range("n_val", self.n_val, 0)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. Defaults are the official code's (Adamax, lr 1e-3, linear warmup, 256-image ActNorm init)."""

    optimizer: str = "adamax"    # the official code uses Adamax; the paper's text says Adam
    lr: float = 1e-3
    warmup_steps: int = 500      # linear warmup from 0 (official: 10 "epochs" of n_train/10 images)
    batch_size: int = 64         # global batch, split over ranks under torchrun
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
    # "variational": a conditional flow q(u | x) (glowlib.dequantization) trained with the model on the ELBO; its
    # evaluations are ELBO bits/dim (importance-weighted with evaluate's n_samples > 1). "uniform": Glow's U(0, 1)
    dequantization: str = "uniform"

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("dequantization", self.dequantization, DEQUANTIZATIONS)
        check_choice("nonfinite_policy", self.nonfinite_policy, NONFINITE_POLICIES)
        check_range("lr", self.lr, 0.0, kind=float)
        check_range("grad_clip", self.grad_clip, 0.0, kind=float)
        check_range("ema_decay", self.ema_decay, 0.0, 1.0, kind=float)
        check_range("y_weight", self.y_weight, 0.0, kind=float)
        for name in ("warmup_steps", "n_train_eval", "n_test_eval", "seed"):
            check_range(name, getattr(self, name), 0)
        for name in ("batch_size", "steps", "init_batch", "eval_every", "ckpt_every", "eval_batch", "max_skips"):
            check_range(name, getattr(self, name), 1)
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device={self.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def model_config_class(model_type: str):
    """The config dataclass of ``model_type``: GlowConfig (Glow and RealNVP) or MaCowConfig."""
    check_choice("model_type", model_type, MODEL_TYPES)
    if model_type == "macow":
        from .macow import MaCowConfig               # macow.py imports this module
        return MaCowConfig
    return GlowConfig


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
        if type(self.model) is not expected:
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
        return cls(model=model_config_class(d["model_type"])(**d["model"]), data=DataConfig(**d["data"]),
                   train=TrainConfig(**d["train"]), model_type=d["model_type"])

    def key(self) -> str:
        """Stable short hash of the full config: the trained-model cache's key."""
        import hashlib
        import json
        d = self.to_dict()
        for name in EXECUTION_FIELDS:
            d["model"].pop(name, None)            # MaCowConfig has none of them
        for section, defaults in LATER_FIELDS.items():
            for name, default in defaults.items():
                if d[section].get(name, default) == default:
                    del d[section][name]   # at its default: the key it had before the field existed
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
