# %% [markdown]
# # Temperature: fidelity against diversity, T = 0.7 against T = 1 (paper's Fig. 8)
# % lead figure tradeoff
#
# **Paper:** Kingma & Dhariwal 2018 {cite}`kingma2018glow`, Sec. 5 and Fig. 8: sampling at a reduced temperature,
# z ~ N(μ, (T·σ)²) with T = 0.7 rather than T = 1.
#
# The paper judges this by eye. Here fidelity and diversity are measured apart, in the features of a small
# classifier trained on the **real** training images (trained once per profile and kept): **precision** (the
# share of samples inside the manifold of real images) and **recall** (the share of real images inside the
# samples' manifold), with k = 3 nearest-neighbour manifolds (Kynkäänniemi et al. 2019
# {cite}`kynkaanniemi2019precision`), and the Fréchet distance (the FID's formula {cite}`heusel2017fid`) beside them.
# Each is measured against a seeded, random, class-balanced draw of real test images; a second,
# disjoint draw of the same size measured the same way is the **real-vs-real** baseline shown beside every number.
# The claim is decided over several seeds of the sampler, each seed's draws shared by both temperatures.
# Before any verdict the model must pass three sanity gates (its T = 1 samples against real images).

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `temperature.fidelity_for_diversity`;
# - the measuring classifier: `glowlib.analysis.cached_classifier`; the study: `glowlib.studies.temperature`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
dataset = "auto"
# the whole curve; the compared temperature and T = 1 are always among them
temperatures = [0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# the temperature compared with T = 1 (the paper's)
temperature = 0.7
# samples per temperature and seed, and the size of each real draw (at most half the test split)
n_samples = 500
# seeds of the sampler, whose draws each training seed's value averages
n_sampling_seeds = 5
n_grid = 36
# training seeds of the model: the replicates of the comparison (the first draws the figures)
n_training_seeds = 3

# %%
from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import temperature as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, dataset=dataset, temperatures=temperatures,
                           temperature=temperature, n_samples=n_samples, n_sampling_seeds=n_sampling_seeds,
                           n_grid=n_grid, n_training_seeds=n_training_seeds)
rec = Recorder("temperature", p.out_dir, p.profile, p.seed, vars(p), study.device())
trained = study.shared_model(p.profile, p.dataset)
rec.model(f"glow-{p.dataset}", trained)
others = study.seed_models(p.profile, p.dataset, p.n_training_seeds)
for s, other in others.items():
    rec.model(f"glow-{p.dataset}-seed{s}", other)
rec.note(classifier=study.classifier_provenance(p.dataset, p.profile))

# %% [markdown]
# ## A sample grid per temperature
# % caption temperature_explorer: Drag the slider to decode the same draws at another temperature and see where
# %   that temperature sits on the precision and recall curves (means over sampling seeds; dashed: real images).
# % caption samples_by_temperature: The same standard-normal draws decoded at each temperature T, one grid per
# %   temperature; at T = 0 every draw is the mean latent, so all its images are one image.
# % caption samples_by_temperature (cpu): The same standard-normal draws decoded at each temperature T (Glow with
# %   affine coupling on the 8x8 digits, the bits/dim table's model). At T = 0 every draw is the mean latent,
# %   which decodes to one blurred, 8-like digit; from T = 0.5 the draws are distinct, mostly legible digits,
# %   which grow rougher and more broken towards T = 1.
# The same seed for every T: each grid scales the same standard-normal draws by T.
#
# The model and the data it was trained on are named at the top of the page, from the run's record.

# %%
grids = study.sample_grids(trained.model, p.temperatures, p.n_grid, p.seed)
for t, grid in grids.items():
    rec.image(grid, f"samples_T{t:g}", f"samples at T={t:g}")
fig = study.plot_named_grids({f"T = {t:g}": grid for t, grid in grids.items()})
rec.figure(fig, "samples_by_temperature")

# %% [markdown]
# ## The compared temperature
# % caption samples_highlighted: The grid at the compared temperature, enlarged, decoded from the same draws as
# %   the grids above.
# % caption samples_highlighted (cpu): The grid at the compared temperature, enlarged: blocky 8x8 digits, most of
# %   them legible, a few broken.

# %%
rec.figure(study.show(grids[p.temperature], f"T = {p.temperature:g}", zoom=3), "samples_highlighted")

# %% [markdown]
# ## Sanity gates
# The measuring classifier's confidence on T = 1 samples against its confidence on real images, the share of
# draws whose decode overflowed before any redraw, and the samples' mean pixel against the real images'. A failed
# gate makes the claim not testable at this scale: the model does not yet draw images like the data.

# %%
result = study.temperature_table(trained.model, p.dataset, p.temperatures, p.n_samples, p.n_sampling_seeds,
                                 p.seed, more_models={s: m.model for s, m in others.items()},
                                 classifier=study.measuring_classifier(p.profile, p.dataset))
table, gates, decision = (result.tables[k] for k in ("temperature", "gates", "decision"))
show(gates, "gates", columns=["model", "gate", "value", "reference", "threshold", "passed", "n"])

# %% [markdown]
# ## Fidelity and diversity against temperature
# % caption tradeoff: Precision (fidelity), recall (diversity) and Fréchet distance of the samples against
# %   temperature, measured in the features of a classifier trained on real images: mean ± standard deviation
# %   over sampling seeds; the dashed lines are real test images against the same reference. Higher precision
# %   and recall, and a lower distance, are better. The last panel plots precision against recall, a point per
# %   temperature, with real against real as a star.
# The first training seed's model: mean ± std over the sampling seeds; the dashed line is real against real.

# %%
rec.figure(study.plot_tradeoff(table), "tradeoff")
show(table.groupby(["source", "training_seed", "temperature"], dropna=False)[
         ["precision", "recall", "frechet", "confidence", "nonfinite_redrawn"]].mean(), "temperature",
     names={"nonfinite_redrawn": "redrawn (non-finite)"}, decimals=3)

# %% [markdown]
# ## Could the difference be ink?
# Samples at a lower temperature carry a little more or less ink than at T = 1 (the ratio of their pixel means is
# in the table). Real test images with their ink changed by that ratio, in two ways that keep the shapes (every
# pixel scaled; strokes thickened or thinned), are measured against the same reference: how far each measure
# moves is how much of a temperature effect ink alone could make. A verdict below needs its interval to clear the
# largest such move.

# %%
ink = result.tables["ink_control"]
show(ink, "ink_control", columns=["change", "ink_ratio", "achieved_ink_ratio", "measure", "real", "changed", "move"],
     names={"ink_ratio": "samples' ink ratio", "achieved_ink_ratio": "ink ratio applied", "real": "real images",
            "changed": "ink changed"}, decimals=3)

# %% [markdown]
# ## T = 0.7 against T = 1, over training seeds
# The replicates are three training seeds of the same model (each seed's value the mean over its sampling seeds,
# whose draws both temperatures share), so that the verdict is about Glow trained this way, not about one network.
# Every model passes the sanity gates at both temperatures, on draws of its own, before its samples are judged.

# %%
show(decision, "decision", columns=["measure", "t_low", "mean_t_low", "mean_t1", "real_vs_real", "difference", "n",
                                    "ink_move", "claimed", "verdict"],
     intervals={"difference": ("ci_low", "ci_high")}, names={"mean_t_low": "at T low", "mean_t1": "at T = 1",
                                                             "difference": "T low - T = 1",
                                                             "ink_move": "ink's largest move"})

# %%
rec.table(table, "temperature", keys=["source", "training_seed", "temperature", "sampling_seed"])
rec.table(gates, "gates", keys=["model", "gate"])
rec.table(ink, "ink_control", keys=["change", "measure"])
rec.table(decision, "decision", keys=["measure"])
wall_s = rec.finish()["wall_s"]
