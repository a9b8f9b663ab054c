"""Prompt sets, the prompt-embedding maths, and its on-disk cache.

As the reference does (docs/engine.md): each prompt -> CLIP tokenizer -> ``encode_text`` ->
float32 -> the same projection head -> L2-normalise; a class's embedding is the MEAN of its
normalised template embeddings, not re-normalised (this equals averaging logits over
templates). The text tower runs in fp32, or in fp16 / bf16 with its weights converted the way
OpenAI's ``clip.load`` converts them on CUDA (``text_tower``), as the reference encoded them.

Example:
    >>> prompts = load_prompts(PromptSettings(set="ensemble5", classes="basic7"))
    >>> prompts.classes[:3], len(prompts.templates[0])
    (('happiness', 'sadness', 'neutral'), 5)

    ``build_prompt_embeddings(clip.model, clip.tokenizer, head, prompts)`` then gives the
    [7, 4096] class-embedding matrix.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import configs
from configs.core.errors import ConfigError
from configs.engine import PromptSettings
from configs.loader import read_yaml
from engine.bundle import temp_beside
from engine.openclip import open_clip

_oc = open_clip()  # first, so that open_clip comes without transformers and timm (engine.openclip)

log = logging.getLogger(__name__)


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


def text_tower(clip_model: torch.nn.Module, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A model whose ``encode_text`` runs in ``dtype``: ``clip_model`` itself for fp32, else a
    copy WITHOUT the image tower converted as OpenAI's ``clip.load`` converts CLIP on CUDA:
    linear, convolution and attention weights and ``text_projection`` in ``dtype``; token and
    positional embeddings and LayerNorm weights kept fp32, and every LayerNorm computing in
    fp32 and casting back. The original model is not modified."""
    if dtype == torch.float32:
        return clip_model

    visual = getattr(clip_model, "visual", None)
    memo = {id(visual): None} if visual is not None else {}
    text = copy.deepcopy(clip_model, memo)  # the image tower maps to None: never copied
    _oc.model.convert_weights_to_lp(text, dtype)
    for m in text.modules():
        if type(m) is _oc.transformer.LayerNorm:
            m.__class__ = _oc.transformer.LayerNormFp32
    return text.eval().requires_grad_(False)


@torch.no_grad()
def encode_prompts(
    clip_model: torch.nn.Module,
    tokenizer: Any,
    head: torch.nn.Module | None,
    texts: list[str],
    batch_size: int = 256,
    text_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised projected text embeddings, one row per prompt, float32 on the model's device;
    the text tower runs in ``text_dtype`` (``text_tower``), its output cast to float32."""
    device = next(clip_model.parameters()).device
    tower = text_tower(clip_model, text_dtype)
    rows = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[i : i + batch_size]).to(device)
        t = tower.encode_text(tokens).float()
        if head is not None:
            t = head.to(device=device, dtype=torch.float32)(t)
        rows.append(F.normalize(t, dim=-1))
    return torch.cat(rows)


def build_prompt_embeddings(
    clip_model: torch.nn.Module,
    tokenizer: Any,
    head: torch.nn.Module | None,
    prompts: Prompts,
    text_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Class embedding matrix [C, F]: per class, the mean of its normalised prompt embeddings."""
    flat = [p for t in prompts.templates for p in t]
    emb = encode_prompts(clip_model, tokenizer, head, flat, text_dtype=text_dtype)
    out, start = [], 0
    for t in prompts.templates:
        out.append(emb[start : start + len(t)].mean(dim=0))
        start += len(t)
    return torch.stack(out)


class PromptCache:
    """Class-embedding matrices on disk, one file per engine fingerprint.

    ``hits`` and ``misses`` count lookups so callers (and tests) can see reuse.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def load(self, key: str) -> torch.Tensor | None:
        p = self.path(key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            emb = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file: recompute instead of failing
            log.warning("prompt cache %s unreadable (%s); recomputing", p, e)
            self.misses += 1
            return None
        self.hits += 1
        return emb

    def store(self, key: str, emb: torch.Tensor) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        p = self.path(key)
        tmp = temp_beside(p)
        torch.save(emb.detach().to("cpu", torch.float32), tmp)
        tmp.replace(p)
        return p

    def get_or_build(self, key: str, n_classes: int, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached matrix under ``key``, or ``build()``'s, stored for next time."""
        cached = self.load(key)
        if cached is not None and cached.shape[0] == n_classes:
            log.info("prompt embeddings: cache hit %s", self.path(key))
            return cached
        emb = build()
        self.store(key, emb)
        log.info("prompt embeddings: computed %d x %d, cached at %s", *emb.shape, self.path(key))
        return emb
