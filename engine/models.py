"""Loading the frozen CLIP backbone through open_clip.

Weights come from an open_clip pretrained tag (downloaded on first use into open_clip's
cache), from a local checkpoint file, or are random with a fixed seed (tests, speed runs).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from configs.core.errors import ModelLoadError
from configs.engine import ModelSettings
from engine.openclip import enable_towers
from engine.openclip import open_clip as _open_clip

open_clip = _open_clip()  # without transformers and timm until a model's towers need them

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedClip:
    """A frozen open_clip model with what the engine needs to know about it."""

    model: torch.nn.Module
    tokenizer: Any
    name: str
    weights_id: str
    """Identifies the weights for fingerprints: ``tag:openai``, ``sha256:...`` or ``random:...``."""
    embed_dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _register_config(config_file: str | None) -> str | None:
    if not config_file:
        return None
    p = Path(config_file).expanduser()
    if not p.is_file():
        raise ModelLoadError(f"engine.model.config_file: no such file {p}")
    open_clip.add_model_config(p)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def _missing_weights_message(name: str, tag: str, err: Exception) -> str:
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    source = cfg.get("hf_hub") or cfg.get("url") or "the open_clip model zoo"
    return (
        f"could not load CLIP weights {name}/{tag} ({type(err).__name__}: {err}). "
        f"Without network, download them elsewhere from {source} and set "
        f"engine.model.pretrained to the local file path (e.g. ~/models/{name}-{tag}.pt), "
        f"or place them in open_clip's cache (engine.model.cache_dir)."
    )


def load_clip(settings: ModelSettings, device: torch.device | str = "cpu") -> LoadedClip:
    """Create the frozen CLIP model named by ``settings`` on ``device`` in fp32.

    Example (plain text)::

        clip = load_clip(ModelSettings(name="ViT-B-32", pretrained="openai"))
    """
    config_hash = _register_config(settings.config_file)
    name = settings.name
    if open_clip.get_model_config(name) is None and not name.startswith(("hf-hub:", "local-dir:")):
        known = ", ".join(open_clip.list_models()[:8])
        raise ModelLoadError(
            f"engine.model.name: unknown open_clip model {name!r} (e.g. {known}, ...; or give engine.model.config_file)"
        )
    pretrained = settings.pretrained
    try:
        hub_model = name.startswith(("hf-hub:", "local-dir:"))
        download = pretrained is not None and not Path(pretrained).expanduser().is_file()
        enable_towers(None if hub_model else open_clip.get_model_config(name), download)
        if pretrained is None:
            torch.manual_seed(settings.seed)
            model = open_clip.create_model(name, pretrained=None, device="cpu")
            weights_id = f"random:seed={settings.seed}:cfg={config_hash or name}"
        elif Path(pretrained).expanduser().is_file():
            path = Path(pretrained).expanduser()
            model = open_clip.create_model(name, pretrained=str(path), device="cpu")
            weights_id = f"sha256:{file_sha256(path)[:16]}"
        else:
            tags = open_clip.list_pretrained_tags_by_model(name)
            if pretrained not in tags:
                raise ModelLoadError(
                    f"engine.model.pretrained: {pretrained!r} is neither a file nor a pretrained "
                    f"tag of {name} (tags: {', '.join(tags) or 'none'})"
                )
            model = open_clip.create_model(name, pretrained=pretrained, device="cpu", cache_dir=settings.cache_dir)
            weights_id = f"tag:{pretrained}"
    except ModelLoadError:
        raise
    except Exception as e:  # network, hub and checkpoint errors come in many types
        if pretrained and not Path(pretrained).expanduser().is_file():
            raise ModelLoadError(_missing_weights_message(name, pretrained, e)) from e
        raise ModelLoadError(f"could not create {name} from {pretrained!r}: {e}") from e

    model.eval().requires_grad_(False)
    model.to(device)
    tokenizer = open_clip.get_tokenizer(name)
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = pp.get("size", model.visual.image_size)
    image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
    cfg = open_clip.get_model_config(name)
    embed_dim = int(cfg["embed_dim"]) if cfg else int(model.text_projection.shape[-1])
    return LoadedClip(
        model=model,
        tokenizer=tokenizer,
        name=name,
        weights_id=weights_id,
        embed_dim=embed_dim,
        image_size=image_size,
        mean=tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(pp.get("std", open_clip.OPENAI_DATASET_STD)),
    )
