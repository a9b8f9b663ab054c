"""The on-disk feature store: pairs (frozen CLIP feature, teacher feature), in shards.

Layout of a store folder::

    store.json                 identity: backbone, weights, preprocessing, teacher, dims
    shard-r0-000000.safetensors  tensors ``clip`` [n, D] and ``teacher`` (float32): [n, T]
                                 for clean targets, [n, K, T] for K stochastic draws
                                 + metadata: the n content hashes and source paths
    skipped-r0.json            unreadable inputs of the last run: path and reason

A shard is written to a temporary name and renamed, so a shard on disk is always complete;
an interrupted run loses at most the shard in progress. The content hashes in finished
shards say which inputs are done, so a rerun (or a run over a grown folder) computes only
the rest.

Example (plain text)::

    store = FeatureStore.create("feats/", identity)
    clip, teacher = store.load_pairs()
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from configs.core.errors import ConfigError

STORE_FILE = "store.json"
_SHARD_RE = re.compile(r"shard-r(\d+)-(\d+)\.safetensors$")
IDENTITY_KEYS = (
    "model",
    "weights",
    "preprocess",
    "image_size",
    "clip_dim",
    "teacher",
    "teacher_source",
    "teacher_dim",
    "instruction",
    "teacher_preprocess",
    "teacher_precision",
    "teacher_targets",
    "teacher_draws",
    "resize",
)


class StoreError(ConfigError):
    """A feature store is missing, damaged, or was made with other models."""


@dataclass(frozen=True)
class Shard:
    """One finished shard file."""

    path: Path
    hashes: list[str]
    sources: list[str]


class FeatureStore:
    """A folder of feature shards with the identity of the models that made them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        meta = self.root / STORE_FILE
        if not meta.is_file():
            raise StoreError(f"{self.root}: not a feature store (no {STORE_FILE}); run `trainer extract` first")
        try:
            self.identity: dict[str, Any] = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{meta}: not valid JSON ({e})") from e

    @classmethod
    def create(cls, root: str | Path, identity: dict[str, Any]) -> FeatureStore:
        """Open ``root`` for writing; create it, or check that it was made by the same models."""
        r = Path(root).expanduser()
        meta = r / STORE_FILE
        if meta.is_file():
            old = json.loads(meta.read_text())
            diff = [k for k in IDENTITY_KEYS if old.get(k) != identity.get(k)]
            if diff:
                detail = ", ".join(f"{k}: stored {old.get(k)!r} vs now {identity.get(k)!r}" for k in diff)
                raise StoreError(f"{r}: the store was made with other settings ({detail}); use another --out folder")
        else:
            r.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_suffix(".tmp")
            tmp.write_text(json.dumps(identity, indent=2, sort_keys=True))
            tmp.replace(meta)
        return cls(r)

    # ------------------------------------------------------------ reading

    def shard_paths(self) -> list[Path]:
        return sorted(p for p in self.root.glob("shard-r*-*.safetensors") if _SHARD_RE.search(p.name))

    def shards(self) -> Iterator[Shard]:

        for p in self.shard_paths():
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
            yield Shard(p, json.loads(meta.get("hashes", "[]")), json.loads(meta.get("sources", "[]")))

    def done_hashes(self) -> set[str]:
        """Content hashes of every input already in a finished shard."""
        return {h for s in self.shards() for h in s.hashes}

    def next_index(self, rank: int) -> int:
        idx = [
            int(m.group(2)) for p in self.shard_paths() if (m := _SHARD_RE.search(p.name)) and int(m.group(1)) == rank
        ]
        return max(idx, default=-1) + 1

    def __len__(self) -> int:
        return sum(len(s.hashes) for s in self.shards())

    def nbytes(self) -> int:
        """Bytes of the finished shard files."""
        return sum(p.stat().st_size for p in self.shard_paths())

    def load_pairs(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """All pairs as (clip [N, D], teacher [N, T] or [N, K, T]) float32, in shard order."""

        clips, teachers = [], []
        for p in self.shard_paths():
            t = load_file(str(p))
            clips.append(t["clip"])
            teachers.append(t["teacher"])
        if not clips:
            raise StoreError(f"{self.root}: the store has no shards yet")
        return torch.cat(clips).to(device), torch.cat(teachers).to(device)

    # ------------------------------------------------------------ writing

    def write_shard(
        self,
        rank: int,
        index: int,
        clip: np.ndarray,
        teacher: np.ndarray,
        hashes: list[str],
        sources: list[str],
    ) -> Path:
        """Write one shard atomically (temporary name, then rename)."""

        n = len(hashes)
        if clip.shape[0] != n or teacher.shape[0] != n or len(sources) != n or teacher.ndim not in (2, 3):
            raise ValueError(
                f"shard: {n} hashes but clip {clip.shape}, teacher {teacher.shape}, {len(sources)} sources"
            )
        path = self.root / f"shard-r{rank}-{index:06d}.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        tensors = {
            "clip": torch.from_numpy(np.ascontiguousarray(clip, np.float32)),
            "teacher": torch.from_numpy(np.ascontiguousarray(teacher, np.float32)),
        }
        save_file(
            tensors,
            str(tmp),
            metadata={"hashes": json.dumps(hashes), "sources": json.dumps(sources)},
        )
        tmp.replace(path)
        return path

    def write_skipped(self, rank: int, skipped: list[tuple[str, str]]) -> Path:
        """Record the unreadable inputs of this run (path, reason)."""
        p = self.root / f"skipped-r{rank}.json"
        p.write_text(json.dumps([{"path": a, "reason": b} for a, b in skipped], indent=1))
        return p

    def skipped(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for p in sorted(self.root.glob("skipped-r*.json")):
            out.extend(json.loads(p.read_text()))
        return out
