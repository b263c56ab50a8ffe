"""glowlib: Glow (Kingma & Dhariwal 2018), its baselines and follow-ups, reproduced and tested."""
from .config import GlowConfig
from .macow import MaCow, MaCowConfig
from .model import Glow, RealNVP
from .objective import bits_per_dim, dequantize, nll_bits_per_dim

__all__ = ["GlowConfig", "Glow", "RealNVP", "MaCow", "MaCowConfig", "bits_per_dim", "dequantize", "nll_bits_per_dim"]
__version__ = "0.1.0"
