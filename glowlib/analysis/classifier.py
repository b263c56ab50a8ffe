"""The measuring classifier: a small CNN trained on the *real* training images of a dataset, the instrument of the
objective sample-quality measures (``quality``); cached by dataset, seed and settings beside the trained models.

The measures must see shape, not ink: a sampler at a lower temperature draws dimmer, thinner strokes, and a
classifier of raw pixels reads that as lower fidelity (dimming real mnist5k test digits to 0.7 of their ink took its
precision from 0.90 to 0.79 and its recall from 0.91 to 0.10). So every image is read intensity-normalised
(:func:`normalise_ink`: dimming is undone exactly) and the network is trained on real images with random ink changes
(:func:`ink_augment`: dimming, and grey-scale erosion or dilation part of the way), so that thinner or thicker strokes
keep their features near those of the strokes themselves."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import check_choice, check_range
from ..data import load_dataset
from ..files import WriteError, atomic_write_bytes
from ..training import cache_root
from ..training.checkpoint import CheckpointError, checked_bytes, read_checked
from .images import check_images


INTENSITIES = ("per-image", "raw")
INK_QUANTILE = 0.99          # the pixel rank that becomes white under intensity="per-image" (robust to a stray pixel)
_DARK = 1 / 255              # an image whose INK_QUANTILE pixel is below one grey level is left as it is (all black)


def normalise_ink(x: Tensor) -> Tensor:
    """Images in [0, 1] (N, C, H, W), each divided by its own INK_QUANTILE pixel value and clipped to 1: an image
    multiplied by any factor in (0, 1] (dimmed) maps to the same image, up to the uint8 rounding of the dimmed one."""
    flat = x.flatten(1)
    k = max(1, min(flat.shape[1], round(INK_QUANTILE * flat.shape[1])))
    scale = flat.kthvalue(k, dim=1).values
    scale = torch.where(scale < _DARK, torch.ones_like(scale), scale)
    return (x / scale.view(-1, *([1] * (x.ndim - 1)))).clamp(0, 1)


def _grey_morphology(x: Tensor, op: str, shape: str) -> Tensor:
    """Grey-scale erosion (``op="min"``) or dilation (``"max"``) of images (N, C, H, W) by a flat 3x3 square or a
    3x3 cross (``shape``), outside the image taken as black."""
    if shape not in ("square", "cross"):
        raise ValueError(f"shape={shape!r} is not one of ('square', 'cross')")
    padded = F.pad(x, (1, 1, 1, 1), value=0.0)
    h, w = x.shape[-2:]
    offsets = [(i, j) for i in range(3) for j in range(3) if shape == "square" or i == 1 or j == 1]
    shifted = torch.stack([padded[..., i:i + h, j:j + w] for i, j in offsets])
    return shifted.amin(0) if op == "min" else shifted.amax(0)


def erode(images_uint8: Tensor, shape: str = "square") -> Tensor:
    """Grey-scale erosion of uint8 images by a flat 3x3 ``shape`` ("square" or "cross"): strokes thinned."""
    return _grey_morphology(images_uint8.float(), "min", shape).round().to(torch.uint8)


def dilate(images_uint8: Tensor, shape: str = "square") -> Tensor:
    """Grey-scale dilation of uint8 images by a flat 3x3 ``shape`` ("square" or "cross"): strokes thickened."""
    return _grey_morphology(images_uint8.float(), "max", shape).round().to(torch.uint8)


def dim(images_uint8: Tensor, factor: float) -> Tensor:
    """uint8 images with every pixel multiplied by ``factor`` (rounded): less ink, the same shapes."""
    return (images_uint8.float() * factor).round().clamp(0, 255).to(torch.uint8)


# ink changes of training images: (share of images, operation); the rest are left as they are
_INK_CHANGES = ((0.15, ("min", "cross")), (0.15, ("max", "cross")),
                (0.1, ("min", "square")), (0.1, ("max", "square")))
_DIM_RANGE = (0.4, 1.0)      # every training image multiplied by a factor drawn uniformly from this range


def ink_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Training images in [0, 1] with random ink changes: each multiplied by a factor in :data:`_DIM_RANGE`, and
    some eroded or dilated (a 3x3 cross or square, :data:`_INK_CHANGES`), by a uniform random share of the way
    (soft stroke edges as well as whole pixels): what a sampler's strokes vary by without changing what they
    draw."""
    n = len(x)
    u = torch.rand(n, generator=generator)
    out, start = x.clone(), 0.0
    for share, (op, shape) in _INK_CHANGES:
        chosen = ((u >= start) & (u < start + share)).nonzero().flatten()
        start += share
        if len(chosen):                      # part of the way: a blend towards the eroded (dilated) image
            amount = torch.rand(len(chosen), generator=generator).view(-1, *([1] * (x.ndim - 1)))
            out[chosen] = x[chosen] + amount * (_grey_morphology(x[chosen], op, shape) - x[chosen])
    low, high = _DIM_RANGE
    factor = low + (high - low) * torch.rand(n, generator=generator)
    return out * factor.view(-1, *([1] * (x.ndim - 1)))


@dataclass(frozen=True)
class ClassifierSettings:
    """Network and training of the measuring classifier. ``cached_classifier`` hashes these."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3             # Adam
    channels: tuple[int, int] = (32, 64)
    n_features: int = 128        # width of the penultimate layer, the space of the Fréchet distance
    # what the measures must not read as fidelity: how much ink an image has. "per-image" rescales every image so
    # that its INK_QUANTILE pixel is white (a dimmed image becomes the image itself); "raw" reads pixels as they are
    intensity: str = "per-image"
    # train on images with random ink changes (global dimming, grey-scale erosion or dilation, :func:`ink_augment`),
    # so that the features of a thinner or thicker stroke stay near those of the stroke itself
    ink_augmentation: bool = True
    # train on the first this-many training images only, a class-balanced draw (the splits come in stratified
    # order: data.load_dataset); None: every one. Fewer images cost less and measure worse: for a profile whose
    # numbers mean nothing (smoke), not for one whose measures decide claims
    max_images: int | None = None

    def __post_init__(self):
        check_choice("intensity", self.intensity, INTENSITIES)
        if not isinstance(self.ink_augmentation, bool):
            raise ValueError(f"ink_augmentation={self.ink_augmentation!r} must be True or False")
        check_range("epochs", self.epochs, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("lr", self.lr, 0, kind=float)
        check_range("n_features", self.n_features, 1)
        if self.max_images is not None:
            check_range("max_images", self.max_images, 1)
        if len(self.channels) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                          for c in self.channels):
            raise ValueError(f"channels={self.channels!r} must be two positive ints (the two conv layers)")


# Bump when the network or the training loop changes, so that cached classifiers are retrained.
_CLASSIFIER_VERSION = 2
_PREDICT_BATCH = 512


class _ConvNet(nn.Module):
    """(conv 3x3 → ReLU → max-pool 2) × 2 → average-pool to at most 4x4 → fc (features, ReLU) → fc (logits)."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, settings: ClassifierSettings):
        super().__init__()
        c, h, w = image_shape
        c1, c2 = settings.channels
        pooled = (min(h // 4, 4), min(w // 4, 4))
        self.per_image = settings.intensity == "per-image"
        self.register_buffer("mean", torch.zeros(1, c, 1, 1))   # per-channel input standardisation, set by fit
        self.register_buffer("std", torch.ones(1, c, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),
            nn.Linear(c2 * pooled[0] * pooled[1], settings.n_features), nn.ReLU())
        self.head = nn.Linear(settings.n_features, n_classes)

    def prepared(self, x: Tensor) -> Tensor:
        """Images in [0, 1] as the network reads them: intensity-normalised where the settings say so."""
        return normalise_ink(x) if self.per_image else x

    def features(self, x: Tensor) -> Tensor:
        """Features of images in [0, 1] (float, on the network's device)."""
        return self.body((self.prepared(x) - self.mean) / self.std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _unit(images_uint8: Tensor, device) -> Tensor:
    return images_uint8.to(device, torch.float32) / 255


class Classifier:
    """The instrument of the objective sample-quality measures: a small CNN trained on *real* training images.

    Deterministic given its seed (on the CPU). ``test_accuracy`` is set by :func:`cached_classifier` (else None).
    """

    def __init__(self, net: _ConvNet, image_shape: tuple[int, int, int], n_classes: int,
                 settings: ClassifierSettings, seed: int, test_accuracy: float | None = None):
        self.net = net.eval()
        self.image_shape = tuple(image_shape)
        self.n_classes = n_classes
        self.settings = settings
        self.seed = seed
        self.test_accuracy = test_accuracy

    @classmethod
    def fit(cls, images_uint8: Tensor, labels: Tensor, n_classes: int, seed: int = 0, device: str = "cpu",
            **settings) -> "Classifier":
        """Train with Adam and cross-entropy; ``settings`` override :class:`ClassifierSettings` (epochs, ...)."""
        check_images(images_uint8)
        check_range("n_classes", n_classes, 2)
        check_range("seed", seed, 0)
        allowed = tuple(f.name for f in dataclasses.fields(ClassifierSettings))
        for key in settings:
            check_choice("setting", key, allowed)
        settings = ClassifierSettings(**settings)
        labels = _check_labels(labels, len(images_uint8), n_classes)
        if settings.max_images is not None:
            images_uint8, labels = images_uint8[:settings.max_images], labels[:settings.max_images]
        image_shape = tuple(images_uint8.shape[1:])
        with torch.random.fork_rng(devices=[]):          # seeded initialisation without touching global state
            torch.manual_seed(seed)
            net = _ConvNet(image_shape, n_classes, settings)
        x = net.prepared(images_uint8.float() / 255).double()
        net.mean.copy_(x.mean((0, 2, 3), keepdim=True).float())
        net.std.copy_(x.std((0, 2, 3), keepdim=True).float().clamp_min(1e-3))   # constant channels: no blow-up
        net = net.to(device).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
        order = torch.Generator().manual_seed(seed)
        ink = torch.Generator().manual_seed(seed + 1)
        for _ in range(settings.epochs):
            for batch in torch.randperm(len(labels), generator=order).split(settings.batch_size):
                xb = (images_uint8[batch].float() / 255).to(device)
                yb = labels[batch].to(device)
                if settings.ink_augmentation:      # the image and its ink-changed copy, both classified
                    xb = torch.cat([xb, ink_augment(xb.cpu(), ink).to(device)])
                    yb = torch.cat([yb, yb])
                loss = F.cross_entropy(net(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return cls(net, image_shape, n_classes, settings, seed)

    @torch.no_grad()
    def _batched(self, images_uint8: Tensor, fn) -> Tensor:
        check_images(images_uint8)
        if tuple(images_uint8.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {tuple(images_uint8.shape[1:])}; this classifier was trained on "
                             f"{self.image_shape}")
        return torch.cat([fn(part).float().cpu() for part in images_uint8.split(_PREDICT_BATCH)])

    def predict_proba(self, images_uint8: Tensor) -> Tensor:
        """Class probabilities, float (N, n_classes)."""
        device = self.net.mean.device
        return self._batched(images_uint8, lambda x: torch.softmax(self.net(_unit(x, device)), 1))

    def features(self, images_uint8: Tensor) -> Tensor:
        """Penultimate-layer activations, float (N, n_features): the space of :func:`frechet_distance`."""
        device = self.net.mean.device
        return self._batched(images_uint8, lambda x: self.net.features(_unit(x, device)))

    def accuracy(self, images_uint8: Tensor, labels: Tensor) -> float:
        labels = _check_labels(labels, len(images_uint8), self.n_classes)
        return (self.predict_proba(images_uint8).argmax(1) == labels).double().mean().item()

    def save(self, path) -> None:
        """Write atomically (temporary file, then rename), so a crash never leaves a half-written classifier, in
        the checkpoints' checksummed wrapper (``training.checkpoint``), so a file damaged later is refused instead
        of measuring with wrong weights."""
        atomic_write_bytes(Path(path), checked_bytes(self._state()))

    def _state(self) -> dict:
        return {"version": _CLASSIFIER_VERSION, "settings": dataclasses.asdict(self.settings),
                "image_shape": list(self.image_shape), "n_classes": self.n_classes, "seed": self.seed,
                "test_accuracy": self.test_accuracy,
                "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()}}

    @classmethod
    def load(cls, path, device: str = "cpu") -> "Classifier":
        """The classifier of ``path``, checked: its checksum, its format version, and its weights' names, shapes
        and finiteness against the network its settings build. A file of before checksums that passes is
        rewritten with one. Anything else raises CheckpointError naming the file (left as it is)."""
        path = Path(path)
        advice = "Move it aside; cached_classifier then trains it again"
        state, checksummed = read_checked(path, device, advice)

        def bad(what):
            return CheckpointError(f"classifier {path} is malformed: {what}. It was left as it is. {advice}.")

        if not isinstance(state, dict) or state.get("version") != _CLASSIFIER_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise bad(f"format version {version!r}, this glowlib reads {_CLASSIFIER_VERSION}")
        try:
            settings = ClassifierSettings(**{**state["settings"], "channels": tuple(state["settings"]["channels"])})
            image_shape = tuple(int(v) for v in state["image_shape"])
            net = _ConvNet(image_shape, state["n_classes"], settings).to(device)
            net.load_state_dict(state["state_dict"])
            accuracy = state["test_accuracy"]
            seed = state["seed"]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise bad(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        if not all(bool(torch.isfinite(v).all()) for v in net.state_dict().values()):
            raise bad("its weights hold non-finite values")
        if accuracy is not None and (not isinstance(accuracy, float) or not 0 <= accuracy <= 1):
            raise bad(f"test_accuracy={accuracy!r} is not a fraction")
        classifier = cls(net, image_shape, state["n_classes"], settings, seed, accuracy)
        if not checksummed:
            try:
                classifier.save(path)
            except WriteError:
                pass                            # a read-only cache: checked again on the next load
        return classifier


def _check_labels(labels: Tensor, n: int, n_classes: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool \
            or tuple(labels.shape) != (n,):
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels in [{labels.min()}, {labels.max()}]; expected [0, {n_classes})")
    return labels.long().cpu()


def classifier_path(dataset: str, seed: int = 0, settings: ClassifierSettings | None = None) -> Path:
    """Where :func:`cached_classifier` keeps the classifier of (dataset, seed) at ``settings`` (default:
    :class:`ClassifierSettings`'s). The name hashes the settings; ``max_images`` only where it is set, so that the
    classifiers trained on every image keep the names they had before the field existed."""
    hashed = {"version": _CLASSIFIER_VERSION, **dataclasses.asdict(settings or ClassifierSettings())}
    if hashed["max_images"] is None:
        del hashed["max_images"]
    key = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "classifiers" / f"{dataset}-{seed}-{key}.pt"


def set_aside_name(path: Path) -> Path:
    """A name beside ``path`` for setting it aside that no earlier set-aside file has: dated to the second and
    numbered within it, so that a file damaged twice in one second never replaces the first copy."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = path.with_name(f"{path.name}.set-aside-{stamp}"), 1
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.set-aside-{stamp}-{n}"), n + 1
    return aside


def cached_classifier(dataset: str, seed: int = 0, device: str = "cpu",
                      settings: ClassifierSettings | None = None) -> Classifier:
    """The classifier of ``dataset``'s real training images at ``settings`` (default: :class:`ClassifierSettings`'s;
    a profile's own: ``studies.base.measuring_classifier``), trained the first time and loaded after that; its
    ``test_accuracy`` on the whole test split is stored with it.

    Two processes that miss the cache at once both train the same (seeded) classifier; the atomic write makes the
    last one win harmlessly.
    """
    check_range("seed", seed, 0)
    settings = settings or ClassifierSettings()
    path = classifier_path(dataset, seed, settings)
    if path.is_file():
        try:
            return Classifier.load(path, device)
        except CheckpointError as e:          # damaged or foreign: kept beside it, and the classifier retrained
            aside = set_aside_name(path)
            os.replace(path, aside)
            print(f"cache: {path} set aside to {aside} and trained again: {str(e).split('. ')[0]}", file=sys.stderr,
                  flush=True)
    data = load_dataset(dataset)
    if data.n_classes < 2:
        raise ValueError(f"dataset={dataset!r} has no class labels to train a classifier on; use a labelled one")
    default = dataclasses.asdict(ClassifierSettings())
    changed = {k: v for k, v in dataclasses.asdict(settings).items() if v != default[k]}
    classifier = Classifier.fit(data.train_images, data.train_labels, data.n_classes, seed, device, **changed)
    classifier.test_accuracy = classifier.accuracy(data.test_images, data.test_labels)
    classifier.save(path)
    return classifier
