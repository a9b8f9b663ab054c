"""LLM teachers: BLIP-2 / InstructBLIP encoder features (docs/training.md), loaded by name,
Hugging Face id or local directory; clean targets or the reference's stochastic draws, in a
per-module precision plan.

Example (plain text: downloads a 12 B-parameter model)::

    teacher = load_teacher(TeacherSettings(model="blip2-flan-t5-xxl"), device="cuda")
    teacher.features(crops).shape              # (N, 4096)
    teacher.draws(crops, seed=1, k=5).shape    # (5, N, 4096)
"""

from trainer.teacher.base import TEACHERS, Teacher, TeacherLoadError, TeacherSpec
from trainer.teacher.blip2 import Blip2Teacher, load_teacher
from trainer.teacher.draws import derive_seed, reference_dropout
from trainer.teacher.parts import TeacherParts, teacher_feature
from trainer.teacher.precision import PLANS, PrecisionPlan, apply_plan, resolve_plan, stage_dtypes
from trainer.teacher.tiny import build_tiny_teacher

__all__ = [
    "PLANS",
    "TEACHERS",
    "Blip2Teacher",
    "PrecisionPlan",
    "Teacher",
    "TeacherLoadError",
    "TeacherParts",
    "TeacherSpec",
    "apply_plan",
    "build_tiny_teacher",
    "derive_seed",
    "load_teacher",
    "reference_dropout",
    "resolve_plan",
    "stage_dtypes",
    "teacher_feature",
]
