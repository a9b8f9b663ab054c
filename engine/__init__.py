"""ExpStream's expression engine: Exp-CLIP (frozen CLIP + LLM-distilled projection head)
scored against cached prompt embeddings.

Names are imported on first use, so light modules (``configs.core.errors``) load without torch.

Example (plain text: builds a model)::

    from engine import ExpressionEngine
    eng = ExpressionEngine.from_config("offline")
    out = eng.score(crops)          # uint8 RGB [N, H, W, 3]
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EngineOutput": "engine.output",
    "ExpressionEngine": "engine.engine",
    "OnnxScorer": "engine.onnx_scorer",
    "open_scorer": "engine.onnx_scorer",
    "ProjectionHead": "engine.head",
    "ConfigError": "configs.core.errors",
    "ExpStreamError": "configs.core.errors",
    "HeadFormatError": "configs.core.errors",
    "ModelError": "configs.core.errors",
    "ModelLoadError": "configs.core.errors",
    "BackendError": "configs.core.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
