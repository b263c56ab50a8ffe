# %% [markdown]
# # Interpolation between real images (paper's Fig. 5)
# % lead figure interpolation_figure
#
# **Paper:** Kingma & Dhariwal 2018 {cite}`kingma2018glow`, Sec. 5 and Fig. 5: two real images encoded, and the points
# on the line between their latents decoded.
#
# The endpoints are decoded from the encoded latents themselves, so they test the inverse: below, the largest decode
# error and the endpoint pixels that differ from the real images. The model is the one Glow of the dataset that the
# samples, manipulation, temperature and nearest-neighbour notebooks share, on the profile's dataset for figures
# (MNIST digits {cite}`lecun1998mnist` at smoke and cpu, CIFAR-10 {cite}`krizhevsky2009cifar` at gpu and paper).

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `interpolation.exact_reconstruction`;
# - the figures' dataset of each profile: `Profile.figure_dataset` in `glowlib/profiles.py`; the study:
#   `glowlib.studies.interpolation`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
dataset = "auto"
n_pairs = 6
n_points = 9

# %%
from IPython.display import Markdown, display

from glowlib.analysis.presentation import csv_link
from glowlib.results import Recorder
from glowlib.studies import interpolation as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, dataset=dataset, n_pairs=n_pairs,
                           n_points=n_points)
rec = Recorder("interpolation", p.out_dir, p.profile, p.seed, vars(p), study.device())
trained = study.shared_model(p.profile, p.dataset)
rec.model(f"glow-{p.dataset}", trained)

# %%
x_a, x_b, index_a, index_b = study.test_pairs(p.dataset, p.n_pairs, p.seed)
result = study.interpolation(trained.model, x_a, x_b, index_a, index_b, p.n_points)
recon = result.tables["reconstruction"]
study.publish(rec, **study.page_values(recon))

# %% [markdown]
# Largest decode error at the endpoints: {glue:text}`largest_error:.2e` (half a quantisation bin:
# {glue:text}`half_bin:.2e`); endpoint pixels that differ from the real images: {glue:text}`pixels_differing`.

# %% [markdown]
# ## Interpolations
# % caption interpolation_figure: Pairs of real test images (first and last columns) and the images decoded from
# %   evenly spaced points on the straight line between their latents; the ends are the real images, decoded
# %   back from their own latents.
# % caption interpolation_figure (cpu): Pairs of real test digits (first and last columns) and the images decoded
# %   from evenly spaced points on the straight line between their latents (Glow with additive coupling, the
# %   5,000 MNIST digits): each path turns one digit into the other through blurred in-between shapes, and its
# %   ends are the real images. This model fails the samples page's recall and class-coverage gates: the paths
# %   show what the exact inverse does, not a model judged to draw digits well.
# % caption interpolation_explorer: Drag the slider to move along the path from z_a (t = 0) to z_b (t = 1): each
# %   row is a pair of real test images with the image decoded at that point between them.
# One row per pair of test images: the real image a, then the path from z_a to z_b, then the real image b.

# %%
path = result.images["interpolation"]                          # (pairs, points, C, H, W)
rows = study.path_grid(x_a, path, x_b)
rec.image(rows, "interpolation", "real a | decoded path | real b")
fig = study.show(rows, "real a | decoded path from z_a to z_b | real b", zoom=3)
rec.figure(fig, "interpolation_figure")

# %%
# the same path point by point (every pair between its real images), the frames of the page's explorer
for t, grid in study.path_steps(x_a, path, x_b).items():
    rec.image(grid, f"interpolation_t{t:.3f}", f"real a | decoded at t = {t:.3f} | real b")

# %% [markdown]
# ## Distance to the endpoints along the path
# % caption distance_along_path: Mean absolute pixel difference, on the 8-bit scale, of each decoded point to
# %   the real image a and to the real image b, against the position t along the path: each distance falls to
# %   zero at its own end.
# Mean absolute pixel difference (0-255) of each decoded point to the real images a and b.

# %%
table = result.tables["interpolation"]
rec.figure(study.plot_distance_along_path(table), "distance_along_path")
display(Markdown(csv_link("interpolation", "the distances of every point of every path") + " "
                 + csv_link("reconstruction", "the endpoints' decode errors per pair")))

# %%
rec.table(table, "interpolation", keys=["pair", "t"])
rec.table(recon, "reconstruction", keys=["pair"])
wall_s = rec.finish()["wall_s"]
