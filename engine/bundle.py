"""A compiled engine on disk, so that a CPU engine can start without torch.

When the engine runs on onnxruntime on the CPU, everything scoring needs after construction
is one ONNX graph (image tower + head + prompt matrix, exported once per fingerprint) and a
few facts: classes, fingerprint, preprocessing, the class embeddings and logit scale (for the
smoothers). ``ExpressionEngine`` writes them as a *bundle*, keyed by the settings that
produced it (``warm_key``); a later start with the same settings finds the bundle and scores
through ``engine.onnx_scorer`` without importing torch, torchvision or open_clip (several
seconds of a short command on a small CPU).

The key covers every engine setting that can change a score, and each file a setting names:
by its content up to 64 MiB (heads, prompt files, model configs), by size and modification
time beyond (checkpoints), so a replaced file is a new key. Settings that do not change
scores (batch size, cache directory, smoothing) are left out. Bump ``BUNDLE_FORMAT`` when
the exported graph or the preprocessing changes meaning.

Example:
    >>> from configs.engine import EngineSettings
    >>> warm_key(EngineSettings(device="cuda")) is None  # only CPU engines start this way
    True
    >>> len(warm_key(EngineSettings(device="cpu")))
    20
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import configs
from configs.engine import EngineSettings

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1


def surely_cpu(device: str) -> bool:
    """True when ``engine.device`` resolves to the CPU for certain without asking torch:
    ``cpu``, or ``auto`` on a machine with no GPU driver torch's ``cuda`` could use (NVIDIA's,
    WSL's GPU device, AMD's ROCm device)."""
    if device == "cpu" or device.startswith("cpu:"):
        return True
    if device != "auto":
        return False
    drivers = ("/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")
    return not (any(os.path.exists(p) for p in drivers) or glob.glob("/dev/nvidia[0-9]*"))


HASHED_BYTES = 64 << 20
"""Files up to this size (heads, model configs, prompt files) are keyed by their content;
larger ones (CLIP checkpoints) by size and modification time, which costs no read."""


def _file_facts(value: Any) -> list[Any] | None:
    if not isinstance(value, str) or not value:
        return None
    p = Path(value).expanduser()
    if not p.is_file():
        return None
    st = p.stat()
    if st.st_size <= HASHED_BYTES:
        return [str(p.resolve()), hashlib.sha256(p.read_bytes()).hexdigest()]
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def warm_key(settings: EngineSettings) -> str | None:
    """The bundle key of ``settings``; None when the engine may not run on the CPU."""
    if not surely_cpu(settings.device):
        return None
    data = settings.model_dump(mode="json", exclude={"cache_dir", "max_batch", "smoothing", "device"})
    data["model"].pop("cache_dir", None)
    p = settings.prompts
    named = {
        "model.pretrained": settings.model.pretrained,
        "model.config_file": settings.model.config_file,
        "head": settings.head,
        "prompts.custom": p.custom if isinstance(p.custom, str) else None,
        "prompts.file": p.file or str(configs.path("prompts/expclip_prompts.yaml")),
    }
    data["files"] = {k: f for k, v in named.items() if (f := _file_facts(v)) is not None}
    data["format"] = BUNDLE_FORMAT
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Bundle:
    """What a torch-free scorer needs, read back from ``cache_dir/engines/<key>.json``."""

    key: str
    fingerprint: str
    classes: tuple[str, ...]
    describe: dict[str, Any]
    onnx: Path
    class_embeddings: np.ndarray
    """float32 [C, F]: the prompt matrix the graph scores against (the smoothers need it)."""
    logit_scale: float
    preprocess: dict[str, Any]
    """mode, image_size, mean, std: what ``engine.crops.PreprocessSpec`` holds."""


def temp_beside(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process or call uses: processes that
    build the same cached file at once (a cluster's workers on one machine) each write their
    own, and ``replace`` makes one of them the file."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _paths(cache_dir: str | Path, key: str) -> tuple[Path, Path]:
    root = Path(cache_dir).expanduser() / "engines"
    return root / f"{key}.json", root / f"{key}.npy"


def load_bundle(cache_dir: str | Path, key: str) -> Bundle | None:
    """The bundle under ``key``, or None when there is none or it does not hold together
    (a missing or resized graph, a torn file): the caller then builds the engine in full,
    which writes it again."""
    manifest, matrix = _paths(cache_dir, key)
    if not manifest.is_file():
        return None
    try:
        m = json.loads(manifest.read_text())
        onnx = Path(cache_dir).expanduser() / m["onnx"]
        if m["format"] != BUNDLE_FORMAT or onnx.stat().st_size != m["onnx_bytes"]:
            raise ValueError("a different format or graph")
        emb = np.load(matrix, allow_pickle=False)
        if emb.shape != (len(m["classes"]), m["feature_dim"]):
            raise ValueError(f"class embeddings {emb.shape}")
        return Bundle(
            key=key,
            fingerprint=m["fingerprint"],
            classes=tuple(m["classes"]),
            describe=m["describe"],
            onnx=onnx,
            class_embeddings=emb.astype(np.float32, copy=False),
            logit_scale=float(m["logit_scale"]),
            preprocess=m["preprocess"],
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("compiled engine %s unusable (%s); building the engine", manifest, e)
        return None


def save_bundle(cache_dir: str | Path, key: str, manifest: dict[str, Any], class_embeddings: np.ndarray) -> Path:
    """Write a bundle (the matrix first, the manifest last, each atomically); ``manifest``
    names the graph relative to ``cache_dir``."""
    path, matrix = _paths(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    emb = np.ascontiguousarray(class_embeddings, np.float32)
    tmp = temp_beside(matrix)
    with open(tmp, "wb") as f:
        np.save(f, emb)
    tmp.replace(matrix)
    onnx = Path(cache_dir).expanduser() / manifest["onnx"]
    full = {
        **manifest,
        "format": BUNDLE_FORMAT,
        "key": key,
        "onnx_bytes": onnx.stat().st_size,
        "feature_dim": int(emb.shape[1]),
    }
    tmp = temp_beside(path)
    tmp.write_text(json.dumps(full, indent=1, sort_keys=True))
    tmp.replace(path)
    return path
