"""MaCow: masked convolutional flows (exactness, masking, O(H) inverse), the whole model (exactness over configs,
the fine-grained multi-scale split, the public API shared with Glow), config errors."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from glowlib import GlowConfig
from glowlib.config import ORIENTATIONS, MaCowConfig
from glowlib.layers import ActNorm, MaCowUnit, MaskedConvFlow
from glowlib.models import MaCow, MaCowStep
from glowlib.objective import dequantize, nll_bits_per_dim
from flowcheck import check_exact, check_state_dict_round_trip, flatten, perturb, prepare

KERNELS = [(2, 3), (1, 1), (3, 1)]              # (kernel_height, kernel_width)


def tiny(**kw):
    base = dict(in_channels=1, image_size=4, n_levels=1, depth=1, width=8, n_units=1, mcf_width=4)
    base.update(kw)
    return MaCowConfig(**base)


def data(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, cfg.in_channels, cfg.image_size, cfg.image_size), generator=g) / 256 - 0.5
    return dequantize(x.double(), 8, g)


def masked_flow(orientation, kernel=(2, 3), channels=2, seed=0):
    """A perturbed float64 masked conv flow (so that its zero-initialised output conv is not zero)."""
    torch.manual_seed(seed)
    flow = MaskedConvFlow(channels, 4, *kernel, orientation).double()
    perturb(flow, scale=0.3)
    return flow.eval()


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"k{k[0]}x{k[1]}")
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_masked_conv_flow_is_exact(orientation, kernel, exactness_log):
    x = torch.randn(3, 2, 5, 6, dtype=torch.float64)          # H != W: a swapped axis cannot pass
    flow = masked_flow(orientation, kernel)
    rt, ld = check_exact(flow, flow.reverse, x)
    exactness_log[f"macow/mcf/{orientation}/k{kernel}"] = {"round_trip": rt, "logdet": ld}


@pytest.mark.parametrize("make", [lambda c: MaCowUnit(c, 6, 2, 3),
                                  lambda c: MaCowStep(c, tiny(n_units=2, coupling="affine")),
                                  lambda c: MaCowStep(c, tiny(n_units=1, coupling="additive", kernel_width=1))],
                         ids=["unit", "step-affine", "step-additive"])
@pytest.mark.parametrize("channels", [2, 3])
def test_unit_and_step_are_exact(make, channels, exactness_log):
    torch.manual_seed(channels)
    x = torch.randn(3, channels, 4, 5, dtype=torch.float64)
    layer = prepare(make(channels), x)
    rt, ld = check_exact(layer, layer.reverse, x)
    exactness_log[f"macow/layer/{type(layer).__name__}/c{channels}"] = {"round_trip": rt, "logdet": ld}


def allowed_dependencies(orientation, kernel, c, h, w):
    """(C·H·W, C·H·W) bool: may output (c, i, j) depend on input (c', i', j')? Its own value, and every channel
    of the kh rows above (top-down) within kw//2 columns either side; the other orientations likewise."""
    kh, p = kernel[0], kernel[1] // 2
    ci, ii, jj = (t.flatten() for t in torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w),
                                                      indexing="ij"))
    di = ii[None, :] - ii[:, None]                            # input row − output row, [out, in]
    dj = jj[None, :] - jj[:, None]
    window = {"top-down": (-kh <= di) & (di <= -1) & (dj.abs() <= p),
              "bottom-up": (1 <= di) & (di <= kh) & (dj.abs() <= p),
              "left-right": (-kh <= dj) & (dj <= -1) & (di.abs() <= p),
              "right-left": (1 <= dj) & (dj <= kh) & (di.abs() <= p)}[orientation]
    return window | torch.eye(c * h * w, dtype=torch.bool)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"k{k[0]}x{k[1]}")
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_masked_conv_jacobian_has_exactly_the_masked_pattern(orientation, kernel):
    """The Jacobian is nonzero exactly where the mask allows: nothing outside the window (masked), everything in
    it (the receptive field is the one configured), and so triangular in the orientation's scan order."""
    c, h, w = 2, 5, 6
    flow = masked_flow(orientation, kernel, channels=c, seed=1)
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    J = jacobian(lambda v: flow(v.view(1, c, h, w))[0].flatten(), x.flatten())      # [out, in]
    allowed = allowed_dependencies(orientation, kernel, c, h, w)
    assert torch.equal(J != 0, allowed), f"{int(((J != 0) != allowed).sum())} entries break the mask"
    # autoregressive: ordered by the scan position of the pixel, every dependency is on an earlier pixel
    ii, jj = (t.flatten() for t in torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    key = {"top-down": ii, "bottom-up": -ii, "left-right": jj, "right-left": -jj}[orientation].repeat(c)
    out_idx, in_idx = torch.nonzero(J, as_tuple=True)
    off_diagonal = out_idx != in_idx
    assert (key[in_idx[off_diagonal]] < key[out_idx[off_diagonal]]).all()
    # its diagonal is the scale s, so the log-det is Σ log s
    assert torch.allclose(torch.diagonal(J).log().sum(), flow(x)[1][0], atol=1e-12)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_reverse_is_one_constant_size_conv_per_row_or_column(orientation):
    """The inverse runs the masked conv once per row (columns for left/right), each time on a window of kh rows,
    so its cost is linear in H (or W); forward is a single conv."""
    b, c, h, w, (kh, kw) = 2, 2, 5, 7, (2, 3)
    flow = masked_flow(orientation, (kh, kw), channels=c)
    shapes = []
    flow.conv.register_forward_hook(lambda m, inputs, out: shapes.append(tuple(inputs[0].shape)))
    y, _ = flow(torch.randn(b, c, h, w, dtype=torch.float64))
    assert len(shapes) == 1
    shapes.clear()
    flow.reverse(y)
    passes, across = (h, w) if orientation in ("top-down", "bottom-up") else (w, h)
    assert shapes == [(b, c, kh, across + 2 * (kw // 2))] * passes


def test_masked_conv_flow_rejects_bad_arguments():
    with pytest.raises(ValueError, match="orientation='diagonal' is not allowed"):
        MaskedConvFlow(2, 4, 2, 3, "diagonal")
    with pytest.raises(ValueError, match=r"kernel \(2, 2\)"):
        MaskedConvFlow(2, 4, 2, 2, "top-down")


# ------------------------------------------------------------------ model
def model_configs():
    """Both multi-scale variants × 1-3 levels, with channels, coupling, kernel, splits and priors varied."""
    yield tiny()
    yield tiny(multiscale="glow", n_levels=2, in_channels=2, coupling="additive", n_units=2)
    yield tiny(multiscale="fine", n_levels=2, image_size=8, depth=2)
    yield tiny(multiscale="fine", n_levels=2, in_channels=2, depth=4, fine_splits=4, kernel_height=1,
               kernel_width=1)
    yield tiny(multiscale="fine", n_levels=2, image_size=4, in_channels=3, depth=3, kernel_height=3,
               learn_top=False)
    yield tiny(multiscale="fine", n_levels=3, image_size=8, depth=2, learned_prior=False, coupling="additive")
    yield tiny(multiscale="glow", n_levels=3, image_size=8, depth=1, mcf_width=None)


CONFIGS = list(model_configs())


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.multiscale}{c.fine_splits}-L{c.n_levels}-C{c.in_channels}"
                         f"-K{c.depth}-{c.coupling}-k{c.kernel_height}x{c.kernel_width}")
def test_model_is_exact(cfg, exactness_log):
    torch.manual_seed(0)
    x = data(cfg)
    model = prepare(MaCow(cfg), data(cfg, batch=32, seed=1))   # ActNorm statistics from a real-sized batch
    rt, ld = check_exact(model.encode, model.decode, x)
    exactness_log[f"MaCow/{cfg}"] = {"round_trip": rt, "logdet": ld}
    zs, _ = model.encode(x)
    assert [tuple(z.shape[1:]) for z in zs] == cfg.latent_shapes
    assert sum(math.prod(s) for s in cfg.latent_shapes) == cfg.n_dims


def test_fine_multiscale_keeps_more_channels_through_the_steps():
    """Fine: the half of a level that leaves does so in parts, so later steps of the level see more channels
    than Glow's split leaves (official factor 4: 4C → steps → 3C → steps → 2C). The level's latent and what
    reaches the next level have Glow's shapes."""
    def level_channels(cfg):
        level = MaCow(cfg).levels[0]
        return [[step.channels for step in group.flows] for group in level.groups], level.splits, level.n_keep

    fine = tiny(multiscale="fine", n_levels=2, image_size=8, depth=3, in_channels=2)
    glow = fine.replace(multiscale="glow")
    assert level_channels(fine) == ([[8, 8], [6]], [2, 2], 4)
    assert level_channels(glow) == ([[8, 8, 8]], [4], 4)
    assert level_channels(fine.replace(fine_splits=4, depth=4)) == ([[8], [7], [6], [5]], [1, 1, 1, 1], 4)
    glow_shapes = GlowConfig(in_channels=2, image_size=8, n_levels=2).latent_shapes
    assert fine.latent_shapes == glow.latent_shapes == glow_shapes


def test_log_prob_with_standard_normal_priors_is_gaussian_of_latents_plus_logdet():
    """Without learned priors every latent part is N(0, 1): log p(x) = Σ log N(z; 0, 1) + logdet."""
    cfg = tiny(multiscale="fine", n_levels=2, image_size=8, depth=2, learned_prior=False, learn_top=False)
    x = data(cfg)
    model = prepare(MaCow(cfg), data(cfg, batch=16, seed=1))
    zs, logdet = model.encode(x)
    z = flatten(zs)
    by_hand = -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1) + logdet
    assert torch.allclose(model.log_prob(x), by_hand, atol=1e-10)
    assert torch.equal(model(x), model.log_prob(x))


def test_learned_prior_changes_log_prob_but_not_latents():
    cfg = tiny(multiscale="fine", n_levels=2, image_size=8, depth=2)
    x = data(cfg)
    model = prepare(MaCow(cfg), x)
    zs, _ = model.encode(x)
    before = model.log_prob(x)
    with torch.no_grad():
        model.levels[0].priors[1].conv.bias.add_(0.5)          # the second part's prior only
    assert all(torch.equal(a, b) for a, b in zip(zs, model.encode(x)[0]))
    assert not torch.allclose(model.log_prob(x), before)


def test_initialize_sets_every_actnorm_from_the_batch():
    cfg = tiny(multiscale="fine", n_levels=2, image_size=8, depth=2)
    model = MaCow(cfg).double().eval()
    x = data(cfg, batch=16)
    model.initialize(x)                                        # trains ActNorm in training mode, then restores
    norms = [m for m in model.modules() if isinstance(m, ActNorm)]
    assert norms and all(bool(m.initialized) for m in norms)
    assert not model.training
    first = model.levels[0].groups[0].flows[0].flows[0].flows[0]       # step → unit → ActNorm
    y, _ = first(model.levels[0].squeeze(x)[0])
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(4, dtype=y.dtype), atol=1e-10)


def test_state_dict_round_trip_gives_identical_outputs_and_no_reinit():
    cfg = tiny(multiscale="fine", n_levels=2, image_size=8, depth=2)
    check_state_dict_round_trip(lambda: MaCow(cfg), data(cfg), 10 * data(cfg, seed=5).clamp(-0.05, 0.05))


def test_sample_shapes_temperature_and_generator():
    cfg = tiny(multiscale="fine", n_levels=2, image_size=8, depth=2)
    model = MaCow(cfg).eval()
    perturb(model)
    s1 = model.sample(3, 0.7, torch.Generator().manual_seed(3))
    s2 = model.sample(3, 0.7, torch.Generator().manual_seed(3))
    assert s1.shape == (3, 1, 8, 8) and torch.equal(s1, s2)
    assert not torch.equal(s1, model.sample(3, 0.7, torch.Generator().manual_seed(4)))
    # T = 0 decodes the prior means: no randomness left
    assert torch.equal(model.sample(2, 0.0, torch.Generator().manual_seed(0)),
                       model.sample(2, 0.0, torch.Generator().manual_seed(1)))


def test_decode_samples_missing_latents_and_keeps_given_ones():
    cfg = tiny(multiscale="fine", n_levels=2, image_size=8, depth=2)
    x = data(cfg)
    model = prepare(MaCow(cfg), x)
    zs, _ = model.encode(x)
    out = model.decode([zs[0], None], generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # the bottom latent is kept and the top one re-drawn (levels called directly: no range check on out)
    h, z0, _ = model.levels[0].encode(out)
    assert torch.allclose(z0, zs[0], atol=1e-10)
    assert not torch.allclose(model.levels[1].encode(h)[1], zs[1])
    assert torch.allclose(model.decode([zs[0], zs[1]]), x, atol=1e-10)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw, match", [
    (dict(multiscale="finer"), "multiscale='finer' is not allowed"),
    (dict(coupling="affine2"), "coupling='affine2' is not allowed"),
    (dict(kernel_width=2), "kernel_width=2 is not allowed"),
    (dict(kernel_height=0), "kernel_height=0 is out of range"),
    (dict(n_levels=2, image_size=8, fine_splits=3), r"fine_splits=3 is not allowed .* choose one of \[1, 2\]"),
    (dict(n_levels=2, image_size=8, depth=1, fine_splits=2), "fine_splits=2 needs depth >= 2"),
    (dict(image_size=6, n_levels=2), "image_size=6 is not divisible by 2\\*\\*n_levels=4"),
    (dict(n_bits=9), "n_bits=9"),
    (dict(depth=0), "depth=0"),
    (dict(n_units=1.5), "n_units=1.5"),
    (dict(mcf_width=0), "mcf_width=0"),
    (dict(learn_top="yes"), "learn_top='yes'"),
])
def test_bad_config_names_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_bad_inputs_are_named():
    model = MaCow(tiny(n_levels=2, image_size=8, depth=2))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 8, 8\)"):
        model.encode(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):        # checked where data enters the objective
        nll_bits_per_dim(model, torch.tensor([0.0, 255.0]).repeat(32).view(1, 1, 8, 8))
    with pytest.raises(ValueError, match="non-finite"):
        model.log_prob(torch.full((1, 1, 8, 8), float("inf")))
    with pytest.raises(ValueError, match="no class-conditional prior"):
        model.log_prob(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]))
    zs, _ = model.encode(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="needs 2 latents"):
        model.decode(zs[:1])
    with pytest.raises(ValueError, match="latent of shape"):
        model.decode([zs[0][:, :1], zs[1]])
    with pytest.raises(ValueError, match="temperature=-1"):
        model.sample(2, temperature=-1)
    with pytest.raises(ValueError, match="n=0"):
        model.sample(0)
