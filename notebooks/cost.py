# %% [markdown]
# # Cost: time per epoch, sampling speed, memory, and how much of the machine we use
# % lead figure quality_vs_time
#
# **Paper:** Kingma & Dhariwal 2018 {cite}`kingma2018glow` report two cost figures: about 130 ms to draw a 256x256
# sample on an NVIDIA GTX 1080 Ti, and (Sec. 5.1) that the learned 1x1 convolution adds about 7% to the wall time
# and 0.2% to the parameters. **Reviewers and users asked:** how long training takes, what memory it needs as the
# model gets
# deeper (one peer cut 11 GB to 2 GB with gradient checkpointing {cite}`chen2016checkpoint`), and sampling cost
# against resolution. Our training keeps only each level's input and output and rebuilds the rest backwards
# through the inverse (invertible backprop, as in reversible networks {cite}`gomez2017reversible`).
#
# Nothing is timed here: the figures come from the benchmark records (each record names its machine, thread
# count, load, git SHA and command), compared with a plain reference Glow of the same architecture and weights. A
# record that is missing is named below with the
# command that makes it.
#
# Claims decided on other pages from these records: the 1x1 convolution's cost (on the permutation ablation's
# page) and the paper's sampling time (on the sampling-cost page).

# %% [markdown]
# :::{dropdown} How this was computed
# - claims decided on other pages from these records, by the ids the claims page uses: `ablation.conv1x1_cost`
#   and `sampling_cost.paper_sampling_speed`;
# - the records: `results/bench/`, made by `bench/run_all.py`; the plain reference Glow: `bench/reference.py`;
#   quality per hour: `bench/quality_vs_time.py`; the recipe experiments: `bench/recipe.py` (cited by
#   `glowlib/profiles.py`); the peaks: `bench/peak.py` (`peak.json`); the batch sweep: `bench/batch_sweep.py`;
#   the profiles of a step: `bench/profile_ops.py` (`torch.profiler`); compiled: `bench/options.py --compile`
#   (`torch.compile`);
# - FLOPs: `torch.utils.flop_counter`; a `*_bf16` config is `GlowConfig(precision="bf16")`;
# - the allocator: `glowlib.runtime.tune_allocator`, applied by `glowlib.training`, turned off by
#   `GLOWLIB_ALLOCATOR=system`;
# - the paper's numbers: `glowlib/published_speed.csv`, and the 1x1 convolution's cost `PAPER_CONV1X1` in
#   `glowlib.studies.ablation`, set beside ours by `beside_paper` (`glowlib.analysis.presentation`).
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
bench_dir = "results/bench"

# %%
from IPython.display import Markdown, display

from glowlib.analysis.presentation import show
from glowlib.results import Recorder
from glowlib.studies import cost as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, bench_dir=bench_dir)
rec = Recorder("cost", p.out_dir, p.profile, p.seed, vars(p), "cpu")
result = study.cost_tables(p.bench_dir)
rec.note(bench_records=result.sources)
study.publish(rec, **study.page_values(result.tables))
Markdown("\n".join(f"- **Note:** {n}" for n in result.notes))

# %% [markdown]
# ## Quality per hour of training, against a plain port
# % caption quality_vs_time: Test bits/dim on a 2,000-image part of Fashion-MNIST's test split against minutes of
# %   training, for this book's recipe (two lengths) and a plain port of the official recipe, a panel per machine
# %   recorded (named in its title); a dot marks each run's validation-chosen checkpoint scored on the whole test
# %   split. Lower is better.
# Our cpu-profile Glow and the plain reference (the same architecture, trained with the official recipe as the
# PyTorch ports run it: Adamax at 1e-3 {cite}`kingma2015adam`, a linear warmup, no weight averaging) on the full
# Fashion-MNIST {cite}`xiao2017fashion`, each for the same minutes of training on the same machine and threads, in
# one harness (same split, initialisation images, batches and noise). Lines: test
# bits/dim on a class-balanced 2,000-image part of the test split at each evaluation; dots: each budget's
# checkpoint with the lowest validation bits/dim, scored on the whole test split. One training seed per contender:
# this measures a recipe's speed, it decides no claim of the paper.

# %%
fig = study.plot_quality_vs_time(result.tables.get("quality_vs_time"), result.tables.get("quality_curves"))
if fig is not None:
    rec.figure(fig, "quality_vs_time")
    show(result.tables["quality_vs_time"], "quality_vs_time",
         columns=["contender", "minutes", "test_bpd", "test_sem", "step", "device_name", "threads", "precision"],
         names={"test_bpd": "test bits/dim", "test_sem": "± SE (test images)"}, units={"minutes": "min"},
         decimals={"test_bpd": 3, "test_sem": 3})

# %% [markdown]
# ## What bought the quality: the recipe experiments
# Each row changes one part of the recipe: Fashion-MNIST, the cpu model (K=8, width 128), at
# the wall time of 800 steps of 64 images, judged on 2,000 validation images held out of the training split (the
# test split is never looked at while the recipe is chosen). `vs adam` is the difference from the Adam base; the
# non-finite share is of T = 1 draws (one of the sanity gates). The cpu profile's settings cite these rows for
# each of its choices.

# %%
recipes = result.tables.get("recipe")
if recipes is not None:
    show(recipes.sort_values(["dataset", "best_val_bpd"]), "recipe",
         columns=["variant", "what", "dataset", "steps", "batch", "best_val_bpd", "vs_adam", "t1_nonfinite_share"],
         names={"best_val_bpd": "best val bits/dim", "vs_adam": "vs adam", "t1_nonfinite_share": "T=1 non-finite"},
         decimals={"best_val_bpd": 3, "vs_adam": 3, "t1_nonfinite_share": 3})

# %% [markdown]
# ## Time per epoch
# % caption epoch_time: Minutes per training epoch (forward, backward and optimiser step) of this book's code
# %   and of a plain reference implementation, for the paper's CIFAR-10-sized model and for a small model, in
# %   fp32 and bf16, on the machine named in the title.
# Seconds per training step (bits/dim, backward, Adamax {cite}`kingma2015adam`) turned into minutes per pass over
# the training set:
# 50,000 images for the 3x32x32 config (CIFAR-10 {cite}`krizhevsky2009cifar`), 60,000 for the one-channel 32x32
# config (MNIST {cite}`lecun1998mnist` or Fashion-MNIST {cite}`xiao2017fashion`, padded to 32x32). Data loading is not
# included.

# %%
fig = study.plot_epoch_time(result.tables.get("epoch_time"))
if fig is not None:
    rec.figure(fig, "epoch_time")

# %% [markdown]
# ## Sampling cost against resolution
# % caption sampling: Milliseconds per sample against the number of dimensions of an image, for this book's code
# %   and a plain reference, with the paper's reported figure (star) on its own GPU.
# Milliseconds per sample at T = 0.7 (and ours at T = 0). The star is the paper's figure (from the published numbers
# kept with the code): a deeper model (more levels for 256x256) on a GPU, so it sits beside our points to show the
# scale, not to rank the implementations.

# %%
fig = study.plot_sampling(result.tables.get("sampling"))
rec.figure(fig, "sampling")
sampled = result.tables.get("sampling")
if sampled is not None and len(sampled):
    show(sampled, "sampling", columns=["source", "implementation", "channels", "image_size", "levels", "depth",
                                       "precision", "ms_per_image", "device_name"],
         names={"image_size": "H = W", "ms_per_image": "time per sample", "device_name": "device"},
         units={"ms_per_image": "ms"}, decimals={"ms_per_image": 1})

# %% [markdown]
# ## Memory against depth
# % caption memory: Peak training memory against the depth K, with invertible backpropagation, with stored
# %   activations, and for a plain reference, for the paper's CIFAR-10 width (left) and the small model (right).
# Peak memory of two training steps for each K: with invertible backprop (only each level's input and output are
# kept), with autograd storing every activation, and the reference.

# %%
fig = study.plot_memory(result.tables.get("memory"))
if fig is not None:
    rec.figure(fig, "memory")

# %% [markdown]
# ## Achieved FLOP/s against the machine's peak
# % caption roofline: Useful floating-point operations per second of a training step, against the peak this
# %   machine reaches on plain matrix products and convolutions (lines), for this book's code and a plain
# %   reference (bars; label: share of the peak). Note the logarithmic axis.
# The model's matmul and convolution FLOPs of one training step (forward and backward with plain autograd,
# counted by PyTorch's FLOP counter) times images per second, against the matmul/conv peak measured in the
# same process; bar labels are the fraction of that peak. Invertible backprop's recomputation is
# not counted as useful work (the `throughput` table has both counts: `flops_per_image` is what ran). A `*_bf16`
# config is ours in bf16 precision (the coupling networks in bf16 {cite}`kalamkar2019bf16`) and is set
# against the bf16 peak, its reference (always float32) against the float32 peak; the bf16 peak is twice float32's
# only where the CPU has
# AVX512-BF16 or AMX (the dotted lines, from the record of the peaks).

# %%
fig = study.plot_roofline(result.tables.get("throughput"), result.tables.get("peak"))
if fig is not None:
    rec.figure(fig, "roofline")

# %% [markdown]
# ## Batch size, and the C allocator
# % caption batch_sweep: Training throughput against the batch size for each precision, memory option and
# %   allocator setting: the share of the measured peak and images per second, a panel each.
# The same training step (`cifar`: 3x32x32, L=3, K=8, width 512) at batches 8 to 64, fp32 and bf16, with and
# without invertible backprop (every point holds the same weights, and all take turns step
# by step). Left: the model's useful FLOPs per second over the measured peak of the variant's precision (the peak
# taken with the convolution at each swept batch, the best kept); right: images per second. Dashed lines leave
# glibc's allocator as it is, as every other record here does; solid lines set it as this book's training does
# (large freed buffers stay in the heap instead of going back to the kernel, so a step does not page-fault its
# activations in afresh; a setting of the environment turns it off).
#
# Each precision at its best batch and options, bf16 trains ×{glue:text}`bf16_over_fp32_tuned:.2f` the images/s of
# fp32 with the allocator tuned (×{glue:text}`bf16_over_fp32_system:.2f` with it as it is). Compiled by
# PyTorch's compiler, the same training step runs ×{glue:text}`compile_speedup:.2f`
# eager's images/s, after a first step of {glue:text}`compile_first_step_s:.0f` s of tracing and code generation.

# %%
fig = study.plot_batch_sweep(result.tables.get("batch_sweep"))
if fig is not None:
    rec.figure(fig, "batch_sweep")

# %% [markdown]
# ## Where the time goes
# % caption profile: Share of a profiled training step's time in each kind of operation, for each model,
# %   precision and batch size; the coupling networks' convolutions take most of it.
# Each profiled training step (the self time PyTorch's profiler reports) split into the coupling
# networks' convolutions, the invertible 1x1 convolutions, ActNorm, elementwise work, the optimizer and the rest.
# What is not convolution is what keeps a step from the convolutions' own speed; the convolutions themselves run
# below the measured peak where their channels are few (the coupling networks' first and last layers).

# %%
fig = study.plot_profile(result.tables.get("profile"))
if fig is not None:
    rec.figure(fig, "profile")

# %% [markdown]
# ## The 1x1 convolution's cost in time, beside the paper's
# The share of each profiled training step spent in the invertible 1x1 convolutions (their forward, backward and
# log-determinants), and what that adds against a model without them (`extra`, share / (1 - share)), to set beside
# the paper's Sec. 5.1 figure (the last row, marked as the paper's): about 7% more wall time than a fixed
# permutation, measured on its GPUs with the full CIFAR-10 model. Ours are CPU steps of smaller configurations
# (`source` names each one's record). The ablation page decides
# the claim from the same records.

# %%
time_1x1 = study.conv1x1_time_beside_paper(result.tables.get("profile"))
if len(time_1x1):
    show(time_1x1, "profile", columns=["source", "depth", "width", "batch", "precision", "conv1x1", "share", "extra"],
         names={"conv1x1": "1x1 time per step", "share": "1x1 share of the step", "extra": "1x1 adds"},
         units={"conv1x1": "ms"}, percent=["share", "extra"], decimals={"conv1x1": 1})
else:
    display(Markdown("No profiler record: the 1x1 convolution's share of a step is not measured here."))

# %% [markdown]
# ## What each page's trainings cost on one H100
# The trainings each page reads at this profile (shared ones counted on every page that reads them), and their
# minutes on one H100-class GPU in the plan's three cases: arithmetic from each step's counted operations and FLOPs
# (`make plan` states the assumptions), not a timing. Each page's closing section quotes its row beside what its
# trainings took on the machine that computed it.

# %%
from glowlib.left_out import page_h100_costs

page_costs = page_h100_costs(p.profile)
show(page_costs, "page_costs", columns=["page", "trainings", "run", "h100_optimistic_min", "h100_central_min",
                                        "h100_pessimistic_min"],
     names={"run": "run at this profile", "h100_optimistic_min": "optimistic",
            "h100_central_min": "central", "h100_pessimistic_min": "pessimistic"},
     units={"h100_optimistic_min": "min", "h100_central_min": "min", "h100_pessimistic_min": "min"},
     decimals={"h100_optimistic_min": 1, "h100_central_min": 1, "h100_pessimistic_min": 1})

# %%
for name, table in result.tables.items():
    rec.table(table, name, keys=study.KEYS[name])
rec.table(page_costs, "page_costs", keys=["notebook"])
wall_s = rec.finish()["wall_s"]
