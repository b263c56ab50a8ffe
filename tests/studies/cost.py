"""The learned 1x1 convolution's cost (paper Sec. 5.1: ~0.2% more parameters, ~7% more wall time), counted and
profiled (glowlib.studies.ablation.conv1x1_cost), never timed over whole runs: its parameters at the paper's
configuration checked against a count by hand, its FLOPs against bounds by hand, its time read from a profile."""
import json

import pytest
import torch

from glowlib.config import GlowConfig
from glowlib.layers.permutations import InvConv1x1LU
from glowlib.models import Glow
from glowlib.studies import ablation

# The paper's CIFAR-10 model (GlowConfig's defaults): 3x32x32, L=3 levels of K=32 steps. Each level squeezes
# (C, H) -> (4C, H/2) and all but the last give half their channels to the prior: the 1x1 convolutions mix
# c = 12 channels at 16x16, 24 at 8x8 and 48 at 4x4.
#
# Under the LU parameterisation W = P·L·(U + diag(sign(s)·exp(log|s|))) the free parameters of one c-channel
# 1x1 convolution are the strictly lower entries of L, c(c-1)/2, the strictly upper entries of U, c(c-1)/2, and
# log|s|, c: c² in all (P and sign(s) are fixed), as many as a plain c×c weight.
# Per model: K·Σ c² = 32·(12² + 24² + 48²) = 32·(144 + 576 + 2304) = 32·3024 = 96,768.
CHANNELS, K = (12, 24, 48), 32
PAPER_CONV1X1_PARAMETERS = 96_768


def test_lu_free_parameters_are_c_squared_per_convolution():
    assert K * sum(c * c for c in CHANNELS) == PAPER_CONV1X1_PARAMETERS
    layer = InvConv1x1LU(12)
    total, conv = ablation.free_parameters(torch.nn.ModuleList([layer]))
    assert conv == total == 144                  # stored: 2·144 + 12 = 300 entries, of which 144 are free
    assert sum(p.numel() for p in layer.parameters()) == 300


def test_the_1x1s_share_of_parameters_at_the_paper_config():
    with torch.device("meta"):
        conv_model, shuffle_model = Glow(GlowConfig()), Glow(GlowConfig(permutation="shuffle"))
    total, conv = ablation.free_parameters(conv_model)
    shuffle = sum(p.numel() for p in shuffle_model.parameters())
    assert conv == PAPER_CONV1X1_PARAMETERS and total == shuffle + PAPER_CONV1X1_PARAMETERS
    # ~0.2% more parameters than the same model with a fixed shuffle, as the paper says
    assert PAPER_CONV1X1_PARAMETERS / shuffle == pytest.approx(0.0022, abs=0.0001)


def test_conv1x1_cost_counts_parameters_and_flops_and_reads_the_profiles(tmp_path):
    record = {"benchmark": "profile_ops", "config": {"model": dict(vars(GlowConfig()), depth=8), "batch": 16},
              "results": {"groups": {"conv1x1": {"ms_per_step": 40.0, "share": 0.04},
                                     "coupling_convs": {"ms_per_step": 960.0, "share": 0.96}}}, "env": {}}
    (tmp_path / "profile_cifar.json").write_text(json.dumps(record))
    table = ablation.conv1x1_cost(tmp_path, batch=64).set_index("measure")
    params = table.loc["parameters"]
    assert params.conv1x1 == PAPER_CONV1X1_PARAMETERS and params.extra == pytest.approx(0.0022, abs=0.0001)
    # FLOPs of one training step per image: the per-pixel mix, c² multiply-adds per pixel forward, three times
    # that with the backward pass (input and weight gradients), 2 FLOPs each; plus, once per batch, recomposing
    # W from P, L and U (two c×c matmuls forward, their gradients backward: at most 12·c³ FLOPs per convolution)
    mix = 6 * K * sum(c * c * (32 // 2 ** (i + 1)) ** 2 for i, c in enumerate(CHANNELS))
    compose = 12 * K * sum(c ** 3 for c in CHANNELS) / 64
    flops = table.loc["flops"]
    assert mix <= flops.conv1x1 <= mix + compose
    assert flops.share < 0.002                   # the coupling networks' convolutions dwarf it
    time = table.loc["time"]
    assert time.source == "profile_cifar.json" and time.share == 0.04 and time.extra == pytest.approx(0.04 / 0.96)
