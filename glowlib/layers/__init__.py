"""Invertible layers: every one a ``Flow`` with ``forward(x) -> (y, logdet)`` (logdet of shape (B,)) and
``reverse(y) -> x``; invertible backprop (``revgrad``); the precision protocol of layers with a network
(``precision``, whose docstring is the guide)."""
from .actnorm import ActNorm
from .base import Cached, Flow, FlowSequence
from .coupling import Coupling, MaskedCoupling, affine_coupling, checkerboard
from .gaussian import gaussian_log_prob, gaussian_sample
from .masked_conv import MaCowUnit, MaskedConvFlow
from .networks import Conv2d, ConvActNorm, ZeroConv2d, coupling_network
from .permutations import InvConv1x1, InvConv1x1LU, Permute, channel_mix, make_permutation, random_rotation
from .precision import (NETWORK_DTYPES, bf16_support, keeping_network_inputs, kept_network_input, network_dtype,
                        network_input, network_output, warn_if_emulated)
from .revgrad import invertible_forward
from .squeeze import Squeeze

__all__ = ["ActNorm", "Cached", "Flow", "FlowSequence", "Coupling", "MaskedCoupling", "affine_coupling",
           "checkerboard", "gaussian_log_prob", "gaussian_sample", "MaCowUnit", "MaskedConvFlow", "Conv2d",
           "ConvActNorm", "ZeroConv2d", "coupling_network", "InvConv1x1", "InvConv1x1LU", "Permute", "channel_mix",
           "make_permutation", "random_rotation", "NETWORK_DTYPES", "bf16_support", "keeping_network_inputs",
           "kept_network_input", "network_dtype", "network_input", "network_output", "warn_if_emulated",
           "invertible_forward", "Squeeze"]
