"""Dequantisation (glowlib.models.dequantization): exact log q, units of the ELBO, the importance-weighted bound, errors,
gradients. float64 wherever a value is compared with a brute-force one."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import jacobian

from glowlib import Glow, GlowConfig, bits_per_dim, dequantize, nll_bits_per_dim
from glowlib.data import load_dataset, to_float
from glowlib.layers import gaussian_log_prob
from glowlib.models.dequantization import (ConditionalCoupling, DequantizedModel, UniformDequantization,
                                           VariationalDequantization, make_dequantizer)
from glowlib.objective import elbo_bits_per_dim, importance_weighted_bits_per_dim
from flowcheck import check_exact, perturb


def gen(seed):
    return torch.Generator().manual_seed(seed)


def discrete(shape, n_bits, seed=0, dtype=torch.float64):
    """Random n-bit data as to_float makes it, every bin including both edges of the range."""
    images = torch.randint(0, 256, shape, generator=gen(seed), dtype=torch.uint8)
    images.view(-1)[:2] = torch.tensor([0, 255], dtype=torch.uint8)
    return to_float(images, n_bits).to(dtype)


def variational(channels=2, seed=0, scale=0.1):
    """A float64 variational dequantiser moved well off its identity initialisation."""
    torch.manual_seed(seed)
    deq = VariationalDequantization(channels, width=8, context_channels=4, n_steps=4).double()
    perturb(deq, scale=scale, seed=seed)
    return deq


def tiny_glow(n_bits, size=4, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    model = Glow(GlowConfig(in_channels=2, image_size=size, n_levels=1, depth=2, width=8, n_bits=n_bits)).to(dtype)
    model.initialize(dequantize(discrete((16, 2, size, size), n_bits, seed, dtype), n_bits, gen(seed)))
    perturb(model, scale=0.05, seed=seed)
    return model


# ------------------------------------------------------------------------------------------- exactness of log q
def test_conditional_coupling_is_exact(exactness_log):
    torch.manual_seed(0)
    coupling = ConditionalCoupling(2, 3, width=8, parity=1).double()
    perturb(coupling, scale=0.3)
    context = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    e = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    errors = check_exact(lambda v: coupling(v, context), lambda v: coupling.reverse(v, context), e)
    exactness_log["ConditionalCoupling"] = errors
    assert not torch.allclose(coupling(e, context)[0], e)          # perturbed: not the identity


def test_log_q_equals_change_of_variables_with_brute_force_jacobian():
    n_bits = 3
    deq = variational()
    x = discrete((3, 2, 4, 4), n_bits)
    eps = deq.draw_noise(x, gen(1))
    u, log_q = deq.transform(eps, x)
    assert log_q.shape == (3,) and log_q.dtype == torch.float64
    zero = torch.zeros(1, dtype=torch.float64)
    for i in range(3):
        J = jacobian(lambda e: deq.transform(e[None], x[i:i + 1])[0].flatten(), eps[i], vectorize=True)  # (D, C, H, W)
        log_det = torch.linalg.slogdet(J.reshape(32, 32))[1]
        brute = gaussian_log_prob(eps[i:i + 1], zero, zero) - log_det
        assert log_q[i].item() == pytest.approx(brute.item(), abs=1e-9)
    # the map depends on x (q is conditional): same ε, other images, other u
    assert (deq.transform(eps, x.flip(0))[0] - u.flip(0)).abs().max() > 1e-3
    # and log_prob, which inverts the flow, recovers log q of the sample
    x_cont, log_q_sample = deq.sample(x, n_bits, noise=eps)
    assert torch.allclose(deq.log_prob(x_cont, x, n_bits), log_q_sample, atol=1e-9, rtol=0)


@pytest.mark.parametrize("n_bits", [1, 5, 8])
def test_variational_noise_stays_strictly_inside_each_bin(n_bits):
    deq = variational()
    x = discrete((64, 2, 4, 4), n_bits)
    x_cont, _ = deq.sample(x, n_bits, gen(2))
    u = (x_cont - x) * 2 ** n_bits
    assert u.min() > 0 and u.max() < 1
    assert torch.equal(torch.floor((x_cont + 0.5) * 2 ** n_bits), torch.round((x + 0.5) * 2 ** n_bits))
    assert u.min() < 0.01 and u.max() > 0.99 and u.std() > 0.2    # the noise does reach towards both edges


def test_untrained_variational_q_is_the_logit_normal_near_uniform():
    """Known answer: the couplings start as the identity, so u = sigmoid(1.75·ε) in every dimension and
    E[log q(u)] per dimension = KL(q ‖ U(0, 1)) = −H(N(0, 1)) − log 1.75 − E[log sigmoid'(1.75·ε)], here by 1-D
    quadrature. Monte Carlo over 256 images × 32 dimensions, 4 standard errors."""
    torch.manual_seed(0)
    deq = VariationalDequantization(2).double()
    e = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    h = 1.75 * e
    density = torch.exp(-e ** 2 / 2) / math.sqrt(2 * math.pi)
    log_grad = torch.trapezoid(density * (F.logsigmoid(h) + F.logsigmoid(-h)), e)
    kl = -0.5 * math.log(2 * math.pi * math.e) - math.log(1.75) - log_grad.item()
    assert 0.009 < kl < 0.010
    with torch.no_grad():
        _, log_q = deq.sample(discrete((256, 2, 4, 4), 3), 3, gen(10))
    per_dim = log_q / 32
    assert abs(per_dim.mean().item() - kl) < 4 * per_dim.std().item() / 16


# ------------------------------------------------------------------------------------------- units of the ELBO
def test_uniform_elbo_equals_the_training_bits_per_dim_for_the_same_noise():
    n_bits = 5
    model = tiny_glow(n_bits, dtype=torch.float32)
    x = discrete((8, 2, 4, 4), n_bits, seed=3, dtype=torch.float32)
    deq = make_dequantizer("uniform", 2)
    x_cont, log_q = deq.sample(x, n_bits, gen(4))
    assert torch.equal(x_cont, dequantize(x, n_bits, gen(4))) and torch.equal(log_q, torch.zeros(8))
    ours = elbo_bits_per_dim(model, x, deq, n_bits, generator=gen(4))
    training = bits_per_dim(model(dequantize(x, n_bits, gen(4))), 32, n_bits)   # train.py's loss, per image
    assert torch.equal(ours, training)
    assert torch.equal(ours, nll_bits_per_dim(model, x, generator=gen(4)))
    # the importance-weighted bound with uniform q is train.evaluate's n_samples estimate
    log_px = torch.stack([model.log_prob(dequantize(x, n_bits, g)) for g in [gen(5)] for _ in range(3)])
    expected = bits_per_dim(torch.logsumexp(log_px, 0) - math.log(3), 32, n_bits)
    assert torch.allclose(importance_weighted_bits_per_dim(model, x, deq, n_bits, 3, generator=gen(5)), expected,
                          atol=1e-6, rtol=0)


class PointMass(nn.Module):
    """P(x*) = 1: the continuous density of x̃ is the dequantiser's own q around x* (log_q + D·n·ln 2 nats)."""

    def __init__(self, deq, x_star, n_bits):
        super().__init__()
        self.deq, self.x_star, self.n_bits = deq, x_star, n_bits

    def log_prob(self, x_cont):
        return self.deq.log_prob(x_cont, self.x_star, self.n_bits) + self.x_star[0].numel() * self.n_bits * math.log(2)


@pytest.mark.parametrize("name", ["uniform", "variational"])
def test_known_answer_zero_bits_for_a_model_that_puts_all_mass_on_x(name):
    """If p(x̃) = q(x̃ | x) then p / q is constant, every bound is exact and log P(x) = 0: zero bits/dim, whatever
    n and k. A wrong sign of log q or a missing/double bin-width term would show as ±n_bits."""
    n_bits = 4
    deq = variational() if name == "variational" else UniformDequantization()
    x = discrete((3, 2, 4, 4), n_bits, seed=6)
    model = PointMass(deq, x, n_bits)
    assert elbo_bits_per_dim(model, x, deq, n_bits, generator=gen(7)).abs().max() < 1e-9
    assert importance_weighted_bits_per_dim(model, x, deq, n_bits, 5, generator=gen(7)).abs().max() < 1e-9


def test_a_uniform_density_gives_n_bits_with_uniform_dequantisation():
    class Flat(nn.Module):                                         # p = 1 on [-0.5, 0.5]^D
        def log_prob(self, x):
            return x.new_zeros(x.shape[0])
    x = discrete((4, 2, 4, 4), 6)
    assert torch.allclose(elbo_bits_per_dim(Flat(), x, UniformDequantization(), 6), torch.full((4,), 6.0,
                                                                                              dtype=torch.float64))


# ------------------------------------------------------------------------------------ the importance-weighted bound
@pytest.fixture(scope="module")
def trained_on_digits():
    """A tiny Glow and a variational dequantiser trained together for 40 Adam steps on 5-bit 8x8 digits."""
    n_bits = 5
    data = load_dataset("digits")
    train_x, test_x = to_float(data.train_images, n_bits), to_float(data.test_images, n_bits)
    torch.manual_seed(0)
    model = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16, n_bits=n_bits))
    deq = VariationalDequantization(1, width=16, context_channels=8, n_steps=4)
    g = gen(0)
    with torch.no_grad():
        model.initialize(deq.sample(train_x[:256], n_bits, g)[0])
    optimizer = torch.optim.Adam(list(model.parameters()) + list(deq.parameters()), lr=5e-3)
    losses = []
    for _ in range(40):
        idx = torch.randint(0, len(train_x), (64,), generator=g)
        loss = elbo_bits_per_dim(model, train_x[idx], deq, n_bits, generator=g).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), deq.eval(), test_x, n_bits, losses


def test_importance_weighted_bound_tightens_with_k(trained_on_digits):
    """Mean over the 300 test digits of the bound for k = 1, 4, 16, common random numbers (same seed: the samples
    for k are the first k of those for 16). Theory: E[bound_k] is non-increasing in k. Tolerance: 3 standard errors
    of the per-image paired difference (a normal approximation over 300 images; if the expectations were equal,
    +3 SE would be exceeded with probability ~0.1%). q is far from the true posterior after 40 steps, so the bound
    must also tighten by more than 3 SE from k = 1 to 16: the test can tell a working estimator from a constant."""
    model, deq, x, n_bits, losses = trained_on_digits
    assert losses[-1] < losses[0] - 0.5                            # it trained (about 5.7 -> 4.5 bits/dim)
    with torch.no_grad():
        bound = {k: importance_weighted_bits_per_dim(model, x, deq, n_bits, k, generator=gen(1)) for k in (1, 4, 16)}
        elbo = elbo_bits_per_dim(model, x, deq, n_bits, generator=gen(1))
        elbo_other = elbo_bits_per_dim(model, x, deq, n_bits, generator=gen(2))   # independent noise

    def gap(a, b):                                                 # mean of a - b and its standard error
        d = (a - b).double()
        return d.mean().item(), d.std().item() / math.sqrt(len(d))

    assert torch.equal(bound[1], elbo)                             # k = 1 is the ELBO, sample for sample
    for small, large in ((1, 4), (4, 16)):
        mean, se = gap(bound[large], bound[small])
        assert mean <= 3 * se, f"k={large} bound worse than k={small} by {mean:.4g} bits/dim (SE {se:.2g})"
    mean, se = gap(bound[16], bound[1])
    assert mean < -3 * se, f"no tightening from k=1 to k=16: {mean:.4g} bits/dim (SE {se:.2g})"
    mean, se = gap(bound[16], elbo_other)
    assert mean <= 3 * se


# ------------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("x, match", [
    (torch.full((2, 2, 4, 4), 255.0), r"\[255, 255\].*glowlib\.data\.to_float"),          # raw uint8 values
    (torch.full((2, 2, 4, 4), 1.0), r"\[1, 1\].*to_float"),                                # [0, 1] images
    (torch.full((2, 2, 4, 4), 0.5), r"\[0\.5, 0\.5\].*expected 5-bit data"),               # just past the top bin
    (torch.full((2, 2, 4, 4), 0.01), r"off the 5-bit grid.*not already dequantised"),     # already dequantised
    (torch.full((2, 2, 4, 4), math.nan), r"\[nan, nan\]"),
])
@pytest.mark.parametrize("name", ["uniform", "variational"])
def test_data_outside_the_n_bit_grid_is_refused(x, match, name):
    deq = make_dequantizer(name, 2)
    with pytest.raises(ValueError, match=match):
        deq.sample(x, 5)


def test_bad_arguments_raise_naming_the_value_and_the_fix():
    x = discrete((2, 2, 4, 4), 5, dtype=torch.float32)
    model = tiny_glow(5, dtype=torch.float32)
    deq = UniformDequantization()
    for k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=rf"k={k!r} must be an int >= 1.*k=1 is the ELBO"):
            importance_weighted_bits_per_dim(model, x, deq, 5, k)
    with pytest.raises(ValueError, match=r"dequantization='logistic' is not allowed; choose one of "
                                         r"\('uniform', 'variational'\)"):
        make_dequantizer("logistic", 2)
    with pytest.raises(ValueError, match=r"n_bits=9 must be an int in \[1, 8\]"):
        UniformDequantization().sample(x, 9)
    with pytest.raises(ValueError, match=r"n_bits=4 but the model was configured with n_bits=5"):
        elbo_bits_per_dim(model, discrete((2, 2, 4, 4), 4, dtype=torch.float32), deq, 4)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 4, 4\); expected \(B, 3, H, W\).*in_channels=3"):
        VariationalDequantization(3).sample(x, 5)
    with pytest.raises(ValueError, match=r"u in \[-1, -1\]; expected u strictly inside"):
        VariationalDequantization(2).log_prob(x - 1 / 32, x, 5)


# ------------------------------------------------------------------------------------------------------ gradients
def test_elbo_gradients_reach_the_dequantiser_and_match_finite_differences():
    n_bits = 5
    model, deq = tiny_glow(n_bits), variational()
    x = discrete((4, 2, 4, 4), n_bits, seed=8)
    noise = deq.draw_noise(x, gen(9))                              # fixed ε: the ELBO is a deterministic function

    def loss():
        return elbo_bits_per_dim(model, x, deq, n_bits, noise=noise).mean()

    loss().backward()
    for name, p in deq.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name
    assert all(p.grad is not None for p in model.parameters())
    # the same gradient through DequantizedModel, the module DistributedDataParallel would wrap
    joint = DequantizedModel(model, deq, n_bits)
    grads = {n: p.grad.clone() for n, p in joint.named_parameters()}
    joint.zero_grad()
    bits_per_dim(joint(x, noise=noise), 32, n_bits).mean().backward()
    assert all(torch.allclose(p.grad, grads[n], atol=1e-12, rtol=0) for n, p in joint.named_parameters())
    # autograd against central differences, on one entry of a context conv, a coupling conv and a coupling scale
    h = 1e-6
    for p in (deq.context[0].weight, deq.couplings[1].net[0].conv.weight, deq.couplings[2].scale):
        flat = p.data.view(-1)
        with torch.no_grad():
            flat[0] += h
            up = loss().item()
            flat[0] -= 2 * h
            down = loss().item()
            flat[0] += h
        assert p.grad.view(-1)[0].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)
