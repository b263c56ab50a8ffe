# %% [markdown]
# # 5-bit vs 8-bit: the model or the fewer bits?
#
# **Reviewers** of Glow {cite}`kingma2018glow`: "5-bit vs 8-bit: are the good samples due to the model or to fewer
# bits?" The paper's
# CelebA-HQ {cite}`karras2018progressive` samples come from a 5-bit model (Sec. 5), its bits/dim tables from 8-bit
# ones. Here the same model (the bits/dim table's model of the dataset at its size, trained for the profile's
# length for these studies, with additive coupling: the official code trains every model whose samples the paper
# shows with additive coupling, its 5-bit CelebA-HQ run included, and keeps affine coupling for the likelihood
# results) is trained on 5-bit and on 8-bit versions of the same images, with three training seeds each.
#
# **Comparing bits/dim across bit depths.** Bits/dim is −log₂ P_n(x)/D, the probability of the image's n-bit
# bins. Each 5-bit bin is the union of 2³ = 8 eight-bit bins per dimension. Spreading a 5-bit model's
# probability uniformly over those sub-bins, P_8(x₈) = P_5(x₅)·2^(−3D), is an 8-bit model of the same images,
# with −log₂ P_8/D = bpd_5 + 3. So a 5-bit number is compared with an 8-bit one as **bpd_5 + (8 − 5)**
# (the uniform density gives 5 and 5 + 3 = 8). The other way has no exact formula
# (merging bins sums probabilities); evaluating the 8-bit model's density with 5-bit bins and noise gives an
# **upper bound** on its 5-bit bits/dim (Jensen: E_u[log p] ≤ log ∫ p over the bin).
#
# **Samples.** Each model's samples are measured in the features of a classifier trained on the real training
# images: **precision** (fidelity), **recall** (diversity) {cite}`kynkaanniemi2019precision` and the **Fréchet
# distance** {cite}`heusel2017fid`, against a seeded random
# class-balanced draw of real test images at the same bit depth, beside the **real-vs-real** baseline (a disjoint
# real draw of the same size). The 8-bit model's samples are also shown **reduced to 5 bits**: if they then score
# like the 5-bit model's, the fewer bits explain the look; if the 5-bit model still scores better, training at 5
# bits does. The comparison is paired by training seed (each seed trains both models), and it is made only when
# every compared model passes the **sanity gates** on draws of their own.

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `bits_5v8.trained_at_fewer_bits`;
# - the model: `bits_config` in `glowlib.studies.bits_5v8`, built on `glowlib.studies.base.study_config` (the
#   official code's additive coupling is its `--flow_coupling 0`);
# - the conversion of bits/dim to more bits: `bpd_at_more_bits` in `glowlib.studies.bits_5v8`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
bit_depths = [5, 8]
# training seeds of each model: the replicates of the comparison
n_seeds = 3
temperatures = [0.7, 1.0]
# samples per model and temperature, and the size of each real draw (at most half the test split)
n_samples = 500
n_grid = 36

# %%
from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import bits_5v8 as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, bit_depths=bit_depths, n_seeds=n_seeds,
                           temperatures=temperatures, n_samples=n_samples, n_grid=n_grid)
rec = Recorder("bits_5v8", p.out_dir, p.profile, p.seed, vars(p), study.device())
result = study.bits_5v8(p.profile, p.bit_depths, p.n_seeds, p.temperatures, p.n_samples, p.n_grid, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
rec.note(classifier=study.classifier_provenance(study.bits_dataset(p.profile), p.profile))

# %% [markdown]
# ## Bits/dim on each scale
# Rows: the bit depth a model was trained at; columns: the bit depth it is scored at (full test split, mean over
# seeds). `how` says whether an entry is measured, the exact conversion bpd_n + (m − n), or an upper bound.

# %%
show(study.bits_table(result.tables["bpd"]), "bpd", decimals=3)

# %% [markdown]
# ## Samples side by side
# % caption samples_side_by_side: Samples of the first training seed's 5-bit and 8-bit models, each shown at its
# %   own bit depth, one panel per model and temperature, every panel decoded from the same sampling seed.
# The first training seed's models, each at its own bit depth (the same sampling seed for every model and T).

# %%
rec.figure(study.plot_named_grids({name.removeprefix("samples_").replace("_", ", "): grid
                                   for name, grid in result.images.items()}, ncol=len(p.temperatures)),
           "samples_side_by_side")
for name, grid in result.images.items():
    rec.image(grid, name)

# %% [markdown]
# ## Sanity gates
# Per model, on its T = 1 samples: the measuring classifier's confidence against its confidence on real images,
# the share of draws whose decode overflowed before any redraw, and the mean pixel against the real images'. A
# failed gate makes the comparison not testable at this scale.

# %%
gates = result.tables["gates"]
show(gates, "gates", columns=["model", "gate", "value", "reference", "threshold", "passed", "n"])

# %% [markdown]
# ## The classifier's measures
# Lower Fréchet distance, higher precision and recall are better; the grey lines are real against real at each bit
# depth.
# % caption quality: Fréchet distance, precision and recall of the samples against temperature for each model's
# %   trained and shown bit depth, mean and standard deviation over training seeds; the grey lines are real test
# %   images against the same reference at each bit depth.

# %%
quality = result.tables["quality"]
rec.figure(study.plot_bits_quality(quality), "quality")
show(quality.groupby(["source", "model_bits", "shown_bits", "temperature"], dropna=False)[
    ["frechet", "precision", "recall", "confidence"]].mean().reset_index(), "quality", decimals=3)

# %% [markdown]
# ## The low-bit model against the high-bit model shown at the low depth
# Fréchet distance, low-bit minus high-bit, paired by training seed (95% t-interval), per temperature.

# %%
decision = result.tables["decision"]
show(decision, "decision", columns=["temperature", "low_bits", "high_bits", "shown_bits", "frechet_low",
                                    "frechet_high", "frechet_real_vs_real", "difference", "n", "verdict"],
     intervals={"difference": ("ci_low", "ci_high")}, names={"difference": "low - high"})

# %%
rec.table(result.tables["bpd"], "bpd", keys=["model_bits", "seed", "eval_bits"])
rec.table(quality, "quality", keys=["source", "model_bits", "seed", "shown_bits", "temperature"])
rec.table(gates, "gates", keys=["model", "gate"])
rec.table(decision, "decision", keys=["temperature"])
wall_s = rec.finish()["wall_s"]
