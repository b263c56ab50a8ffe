"""glowlib: Glow (Kingma & Dhariwal 2018), its baselines and follow-ups, reproduced and tested."""
from .files import package_version

__version__ = package_version()

from .config import GlowConfig, MaCowConfig
from .models import Glow, MaCow, RealNVP
from .objective import bits_per_dim, dequantize, nll_bits_per_dim

__all__ = ["GlowConfig", "Glow", "RealNVP", "MaCow", "MaCowConfig", "bits_per_dim", "dequantize", "nll_bits_per_dim"]
