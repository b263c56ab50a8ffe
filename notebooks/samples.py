# %% [markdown]
# # Samples of every model at T = 0.7 and T = 1 (Sec. 5)
#
# **Paper:** Kingma & Dhariwal 2018, Sec. 5 (Figs. 1, 4, 8). **Claim:** Glow's samples are realistic, shown at
# temperature T = 0.7, i.e. z ~ N(μ, (T·σ)²). **Reviewers asked:** samples from the baselines too, and for every
# dataset with a number in a table, not only the 5-bit CelebA-HQ Glow.
#
# So: a grid of samples for Glow **and** RealNVP on every dataset of the bits/dim table, and for MaCow and the
# variational-dequantisation models where the table has them, at T = 0.7 and T = 1, from the same trained models
# as the table (cached; nothing is retrained). Each grid is also saved as its own PNG.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
datasets = "auto"
# each where the profile trains it
model_types = ["glow", "realnvp", "glow+vardeq", "macow", "macow+vardeq"]
temperatures = [0.7, 1.0]
n_samples = 36

# %%
from glowlib.results import Recorder
from glowlib.studies import samples as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, datasets=datasets,
                           model_types=model_types, temperatures=temperatures, n_samples=n_samples)
rec = Recorder("samples", p.out_dir, p.profile, p.seed, vars(p), study.device())

# %%
result = study.sample_grids(p.profile, p.datasets, p.model_types, p.temperatures, p.n_samples, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
for name, grid in result.images.items():
    rec.image(grid, name)
table = result.tables["samples"]

# %% [markdown]
# ## All grids
# One row per dataset; columns: model and temperature. The same seed is used for every grid, so the grids of one
# model differ by the temperature alone.

# %%
fig = study.plot_grids(result.images, table, rows="dataset", cols=["model_type", "temperature"])
rec.figure(fig, "all_samples")

# %% [markdown]
# ## Pixel statistics of each grid
# `clipped_fraction`: pixels at 0 or 255 (samples beyond the data range are clamped). `nonfinite_redrawn`: draws
# whose decode overflowed to inf/NaN (a latent far in the tail through the affine inverse x = (y - t) / s) and
# were drawn again; a count above zero is a real failure mode of the model at that temperature, not hidden.

# %%
table.round(4)

# %%
rec.table(table, "samples", keys=["dataset", "model_type", "temperature"])
rec.finish()["wall_s"]
