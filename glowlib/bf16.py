"""Whether a device has a hardware bf16 path: a leaf (torch only), so that the provenance writer
(``glowlib.results``) can name a CPU's bf16 path without importing model code, and the coupling layers
(``glowlib.layers.precision``) can warn where bf16 would be emulated."""
from __future__ import annotations

import torch


def bf16_support(device) -> tuple[bool, str]:
    """(fast, reason): whether bf16 convolutions have a hardware fast path on ``device`` (a torch.device or a
    string). CUDA: bf16 tensor cores (compute capability >= 8.0). CPU: AMX (amx_bf16, Sapphire Rapids and later)
    or AVX512-BF16 (avx512_bf16: Cooper Lake, Zen 4 and later), whose bf16 dot products oneDNN uses at twice the
    float32 rate (``results/bench/peak.json``, 2-core AMD EPYC with AVX512-BF16: 3x3 conv 474 vs 232 GFLOP/s);
    without either oneDNN emulates bf16 through float32 and is slower than plain float32 (an AVX2 EPYC: 22 vs 189
    GFLOP/s)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} has bf16 tensor cores"
        return False, (f"{torch.cuda.get_device_name(device)} has no bf16 tensor cores (compute capability "
                       f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))} < 8.0): bf16 would be "
                       f"emulated and slower")
    if device.type == "cpu":
        caps = dict(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else {}
        if not caps:                                    # older torch: ask the kernel
            try:
                with open("/proc/cpuinfo") as f:
                    flags = f.read().split()
                caps = {"amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags}
            except OSError:
                pass
        if caps.get("amx_bf16", False):
            return True, "this CPU has AMX (amx_bf16)"
        if caps.get("avx512_bf16", False):
            return True, "this CPU has AVX512-BF16 (avx512_bf16; no AMX): bf16 dot products at twice float32's rate"
        return False, (f"this CPU has neither AMX nor AVX512-BF16 (capability "
                       f"{torch.backends.cpu.get_cpu_capability()}): bf16 would be emulated and slower")
    return False, f"bf16 speed on device type {device.type!r} is not known; it may be emulated"
