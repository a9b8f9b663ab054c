"""Prompt sets: which classes are scored and the text prompts of each, from the settings
(``engine.prompts``) and the packaged reference data. No torch: the command line's
``--classes`` and a torch-free engine start read them (``engine.prompts`` has the maths that
turns them into class embeddings).

Example:
    >>> prompts = load_prompts(PromptSettings(set="ensemble5", classes="basic7"))
    >>> prompts.classes[:3], len(prompts.templates[0])
    (('happiness', 'sadness', 'neutral'), 5)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import configs
from configs.core.errors import ConfigError
from configs.engine import PromptSettings
from configs.loader import read_yaml


@dataclass(frozen=True)
class Prompts:
    """Classes in score order and the text prompts of each."""

    name: str
    classes: tuple[str, ...]
    templates: tuple[tuple[str, ...], ...]
    """``templates[i]`` are the prompts of ``classes[i]``."""

    def __post_init__(self) -> None:
        if not self.classes:
            raise ConfigError("prompts: no classes")
        if len(self.classes) != len(self.templates):
            raise ConfigError(f"prompts: {len(self.classes)} classes but {len(self.templates)} template lists")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"prompts: duplicate class names in {self.classes}")
        for c, t in zip(self.classes, self.templates, strict=True):
            if not t or not all(isinstance(p, str) and p.strip() for p in t):
                raise ConfigError(f"prompts: class {c!r} needs at least one non-empty prompt")

    def digest(self) -> str:
        """Stable hash of classes and prompts."""
        blob = json.dumps([self.classes, self.templates], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reference_data(path: str | None = None) -> dict[str, Any]:
    """The reference prompt sets and class sets (packaged copy unless ``path`` is given)."""
    return read_yaml(path or configs.path("prompts/expclip_prompts.yaml"))


def _class_list(classes: str | list[str], data: dict[str, Any]) -> list[str]:
    if isinstance(classes, list):
        return [str(c) for c in classes]
    sets = data.get("class_sets", {})
    if classes not in sets:
        raise ConfigError(f"engine.prompts.classes: got {classes!r}; allowed: {', '.join(sets)} or a list")
    return list(sets[classes])


def _custom_mapping(custom: str | dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(custom, str):
        data = read_yaml(custom)
        custom = data.get("classes", data)
    if not isinstance(custom, dict) or not custom:
        raise ConfigError("engine.prompts.custom: expected a mapping class -> [prompt, ...]")
    out: dict[str, list[str]] = {}
    for cls, prompts in custom.items():
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts:
            raise ConfigError(f"engine.prompts.custom.{cls}: expected a list of prompts, got {prompts!r}")
        out[str(cls)] = [str(p) for p in prompts]
    return out


def load_prompts(settings: PromptSettings) -> Prompts:
    """Resolve prompt settings to concrete classes and prompts."""
    if settings.custom is not None:
        mapping = _custom_mapping(settings.custom)
        return Prompts("custom", tuple(mapping), tuple(tuple(v) for v in mapping.values()))
    data = reference_data(settings.file)
    classes = _class_list(settings.classes, data)
    if settings.templates is not None:
        if not settings.templates or not all("{}" in t for t in settings.templates):
            raise ConfigError("engine.prompts.templates: each template needs a {} for the class name")
        return Prompts(
            "templates", tuple(classes), tuple(tuple(t.format(c) for t in settings.templates) for c in classes)
        )
    sets = data.get("prompt_sets", {})
    if settings.set not in sets:
        raise ConfigError(f"engine.prompts.set: got {settings.set!r}; allowed: {', '.join(sets)}")
    table = sets[settings.set]
    missing = [c for c in classes if c not in table]
    if missing:
        raise ConfigError(f"engine.prompts: prompt set {settings.set} has no prompts for {missing}")
    return Prompts(settings.set, tuple(classes), tuple(tuple(table[c]) for c in classes))
