"""``ExpressionEngine``: face crops in, Exp-CLIP expression scores out.

Example:
    >>> from engine import ExpressionEngine
    >>> eng = ExpressionEngine.from_config("configs/offline.yaml")
    >>> out = eng.score(crops)          # uint8 RGB [N, H, W, 3] or a list of [H, W, 3]
    >>> out.labels, out.probs.shape     # (['happiness', ...], (N, 7))
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.backends import Backend, BackendContext, create_backend
from engine.config import ConfigError, EngineSettings, engine_settings_from
from engine.head import HeadInfo, ProjectionHead, load_head
from engine.models import LoadedClip, load_clip
from engine.preprocess import PreprocessSpec, preprocess
from engine.prompts import PromptCache, Prompts, build_prompt_embeddings, load_prompts
from engine.scoring import ScoringModel
from engine.smoothing import Smoother, make_smoother
from engine.tower import FastVisionTower

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class EngineOutput:
    """Scores of N crops against C classes."""

    logits: np.ndarray
    """float32 [N, C]: ``logit_scale * feature @ class_embedding``."""
    probs: np.ndarray
    """float32 [N, C]: softmax of the logits."""
    labels: list[str]
    """Top class of each crop."""
    features: np.ndarray
    """float32 [N, F]: projected, L2-normalised image features (F = 4096 with a head)."""
    feature_norms: np.ndarray
    """float32 [N]: L2 norm of each projected feature before normalisation."""

    def __post_init__(self) -> None:
        n = self.logits.shape[0]
        if self.logits.ndim != 2 or self.probs.shape != self.logits.shape:
            raise ValueError(f"logits {self.logits.shape} and probs {self.probs.shape} must both be [N, C]")
        if len(self.labels) != n or self.features.ndim != 2 or self.features.shape[0] != n:
            raise ValueError(
                f"expected {n} labels and features [N, F], got {len(self.labels)} and {self.features.shape}"
            )

        if self.feature_norms.shape != (n,):
            raise ValueError(f"expected feature_norms of shape ({n},), got {self.feature_norms.shape}")

    def __len__(self) -> int:
        return self.logits.shape[0]

    def projected_features(self) -> np.ndarray:
        """The head's output before normalisation, float32 [N, F] (what the paper's video
        protocol averages over frames before normalising)."""
        return self.features * self.feature_norms[:, None]

    @property
    def scores(self) -> np.ndarray:
        """Probability of each crop's top label, float32 [N]."""
        return self.probs.max(axis=1) if len(self) else np.zeros(0, np.float32)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"engine.device is {name!r} but CUDA is not available here")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the tower's activations (fp8 keeps its non-GEMM work in fp16 / fp32)."""
    if precision in ("auto", "fp8", "int8"):
        return torch.float16 if device.type == "cuda" else torch.float32
    return _DTYPES[precision]


class ExpressionEngine:
    """Frozen CLIP image tower + Exp-CLIP projection head scored against cached prompts."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.precision, self.device)
        self.cache_dir = Path(settings.cache_dir).expanduser()

        self._clip: LoadedClip = load_clip(settings.model, self.device)
        self.head, self.head_info = self._load_head()
        if self.head is not None:
            self.head.to(self.device)
        self.prompts: Prompts = load_prompts(settings.prompts)
        self.preprocess_mode = self._resolve_preprocess()
        self.preprocess_spec = PreprocessSpec(
            self.preprocess_mode, self._clip.image_size, self._clip.mean, self._clip.std
        )
        self.logit_scale = float(self._clip.model.logit_scale.exp().item())
        self.fingerprint = self._fingerprint()
        self.prompt_cache = PromptCache(self.cache_dir / "prompts")
        self.class_embeddings = self._class_embeddings().to(self.device)

        self.fp8_pending = settings.precision == "fp8"
        self.backend_name = settings.backend
        if self.fp8_pending and self.backend_name == "auto":
            self.backend_name = "compile" if self.device.type == "cuda" else "torch"
        if settings.precision == "int8":
            if self.backend_name not in ("auto", "onnxruntime"):
                raise ConfigError("engine.precision: int8 runs on the onnxruntime backend only")
            self.backend_name = "onnxruntime"
        self.scoring_model = ScoringModel(self._visual(), self.head, self.class_embeddings, self.logit_scale).eval()
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

    # ------------------------------------------------------------ construction

    @classmethod
    def from_config(
        cls, config: str | Path | dict[str, Any] | EngineSettings | None = None, overrides: list[str] | None = None
    ) -> ExpressionEngine:
        """Build from a config file path, a parsed dict (whole config or its ``engine``
        section) or EngineSettings; ``overrides`` are ``engine.a.b=value`` strings."""
        return cls(engine_settings_from(config, overrides))

    def _visual(self) -> torch.nn.Module:
        """The image tower the backends run: open_clip's own, or its graph-friendly
        re-statement for ``compile`` and fp8 (same weights, same maths; tests prove it)."""
        visual = self._clip.model.visual
        if self.dtype != torch.float32:
            visual = visual.to(self.dtype)
        wants_fast = self.settings.precision == "fp8" or self.backend_name == "compile"
        if not wants_fast:
            return visual
        if self.settings.precision == "fp8" and self.backend_name not in ("torch", "compile"):
            raise ConfigError("engine.precision: fp8 runs on the torch or compile backend only")
        try:
            return FastVisionTower(visual)
        except TypeError as e:
            if self.settings.precision == "fp8":
                raise ConfigError(f"engine.precision: fp8 is not supported for {self._clip.name}: {e}") from e
            log.info("compile: keeping open_clip's tower (%s)", e)
            return visual

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

    def _identity(self) -> dict[str, Any]:
        return {
            "model": self._clip.name,
            "weights": self._clip.weights_id,
            "head": self.head_info.sha256,
            "prompts": self.prompts.digest(),
        }

    def _fingerprint(self) -> str:
        ident = {**self._identity(), "preprocess": self.preprocess_mode}
        if self.settings.precision in ("fp8", "int8"):  # quantised scores are approximations
            ident["quantised"] = self.settings.precision
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]

    def _class_embeddings(self) -> torch.Tensor:
        key = hashlib.sha256(json.dumps(self._identity(), sort_keys=True).encode()).hexdigest()[:20]
        cached = self.prompt_cache.load(key)
        if cached is not None and cached.shape[0] == len(self.classes):
            log.info("prompt embeddings: cache hit %s", self.prompt_cache.path(key))
            return cached
        emb = build_prompt_embeddings(self._clip.model, self._clip.tokenizer, self.head, self.prompts)
        self.prompt_cache.store(key, emb)
        log.info("prompt embeddings: computed %d x %d, cached at %s", *emb.shape, self.prompt_cache.path(key))
        return emb

    # ------------------------------------------------------------ inspection

    @property
    def classes(self) -> list[str]:
        return list(self.prompts.classes)

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
        """Size of ``EngineOutput.features``."""
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

    def preprocess(self, crops: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> model input on the engine's device (float32)."""
        return preprocess(crops, self.preprocess_spec, self.device, torch.float32)

    def score_pixels(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed pixels [N, 3, S, S] -> (logits, projected features BEFORE
        normalisation) tensors, in max_batch chunks."""
        if self.fp8_pending:
            # Static activation scales from the first batch scored ("delayed scaling").
            self.scoring_model.visual.quantise_fp8(pixels[: self.settings.max_batch].to(self.dtype))
            self.fp8_pending = False
            log.info("fp8: activation scales calibrated on %d crops", min(len(pixels), self.settings.max_batch))
        logits, feats = [], []
        for i in range(0, pixels.shape[0], self.settings.max_batch):
            lg, ft = self.backend(pixels[i : i + self.settings.max_batch])
            logits.append(lg)
            feats.append(ft)
        return torch.cat(logits), torch.cat(feats)

    def score(self, crops: np.ndarray | Sequence[np.ndarray]) -> EngineOutput:
        """Score face crops (uint8 RGB, [N, H, W, 3] or a list of [H, W, 3] of any sizes)."""
        n = len(crops)
        c = len(self.classes)
        if n == 0:
            empty = np.zeros((0, c), np.float32)
            no_feats = np.zeros((0, self.feature_dim), np.float32)
            return EngineOutput(empty, empty.copy(), [], no_feats, np.zeros(0, np.float32))
        pixels = self.preprocess(crops)
        logits_t, projected = self.score_pixels(pixels)
        probs_t = torch.softmax(logits_t, dim=-1)
        norms_t = projected.norm(dim=-1)
        feats_t = projected / norms_t.clamp_min(1e-12)[:, None]
        logits = logits_t.float().cpu().numpy()
        top = logits.argmax(axis=1)
        return EngineOutput(
            logits,
            probs_t.float().cpu().numpy(),
            [self.classes[i] for i in top],
            feats_t.float().cpu().numpy(),
            norms_t.float().cpu().numpy(),
        )

    @torch.inference_mode()
    def clip_image_features(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Frozen CLIP image embeddings [N, D] (float32, before the head, not normalised)."""
        pixels = self.preprocess(crops)
        visual = self.scoring_model.visual
        outs = [
            visual(pixels[i : i + self.settings.max_batch].to(self.dtype)).float()
            for i in range(0, pixels.shape[0], self.settings.max_batch)
        ]
        return torch.cat(outs).cpu().numpy() if outs else np.zeros((0, self.embed_dim), np.float32)

    def make_smoother(self, method: str | None = None) -> Smoother:
        """A fresh per-track smoother configured from ``engine.smoothing``."""
        s = self.settings.smoothing
        return make_smoother(
            method or s.method,
            class_embeddings=self.class_embeddings.cpu().numpy(),
            logit_scale=self.logit_scale,
            alpha=s.ema_alpha,
            window=s.window,
            max_tracks=s.max_tracks,
        )
