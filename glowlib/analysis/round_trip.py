"""The round trip |x - decode(encode(x))| of a model's weights in each precision mode, and what it costs.

A single bf16 coupling is exactly invertible (its network sees the same input both ways), but a whole float32 model
with bf16 coupling networks is not: decode rebuilds a network's input through the inverses of the layers after it,
with their float32 round-off, and where that straddles a bf16 rounding boundary the input rounds the other way. The
same bf16 networks inside a float64 flow make round-off far too small to flip a rounding. The precision study
(``glowlib.studies.precision``) measures this on trained models, ``bench/round_trip.py`` on any weights.
"""
from __future__ import annotations

import math
import time
import warnings

import torch

from ..data import load_dataset, to_float

# each a (GlowConfig.precision, dtype of the flow's own arithmetic); the weights are the same in all three
ROUND_TRIP_MODES = {"fp32": ("fp32", torch.float32), "bf16": ("bf16", torch.float32),
                    "bf16_flow64": ("bf16", torch.float64), "fp64": ("fp32", torch.float64)}
# the largest round-trip error counted as exact, on the [-0.5, 0.5] scale: about a quarter of an 8-bit bin
ROUND_TRIP_TOLERANCE = 1e-3


def round_trip(model, x: torch.Tensor, n_bits: int) -> dict[str, dict]:
    """|x - decode(encode(x))| of ``model``'s weights in each of :data:`ROUND_TRIP_MODES` (x: images in [-0.5, 0.5]):
    the largest error over finite pixels and its 99.99th percentile, the fraction of pixels off by more than
    :data:`ROUND_TRIP_TOLERANCE`, the non-finite pixels, the fraction of images whose n-bit bins change, mean
    bits/dim and ms per image of encode (with the prior's log-density) + decode, after a warm-up call."""
    state, cfg = model.state_dict(), model.config
    out = {}
    for mode, (precision, dtype) in ROUND_TRIP_MODES.items():
        m = type(model)(cfg.replace(precision=precision)).to(x.device)
        m.load_state_dict(state)
        m = m.to(dtype).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)            # emulated bf16: slower, still correct
            out[mode] = _round_trip(m, x.to(dtype), n_bits, cfg.n_dims)
    return out


def _round_trip(model, x, n_bits: int, n_dims: int) -> dict:
    bins = 2 ** n_bits
    with torch.no_grad():
        model.decode(model.encode(x[:8])[0])                       # warm-up: first calls allocate, pick kernels
        start = time.perf_counter()
        zs, logdet, log_pz = model._encode(x, None)                # one pass gives the latents and log p(x)
        decoded = model.decode(zs)
        seconds = time.perf_counter() - start
        log_px = log_pz + logdet
    err = (decoded - x).abs().double()
    finite = torch.isfinite(err)
    e = err[finite]
    same_bin = (torch.floor((decoded + 0.5) * bins) == torch.floor((x + 0.5) * bins)).flatten(1).all(1)
    bpd = -log_px.double() / (n_dims * math.log(2)) + n_bits
    return {"max_error": e.max().item() if e.numel() else float("nan"),
            "p9999_error": e.quantile(0.9999).item() if e.numel() else float("nan"),
            "fraction_over_1e-3": (err > ROUND_TRIP_TOLERANCE).double().mean().item(),
            "nonfinite_pixels": int((~finite).sum()),
            "fraction_images_bin_changed": 1 - same_bin.double().mean().item(),
            "bits_per_dim": bpd[torch.isfinite(bpd)].mean().item(),
            "ms_per_image": 1e3 * seconds / x.shape[0]}


def test_images(dataset: str, n: int, n_bits: int) -> torch.Tensor:
    """The first ``n`` test images of ``dataset`` at the centres of their n-bit bins (as the interpolation study
    encodes them), so that a pixel decodes into another bin only when its error exceeds half a bin."""
    images = load_dataset(dataset, max_images=n).test_images
    return to_float(images, n_bits) + 0.5 / 2 ** n_bits
