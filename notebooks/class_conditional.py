# %% [markdown]
# # Class-conditional Glow: samples of a requested class
#
# **Users of the peer repositories** of Glow {cite}`kingma2018glow` ask for class conditioning; the official code has
# it, the paper makes no class-conditional claim. A one-hot label shifts the top prior's mean and log-std through a
# zero-initialised linear map, and a linear classifier on the mean top latent gives an optional classification loss:
# the training loss is bits/dim + y_weight · cross-entropy in bits per image (the official conditional runs use
# y_weight = 0.01). We train the study model (the bits/dim table's model of the dataset with a conditional prior and
# additive coupling, as the official conditional runs; its length is the profile's length for these studies; the cpu
# profile runs it on the 8x8 digits, whose table Glow passes the sample gates at 1,000 steps) for several y_weight
# and several training seeds, draw samples of each requested class, and ask the measuring classifier (trained on
# real images only) whether it sees that class; its accuracy on real test images is the baseline beside every
# number. The model's own classifier head is scored on the real test images too. Every model must first pass the
# **sanity gates** on draws of their own: a classifier reading faint blobs as some class says nothing about
# conditioning.

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `class_conditional.requested_class`;
# - the official code's options: `--ycond` (the conditional prior), `--weight_y` (y_weight), `--flow_coupling 0`
#   (additive coupling); ours: `TrainConfig.y_weight`;
# - the model: `conditional_config` in `glowlib.studies.class_conditional`, built on
#   `glowlib.studies.base.study_config`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
# "auto": every weight (0, 0.01, 1) except at cpu, which trains the official 0.01 alone
y_weights = "auto"
temperatures = [0.7, 1.0]
n_per_class = 50
n_show = 8
# training seeds of each model: the replicates of the comparisons
n_seeds = 3

# %%
from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import class_conditional as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, y_weights=y_weights,
                           temperatures=temperatures, n_per_class=n_per_class, n_show=n_show, n_seeds=n_seeds)
rec = Recorder("class_conditional", p.out_dir, p.profile, p.seed, vars(p), study.device())
result = study.class_conditional(p.profile, p.y_weights, p.temperatures, p.n_per_class, p.n_show, p.n_seeds,
                                 p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
rec.note(classifier=study.classifier_provenance(study.conditional_dataset(p.profile), p.profile))

# %% [markdown]
# ## Sanity gates
# Per model, on T = 1 samples of every class in equal numbers: the measuring classifier's confidence against its
# confidence on real images, the share of draws whose decode overflowed before any redraw, and the mean pixel
# against the real images'. A failed gate makes the comparisons that use the model not testable at this scale.

# %%
gates = result.tables["gates"]
show(gates, "gates", columns=["model", "gate", "value", "reference", "threshold", "passed", "n"])

# %% [markdown]
# ## The models
# Conditional test bits/dim (−log₂ p(x | y)/D) and the accuracy of each model's own classifier head.

# %%
show(result.tables["models"], "models", columns=["y_weight", "seed", "test_bpd", "head_test_accuracy",
                                                 "measuring_classifier_test_accuracy", "n_parameters", "steps"],
     names={"test_bpd": "test bits/dim", "head_test_accuracy": "own head accuracy",
            "measuring_classifier_test_accuracy": "measuring classifier accuracy", "n_parameters": "parameters"},
     percent=["head_test_accuracy", "measuring_classifier_test_accuracy"])

# %% [markdown]
# ## Samples per class
# One row per requested class (first training seed).
# % caption samples_by_class: Samples of the first training seed's class-conditional Glow, one row per requested
# %   class, one panel per temperature.

# %%
rec.figure(study.plot_named_grids({name.removeprefix("samples_"): grid for name, grid in result.images.items()},
                                  ncol=len(p.temperatures)), "samples_by_class")
for name, grid in result.images.items():
    rec.image(grid, name)

# %% [markdown]
# ## Does the measuring classifier see the requested class?
# Mean over training seeds; the "real test images" row is the measuring classifier on a random class-balanced draw
# of real test images.
# % caption accuracy_by_class: The share of samples the measuring classifier assigns to the class they were drawn
# %   for, per requested class and class weight y_weight, mean and standard deviation over training seeds, one
# %   panel per temperature; black ticks: the same classifier on real test images of that class.

# %%
per_class = result.tables["samples"]
summary = study.conditional_summary(per_class)
rec.figure(study.plot_conditional(per_class), "accuracy_by_class")
show(summary, "summary", percent=["accuracy", "worst_class_accuracy"], decimals=3)

# %% [markdown]
# ## Precision, recall and Fréchet distance beside real against real
# Precision and recall as Kynkäänniemi et al. {cite}`kynkaanniemi2019precision`, the Fréchet distance as the FID
# {cite}`heusel2017fid`, both in the measuring classifier's features.
# All classes' samples together against a random class-balanced draw of real test images; the real-vs-real row
# is a disjoint real draw of the same size.

# %%
quality = result.tables["quality"]
show(quality.groupby(["source", "y_weight", "temperature"], dropna=False)[["precision", "recall", "frechet"]].mean()
     .reset_index(), "quality", decimals=3)

# %% [markdown]
# ## Against chance and against y_weight = 0, paired by training seed
# Accuracy on the requested class at T = 0.7 (mean over classes), each seed one replicate (95% t-interval).

# %%
decision = result.tables["decision"]
show(decision, "decision", columns=["comparison", "temperature", "accuracy", "baseline", "difference", "n",
                                    "verdict"], names={"temperature": "T"},
     intervals={"difference": ("ci_low", "ci_high")})

# %%
rec.table(result.tables["models"], "models", keys=["y_weight", "seed"])
rec.table(per_class, "samples", keys=["source", "y_weight", "seed", "temperature", "requested_class"])
rec.table(summary, "summary", keys=["source", "y_weight", "temperature"])
rec.table(quality, "quality", keys=["source", "y_weight", "seed", "temperature"])
rec.table(gates, "gates", keys=["model", "gate"])
rec.table(decision, "decision", keys=["comparison"])
wall_s = rec.finish()["wall_s"]
