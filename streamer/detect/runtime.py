"""Where a detector runs, shared by every detector: onnxruntime providers and the torch device
for ``detector.device`` (``auto``, ``cpu``, ``cuda``), and onnx2torch for the torch runtime."""

from __future__ import annotations

from typing import Any

from configs.core.errors import ConfigError, MissingDependency


def onnx_providers(device: str, model: str) -> list[str]:
    """onnxruntime providers for ``detector.device``; ``model`` names the detector in errors."""
    import onnxruntime as ort  # the torch runtime never needs it

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ConfigError(
            f"detector.device: got 'cuda', but onnxruntime has no CUDA provider here (has {available}); "
            f"use detector.runtime=torch for {model} on the GPU"
        )
    return ["CPUExecutionProvider"]


def torch_device(device: str) -> Any:
    """``detector.device`` as a ``torch.device``."""
    import torch  # the onnxruntime runtime never needs it

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("detector.device: got 'cuda', but torch has no CUDA device here")
    return torch.device("cuda")


def onnx_to_torch() -> Any:
    """onnx2torch's ``convert`` (the optional gpu-detector extra)."""
    try:
        from onnx2torch import convert  # optional: the gpu-detector extra
    except ImportError as e:
        raise MissingDependency("detector.runtime=torch needs onnx2torch: pip install 'expstream[gpu-detector]'") from e
    return convert
