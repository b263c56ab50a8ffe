"""GlowConfig(precision="bf16"): the coupling networks run in bf16, everything that decides exactness does not.

Why a bf16 model's round trip is not fp32-exact: a single coupling is (its network sees the same bf16 input xb in
both directions, since xb passes through unchanged), but in a whole model the xb that decode feeds a coupling is
rebuilt through the inverses of the layers after it and carries their fp32 round-off (~1e-7). Where that tiny
difference straddles a bf16 rounding boundary, the network's input flips by one bf16 step (2^-8 relative) and its
output jumps accordingly. Such flips are rare, but each costs a bf16-sized error, so the whole-model round trip is
bf16-accurate, not fp32-accurate. A float64 model with bf16 networks has no flips (round-off 1e-16) and is exact.
"""
import dataclasses
import hashlib
import itertools
import json
import math
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import glowlib.layers.coupling as coupling_mod
import glowlib.layers.precision as precision_mod
from glowlib import Glow, GlowConfig, RealNVP, dequantize
from glowlib.config import KEYED_FIELDS, DataConfig, RunConfig
from glowlib.layers import ActNorm, Coupling, InvConv1x1, InvConv1x1LU, MaskedCoupling
from flowcheck import check_exact, perturb, prepare

pytestmark = pytest.mark.filterwarnings("ignore:GlowConfig\\(precision='bf16'\\)")

# Whole-model round trip of a float32 model with bf16 networks, max |x - decode(encode(x))| for x in [-0.5, 0.5].
# Not a guarantee (see the module docstring): measured 1e-6 (no flip) to 2.6e-3 on the models below; 4e-3 is one
# quantisation bin of 8-bit data, so decoding still lands in (or next to) the right bin.
RT_TOL_BF16 = 4e-3
# bf16 vs fp32 log p for the same weights, in nats per dimension. Each network output carries a relative error of
# a few bf16 unit round-offs (2^-9 ≈ 2e-3 per rounding, three layers); log p depends on it with O(1) sensitivity per
# dimension (the log-det term Σ log sigmoid(h + 2) has slope < 1; the prior term moves with z by Δt). So a few 1e-3
# nats/dim are expected (measured 0.5e-3 to 2.4e-3 here); 1e-2 nats/dim (0.014 bits/dim) still fails on any real
# error such as a sigmoid or log-det computed on the wrong half or in bf16 without rounding back.
LOGP_TOL_NATS_PER_DIM = 1e-2


def tiny(**kw):
    base = dict(in_channels=3, image_size=8, n_levels=2, depth=3, width=16)
    base.update(kw)
    return GlowConfig(**base)


def data(cfg, batch=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, cfg.in_channels, cfg.image_size, cfg.image_size), generator=g) / 256 - 0.5
    return dequantize(x.to(dtype), 8, g)


def fp32_and_bf16(cfg, model_cls=Glow, seed=0, dtype=torch.float32):
    """The same initialised, perturbed weights in an fp32 model and a bf16 one, both in eval mode."""
    torch.manual_seed(seed)
    ref = model_cls(cfg.replace(precision="fp32")).to(dtype)
    ref.initialize(data(cfg, batch=32, seed=seed + 100, dtype=dtype))
    perturb(ref, seed=seed)
    low = model_cls(cfg.replace(precision="bf16")).to(dtype)
    low.load_state_dict(ref.state_dict())
    return ref.eval(), low.eval()


ROUND_TRIP_CONFIGS = [tiny(coupling=c, lu=lu, fused=f, inv_backprop=ib, channels_last=f)
                      for c, lu, f, ib in itertools.product(["affine", "additive"], [True, False], [True, False],
                                                           [True, False])]


def config_id(c):
    return f"{c.coupling}-lu{int(c.lu)}-fused{int(c.fused)}-invbp{int(c.inv_backprop)}"


# ------------------------------------------------------------------ config and cache key
def test_invalid_precision_names_the_value_and_the_allowed_ones():
    with pytest.raises(ValueError, match=r"precision='fp16' is not allowed; choose one of \('fp32', 'bf16'\)"):
        GlowConfig(precision="fp16")
    with pytest.raises(ValueError, match=r"precision='float32'.*\('fp32', 'bf16'\)"):
        precision_mod.network_dtype("float32")


def _key_without(cfg: RunConfig, dropped) -> str:
    """The cache key computed by hand from the config dict without the ``dropped`` fields."""
    d = dataclasses.asdict(cfg)
    for name in dropped:
        section, field = name.split(".")
        del d[section][field]
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


EXECUTION = ["model.inv_backprop", "model.fused", "model.channels_last"]


# keys that RunConfig.key() gave before the precision, y_weight, dequantization and data order fields existed: the
# trained models cached under them must still be found (with the splits in the files' order, as they were trained)
@pytest.mark.parametrize("model, key_before", [
    (GlowConfig(), "9e438c941681"),
    (GlowConfig(depth=4, width=16, coupling="additive", fused=False), "21f49376df84")])
def test_fp32_keeps_the_cache_keys_made_before_the_precision_field(model, key_before):
    cfg = RunConfig(model=model, data=DataConfig(order="file"))
    assert cfg.key() == key_before
    # every field added after the keys were defined, at its default or legacy value
    later = [f"{section}.{f.name}" for section in ("data", "train")
             for f in dataclasses.fields(getattr(cfg, section)) if f.name not in KEYED_FIELDS[section]]
    assert cfg.key() == _key_without(cfg, EXECUTION + ["model.precision"] + later)
    bf16 = RunConfig(model=model.replace(precision="bf16"), data=DataConfig(order="file"))
    assert bf16.key() != key_before                       # bf16 changes the numbers: its own trained models
    assert bf16.key() == _key_without(bf16, EXECUTION + later)
    weighted = cfg.override(["train.y_weight=0.01"])
    assert weighted.key() not in (key_before, bf16.key())


def test_precision_survives_dict_round_trip_and_override():
    cfg = RunConfig().override(["model.precision=bf16"])
    assert cfg.model.precision == "bf16"
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    old_dict = RunConfig().to_dict()
    del old_dict["model"]["precision"]                    # a provenance file written before the field existed
    assert RunConfig.from_dict(old_dict).model.precision == "fp32"


# ------------------------------------------------------------------ hardware
def test_bf16_support_reports_a_reason_and_warns_once():
    fast, reason = precision_mod.bf16_support("cpu")
    assert isinstance(fast, bool) and isinstance(reason, str) and reason
    precision_mod._CHECKED_DEVICES.discard("cpu")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        coupling = Coupling(4, 8, precision="bf16")
        coupling(torch.randn(2, 4, 4, 4))
        coupling(torch.randn(2, 4, 4, 4))
    ours = [w for w in seen if "precision='bf16'" in str(w.message)]
    assert len(ours) == (0 if fast else 1)
    if not fast:
        assert "AMX" in str(ours[0].message) and "correct" in str(ours[0].message)


def test_bf16_support_follows_the_cpu_flags(monkeypatch):
    """AMX or AVX512-BF16 is a hardware bf16 path (oneDNN's bf16 dot products); AVX2 alone is emulation."""
    for caps, fast, word in (({"amx_bf16": True, "avx512_bf16": True}, True, "AMX"),
                             ({"amx_bf16": False, "avx512_bf16": True}, True, "AVX512-BF16"),
                             ({"amx_bf16": False, "avx512_bf16": False}, False, "emulated")):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda caps=caps: caps, raising=False)
        got_fast, reason = precision_mod.bf16_support("cpu")
        assert got_fast is fast and word in reason, (caps, reason)


# ------------------------------------------------------------------ single layers: exact as in fp32
LAYERS = {
    "affine": lambda: Coupling(4, 8, "affine", precision="bf16"),
    "additive": lambda: Coupling(4, 8, "additive", precision="bf16"),
    "affine-unfused": lambda: Coupling(4, 8, "affine", fused=False, precision="bf16"),
    "affine-nhwc": lambda: Coupling(4, 8, "affine", channels_last=True, precision="bf16"),
    "checkerboard": lambda: MaskedCoupling(4, 4, 8, "checkerboard", 0, precision="bf16"),
    "channel-unfused": lambda: MaskedCoupling(4, 4, 8, "channel", 1, fused=False, precision="bf16"),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_bf16_coupling_layer_is_exact(name):
    """The network's input passes through unchanged, so reverse sees the same bf16 input and recomputes the same
    h: the layer is exactly invertible and its log-det is the brute-force one, as in fp32 (float64 check)."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    layer = prepare(LAYERS[name](), x)
    check_exact(layer, layer.reverse, x)


# ------------------------------------------------------------------ whole models
@pytest.mark.parametrize("cfg", ROUND_TRIP_CONFIGS, ids=config_id)
def test_bf16_model_round_trip(cfg):
    _, model = fp32_and_bf16(cfg)
    x = data(cfg)
    with torch.no_grad():
        zs, _ = model.encode(x)
        err = (model.decode(zs) - x).abs().max().item()
    assert err <= RT_TOL_BF16, f"bf16 round trip error {err:.3g}"


@pytest.mark.parametrize("model_cls", [Glow, RealNVP])
def test_float64_model_with_bf16_networks_is_exact(model_cls):
    """With float64 round-off no bf16 rounding of a network input flips between encode and decode, so the round
    trip is exact again: the bf16 error of a float32 model comes from flips, not from the couplings' arithmetic.
    (The log-det is checked per layer above: a whole model's brute-force Jacobian is not, since its columns are
    backpropagated through bf16 convs, each rounded differently, which makes slogdet of the product inexact.)"""
    cfg = tiny(n_levels=2, depth=2)
    _, model = fp32_and_bf16(cfg, model_cls, dtype=torch.float64)
    x = data(cfg, dtype=torch.float64)
    with torch.no_grad():
        zs, logdet = model.encode(x)
        assert logdet.dtype == torch.float64 and all(z.dtype == torch.float64 for z in zs)
        assert (model.decode(zs) - x).abs().max().item() <= 1e-12


@pytest.mark.parametrize("model_cls", [Glow, RealNVP])
@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_bf16_log_prob_is_close_to_fp32(model_cls, coupling):
    if model_cls is RealNVP and coupling == "additive":
        pytest.skip("RealNVP's couplings are always affine")
    cfg = tiny(coupling=coupling)
    ref, low = fp32_and_bf16(cfg, model_cls)
    x = data(cfg)
    with torch.no_grad():
        diff = ((low.log_prob(x) - ref.log_prob(x)).abs() / cfg.n_dims).max().item()
    assert 0 < diff <= LOGP_TOL_NATS_PER_DIM, f"|Δ log p| = {diff:.3g} nats/dim"


@pytest.mark.parametrize("fused", [True, False])
def test_inv_backprop_gradients_match_plain_autograd_in_bf16(fused):
    """inv_backprop recomputes each coupling's network from the rebuilt input, in bf16 like the forward pass."""
    cfg = tiny(fused=fused, channels_last=fused, depth=2)
    x = data(cfg, batch=8)
    grads = []
    for inv_backprop in (False, True):
        _, model = fp32_and_bf16(cfg.replace(inv_backprop=inv_backprop))
        model.train()
        model.log_prob(x).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        if inv_backprop:
            assert all(float(level.steps.reconstruction_error) < 1e-4 for level in model.levels)
    rel = ((grads[0] - grads[1]).norm() / grads[0].norm()).item()
    assert rel < 1e-2, f"relative gradient difference {rel:.3g}"


def test_inv_backprop_in_bf16_reuses_the_forward_network_inputs(monkeypatch):
    """Invertible backprop rebuilds each coupling's input with fp32 round-off; fed to a bf16 network, a rebuilt
    value near a bf16 rounding boundary would round the other way. The forward pass files the bf16 inputs and
    the backward pass reuses them (kept_network_input), so rebuilding and gradients are as accurate as in
    fp32; without that (patched out below) the same model drifts and its gradients are several times further off."""
    cfg = tiny(image_size=16, depth=8, width=64)
    x = data(cfg, batch=16)

    def gradients(precision, inv_backprop):
        ref, low = fp32_and_bf16(cfg.replace(inv_backprop=inv_backprop))
        model = (low if precision == "bf16" else ref).train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # the drift warning of the run without keeping
            model.log_prob(x).mean().backward()
        drift = max(float(level.steps.reconstruction_error) for level in model.levels) if inv_backprop else None
        return torch.cat([p.grad.flatten() for p in model.parameters()]), drift

    def error(precision):
        (plain, _), (inv, drift) = gradients(precision, False), gradients(precision, True)
        return ((inv - plain).norm() / plain.norm()).item(), drift

    fp32_err, fp32_drift = error("fp32")
    kept_err, kept_drift = error("bf16")
    assert kept_err <= 2 * fp32_err and kept_drift <= 2 * fp32_drift, (kept_err, fp32_err, kept_drift, fp32_drift)
    monkeypatch.setattr(coupling_mod, "kept_network_input", lambda module, x, dtype, memory_format=None:
                        precision_mod.network_input(x, dtype, memory_format))
    lost_err, lost_drift = error("bf16")
    # The signature of the fault is the drift: flipped bf16 roundings put the rebuilt inputs far further off than
    # round-off does (56x fp32's on an AVX-512 Xeon without a bf16 path). The gradient error grows by a factor that
    # depends on the CPU's bf16 kernels (4.9x fp32's on an AVX2 machine with bf16 emulated, 5.4x on that Xeon), so
    # it is held to a 2x margin that both clear with room.
    reference_err, reference_drift = max(fp32_err, kept_err), max(fp32_drift, kept_drift)
    assert lost_drift > 10 * reference_drift and lost_err > 2 * reference_err, \
        (lost_err, fp32_err, kept_err, lost_drift, fp32_drift, kept_drift)


def test_realnvp_inv_backprop_in_bf16_reuses_the_forward_network_inputs(monkeypatch):
    """The same for RealNVP's masked couplings: NN sees b⊙x, rebuilt from the later steps' inverses. Without the
    filed inputs the rebuilt level inputs of this model drift by more than their own scale."""
    cfg = tiny(image_size=16, depth=8, width=64)
    x = data(cfg, batch=16)

    def error(precision):
        grads = []
        for inv_backprop in (False, True):
            ref, low = fp32_and_bf16(cfg.replace(inv_backprop=inv_backprop), model_cls=RealNVP)
            model = (low if precision == "bf16" else ref).train()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.log_prob(x).mean().backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        drift = max(float(level.steps.reconstruction_error) for level in model.levels)
        return ((grads[1] - grads[0]).norm() / grads[0].norm()).item(), drift

    _, fp32_drift = error("fp32")
    kept_err, kept_drift = error("bf16")
    monkeypatch.setattr(coupling_mod, "kept_network_input", lambda module, x, dtype, memory_format=None:
                        precision_mod.network_input(x, dtype, memory_format))
    lost_err, lost_drift = error("bf16")
    assert kept_drift <= 2 * fp32_drift < lost_drift / 10, (kept_drift, fp32_drift, lost_drift)
    assert kept_err < lost_err / 2, (kept_err, lost_err)


# ------------------------------------------------------------------ what runs in bf16
class OpDtypes(TorchDispatchMode):
    """Records (op name, dtypes of the tensor inputs, dtypes of the tensor outputs) of every aten op."""

    def __init__(self):
        super().__init__()
        self.ops, self.conv_weights = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        self.ops.append((func.overloadpacket.__name__, [a.dtype for a in tensors],
                         [o.dtype for o in outs if isinstance(o, torch.Tensor)]))
        if func.overloadpacket.__name__ == "convolution":
            self.conv_weights.append(tuple(tensors[1].shape))
        return out


# bf16 appears only in the networks: their convs and ReLUs (forward and backward) and the casts and copies around
# them; "mul" is the unfused ActNorm / zero-conv scale, which casts a bf16 conv output up to fp32
BF16_OPS = {"convolution", "convolution_backward", "relu", "relu_", "threshold_backward", "_to_copy", "clone",
            "detach", "permute", "mul", "view", "_unsafe_view", "as_strided", "copy_", "empty_like", "t", "slice",
            "expand", "contiguous"}


@pytest.mark.parametrize("model_cls", [Glow, RealNVP])
@pytest.mark.parametrize("fused", [True, False])
def test_only_the_coupling_networks_run_in_bf16(model_cls, fused):
    """Forward, reverse and inv_backprop's recomputation: every network conv takes bf16, the split prior's conv,
    the 1x1 convs, ActNorms, sigmoids and log-dets stay fp32."""
    cfg = tiny(fused=fused, channels_last=fused, depth=2, inv_backprop=True)
    _, model = fp32_and_bf16(cfg, model_cls)
    model.train()
    x = data(cfg)
    n_net_convs = 3 * sum(isinstance(m, (Coupling, MaskedCoupling)) for m in model.modules())
    with OpDtypes() as rec:
        log_p = model.log_prob(x)
        log_p.sum().backward()
        with torch.no_grad():
            model.decode(model.encode(x)[0])
    assert log_p.dtype == torch.float32
    convs = [(i, o, w) for (name, i, o), w in zip([op for op in rec.ops if op[0] == "convolution"],
                                                   rec.conv_weights)]
    low = [c for c in convs if c[0][0] == torch.bfloat16]
    assert all(i == [torch.bfloat16] * len(i) and o == [torch.bfloat16] for i, o, _ in low)
    # inv_backprop: forward without a graph + recomputation with one; then encode and decode
    assert len(low) == 4 * n_net_convs
    # the rest: the split priors' convs and (unfused Glow) the 1x1 convs, all fp32
    prior_shapes = {tuple(level.prior.conv.weight.shape) for level in model.levels
                    if level.prior is not None}
    rest = [c for c in convs if c[0][0] != torch.bfloat16]
    assert sum(w in prior_shapes for _, _, w in rest) == cfg.n_levels - 1          # in log_prob only
    assert all(i[0] == torch.float32 and (w in prior_shapes or w[0] == w[1] and w[2:] == (1, 1))
               for i, _, w in rest)
    stray = {name for name, i, o in rec.ops if torch.bfloat16 in i + o and name not in BF16_OPS}
    assert not stray, f"ops outside the coupling networks ran in bf16: {stray}"
    for name, i, o in rec.ops:
        if name in ("sigmoid", "log_sigmoid_forward", "bmm", "baddbmm", "mm", "exp", "linalg_lu_factor_ex",
                    "linalg_inv_ex", "sum", "tanh", "div", "sub", "add"):
            assert torch.bfloat16 not in i + o, f"{name} ran in bf16"


def test_unfused_layers_see_fp32():
    """Module hooks on the unfused path: ActNorm and the 1x1 conv get and give fp32, log-dets included; the
    coupling networks' first layer gets bf16."""
    cfg = tiny(fused=False, depth=2, lu=False)
    _, model = fp32_and_bf16(cfg)
    seen = {}

    def hook(module, inputs, outputs):
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        seen.setdefault(type(module).__name__, set()).update(t.dtype for t in (*inputs, *outs))

    for m in model.modules():
        if isinstance(m, (ActNorm, InvConv1x1, InvConv1x1LU, Coupling)):
            m.register_forward_hook(hook)
        if isinstance(m, (Coupling, MaskedCoupling)):
            m.net[0].register_forward_hook(hook)
    with torch.no_grad():
        model.log_prob(data(cfg))
    assert seen["ActNorm"] == {torch.float32}                # flow ActNorms (the networks' own are inside)
    assert seen["InvConv1x1"] == {torch.float32}
    assert seen["Coupling"] == {torch.float32}
    assert seen["ConvActNorm"] == {torch.bfloat16}


# ------------------------------------------------------------------ MaCow
def tiny_macow(**kw):
    from glowlib import MaCowConfig
    base = dict(in_channels=3, image_size=8, n_levels=2, depth=2, width=16, n_units=1)
    base.update(kw)
    return MaCowConfig(**base)


def test_macow_bf16_runs_its_networks_in_bf16_and_stays_close_to_fp32():
    """MaCowConfig(precision="bf16"): the masked convolutions' and the couplings' networks take bf16 (every conv
    with a bf16 input is one of them), the log-dets, priors and log p stay fp32; log p is within the Glow models'
    tolerance of the fp32 model with the same weights, and the round trip within RT_TOL_BF16."""
    from glowlib import MaCow
    from glowlib.layers import MaskedConvFlow
    cfg = tiny_macow()
    ref, low = fp32_and_bf16(cfg, MaCow)
    x = data(cfg)
    with OpDtypes() as rec, torch.no_grad():
        log_p = low.log_prob(x)
    n_nets = sum(isinstance(m, MaskedConvFlow) for m in low.modules()) * 2 + \
        sum(isinstance(m, Coupling) for m in low.modules()) * 3
    convs = [op for op in rec.ops if op[0] == "convolution"]
    assert log_p.dtype == torch.float32 and sum(op[1][0] == torch.bfloat16 for op in convs) == n_nets
    with torch.no_grad():
        diff = ((log_p - ref.log_prob(x)).abs() / cfg.n_dims).max().item()
        err = (low.decode(low.encode(x)[0]) - x).abs().max().item()
    assert 0 < diff <= LOGP_TOL_NATS_PER_DIM, f"|Δ log p| = {diff:.3g} nats/dim"
    assert err <= RT_TOL_BF16, f"bf16 round trip error {err:.3g}"
    with pytest.raises(ValueError, match="precision='fp16' is not allowed"):
        tiny_macow(precision="fp16")
