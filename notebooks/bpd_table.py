# %% [markdown]
# # Bits per dimension: RealNVP vs Glow (Table 2), and MaCow with variational dequantisation
#
# **Paper:** Kingma & Dhariwal 2018, Sec. 5.2 and Table 2. **Claim:** Glow reaches lower test bits/dim than
# RealNVP on every dataset (CIFAR-10 3.35 vs 3.49, ImageNet 32/64, LSUN). **Follow-up:** Ma et al. 2019 (MaCow),
# Tables 2-3: MaCow is lower still (CIFAR-10 3.16), with variational dequantisation, a learned q(u | x) in place of
# Glow's uniform noise (Flow++, Ho et al. 2019); on ImageNet 64 3.75 with uniform and 3.69 with variational.
#
# We train every row (RealNVP, Glow, MaCow, each with uniform or variational dequantisation) with the same
# steps and batch as the other rows of its dataset, on every dataset present on this machine, **with several
# training seeds**; each run's value is its test bits/dim on the **full test split** (Polyak-averaged weights) at
# the evaluation chosen on validation images (held out of the training split). The table gives the mean over
# seeds with its 95% t-interval; the per-seed values are in `seeds.csv`.
#
# **How the claims are decided.** Two rows of a dataset are compared **paired by seed** (the same seed: the same
# data order and noise), the mean of the per-seed differences with its 95% t-interval; the test set's standard
# error says how well one network is evaluated, not how much another seed would differ, and decides nothing.
# Model families cost different time per step, so every comparison is made twice: at **equal steps** and at
# **equal wall time**, read from the measured training curves (each seed's two runs cut at the shorter one's
# training time, each at its best-validation evaluation up to then). The claims are decided at equal wall time,
# the reviewers' "same compute"; equal steps stands beside it. The published numbers stand beside ours; where ours
# differ, the text below says by how much and what differs in scale, computed from the runs.

# %% tags=["parameters"]
profile = "smoke"
# the noise seed of the importance-weighted evaluation
seed = 0
out_dir = ""
datasets = "auto"
model_types = ["realnvp", "glow", "glow+vardeq", "macow", "macow+vardeq"]
# training seeds of every row: 0 .. n_seeds - 1 (the paired tests need 3)
n_seeds = 3

# %%
from IPython.display import Markdown, display

from glowlib.results import Recorder
from glowlib.studies import bpd_table as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, datasets=datasets, model_types=model_types,
                           n_seeds=n_seeds)
rec = Recorder("bpd_table", p.out_dir, p.profile, p.seed, vars(p), study.device())

# %%
result = study.bpd_table(p.profile, p.datasets, p.model_types, p.n_seeds, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
ours, scale, curves = result.tables["bpd"], result.tables["scale"], result.tables["curves"]
seeds, pairs, iw = result.tables["seeds"], result.tables["pairs"], result.tables["iw"]

# %% [markdown]
# ## Our table
# `test_bpd [test_bpd_ci_low, test_bpd_ci_high]`: the mean over `n_seeds` training seeds and its 95% t-interval;
# each seed's value is the full test split at its best-validation evaluation, Polyak weights (`test_sem`, the
# standard error over test images, averaged over seeds, is far smaller than the spread between seeds). Compute:
# optimiser steps, warmup steps, images seen (steps × batch), training wall seconds and measured images/s (means
# over seeds), parameters (the flow's, and q(u | x)'s where it is learned). Every row is an upper bound on
# −log₂ P(x) per dimension, the ELBO of its dequantisation: with uniform noise (Glow, RealNVP, `macow`) it is the
# usual bits/dim; with a learned q(u | x) (`+vardeq`: a conditional flow trained jointly with the model on the
# ELBO, `glowlib.models.dequantization`) the ELBO of that q, so rows with different dequantisations bound the same
# quantity and can be compared directly.

# %%
ours[["dataset", "model_type", "dequantization", "n_seeds", "test_bpd", "test_bpd_ci_low", "test_bpd_ci_high",
      "test_bpd_std", "test_sem", "n_test", "steps", "warmup_steps", "images_seen", "epochs", "wall_s",
      "images_per_s", "n_parameters", "n_parameters_dequantizer", "K", "L", "width"]].round(4)

# %% [markdown]
# ## Equal steps and equal wall time
# Each comparison `a - b` of two rows of a dataset, paired by seed: at equal steps (same steps and batch) and at
# equal wall time (each seed's two runs cut at the shorter one's training time; `a_steps`/`b_steps` are then the
# steps each had reached). The claims are decided at equal wall time.

# %%
summary = study.pair_summary(pairs)
rec.figure(study.plot_pairs(summary, "Paired differences of the table's rows (a - b)"), "pairs")
summary.round(4)

# %% [markdown]
# ## The importance-weighted bound
# The ELBO and the importance-weighted bound with k samples per image (Burda et al. 2016) on the same first test
# images and the same noise: the bound is never looser in expectation, and the gap says how far each q(u | x) is
# from the model's own posterior over the bin. The uniform rows are importance-weighted too (q uniform). First
# seed's models; each row says how many test images it used.

# %%
iw.assign(iw_gain=iw.elbo_iw_images - iw.iw_bpd).round(4)

# %%
skipped = result.tables["skipped"]
display(Markdown("Rows not trained at this profile: " + "; ".join(f"{r.model_type} on {r.dataset} ({r.why})"
                                                                 for r in skipped.itertuples())
                 if len(skipped) else "Every requested row was trained."))

# %% [markdown]
# ## Beside the published numbers
# The paper's Table 2, MaCow's and later papers' MNIST (28×28) numbers, from `glowlib/published_bpd.csv`. `mnist5k` is
# compared with MNIST (the same digits, fewer of them). The ratios give our scale relative to the paper-profile
# model for the same data (`glowlib.profiles`).

# %%
comparison = study.compare_with_published(ours, scale, study.published_bpd())
display(comparison.drop(columns="source").round(4))
display(Markdown("\n".join(study.explain_differences(comparison))))

# %% [markdown]
# ## All published numbers
# The official Glow code pads MNIST to 32×32×3, so a bits/dim from it is per padded dimension: the MNIST rows
# here come from later papers that model 28×28×1, as we do.

# %%
published = study.published_bpd()
published

# %% [markdown]
# ## Training curves of every model
# `train` is the running training loss; `train_eval`, `val`, `test` evaluate the Polyak weights on each split.

# %%
fig = study.plot_splits(curves, by="model", title="bits/dim by split during training (mean ± std over seeds)")
rec.figure(fig, "curves")

# %%
rec.table(ours, "bpd", keys=["dataset", "model_type"])
rec.table(seeds, "seeds", keys=["dataset", "model_type", "seed"])
rec.table(pairs, "pairs", keys=["group", "a", "b", "seed"])
rec.table(summary, "pair_summary", keys=["group", "a", "b", "basis"])
rec.table(iw, "iw", keys=["dataset", "model_type", "seed"])
if len(skipped):
    rec.table(skipped, "skipped", keys=["dataset", "model_type"])
rec.table(scale, "scale", keys=["dataset", "model_type"])
rec.table(comparison, "comparison", keys=["dataset", "model_type"])
rec.table(published, "published", keys=["model", "dataset", "source"])
rec.table(curves, "curves", keys=["dataset", "model_type", "seed", "step", "split"])
rec.finish()["wall_s"]
