"""The models: Glow and RealNVP (``glow``), MaCow (``macow``) on one multi-scale skeleton (``multiscale``), and the
dequantisers that turn discrete images into the continuous data a flow models (``dequantization``)."""
from .dequantization import (ConditionalCoupling, DequantizedModel, Dequantizer, UniformDequantization,
                             VariationalDequantization, check_discrete, log_weight, make_dequantizer)
from .glow import Glow, RealNVP
from .macow import MaCow, MaCowLevel, MaCowStep
from .multiscale import FlowStep, Level, MultiScaleFlow

__all__ = ["Glow", "RealNVP", "MaCow", "MaCowLevel", "MaCowStep", "FlowStep", "Level", "MultiScaleFlow",
           "ConditionalCoupling", "DequantizedModel", "Dequantizer", "UniformDequantization",
           "VariationalDequantization", "check_discrete", "log_weight", "make_dequantizer"]
