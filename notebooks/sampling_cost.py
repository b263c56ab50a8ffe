# %% [markdown]
# # Sampling cost against image height: Glow and MaCow
# % lead figure growth
#
# **Reviewers (MaCow, NeurIPS 2019):** how fast is generation? MaCow (Ma, Kong, Zhang & Hovy 2019
# {cite}`ma2019macow`) replaces part of Glow's {cite}`kingma2018glow` step with masked convolutional flows:
# autoregressive maps whose scale and shift at a pixel come from a
# small window of the rows above it (or below, left, right). **MaCow's claim (Sec. 3.1):** their inverse is one
# pass per row (or column), O(H) sequential passes of constant size, against the O(H·W) of a fully
# autoregressive model such as PixelCNN {cite}`vandenoord2016pixel`; Glow's inverse is one parallel pass per step,
# whatever H. Both do O(H·W)
# arithmetic per sample: what differs is how much of it must run in sequence.
#
# **Measurement.** Glow and MaCow with the same L levels, K steps per level and
# coupling width (each MaCow step is a Glow step with masked convolutional flows in front, so MaCow is the bigger
# model: the table gives both models' parameters and FLOPs), at T = 0.7 as in the paper's samples, on square
# H×H three-channel images, the architecture fixed as H grows. Models are freshly initialised (ActNorm set from
# random images, so that Glow samples through its fused path as a trained model does): the work of a sample does
# not depend on the weights' values, so no training is needed. Per model and height: milliseconds per image of
# the model's sampler in inference mode after a warm-up, in repeats that sweep every height and model (every other
# repeat in reverse order, so that other load on the machine falls on both models alike), as wall-clock time and
# as this process's CPU time (which other processes on a shared machine do not inflate); and, counted rather than
# timed, the FLOPs (PyTorch's FLOP counter) and the convolutions one sample runs in sequence.
#
# **Growth law.** A least-squares line through log(median ms) against log H gives the exponent b of ms ∝ H^b; its
# error comes from the repeats (each repeat's sweep fitted alone). A power law rather than a line in H, because
# the question is the order of growth (H, H² or more), which the exponent states whatever the constant factors
# are; a line in H would assume the answer. Local exponents between successive heights show whether the growth
# steepens.

# %% [markdown]
# :::{dropdown} How this was computed
# - claims decided here, by the ids the claims page uses: `sampling_cost.macow_sequential_passes`,
#   `sampling_cost.macow_wall_clock` and `sampling_cost.paper_sampling_speed`;
# - the measurement: `glowlib.studies.sampling_cost` (each model's `sample`; FLOPs by `torch.utils.flop_counter`);
#   the paper's model: its `PAPER_SPEED_MODEL`, replaced by a 32×32 stand-in where the setup's `paper_model` is
#   False;
# - the paper's figure: `glowlib/published_speed.csv`; the peaks: as `bench/peak.py`, whose record
#   `results/bench/peak.json` shows the factor 2.5; the counts' test: `tests/studies/sampling_cost.py`.
# :::

# %% tags=["parameters"]
profile = "smoke"
seed = 0
out_dir = ""
models = ["glow", "macow"]
# "auto": the profile's heights (smoke 8 to 32, cpu 8 to 128, paper 16 to 256), batch and repeats
heights = "auto"
temperature = 0.7
n_repeats = "auto"
# images per sample call; times are per image
batch = "auto"

# %%
from glowlib.analysis.presentation import readable, show, styled
from glowlib.results import Recorder
from glowlib.studies import sampling_cost as study

p = study.check_parameters(profile=profile, seed=seed, out_dir=out_dir, models=models, heights=heights,
                           temperature=temperature, n_repeats=n_repeats, batch=batch)
setup = study.setup(p.profile, p.heights, p.batch, p.n_repeats)
device = study.device()
rec = Recorder("sampling_cost", p.out_dir, p.profile, p.seed, vars(p), device)
for name, config in study.configs(setup, p.models).items():
    rec.config(name, config)
rec.note(machine=study.machine(device))
timings = study.measure(setup, p.models, p.temperature, p.seed, device)
setup

# %% [markdown]
# ## What was measured
# Medians over repeats per model and height, with the counted work of one sample: FLOPs, convolutions and aten
# operations (each a separate step of the program, about one kernel launch on a GPU). The machine, its thread
# count and its load average are columns of `timings.csv`.

# %%
work = study.per_flop(timings)
styled(readable(work, decimals=3))

# %%
show(timings[["device", "device_name", "threads", "torch_version", "load_average_1min",
              "load_average_1min_end"]].drop_duplicates(), "timings", decimals=2)

# %% [markdown]
# ## Growth with H
# % caption growth: Sampling cost against image height for Glow and MaCow: time per sample with its fitted power
# %   of the height (top left, its legend beside it), time per floating-point operation (bottom left) and
# %   convolutions run one after another (bottom right). MaCow's sequential convolutions grow with the height;
# %   Glow's stay constant.
# Left: ms per sample, each repeat as a small point, medians with their range, and the fitted power laws (wall
# time filled and solid, CPU time hollow and dotted). Middle: wall time per FLOP. Right: convolutions per sample,
# all run one after another: constant for Glow, growing with H for MaCow.

# %%
fit = study.fit_growth(timings)
rec.figure(study.plot_growth(timings, fit), "growth")

# %%
show(fit, "fit", columns=["model", "clock", "exponent", "r2", "last_exponent", "ms_at_height_max", "flops_exponent",
                          "conv_calls_exponent"],
     intervals={"exponent": ("exponent_ci_low", "exponent_ci_high")}, names={"exponent": "exponent b",
                                                                             "ms_at_height_max": "at the largest H"},
     units={"ms_at_height_max": "ms"}, decimals={"ms_at_height_max": 1, "r2": 3})

# %% [markdown]
# ## MaCow's time over Glow's, height by height
# Each repeat times both models moments apart, so their ratio is paired by repeat: per height the geometric mean
# of the per-repeat ratios with its 95% t-interval (of the log ratio), and how the ratio changes with H, fitted
# on each repeat's sweep and over the last doubling, each with its interval. Whether the ratio rises with H is
# read from these intervals, not from the two models' separate growth exponents.

# %%
ratios = study.ratios(timings)
trend = study.ratio_trend(timings)
study.publish(rec, **study.page_values(fit, trend))

# %% [markdown]
# MaCow's wall-clock growth exponent minus Glow's is {glue:text}`exponent_difference:+.2f`; their 95% intervals
# {glue:text}`exponent_intervals`. Against H the ratio of their times {glue:text}`ratio_trend`: it grows as
# H^{glue:text}`ratio_exponent:.2f` [{glue:text}`ratio_exponent_ci_low:.2f`,
# {glue:text}`ratio_exponent_ci_high:.2f`], and over the last doubling (H = {glue:text}`last_height_from` to
# {glue:text}`last_height_to`) it changes ×{glue:text}`last_change:.2f` [{glue:text}`last_change_ci_low:.2f`,
# {glue:text}`last_change_ci_high:.2f`].

# %%
show(ratios, "ratios", columns=["clock", "height", "n_repeats", "ratio", "glow_ms", "macow_ms"],
     intervals={"ratio": ("ci_low", "ci_high")}, names={"ratio": "MaCow / Glow"},
     units={"glow_ms": "ms", "macow_ms": "ms"}, decimals={"ratio": 2, "glow_ms": 1, "macow_ms": 1})

# %% [markdown]
# ## Local exponents
# The exponent between each pair of successive heights. A fixed cost per call (Python and dispatch overhead per
# operation, kernel launches on a GPU) grows with the number of operations, not with the pixels: where it
# dominates, time follows the sequential count (flat for Glow, ∝ H for MaCow); where arithmetic dominates, time
# follows the FLOPs (∝ H² for both).

# %%
local = study.local_exponents(timings)
show(local, "local", decimals=2)

# %% [markdown]
# ## The paper's ~130 ms per 256×256 sample
# **Paper (Sec. 5):** a 256×256 sample of its CelebA-HQ {cite}`karras2018progressive` Glow takes about 130 ms on a
# GTX 1080 Ti. The work of a sample does not depend on the weights, so the paper's model itself (L = 6, K = 32,
# width 512, additive coupling, 5 bits, as the official README trains it), freshly initialised, samples one image at
# a time here; each repeat also times this device's float32 peak (the faster of a matmul and a 3×3 convolution, as
# the benchmarks measure it) moments before, so that load on the machine falls on both. A device's time is carried
# to the card by the ratio of the two peaks (the card's: 3,584 cores × 1,582 MHz × 2 = 11.3 TFLOP/s float32,
# NVIDIA's specification), which assumes the card reaches the share of its peak that this device does. That share
# differs by a factor 2.5 between two operations on one CPU (the benchmarks' record of the peaks), and nothing here
# says which share the card reaches. So the estimate is trusted only within that factor: the claim is confirmed
# when the 95% interval of the estimate lies below 130 ms / 2.5 (the card would make it even at a 2.5th of this
# device's share), contradicted only when the sample's counted work needs more than the card's whole peak in
# 130 ms, and inconclusive in between. Where a profile times a 32×32 stand-in of the same code (smoke), nothing is
# decided.

# %%
paper_speed = study.measure_paper_speed(setup, p.temperature, p.seed, device)
summary = study.paper_speed_summary(paper_speed)
study.publish(rec, **{k: v for k, v in summary.items() if k != "paper_model"})
show(paper_speed, "paper_speed", columns=["repeat", "image_size", "n_levels", "depth", "width", "ms_per_image",
                                          "peak_gflops", "share_of_peak", "estimate_ms", "paper_ms"],
     names={"ms_per_image": "ms here", "peak_gflops": "peak here", "share_of_peak": "share of peak",
            "estimate_ms": "estimated on a GTX 1080 Ti", "paper_ms": "paper"},
     units={"ms_per_image": "ms", "peak_gflops": "GFLOP/s", "estimate_ms": "ms", "paper_ms": "ms"},
     decimals={"ms_per_image": 0, "peak_gflops": 0, "share_of_peak": 2, "estimate_ms": 0, "paper_ms": 0})

# %% [markdown]
# The {glue:text}`image_size`×{glue:text}`image_size` model computes {glue:text}`gflops_per_sample:.0f` GFLOP a
# sample; here it took {glue:text}`ms_here:.0f` ms (median of {glue:text}`repeats` repeats), reaching
# {glue:text}`share_of_peak_here:.0%` of this device's measured {glue:text}`peak_gflops_here:.0f` GFLOP/s. At that
# share of the card's {glue:text}`card_peak_gflops:.0f` GFLOP/s a sample would take
# {glue:text}`estimate_ms:.0f` ms [{glue:text}`estimate_ci_low:.0f`, {glue:text}`estimate_ci_high:.0f`] against
# the paper's {glue:text}`paper_ms:.0f` ms, which needs {glue:text}`card_share_needed:.0%` of the card's peak.

# %% [markdown]
# ## Reading the result
# - **The structural claim holds by construction and is counted, not timed:** MaCow's sequential convolutions
#   per sample grow linearly with H and Glow's do not change, while both models' FLOPs grow as H² (the right-hand
#   panel and the `conv_calls_exponent` and `flops_exponent` columns; a test of the code checks the counts row
#   by row).
# - **What that costs in time depends on the device.** On one CPU thread the arithmetic is serial anyway, so both
#   models tend to H² once the images are large enough that arithmetic outweighs the per-operation overhead; the
#   ratio of MaCow's time to Glow's then tends to the ratio of their FLOPs times the ratio of their times per
#   FLOP (middle panel: how well a convolution over a window of a few rows uses the machine, against one over a
#   whole image). On a GPU,
#   where a convolution over a whole image takes little longer than one over a row, MaCow's H sequential passes
#   are what its sampling time follows until a row's work fills the device. This run's device is in the table
#   above; the exponents above, the local exponents and the last doubling say which regime it reached.
# - **Wall and CPU time:** on a shared machine the wall time includes waiting for other processes; the CPU time
#   of this process does not. Where the two exponents disagree, the CPU one measures the computation and the
#   wall one what a user waits for under that load (the load averages are in the table).
# - **Not measured here:** trained models, the official MaCow code (weight-normalised masked convolutions and an
#   unsqueezed bottom block), and architectures that add levels as H grows (the paper's CelebA-HQ
#   {cite}`karras2018progressive`
#   models do).

# %%
rec.table(timings, "timings", keys=study.KEYS["timings"])
rec.table(fit, "fit", keys=study.KEYS["fit"])
rec.table(local, "local", keys=study.KEYS["local"])
rec.table(ratios, "ratios", keys=study.KEYS["ratios"])
rec.table(trend, "ratio_trend", keys=study.KEYS["ratio_trend"])
rec.table(paper_speed, "paper_speed", keys=study.KEYS["paper_speed"])
wall_s = rec.finish()["wall_s"]
