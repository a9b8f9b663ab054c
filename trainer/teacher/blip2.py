"""BLIP-2 / InstructBLIP teachers through Hugging Face transformers: the encoder only.

The reference's feature (docs/design.md), per image: ViT -> Q-Former (32 queries) -> ``language_projection``
(LAVIS ``t5_proj``) -> concatenated IN FRONT of the instruction's token embeddings -> the
Flan-T5 ENCODER -> its ``final_layer_norm`` output (``last_hidden_state``) -> mean over all
tokens -> float32 -> L2-normalise. No decoder, no generation: the reference ran beam search
only to capture that encoder output. The decoder's weights are dropped after loading.

Example (plain text)::

    teacher = load_teacher(TeacherSettings(model="blip2-flan-t5-xxl"), device="cuda")
    feats = teacher.features(crops)           # float32 [N, 4096], unit rows
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from configs.trainer import TeacherSettings
from engine.errors import MissingDependency
from engine.preprocess import PreprocessSpec, preprocess
from trainer.teacher.base import TEACHERS, Teacher, TeacherLoadError

log = logging.getLogger(__name__)

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TeacherParts(nn.Module):
    """The pieces of a BLIP-2-style model that the feature needs (no decoder)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        lm = model.language_model
        self.instruct = model.config.model_type == "instructblip"
        self.vision_model = model.vision_model
        self.qformer = model.qformer
        self.language_projection = model.language_projection
        self.query_tokens = model.query_tokens
        self.embed_tokens = lm.get_input_embeddings()
        self.encoder = lm.get_encoder()

    def forward(
        self,
        pixels: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        q_ids: torch.Tensor | None = None,
        q_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """pixels [N, 3, S, S] + one shared instruction [1, L] -> encoder states [N, Q + L, d]."""
        n = pixels.shape[0]
        image = self.vision_model(pixel_values=pixels).last_hidden_state
        image_mask = torch.ones(image.shape[:-1], dtype=torch.long, device=image.device)
        queries = self.query_tokens.expand(n, -1, -1)
        nq = queries.shape[1]
        query_mask = torch.ones((n, nq), dtype=torch.long, device=image.device)
        if self.instruct:
            assert q_ids is not None and q_mask is not None
            out = self.qformer(
                input_ids=q_ids.expand(n, -1),
                attention_mask=torch.cat([query_mask, q_mask.expand(n, -1)], dim=1),
                query_embeds=queries,
                encoder_hidden_states=image,
                encoder_attention_mask=image_mask,
            ).last_hidden_state[:, :nq]
        else:
            out = self.qformer(
                query_embeds=queries, encoder_hidden_states=image, encoder_attention_mask=image_mask
            ).last_hidden_state
        visual_tokens = self.language_projection(out)
        text = self.embed_tokens(ids).expand(n, -1, -1)
        embeds = torch.cat([visual_tokens.to(text.dtype), text], dim=1)
        attention = torch.cat([query_mask, mask.expand(n, -1)], dim=1)
        return self.encoder(inputs_embeds=embeds, attention_mask=attention).last_hidden_state


def teacher_feature(encoder_states: torch.Tensor) -> torch.Tensor:
    """The reference's reduction: mean over all tokens -> float32 -> L2-normalise."""
    return F.normalize(encoder_states.mean(dim=1).float(), dim=-1)


class Blip2Teacher(Teacher):
    """A loaded BLIP-2 or InstructBLIP teacher; see the module docstring for the maths."""

    def __init__(
        self,
        parts: TeacherParts,
        tokenizer: Any,
        settings: TeacherSettings,
        source: str,
        device: torch.device,
        image_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        qformer_tokenizer: Any = None,
    ) -> None:
        self.parts = parts.eval().requires_grad_(False).to(device)
        self.settings = settings
        self.source = source
        self.device = device
        self.name = settings.model
        self.feature_dim = int(parts.encoder.config.d_model)
        mode = "expclip" if settings.preprocess == "expclip" else "clip"
        self.spec = PreprocessSpec(mode, image_size, mean, std)
        tok = tokenizer([settings.instruction], return_tensors="pt")
        self.ids, self.mask = tok.input_ids.to(device), tok.attention_mask.to(device)
        self.q_ids = self.q_mask = None
        if parts.instruct:
            if qformer_tokenizer is None:
                raise TeacherLoadError(f"teacher {source}: InstructBLIP needs its qformer_tokenizer")
            qt = qformer_tokenizer([settings.instruction], return_tensors="pt")
            self.q_ids, self.q_mask = qt.input_ids.to(device), qt.attention_mask.to(device)
        self.autocast_dtype = _autocast_dtype(settings.precision, device)
        self.calls = 0
        """Forward passes run (tests count recomputation with it)."""

    def pixels(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> teacher input [N, 3, S, S] float32 (engine preprocessing)."""
        return preprocess(crops, self.spec, self.device, torch.float32)

    @torch.inference_mode()
    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Teacher input [N, 3, S, S] -> float32 [N, d] unit rows, on the teacher's device."""
        self.calls += 1
        ctx = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            states = self.parts(pixels, self.ids, self.mask, self.q_ids, self.q_mask)
        return teacher_feature(states)

    def features(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(crops), self.settings.batch_size):
            px = self.pixels(crops[i : i + self.settings.batch_size])
            out.append(self.features_from_pixels(px).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.feature_dim), np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "teacher": self.name,
            "teacher_source": self.source,
            "teacher_dim": self.feature_dim,
            "instruction": self.settings.instruction,
            "teacher_preprocess": self.settings.preprocess,
            "teacher_image_size": self.spec.image_size,
        }


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return None if precision == "fp32" else _DTYPES[precision]


def resolve_teacher_source(settings: TeacherSettings, cache_root: Path) -> tuple[str, list[str]]:
    """Where to load the teacher from: a local directory or a Hugging Face id, plus the
    places looked at (for error messages). The config loader made local directories
    absolute (``./dir`` in a file is relative to the file); anything else is a name."""
    model = settings.model
    if model == "tiny-random":
        from trainer.teacher.tiny import build_tiny_teacher

        path = cache_root / "teachers" / f"tiny-blip2-seed{settings.seed}"
        if not (path / "config.json").is_file():
            build_tiny_teacher(path, settings.seed, instruction=settings.instruction)
        return str(path), [str(path)]
    raw = Path(model).expanduser()
    if raw.is_absolute():
        if raw.is_dir():
            return str(raw), [str(raw)]
        raise TeacherLoadError(f"trainer.teacher.model: no such directory {raw}")
    if model in TEACHERS:
        return TEACHERS[model].hf_id, []
    if model.count("/") == 1:
        return model, []
    names = ", ".join(TEACHERS)
    raise TeacherLoadError(
        f"trainer.teacher.model: {model!r} is not a known teacher ({names}, tiny-random), a "
        "Hugging Face id (owner/name) or a local directory (write ./dir or an absolute path)"
    )


def _load_error(settings: TeacherSettings, source: str, looked: list[str], err: Exception) -> TeacherLoadError:
    cache = settings.cache_dir or os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    offline = os.environ.get("HF_HUB_OFFLINE", "0")
    where = "; ".join([*looked, f"Hugging Face cache {cache} (HF_HUB_OFFLINE={offline})"])
    return TeacherLoadError(
        f"could not load teacher {settings.model!r} from {source} ({type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}). Looked in: {where}. On an air-gapped "
        f"machine, run `huggingface-cli download {source} --local-dir DIR` elsewhere, copy DIR "
        f"here and set trainer.teacher.model to DIR."
    )


def _image_stats(source: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    cfg = Path(source) / "preprocessor_config.json"
    if cfg.is_file():
        data = json.loads(cfg.read_text())
        return tuple(data.get("image_mean", _OPENAI_MEAN)), tuple(data.get("image_std", _OPENAI_STD))
    return _OPENAI_MEAN, _OPENAI_STD


def load_teacher(
    settings: TeacherSettings,
    device: torch.device | str = "cpu",
    cache_root: str | Path = "~/.cache/expstream",
) -> Blip2Teacher:
    """Load a teacher from a local directory or the Hugging Face hub (``HF_HUB_OFFLINE``
    respected), keep its encoder-side parts, and drop the decoder.

    Example (plain text)::

        t = load_teacher(TeacherSettings(model="~/models/blip2-flan-t5-xxl"), "cuda")
    """
    try:
        from transformers import (
            AutoConfig,
            AutoTokenizer,
            Blip2ForConditionalGeneration,
            InstructBlipForConditionalGeneration,
        )
    except ImportError as e:
        raise MissingDependency("the teacher needs transformers: pip install 'expstream[train]'") from e
    dev = torch.device(device)
    source, looked = resolve_teacher_source(settings, Path(cache_root).expanduser())
    classes = {
        "blip-2": Blip2ForConditionalGeneration,
        "instructblip": InstructBlipForConditionalGeneration,
    }
    load_dtype = torch.float32
    if settings.precision in ("bf16", "fp16") or (settings.precision == "auto" and dev.type == "cuda"):
        load_dtype = torch.float16 if settings.precision == "fp16" else torch.bfloat16
    kw: dict[str, Any] = {"cache_dir": settings.cache_dir} if settings.cache_dir else {}
    try:
        config = AutoConfig.from_pretrained(source, **kw)
        if config.model_type not in classes:
            raise TeacherLoadError(
                f"teacher {source}: model_type {config.model_type!r} is not a BLIP-2 or "
                f"InstructBLIP model (expected one of {', '.join(classes)})"
            )
        model = classes[config.model_type].from_pretrained(source, dtype=load_dtype, **kw)
        tokenizer = AutoTokenizer.from_pretrained(source, **kw)
        qtok = None
        if config.model_type == "instructblip":
            qtok = AutoTokenizer.from_pretrained(source, subfolder="qformer_tokenizer", **kw)
    except TeacherLoadError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise _load_error(settings, source, looked, e) from e
    model.eval()
    parts = TeacherParts(model)
    del model
    gc.collect()
    mean, std = _image_stats(source)
    teacher = Blip2Teacher(
        parts,
        tokenizer,
        settings,
        source,
        dev,
        int(config.vision_config.image_size),
        mean,
        std,
        qtok,
    )
    log.info("teacher %s loaded from %s: %d-d features", settings.model, source, teacher.feature_dim)
    return teacher
