"""Settings that fit the machine: every ``auto`` value of the pipeline's sections resolved
from the cores and whether the engine runs on a GPU, and models warmed up before the first
frame arrives. A value the user set is never changed.

On a CPU the detector scans whole frames every 10th frame (regions around tracks in
between), the engine re-scores each track at most 3 times a second and onnxruntime, torch
and OpenCV share the cores instead of each taking all of them (in lockstep, ``streamer
analyze``, detection and scoring take turns, so each takes every core); on a GPU whole frames
are scanned every frame and tracks re-scored up to 10 times a second. docs/BENCHMARKS.md has
the measurements behind these choices.

Example:
    >>> from configs import load_settings
    >>> fitted, chosen = fit_to_machine(load_settings("offline"), Machine(cores=2, gpu=False))
    >>> fitted.detector.full_frame_every, fitted.scheduler.max_hz, fitted.pipeline.torch_threads
    (10, 3.0, 1)
    >>> chosen["detector.full_frame_every"]
    10
    >>> fitted, _ = fit_to_machine(load_settings("offline"), Machine(cores=2, gpu=False), lockstep=True)
    >>> fitted.detector.threads, fitted.pipeline.torch_threads  # streamer analyze: they take turns
    (2, 2)
    >>> fitted, _ = fit_to_machine(load_settings("offline", ["scheduler.max_hz=5"]), Machine(8, gpu=True))
    >>> fitted.detector.full_frame_every, fitted.scheduler.max_hz, fitted.pipeline.torch_threads
    (1, 5.0, 0)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from configs import Settings
from streamer.base import ExpressionScorer, FaceDetector
from streamer.stages.align import similarity_transform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Machine:
    """What the automatic settings depend on."""

    cores: int
    """CPU cores this process may run on."""
    gpu: bool
    """Whether the engine runs on a CUDA device."""

    @classmethod
    def here(cls, engine_device: str) -> Machine:
        """This process's cores and the engine's device (``engine.device``, ``auto`` resolved)."""
        from engine.bundle import surely_cpu

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if surely_cpu(engine_device):  # no torch needed to know (a CPU engine may start without it)
            return cls(cores=max(1, cores), gpu=False)
        from engine.runtime import resolve_device  # torch: loaded with the engine anyway

        return cls(cores=max(1, cores), gpu=resolve_device(engine_device).type == "cuda")

    def describe(self) -> str:
        return f"{self.cores} CPU core{'s' if self.cores != 1 else ''}, " + (
            "engine on a GPU" if self.gpu else "no GPU"
        )


def machine_values(machine: Machine, lockstep: bool = False) -> dict[str, Any]:
    """What each ``auto`` setting becomes on ``machine`` (dotted key -> value). ``lockstep``
    (``streamer analyze``): detection waits while the engine scores, so the two never run at
    once and each may take every core; otherwise they run side by side and share them."""
    share = machine.cores if lockstep else max(1, machine.cores // 2)
    return {
        "detector.full_frame_every": 1 if machine.gpu else 10,
        "detector.threads": share,
        "scheduler.max_hz": 10.0 if machine.gpu else 3.0,
        "pipeline.torch_threads": 0 if machine.gpu else share,
        "pipeline.opencv_threads": 1 if machine.cores <= 2 else 0,
    }


def fit_to_machine(settings: Settings, machine: Machine, lockstep: bool = False) -> tuple[Settings, dict[str, Any]]:
    """``settings`` with every ``auto`` of ``machine_values`` replaced; and what was chosen."""
    chosen: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in machine_values(machine, lockstep).items():
        section, field = key.split(".")
        if getattr(getattr(settings, section), field) == "auto":
            sections.setdefault(section, {})[field] = value
            chosen[key] = value
    for section, values in sections.items():
        settings = settings.replace(**{section: getattr(settings, section).replace(**values)})
    return settings, chosen


def fit_and_log(settings: Settings, lockstep: bool = False) -> Settings:
    """``fit_to_machine`` for this machine, logging once what ``auto`` became."""
    machine = Machine.here(settings.engine.device)
    fitted, chosen = fit_to_machine(settings, machine, lockstep)
    if chosen:
        values = ", ".join(f"{k}={v}" for k, v in chosen.items())
        log.info("automatic settings for %s: %s (set any of them to override)", machine.describe(), values)
    return fitted


def warm_up(detector: FaceDetector, engine: ExpressionScorer, settings: Settings) -> None:
    """One detection, one alignment and one scoring on blank pictures, so that the first real
    frames do not pay for session start-up, lazy imports and first-call allocations (a live
    source would drop frames meanwhile: about a second on 2 cores)."""
    side = max(64, settings.detector.input_size)
    detector.detect_batch([np.zeros((side * 9 // 16, side, 3), np.uint8)])
    if settings.crops.align == "auto":
        similarity_transform(np.array([[38, 52], [74, 52], [56, 72], [42, 92], [70, 92]], np.float32), 112)
    engine.score(np.zeros((1, engine.crop_size, engine.crop_size, 3), np.uint8))
