# %% [markdown]
# # Nearest neighbours: are the samples copies of training images?
# % lead figure distances
#
# **Reviewers asked** (Glow {cite}`kingma2018glow`, NeurIPS 2018 reviews): a nearest-neighbour analysis in pixel space
# and in feature
# space, to judge overfitting; users of the peer repositories ask the related question of train vs test bits/dim.
#
# For generated samples (at temperature T) we find the nearest training image in pixel space and in the feature
# space of a classifier trained on the real training images (Euclidean distance, exact search with
# scikit-learn), and compare the distances with those of held-out test images to the
# same training set (the check Theis et al. {cite}`theis2016note` discuss, and its limits): a model that copies
# its training images would put its samples much closer to them than
# unseen real images are. The test images are the real baseline beside every sample distance: for each seed of the
# sampler, n samples against a seeded random class-balanced draw of n test images. The claim is decided over those
# seeds (one trained model: the draws are the noise), after the model passes the three sanity gates. Finally, train
# vs test bits/dim over training, from the model's own metrics. The model is the one shared Glow of the dataset
# (trained once, cached).

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `nearest_neighbours.not_copies`;
# - the search: `glowlib.analysis.nearest_neighbours` (scikit-learn's `NearestNeighbors`).
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
dataset = "auto"
temperature = 0.7
# samples per sampling seed, and the size of each test draw (at most the test split)
n_samples = 500
# seeds of the sampler: the replicates of the comparison
n_sampling_seeds = 5
n_show = 8

# %%
from IPython.display import display

from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import nearest_neighbours as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, dataset=dataset, temperature=temperature,
                           n_samples=n_samples, n_sampling_seeds=n_sampling_seeds, n_show=n_show)
rec = Recorder("nearest_neighbours", p.out_dir, p.profile, p.seed, vars(p), study.device())
trained = study.shared_model(p.profile, p.dataset)
rec.model(f"glow-{p.dataset}", trained)
rec.note(classifier=study.classifier_provenance(p.dataset, p.profile))

# %% [markdown]
# ## Sanity gates
# The measuring classifier's confidence on T = 1 samples against its confidence on real images, the share of
# draws whose decode overflowed before any redraw, and the samples' mean pixel against the real images'. A failed
# gate makes the claim not testable at this scale.

# %%
result = study.nearest_neighbour_check(trained.model, trained.run, p.temperature, p.n_samples, p.n_sampling_seeds,
                                       p.seed, classifier=study.measuring_classifier(p.profile, p.dataset))
neighbours, summary, gates = (result.tables[k] for k in ("neighbours", "summary", "gates"))
show(gates, "gates", columns=["model", "gate", "value", "reference", "threshold", "passed", "n"])

# %% [markdown]
# ## Samples beside their nearest training images
# % caption neighbours: Each row: a sample of the model (left), its nearest training image in pixels (middle) and
# %   in the features of the measuring classifier (right); a copied training image would match its neighbour.
# % caption neighbours (cpu): Each row: a sample of Glow on the 8x8 digits (left), its nearest training image in
# %   pixels (middle) and in the features of the measuring classifier (right). At 8x8 pixels a sample and its
# %   neighbour can look alike; the distances below say how far apart they are against real test images.

# %%
rec.figure(study.neighbour_figure(result.images, p.n_show), "neighbours")

# %% [markdown]
# ## Distances to the training set: samples vs unseen test images
# % caption distances: Distance from each sample (blue) and from each real test image (orange, the baseline) to
# %   its nearest training image, in pixels (left) and in classifier features (right). Samples that copied
# %   training images would pile up at zero, left of the test images.
# % caption distances (cpu): Distance from each sample (blue) and from each real test image (orange, the
# %   baseline) to its nearest training image, in pixels (left) and in classifier features (right). Samples that
# %   copied training images would pile up at zero, left of the test images; these lie to their right, in
# %   features most clearly.

# %%
rec.figure(study.plot_distances(neighbours), "distances")
show(summary, "summary", columns=["space", "sampling_seed", "median_sample_to_train", "median_test_to_train", "ratio",
                                  "fraction_samples_closer_than_min_test", "n"],
     names={"median_sample_to_train": "median sample to train", "median_test_to_train": "median test to train",
            "fraction_samples_closer_than_min_test": "samples closer than any test image"},
     percent=["fraction_samples_closer_than_min_test"])

# %% [markdown]
# ## Samples against test images, over sampling seeds
# The ratio of the median distances (samples over test images) minus 1, its 95% interval over the sampling seeds,
# and the verdict: no closer than the test images by more than 10%.

# %%
show(result.tables["decision"], "decision", columns=["space", "mean_ratio", "difference", "n", "verdict", "reason"],
     intervals={"difference": ("ci_low", "ci_high")}, names={"difference": "ratio - 1"})

# %% [markdown]
# ## Train vs test bits/dim during training
# % caption train_vs_test: Bits/dim on each split while the sampled model trained: where the test curve stays on
# %   the training curve, the model has not memorised its training images.
# `train_eval`, `val` and `test` evaluate the same Polyak weights {cite}`polyak1992averaging` the same way on each
# split; `train` is the running
# training loss.

# %%
curves = study.curves(trained, model=f"glow {p.dataset}")
rec.figure(study.plot_splits(curves, by="model", title="train vs test bits/dim"), "train_vs_test")
final = curves[curves.step == curves.step.max()].set_index("split").bpd
show(final.to_frame("bits/dim at the last evaluation"), "curves", decimals=3)

# %%
rec.table(neighbours, "neighbours", keys=["query", "space", "query_index"])
rec.table(summary, "summary", keys=["space", "sampling_seed"])
rec.table(gates, "gates", keys=["model", "gate"])
rec.table(result.tables["decision"], "decision", keys=["space"])
rec.table(curves, "curves", keys=["step", "split"])
wall_s = rec.finish()["wall_s"]
