"""Scoring from a compiled engine (``engine.bundle``) with onnxruntime alone: no torch.

``open_scorer`` is how the streamer gets its engine: on a CPU, where the same settings built
an onnxruntime engine before, an ``OnnxScorer`` on that engine's graph (the command starts
several seconds sooner: no torch, torchvision or open_clip to import, no weights to load);
otherwise the full ``ExpressionEngine``, which writes the bundle for the next start. Both
give the same fingerprint, classes, description and, for the crops the streamer cuts (S x S),
the same scores: the input is identical and so is the graph.

Example (plain text: the second start needs the first one's bundle)::

    scorer = open_scorer(load_settings("offline").engine)   # builds, exports, writes the bundle
    scorer = open_scorer(load_settings("offline").engine)   # OnnxScorer, torch never imported
    scorer.score(crops).labels
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from configs.engine import EngineSettings
from engine.bundle import Bundle, load_bundle, warm_key
from engine.crops import PreprocessSpec, host_pixels
from engine.output import EngineOutput
from engine.smoothing import Smoother, smoother_for

log = logging.getLogger(__name__)


def session_options(threads: int) -> Any:
    """The scoring graph's onnxruntime options (this scorer's and the engine's onnxruntime
    backend's): every graph optimisation, ``threads`` intra-op threads (0: every core), and no
    spinning, which would take cores from the detector and the preprocessing."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.intra_op_num_threads = threads
    return opts


class OnnxScorer:
    """The engine's scoring surface (``streamer.base.ExpressionScorer``) over a bundle's graph
    on onnxruntime's CPU provider."""

    backend_name = "onnxruntime"

    def __init__(self, settings: EngineSettings, bundle: Bundle, threads: int = 0) -> None:
        """``threads``: onnxruntime's intra-op threads (0: its default, every core)."""
        import onnxruntime as ort

        self._settings = settings
        self.bundle = bundle
        self.threads = threads
        self.fingerprint = bundle.fingerprint
        self.class_embeddings = bundle.class_embeddings
        self.logit_scale = bundle.logit_scale
        pp = bundle.preprocess
        self.preprocess_spec = PreprocessSpec(pp["mode"], int(pp["image_size"]), tuple(pp["mean"]), tuple(pp["std"]))
        opts = session_options(threads)
        self.session = ort.InferenceSession(str(bundle.onnx), opts, providers=["CPUExecutionProvider"])
        log.info(
            "engine ready from its compiled bundle %s (no torch): %s, %d classes, preprocess %s, "
            "onnxruntime on cpu, fingerprint %s",
            bundle.key,
            bundle.describe.get("model"),
            len(self.classes),
            self.preprocess_spec.mode,
            self.fingerprint,
        )

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @property
    def classes(self) -> list[str]:
        return list(self.bundle.classes)

    @property
    def crop_size(self) -> int:
        return self.preprocess_spec.image_size

    @property
    def feature_dim(self) -> int:
        return int(self.class_embeddings.shape[1])

    def describe(self) -> dict[str, Any]:
        return dict(self.bundle.describe)

    def score(self, crops: np.ndarray | Sequence[np.ndarray] | Any) -> EngineOutput:
        """uint8 RGB crops ([N, H, W, 3] numpy or tensor, or a list of [H, W, 3]) -> scores."""
        if len(crops) == 0:
            c = len(self.classes)
            return EngineOutput.from_arrays(np.zeros((0, c), np.float32), np.zeros((0, self.feature_dim)), self.classes)
        if not isinstance(crops, (np.ndarray, list, tuple)):  # a tensor (any device)
            crops = crops.detach().cpu().numpy()
        pixels = host_pixels(crops, self.preprocess_spec)
        step = self._settings.max_batch
        logits, feats = [], []
        for i in range(0, len(pixels), step):
            lg, ft = self.session.run(["logits", "features"], {"pixels": pixels[i : i + step]})
            logits.append(lg)
            feats.append(ft)
        return EngineOutput.from_arrays(np.concatenate(logits), np.concatenate(feats), self.classes)

    def make_smoother(self) -> Smoother:
        return smoother_for(self._settings.smoothing, self.class_embeddings, self.logit_scale)

    def derive(self, settings: EngineSettings) -> Any:
        """The scorer for changed settings (new prompts, head): from its bundle when one was
        built before, else a full engine."""
        return open_scorer(settings, self.threads)


def open_scorer(settings: EngineSettings, threads: int = 0) -> Any:
    """The engine ``settings`` describe: an ``OnnxScorer`` when a bundle for them exists (a
    CPU onnxruntime engine built before), else ``ExpressionEngine`` (torch). ``threads``: the
    CPU threads inference may use (``pipeline.torch_threads``; 0 = the library's default)."""
    key = warm_key(settings)
    bundle = load_bundle(settings.cache_dir, key) if key is not None else None
    if bundle is not None:
        try:
            return OnnxScorer(settings, bundle, threads)
        except Exception as e:  # onnxruntime's load errors come in several types
            log.warning("compiled engine %s did not load (%s); building the engine", bundle.onnx, e)
    import torch  # the full engine: torch, open_clip and the weights

    if threads:
        torch.set_num_threads(threads)
    from engine.engine import ExpressionEngine

    return ExpressionEngine(settings)
