"""What the speed work must not change, and what the benchmarks rest on.

- ``bench/reference.py`` computes the same log p(x), latents and samples as glowlib, so a speed ratio compares
  implementations of one model;
- invertible backprop gives plain autograd's gradients (every parameter and the input) and stores no more as K
  grows; ActNorm's data-dependent init still works with it;
- the fused layers, channels-last and the eval-mode caches compute the same function, and the caches follow
  weight changes;
- the benchmark scripts run and print their JSON (their figures are not checked: timings belong in bench/); the
  FLOPs they count are FlopCounterMode's, the profile's groups add up, and the Cost page's tables
  (glowlib.analysis.bench_records) come out tidy from such records, or say what is missing.
"""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
for p in (str(ROOT), str(ROOT / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench.reference import load_from_glowlib  # noqa: E402
from flowcheck import perturb  # noqa: E402
from glowlib import Glow, GlowConfig, RealNVP  # noqa: E402
from glowlib.config import DataConfig, RunConfig  # noqa: E402
from glowlib.layers import affine_coupling, revgrad  # noqa: E402
from glowlib.objective import dequantize  # noqa: E402
from glowlib.results import check_tidy  # noqa: E402

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
    # unchanged by adding the fields: cached models are still found (with the splits they were trained on)
    assert RunConfig(data=DataConfig(order="file")).key() == "9e438c941681"


# ---------------------------------------------------------------------------------------------------- benchmarks
TINY = ["--channels", "1", "--size", "8", "--levels", "2", "--depth", "1", "--width", "8", "--batch", "2",
        "--repeats", "2", "--warmup", "0"]


@pytest.mark.parametrize("script, keys", [
    ("train_throughput", {"ours", "reference", "ratio", "paired_ratio", "model_flops_per_image", "peak_gflops"}),
    ("sample_speed", {"ours", "ours_T0", "reference", "speedup"}),
    ("encode_speed", {"ours_encode", "reference_encode", "encode_speedup", "log_prob_speedup"}),
])
def test_benchmark_scripts_print_their_figures(script, keys, tmp_path, capsys):
    module = __import__(script)
    out = tmp_path / f"{script}.json"
    extra = ["--no-peak"] if script == "train_throughput" else []
    record = module.main(TINY + extra + ["--out", str(out)])
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


def test_round_trip_benchmark_float64_flow_makes_bf16_exact():
    """The bf16 networks in a float64 flow invert to float64 round-off (the flips of a float32 flow are gone),
    and every mode computes the same log p within bf16's error."""
    trip = __import__("round_trip")
    record = trip.main(["--channels", "2", "--size", "8", "--levels", "2", "--depth", "3", "--width", "16",
                        "--batch", "8", "--threads", "1"])
    res = record["results"]
    assert set(res) == {"fp32", "bf16", "bf16_flow64", "fp64"}
    assert res["fp64"]["max_error"] < 1e-12 and res["bf16_flow64"]["max_error"] < 1e-12
    assert res["fp32"]["max_error"] < 1e-5
    assert all(r["nonfinite_pixels"] == 0 and r["fraction_images_bin_changed"] == 0 for r in res.values())
    assert abs(res["fp64"]["bits_per_dim"] - res["fp32"]["bits_per_dim"]) < 1e-5
    assert abs(res["bf16_flow64"]["bits_per_dim"] - res["fp32"]["bits_per_dim"]) < 0.02


PEAK_TINY = ["--matmul-size", "32", "--conv-shape", "1", "4", "4", "4", "--repeats", "1", "--warmup", "0",
             "--threads", "1"]


def test_peak_prints_positive_gflops_for_each_entry(tmp_path):
    peak = __import__("peak")
    record = peak.main(PEAK_TINY + ["--out", str(tmp_path / "peak.json")])
    entries = record["results"]["entries"]
    assert {(e["op"], e["precision"], e["layout"]) for e in entries} == {
        (op, precision, layout) for precision in ("float32", "bfloat16")
        for op, layout in (("matmul", None), ("conv3x3", "nchw"), ("conv3x3", "channels_last"))}
    assert all(e["gflops"] > 0 and math.isfinite(e["gflops"]) and e["flop"] > 0 for e in entries)
    assert record["results"]["peak_gflops"]["float32"] == max(e["gflops"] for e in entries
                                                              if e["precision"] == "float32")
    assert record["env"]["threads"] == 1
    with pytest.raises(ValueError, match="tf32"):
        peak.measure_peak("cpu", ["tf32"], 32, (1, 4, 4, 4), 1, 0)


def test_train_throughput_counts_the_flops_of_forward_and_backward(tmp_path):
    """The script's count equals FlopCounterMode around one forward+backward of the same model, done here."""
    from torch.utils.flop_counter import FlopCounterMode
    from common import build, glow_config, images as bench_images, parser
    from glowlib.objective import bits_per_dim
    throughput, peak = __import__("train_throughput"), __import__("peak")
    peak_file = tmp_path / "peak.json"
    peak.main(PEAK_TINY + ["--out", str(peak_file)])
    record = throughput.main(TINY + ["--peak-json", str(peak_file)])
    args = parser("test").parse_args(TINY)
    cfg = glow_config(args)
    x = bench_images(args)
    for name, inv in (("ours", True), ("plain", False)):
        model, _ = build(cfg.replace(inv_backprop=inv), x, reference=False)
        with FlopCounterMode(display=False) as counter:
            bits_per_dim(model(x), cfg.n_dims, 8).mean().backward()
        expected = counter.get_total_flops() / args.batch
        assert expected > 0
        got = record["results"]["ours"]["flops_per_image"] if name == "ours" else \
            record["results"]["model_flops_per_image"]
        assert got == expected, name
    res = record["results"]
    assert res["reference"]["flops_per_image"] > 0
    assert res["peak_gflops"] == json.loads(peak_file.read_text())["results"]["peak_gflops"]["float32"]
    assert res["ours"]["gflops_per_s"] == pytest.approx(
        res["ours"]["flops_per_image"] * res["ours"]["images_per_s"] / 1e9)
    assert res["ours"]["fraction_of_peak"] == pytest.approx(res["ours"]["gflops_per_s"] / res["peak_gflops"])


def test_batch_sweep_counts_per_image_flops_and_divides_by_the_best_peak(tmp_path):
    """Every (variant, batch) is timed; FLOPs per image (counted once per variant) equal a count made here at
    another batch; the peak is the best entry over the swept conv shapes; a bad batch is refused."""
    from common import build, glow_config, images as bench_images, parser
    from train_throughput import training_flops
    sweep = __import__("batch_sweep")
    i = TINY.index("--batch")
    argv = TINY[:i] + TINY[i + 2:] + [
        "--batches", "3", "1", "--peak-repeats", "1", "--variants", "defaults=", "plain=inv_backprop=False",
        "--out", str(tmp_path / "sweep.json")]
    record = sweep.main(argv)
    assert json.loads((tmp_path / "sweep.json").read_text()) == json.loads(json.dumps(record))
    rows = {(r["variant"], r["batch"]): r for r in record["rows"]}
    assert set(rows) == {(v, b) for v in ("defaults", "plain") for b in (1, 3)}
    args = parser("test").parse_args(TINY)
    for batch in (1, 3):
        x = bench_images(args, n=batch)
        for variant, inv in (("defaults", True), ("plain", False)):
            model, _ = build(glow_config(args, inv_backprop=inv), x, reference=False)
            assert rows[(variant, batch)]["flops_per_image"] == training_flops(model, x, model.config.n_dims) / batch
        assert rows[("defaults", batch)]["model_flops_per_image"] == rows[("plain", batch)]["flops_per_image"]
        assert rows[("defaults", batch)]["flops_per_image"] > rows[("plain", batch)]["flops_per_image"]  # recompute
    assert rows[("plain", 1)]["flops_per_image"] > rows[("plain", 3)]["flops_per_image"]    # per-step work shared
    peak = record["peak"]
    assert peak["peak_gflops"]["float32"] == max(e["gflops"] for e in peak["entries"] if e["precision"] == "float32")
    assert {tuple(e["shape"]) for e in peak["entries"] if e["op"] == "conv3x3"} == {(1, 8, 4, 4), (3, 8, 4, 4)}
    for r in rows.values():
        assert r["model_fraction_of_peak"] == pytest.approx(
            r["model_flops_per_image"] * r["images_per_s"] / 1e9 / peak["peak_gflops"]["float32"])
    for variant, batch in record["best_batch"].items():
        assert rows[(variant, batch)]["images_per_s"] == max(rows[(variant, b)]["images_per_s"] for b in (1, 3))
    with pytest.raises(SystemExit, match="--batches"):
        sweep.main(argv[:-2] + ["--batches", "0", "2"])


def test_train_throughput_measures_the_peak_in_its_own_process():
    throughput = __import__("train_throughput")
    record = throughput.main(TINY + ["--no-reference", "--peak-matmul-size", "32", "--peak-conv-shape", "1", "4",
                                     "4", "4", "--peak-precisions", "float32", "--peak-repeats", "1"])
    assert record["peak"]["source"].startswith("measured in this process")
    assert record["results"]["ours"]["fraction_of_peak"] > 0


@pytest.mark.parametrize("sets", [[], ["--set", "fused=False", "inv_backprop=False"]])
def test_profile_groups_add_up_to_the_total(sets):
    profile_ops = __import__("profile_ops")
    record = profile_ops.main(TINY + ["--steps", "1", "--warmup", "1"] + sets)
    groups = record["results"]["groups"]
    assert set(groups) == set(profile_ops.GROUPS)
    assert sum(g["ms_per_step"] for g in groups.values()) == pytest.approx(record["results"]["total_ms"], rel=1e-9)
    assert sum(g["share"] for g in groups.values()) == pytest.approx(1.0, abs=1e-9)
    assert groups["coupling_convs"]["ms_per_step"] > 0 and groups["conv1x1"]["ms_per_step"] > 0
    assert groups["optimizer"]["ms_per_step"] > 0
    # the backward pass's convolutions are found in their forward op's scope, not left in "other"
    assert "aten::convolution_backward" in groups["coupling_convs"]["top_ops_ms"] or sets == []
    assert (groups["actnorm"]["ms_per_step"] > 0) == bool(sets)        # fused: ActNorm is folded away
    import glowlib.layers.coupling as coupling_mod
    import glowlib.models.multiscale as model_mod
    assert model_mod.channel_mix.__module__ == "glowlib.layers.permutations"        # the wrappers were removed
    assert coupling_mod.affine_coupling.__name__ == "affine_coupling"
    assert "run" not in repr(coupling_mod.affine_coupling)


# ---------------------------------------------------------------------------------------------------- Cost page
def _model(channels, size, depth=8, width=128, levels=3):
    return {"in_channels": channels, "image_size": size, "n_levels": levels, "depth": depth, "width": width}


def _env(**kw):
    return {"device": "cpu", "device_name": "Test CPU", "threads": 2, "git_sha": "abc", "time": "t", **kw}


def _write(folder, name, record):
    (folder / f"{name}.json").write_text(json.dumps(record))


def _train_record(channels, size, ours, ref, flops=True):
    res = {"ours": {"images_per_s": ours}, "reference": {"images_per_s": ref}, "ratio": ours / ref}
    record = {"benchmark": "train_throughput" if flops else "train_speed",
              "config": {"model": _model(channels, size), "batch": 4}, "results": res, "env": _env()}
    if flops:
        for name, speed in (("ours", ours), ("reference", ref)):
            res[name].update(flops_per_image=2e9, gflops_per_s=2 * speed, model_gflops_per_s=1.5 * speed,
                             fraction_of_peak=2 * speed / 100.0)
        res.update(model_flops_per_image=1.5e9, precision="float32", peak_gflops=100.0)
        record["peak"] = {"entries": [{"op": "matmul", "precision": "float32", "layout": None, "shape": [8, 8, 8],
                                       "gflops": 100.0, "gflops_best": 110.0}]}
    return record


def test_cost_tables_from_recorded_benchmarks(tmp_path):
    from glowlib.studies import cost
    _write(tmp_path, "train_cifar", _train_record(3, 32, ours=50.0, ref=25.0))
    _write(tmp_path, "train_small", _train_record(1, 32, ours=200.0, ref=100.0, flops=False))
    _write(tmp_path, "train_odd", _train_record(2, 16, ours=1.0, ref=1.0))
    _write(tmp_path, "sample_64", {"benchmark": "sample_speed", "temperature": 0.7,
                                   "config": {"model": _model(3, 64, levels=4), "batch": 8}, "env": _env(),
                                   "results": {"ours": {"ms_per_image": 30.0}, "ours_T0": {"ms_per_image": 29.0},
                                               "reference": {"ms_per_image": 70.0}, "speedup": 70 / 30}})
    _write(tmp_path, "memory_small", {"benchmark": "memory", "config": {"model": _model(1, 32), "batch": 4},
                                      "env": _env(), "rows": [
        {"variant": v, "depth": k, "peak_mb": 100.0 + k * (1 if v == "ours_inv_backprop" else 10), "step_mb": 1.0,
         "saved_mb": 0.5, "measure": "VmHWM"} for v in ("ours_inv_backprop", "reference") for k in (8, 32)]})
    _write(tmp_path, "peak", {"benchmark": "peak", "env": _env(), "results": {"entries": [
        {"op": "conv3x3", "precision": p, "layout": "nchw", "shape": [1, 4, 4, 4], "gflops": g, "gflops_best": g}
        for p, g in (("float32", 80.0), ("bfloat16", 8.0))]}})
    for name, tuned, speed in (("batch_sweep_cifar", False, 1.0), ("batch_sweep_cifar_tuned", True, 1.2)):
        _write(tmp_path, name, {
            "benchmark": "batch_sweep", "config": {"model": _model(3, 32), "batch": None, "batches": [8, 16]},
            "variants": {"defaults": {}, "bf16": {"precision": "bf16"}},
            "env": _env(allocator={"allocator": "tuned" if tuned else "system", "applied": tuned}),
            "rows": [{"variant": v, "batch": b, "precision": "bfloat16" if v == "bf16" else "float32",
                      "images_per_s": speed * b * (2 if v == "bf16" else 1), "flops_per_image": 2e9,
                      "model_flops_per_image": 1.5e9, "gflops_per_s": 1.0, "model_gflops_per_s": 1.0,
                      "peak_gflops": 100.0, "fraction_of_peak": 0.5, "model_fraction_of_peak": 0.4}
                     for v in ("defaults", "bf16") for b in (8, 16)]})
    _write(tmp_path, "compile_cifar", {"benchmark": "options", "config": {"model": _model(3, 32), "batch": 16},
                                       "env": _env(), "results": {"train": {
                                           "plain": {"images_per_s": 20.0},
                                           "compiled_plain": {"images_per_s": 19.0, "first_step_s": 100.0}}}})
    groups = {"coupling_convs": 60.0, "conv1x1": 10.0, "actnorm": 0.0, "elementwise": 20.0, "optimizer": 5.0,
              "other": 5.0}
    _write(tmp_path, "profile_cifar", {"benchmark": "profile_ops", "config": {"model": _model(3, 32), "batch": 16},
                                       "env": _env(), "results": {"groups": {
                                           g: {"ms_per_step": ms, "share": ms / 100.0} for g, ms in groups.items()},
                                           "total_ms": 100.0, "step_ms": 100.0}})
    result = cost.cost_tables(tmp_path)
    assert set(result.tables) == {"epoch_time", "sampling", "memory", "throughput", "peak", "batch_sweep", "compile",
                                  "profile"}
    for name, df in result.tables.items():
        check_tidy(df, cost.KEYS[name], name)

    epoch = result.tables["epoch_time"].set_index(["config", "implementation"])
    assert set(epoch.index) == {("cifar", "ours"), ("cifar", "reference"), ("small", "ours"), ("small", "reference")}
    assert epoch.loc[("cifar", "ours"), "epoch_images"] == 50_000
    assert epoch.loc[("cifar", "ours"), "seconds_per_epoch"] == pytest.approx(1000.0)      # 50,000 / 50 per s
    assert epoch.loc[("small", "reference"), "minutes_per_epoch"] == pytest.approx(10.0)   # 60,000 / 100 / 60
    assert any("train_odd" in n and "no epoch" in n for n in result.notes)

    sampling = result.tables["sampling"]
    assert list(sampling.implementation[sampling.source == "measured"]) == ["ours", "ours_T0", "reference"]
    paper = sampling[sampling.source == "published"].iloc[0]
    assert (paper.image_size, paper.ms_per_image, paper.device_name) == (256, 130.0, "NVIDIA GTX 1080 Ti")
    assert "Kingma & Dhariwal 2018" in paper.citation

    memory = result.tables["memory"]
    assert len(memory) == 4 and set(memory.depth) == {8, 32}
    throughput = result.tables["throughput"]
    assert list(throughput.config) == ["cifar", "cifar", "odd", "odd"]    # small was recorded without FLOPs
    assert any("train_small.json" in n and "before FLOPs" in n for n in result.notes)
    assert set(result.tables["peak"].source) == {"train_odd", "train_cifar", "peak"}
    assert list(throughput.precision) == ["fp32"] * 4 and list(throughput.peak_precision) == ["float32"] * 4
    sweep = result.tables["batch_sweep"]
    assert len(sweep) == 8 and set(sweep.allocator) == {"system", "tuned"}
    assert set(sweep[sweep.variant == "bf16"].precision) == {"bf16"} and set(sweep.inv_backprop) == {True}
    best = sweep.groupby(["precision", "allocator"]).images_per_s.max()
    assert best["bf16", "tuned"] == pytest.approx(38.4)                  # 1.2 · 16 · 2: bf16 at batch 16, tuned
    values = cost.page_values(result.tables)
    assert values["bf16_over_fp32_tuned"] == pytest.approx(2) and values["bf16_over_fp32_system"] == pytest.approx(2)
    assert values["compile_speedup"] == pytest.approx(0.95) and values["compile_first_step_s"] == 100.0
    profile = result.tables["profile"].set_index("group")
    assert profile.share.to_dict() == pytest.approx({g: ms / 100 for g, ms in groups.items()})
    assert list(profile.batch.unique()) == [16] and list(profile.precision.unique()) == ["fp32"]
    beside = cost.conv1x1_time_beside_paper(result.tables["profile"])
    assert beside.share.tolist()[0] == 0.1 and beside.extra.tolist()[-1] == 0.07      # ours, then the paper's row
    assert beside.source.tolist()[-1].startswith("paper: Kingma & Dhariwal 2018, Sec. 5.1")
    import matplotlib
    matplotlib.use("Agg")
    from legible import LEGIBLE_PX, drawn_px, legends_over_bars, overlapping
    for fig in (cost.plot_epoch_time(result.tables["epoch_time"]), cost.plot_sampling(sampling),
                cost.plot_memory(memory), cost.plot_roofline(throughput, result.tables["peak"]),
                cost.plot_batch_sweep(sweep), cost.plot_profile(result.tables["profile"])):
        assert fig is not None and fig.axes
        # the book's column shows the smallest text legibly; no legend hides a bar, no config's name another's
        assert drawn_px(fig) >= LEGIBLE_PX and not legends_over_bars(fig)
        assert not any(overlapping(ax.get_xticklabels()) or overlapping(ax.get_yticklabels()) for ax in fig.axes)


def test_cost_tables_say_what_is_missing(tmp_path):
    from glowlib.studies import cost
    result = cost.cost_tables(tmp_path / "nowhere")
    assert all(math.isnan(v) for v in cost.page_values(result.tables).values())
    assert set(result.tables) == {"sampling"}                             # only the published figure
    assert list(result.tables["sampling"].source) == ["published"]
    notes = " ".join(result.notes)
    for what in ("does not exist", "train_*.json", "sample_*.json", "memory_*.json", "peak.json",
                 "batch_sweep_*.json", "compile_*.json", "profile_*.json"):
        assert what in notes, what
    assert cost.plot_epoch_time(result.tables.get("epoch_time")) is None
    assert cost.plot_roofline(result.tables.get("throughput")) is None
    assert cost.plot_batch_sweep(result.tables.get("batch_sweep")) is None
    assert cost.plot_profile(result.tables.get("profile")) is None
    from glowlib.studies import check_parameters
    with pytest.raises(ValueError, match="profile='huge'"):
        check_parameters("cost", profile="huge", seed=0, out_dir="", bench_dir="results/bench")
    with pytest.raises(ValueError, match="bench_dir=''"):
        check_parameters("cost", profile="cpu", seed=0, out_dir="", bench_dir="")
