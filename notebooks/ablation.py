# %% [markdown]
# # Permutation ablation (Fig. 3)
#
# **Paper:** Kingma & Dhariwal 2018, Sec. 5.1 and Fig. 3. **Claim:** with the same architecture and training,
# the learned invertible 1x1 convolution reaches a lower negative log-likelihood than a fixed channel shuffle,
# which beats reversing the channels; it converges faster; affine coupling beats additive coupling; and the 1x1
# convolution costs only ~7% more wall time and ~0.2% more parameters.
#
# We train every permutation × coupling variant for several seeds (through the trained-model cache: nothing is
# retrained when this notebook is rerun), plus the *fixed random rotation* the reviewers asked for (a 1x1
# convolution that is initialised like Glow's but never trained). Data and model sizes follow the profile
# (`glowlib.profiles.ablation_config`); the paper used CIFAR-10 at full scale.
#
# Every claim is decided by a paired test over training seeds (the same seed gives both variants the same data
# order and noise): the mean of the per-seed differences with its 95% t-interval. Fig. 3 compares the variants at
# equal epochs, so its claims are decided at equal steps; the same differences at equal wall time (both runs of a
# seed cut at the shorter one's training time) stand beside them. The 1x1 convolution's cost is counted
# (parameters and FLOPs at the paper's configuration) and profiled (`results/bench/profile_*.json`), not read
# from the runs' wall times, which vary by more than the cost between identical workloads on a shared machine.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
permutations = ["reverse", "shuffle", "conv1x1", "rotation"]
couplings = ["additive", "affine"]
n_seeds = 3
# the benchmark records whose profiles give the 1x1's share of a training step's time
bench_dir = "results/bench"

# %%
from IPython.display import Markdown, display

from glowlib.results import Recorder
from glowlib.studies import ablation as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, permutations=permutations,
                           couplings=couplings, n_seeds=n_seeds, bench_dir=bench_dir)
rec = Recorder("ablation", p.out_dir, p.profile, p.seed, vars(p), study.device())

# %%
result = study.ablation(p.profile, p.permutations, p.couplings, p.n_seeds, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
runs, curves = result.tables["runs"], result.tables["curves"]
summary = study.ablation_summary(runs, curves)
display(Markdown(f"{len(runs)} training runs on `{runs.dataset.iloc[0]}`, {runs.steps.iloc[0]} steps each "
                 f"({runs.images_seen.iloc[0]:,} images); test bits/dim on {runs.n_test.iloc[0]:,} test images."))

# %% [markdown]
# ## Test bits/dim during training (Fig. 3)
# Mean over seeds, with a band of ± one standard deviation.

# %%
fig = study.plot_ablation(curves, "test")
rec.figure(fig, "test_curves")

# %% [markdown]
# ## Final bits/dim, parameters and wall time
# Test bits/dim at the checkpoint with the lowest validation bits/dim (validation images are held out of the
# training split). `curve_mean_bpd` is the mean of the test curve over all evaluations: lower means ahead during
# training. The last two columns compare each variant's parameters and training wall time with `reverse`.

# %%
summary.round(4)

# %% [markdown]
# ## Train and validation curves
# `train` is the running training loss of the current weights; `train_eval`, `val` and `test` evaluate the
# Polyak-averaged weights the same way on training, validation and test images.

# %%
fig = study.plot_splits(curves.assign(variant=curves.permutation + " / " + curves.coupling), by="variant",
                        title="bits/dim by split (mean ± std over seeds)")
rec.figure(fig, "split_curves")

# %% [markdown]
# ## Paired differences at equal steps and at equal wall time
# Each comparison `a - b` per training seed, its mean and 95% t-interval over seeds: at equal steps (each run's
# best-validation evaluation over its whole training) and at equal wall time (each seed's two runs cut at the
# shorter one's training time, each at its best-validation evaluation up to then). `pairs` holds the per-seed
# values; the claims read them.

# %%
pairs = result.tables["pairs"]
pair_summary = study.pair_summary(pairs)
rec.figure(study.plot_pairs(pair_summary, "Permutations and couplings: paired differences (a - b)"), "pairs")
pair_summary.round(4)

# %% [markdown]
# ## What the 1x1 convolution costs
# Parameters at the paper's CIFAR-10 configuration (free parameters under the LU parameterisation, counted from
# a built model), FLOPs of one training step there (counted), and the share of a profiled training step's time
# spent in the 1x1 group. `extra` is what the 1x1 adds against a model without it.

# %%
conv1x1 = study.conv1x1_cost(p.bench_dir)
conv1x1.round(5)

# %%
rec.table(runs, "runs", keys=["permutation", "coupling", "seed"])
rec.table(pairs, "pairs", keys=["group", "a", "b", "seed"])
rec.table(pair_summary, "pair_summary", keys=["group", "a", "b", "basis"])
rec.table(conv1x1, "conv1x1_cost", keys=["measure", "source"])
rec.table(curves, "curves", keys=["permutation", "coupling", "seed", "step", "split"])
rec.table(summary, "summary", keys=["permutation", "coupling"])
rec.finish()["wall_s"]
