"""ExpStream's trainer: distil the Exp-CLIP projection head from an LLM teacher on your own
unlabelled faces, and measure zero-shot accuracy the way the paper does.

Stages: ``extract`` (frozen CLIP + teacher features, once, sharded and resumable) ->
``fit`` (InfoNCE on the stored pairs; the head in the engine's format) -> ``eval``
(UAR/WAR of the head and of plain CLIP through the engine). The configuration is the same
file ``streamer`` reads (``configs.load_settings``); the ``trainer`` section is its own.

Example (plain text)::

    from configs import load_settings
    from trainer import evaluate, extract_features, fit_store
    cfg = load_settings("train-offline")
    extract_features(cfg, images=["faces/"], out="feats/")
    fit_store("feats/", cfg.trainer.fit, "head.safetensors")
"""

from trainer.evaluate import evaluate
from trainer.extract import ExtractStats, extract_features
from trainer.fit import FitResult, fit_head, fit_store
from trainer.store import FeatureStore, StoreError
from trainer.teacher import TEACHERS, TeacherLoadError, load_teacher

__all__ = [
    "TEACHERS",
    "ExtractStats",
    "FeatureStore",
    "FitResult",
    "StoreError",
    "TeacherLoadError",
    "evaluate",
    "extract_features",
    "fit_head",
    "fit_store",
    "load_teacher",
]
