"""How far invertible backprop's gradients are from plain autograd's as the depth K grows (float32, or bf16 networks
with --set precision=bf16).

    python bench/grad_accuracy.py --channels 1 --size 32 --levels 3 --width 128 --batch 32 --depths 8 32

Both models hold the same weights (ActNorm initialised on the batch, weights perturbed, then ``--steps`` Adamax
steps at ``--lr`` so that they are not at initialisation); the invertible one rebuilds each step's input from its
output, so its gradients carry the round-off of K inverse steps. Reports, per K, the drift of the rebuilt level
inputs (``reconstruction_error``), the relative error ‖g_inv − g‖/‖g‖ over all parameters and the worst single
tensor, and the round-trip error of the model itself (decode(encode(x)) − x in eval mode), which says how well
conditioned the model is: a model that cannot invert its own output cannot rebuild its activations either.
With ``--set precision=bf16`` the comparison is bf16 against bf16, and ``precision_gradient_error`` gives the scale
to judge it by: plain autograd's bf16 gradients against fp32's, same weights.
Prints JSON; asserts nothing.
"""
from __future__ import annotations

import warnings

import torch

from common import build, config_record, emit, environment, glow_config, images, parser, setup, train_step_fn


def gradients(model, x, n_dims):
    from glowlib.objective import bits_per_dim
    model.zero_grad(set_to_none=True)
    bits_per_dim(model(x), n_dims, 8).mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def relative_error(grads, reference) -> float:
    """‖grads − reference‖ / ‖reference‖ over all parameters (lists of tensors in the same order)."""
    diff = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(grads, reference)))
    return (diff / torch.sqrt(sum((b ** 2).sum() for b in reference))).item()


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="*", default=[8, 32])
    p.add_argument("--steps", type=int, default=5, help="Adamax steps before comparing")
    p.add_argument("--lr", type=float, default=1e-4)
    args = p.parse_args(argv)
    device = setup(args)
    x = images(args, device=device)
    rows = []
    for depth in args.depths:
        args.depth = depth
        cfg = glow_config(args, inv_backprop=False)
        plain, _ = build(cfg, x, reference=False)
        step = train_step_fn(plain, x, cfg.n_dims, lr=args.lr)
        for _ in range(args.steps):
            step()
        inv = type(plain)(cfg.replace(inv_backprop=True)).to(device)
        inv.load_state_dict(plain.state_dict())
        inv.train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            g_inv = gradients(inv, x, cfg.n_dims)
        g = gradients(plain, x, cfg.n_dims)
        worst = max(((a - b).norm() / b.norm().clamp_min(1e-30)).item() for a, b in zip(g_inv, g))
        drift = [float(level.steps.reconstruction_error) for level in inv.levels]
        extra = {}
        if cfg.precision != "fp32":          # the scale to judge by: the precision's own error, same weights
            exact = type(plain)(cfg.replace(precision="fp32")).to(device)
            exact.load_state_dict(plain.state_dict())
            exact.train()
            g32 = gradients(exact, x, cfg.n_dims)
            extra["precision_gradient_error"] = relative_error(g, g32)
        plain.eval()
        with torch.no_grad():
            round_trip = (plain.decode(plain.encode(x)[0]) - x).abs().max().item()
        rows.append({"depth": depth, "relative_gradient_error": relative_error(g_inv, g),
                     "worst_tensor_relative_error": worst, "reconstruction_error_per_level": drift,
                     "model_round_trip_error": round_trip, **extra})
    record = {"benchmark": "grad_accuracy", "config": config_record(args, glow_config(args)), "rows": rows,
              "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
