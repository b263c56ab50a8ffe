"""Stand-in generators with known answers, for validating the sample measures and the sanity gates without a trained
model: real images drawn at random (a perfect generator), and four that draw no data at all but could fool an
ink-reading measure: Gaussian blobs of the data's mean ink, class-mean images with noise, smoothed noise at the
data's ink and contrast, and real images of two classes only (a collapsed generator whose single draws look fine).

Each is a module with the ``sample(n, temperature, generator, y=None)`` and ``config.n_bits`` that
``analysis.sampling.samples`` calls, so it runs through the same sampler, gates and measures as a trained model. The
temperature is ignored: none of them has a latent to scale.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import to_float
from .images import check_images


class ImageSource(nn.Module):
    """A stand-in model whose samples are uint8 images made by ``draw(n, generator) -> uint8 (n, C, H, W)``."""

    def __init__(self, draw, name: str = ""):
        super().__init__()
        self.config = SimpleNamespace(n_bits=8)
        self.anchor = nn.Parameter(torch.zeros(1))          # device and dtype for ``samples``
        self.draw, self.name = draw, name

    def sample(self, n: int, temperature: float, generator: torch.Generator, y=None) -> Tensor:
        images = self.draw(n, generator)
        return to_float(images, 8) + 0.5 / 256                # bin centres: ``to_uint8`` gives the images back


def _uint8(x: Tensor) -> Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def real_images(images_uint8: Tensor) -> ImageSource:
    """Real images drawn at random with replacement: the perfect generator of ``images_uint8``'s distribution."""
    check_images(images_uint8)
    return ImageSource(lambda n, g: images_uint8[torch.randint(len(images_uint8), (n,), generator=g)], "real")


def two_classes(images_uint8: Tensor, labels: Tensor, classes=(8, 9)) -> ImageSource:
    """Real images of ``classes`` only: single draws as good as real, the rest of the data never drawn."""
    check_images(images_uint8)
    pool = images_uint8[torch.isin(labels, torch.as_tensor(list(classes)))]
    if not len(pool):
        raise ValueError(f"no images of classes {classes}")
    source = real_images(pool)
    source.name = "two classes"
    return source


def mean_ink_blobs(images_uint8: Tensor) -> ImageSource:
    """A Gaussian blob near the centre of each image (random position within a quarter of the side, random widths
    of 1/8 to 1/4 of the side), scaled so that its mean pixel is the data's: formless, with the data's ink."""
    check_images(images_uint8)
    c, h, w = images_uint8.shape[1:]
    ink = images_uint8.double().mean((0, 2, 3)).float()         # per channel

    def draw(n, g):
        u = torch.rand(n, 4, generator=g)
        cy, cx = (h - 1) / 2 + (u[:, 0] - 0.5) * h / 4, (w - 1) / 2 + (u[:, 1] - 0.5) * w / 4
        sy, sx = h / 8 + u[:, 2] * h / 8, w / 8 + u[:, 3] * w / 8
        yy, xx = torch.arange(h).float().view(1, h, 1), torch.arange(w).float().view(1, 1, w)
        blob = torch.exp(-0.5 * (((yy - cy.view(-1, 1, 1)) / sy.view(-1, 1, 1)) ** 2
                                 + ((xx - cx.view(-1, 1, 1)) / sx.view(-1, 1, 1)) ** 2))
        blob = blob / blob.mean((1, 2), keepdim=True)            # mean 1, then the data's mean ink
        return _uint8(blob.unsqueeze(1) * ink.view(1, c, 1, 1))
    return ImageSource(draw, "mean-ink blobs")


def class_mean_noise(images_uint8: Tensor, labels: Tensor, noise: float = 0.15) -> ImageSource:
    """The mean image of a random class plus independent Gaussian pixel noise (``noise`` of the 0..255 range): the
    data's average shapes, blurred, never one of its images."""
    check_images(images_uint8)
    classes = labels.unique()
    means = torch.stack([images_uint8[labels == c].double().mean(0) for c in classes]).float()

    def draw(n, g):
        pick = torch.randint(len(classes), (n,), generator=g)
        return _uint8(means[pick] + noise * 255 * torch.randn(n, *means.shape[1:], generator=g))
    return ImageSource(draw, "class means + noise")


def smoothed_noise(images_uint8: Tensor, width: float = 2.0) -> ImageSource:
    """White noise smoothed by a Gaussian of ``width`` pixels, then set to the data's mean and spread of pixel
    values: blobby texture with the data's ink and contrast."""
    check_images(images_uint8)
    c = images_uint8.shape[1]
    values = images_uint8.double() / 255
    mean, std = values.mean().item(), values.std().item()
    r = int(3 * width)
    t = torch.arange(-r, r + 1).float()
    k1 = torch.exp(-0.5 * (t / width) ** 2)
    kernel = (k1[:, None] * k1[None, :] / k1.sum() ** 2).expand(c, 1, -1, -1).contiguous()

    def draw(n, g):
        z = torch.randn(n, *images_uint8.shape[1:], generator=g)
        s = F.conv2d(F.pad(z, (r, r, r, r), mode="reflect") if min(z.shape[-2:]) > r else z, kernel,
                     padding=0 if min(z.shape[-2:]) > r else r, groups=c)
        s = (s - s.mean((1, 2, 3), keepdim=True)) / s.std((1, 2, 3), keepdim=True).clamp_min(1e-6)
        return _uint8(255 * (mean + std * s))
    return ImageSource(draw, "smoothed noise")


def blob_generators(images_uint8: Tensor, labels: Tensor) -> dict:
    """The four stand-ins that draw no data, each built from real training images and labels, by name."""
    return {g.name: g for g in (mean_ink_blobs(images_uint8), class_mean_noise(images_uint8, labels),
                                smoothed_noise(images_uint8), two_classes(images_uint8, labels))}
