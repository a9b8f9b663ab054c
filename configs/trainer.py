"""The ``trainer`` section: the LLM teacher, feature extraction (and face harvesting from
videos, which reuses the ``detector`` and ``crops`` sections), the head's fit and the
zero-shot evaluation (docs/training.md).

Example:
    >>> TrainerSettings().fit.epochs, TrainerSettings().teacher.model
    (5, 'blip2-flan-t5-xxl')
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from configs.base import ConfigPath, Device, StrictSettings

PAPER_INSTRUCTION = (
    "Please play the role of a facial action describer. "
    "Objectively describe the detailed facial actions of the person in the image."
)
"""The instruction of the paper and its reference code (docs/design.md)."""


class TeacherSettings(StrictSettings):
    """The frozen LLM teacher whose encoder features the head learns to match."""

    model: Annotated[str, ConfigPath(())] = "blip2-flan-t5-xxl"
    """A registered name (``trainer.teacher.TEACHERS``), a Hugging Face id (``org/name``), a
    local directory saved with ``save_pretrained`` (written ``./dir``, ``../dir``, ``/dir`` or
    ``~/dir``), or ``tiny-random`` (offline tests)."""
    instruction: str = PAPER_INSTRUCTION
    """The text placed after the image queries in the T5 encoder (the paper's by default)."""
    preprocess: Literal["expclip", "blip"] = "expclip"
    """expclip = the reference (the CLIP input, 224 squash in [0, 1], no mean/std, is what
    BLIP-2 saw); blip = the BLIP-2 processor's resize and CLIP mean/std."""
    precision: Literal["auto", "reference", "bf16", "fp16", "fp32"] = "auto"
    """reference = per module as the authors' code ran on CUDA: vision tower under fp16
    autocast, Q-Former and projection in fp32 without autocast, Flan-T5 in bf16 under bf16
    autocast (docs/training.md); bf16 / fp16 = the whole teacher in that type under autocast;
    fp32 = no autocast. auto = reference on CUDA, fp32 on CPU."""
    targets: Literal["reference", "clean"] = "reference"
    """reference = the authors' targets: the Q-Former and the T5 encoder run with dropout on
    (their training loop calls ``model.train()``; the vision tower stays in eval), a fresh
    draw per face and epoch, ``draws`` of them stored per face; clean = one dropout-free
    target per face."""
    draws: int | None = Field(None, ge=1, le=1024)
    """Stochastic targets stored per face with ``targets: reference``; null = ``trainer.fit.epochs``
    (the reference drew a new target every epoch; ``trainer fit`` uses draw e in epoch e)."""
    draw_seed: int = 1
    """Seed of the dropout draws (mixed with each batch's content hash and the draw index)."""
    batch_size: int = Field(32, ge=1, le=65536)
    """Crops per teacher forward pass."""
    cache_dir: Annotated[str | None, ConfigPath()] = None
    """Hugging Face cache to look in (default: HF_HOME / HF_HUB_CACHE)."""
    seed: int = 0
    """Seed of the ``tiny-random`` teacher."""


class HarvestSettings(StrictSettings):
    """Faces taken from videos before extraction. Detection and cropping are the streamer's
    own, configured by the ``detector`` and ``crops`` sections (``detector.min_face_px`` too)."""

    every_s: float = Field(0.5, gt=0, le=3600)
    """Seconds between sampled frames."""
    crop_size: int = Field(224, ge=16, le=4096)
    """Side of the saved square crops (the CLIP input size)."""
    max_faces_per_frame: int = Field(16, ge=1, le=1024)
    """At most this many faces (the detector's first) are kept per sampled frame."""


class ExtractSettings(StrictSettings):
    """How features are computed and stored."""

    shard_size: int = Field(1024, ge=1, le=1_000_000)
    """Pairs per shard file; a shard is the unit of resumption."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Images per CLIP + teacher batch."""
    workers: int = Field(4, ge=0, le=256)
    """Threads decoding images (0 = decode in the main thread)."""
    extensions: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
    """File endings taken as images in input folders."""
    resize: Literal["pil", "tensor"] = "pil"
    """How crops reach the CLIP input size with ``engine.preprocess: expclip``: pil = the
    reference's PIL bilinear resize of the decoded image, bit for bit; tensor = the
    streaming engine's antialiased tensor resize (within a few grey levels, docs/training.md)."""
    harvest: HarvestSettings = HarvestSettings()


class FitSettings(StrictSettings):
    """The reference objective and optimiser (docs/training.md), all configurable."""

    epochs: int = Field(5, ge=1, le=100_000)
    """Passes over the stored pairs."""
    batch_size: int = Field(512, ge=2, le=65536)
    """Pairs per step; InfoNCE contrasts each pair with the batch's others."""
    lr: float = Field(1e-3, gt=0)
    """SGD learning rate."""
    momentum: float = Field(0.9, ge=0)
    """SGD momentum."""
    weight_decay: float = Field(1e-4, ge=0)
    """SGD weight decay."""
    seed: int = 1
    """Seed of the head's initialisation and the batch order."""
    logit_scale: float | None = None
    """None = CLIP's frozen scale recorded at extraction (100 for the OpenAI models)."""
    drop_last: bool = True
    """The reference dropped the last partial batch (48.6k faces -> 95 batches of 512)."""
    device: Device = "auto"
    """auto (cuda when available), cpu, cuda or cuda:N."""


class EvalSettings(StrictSettings):
    """Zero-shot evaluation."""

    num_segments: int = Field(16, ge=1, le=1024)
    """Frames per video, at segment centres (the reference's 16)."""
    batch_size: int = Field(256, ge=1, le=65536)
    """Images (or frames) scored per engine call."""
    baseline: bool = True
    """Also evaluate plain CLIP (``engine.head=none``) in the same run."""
    resize: Literal["pil", "tensor"] = "pil"
    """pil = images and video frames resized with PIL exactly as the reference loads each
    (for engines with ``expclip`` preprocessing); tensor = the streaming engine's own resize."""


class TrainerSettings(StrictSettings):
    """The ``trainer`` section."""

    teacher: TeacherSettings = TeacherSettings()
    extract: ExtractSettings = ExtractSettings()
    fit: FitSettings = FitSettings()
    eval: EvalSettings = EvalSettings()
