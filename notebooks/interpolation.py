# %% [markdown]
# # Interpolation between real images (Fig. 5)
#
# **Paper:** Kingma & Dhariwal 2018, Sec. 5 and Fig. 5. **Claim:** encoding two real images and decoding points on
# the line between their latents gives a smooth path from one to the other; because the flow is exactly
# invertible, the path starts and ends at the real images.
#
# The endpoints are decoded from the encoded latents themselves, so they test the inverse: we print the largest
# decode error and count the endpoint pixels that differ from the real images. The model is the one Glow of the
# dataset that the samples, manipulation, temperature and nearest-neighbour notebooks share.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
dataset = "mnist5k"
n_pairs = 6
n_points = 9

# %%
import matplotlib.pyplot as plt
import torch

from glowlib import analysis
from glowlib import experiments as ex
from glowlib.results import Recorder

p = ex.check_parameters("interpolation", profile=profile, seed=seed, out_dir=out_dir, dataset=dataset,
                        n_pairs=n_pairs, n_points=n_points)
rec = Recorder("interpolation", p.out_dir, p.profile, p.seed, vars(p), ex.device())
trained = ex.shared_model(p.profile, p.dataset)
rec.model(f"glow-{p.dataset}", trained)

# %%
x_a, x_b, index_a, index_b = ex.test_pairs(p.dataset, p.n_pairs, p.seed)
result = ex.interpolation(trained.model, x_a, x_b, index_a, index_b, p.n_points)
recon = result.tables["reconstruction"]
print(f"largest decode error at the endpoints: {recon.max_abs_error_all_pairs.max():.2e} "
      f"(half a quantisation bin: {recon.half_bin.iloc[0]:.2e}); endpoint pixels that differ from the real "
      f"images: {int(recon.pixels_differing_a.sum() + recon.pixels_differing_b.sum())}")

# %% [markdown]
# ## Interpolations
# One row per pair of test images: the real image a, then the path from z_a to z_b, then the real image b.

# %%
path = result.images["interpolation"]                          # (pairs, points, C, H, W)
rows = analysis.image_grid(torch.cat([x_a[:, None], path, x_b[:, None]], 1).flatten(0, 1), nrow=p.n_points + 2)
rec.image(rows, "interpolation", "real a | decoded path | real b")
fig = ex.show(rows, "real a | decoded path from z_a to z_b | real b", zoom=3)
rec.figure(fig, "interpolation_figure")

# %% [markdown]
# ## Distance to the endpoints along the path
# Mean absolute pixel difference (0-255) of each decoded point to the real images a and b.

# %%
table = result.tables["interpolation"]
fig, ax = plt.subplots(figsize=(5, 3.4))
for column, label in (("mean_abs_diff_to_a", "to image a"), ("mean_abs_diff_to_b", "to image b")):
    stats = table.groupby("t")[column].agg(["mean", "std"])
    ax.errorbar(stats.index, stats["mean"], stats["std"], marker="o", capsize=3, label=label)
ax.set(xlabel="t (0: z_a, 1: z_b)", ylabel="mean |pixel difference|")
ax.legend()
rec.figure(fig, "distance_along_path")

# %%
rec.table(table, "interpolation", keys=["pair", "t"])
rec.table(recon, "reconstruction", keys=["pair"])
rec.finish()["wall_s"]
