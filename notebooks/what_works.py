# %% [markdown]
# # What makes Glow work? Depth, ActNorm and the learned prior at equal compute
#
# **Reviewers:** "ablation of what makes Glow work (depth? ActNorm? permutation?)", "baselines trained with the
# same compute; compute reported", "error bars over seeds". The permutation ablation (paper Sec. 5.1, Fig. 3;
# `ablation.py`) covers the permutation and the coupling; this page changes one other thing at a time in its
# 1x1/affine model (the *reference*):
#
# * **depth K at a fixed parameter count**: K halved and doubled, with the coupling width chosen by counting the
#   parameters of built models so that every depth has the reference's parameter count (within 2%);
# * **no normalisation**: ActNorm removed (`GlowConfig.actnorm=False`);
# * **standard-normal prior**: neither the split priors predicted from the kept half nor the learned top prior.
#
# Every run has the reference's data, steps, batch and schedule (equal training compute in steps and images);
# wall time is recorded, and a second comparison reads each run's test bits/dim **at a common wall-clock time**,
# for these variants and for the permutation ablation (the reviewers' "same compute"). All logic is in
# `glowlib.studies.what_works`; models come from the trained-model cache.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
# "auto": the profile's depths, no_actnorm and standard_prior
variants = "auto"
n_seeds = 3
# the permutation ablation's variants, compared at equal wall time
permutations = ["reverse", "shuffle", "conv1x1", "rotation"]
couplings = ["additive", "affine"]
# the common wall time in seconds; 0: the longest time every run reached
wall_s = 0.0

# %%
from IPython.display import Markdown, display

from glowlib.results import Recorder
from glowlib.studies import what_works as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, variants=variants, n_seeds=n_seeds,
                           permutations=permutations, couplings=couplings, wall_s=wall_s)
rec = Recorder("what_works", p.out_dir, p.profile, p.seed, vars(p), study.device())
reference = f"K={study.what_works_reference(p.profile, p.seed).model.depth}"

# %%
result = study.what_works(p.profile, p.variants, p.n_seeds, p.seed)
for name, trained in result.models.items():
    rec.model(name, trained)
runs, curves = result.tables["runs"], result.tables["curves"]
summary = study.what_works_summary(runs, reference)
display(Markdown(f"{len(runs)} runs on `{runs.dataset.iloc[0]}`, {runs.steps.iloc[0]} steps of "
                 f"{runs.images_seen.iloc[0] // runs.steps.iloc[0]} images each; reference: `{reference}` "
                 f"(the permutation ablation's conv1x1/affine model)."))

# %% [markdown]
# ## Final test bits/dim at equal steps
# Test bits/dim at the best-validation checkpoint, mean ± std over seeds; `diff_vs_reference` is the mean of the
# per-seed differences from the reference (same seed: same data order and noise) and `diff_sem` its standard
# error. `parameters_vs_reference` shows the depth variants' parameter match; `wall_vs_reference` what the same
# number of steps cost.

# %%
rec.figure(study.plot_what_works(summary, reference), "what_works")
summary.round(4)

# %% [markdown]
# ## Training curves against wall-clock time
# A deeper, narrower model costs more time per step at the same parameter count; reading every run at the same
# wall-clock time removes that advantage or handicap.

# %%
at_time = study.bpd_at_wall_time(curves, ["variant"], p.wall_s or None)
time_summary = study.wall_time_summary(at_time, ["variant"])
rec.figure(study.plot_bpd_vs_wall(curves, ["variant"], at_time.wall_s.iloc[0]), "variants_vs_wall_time")
time_summary.round(4)

# %% [markdown]
# ## The permutation ablation at equal wall time
# The ablation's runs (same cache entries as `ablation.py`) compared at the longest time every run reached:
# the learned 1x1 convolution costs more per step than a fixed shuffle or reversal, so at equal time it has
# taken fewer steps.

# %%
ablation = study.ablation(p.profile, p.permutations, p.couplings, p.n_seeds, p.seed)
for name, trained in ablation.models.items():
    rec.model(f"ablation-{name}", trained)
ab_curves = ablation.tables["curves"]
ab_time = study.bpd_at_wall_time(ab_curves, ["permutation", "coupling"], p.wall_s or None)
ab_summary = study.wall_time_summary(ab_time, ["permutation", "coupling"])
rec.figure(study.plot_bpd_vs_wall(ab_curves, ["permutation"], ab_time.wall_s.iloc[0], panel="coupling",
                                  title="Permutation ablation: test bits/dim against wall time"),
           "ablation_vs_wall_time")
ab_summary.round(4)

# %%
rec.table(runs, "runs", keys=["variant", "seed"])
rec.table(curves, "curves", keys=["variant", "seed", "step", "split"])
rec.table(summary, "summary", keys=["variant"])
rec.table(at_time, "walltime", keys=["variant", "seed"])
rec.table(ab_time, "ablation_walltime", keys=["permutation", "coupling", "seed"])
rec.table(ab_summary, "ablation_walltime_summary", keys=["permutation", "coupling"])
rec.finish()["wall_s"]
