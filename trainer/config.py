"""Trainer settings: the ``trainer`` section of an ExpStream config, next to ``engine``.

Loading follows STYLE.md #5 through the engine's own loader: defaults -> YAML file ->
``--set trainer.fit.lr=0.01`` overrides -> typed, validated settings whose errors name the
dotted key.

Example:
    >>> cfg = load_trainer_config("configs/train-offline.yaml", ["trainer.fit.epochs=2"])
    >>> cfg.trainer.fit.epochs, cfg.engine.model.name
    (2, 'ExpStream-Tiny')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from engine.config import EngineSettings, StrictSettings, load_yaml_config, validate

PAPER_INSTRUCTION = (
    "Please play the role of a facial action describer. "
    "Objectively describe the detailed facial actions of the person in the image."
)
"""The instruction of the paper and its reference code (REFERENCE.md)."""


class TeacherSettings(StrictSettings):
    """The frozen LLM teacher whose encoder features the head learns to match."""

    model: str = "blip2-flan-t5-xxl"
    """A registered name (``trainer.teacher.TEACHERS``), a Hugging Face id, a local
    directory saved with ``save_pretrained``, or ``tiny-random`` (offline tests)."""
    instruction: str = PAPER_INSTRUCTION
    preprocess: Literal["expclip", "blip"] = "expclip"
    """expclip = the reference (the CLIP input, 224 squash in [0, 1], no mean/std, is what
    BLIP-2 saw); blip = the BLIP-2 processor's resize and CLIP mean/std."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto = bf16 autocast on CUDA (as the reference ran the T5 part), fp32 on CPU."""
    batch_size: int = Field(32, ge=1)
    cache_dir: str | None = None
    """Hugging Face cache to look in (default: HF_HOME / HF_HUB_CACHE)."""
    seed: int = 0
    """Seed of the ``tiny-random`` teacher."""


class HarvestSettings(StrictSettings):
    """Faces taken from videos before extraction, with the streamer's detector and crops."""

    detector: Literal["insightface", "haar"] = "haar"
    """The streamer's detector by name (``streamer.detect.DETECTORS``)."""
    every_s: float = Field(0.5, gt=0)
    """Seconds between sampled frames."""
    min_face_px: int = Field(40, ge=1)
    """Faces whose shorter box side is below this (frame pixels) are skipped."""
    crop_size: int = Field(224, ge=16)
    """Side of the saved square crops (the CLIP input size)."""
    align: Literal["auto", "box"] = "auto"
    """auto = 5-point alignment when the detector gives keypoints, else square boxes."""
    expand: float = Field(1.25, ge=1.0, le=3.0)
    """Square box side relative to the face's longer side (box crops)."""
    max_faces_per_frame: int = Field(16, ge=1)


class ExtractSettings(StrictSettings):
    """How features are computed and stored."""

    shard_size: int = Field(1024, ge=1)
    """Pairs per shard file; a shard is the unit of resumption."""
    batch_size: int = Field(64, ge=1)
    workers: int = Field(4, ge=0)
    """Threads decoding images (0 = decode in the main thread)."""
    extensions: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
    harvest: HarvestSettings = HarvestSettings()


class FitSettings(StrictSettings):
    """The reference objective and optimiser (REFERENCE.md), all configurable."""

    epochs: int = Field(5, ge=1)
    batch_size: int = Field(512, ge=2)
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 1
    logit_scale: float | None = None
    """None = CLIP's frozen scale recorded at extraction (100 for the OpenAI models)."""
    drop_last: bool = True
    """The reference dropped the last partial batch (48.6k faces -> 95 batches of 512)."""
    device: str = "auto"


class EvalSettings(StrictSettings):
    """Zero-shot evaluation."""

    num_segments: int = Field(16, ge=1)
    """Frames per video, at segment centres (the reference's 16)."""
    batch_size: int = Field(256, ge=1)
    baseline: bool = True
    """Also evaluate plain CLIP (``engine.head=none``) in the same run."""


class TrainerSettings(StrictSettings):
    """The ``trainer`` section."""

    teacher: TeacherSettings = TeacherSettings()
    extract: ExtractSettings = ExtractSettings()
    fit: FitSettings = FitSettings()
    eval: EvalSettings = EvalSettings()


@dataclass(frozen=True)
class TrainerConfig:
    """A whole resolved config: the raw mapping, the engine section and the trainer section."""

    raw: dict[str, Any]
    engine: EngineSettings
    trainer: TrainerSettings
    base_dir: Path
    """Folder of the config file (relative teacher paths resolve against it)."""


def load_trainer_config(
    config: str | Path | dict[str, Any] | None, overrides: list[str] | None = None
) -> TrainerConfig:
    """Load a config file or mapping with ``engine`` and ``trainer`` sections."""
    data = load_yaml_config(config, overrides)
    engine = validate(EngineSettings, data.get("engine") or {}, "engine")
    trainer = validate(TrainerSettings, data.get("trainer") or {}, "trainer")
    base = Path(config).expanduser().resolve().parent if isinstance(config, (str, Path)) else Path.cwd()
    return TrainerConfig(raw=data, engine=engine, trainer=trainer, base_dir=base)


def engine_with(engine: EngineSettings, **changes: Any) -> EngineSettings:
    """A copy of ``engine`` with top-level keys replaced (validated again)."""
    return validate(EngineSettings, {**engine.model_dump(), **changes}, "engine")
