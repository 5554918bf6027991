"""Where a model runs: device auto-detection, and which kernels this build of PyTorch has.

Which precisions run on the device is found by trying them: lstm_repl/model/precision.py."""

from __future__ import annotations

import functools

import torch

from lstm_repl.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU; an explicit choice must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name == "mps" and not _mps_available():
        raise ConfigError("--device mps: Apple's MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@functools.cache
def fbgemm_half_available() -> bool:
    """True where PyTorch has fbgemm's float16-weight linear kernel (x86 CPUs)."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    try:
        packed = torch.ops.quantized.linear_prepack_fp16(torch.ones(2, 2), None)
        torch.ops.quantized.linear_dynamic_fp16(torch.ones(1, 2), packed)
    except (AttributeError, RuntimeError):
        return False
    return True
