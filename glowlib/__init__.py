"""glowlib: Glow (Kingma & Dhariwal 2018), its baselines and follow-ups, reproduced and tested."""
from importlib.metadata import PackageNotFoundError, version as _version

try:                                   # pyproject.toml's version, the single source (CITATION.cff repeats it)
    __version__ = _version("glowlib")
except PackageNotFoundError:           # the source tree on its own, not installed
    __version__ = "0+unknown"

from .config import GlowConfig, MaCowConfig
from .models import Glow, MaCow, RealNVP
from .objective import bits_per_dim, dequantize, nll_bits_per_dim

__all__ = ["GlowConfig", "Glow", "RealNVP", "MaCow", "MaCowConfig", "bits_per_dim", "dequantize", "nll_bits_per_dim"]
