"""The one shared exactness check that every flow layer and every model runs through (float64, tiny inputs)."""
from __future__ import annotations

import torch
from torch.autograd.functional import jacobian


@torch.no_grad()
def perturb(module: torch.nn.Module, scale: float = 0.03, seed: int = 0) -> None:
    """Move every parameter off its initial value: a zero-initialised coupling is the identity and would let a
    wrong log-det pass."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def prepare(module, x, seed=0):
    """float64, ActNorm initialised on the batch x, parameters perturbed, eval mode."""
    module = module.double()
    module.train()
    if hasattr(module, "initialize"):
        module.initialize(x)
    else:
        module(x)
    perturb(module, seed=seed)
    return module.eval()


def brute_force_logdet(f, x: torch.Tensor) -> torch.Tensor:
    """slogdet of the Jacobian of f at each sample of x, computed by autograd; shape (B,)."""
    out = []
    for xi in x:
        J = jacobian(lambda v: f(v[None])[0].flatten(), xi, vectorize=True)
        out.append(torch.linalg.slogdet(J.reshape(xi.numel(), xi.numel()))[1])
    return torch.stack(out)


def check_exact(forward, reverse, x, rt_tol=1e-8, ld_tol=1e-6):
    """forward(x) -> (y, logdet); reverse(y) -> x. Returns the (round-trip, log-det) errors seen."""
    y, logdet = forward(x)
    assert logdet.shape == (x.shape[0],), f"logdet shape {tuple(logdet.shape)} != ({x.shape[0]},)"
    assert logdet.dtype == x.dtype and logdet.device == x.device
    x_back = reverse(y)
    rt_err = (x_back - x).abs().max().item()
    assert rt_err <= rt_tol, f"round trip error {rt_err:.3g} > {rt_tol}"
    ld_err = (brute_force_logdet(lambda v: flatten(forward(v)[0]), x) - logdet).abs().max().item()
    assert ld_err <= ld_tol, f"log-det differs from the brute-force Jacobian by {ld_err:.3g}"
    return rt_err, ld_err


def flatten(y):
    """A layer's output tensor, or a model's list of latents, as one (B, D) tensor."""
    if isinstance(y, (list, tuple)):
        return torch.cat([z.flatten(1) for z in y], 1)
    return y.flatten(1)


def check_state_dict_round_trip(make_model, x, x_other):
    """A model loaded from another's state_dict gives its log_prob and decode exactly, and a training-mode pass on
    other data leaves the state unchanged: ActNorm's "initialised" state travels with the weights."""
    torch.manual_seed(1)
    a = prepare(make_model(), x)
    torch.manual_seed(2)
    b = make_model().double()
    assert not torch.equal(a.log_prob(x), b.log_prob(x))      # a different draw, before loading
    b.load_state_dict(a.state_dict())
    b.eval()
    assert torch.equal(a.log_prob(x), b.log_prob(x))
    z_a, _ = a.encode(x)
    assert torch.equal(a.decode(z_a), b.decode(z_a))
    before = {k: v.clone() for k, v in b.state_dict().items()}
    b.train()
    b.encode(x_other)
    assert all(torch.equal(before[k], v) for k, v in b.state_dict().items()), "ActNorm re-initialised after loading"
