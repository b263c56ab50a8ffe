"""Each speed option of ``GlowConfig`` measured on its own: training images/s and sampling ms/image of our model
with one option changed at a time, against the reference, all in one process in alternating repeats.

    python bench/options.py --channels 1 --size 32 --depth 8 --width 128 --batch 32
    python bench/options.py ... --variants "all_on=" "plain=fused=False channels_last=False inv_backprop=False"

A variant is ``name=FIELD=VALUE FIELD=VALUE ...`` (the fields changed from the defaults; nothing after the first
``=``: the defaults). The default set starts from every option off and turns each on alone, then turns each off
alone from the defaults. ``--compile`` adds ``torch.compile`` of the default model (without invertible backprop,
whose autograd.Function dynamo cannot trace), compile time reported apart (``first_step_s``, from a cold inductor
cache). Prints JSON; asserts nothing.
"""
from __future__ import annotations

import ast
import os
import tempfile
import time

import torch

from common import (alternate, build, config_record, emit, environment, glow_config, images, paired_ratio, parser,
                    setup, stats, train_step_fn)

OFF = {"fused": False, "channels_last": False, "inv_backprop": False}
DEFAULT_VARIANTS = {
    "none": dict(OFF),
    "only_fused": {**OFF, "fused": True},
    "only_channels_last": {**OFF, "channels_last": True},
    "only_inv_backprop": {**OFF, "inv_backprop": True},
    "defaults": {},
    "defaults_without_fused": {"fused": False},
    "defaults_without_channels_last": {"channels_last": False},
    "defaults_without_inv_backprop": {"inv_backprop": False},
    "defaults_bf16": {"precision": "bf16"},
    "defaults_bf16_without_inv_backprop": {"precision": "bf16", "inv_backprop": False},
}


def parse_variants(items) -> dict[str, dict]:
    out = {}
    for item in items:
        name, _, rest = item.partition("=")
        fields = {}
        for assignment in rest.split():
            key, _, raw = assignment.partition("=")
            fields[key] = ast.literal_eval(raw)
        out[name] = fields
    return out


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="*", help="name=FIELD=VALUE ... (see the module docstring)")
    p.add_argument("--what", choices=("train", "sample", "both"), default="train")
    p.add_argument("--samples", type=int, default=None, help="images per sampling call (default: --batch)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--compile", action="store_true", help="also time torch.compile(model) (training)")
    args = p.parse_args(argv)
    device = setup(args)
    variants = parse_variants(args.variants) if args.variants else DEFAULT_VARIANTS
    x = images(args, device=device)
    base_cfg = glow_config(args)
    base, ref = build(base_cfg, x, reference=not args.no_reference)
    models = {}
    for name, fields in variants.items():
        model = type(base)(base_cfg.replace(**fields)).to(device)
        model.load_state_dict(base.state_dict())
        models[name] = model
    record = {"benchmark": "options", "config": config_record(args, base_cfg), "variants": variants,
              "results": {}, "env": environment(args)}

    if args.what in ("train", "both"):
        fns = {name: train_step_fn(m, x, base_cfg.n_dims) for name, m in models.items()}
        if ref is not None:
            fns["reference"] = train_step_fn(ref, x, base_cfg.n_dims)
        compile_s = None
        if args.compile:
            # a cold start, as a user's first run: inductor's on-disk caches in a fresh folder of this process
            inductor_cache = tempfile.TemporaryDirectory(prefix="glowlib-inductor-")   # removed with the object
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache.name
            compiled_model = type(base)(base_cfg.replace(inv_backprop=False)).to(device)
            compiled_model.load_state_dict(base.state_dict())
            step = train_step_fn(torch.compile(compiled_model), x, base_cfg.n_dims)
            t = time.perf_counter()
            step()
            compile_s = time.perf_counter() - t
            fns["compiled_defaults_without_inv_backprop"] = step
        times = alternate(fns, args.repeats, args.warmup, device)
        res = {name: {"images_per_s": args.batch / stats(t)["median"], "seconds_per_step": stats(t)}
               for name, t in times.items()}
        if ref is not None:
            for name in res:
                res[name]["ratio_to_reference"] = res[name]["images_per_s"] / res["reference"]["images_per_s"]
                res[name]["paired_ratio_to_reference"] = paired_ratio(times, "reference", name)
        if compile_s is not None:
            res["compiled_defaults_without_inv_backprop"]["first_step_s"] = compile_s
        record["results"]["train"] = res

    if args.what in ("sample", "both"):
        n = args.samples or args.batch
        for m in models.values():
            m.eval()
        fns = {name: (lambda m=m: m.sample(n, args.temperature, torch.Generator(device).manual_seed(0)))
               for name, m in models.items()}
        if ref is not None:
            ref.eval()
            fns["reference"] = lambda: ref.sample(n, args.temperature, torch.Generator(device).manual_seed(0))
        times = alternate(fns, args.repeats, args.warmup, device)
        res = {name: {"ms_per_image": 1e3 * stats(t, per=n)["median"], "seconds_per_call": stats(t)}
               for name, t in times.items()}
        if ref is not None:
            for name in res:
                res[name]["speedup_over_reference"] = res["reference"]["ms_per_image"] / res[name]["ms_per_image"]
                res[name]["paired_speedup_over_reference"] = paired_ratio(times, "reference", name)
        record["results"]["sample"] = res

    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
