"""The prompt-embedding maths and its on-disk cache (the prompt sets themselves:
``engine.prompt_sets``, re-exported here).

As the reference does (docs/engine.md): each prompt -> CLIP tokenizer -> ``encode_text`` ->
float32 -> the same projection head -> L2-normalise; a class's embedding is the MEAN of its
normalised template embeddings, not re-normalised (this equals averaging logits over
templates). The text tower runs in fp32, or in fp16 / bf16 with its weights converted the way
OpenAI's ``clip.load`` converts them on CUDA (``text_tower``), as the reference encoded them.

Example (plain text: builds a model)::

    prompts = load_prompts(PromptSettings(set="ensemble5", classes="basic7"))
    build_prompt_embeddings(clip.model, clip.tokenizer, head, prompts)   # [7, 4096]
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.bundle import temp_beside
from engine.openclip import open_clip
from engine.prompt_sets import Prompts, load_prompts, reference_data

_oc = open_clip()  # first, so that open_clip comes without transformers and timm (engine.openclip)

log = logging.getLogger(__name__)

__all__ = ["PromptCache", "Prompts", "build_prompt_embeddings", "load_prompts", "reference_data", "text_tower"]


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
