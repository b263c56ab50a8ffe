# %% [markdown]
# # Attribute manipulation (paper's Fig. 6)
# % lead figure response
#
# **Paper:** Kingma & Dhariwal 2018 {cite}`kingma2018glow`, Sec. 5 and Fig. 6: the direction mean z(images with an
# attribute) − mean z(images without it), found after training from labels the model never saw, added to the latent
# of an image: decode z + α·direction.
#
# On MNIST-like data {cite}`lecun1998mnist` the attributes are **measured from the images** (stroke thickness and
# slant), each binarised at its median over the training images used. The claim is then quantified: we measure the
# same attribute on the manipulated images and plot it against α; it should rise with α. On CelebA
# {cite}`liu2015celeba` (at gpu and paper, when its files are present) the attribute file gives the labels; without
# CelebA, CIFAR-10 {cite}`krizhevsky2009cifar` has no attributes, so a class is one (mean z of the class − mean z of
# the other classes); on both only the images are shown. The table's `direction` column says which. The model is the
# one shared Glow of the dataset (trained once, cached).
#
# Any step in latent space changes a decoded image somewhat, so the claim is read against a control: the same test
# images moved along random directions of the same length as the attribute's at every level. The claim is about
# Glow trained this way, not one network, so it is decided over training seeds of the shared Glow: for each seed,
# the mean per-image slope of the attribute against α along its direction minus that along the random directions,
# with a paired t-interval over seeds for each attribute; the claim needs every attribute to rise, so each
# interval is widened for their number (Bonferroni). What this shows is limited: to first order, decoding a latent
# moved by the difference of two groups' mean latents moves the image towards the difference of the groups' images,
# for any smooth invertible map, so the claim says that the attribute's direction does more than an arbitrary move
# of the same length, not that Glow's latent space is organised by the attribute in any deeper way.

# %% [markdown]
# :::{dropdown} How this was computed
# - claim decided here, by the id the claims page uses: `manipulation.attribute_direction`;
# - the measured attributes: `glowlib.analysis.measure_attributes` (`stroke_thickness` and `slant` in
#   `glowlib/analysis/attributes.py`).
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
dataset = "auto"
attributes = "auto"
alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]
n_images = 16
n_direction = 2000
# training seeds of the shared Glow the claim is decided over (3: the fewest the t-interval needs)
n_training_seeds = 3

# %%
from IPython.display import display

from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import manipulation as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, dataset=dataset, attributes=attributes,
                           alphas=alphas, n_images=n_images, n_direction=n_direction,
                           n_training_seeds=n_training_seeds)
rec = Recorder("manipulation", p.out_dir, p.profile, p.seed, vars(p), study.device())
trained = study.shared_model(p.profile, p.dataset)
rec.model(f"glow-{p.dataset}", trained)
others = study.seed_models(p.profile, p.dataset, p.n_training_seeds)
for s, other in others.items():
    rec.model(f"glow-{p.dataset}-seed{s}", other)

# %%
result = study.manipulation(trained.model, trained.run, p.attributes, p.alphas, p.n_images, p.n_direction, p.seed)
table = result.tables["manipulation"]

# %% [markdown]
# ## Manipulated test images
# % caption manipulation_thickness_figure: Test images (rows) moved along the thickness direction, from its
# %   negative to its positive end (columns); the response figure below measures what each step changed.
# % caption manipulation_thickness_figure (cpu): Test 8x8 digits (rows) moved along the thickness direction, from
# %   its negative to its positive end (columns), by Glow with affine coupling (the bits/dim table's digits model,
# %   training seed 0, which passes every sample gate).
# % caption manipulation_slant_figure: The same test images moved along the slant direction, from its negative
# %   to its positive end (columns); the response figure below measures what each step changed.
# % caption manipulation_slant_figure (cpu): The same test 8x8 digits moved along the slant direction, from its
# %   negative to its positive end (columns).
# One figure per attribute: one row per test image, α from −1 (left) to 1 (right); α = 0 is the image itself.

# %%
for attribute, images in result.images.items():
    grid = study.attribute_grid(images)
    rec.image(grid, f"manipulation_{attribute}", f"direction {attribute}, alpha {p.alphas}")
    rec.figure(study.show(grid, f"direction: {attribute}   (α = {', '.join(f'{a:g}' for a in p.alphas)})", zoom=3),
               f"manipulation_{attribute}_figure")

# %% [markdown]
# ## Does the measured attribute move the intended way?
# % caption response: The measured stroke thickness (left) and slant (right) of each manipulated image against
# %   α, the distance moved along its direction: grey, each image; red, the mean over images. A rising line
# %   means that the direction changes the attribute it was built for.
# Grey: each image; red: the mean over images. The image is the unit: the α values of one image share its latent,
# so the table fits each image's least-squares slope of the measured attribute against α, then gives their mean
# with its standard error and 95% t-interval over images (`n_slopes`), and the change of the mean from the smallest
# to the largest α. A decode that overflowed to inf/NaN (`decoded_finite` false, shown mid-grey; counted in
# `n_nonfinite`) is left out of its image's fit. Attributes that cannot be measured from the images have no
# such table: the grids above are the result.

# %%
if "response" in result.tables:
    rec.figure(study.plot_response(table), "response")
    show(result.tables["response"], "response",
         columns=["attribute", "slope", "slope_stderr", "n_slopes", "change", "n_images", "n_nonfinite"],
         intervals={"slope": ("slope_ci_low", "slope_ci_high")},
         names={"slope": "slope per unit α", "slope_stderr": "standard error", "n_slopes": "images fitted",
                "n_nonfinite": "non-finite decodes"})

# %% [markdown]
# ## Along the attribute's direction against random directions, over training seeds
# % lead table seeds
# Each training seed of the shared Glow, with the same direction and test images: the mean per-image slope of the
# measured attribute against α along the attribute's direction, and along random directions of its length (the
# control). The claims page decides on their difference over seeds.

# %%
if "response" in result.tables:
    seeds = study.seed_response(others, p.attributes, p.alphas, p.n_images, p.n_direction, p.seed, done={0: result})
    show(seeds, "seeds", columns=["attribute", "training_seed", "slope", "slope_random"],
         names={"training_seed": "training seed", "slope": "slope along the direction",
                "slope_random": "slope along random directions"})

# %%
rec.table(table, "manipulation", keys=["attribute", "image", "alpha"])
if "response" in result.tables:
    rec.table(result.tables["response"], "response", keys=["attribute"])
    rec.table(seeds, "seeds", keys=["attribute", "training_seed"])
wall_s = rec.finish()["wall_s"]
