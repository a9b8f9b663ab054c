"""ExpStream's expression engine: Exp-CLIP (frozen CLIP + LLM-distilled projection head)
scored against cached prompt embeddings.

Example:
    >>> from engine import ExpressionEngine
    >>> eng = ExpressionEngine.from_config("configs/offline.yaml")
    >>> out = eng.score(crops)
"""

from engine.config import ConfigError, EngineSettings
from engine.engine import EngineOutput, ExpressionEngine
from engine.head import HeadFormatError, ProjectionHead
from engine.models import ModelLoadError

__all__ = [
    "ConfigError",
    "EngineOutput",
    "EngineSettings",
    "ExpressionEngine",
    "HeadFormatError",
    "ModelLoadError",
    "ProjectionHead",
]
