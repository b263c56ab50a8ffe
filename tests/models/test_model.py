"""Glow and RealNVP as whole flows: exactness over many configs, the public API, errors, bits/dim."""
import itertools
import math

import pytest
import torch

from glowlib import Glow, GlowConfig, RealNVP, bits_per_dim, dequantize, nll_bits_per_dim
from flowcheck import check_exact, check_state_dict_round_trip, perturb, prepare

PERMS = [("conv1x1", True), ("conv1x1", False), ("shuffle", False), ("reverse", False), ("rotation", False)]


def tiny(**kw):
    base = dict(in_channels=1, image_size=4, n_levels=1, depth=2, width=8)
    base.update(kw)
    return GlowConfig(**base)


def model_configs():
    """Every permutation (× lu) × coupling × 1-3 levels; channels 1-4 and learn_top on/off cycle through."""
    for i, ((perm, lu), coupling, levels) in enumerate(itertools.product(PERMS, ["affine", "additive"], [1, 2, 3])):
        yield tiny(in_channels=1 + i % 4, image_size=8 if levels == 3 else 4, n_levels=levels,
                   permutation=perm, lu=lu, coupling=coupling, learn_top=bool(i % 2))


CONFIGS = list(model_configs())


def data(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, cfg.in_channels, cfg.image_size, cfg.image_size), generator=g) / 256 - 0.5
    return dequantize(x.double(), 8, g)


@pytest.mark.parametrize("model_cls", [Glow, RealNVP])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.permutation}-lu{int(c.lu)}-{c.coupling}-L{c.n_levels}"
                         f"-C{c.in_channels}-top{int(c.learn_top)}")
def test_model_is_exact(model_cls, cfg, exactness_log):
    torch.manual_seed(0)
    x = data(cfg)
    model = prepare(model_cls(cfg), data(cfg, batch=32, seed=1))   # ActNorm statistics from a real-sized batch
    rt, ld = check_exact(model.encode, model.decode, x)
    exactness_log[f"{model_cls.__name__}/{cfg}"] = {"round_trip": rt, "logdet": ld}


@pytest.mark.parametrize("kw", [dict(actnorm=False), dict(learned_prior=False), dict(n_classes=3)])
def test_ablation_variants_are_exact(kw):
    cfg = tiny(n_levels=2, in_channels=2, **kw)
    x = data(cfg)
    model = prepare(Glow(cfg), data(cfg, batch=32, seed=1))
    check_exact(model.encode, model.decode, x)


def test_latent_shapes_match_config():
    cfg = GlowConfig(in_channels=3, image_size=32, n_levels=3, depth=1, width=8)
    zs, logdet = Glow(cfg).encode(torch.rand(2, 3, 32, 32) - 0.5)
    assert [tuple(z.shape[1:]) for z in zs] == cfg.latent_shapes == [(6, 16, 16), (12, 8, 8), (48, 4, 4)]
    assert sum(math.prod(s) for s in cfg.latent_shapes) == cfg.n_dims
    assert logdet.shape == (2,)


@pytest.mark.parametrize("perm", ["reverse", "rotation"])
def test_log_prob_of_identity_flow_is_standard_normal(perm):
    """Uninitialised ActNorm, zero-initialised additive couplings and priors make Glow an orthogonal map onto
    N(0, I): log p(x) = −½ Σ (x² + log 2π), computed by hand. (Affine coupling starts at s = sigmoid(2).)"""
    cfg = tiny(n_levels=2, in_channels=2, permutation=perm, coupling="additive")
    model = Glow(cfg).double().eval()
    x = data(cfg, batch=3)
    expected = -0.5 * (x ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-10)


def test_log_prob_is_prior_plus_logdet():
    cfg = tiny(n_levels=2, in_channels=2, learned_prior=True)
    x = data(cfg)
    model = prepare(Glow(cfg), x)
    zs, logdet = model.encode(x)
    h = model.levels[0].encode(x)[0]
    from glowlib.layers import gaussian_log_prob
    by_hand = (gaussian_log_prob(zs[0], *model.levels[0].prior_params(h))
               + gaussian_log_prob(zs[1], *model.top_prior(x.shape[0])) + logdet)
    assert torch.allclose(model.log_prob(x), by_hand, atol=1e-10)


def test_state_dict_round_trip_gives_identical_outputs_and_no_reinit():
    cfg = tiny(n_levels=2, in_channels=2)
    check_state_dict_round_trip(lambda: Glow(cfg), data(cfg), 10 * data(cfg, seed=5).clamp(-0.05, 0.05))


def test_sample_shapes_temperature_and_generator():
    cfg = tiny(n_levels=2, in_channels=2)
    model = Glow(cfg).eval()
    perturb(model)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    s1, s2 = model.sample(5, 0.7, g1), model.sample(5, 0.7, g2)
    assert s1.shape == (5, 2, 4, 4) and torch.equal(s1, s2)
    # T = 0 decodes the prior means: no randomness left
    assert torch.equal(model.sample(2, 0.0, torch.Generator().manual_seed(0)),
                       model.sample(2, 0.0, torch.Generator().manual_seed(1)))


def test_decode_samples_missing_latents():
    cfg = tiny(n_levels=2, in_channels=2)
    model = Glow(cfg).eval()
    zs, _ = model.encode(data(cfg).float())
    out = model.decode([zs[0], None], generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 4, 4)


def test_class_conditional_prior_uses_labels():
    cfg = tiny(n_levels=2, in_channels=2, n_classes=3)
    x = data(cfg)
    model = prepare(Glow(cfg), x, seed=1)
    lp0, lp1 = model.log_prob(x, torch.tensor([0, 0])), model.log_prob(x, torch.tensor([1, 1]))
    assert not torch.allclose(lp0, lp1)
    assert model.classify(model.encode(x)[0]).shape == (2, 3)
    assert model.sample(2, 0.7, y=torch.tensor([0, 2])).shape == (2, 2, 4, 4)
    with pytest.raises(ValueError, match="labels"):
        model.log_prob(x)


@pytest.mark.parametrize("kw, match", [
    (dict(image_size=28, n_levels=3), "image_size=28 is not divisible by 2\\*\\*n_levels=8"),
    (dict(permutation="random"), "permutation='random' is not allowed"),
    (dict(coupling="affine2"), "coupling='affine2'"),
    (dict(n_bits=9), "n_bits=9"),
    (dict(depth=0), "depth=0"),
    (dict(in_channels=0), "in_channels=0"),
    (dict(lu="yes"), "lu='yes'"),
    (dict(width=2.5), "width=2.5"),
])
def test_bad_config_names_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_bad_inputs_are_named():
    model = Glow(tiny())
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 4\)"):
        model.encode(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):        # checked where data enters the objective
        nll_bits_per_dim(model, torch.tensor([0.0, 255.0]).repeat(8).view(1, 1, 4, 4))
    with pytest.raises(ValueError, match="non-finite"):
        model.encode(torch.full((1, 1, 4, 4), float("nan")))
    zs, _ = model.encode(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="needs 1 latents"):
        model.decode(zs + zs)
    with pytest.raises(ValueError, match="latent of shape"):
        model.decode([zs[0][:, :2]])
    with pytest.raises(ValueError, match="temperature=-1"):
        model.sample(2, temperature=-1)
    with pytest.raises(ValueError, match="n_classes=0"):
        model.log_prob(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))


def test_bits_per_dim_known_answers():
    # a uniform density on [-0.5, 0.5]^D (log p = 0) costs exactly n_bits per dimension
    for n_bits in (5, 8):
        assert bits_per_dim(torch.zeros(3, dtype=torch.float64), n_dims=784, n_bits=n_bits).tolist() == pytest.approx([n_bits] * 3)
    # D = 1, 8 bits, x̃ at the mode of N(0, 1): (½·ln 2π + ln 256) / ln 2, by hand
    assert bits_per_dim(torch.tensor([-0.5 * math.log(2 * math.pi)], dtype=torch.float64), 1, 8).item() == pytest.approx(
        9.325748064736159, abs=1e-12)
    with pytest.raises(ValueError, match="n_bits=0"):
        bits_per_dim(torch.zeros(1), 1, 0)


def test_dequantize_stays_in_the_bin():
    x = torch.randint(0, 32, (1000,)) / 32 - 0.5
    noisy = dequantize(x, 5, torch.Generator().manual_seed(0))
    assert ((noisy - x) >= 0).all() and ((noisy - x) < 1 / 32).all()
    assert (noisy - x).std() > 0.25 / 32


def test_nll_bits_per_dim_of_identity_glow():
    """Identity Glow = standard normal density: bits/dim equals the hand formula on the same noise."""
    cfg = tiny(n_levels=1, in_channels=1, n_bits=8, coupling="additive")
    model = Glow(cfg).double().eval()
    x = data(cfg, batch=4).double()
    x = torch.floor((x + 0.5) * 256) / 256 - 0.5
    bpd = nll_bits_per_dim(model, x, generator=torch.Generator().manual_seed(0))
    xt = dequantize(x, 8, torch.Generator().manual_seed(0))
    by_hand = (0.5 * (xt ** 2 + math.log(2 * math.pi)).sum((1, 2, 3)) + 16 * math.log(256)) / (16 * math.log(2))
    assert torch.allclose(bpd, by_hand, atol=1e-12)
