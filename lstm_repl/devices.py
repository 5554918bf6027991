"""Where a model runs and at what precision: device auto-detection and autocast."""

from __future__ import annotations

import functools
from contextlib import nullcontext

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


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bfloat16 natively (AVX512-BF16 or AMX), not by emulation."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bfloat16 where the hardware runs it natively (it won at equal time here), else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        if device.type == "cpu":
            return "bf16" if cpu_has_fast_bf16() else "fp32"
        return "fp32"
    if name == "bf16" and device.type == "mps":
        raise ConfigError("--precision bf16 is not supported on MPS; use fp32 or auto")
    return name


def autocast(device: torch.device, precision: str):
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


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


def resolve_inference_precision(name: str, device: torch.device) -> str:
    """auto: float16 weights on a CPU with fbgemm's kernel (half the bytes a step reads, float32
    arithmetic, the same bits per character here), float32 elsewhere."""
    if name == "auto":
        return "fp16" if device.type == "cpu" and fbgemm_half_available() else "fp32"
    return name
