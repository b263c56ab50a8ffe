# %% [markdown]
# # What makes Glow work? Depth, ActNorm and the learned prior at equal compute
# % lead figure what_works
#
# **Reviewers** of Glow {cite}`kingma2018glow` asked for an ablation of what makes Glow work (depth? ActNorm?
# permutation?), baselines trained with the same compute, and error bars over seeds. The permutation ablation (paper
# Sec. 5.1, Fig. 3, on its own page) covers the permutation and the coupling; this page changes one other thing at a
# time in its 1x1/affine model (the *reference*):
#
# * **depth K at a fixed parameter count**: K halved and doubled, with the coupling width chosen by counting the
#   parameters of built models so that every depth has the reference's parameter count (within 2%);
# * **no normalisation**: ActNorm removed;
# * **standard-normal prior**: neither the split priors predicted from the kept half (RealNVP's multi-scale
#   architecture {cite}`dinh2017realnvp`) nor the learned top prior.
#
# Every run has the reference's data, steps, batch and schedule (equal training compute in steps and images).
# Each variant is compared with the reference **paired by training seed** (the mean of the per-seed differences
# with its 95% t-interval): at equal steps, which decides (one change at a time, as in the ablation), and at
# equal compute beside it: from the variant's own runs where its counted FLOPs per step match the reference's within
# 1%, else (the depth variants at the same parameter count) from the variant trained again, to its end, on the
# reference's FLOPs budget (its steps, warmup and learning-rate decay laid over that budget), never from a run cut
# partway through its decay. The permutation ablation's recorded comparisons (its
# page's `pairs.csv`, so that page runs first) are shown again here, their claim decided at equal compute (the
# reviewers' "same compute"), with the measured training time of every run drawn beside. Models come from the
# trained-model cache. Like the permutation ablation's, its verdicts are about likelihood only (no samples
# are judged), so it runs the ablation's model size, smaller than the bits/dim table's where compute is short.

# %% [markdown]
# :::{dropdown} How this was computed
# - claims decided here, by the ids the claims page uses: `what_works.one_change_ablations`,
#   `what_works.conv1x1_at_equal_time`;
# - the study: `glowlib.studies.what_works`; the variant without ActNorm: `GlowConfig.actnorm=False`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
# "auto": the profile's depths, no_actnorm and standard_prior
variants = "auto"
n_seeds = 3

# %%
from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import what_works as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, variants=variants, n_seeds=n_seeds)
rec = Recorder("what_works", p.out_dir, p.profile, p.seed, vars(p), study.device())
reference = study.reference_variant(p.profile)

# %%
result = study.what_works(p.profile, p.variants, p.n_seeds, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
runs, curves = result.tables["runs"], result.tables["curves"]
summary = study.what_works_summary(runs, reference)
study.publish(rec, n_runs=len(runs), dataset=runs.dataset.iloc[0], steps=int(runs.steps.iloc[0]),
              batch=int(runs.images_seen.iloc[0] // runs.steps.iloc[0]), reference=reference)

# %% [markdown]
# {glue:text}`n_runs` runs on {glue:text}`dataset`, {glue:text}`steps` steps of {glue:text}`batch` images each;
# the reference is {glue:text}`reference` (the permutation ablation's conv1x1/affine model).
#
# ## Final test bits/dim at equal steps
# % caption what_works: Test bits/dim (left) and training time (right) of each one-change variant of the
# %   reference Glow (red): half and twice its depth at the same parameter count, no ActNorm, and a
# %   standard-normal prior; mean ± standard deviation over training seeds. Lower bits/dim is better. The
# %   bits/dim are dots on an axis that does not start at zero (bars would have to, and there the differences
# %   vanish), the reference's mean dotted; the times are bars from zero.
# Test bits/dim at the best-validation checkpoint, mean over seeds (its std and the wall times are in the CSV);
# `diff_vs_reference` is the mean of the per-seed differences from the reference (same seed: same data order and
# noise) and `diff_sem` its standard error. `parameters_vs_reference` shows the depth variants' parameter match;
# `wall_vs_reference` what the same number of steps cost.

# %%
rec.figure(study.plot_what_works(summary, reference), "what_works")
show(summary, "summary", columns=["variant", "K", "width", "test_bpd_mean", "diff_vs_reference", "diff_sem",
                                  "n_parameters", "parameters_vs_reference", "wall_vs_reference"],
     names={"test_bpd_mean": "test bits/dim", "diff_vs_reference": "vs reference", "diff_sem": "sem",
            "n_parameters": "parameters", "parameters_vs_reference": "parameters vs ref.",
            "wall_vs_reference": "wall time vs ref."},
     percent=["parameters_vs_reference", "wall_vs_reference"])

# %% [markdown]
# ## Each variant against the reference, at equal steps and at equal compute
# % caption variant_pairs: Each variant minus the reference, paired by training seed, with 95% intervals on each
# %   basis its legend names: right of zero, the change made the model worse.
# % caption variants_vs_wall_time: Test bits/dim against CPU seconds of training for every variant and seed; the
# %   dashed line is the time at which the pairs were compared.
# A deeper, narrower model costs more time per step at the same parameter count; the curves against measured time
# show how much on this machine. `claimed` is the direction expected were Glow's choices what makes it work (more
# depth lower; no ActNorm or a standard prior higher).

# %%
pairs = result.tables["pairs"]
claimed = {(g, a, b): study.claimed_direction(p.profile, a) for g, a, b in zip(pairs.group, pairs.a, pairs.b)}
pair_summary = study.pair_summary(pairs, claimed)
rec.figure(study.plot_pairs(pair_summary, f"Each variant minus the reference {reference}, paired by seed"),
           "variant_pairs")
rec.figure(study.plot_bpd_vs_wall(curves, ["variant"]), "variants_vs_wall_time")
show(pair_summary, "pair_summary", columns=["a", "b", "basis", "n_seeds", "difference", "claimed", "verdict"],
     intervals={"difference": ("ci_low", "ci_high")}, names={"difference": "a - b"}, units={"difference": "bits/dim"})

# %% [markdown]
# ## The permutation ablation at equal compute
# % caption ablation_pairs: The permutation ablation's paired differences (a − b, test bits/dim) with 95%
# %   intervals on each basis its legend names: left of zero, a is better.
# % caption ablation_vs_wall_time: Test bits/dim of the permutation ablation's runs against CPU seconds of
# %   training, additive and affine coupling in their own panels.
# The ablation page's recorded runs and comparisons. A learned 1x1 convolution adds a fraction of a percent to a
# step's counted FLOPs, so its runs of equal steps are also its runs of equal compute; on a CPU its extra Python
# dispatch costs more measured time than that, which the curves against time show and which decides nothing.

# %%
ab_curves, ab_pairs = study.ablation_tables(p.profile)
ab_summary = study.pair_summary(ab_pairs)
rec.figure(study.plot_pairs(ab_summary, "Permutation ablation: paired differences (a - b)"), "ablation_pairs")
rec.figure(study.plot_bpd_vs_wall(ab_curves, ["permutation"], panel="coupling",
                                  title="Permutation ablation: test bits/dim against training time"),
           "ablation_vs_wall_time")
show(ab_summary, "ablation_pair_summary", columns=["group", "a", "b", "basis", "n_seeds", "difference", "verdict"],
     intervals={"difference": ("ci_low", "ci_high")}, names={"group": "coupling", "n_seeds": "seeds",
                                                             "difference": "a - b"}, units={"difference": "bits/dim"})

# %%
rec.table(runs, "runs", keys=["variant", "seed"])
rec.table(curves, "curves", keys=["variant", "seed", "step", "split"])
rec.table(summary, "summary", keys=["variant"])
rec.table(pairs, "pairs", keys=["group", "a", "b", "seed"])
rec.table(pair_summary, "pair_summary", keys=["group", "a", "b", "basis"])
rec.table(ab_pairs, "ablation_pairs", keys=["group", "a", "b", "seed"])
rec.table(ab_summary, "ablation_pair_summary", keys=["group", "a", "b", "basis"])
wall_s = rec.finish()["wall_s"]
