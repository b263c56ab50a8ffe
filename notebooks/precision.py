# %% [markdown]
# # bf16 against fp32: quality at equal steps, time, and the round trip
# % lead figure precision
#
# **The option** (bf16 precision, the bfloat16 format of Kalamkar et al. {cite}`kalamkar2019bf16`)
# for Glow {cite}`kingma2018glow`: the coupling networks, which do almost all of
# the arithmetic, run in bf16; everything that decides exactness stays in float32: the 1x1 convolutions and their
# log-determinants, ActNorm, the coupling's scale and shift as applied, the log-det sums and the priors. On
# hardware with a bf16 path (AMX or AVX512-BF16 on a CPU, tensor cores on a GPU) the profiles train in bf16 by
# default (a setting of the environment can ask for fp32 instead).
#
# **The test**: after the same number of steps, bf16's test bits/dim must be no worse than fp32's by
# more than the spread between two fp32 seeds. So the profile's Glow is trained four times, two seeds in each
# precision, everything else equal, and each model is evaluated on the whole test split (Polyak weights
# {cite}`polyak1992averaging` chosen on validation, as everywhere in this book).
#
# **The round trip.** A single bf16 coupling is exactly invertible (its network sees the same input both ways),
# but a whole float32 model is not: decode rebuilds a network's input through the inverses of the layers after it,
# with their float32 round-off, and where that straddles a bf16 rounding boundary the input rounds the other way and
# the network's output jumps by a bf16 step. The same bf16 networks inside a float64 flow (the model cast to
# float64, whose casts take float64 to bf16) make round-off far too small to flip a rounding. The last table
# measures all modes on each bf16-trained model's real test images.

# %% [markdown]
# :::{dropdown} How this was computed
# - the option: `GlowConfig(precision="bf16")`; the default precision: `glowlib.profiles.default_precision`,
#   overridden by `GLOWLIB_PRECISION=fp32`;
# - the float64 flow: `model.double()`; the float64 copy the interpolation and manipulation notebooks run:
#   `glowlib.analysis.exact_model`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
# "auto": the profile's (smoke digits, cpu fashion_mnist, paper cifar10)
dataset = "auto"
seeds = [0, 1]
precisions = ["fp32", "bf16"]
# test images for the round-trip table
n_round_trip = 500

# %%
from IPython.display import Markdown

from glowlib.analysis.presentation import csv_link, readable, show, styled
from glowlib.results import Recorder
from glowlib.studies import precision as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, dataset=dataset, seeds=seeds,
                           precisions=precisions, n_round_trip=n_round_trip)
device = study.device()
rec = Recorder("precision", p.out_dir, p.profile, p.seed, vars(p), device)
trained_precisions, skipped = study.runnable(p.precisions, device)
configs = study.configs(p.profile, p.dataset, p.seeds, trained_precisions)
models = study.train_all(configs, device)
for (precision, s), tm in models.items():
    rec.model(f"{precision}_seed{s}", tm)
rec.note(skipped=skipped, bf16_path=study.bf16_support(device)[1])
study.publish(rec, device=device, bf16_path=study.bf16_support(device)[1])
Markdown("\n".join(f"- {line}" for line in skipped))

# %% [markdown]
# Device: {glue:text}`device`; {glue:text}`bf16_path`.

# %% [markdown]
# ## Test bits/dim after the same steps
# One row per precision and seed: the whole test split with its standard error, the validation figure that chose
# the checkpoint, and the training run's steps, wall-clock seconds and images per second (evaluations included).

# %%
table = study.evaluate(models, p.seed, device)
show(table, "runs", columns=["precision", "seed", "dataset", "steps", "test_bpd", "test_sem", "val_bpd", "wall_s",
                             "images_per_s"],
     names={"test_bpd": "test bits/dim", "test_sem": "± sem", "val_bpd": "val bits/dim", "wall_s": "wall time",
            "images_per_s": "images/s"},
     units={"wall_s": "s"}, decimals={"test_sem": 4, "wall_s": 1, "images_per_s": 1})

# %% [markdown]
# ## bf16 against the spread of fp32 seeds
# `fp32_seed_spread` is the largest minus the smallest fp32 test bits/dim; `bf16_minus_fp32_seedS` pairs the runs
# that share a seed; `passes` says whether the worst such difference is within the fp32 spread. `speedup_seedS` is
# fp32's training seconds over bf16's.

# %%
comparison = study.compare(table)
(styled(readable(comparison, decimals=4)) if len(comparison)
 else Markdown("Only one precision was trained here: no comparison."))

# %% [markdown]
# ## Round trip of the bf16 models
# % caption precision: Test bits/dim of each training seed (error bar: the standard error over test images) for
# %   each precision that ran; the text above says which precisions were left out on this machine, and why.
# Per mode, on the first `n_round_trip` test images at the centres of their bins (so a pixel decodes into another
# bin only when its error exceeds half a bin, 2e-3 for 8 bits): `fp32` is the bf16-trained
# weights in a plain float32 model, `bf16` the model as trained, `bf16_flow64` its bf16 networks in a float64 flow,
# `fp64` everything in float64. `fraction_images_bin_changed` counts images with any pixel decoded into another
# n-bit bin. The interpolation and manipulation notebooks run a bf16 model as its float64 copy for this reason.

# %%
trip = study.round_trip_table(models, p.n_round_trip, device)
(styled(readable(trip, decimals=8)) if len(trip)
 else Markdown("No bf16 model was trained here, so there is no round-trip table."))

# %%
rec.figure(study.plot(table, trip if len(trip) else None), "precision")

# %%
Markdown(" ".join(csv_link(name) for name, t in (("comparison", comparison), ("round_trip", trip)) if len(t)))

# %%
rec.table(table, "runs", keys=study.KEYS["runs"])
if len(comparison):
    rec.table(comparison, "comparison", keys=study.KEYS["comparison"])
if len(trip):
    rec.table(trip, "round_trip", keys=study.KEYS["round_trip"])
wall_s = rec.finish()["wall_s"]
