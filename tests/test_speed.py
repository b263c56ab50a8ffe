"""What the speed work must not change, and what the benchmarks rest on (tracker issue 5).

- ``bench/reference.py`` computes the same log p(x), latents and samples as glowlib, so a speed ratio compares
  implementations of one model;
- invertible backprop gives plain autograd's gradients (every parameter and the input) and stores no more as K
  grows; ActNorm's data-dependent init still works with it;
- the fused layers, channels-last and the eval-mode caches compute the same function, and the caches follow
  weight changes;
- the benchmark scripts run and print their JSON (their figures are not checked: timings belong in bench/).
"""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench.reference import load_from_glowlib  # noqa: E402
from flowcheck import perturb  # noqa: E402
from glowlib import Glow, GlowConfig, RealNVP, revgrad  # noqa: E402
from glowlib.config import RunConfig  # noqa: E402
from glowlib.flows import affine_coupling  # noqa: E402
from glowlib.objective import dequantize  # noqa: E402

PLAIN = dict(inv_backprop=False, fused=False, channels_last=False)


def small(**kw):
    base = dict(in_channels=3, image_size=16, n_levels=2, depth=3, width=32)
    base.update(kw)
    return GlowConfig(**base)


def images(cfg, batch=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, cfg.in_channels, cfg.image_size, cfg.image_size), generator=g) / 256 - 0.5
    return dequantize(x.to(dtype), 8, g)


def trained_looking(model_cls, cfg, dtype=torch.float32, seed=0):
    """A model with ActNorm initialised on 32 images and every weight moved off its initial value."""
    torch.manual_seed(seed)
    model = model_cls(cfg).to(dtype)
    model.initialize(images(cfg, 32, seed=1, dtype=dtype))
    perturb(model, seed=seed)
    return model


def twin(model, **changes):
    """The same weights in a model built with other (execution) options."""
    other = type(model)(model.config.replace(**changes)).to(next(model.parameters()).dtype)
    other.load_state_dict(model.state_dict())
    return other.train(model.training)


# ---------------------------------------------------------------------------------------------------- reference
@pytest.mark.parametrize("kw", [{}, dict(coupling="additive"), dict(lu=False), dict(in_channels=1, n_levels=3)])
def test_reference_computes_our_log_prob(kw):
    cfg = small(**kw)
    model = trained_looking(Glow, cfg)
    ref = load_from_glowlib(model)
    x = images(cfg)
    for mode in ("train", "eval"):
        model.train(mode == "train")
        ref.train(mode == "train")
        ours, theirs = model.log_prob(x), ref.log_prob(x)
        assert ((ours - theirs).abs() / theirs.abs()).max() <= 1e-4, (ours, theirs)
        assert (ours - theirs).abs().max() / cfg.n_dims <= 1e-4          # nats per dimension
    for z_ours, z_ref in zip(model.encode(x)[0], ref.encode(x)):
        assert torch.allclose(z_ours, z_ref, atol=1e-4)
    # at T = 0 both decode the prior means: the same images, whatever the noise
    assert torch.allclose(model.sample(3, 0.0), ref.sample(3, 0.0), atol=1e-4)


def test_reference_trains_like_ours_in_float64():
    """Same loss, same gradients: one Adamax step from the same weights leads to the same loss."""
    cfg = small()
    model = twin(trained_looking(Glow, cfg, torch.float64), **PLAIN)
    ref = load_from_glowlib(model)
    x = images(cfg, dtype=torch.float64)
    losses = []
    for net in (model, ref):
        net.train()
        opt = torch.optim.Adamax(net.parameters(), lr=1e-3)
        loss = -net.log_prob(x).mean()
        loss.backward()
        opt.step()
        losses.append((loss.item(), -net.log_prob(x).mean().item()))
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)
    assert losses[0][1] < losses[0][0]


# ---------------------------------------------------------------------------------------------------- inv backprop
def grads(model, x, y=None):
    """Gradients of a weighted sum of log p(x) with respect to x and every parameter (None: unused)."""
    x = x.clone().requires_grad_()
    weights = torch.linspace(0.5, 1.5, x.shape[0], dtype=x.dtype)
    (model.log_prob(x, y) * weights).sum().backward()
    return [x.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("model_cls, kw", [
    (Glow, {}), (Glow, dict(coupling="additive")), (Glow, dict(lu=False)), (Glow, dict(permutation="shuffle")),
    (Glow, dict(actnorm=False)), (Glow, dict(learned_prior=False)), (Glow, dict(fused=False)),
    (Glow, dict(channels_last=False)), (Glow, dict(n_classes=3)), (RealNVP, {}), (RealNVP, dict(fused=False)),
])
def test_invertible_backprop_gives_autograd_gradients(model_cls, kw):
    cfg = small(in_channels=2, image_size=8, depth=4, width=16, inv_backprop=True, **kw)
    model = trained_looking(model_cls, cfg, torch.float64).train()
    plain = twin(model, inv_backprop=False)
    x = images(cfg, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 0]) if cfg.n_classes else None
    ours, expected = grads(model, x, y), grads(plain, x, y)
    assert [g is None for g in ours] == [e is None for e in expected]
    assert sum(g is not None for g in ours) >= len(ours) - 2         # only the classifier head is unused
    for g, e in zip(ours, expected):
        if e is not None:
            assert torch.allclose(g, e, rtol=1e-5, atol=1e-5 * e.abs().max().item()), (g - e).abs().max()
    assert model.levels[0].steps.reconstruction_error < 1e-10


def saved_bytes(model, x):
    """Bytes of the tensors autograd keeps for the backward pass of log p(x) (each storage once)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.log_prob(x).sum()
    loss.backward()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(seen.values()), weights


def test_invertible_backprop_keeps_no_more_as_depth_grows():
    stored = {}
    for inv in (True, False):
        for depth in (2, 8):
            cfg = small(in_channels=1, image_size=16, depth=depth, width=16, inv_backprop=inv)
            model = trained_looking(Glow, cfg).train()
            stored[inv, depth] = saved_bytes(model, images(cfg, 8))
    (inv2, w2), (inv8, w8) = stored[True, 2], stored[True, 8]
    assert inv8 - inv2 <= (w8 - w2)           # at most the extra weights themselves, no activations
    assert inv8 < 0.2 * stored[False, 8][0]
    assert stored[False, 8][0] > 3 * stored[False, 2][0]


def test_actnorm_initialises_on_the_first_batch_with_invertible_backprop():
    """Without ``initialize``, the first training pass initialises ActNorm (through plain autograd, which the
    invertible path cannot do: it would need the statistics before the pass); later passes are invertible."""
    cfg = small(depth=2, inv_backprop=True)
    torch.manual_seed(0)
    model = Glow(cfg).train()
    x = images(cfg, 16)
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3)
    for _ in range(2):
        loss = -model.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    first = model.levels[0].steps.flows[0].flows[0]
    assert bool(first.initialized)
    assert hasattr(model.levels[0].steps, "reconstruction_error")         # the second pass was invertible
    h, _ = model.levels[0].squeeze(x)
    with torch.no_grad():
        assert h.shape[1] == first.bias.shape[1]


def test_invertible_backprop_warns_when_the_rebuilt_input_drifts(monkeypatch):
    cfg = small(depth=2)
    model = trained_looking(Glow, cfg).train()
    monkeypatch.setattr(revgrad, "DRIFT_WARNING", 0.0)
    with pytest.warns(RuntimeWarning, match="inv_backprop=False"):
        model.log_prob(images(cfg)).sum().backward()


def test_affine_coupling_function_gradients():
    g = torch.Generator().manual_seed(0)
    xa, t, h = (torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(affine_coupling, (xa, t, h))


# ---------------------------------------------------------------------------------------------------- fused, caches
@pytest.mark.parametrize("model_cls", [Glow, RealNVP])
@pytest.mark.parametrize("kw", [{}, dict(coupling="additive"), dict(lu=False), dict(actnorm=False)])
def test_fused_layers_compute_the_plain_function(model_cls, kw):
    cfg = small(**kw)
    model = trained_looking(model_cls, cfg, torch.float64).eval()
    plain = twin(model, **PLAIN)
    x = images(cfg, dtype=torch.float64)
    assert torch.allclose(model.log_prob(x), plain.log_prob(x), rtol=1e-12)
    zs, _ = model.encode(x)
    assert torch.allclose(model.decode(zs), x, atol=1e-10)
    assert torch.allclose(plain.decode(zs), model.decode(zs), atol=1e-10)
    for g, e in zip(grads(model.train(), x), grads(plain.train(), x)):
        assert torch.allclose(g, e, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
@pytest.mark.parametrize("learned_prior", [True, False])
def test_sampling_draws_what_the_plain_model_draws(temperature, learned_prior):
    """Same generator, same images: skipping work at T = 0 or without a learned prior changes nothing."""
    cfg = small(learned_prior=learned_prior)
    model = trained_looking(Glow, cfg).eval()
    plain = twin(model, **PLAIN).eval()
    s = model.sample(3, temperature, torch.Generator().manual_seed(5))
    assert torch.allclose(s, plain.sample(3, temperature, torch.Generator().manual_seed(5)), atol=1e-5)
    assert not s.is_inference()                  # an ordinary tensor, usable by later autograd code
    assert model.log_prob(s.clamp(-0.5, 0.5).requires_grad_()).requires_grad


def test_eval_caches_follow_optimizer_steps_and_loading():
    """Cached fused weights and inverses are recomputed after in-place updates (an optimizer step, EMA) and
    after load_state_dict; a stale cache would break the round trip. (no_grad: the caches serve only then.)"""
    cfg = small()
    model = trained_looking(Glow, cfg).eval()
    x = images(cfg)
    with torch.no_grad():
        zs, _ = model.encode(x)
        assert torch.allclose(model.decode(zs), x, atol=1e-4)        # fills every cache
    opt = torch.optim.Adamax(model.parameters(), lr=2e-3)
    model.train()
    (-model.log_prob(x).mean()).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        zs2, _ = model.encode(x)
        assert not torch.allclose(zs2[0], zs[0], atol=1e-3)
        assert torch.allclose(model.decode(zs2), x, atol=1e-4)
        other = twin(trained_looking(Glow, cfg, seed=3)).eval()
        other.encode(x)                                                # fill its caches with other weights
        other.load_state_dict(model.state_dict())
        assert torch.allclose(other.encode(x)[0][0], zs2[0], atol=1e-6)
        assert torch.allclose(other.sample(2, 0.0), model.sample(2, 0.0), atol=1e-6)


# ---------------------------------------------------------------------------------------------------- config
def test_execution_fields_are_validated_and_left_out_of_the_cache_key():
    with pytest.raises(ValueError, match="inv_backprop='yes'"):
        GlowConfig(inv_backprop="yes")
    with pytest.raises(ValueError, match="channels_last=1"):
        GlowConfig(channels_last=1)
    base = RunConfig()
    assert RunConfig(model=GlowConfig(**PLAIN)).key() == base.key()
    assert RunConfig(model=GlowConfig(depth=16)).key() != base.key()
    assert base.key() == "9e438c941681"        # unchanged by adding the fields: cached models are still found


# ---------------------------------------------------------------------------------------------------- benchmarks
TINY = ["--channels", "1", "--size", "8", "--levels", "2", "--depth", "1", "--width", "8", "--batch", "2",
        "--repeats", "2", "--warmup", "0"]


@pytest.mark.parametrize("script, keys", [
    ("train_speed", {"ours", "reference", "ratio", "paired_ratio"}),
    ("sample_speed", {"ours", "ours_T0", "reference", "speedup"}),
    ("encode_speed", {"ours_encode", "reference_encode", "encode_speedup", "log_prob_speedup"}),
])
def test_benchmark_scripts_print_their_figures(script, keys, tmp_path, capsys):
    module = __import__(script)
    out = tmp_path / f"{script}.json"
    record = module.main(TINY + ["--out", str(out)])
    assert keys <= set(record["results"])
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out)
    assert record["env"]["threads"] >= 1 and record["env"]["device"] == "cpu"


def test_options_and_memory_benchmarks_run(tmp_path):
    options = __import__("options")
    record = options.main(TINY + ["--variants", "defaults=", "plain=fused=False", "--what", "both"])
    assert {"defaults", "plain", "reference"} <= set(record["results"]["train"])
    memory = __import__("memory")
    record = memory.main(TINY + ["--depths", "1", "2", "--variants", "ours_inv_backprop", "reference"])
    assert [(r["variant"], r["depth"]) for r in record["rows"]] == [
        ("ours_inv_backprop", 1), ("ours_inv_backprop", 2), ("reference", 1), ("reference", 2)]
    assert all(r["peak_mb"] > 0 and math.isfinite(r["saved_mb"]) for r in record["rows"])
    accuracy = __import__("grad_accuracy")
    record = accuracy.main(TINY + ["--depths", "1", "2", "--steps", "1"])
    assert [r["depth"] for r in record["rows"]] == [1, 2]
    assert all(r["relative_gradient_error"] < 1e-3 for r in record["rows"])
