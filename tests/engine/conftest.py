"""Engine fixtures: the tiny offline model, heads in both file formats, a fresh cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs import load_settings

TINY_DIM = 64  # embed_dim of configs/models/ExpStream-Tiny.json


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def offline(cache_dir):
    """Offline EngineSettings with a private cache; pass more overrides to ``offline(...)``."""

    def make(*overrides: str):
        return load_settings("offline", [f"engine.cache_dir={cache_dir}", *overrides]).engine

    return make


@pytest.fixture
def expclip_head_file(tmp_path):
    """A head in the authors' exact release format: torch.save({'mlp.weight': [4096, D]})."""
    gen = torch.Generator().manual_seed(7)
    weight = torch.randn(4096, TINY_DIM, generator=gen) * 0.1
    path = tmp_path / "ExpCLIP_Tiny_model.pth"
    torch.save({"mlp.weight": weight}, path)
    return path, weight


@pytest.fixture
def crops():
    """Face-sized uint8 RGB crops of mixed sizes (seeded)."""
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(224, 224), (112, 112), (150, 97), (224, 224)]]
