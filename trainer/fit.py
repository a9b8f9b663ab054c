"""``trainer fit``: train the projection head on stored (CLIP, teacher) pairs.

The reference objective and optimiser (docs/training.md): image side = L2-normalised
``head(clip_feature)``, text side = the stored, L2-normalised teacher feature;
``logits = scale * image @ teacher.T`` with CLIP's frozen scale; loss =
``0.5 * CE(logits, arange(N)) + 0.5 * CE(logits.T, arange(N))``; SGD lr 1e-3, momentum 0.9,
weight decay 1e-4, batch 512, 5 epochs, seed 1. Only the head trains, and because both
encoders are frozen their outputs are read from the store instead of being recomputed every
epoch as in the reference loop. The reference's teacher ran with dropout on, so its targets
were a fresh draw each epoch: a store of reference targets holds K draws per face and epoch
e (counting from 0) is fitted to draw ``e mod K``.

Example:
    >>> gen = torch.Generator().manual_seed(0)
    >>> clip, teacher = torch.randn(256, 32, generator=gen), F.normalize(torch.randn(256, 64, generator=gen), dim=-1)
    >>> result = fit_head(clip, teacher, FitSettings(epochs=3, batch_size=64, lr=0.1, device="cpu"), 100.0)
    >>> result.history[-1].loss < result.history[0].loss
    True
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from configs.core.errors import ConfigError
from configs.trainer import FitSettings
from engine.head import ProjectionHead, export_expclip, save_head
from engine.runtime import resolve_device
from trainer.store import FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochLog:
    """One epoch: mean loss and in-batch retrieval top-1 accuracy (%) over its batches."""

    epoch: int
    loss: float
    accuracy: float
    seconds: float
    batches: int
    draw: int | None = None
    """Which stored teacher draw this epoch fitted (0-based); None for clean targets."""


@dataclass
class FitResult:
    head: ProjectionHead
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
    pairs: int = 0
    logit_scale: float = 100.0


def infonce(image: torch.Tensor, teacher: torch.Tensor, logit_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of matched rows; returns (loss, logits_per_image)."""
    logits = logit_scale * image @ teacher.T
    target = torch.arange(logits.shape[0], device=logits.device)
    loss = 0.5 * F.cross_entropy(logits, target) + 0.5 * F.cross_entropy(logits.T, target)
    return loss, logits


def _batches(n: int, batch: int, drop_last: bool, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    stops = range(0, n - batch + 1 if drop_last else n, batch)
    out = [perm[i : i + batch] for i in stops]
    return out or [perm]  # fewer pairs than one batch: one smaller batch


def fit_head(
    clip: torch.Tensor,
    teacher: torch.Tensor,
    settings: FitSettings,
    logit_scale: float,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> FitResult:
    """Train a fresh ``Linear(D -> T, bias=False)`` head; deterministic for a given seed.

    ``teacher`` is [N, T] (one target per face) or [N, K, T] (K stochastic draws per face:
    epoch e uses draw ``e mod K``, as the reference drew a new target every epoch).
    """
    if clip.ndim != 2 or teacher.ndim not in (2, 3) or clip.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"fit: expected clip [N, D] and teacher [N, T] or [N, K, T], "
            f"got {tuple(clip.shape)} and {tuple(teacher.shape)}"
        )
    draws = teacher.shape[1] if teacher.ndim == 3 else 0
    if draws and draws != settings.epochs:
        log.warning(
            "fit: %d epochs over %d stored teacher draws; epoch e uses draw e mod %d", settings.epochs, draws, draws
        )
    if clip.shape[0] < 2:
        raise ConfigError(f"fit: need at least 2 pairs, got {clip.shape[0]}")
    device = resolve_device(settings.device)
    scale = float(settings.logit_scale or logit_scale)
    torch.manual_seed(settings.seed)
    head = ProjectionHead(clip.shape[1], teacher.shape[-1]).to(device).train()
    gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.SGD(
        head.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    clip = clip.to(device, torch.float32)
    teacher = F.normalize(teacher.to(device, torch.float32), dim=-1)
    result = FitResult(head=head, pairs=clip.shape[0], logit_scale=scale)
    t_start = time.perf_counter()
    for epoch in range(settings.epochs):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        target = teacher[:, epoch % draws] if draws else teacher
        batches = _batches(clip.shape[0], settings.batch_size, settings.drop_last, gen)
        for idx in batches:
            idx = idx.to(device)
            image = F.normalize(head(clip[idx]), dim=-1)
            loss, logits = infonce(image, target[idx], scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                n = idx.shape[0]
                loss_sum += loss.detach() * n
                correct += (logits.argmax(dim=1) == torch.arange(n, device=device)).sum()
                seen += n
        entry = EpochLog(
            epoch=epoch + 1,
            loss=float(loss_sum) / seen,
            accuracy=float(correct) / seen * 100.0,
            seconds=time.perf_counter() - t0,
            batches=len(batches),
            draw=epoch % draws if draws else None,
        )
        result.history.append(entry)
        log.info(
            "epoch %d: loss %.4f, in-batch accuracy %.2f%%, %.2fs",
            entry.epoch,
            entry.loss,
            entry.accuracy,
            entry.seconds,
        )
        if on_epoch is not None:
            on_epoch(entry)
    result.seconds = time.perf_counter() - t_start
    head.eval().requires_grad_(False)
    return result


def data_fingerprint(store: FeatureStore) -> str:
    """Hash of the sorted content hashes of the stored inputs."""
    h = hashlib.sha256()
    for digest in sorted(store.done_hashes()):
        h.update(digest.encode())
    return h.hexdigest()[:16]


def head_metadata(store: FeatureStore, settings: FitSettings, result: FitResult) -> dict[str, Any]:
    """Metadata saved with the head (the engine reads ``backbone`` and ``preprocess``)."""
    ident = store.identity
    return {
        "backbone": ident.get("model"),
        "weights": ident.get("weights"),
        "preprocess": ident.get("preprocess"),
        "teacher": ident.get("teacher"),
        "teacher_source": ident.get("teacher_source"),
        "teacher_dim": ident.get("teacher_dim"),
        "instruction": ident.get("instruction"),
        "teacher_precision": ident.get("teacher_precision"),
        "teacher_targets": ident.get("teacher_targets", "clean"),
        "teacher_draws": ident.get("teacher_draws", 1),
        "resize": ident.get("resize"),
        "data": {"fingerprint": data_fingerprint(store), "pairs": result.pairs},
        "fit": {**settings.model_dump(), "logit_scale": result.logit_scale},
        "history": [asdict(h) for h in result.history],
        "trainer": "expstream trainer fit",
    }


def fit_store(
    store_dir: str | Path,
    settings: FitSettings,
    out: str | Path,
    export_expclip_path: str | Path | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> FitResult:
    """Fit on a feature store and save the head (and optionally the authors' format)."""
    store = FeatureStore(store_dir)
    clip, teacher = store.load_pairs()
    scale = float(store.identity.get("logit_scale") or 100.0)
    result = fit_head(clip, teacher, settings, scale, on_epoch)
    save_head(out, result.head, head_metadata(store, settings, result))
    if export_expclip_path is not None:
        if result.head.out_dim != 4096:
            log.warning(
                "exporting a %d-d head in the authors' format: their loader expects 4096",
                result.head.out_dim,
            )
        export_expclip(export_expclip_path, result.head)
    return result
