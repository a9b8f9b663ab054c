"""Inference backends chosen by name: torch, compile, onnxruntime, tensorrt (and auto)."""

from __future__ import annotations

import logging

import torch

from configs.core.errors import BackendError, ConfigError
from engine.backends.base import Backend, BackendContext
from engine.backends.compile_backend import CompileBackend
from engine.backends.onnx_backend import OnnxRuntimeBackend
from engine.backends.tensorrt_backend import TensorRTBackend
from engine.backends.torch_backend import TorchBackend
from engine.scoring import ScoringModel

log = logging.getLogger(__name__)

BACKENDS: dict[str, type[Backend]] = {
    "torch": TorchBackend,
    "compile": CompileBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "tensorrt": TensorRTBackend,
}

# What ``auto`` tries, in order: TensorRT on CUDA, else eager torch; on CPU onnxruntime
# (1.2-1.6x eager torch for ViT-B/32 at batch 1-8 on 2 cores, docs/BENCHMARKS.md), else torch.
AUTO_ORDER = {"cuda": ("tensorrt", "torch"), "cpu": ("onnxruntime", "torch")}


def create_backend(name: str, model: ScoringModel, ctx: BackendContext) -> Backend:
    """Build the backend ``name`` (or the first usable one for ``auto``).

    A backend asked for by name that cannot run raises BackendError; under ``auto`` the
    failure is logged and the next candidate is tried.
    """
    if name != "auto":
        if name not in BACKENDS:
            raise ConfigError(f"engine.backend: unknown backend {name!r}; allowed: auto, {', '.join(BACKENDS)}")
        cls = BACKENDS[name]
        reason = cls.available(ctx.device)
        if reason:
            raise BackendError(f"backend {name!r} is not available: {reason}")
        return cls(model, ctx)
    for candidate in AUTO_ORDER.get(ctx.device.type, ("torch",)):
        cls = BACKENDS[candidate]
        reason = cls.available(ctx.device)
        if reason:
            log.info("backend auto: skipping %s (%s)", candidate, reason)
            continue
        try:
            return cls(model, ctx)
        except BackendError as e:
            log.warning("backend auto: %s failed (%s); falling back", candidate, e)
    return TorchBackend(model, ctx)


def available_backends(device: torch.device) -> dict[str, str | None]:
    """Each backend's name -> None if usable on ``device``, else why not."""
    return {name: cls.available(device) for name, cls in BACKENDS.items()}


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendContext",
    "BackendError",
    "available_backends",
    "create_backend",
]
