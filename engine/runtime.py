"""Where and how the scoring network runs: device, activation dtype, which backend a
precision allows, the image tower the backends see, and fp8's one-time calibration.

Example:
    >>> resolve_device("cpu"), resolve_dtype("auto", torch.device("cpu"))
    (device(type='cpu'), torch.float32)
    >>> backend_for(EngineSettings(precision="int8"), torch.device("cpu"))
    'onnxruntime'
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from configs.core.errors import ConfigError
from configs.engine import EngineSettings
from engine.tower import FastVisionTower

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto`` = cuda when available; a CUDA device asked for by name must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available here (allowed here: auto, cpu)")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the tower's activations (fp8 keeps its non-GEMM work in fp16 / fp32)."""
    if precision in ("auto", "fp8", "int8"):
        return torch.float16 if device.type == "cuda" else torch.float32
    return _DTYPES[precision]


def resolve_text_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The CLIP text tower's type: ``auto`` = fp16 on CUDA (OpenAI's ``clip.load`` converts the
    weights there, so the reference's prompts were encoded in fp16), fp32 elsewhere."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return _DTYPES[precision]


def backend_for(settings: EngineSettings, device: torch.device) -> str:
    """The backend name ``settings`` ask for, with what the quantised precisions require:
    fp8 runs on torch/compile (compile under auto on CUDA), int8 on onnxruntime only."""
    name = settings.backend
    if settings.precision == "fp8":
        if name == "auto":
            return "compile" if device.type == "cuda" else "torch"
        if name not in ("torch", "compile"):
            raise ConfigError("engine.precision: fp8 runs on the torch or compile backend only")
    if settings.precision == "int8":
        if name not in ("auto", "onnxruntime"):
            raise ConfigError("engine.precision: int8 runs on the onnxruntime backend only")
        return "onnxruntime"
    return name


def image_tower(visual: nn.Module, dtype: torch.dtype, precision: str, backend: str, model_name: str) -> nn.Module:
    """The image tower the backends run: open_clip's own in ``dtype``, or its graph-friendly
    re-statement (same weights, same maths; tests prove it) for ``compile`` and fp8."""
    if dtype != torch.float32:
        visual = visual.to(dtype)
    if precision != "fp8" and backend != "compile":
        return visual
    try:
        return FastVisionTower(visual)
    except TypeError as e:
        if precision == "fp8":
            raise ConfigError(f"engine.precision: fp8 is not supported for {model_name}: {e}") from e
        log.info("compile: keeping open_clip's tower (%s)", e)
        return visual


class Fp8Calibration:
    """fp8's static activation scales, taken once from the first batch scored ("delayed
    scaling"); a no-op for every other precision."""

    def __init__(self, tower: nn.Module, enabled: bool) -> None:
        self.tower = tower
        self.pending = enabled

    def __call__(self, pixels: torch.Tensor) -> None:
        if not self.pending:
            return
        assert isinstance(self.tower, FastVisionTower)
        self.tower.quantise_fp8(pixels)
        self.pending = False
        log.info("fp8: activation scales calibrated on %d crops", len(pixels))
