"""The measuring classifier: a small CNN trained on the *real* training images of a dataset, the instrument of the
objective sample-quality measures (``quality``); cached by dataset, seed and settings beside the trained models."""
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


@dataclass(frozen=True)
class ClassifierSettings:
    """Network and training of the measuring classifier. ``cached_classifier`` hashes these."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3             # Adam
    channels: tuple[int, int] = (32, 64)
    n_features: int = 128        # width of the penultimate layer, the space of the Fréchet distance

    def __post_init__(self):
        check_range("epochs", self.epochs, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("lr", self.lr, 0, kind=float)
        check_range("n_features", self.n_features, 1)
        if len(self.channels) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                          for c in self.channels):
            raise ValueError(f"channels={self.channels!r} must be two positive ints (the two conv layers)")


# Bump when the network or the training loop changes, so that cached classifiers are retrained.
_CLASSIFIER_VERSION = 1
_PREDICT_BATCH = 512


class _ConvNet(nn.Module):
    """(conv 3x3 → ReLU → max-pool 2) × 2 → average-pool to at most 4x4 → fc (features, ReLU) → fc (logits)."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, settings: ClassifierSettings):
        super().__init__()
        c, h, w = image_shape
        c1, c2 = settings.channels
        pooled = (min(h // 4, 4), min(w // 4, 4))
        self.register_buffer("mean", torch.zeros(1, c, 1, 1))   # per-channel input standardisation, set by fit
        self.register_buffer("std", torch.ones(1, c, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),
            nn.Linear(c2 * pooled[0] * pooled[1], settings.n_features), nn.ReLU())
        self.head = nn.Linear(settings.n_features, n_classes)

    def features(self, images_uint8: Tensor) -> Tensor:
        x = images_uint8.to(self.mean.device, torch.float32) / 255
        return self.body((x - self.mean) / self.std)

    def forward(self, images_uint8: Tensor) -> Tensor:
        return self.head(self.features(images_uint8))


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
        image_shape = tuple(images_uint8.shape[1:])
        with torch.random.fork_rng(devices=[]):          # seeded initialisation without touching global state
            torch.manual_seed(seed)
            net = _ConvNet(image_shape, n_classes, settings)
        x = images_uint8.double() / 255
        net.mean.copy_(x.mean((0, 2, 3), keepdim=True).float())
        net.std.copy_(x.std((0, 2, 3), keepdim=True).float().clamp_min(1e-3))   # constant channels: no blow-up
        net = net.to(device).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
        order = torch.Generator().manual_seed(seed)
        for _ in range(settings.epochs):
            for batch in torch.randperm(len(labels), generator=order).split(settings.batch_size):
                loss = F.cross_entropy(net(images_uint8[batch]), labels[batch].to(device))
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
        return self._batched(images_uint8, lambda x: torch.softmax(self.net(x), 1))

    def features(self, images_uint8: Tensor) -> Tensor:
        """Penultimate-layer activations, float (N, n_features): the space of :func:`frechet_distance`."""
        return self._batched(images_uint8, self.net.features)

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


def classifier_path(dataset: str, seed: int = 0) -> Path:
    """Where :func:`cached_classifier` keeps the classifier of (dataset, seed) at the current settings."""
    settings = {"version": _CLASSIFIER_VERSION, **dataclasses.asdict(ClassifierSettings())}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "classifiers" / f"{dataset}-{seed}-{key}.pt"


def cached_classifier(dataset: str, seed: int = 0, device: str = "cpu") -> Classifier:
    """The classifier of ``dataset``'s real training images (default :class:`ClassifierSettings`), trained the first
    time and loaded after that; its ``test_accuracy`` on the test split is stored with it.

    Two processes that miss the cache at once both train the same (seeded) classifier; the atomic write makes the
    last one win harmlessly.
    """
    check_range("seed", seed, 0)
    path = classifier_path(dataset, seed)
    if path.is_file():
        try:
            return Classifier.load(path, device)
        except CheckpointError as e:          # damaged or foreign: kept beside it, and the classifier retrained
            aside = path.with_name(f"{path.name}.set-aside-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, aside)
            print(f"cache: {path} set aside to {aside} and trained again: {str(e).split('. ')[0]}", file=sys.stderr,
                  flush=True)
    data = load_dataset(dataset)
    if data.n_classes < 2:
        raise ValueError(f"dataset={dataset!r} has no class labels to train a classifier on; use a labelled one")
    classifier = Classifier.fit(data.train_images, data.train_labels, data.n_classes, seed, device)
    classifier.test_accuracy = classifier.accuracy(data.test_images, data.test_labels)
    classifier.save(path)
    return classifier
