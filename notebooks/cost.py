# %% [markdown]
# # Cost: time per epoch, sampling speed, memory, and how much of the machine we use
#
# **Paper:** Kingma & Dhariwal 2018 report one cost figure: about 130 ms to draw a 256x256 sample on an NVIDIA
# GTX 1080 Ti. **Reviewers and users asked:** how long training takes, what memory it needs as the model gets
# deeper (one peer cut 11 GB to 2 GB with gradient checkpointing), and sampling cost against resolution.
#
# Nothing is timed here: the figures come from the benchmark records in `results/bench/` (`bench/run_all.py`;
# each record names its machine, thread count, load, git SHA and command), compared with a plain reference Glow
# of the same architecture and weights (`bench/reference.py`). A record that is missing is named below with the
# command that makes it.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
bench_dir = "results/bench"

# %%
from IPython.display import Markdown

from glowlib.results import Recorder
from glowlib.studies import cost as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, bench_dir=bench_dir)
rec = Recorder("cost", p.out_dir, p.profile, p.seed, vars(p), "cpu")
result = study.cost_tables(p.bench_dir)
rec.note(bench_records=result.sources)
Markdown("\n".join(f"- {line}" for line in study.summary(result) + [f"**Note:** {n}" for n in result.notes]))

# %% [markdown]
# ## Time per epoch
# Seconds per training step (bits/dim, backward, Adamax) turned into minutes per pass over the training set:
# 50,000 images for the 3x32x32 config (CIFAR-10), 60,000 for the one-channel 32x32 config (MNIST or
# Fashion-MNIST, padded to 32x32). Data loading is not included.

# %%
fig = study.plot_epoch_time(result.tables.get("epoch_time"))
if fig is not None:
    rec.figure(fig, "epoch_time")

# %% [markdown]
# ## Sampling cost against resolution
# Milliseconds per sample at T = 0.7 (and ours at T = 0). The star is the paper's figure (from
# `glowlib/published_speed.csv`): a deeper model (more levels for 256x256) on a GPU, so it sits beside our points
# to show the scale, not to rank the implementations.

# %%
fig = study.plot_sampling(result.tables.get("sampling"))
rec.figure(fig, "sampling")

# %% [markdown]
# ## Memory against depth
# Peak memory of two training steps for each K: with invertible backprop (only each level's input and output are
# kept), with autograd storing every activation, and the reference.

# %%
fig = study.plot_memory(result.tables.get("memory"))
if fig is not None:
    rec.figure(fig, "memory")

# %% [markdown]
# ## Achieved FLOP/s against the machine's peak
# The model's matmul and convolution FLOPs of one training step (forward and backward with plain autograd,
# counted by `torch.utils.flop_counter`) times images per second, against the matmul/conv peak measured in the
# same process (`bench/peak.py`); bar labels are the fraction of that peak. Invertible backprop's recomputation is
# not counted as useful work (the `throughput` table has both counts: `flops_per_image` is what ran). A `*_bf16`
# config is ours with `precision="bf16"` (the coupling networks in bf16) and is set against the bf16 peak, its
# reference (always float32) against the float32 peak; the bf16 peak is twice float32's only where the CPU has
# AVX512-BF16 or AMX (the dotted lines, from `peak.json`).

# %%
fig = study.plot_roofline(result.tables.get("throughput"), result.tables.get("peak"))
if fig is not None:
    rec.figure(fig, "roofline")

# %% [markdown]
# ## Batch size, and the C allocator
# The same training step (`cifar`: 3x32x32, L=3, K=8, width 512) at batches 8 to 64, fp32 and bf16, with and
# without invertible backprop (`bench/batch_sweep.py`; every point holds the same weights, and all take turns step
# by step). Left: the model's useful FLOPs per second over the measured peak of the variant's precision (the peak
# taken with the convolution at each swept batch, the best kept); right: images per second. Dashed lines leave
# glibc's allocator as it is, as every other record here does; solid lines set it as `glowlib.training` does
# (`glowlib.runtime.tune_allocator`: large freed buffers stay in the heap instead of going back to the kernel, so a
# step does not page-fault its activations in afresh; `GLOWLIB_ALLOCATOR=system` turns it off).

# %%
fig = study.plot_batch_sweep(result.tables.get("batch_sweep"))
if fig is not None:
    rec.figure(fig, "batch_sweep")

# %% [markdown]
# ## Where the time goes
# Each profiled training step (`bench/profile_ops.py`, `torch.profiler` self time) split into the coupling
# networks' convolutions, the invertible 1x1 convolutions, ActNorm, elementwise work, the optimizer and the rest.
# What is not convolution is what keeps a step from the convolutions' own speed; the convolutions themselves run
# below the measured peak where their channels are few (the coupling networks' first and last layers).

# %%
fig = study.plot_profile(result.tables.get("profile"))
if fig is not None:
    rec.figure(fig, "profile")

# %%
for name, table in result.tables.items():
    rec.table(table, name, keys=study.KEYS[name])
rec.finish()["wall_s"]
