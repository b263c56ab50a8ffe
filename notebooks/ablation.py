# %% [markdown]
# # Permutation ablation (paper's Fig. 3)
# % lead figure test_curves
#
# **Paper:** Kingma & Dhariwal 2018 {cite}`kingma2018glow`, Sec. 5.1 and Fig. 3: the learned invertible 1x1
# convolution against a fixed channel shuffle and the channel reversal of RealNVP {cite}`dinh2017realnvp`, with
# affine and additive coupling.
#
# We train every permutation × coupling variant for several seeds (through the trained-model cache: nothing is
# retrained when this notebook is rerun), plus the *fixed random rotation* the reviewers asked for (a 1x1
# convolution that is initialised like Glow's but never trained). Data and model sizes follow the profile (each
# profile names the ablation's dataset and, where compute is short, a smaller model); the paper used CIFAR-10
# {cite}`krizhevsky2009cifar` at full scale, and the smaller profiles use MNIST digits {cite}`lecun1998mnist` or
# Fashion-MNIST {cite}`xiao2017fashion`. Each model is evaluated with its Polyak-averaged weights
# {cite}`polyak1992averaging`.
#
# Every claim is decided by a paired test over training seeds (the same seed gives both variants the same data order
# and noise): the mean of the per-seed differences with its 95% t-interval. Fig. 3 compares the variants at equal
# epochs, so its claims are decided at equal steps; the same differences at equal compute stand beside them. The
# permutations' counted FLOPs per step agree within 1%, so their own runs compare at equal compute too; an affine
# step costs more than an additive one, so each additive variant is trained again, to its end, on the affine
# variant's FLOPs budget (more steps, its warmup and learning-rate decay laid over them), and affine against additive
# at equal compute reads that run. The 1x1 convolution's cost is counted (parameters and FLOPs at the paper's
# configuration) and profiled (the benchmarks' operation profiles of a training step), not read from the runs' wall
# times, which vary by more than the cost between identical workloads on a shared machine.
#
# Every verdict here is about likelihood only: the page shows and judges no samples. That is why its many runs may
# use a smaller Glow than the bits/dim table's where compute is short (the `cpu` profile's ablation model; the
# line below the first cell gives the runs' steps and images): a small model ranks the variants' likelihoods, while
# judging samples needs a model that passes the sanity gates of the studies that do.

# %% [markdown]
# :::{dropdown} How this was computed
# - claims decided here, by the ids the claims page uses: `ablation.permutation_order`,
#   `ablation.conv1x1_converges_faster`, `ablation.affine_beats_additive`, `ablation.conv1x1_cost`,
#   `ablation.learned_beats_rotation`, `ablation.error_bars`;
# - each profile's ablation model and data: `glowlib.profiles.ablation_config`; the study itself:
#   `glowlib.studies.ablation`;
# - the colour patches the order claim is decided on where the ablation's data have one channel:
#   `glowlib.data` (`"patches"`, `patch_corners`), their runs `glowlib.studies.ablation.order_study`;
# - the profiled training steps behind the 1x1 convolution's share of time: `results/bench/profile_*.json`.
# :::

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
import pandas as pd

from glowlib.analysis.presentation import beside_paper, show
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
conv1x1 = study.conv1x1_cost(p.bench_dir)
study.publish(rec, **study.page_values(runs, conv1x1))

# %% [markdown]
# {glue:text}`n_runs` training runs on {glue:text}`dataset`, {glue:text}`steps` steps each
# ({glue:text}`images_seen:,` images); test bits/dim on {glue:text}`n_test:,` test images.
#
# ## Test bits/dim during training (paper's Fig. 3)
# % caption test_curves: Test bits/dim against epochs of training for each way of mixing the channels (reverse,
# %   shuffle, the learned 1x1 convolution, a fixed random rotation), additive coupling on the left and affine
# %   on the right: the mean over training seeds, with a band of one standard deviation. Lower is better.
# Mean over seeds, with a band of ± one standard deviation. The paper's Fig. 3 gives these curves on CIFAR-10
# (3x32x32, 50,000 training images) and no final numbers in its text, so there is no published value to draw beside
# ours, and no step count. Our largest variant has {glue:text}`n_parameters:,` parameters against the
# {glue:text}`paper_parameters:,` of the paper's CIFAR-10 configuration (counted from a built model), that is
# {glue:text}`parameters_share:.2%` of it.

# %%
fig = study.plot_ablation(curves, "test")
rec.figure(fig, "test_curves")

# %% [markdown]
# ## Final bits/dim, parameters and wall time
# Test bits/dim at the checkpoint with the lowest validation bits/dim (validation images are held out of the
# training split). `curve_mean_bpd` is the mean of the test curve over all evaluations: lower means ahead during
# training (the number of seeds and the spread of wall times are in the CSV). The last two columns compare each
# variant's parameters and training wall time with `reverse`.

# %%
show(summary, "summary", columns=["permutation", "coupling", "test_bpd_mean", "test_bpd_std", "curve_mean_bpd",
                                  "n_parameters", "wall_s_mean", "parameters_vs_reverse", "wall_vs_reverse"],
     names={"test_bpd_mean": "test bits/dim", "test_bpd_std": "std over seeds", "curve_mean_bpd": "curve mean",
            "n_parameters": "parameters", "wall_s_mean": "wall time",
            "parameters_vs_reverse": "parameters vs reverse",
            "wall_vs_reverse": "wall time vs reverse"},
     units={"wall_s_mean": "s"}, percent=["parameters_vs_reverse", "wall_vs_reverse"],
     decimals={"wall_s_mean": 1})

# %% [markdown]
# ## Train and validation curves
# % caption split_curves: Bits/dim on each split against epochs, one panel per permutation and coupling (mean
# %   over training seeds, band of one standard deviation): the running training loss, and the averaged weights
# %   scored on training, validation and test images. Where validation and test stay on the training curve, no
# %   variant has begun to overfit.
# `train` is the running training loss of the current weights; `train_eval`, `val` and `test` evaluate the
# Polyak-averaged weights the same way on training, validation and test images.

# %%
fig = study.plot_splits(curves.assign(variant=curves.permutation + " / " + curves.coupling), by="variant",
                        title="bits/dim by split (mean ± std over seeds)")
rec.figure(fig, "split_curves")

# %% [markdown]
# ## Paired differences at equal steps and at equal compute
# % caption pairs: Each paired difference a − b in test bits/dim with its 95% interval over training seeds, on
# %   each basis its legend names (equal steps, and equal training time or equal compute). Left of zero, a is
# %   better; an interval that crosses zero decides nothing.
# Each comparison `a - b` per training seed, its mean and 95% t-interval over seeds: at equal steps (each run's
# best-validation evaluation over its whole training) and at equal compute (the same runs, where both spend the
# same counted FLOPs within 1%; for affine against additive, the additive run trained on the affine budget).
# `pairs.csv` holds the per-seed values; the claims read them.

# %%
pairs = result.tables["pairs"]
pair_summary = study.pair_summary(pairs)
rec.figure(study.plot_pairs(pair_summary, "Permutations and couplings: paired differences (a - b)"), "pairs")
show(pair_summary, "pair_summary", columns=["group", "a", "b", "basis", "n_seeds", "difference", "verdict"],
     intervals={"difference": ("ci_low", "ci_high")}, names={"group": "coupling", "n_seeds": "seeds",
                                                             "difference": "a - b"}, units={"difference": "bits/dim"})

# %% [markdown]
# ## The order of the permutations on colour patches
# Fig. 3 ranks the 1x1 convolution below shuffle and shuffle below reverse on CIFAR-10, whose colour images give a
# coupling of the first level {glue:text}`rgb_channels` channels (three colours, squeezed 2x2). Images with one
# channel give it {glue:text}`gray_channels`, and a random shuffle of so few channels leaves the coupling's two
# halves where they were in one step of {glue:text}`gray_shuffle_keeps`, while reverse swaps them in every step:
# shuffle against reverse would then measure how often a shuffle repeats a split, not what Fig. 3 compares. So where
# the ablation's own data have one channel, the order claim is decided here instead, on {glue:text}`order_runs`
# runs ({glue:text}`order_steps` steps each) of the ablation's model on colour patches:
# {glue:text}`patch_size`x{glue:text}`patch_size` 8-bit pieces cut from the {glue:text}`patch_photos` photographs
# that scikit-learn ships (a Chinese temple and a flower), {glue:text}`patch_train:,` for training and
# {glue:text}`patch_test:,` for testing. The test patches come from the rightmost quarter of each photograph and the
# training patches from the rest, a patch's width apart, so no test pixel was seen in training. Two photographs are
# far less varied than CIFAR-10's photographs of ten classes of objects: the verdict is about these data, on which a
# coupling sees as many channels as in Fig. 3, and the one-channel runs' differences stand beside it in the claim's
# numbers. There is no table where the ablation's own data are in colour and decide the claim themselves.

# %%
order = study.order_study(p.profile, p.couplings, p.n_seeds, p.seed)
for name, trained in order.models.items():
    rec.model(name, trained)
order_summary = study.pair_summary(order.tables["order_pairs"]) if order.tables else None
study.publish(rec, **study.order_values(order.tables.get("order_runs")))
if order_summary is not None:
    show(order_summary, "order_pair_summary", columns=["group", "a", "b", "basis", "n_seeds", "difference", "verdict"],
         intervals={"difference": ("ci_low", "ci_high")}, names={"group": "coupling", "n_seeds": "seeds",
                                                                 "difference": "a - b"},
         units={"difference": "bits/dim"})

# %% [markdown]
# ## What the 1x1 convolution costs
# Parameters at the paper's CIFAR-10 configuration (free parameters under the LU parameterisation, counted from
# a built model), FLOPs of one training step there (counted), and the share of a profiled training step's time
# spent in the 1x1 group. `extra` is what the 1x1 adds against a model without it. The paper's own figures
# (Sec. 5.1: ~0.2% more parameters, ~7% more wall time, on its GPUs) stand in the rows marked as the paper's.

# %%
ours_cost = conv1x1[conv1x1.measure.isin(list(study.PAPER_CONV1X1))][["measure", "source", "depth", "batch", "extra"]]
paper_cost = pd.DataFrame({"measure": list(study.PAPER_CONV1X1), "extra": list(study.PAPER_CONV1X1.values()),
                           "source": "Kingma & Dhariwal 2018, Sec. 5.1 (CIFAR-10, 3x32x32, full scale, GPUs)"})
show(beside_paper(ours_cost, paper_cost, label="measure").sort_values("measure", kind="stable"), "conv1x1_cost",
     names={"extra": "1x1 adds"}, percent=["extra"], decimals={"extra": 4})

# %%
rec.table(runs, "runs", keys=["permutation", "coupling", "seed"])
rec.table(pairs, "pairs", keys=["group", "a", "b", "seed"])
rec.table(pair_summary, "pair_summary", keys=["group", "a", "b", "basis"])
rec.table(conv1x1, "conv1x1_cost", keys=["measure", "source"])
rec.table(curves, "curves", keys=["permutation", "coupling", "seed", "step", "split"])
rec.table(summary, "summary", keys=["permutation", "coupling"])
if order.tables:
    rec.table(order.tables["order_runs"], "order_runs", keys=["permutation", "coupling", "seed"])
    rec.table(order.tables["order_curves"], "order_curves", keys=["permutation", "coupling", "seed", "step", "split"])
    rec.table(order.tables["order_pairs"], "order_pairs", keys=["group", "a", "b", "seed"])
    rec.table(order_summary, "order_pair_summary", keys=["group", "a", "b", "basis"])
wall_s = rec.finish()["wall_s"]
