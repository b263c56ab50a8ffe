"""What the paper does with latents (Sec. 5): interpolation between real images (Fig. 5), with the
exact-reconstruction check, and semantic manipulation along an attribute direction (Fig. 6), the direction
mean z(with attribute) − mean z(without)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import check_range
from .images import check_images, to_uint8
from .sampling import bin_centres, encode_batches, eval_mode, exact_model, first_parameter


@torch.no_grad()
def interpolate(model, x_a_uint8: Tensor, x_b_uint8: Tensor, n_points: int,
                batch_size: int = 256) -> tuple[Tensor, float]:
    """Linear interpolation in latent space between pairs of real images (Sec. 5, Fig. 5).

    Each pair is encoded (at bin centres), every level's latent is interpolated as (1 − t)·z_a + t·z_b for
    ``n_points`` values of t from 0 to 1, and decoded. Returns uint8 images (P, n_points, C, H, W), endpoints at
    t = 0 and t = 1, and the largest absolute difference (on the [-0.5, 0.5] scale) between the decoded endpoints
    and the encoded inputs: the exact-reconstruction check, ~1e-6 in float32 for a healthy model (a bf16 model
    runs as its float64 copy, ``exact_model``).
    """
    check_images(x_a_uint8, "x_a_uint8")
    check_images(x_b_uint8, "x_b_uint8")
    if x_a_uint8.shape != x_b_uint8.shape:
        raise ValueError(f"x_a_uint8 {tuple(x_a_uint8.shape)} and x_b_uint8 {tuple(x_b_uint8.shape)} must have "
                         f"the same shape: one pair per row")
    check_range("n_points", n_points, 2)
    check_range("batch_size", batch_size, 1)
    model = exact_model(model)
    out, max_error = [], 0.0
    with eval_mode(model):
        for start in range(0, len(x_a_uint8), batch_size):
            x_a = bin_centres(model, x_a_uint8[start: start + batch_size])
            x_b = bin_centres(model, x_b_uint8[start: start + batch_size])
            (zs_a, _), (zs_b, _) = model.encode(x_a), model.encode(x_b)
            t = torch.linspace(0, 1, n_points, dtype=x_a.dtype, device=x_a.device)
            # at t = 0 and 1 the latents are exactly z_a and z_b, so the endpoints test the inverse itself
            rows = [model.decode([(1 - ti) * za + ti * zb for za, zb in zip(zs_a, zs_b)]) for ti in t]
            max_error = max(max_error, (rows[0] - x_a).abs().max().item(), (rows[-1] - x_b).abs().max().item())
            out.append(to_uint8(torch.stack(rows, 1), model.config.n_bits))   # (P, n_points, C, H, W)
    return torch.cat(out), max_error


@torch.no_grad()
def attribute_direction(model, images_uint8: Tensor, has_attribute: Tensor, batch_size: int = 256) -> list[Tensor]:
    """Semantic manipulation direction (Sec. 5, Fig. 6): mean z over images with the attribute minus mean z over
    those without, for every level's latent (a list shaped like ``encode``'s output without the batch dimension,
    on the model's device). The labels are used only here, after training; the model never saw them.
    """
    check_images(images_uint8)
    if not isinstance(has_attribute, Tensor) or has_attribute.dtype != torch.bool \
            or tuple(has_attribute.shape) != (len(images_uint8),):
        raise ValueError(f"has_attribute must be a bool tensor of shape ({len(images_uint8)},), got "
                         f"{getattr(has_attribute, 'dtype', type(has_attribute).__name__)} "
                         f"{tuple(getattr(has_attribute, 'shape', ()))}; e.g. measure_attributes(x).slant > 0")
    n_with = int(has_attribute.sum())
    if n_with in (0, len(images_uint8)):
        raise ValueError(f"has_attribute is {'all True' if n_with else 'all False'}; a direction needs images "
                         f"both with and without the attribute")
    p = first_parameter(model)
    sums_with = [p.new_zeros(shape) for shape in model.config.latent_shapes]
    sums_without = [p.new_zeros(shape) for shape in model.config.latent_shapes]
    with eval_mode(model):
        for part, zs in encode_batches(model, images_uint8, batch_size):
            mask = has_attribute[part].to(p.device)
            for level, z in enumerate(zs):
                sums_with[level] += z[mask].sum(0)
                sums_without[level] += z[~mask].sum(0)
    n_without = len(images_uint8) - n_with
    return [a / n_with - b / n_without for a, b in zip(sums_with, sums_without)]


@torch.no_grad()
def manipulate(model, images_uint8: Tensor, direction: list[Tensor], alphas, batch_size: int = 256,
               return_finite: bool = False):
    """decode(z + α·direction) for each α (Sec. 5, Fig. 6): uint8 (N, len(alphas), C, H, W).

    α = 0 gives back the images (at the model's n_bits); e.g. ``alphas=torch.linspace(-1, 1, 5)``. A decode that
    overflows to inf/NaN is returned mid-grey; ``return_finite=True`` also returns which were finite, (N, A) bool.
    """
    check_images(images_uint8)
    shapes = model.config.latent_shapes
    if not isinstance(direction, (list, tuple)) or len(direction) != len(shapes) \
            or any(tuple(d.shape) != s for d, s in zip(direction, shapes)):
        got = [tuple(d.shape) for d in direction] if isinstance(direction, (list, tuple)) else type(direction)
        raise ValueError(f"direction must be a list of {len(shapes)} latents of shapes {shapes} (as returned by "
                         f"attribute_direction), got {got}")
    alphas = torch.as_tensor(alphas, dtype=torch.float64).flatten()
    if len(alphas) == 0 or not torch.isfinite(alphas).all():
        raise ValueError(f"alphas must be a non-empty sequence of finite numbers, got {alphas.tolist()}")
    model = exact_model(model)                    # alpha = 0 gives the images back, as in float32
    p = first_parameter(model)
    direction = [d.to(device=p.device, dtype=p.dtype) for d in direction]
    out, finite = [], []
    with eval_mode(model):
        for _, zs in encode_batches(model, images_uint8, batch_size):
            decoded = [model.decode([z + alpha.item() * d for z, d in zip(zs, direction)]) for alpha in alphas]
            decoded = torch.stack(decoded, 1)                                      # (B, A, C, H, W)
            # a shifted latent can overflow the affine inverse to inf/NaN: shown mid-grey and flagged
            ok = torch.isfinite(decoded).flatten(2).all(2)                         # (B, A)
            decoded[~ok] = 0.0
            out.append(to_uint8(decoded, model.config.n_bits))
            finite.append(ok.cpu())
    return (torch.cat(out), torch.cat(finite)) if return_finite else torch.cat(out)
