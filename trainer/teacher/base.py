"""What a teacher is, and the teachers known by name.

A teacher maps uint8 RGB face crops to one L2-normalised feature per crop; the head is
trained to project CLIP's embedding onto it.

Example:
    >>> spec = TEACHERS["blip2-flan-t5-xl"]
    >>> spec.hf_id, spec.feature_dim
    ('Salesforce/blip2-flan-t5-xl', 2048)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from configs.core.errors import ConfigError, ModelError


class TeacherLoadError(ModelError):
    """A teacher model could not be found or loaded."""


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher known by name."""

    hf_id: str
    feature_dim: int
    """Width of the feature = d_model of the language model's encoder = head output size."""
    note: str


TEACHERS: dict[str, TeacherSpec] = {
    "blip2-flan-t5-xxl": TeacherSpec(
        "Salesforce/blip2-flan-t5-xxl",
        4096,
        "the paper's teacher (LAVIS pretrain_flant5xxl); ~12B params",
    ),
    "blip2-flan-t5-xl": TeacherSpec(
        "Salesforce/blip2-flan-t5-xl", 2048, "same recipe, smaller; ~3.9B params, 8 GB in bf16"
    ),
    "instructblip-flan-t5-xl": TeacherSpec(
        "Salesforce/instructblip-flan-t5-xl",
        2048,
        "Q-Former also reads the instruction; ~4B params",
    ),
    "instructblip-flan-t5-xxl": TeacherSpec(
        "Salesforce/instructblip-flan-t5-xxl",
        4096,
        "Q-Former also reads the instruction; ~12B params",
    ),
}
"""Teachers by name. Any BLIP-2 / InstructBLIP checkpoint with a T5 language model also
works through its Hugging Face id or a local directory."""


class Teacher(ABC):
    """Face crops in, L2-normalised float32 features out."""

    name: str
    feature_dim: int

    @abstractmethod
    def features(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB crops (any sizes) -> float32 [N, feature_dim], rows of unit norm."""

    def draws(self, crops: Sequence[np.ndarray], seed: int, k: int) -> np.ndarray:
        """``k`` stochastic targets per crop, float32 [k, N, feature_dim] (the reference's
        dropout-on targets, docs/training.md); teachers without them refuse."""
        raise ConfigError(f"teacher {self.name} has no stochastic targets; set trainer.teacher.targets=clean")

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What to record with the stored features and the trained head."""
