"""What the models accept: a flow is a density on all of R^D, so log_prob, encode and decode take any finite input
(a model's own samples leave [-0.5, 0.5]^D); NaN, infinity, non-float or empty batches and a non-finite
temperature are refused with a ValueError that names the problem."""
import pytest
import torch

from glowlib import Glow, GlowConfig, MaCow, MaCowConfig, RealNVP, nll_bits_per_dim


def glow_cfg():
    return GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16)


MODELS = {
    "glow": lambda: Glow(glow_cfg()),
    "realnvp": lambda: RealNVP(glow_cfg()),
    "macow": lambda: MaCow(MaCowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16, n_units=1)),
}


def perturbed(name: str, scale: float = 0.3):
    """A model whose weights are moved off their initialisation (zero convs no longer zero), in eval mode."""
    torch.manual_seed(0)
    model = MODELS[name]()
    model.initialize(torch.rand(16, 1, 8, 8) - 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p) * (p.abs().mean() + 0.1))
    return model.eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_log_prob_of_the_models_own_samples_is_finite(name):
    model = perturbed(name)
    x = model.sample(32, generator=torch.Generator().manual_seed(1))
    assert x.abs().max() > 0.5                                  # the samples do leave the data's box
    log_p = model.log_prob(x)
    assert log_p.shape == (32,) and torch.isfinite(log_p).all()
    zs, logdet = model.encode(x)
    assert torch.isfinite(logdet).all()
    assert torch.allclose(model.decode(zs), x, atol=1e-3)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_non_finite_wrong_dtype_and_empty_inputs_are_named(name):
    model = perturbed(name)
    x = torch.zeros(2, 1, 8, 8)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="non-finite"):
            model.log_prob(x.clone().index_fill_(3, torch.tensor([2]), bad))
    with pytest.raises(ValueError, match="floating-point tensor, got torch.uint8"):
        model.encode(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="holds no images"):
        model.log_prob(torch.zeros(0, 1, 8, 8))
    zs, _ = model.encode(x)
    z0 = zs[0].clone()
    z0[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="latent 0 holds 1 non-finite"):
        model.decode([z0] + zs[1:])
    with pytest.raises(ValueError, match="latent 1 must be a floating-point tensor"):
        model.decode([zs[0], zs[1].long()])
    with pytest.raises(ValueError, match="holds no images"):
        model.decode([zs[0][:0], None])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_a_non_finite_or_negative_temperature_is_refused(name, temperature):
    model = perturbed(name)
    with pytest.raises(ValueError, match=f"temperature={temperature!r} must be a finite number"):
        model.sample(2, temperature=temperature)
    zs, _ = model.encode(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=f"temperature={temperature!r}"):
        model.decode([zs[0], None], temperature=temperature)


def test_the_data_range_is_still_checked_where_data_enters():
    """uint8 values or [0, 1] images passed by mistake are caught by the objective's bits/dim helper (the
    loaders' to_float takes uint8 only; evaluate and the trainer go through it)."""
    from glowlib.training import bits_per_image
    model = perturbed("glow")
    images = torch.rand(2, 1, 8, 8)
    images[0, 0, 0, :2] = torch.tensor([0.0, 1.0])                # [0, 1] images, as a loader without to_float gives
    with pytest.raises(ValueError, match=r"values in \[0, 1\]; expected images in \[-0.5, 0.5\]"):
        nll_bits_per_dim(model, images)
    with pytest.raises(ValueError, match="uint8"):
        bits_per_image(model, torch.rand(4, 1, 8, 8), n_bits=8)


# ------------------------------------------------------------------ dtypes and counts that used to crash
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_inputs_of_another_float_dtype_are_refused_naming_the_cast(dtype):
    model = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=1, width=8))
    x = torch.rand(2, 1, 8, 8, dtype=dtype) - 0.5
    for call in (model.log_prob, model.encode, model.initialize):
        with pytest.raises(ValueError, match=rf"x is {dtype}, but the model computes in torch.float32; pass "
                                             rf"x.to\(torch.float32\)"):
            call(x)
    zs, _ = model.encode(x.float())
    with pytest.raises(ValueError, match=rf"latent 0 is {dtype}"):
        model.decode([zs[0].to(dtype), None])
    assert torch.isfinite(model.log_prob(x.float())).all()      # the named cast works


@pytest.mark.parametrize("n", ["3", 2.0, True, 0])
def test_sample_counts_that_are_not_positive_ints_are_refused(n):
    model = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=1, width=8))
    with pytest.raises(ValueError, match=r"n=.* must be an int >= 1"):
        model.sample(n)
