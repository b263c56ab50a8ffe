# %% [markdown]
# # Samples of every model at T = 0.7 and T = 1 (paper's Sec. 5)
# % lead figure all_samples
#
# **Paper:** Kingma & Dhariwal 2018 {cite}`kingma2018glow`, Sec. 5 (Figs. 1, 4, 8). **Claim:** Glow's samples are
# realistic, shown at
# temperature T = 0.7, i.e. z ~ N(μ, (T·σ)²); its reviewers asked to see the baselines' samples too, not only the
# 5-bit CelebA-HQ {cite}`karras2018progressive` Glow's.
#
# So: a grid of samples for Glow **and** RealNVP {cite}`dinh2017realnvp` on every dataset of the bits/dim table, and
# for MaCow {cite}`ma2019macow` and the variational-dequantisation models {cite}`ho2019flowpp` where the table has
# them, at T = 0.7 and T = 1, from the same trained models
# as the table (cached; nothing is retrained), and beside them the dataset's longer Glow run where the profile has
# one ("glow (quality run)": the model the temperature, interpolation, manipulation and nearest-neighbour pages
# share; every table gives each model's training steps). Each grid is also saved as its own PNG.
#
# A grid alone says little (a near-blank grid is still a grid), so every model must first pass the **sanity
# gates**, on draws of their own (never the grids' or the measures' draws): the claim is judged on the datasets whose
# rows, the baselines and Glow, all pass every gate; a row that fails is shown, counted and named, not judged. Each
# model's samples are measured in the features of a classifier trained on
# the real training images: **precision** (fidelity), **recall** (diversity) {cite}`kynkaanniemi2019precision` and
# the **Fréchet distance** (the FID's formula {cite}`heusel2017fid` in our classifier's features), against
# a seeded random class-balanced draw of real test images, beside the **real-vs-real** baseline (a disjoint real
# draw of the same size measured the same way). Sample quality and likelihood can disagree
# {cite}`theis2016note`: this page measures the samples, the bits/dim page the likelihood.

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `samples.baselines_sampled`; the study:
#   `glowlib.studies.samples`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
datasets = "auto"
# each where the profile trains it
model_types = ["glow", "realnvp", "glow+vardeq", "macow", "macow+vardeq"]
temperatures = [0.7, 1.0]
# samples in each grid
n_samples = 36
# samples per model and temperature for the measures and the gates, and the size of each real draw
n_measure = 500

# %%
from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import samples as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, datasets=datasets,
                           model_types=model_types, temperatures=temperatures, n_samples=n_samples,
                           n_measure=n_measure)
rec = Recorder("samples", p.out_dir, p.profile, p.seed, vars(p), study.device())

# %%
result = study.sample_grids(p.profile, p.datasets, p.model_types, p.temperatures, p.n_samples, p.seed,
                            p.n_measure)
for name, trained in result.models.items():
    rec.model(name, trained)
for name, grid in result.images.items():
    rec.image(grid, name)
table = result.tables["samples"]

# %% [markdown]
# ## All grids
# % caption all_samples: Samples of every model at T = 0.7 and T = 1, one grid per model and temperature, four
# %   grids a row, each dataset starting a row of its own; every grid decoded from the same sampling seed.
# % caption all_samples (cpu): Samples of every model at T = 0.7 and T = 1, one grid per model and temperature,
# %   four grids a row, each dataset starting a row of its own. The 5,000 MNIST digits come from Glow with
# %   additive coupling (its longer run); Fashion-MNIST from RealNVP, Glow, Glow with variational dequantisation,
# %   MaCow (all affine coupling, short runs) and Glow's longer run; the 8x8 digits from Glow and RealNVP. As
# %   seen in the committed cpu run: the longer runs draw rough, blurred digit strokes and garment silhouettes;
# %   the short Fashion-MNIST runs draw dark, blotchy shapes, nearly black at T = 0.7; the 8x8 digits are blocky
# %   but legible. The MNIST model fails the recall and class-coverage gates (its draws cover few of the ten
# %   digits), and so do all the Fashion-MNIST runs, the longer one too; only the 8x8 digits' models pass every
# %   gate (the table below).
# Each dataset starts a row of its own, four grids a row: one grid per model and temperature. The same seed is used for every grid, so the grids of one
# model differ by the temperature alone.
#
# The data: 5,000 MNIST digits {cite}`lecun1998mnist`, Fashion-MNIST {cite}`xiao2017fashion` and scikit-learn's 8x8
# digits; each model draws its grids from the same seed.

# %%
fig = study.plot_grids(result.images, table, rows="dataset", cols=["model_type", "temperature"])
rec.figure(fig, "all_samples")

# %% [markdown]
# ## Sanity gates
# Per model, on its T = 1 samples: the measuring classifier's confidence against its confidence on real images,
# the share of draws whose decode overflowed to inf/NaN before any redraw, and the mean pixel against the real
# images'. A model that fails a gate does not draw images like its data at this scale.

# %%
gates = result.tables["gates"]
show(gates, "gates", columns=["model", "gate", "value", "reference", "threshold", "passed", "n"])

# %% [markdown]
# ## Fidelity and diversity beside real against real
# Precision, recall and Fréchet distance of each model's samples, each beside the same measure of real test
# images against the same reference (`*_real_vs_real`).

# %%
quality = result.tables["quality"]
show(study.quality_table(quality), "quality", names={"model_type": "model", "temperature": "T"}, decimals=2)

# %% [markdown]
# ## Pixel statistics of each grid
# `clipped_fraction`: pixels at 0 or 255 (samples beyond the data range are clamped). The quality table counts the
# draws whose decode overflowed to inf/NaN (a latent far in the tail through the affine inverse x = (y - t) / s)
# and were drawn again (`nonfinite_redrawn`); a count above zero is a real failure mode of the model at that
# temperature, not hidden.

# %%
show(table, "samples", columns=["dataset", "model_type", "steps", "temperature", "n", "pixel_mean", "pixel_std",
                                "clipped_fraction"],
     names={"model_type": "model", "temperature": "T"}, percent=["clipped_fraction"], decimals=2)

# %%
rec.table(table, "samples", keys=["dataset", "model_type", "temperature"])
rec.table(quality, "quality", keys=["dataset", "source", "model_type", "temperature"])
rec.table(gates, "gates", keys=["model", "gate"])
wall_s = rec.finish()["wall_s"]
