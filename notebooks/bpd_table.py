# %% [markdown]
# # Bits per dimension: RealNVP vs Glow (Table 2), and MaCow with variational dequantisation
#
# **Paper:** Kingma & Dhariwal 2018, Sec. 5.2 and Table 2. **Claim:** Glow reaches lower test bits/dim than
# RealNVP on every dataset (CIFAR-10 3.35 vs 3.49, ImageNet 32/64, LSUN). **Follow-up:** Ma et al. 2019 (MaCow),
# Tables 2-3: MaCow is lower still (CIFAR-10 3.16), with variational dequantisation, a learned q(u | x) in place of
# Glow's uniform noise (Flow++, Ho et al. 2019); on ImageNet 64 3.75 with uniform and 3.69 with variational.
#
# We train our RealNVP and our Glow with the same skeleton, steps and batch on every dataset present on this
# machine, evaluate each on the **full test split** with the Polyak-averaged weights of the checkpoint chosen on
# validation images (held out of the training split), and report the standard error over test images and the
# compute each row used. The published numbers stand beside ours; where ours differ, the text below says by how
# much and what differs in scale, computed from the runs.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
datasets = "auto"
model_types = ["realnvp", "glow", "glow+vardeq", "macow", "macow+vardeq"]

# %%
from IPython.display import Markdown, display

from glowlib.results import Recorder
from glowlib.studies import bpd_table as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, datasets=datasets, model_types=model_types)
rec = Recorder("bpd_table", p.out_dir, p.profile, p.seed, vars(p), study.device())

# %%
result = study.bpd_table(p.profile, p.datasets, p.model_types, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
ours, scale, curves = result.tables["bpd"], result.tables["scale"], result.tables["curves"]

# %% [markdown]
# ## Our table
# `test_bpd ± test_sem`: full test split, best-validation checkpoint, Polyak weights. Compute: optimiser steps,
# images seen (steps × batch), training wall seconds, parameters (the flow's, and q(u | x)'s where it is learned).
# Every row is an upper bound on −log₂ P(x) per dimension, the ELBO of its dequantisation: with uniform noise
# (Glow, RealNVP, `macow`) it is the usual bits/dim; with a learned q(u | x) (`+vardeq`: a conditional flow trained
# jointly with the model on the ELBO, `glowlib.models.dequantization`) the ELBO of that q, so rows with different
# dequantisations bound the same quantity and can be compared directly.

# %%
ours[["dataset", "model_type", "dequantization", "test_bpd", "test_sem", "n_test", "best_val_bpd", "steps",
      "images_seen", "epochs", "wall_s", "n_parameters", "n_parameters_dequantizer", "K", "L", "width"]].round(4)

# %% [markdown]
# ## The importance-weighted bound
# The ELBO and the importance-weighted bound with k samples per image (Burda et al. 2016) on the same first test
# images and the same noise: the bound is never looser in expectation, and the gap says how far each q(u | x) is
# from the model's own posterior over the bin. The uniform rows are importance-weighted too (q uniform).

# %%
ours[["dataset", "model_type", "dequantization", "iw_n", "iw_k", "elbo_iw_images", "iw_bpd", "iw_sem"]].assign(
    iw_gain=ours.elbo_iw_images - ours.iw_bpd).round(4)

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
fig = study.plot_splits(curves, by="model", title="bits/dim by split during training")
rec.figure(fig, "curves")

# %%
rec.table(ours, "bpd", keys=["dataset", "model_type"])
if len(skipped):
    rec.table(skipped, "skipped", keys=["dataset", "model_type"])
rec.table(scale, "scale", keys=["dataset", "model_type"])
rec.table(comparison, "comparison", keys=["dataset", "model_type"])
rec.table(published, "published", keys=["model", "dataset", "source"])
rec.table(curves, "curves", keys=["dataset", "model_type", "step", "split"])
rec.finish()["wall_s"]
