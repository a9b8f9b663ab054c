"""``ExpressionEngine``: face crops in, Exp-CLIP expression scores out.

Construction loads the frozen CLIP backbone and the projection head, resolves the prompts to
a class-embedding matrix (cached on disk by identity), and builds the inference backend.
The pieces live beside this module: ``runtime`` (device, dtype, backend choice, fp8),
``fingerprint``, ``prompts`` (maths and cache), ``head``, ``models``, ``backends``.

Example (plain text: builds a model)::

    from engine import ExpressionEngine
    eng = ExpressionEngine.from_config("offline")
    out = eng.score(crops)          # uint8 RGB [N, H, W, 3] or a list of [H, W, 3]
    out.labels, out.probs.shape     # (['happiness', ...], (N, 7))
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from configs.engine import EngineSettings
from configs.loader import ConfigSource
from configs.settings import load_settings
from engine.backends import Backend, BackendContext, create_backend
from engine.bundle import save_bundle, warm_key
from engine.fingerprint import fingerprint, identity, prompt_cache_key
from engine.head import HeadInfo, ProjectionHead, load_head
from engine.models import LoadedClip, load_clip
from engine.output import EngineOutput
from engine.preprocess import PreprocessSpec, preprocess
from engine.prompts import PromptCache, Prompts, build_prompt_embeddings, load_prompts
from engine.runtime import Fp8Calibration, backend_for, image_tower, resolve_device, resolve_dtype, resolve_text_dtype
from engine.scoring import ScoringModel
from engine.smoothing import Smoother, smoother_for

log = logging.getLogger(__name__)


class ExpressionEngine:
    """Frozen CLIP image tower + Exp-CLIP projection head scored against cached prompts."""

    def __init__(self, settings: EngineSettings, clip: LoadedClip | None = None) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.precision, self.device)
        self.cache_dir = Path(settings.cache_dir).expanduser()

        self._clip: LoadedClip = clip if clip is not None else load_clip(settings.model, self.device)
        self.head, self.head_info = self._load_head()
        if self.head is not None:
            self.head.to(self.device)
        self.prompts: Prompts = load_prompts(settings.prompts)
        self.preprocess_mode = self._resolve_preprocess()
        self.preprocess_spec = PreprocessSpec(
            self.preprocess_mode, self._clip.image_size, self._clip.mean, self._clip.std
        )
        self.logit_scale = float(self._clip.model.logit_scale.exp().item())
        ident = identity(self._clip.name, self._clip.weights_id, self.head_info.sha256, self.prompts.digest())
        self.fingerprint = fingerprint(ident, self.preprocess_mode, settings.precision)
        self.prompt_cache = PromptCache(self.cache_dir / "prompts")
        self.text_dtype = resolve_text_dtype(settings.text_precision, self.device)
        self.class_embeddings = self.prompt_cache.get_or_build(
            prompt_cache_key(ident, str(self.text_dtype).removeprefix("torch.")),
            len(self.classes),
            lambda: build_prompt_embeddings(
                self._clip.model, self._clip.tokenizer, self.head, self.prompts, self.text_dtype
            ),
        ).to(self.device)

        self.backend_name = backend_for(settings, self.device)
        tower = image_tower(self._clip.model.visual, self.dtype, settings.precision, self.backend_name, self._clip.name)
        self.scoring_model = ScoringModel(tower, self.head, self.class_embeddings, self.logit_scale).eval()
        self.fp8_calibration = Fp8Calibration(tower, settings.precision == "fp8")
        ctx = BackendContext(
            device=self.device,
            dtype=self.dtype,
            image_size=self._clip.image_size,
            max_batch=settings.max_batch,
            cache_dir=self.cache_dir,
            fingerprint=self.fingerprint,
            precision=settings.precision,
        )
        self.backend: Backend = create_backend(self.backend_name, self.scoring_model, ctx)
        self.bundle_path: Path | None = None
        """The compiled bundle written for torch-free starts (``engine.bundle``), if any."""
        if self.backend.name == "onnxruntime" and self.device.type == "cpu":
            self._save_bundle()
        log.info(
            "engine ready: %s (%s), head %s, %d classes, preprocess %s, backend %s on %s/%s, fingerprint %s",
            self._clip.name,
            self._clip.weights_id,
            self.head_info.source,
            len(self.classes),
            self.preprocess_mode,
            self.backend.name,
            self.device,
            str(self.dtype).removeprefix("torch."),
            self.fingerprint,
        )

    def _save_bundle(self) -> None:
        """What a torch-free start needs (``engine.bundle``): the exported graph is this
        engine's whole scoring; a failure to write costs only the next start's speed."""
        key = warm_key(self.settings)
        path = getattr(self.backend, "path", None)
        if key is None or path is None:
            return
        manifest = {
            "fingerprint": self.fingerprint,
            "classes": self.classes,
            "describe": self.describe(),
            "onnx": str(Path(path).relative_to(self.cache_dir)),
            "logit_scale": self.logit_scale,
            "preprocess": dataclasses.asdict(self.preprocess_spec),
        }
        try:
            self.bundle_path = save_bundle(self.cache_dir, key, manifest, self.class_embeddings.float().cpu().numpy())
        except (OSError, ValueError) as e:
            log.warning("could not save the compiled engine for a faster start: %s", e)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: ConfigSource = None, overrides: Sequence[str] = ()) -> ExpressionEngine:
        """Build from a whole config (file, packaged name or mapping) and ``--set``-style
        overrides (``engine.backend=torch``); only its ``engine`` section is used."""
        return cls(load_settings(config, overrides).engine)

    def derive(self, settings: EngineSettings) -> ExpressionEngine:
        """A new engine for ``settings`` (new prompts, head, ...) that shares this one's frozen
        CLIP model when the backbone, device and precision are the same (no second copy of
        the weights); built while this one keeps scoring."""
        same = (settings.model, settings.device, settings.precision) == (
            self.settings.model,
            self.settings.device,
            self.settings.precision,
        )
        return ExpressionEngine(settings, self._clip if same else None)

    def _load_head(self) -> tuple[ProjectionHead | None, HeadInfo]:
        return load_head(
            self.settings.head, self._clip.name, self._clip.embed_dim, self.cache_dir, self.settings.model.seed
        )

    def _resolve_preprocess(self) -> str:
        mode = self.settings.preprocess
        if mode == "auto":
            trained = self.head_info.metadata.get("preprocess")
            return trained or ("expclip" if self.head is not None else "clip")
        if self.head_info.format == "expclip" and mode != "expclip":
            log.warning("the released heads were trained with preprocess=expclip; %s will lower accuracy", mode)
        return mode

    # ------------------------------------------------------------ inspection

    @property
    def classes(self) -> list[str]:
        return list(self.prompts.classes)

    @property
    def crop_size(self) -> int:
        """Side of the square RGB crops the engine takes without resizing."""
        return self.preprocess_spec.image_size

    @property
    def clip_model(self) -> torch.nn.Module:
        return self._clip.model

    @property
    def tokenizer(self) -> Any:
        return self._clip.tokenizer

    @property
    def model_name(self) -> str:
        return self._clip.name

    @property
    def weights_id(self) -> str:
        return self._clip.weights_id

    @property
    def embed_dim(self) -> int:
        """CLIP embedding size D (the head's input)."""
        return self._clip.embed_dim

    @property
    def feature_dim(self) -> int:
        """Size of the projected features (4096 with an Exp-CLIP head)."""
        return int(self.class_embeddings.shape[1])

    def describe(self) -> dict[str, Any]:
        """A short, JSON-able description (published with results)."""
        return {
            "fingerprint": self.fingerprint,
            "model": self._clip.name,
            "weights": self._clip.weights_id,
            "head": Path(self.head_info.source).name if self.head is not None else "none",
            "prompts": self.prompts.name,
            "preprocess": self.preprocess_mode,
            "backend": self.backend.name,
            "classes": self.classes,
        }

    # ------------------------------------------------------------ scoring

    def preprocess(self, crops: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops (numpy, or a uint8 tensor on any device) -> model input on the
        engine's device (float32)."""
        return preprocess(crops, self.preprocess_spec, self.device, torch.float32)

    def score_pixels(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed pixels [N, 3, S, S] -> (logits, projected features BEFORE
        normalisation) tensors on the device, in max_batch chunks."""
        step = self.settings.max_batch
        if self.fp8_calibration.pending:
            self.fp8_calibration(pixels[:step].to(self.dtype))
        logits, feats = [], []
        for i in range(0, pixels.shape[0], step):
            lg, ft = self.backend(pixels[i : i + step])
            logits.append(lg)
            feats.append(ft)
        return torch.cat(logits), torch.cat(feats)

    def score(self, crops: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> EngineOutput:
        """Score face crops (uint8 RGB, [N, H, W, 3] — numpy or a torch tensor, e.g. already on
        the engine's device — or a list of [H, W, 3] of any sizes)."""
        if len(crops) == 0:
            empty = torch.zeros((0, len(self.classes)))
            return EngineOutput.from_tensors(empty, torch.zeros((0, self.feature_dim)), self.classes)
        logits, projected = self.score_pixels(self.preprocess(crops))
        return EngineOutput.from_tensors(logits, projected, self.classes)

    @torch.inference_mode()
    def clip_image_features(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Frozen CLIP image embeddings [N, D] (float32, before the head, not normalised)."""
        pixels = self.preprocess(crops)
        visual = self.scoring_model.visual
        step = self.settings.max_batch
        outs = [visual(pixels[i : i + step].to(self.dtype)).float() for i in range(0, pixels.shape[0], step)]
        return torch.cat(outs).cpu().numpy() if outs else np.zeros((0, self.embed_dim), np.float32)

    def make_smoother(self) -> Smoother:
        """A fresh per-track smoother configured from ``engine.smoothing``."""
        return smoother_for(self.settings.smoothing, self.class_embeddings.cpu().numpy(), self.logit_scale)
