"""Where a training step's time goes: a ``torch.profiler`` profile of our model's training steps, in six groups.

    python bench/profile_ops.py --channels 3 --size 32 --levels 3 --depth 8 --width 512 --batch 16 --steps 3
    python bench/profile_ops.py ... --set fused=False inv_backprop=False      # the plain layers

Groups: ``coupling_convs`` (the convolutions of the coupling networks NN(), with the folding of their ActNorms and
zero-conv scale into the weights), ``conv1x1`` (the invertible 1x1 convolutions: LU recomposition, inverse, the
channel mix; with ``fused`` also the step's ActNorm, folded into the mix), ``actnorm`` (ActNorm layers run on their
own: with ``fused`` only before initialisation, so about zero here), ``elementwise`` (the affine coupling map and
every other pointwise or reduction op outside those layers: ReLU, sigmoid, exp, log-dets, priors' log-density, the
loss), ``optimizer`` (``Adamax.step`` and ``zero_grad``), ``other`` (copies, concatenation, views, the split
priors' convolutions, autograd's and Python's own time outside any op).

How ops are attributed (glowlib is not edited): for the profile, this script wraps methods of the model's layer
*instances* (``forward``, ``reverse``, ``conv_folded``, ``weight_logdet``, ``inverse_weight``, a flow step's
``_mix*``) and two module-level functions (``glowlib.models.multiscale.channel_mix``,
``glowlib.layers.coupling.affine_coupling``) in
``torch.profiler.record_function`` scopes named ``glow::<group>``, and restores them afterwards. Each profiler event's
*self* time goes to the innermost ``glow::`` scope that encloses it. An event of the backward pass is not inside
any forward scope; it is attributed through autograd's sequence number: the
``autograd::engine::evaluate_function: XBackward`` event carries the sequence number of the forward op that made
node X, and gets that op's scope. (Invertible backprop's own backward re-runs the layers, inside their scopes.)
Events left without a scope go to ``elementwise`` if the op is pointwise or a reduction, else to ``other``. Self
times partition the profiled time, so the groups sum to ``total_ms``. On CUDA the times are the kernels' device
times, attributed to the op that launched them. Profiler overhead inflates small ops; read shares, not absolute
milliseconds, and compare with ``train_throughput.py``'s ``seconds_per_step``. Prints JSON; asserts nothing.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

import glowlib.layers as layers
import glowlib.layers.coupling as coupling_mod
import glowlib.models.multiscale as model_mod
from common import build, config_record, emit, environment, glow_config, images, parser, setup
from glowlib.objective import bits_per_dim

GROUPS = ("coupling_convs", "conv1x1", "actnorm", "elementwise", "optimizer", "other")
SCOPE_PREFIX = "glow::"
EVALUATE = "autograd::engine::evaluate_function: "
STEP = "bench::training_step"                 # its own self time (Python between ops) goes to "other"
# aten ops (without "aten::", trailing "_" and "_backward") that are pointwise or reductions
POINTWISE = {
    "add", "sub", "rsub", "mul", "div", "neg", "exp", "exp2", "expm1", "log", "log1p", "log2", "sigmoid", "tanh",
    "relu", "threshold", "softplus", "pow", "sqrt", "rsqrt", "reciprocal", "square", "abs", "sign", "clamp",
    "clamp_min", "clamp_max", "where", "maximum", "minimum", "addcmul", "addcdiv", "lerp", "sum", "mean", "prod",
    "amax", "amin", "max", "min", "logsumexp", "norm", "linalg_vector_norm", "fill", "zero", "ne", "eq", "lt", "gt",
    "le", "ge", "logical_not", "isfinite",
}


def _op_group(name: str) -> str:
    """The group of an event outside every scope, from its op name."""
    if name.startswith("aten::"):
        op = name[len("aten::"):]
        if op.endswith("_backward"):
            op = op[: -len("_backward")]
        op = op.rstrip("_")
        if op in POINTWISE or op.startswith("_foreach_"):
            return "elementwise"
    return "other"


def _scoped(fn, group: str):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with record_function(SCOPE_PREFIX + group):
            return fn(*args, **kwargs)
    return run


@contextlib.contextmanager
def scopes(model):
    """Wrap the model's layer methods (instances only) and glowlib's two fused functions in ``glow::`` scopes."""
    patched = []          # (object, attribute, had its own attribute, old value)

    def wrap(obj, attr, group):
        if not hasattr(obj, attr):
            return
        own = attr in vars(obj)
        old = getattr(obj, attr)
        patched.append((obj, attr, own, vars(obj).get(attr)))
        setattr(obj, attr, _scoped(old, group))

    couplings = (layers.Coupling, layers.MaskedCoupling)
    in_coupling = {id(m) for c in model.modules() if isinstance(c, couplings) for m in c.net.modules()}
    for m in model.modules():
        if isinstance(m, layers.ActNorm):
            for attr in ("forward", "reverse"):
                wrap(m, attr, "actnorm")
        elif isinstance(m, (layers.InvConv1x1, layers.InvConv1x1LU)):
            for attr in ("forward", "reverse", "weight_logdet", "inverse_weight"):
                wrap(m, attr, "conv1x1")
        elif isinstance(m, model_mod.FlowStep):
            for attr in ("_mix", "_mix_inverse", "_mix_forward"):
                wrap(m, attr, "conv1x1")
        elif id(m) in in_coupling and isinstance(m, (layers.ConvActNorm, layers.ZeroConv2d)):
            for attr in ("forward", "conv_folded"):
                wrap(m, attr, "coupling_convs")
    functions = [(model_mod, "channel_mix", "conv1x1"), (coupling_mod, "affine_coupling", "elementwise")]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in functions]
    try:
        for mod, name, group in functions:
            setattr(mod, name, _scoped(getattr(mod, name), group))
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        for obj, attr, own, old in reversed(patched):
            if own:
                setattr(obj, attr, old)
            else:
                delattr(obj, attr)


def attribute(events, use_device: bool = False) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Self time (microseconds) per group of a profiler ``EventList`` (see the module docstring), and per
    (group, event name)."""
    forward_of = {}                         # (thread, sequence_nr) -> the latest op that used that number
    for e in events:
        if e.sequence_nr < 0 or e.name.startswith(EVALUATE):
            continue
        if e.cpu_parent is not None and e.cpu_parent.name.startswith(EVALUATE):
            continue                        # the autograd node's own event, not a forward op
        key = (e.thread, e.sequence_nr)
        if key not in forward_of or e.time_range.start > forward_of[key].time_range.start:
            forward_of[key] = e
    memo = {}

    def scope(e, depth=0):
        if e.id in memo:
            return memo[e.id]
        group, node = None, e
        while node is not None and depth < 64:
            if node.name.startswith(SCOPE_PREFIX):
                group = node.name[len(SCOPE_PREFIX):]
                break
            if node.name.startswith(EVALUATE) and node.sequence_nr >= 0:
                origin = forward_of.get((node.fwd_thread, node.sequence_nr))
                if origin is not None and origin is not e:
                    group = scope(origin, depth + 1)
                break
            node = node.cpu_parent
        memo[e.id] = group
        return group

    totals, by_op = dict.fromkeys(GROUPS, 0.0), {}
    for e in events:
        if use_device and e.device_type != DeviceType.CPU:
            continue                        # kernels count through the CPU op that launched them
        t = e.self_device_time_total if use_device else e.self_cpu_time_total
        if t:
            group = scope(e) or _op_group(e.name)
            totals[group] += t
            by_op[group, e.name] = by_op.get((group, e.name), 0.0) + t
    return totals, by_op


def profile_steps(model, x, n_dims: int, steps: int, warmup: int, device) -> tuple[dict, dict, float]:
    """(self µs per group, self µs per (group, event name), µs per step of wall time) over ``steps`` profiled
    training steps, taken as ``common.train_step_fn`` takes them (bits/dim, backward, Adamax), the optimizer
    inside ``glow::optimizer``."""
    optimizer = torch.optim.Adamax(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss = bits_per_dim(model(x), n_dims, 8).mean()
        with record_function(SCOPE_PREFIX + "optimizer"):
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with record_function(SCOPE_PREFIX + "optimizer"):
            optimizer.step()
    for _ in range(warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with scopes(model), profile(activities=activities) as prof:
        for _ in range(steps):
            with record_function(STEP):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
    events = prof.events()
    totals, by_op = attribute(events, use_device=device.type == "cuda")
    wall = sum(e.cpu_time_total for e in events if e.name == STEP) / steps
    return totals, by_op, wall


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0], repeats=1)
    p.add_argument("--steps", type=int, default=3, help="training steps profiled (after --warmup steps)")
    p.add_argument("--top", type=int, default=5, help="the most expensive events listed per group")
    args = p.parse_args(argv)
    device = setup(args)
    cfg = glow_config(args)
    x = images(args, device=device)
    model, _ = build(cfg, x, reference=False)
    totals, by_op, wall_us = profile_steps(model, x, cfg.n_dims, args.steps, args.warmup, device)
    total = sum(totals.values())
    groups = {}
    for g in GROUPS:
        top = sorted(((t, name) for (group, name), t in by_op.items() if group == g), reverse=True)[:args.top]
        groups[g] = {"ms_per_step": totals[g] / args.steps / 1e3, "share": totals[g] / total if total else 0.0,
                     "top_ops_ms": {name: t / args.steps / 1e3 for t, name in top}}
    results = {"groups": groups, "total_ms": total / args.steps / 1e3, "step_ms": wall_us / 1e3,
               "time": "cuda kernels (self device time)" if device.type == "cuda" else "cpu (self time)",
               "steps": args.steps}
    record = {"benchmark": "profile_ops", "config": config_record(args, cfg), "results": results,
              "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
