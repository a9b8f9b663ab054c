"""What identifies an engine's scores: the backbone and its weights, the head file, the
prompts, the preprocessing and any quantisation. Every published message carries the
12-hex fingerprint, so subscribers can tell (and compare) which engine produced a score.

Example:
    >>> ident = identity("ViT-L-14", "tag:openai", "ab12", "cd34")
    >>> fingerprint(ident, "expclip", "auto")
    '4e22e10ffe52'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

QUANTISED = ("fp8", "int8")
"""Precisions whose scores are approximations: they get a fingerprint of their own."""


def _digest(data: dict[str, Any], length: int) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:length]


def identity(model: str, weights: str, head_sha256: str, prompts_digest: str) -> dict[str, Any]:
    """What the class embeddings depend on (they are cached under its hash)."""
    return {"model": model, "weights": weights, "head": head_sha256, "prompts": prompts_digest}


def prompt_cache_key(ident: dict[str, Any], text_dtype: str = "float32") -> str:
    """The prompt-embedding cache key of an identity and the text tower's type (fp32 keys
    are those of earlier versions)."""
    return _digest(ident if text_dtype == "float32" else {**ident, "text_dtype": text_dtype}, 20)


def fingerprint(ident: dict[str, Any], preprocess: str, precision: str) -> str:
    """The engine's 12-hex fingerprint: the identity plus preprocessing and quantisation."""
    full = {**ident, "preprocess": preprocess}
    if precision in QUANTISED:
        full["quantised"] = precision
    return _digest(full, 12)
