"""BLIP-2 / InstructBLIP teachers through Hugging Face transformers: the encoder only.

The feature is the reference's (``trainer.teacher.parts``): ViT -> Q-Former -> projection ->
[visual tokens ; instruction] -> Flan-T5 encoder -> ``final_layer_norm`` output -> mean ->
float32 -> L2-normalise. No decoder, no generation: the reference ran beam search only to
capture that encoder output; the decoder's weights are dropped after loading. Each stage runs
in the precision of the plan (``trainer.teacher.precision``); ``features`` gives the clean,
dropout-free target and ``draws`` the reference's stochastic ones (docs/training.md).

Example (plain text: downloads the model)::

    teacher = load_teacher(TeacherSettings(model="blip2-flan-t5-xxl"), device="cuda")
    feats = teacher.features(crops)            # float32 [N, 4096], unit rows
    draws = teacher.draws(crops, seed=7, k=5)  # float32 [5, N, 4096]: dropout on, 5 draws
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from configs.core.errors import MissingDependency
from configs.trainer import TeacherSettings
from engine.preprocess import PreprocessSpec, preprocess
from trainer.teacher.base import TEACHERS, Teacher, TeacherLoadError
from trainer.teacher.draws import derive_seed, reference_dropout
from trainer.teacher.parts import TeacherParts, teacher_feature
from trainer.teacher.precision import apply_plan, autocast, resolve_plan

log = logging.getLogger(__name__)

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


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
        self.plan = resolve_plan(settings.precision, device)
        self.parts = apply_plan(parts.eval().requires_grad_(False), self.plan).to(device)
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
        self.calls = 0
        """Forward passes of the vision tower run (tests count recomputation with it)."""

    def pixels(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> teacher input [N, 3, S, S] float32 (engine preprocessing)."""
        return preprocess(crops, self.spec, self.device, torch.float32)

    def _image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        with autocast(self.plan.vision, self.device):
            return self.parts.vision(pixels)

    def _target(self, image: torch.Tensor) -> torch.Tensor:
        with autocast(self.plan.qformer, self.device):
            visual = self.parts.visual_tokens(image, self.q_ids, self.q_mask)
        with autocast(self.plan.language, self.device):
            states = self.parts.encode(visual, self.ids, self.mask)
        return teacher_feature(states)

    @torch.inference_mode()
    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Teacher input [N, 3, S, S] -> clean targets float32 [N, d], unit rows, on the device."""
        return self._target(self._image(pixels))

    @torch.inference_mode()
    def draws_from_pixels(self, pixels: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """The reference's stochastic targets [len(seeds), N, d]: the vision tower runs once (it
        is in eval in the reference too), then the Q-Former and the T5 encoder run with dropout
        on, once per seed, the RNG seeded with that seed."""
        image = self._image(pixels)
        out = []
        for seed in seeds:
            with reference_dropout(self.parts, seed, self.device):
                out.append(self._target(image))
        return torch.stack(out)

    def _batches(self, crops: Sequence[np.ndarray]) -> list[Sequence[np.ndarray]]:
        step = self.settings.batch_size
        return [crops[i : i + step] for i in range(0, len(crops), step)]

    def features(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = [self.features_from_pixels(self.pixels(b)).cpu().numpy() for b in self._batches(crops)]
        return np.concatenate(out) if out else np.zeros((0, self.feature_dim), np.float32)

    def draws(self, crops: Sequence[np.ndarray], seed: int, k: int) -> np.ndarray:
        """``k`` stochastic targets per crop, float32 [k, N, d]; sub-batch j's draw i is seeded
        with ``derive_seed(seed, j, i)``."""
        out = []
        for j, b in enumerate(self._batches(crops)):
            seeds = [derive_seed(seed, j, i) for i in range(k)]
            out.append(self.draws_from_pixels(self.pixels(b), seeds).cpu().numpy())
        return np.concatenate(out, axis=1) if out else np.zeros((k, 0, self.feature_dim), np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "teacher": self.name,
            "teacher_source": self.source,
            "teacher_dim": self.feature_dim,
            "instruction": self.settings.instruction,
            "teacher_preprocess": self.settings.preprocess,
            "teacher_image_size": self.spec.image_size,
            "teacher_precision": self.plan.name,
        }


def resolve_teacher_source(settings: TeacherSettings, cache_root: Path) -> tuple[str, list[str]]:
    """Where to load the teacher from: a local directory or a Hugging Face id, plus the
    places looked at (for error messages). The config loader made local directories
    absolute (``./dir`` in a file is relative to the file); anything else is a name."""
    model = settings.model
    if model == "tiny-random":
        # optional: transformers comes with the train extra
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
        # optional: transformers comes with the train extra
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
    load_dtype = resolve_plan(settings.precision, dev).load_dtype  # mixed plans load fp32, then cast
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
