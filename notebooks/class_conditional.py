# %% [markdown]
# # Class-conditional Glow: samples of a requested class
#
# **Official code** (`--ycond`, `--weight_y`) and a frequent request of the peer repositories' users ("class
# conditioning"). A one-hot label shifts the top prior's mean and log-std through a zero-initialised linear map,
# and a linear classifier on the mean top latent gives an optional classification loss: the training loss is
# bits/dim + y_weight · cross-entropy in bits per image (`TrainConfig.y_weight`; the official conditional runs use
# 0.01). We train the study model (`conditional_config` in `glowlib.studies.class_conditional`) for several
# y_weight, draw samples of each requested class, and ask the measuring classifier (trained on real images only) whether it sees that class.
# The model's own classifier head is scored on the real test images too.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
y_weights = [0.0, 0.01, 1.0]
temperatures = [0.7, 1.0]
n_per_class = 50
n_show = 8

# %%
from glowlib.results import Recorder
from glowlib.studies import class_conditional as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, y_weights=y_weights,
                           temperatures=temperatures, n_per_class=n_per_class, n_show=n_show)
rec = Recorder("class_conditional", p.out_dir, p.profile, p.seed, vars(p), study.device())
result = study.class_conditional(p.profile, p.y_weights, p.temperatures, p.n_per_class, p.n_show, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
rec.note(classifier=study.classifier_provenance(study.STUDY_DATASET[p.profile]))

# %% [markdown]
# ## The models
# Conditional test bits/dim (−log₂ p(x | y)/D) and the accuracy of each model's own classifier head.

# %%
result.tables["models"].round(4)

# %% [markdown]
# ## Samples per class
# One row per requested class.

# %%
rec.figure(study.plot_named_grids({name.removeprefix("samples_"): grid for name, grid in result.images.items()},
                                  ncol=len(p.temperatures)), "samples_by_class")
for name, grid in result.images.items():
    rec.image(grid, name)

# %% [markdown]
# ## Does the measuring classifier see the requested class?

# %%
per_class = result.tables["samples"]
summary = study.conditional_summary(per_class)
rec.figure(study.plot_conditional(per_class), "accuracy_by_class")
summary.round(3)

# %%
rec.table(result.tables["models"], "models", keys=["y_weight"])
rec.table(per_class, "samples", keys=["y_weight", "temperature", "requested_class"])
rec.table(summary, "summary", keys=["y_weight", "temperature"])
rec.finish()["wall_s"]
