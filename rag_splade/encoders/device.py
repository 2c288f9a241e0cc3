"""Device and dtype resolution, shared by both encoders."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {
    "auto": None,
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def dtype_name(dtype: object) -> str | None:
    """`torch.bfloat16` as `bfloat16`; None for an encoder that reports none (a remote one)."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


def resolve_device(device: str) -> str:
    """`auto` picks CUDA, then Apple MPS, then CPU; `cuda:N` names one GPU."""
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES} (or 'cuda:N'), got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device; use 'auto' or 'cpu'")
    return device


# CPU flags of native bf16 arithmetic (Linux /proc/cpuinfo names): AVX512-BF16, AMX-BF16
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def read_native_bf16(cpuinfo: Path) -> str | None:
    """The first native-bf16 flag in a `/proc/cpuinfo`-style file, or None."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return next((f for f in NATIVE_BF16_FLAGS if f in flags), None)


@lru_cache(maxsize=1)
def cpu_native_bf16() -> str | None:
    """The flag that says this CPU computes bf16 natively (`avx512_bf16`, `amx_bf16`), or
    None (no such flag, or not Linux: /proc/cpuinfo is read)."""
    return read_native_bf16(Path("/proc/cpuinfo"))


def resolve_dtype(dtype: str, device: str, *, cpu_bf16: bool = False) -> torch.dtype:
    """`auto`: bf16 on CUDA where supported (fp16 otherwise); on a CPU, bf16 when
    `cpu_bf16` (the caller's model passed the fidelity gates in bf16) and the CPU computes
    bf16 natively, else float32.

    On CPUs without native bf16, half-precision matmuls are emulated: slow, and a loss of
    fidelity for nothing.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    chosen = DTYPES[dtype]
    if chosen is not None:  # None: "auto"
        return chosen
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_bf16 and cpu_native_bf16():
        return torch.bfloat16
    return torch.float32
