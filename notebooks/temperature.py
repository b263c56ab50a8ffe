# %% [markdown]
# # Temperature: sample quality against diversity (Fig. 8)
#
# **Paper:** Kingma & Dhariwal 2018, Sec. 5 and Fig. 8. **Claim:** sampling at a reduced temperature T < 1,
# z ~ N(μ, (T·σ)²), gives better-looking samples (the paper shows T = 0.7), at the cost of diversity.
#
# The paper judges this by eye. Here a small classifier trained on the **real** training images
# (`glowlib.analysis.cached_classifier`) measures, for each T: the mean confidence of its predictions (quality),
# the entropy of the histogram of predicted classes (diversity), and the Fréchet distance between its features
# of the samples and of real test images (the FID formula with our classifier). Real test images give the
# reference row. The model is the one shared Glow of the dataset (trained once, cached).

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
dataset = "mnist5k"
temperatures = [0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
temperature = 0.7
n_samples = 500
n_grid = 36

# %%
from glowlib.results import Recorder
from glowlib.studies import temperature as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, dataset=dataset, temperatures=temperatures,
                           temperature=temperature, n_samples=n_samples, n_grid=n_grid)
rec = Recorder("temperature", p.out_dir, p.profile, p.seed, vars(p), study.device())
trained = study.shared_model(p.profile, p.dataset)
rec.model(f"glow-{p.dataset}", trained)
rec.note(classifier=study.classifier_provenance(p.dataset))

# %% [markdown]
# ## A sample grid per temperature
# The same seed for every T: each grid scales the same standard-normal draws by T.

# %%
grids = study.sample_grids(trained.model, p.temperatures, p.n_grid, p.seed)
for t, grid in grids.items():
    rec.image(grid, f"samples_T{t:g}", f"samples at T={t:g}")
fig = study.plot_named_grids({f"T = {t:g}": grid for t, grid in grids.items()})
rec.figure(fig, "samples_by_temperature")

# %% [markdown]
# ## The highlighted temperature

# %%
rec.figure(study.show(grids[p.temperature], f"T = {p.temperature:g}", zoom=3), "samples_highlighted")

# %% [markdown]
# ## Quality and diversity per temperature

# %%
table = study.temperature_table(trained.model, p.dataset, p.temperatures, p.n_samples, p.seed).tables["temperature"]
rec.figure(study.plot_tradeoff(table), "tradeoff")
table.round(4)

# %%
rec.table(table, "temperature", keys=["source", "temperature"])
rec.finish()["wall_s"]
