"""LLM teachers: BLIP-2 / InstructBLIP encoder features (docs/design.md), loaded by name,
Hugging Face id or local directory.

Example (plain text)::

    teacher = load_teacher(TeacherSettings(model="blip2-flan-t5-xxl"), device="cuda")
    teacher.features(crops).shape
    # -> (N, 4096)
"""

from trainer.teacher.base import TEACHERS, Teacher, TeacherLoadError, TeacherSpec
from trainer.teacher.blip2 import Blip2Teacher, TeacherParts, load_teacher, teacher_feature
from trainer.teacher.tiny import build_tiny_teacher

__all__ = [
    "TEACHERS",
    "Blip2Teacher",
    "Teacher",
    "TeacherLoadError",
    "TeacherParts",
    "TeacherSpec",
    "build_tiny_teacher",
    "load_teacher",
    "teacher_feature",
]
