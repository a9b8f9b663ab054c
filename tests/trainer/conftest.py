"""Shared fixtures: the tiny BLIP-2 teacher (built once per session), the offline trainer
config pointed at it, and generated image folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import configs
from configs import Settings, load_settings
from trainer.teacher import build_tiny_teacher


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny random BLIP-2 + offline tokenizer, saved with save_pretrained."""
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny-blip2", seed=0)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def config_path() -> Path:
    return configs.path("train-offline.yaml")


@pytest.fixture(scope="session")
def overrides(tiny_teacher_dir: Path, cache_dir: Path) -> list[str]:
    """Config overrides every test uses: the session's teacher and a private cache."""
    return [f"trainer.teacher.model={tiny_teacher_dir}", f"engine.cache_dir={cache_dir}"]


@pytest.fixture(scope="session")
def cfg(config_path: Path, overrides: list[str]) -> Settings:
    return load_settings(config_path, overrides)


def write_images(root: Path, n: int, seed: int = 0, classes: tuple[str, ...] = ("a", "b")) -> list[Path]:
    """n random RGB images of random sizes in ImageFolder layout, mixed jpg/png/webp."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = root / classes[i % len(classes)]
        d.mkdir(parents=True, exist_ok=True)
        h, w = (int(v) for v in rng.integers(24, 72, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        p = d / f"img{i:03d}.{('png', 'jpg', 'webp')[i % 3]}"
        Image.fromarray(img).save(p)
        out.append(p)
    return out
