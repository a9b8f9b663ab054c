"""The graph-friendly tower equals open_clip's; fp8 stays close to fp32 (numerics only on CPU:
fp8 speed needs Hopper, see docs/BENCHMARKS.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import ConfigError, ExpressionEngine
from engine.tower import FastVisionTower, Fp8Linear


@pytest.fixture
def faces():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (6, 224, 224, 3), dtype=np.uint8)


def test_fast_tower_equals_open_clip_tower(offline):
    eng = ExpressionEngine(offline())
    visual = eng.clip_model.visual
    x = torch.rand(3, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(FastVisionTower(visual)(x), visual(x), atol=1e-5, rtol=1e-5)


def test_fp8_linear_is_close_to_linear():
    gen = torch.Generator().manual_seed(0)
    w, b, x = torch.randn(64, 32, generator=gen), torch.randn(64, generator=gen), torch.randn(10, 32, generator=gen)
    ref = torch.nn.functional.linear(x, w, b)
    out = Fp8Linear(w, b, act_amax=float(x.abs().max()))(x)
    assert out.shape == ref.shape
    rel = (out - ref).norm() / ref.norm()
    assert rel < 0.05  # e4m3 keeps 3 mantissa bits: a few per cent per GEMM


def test_fp8_dimensions_must_suit_the_gemm():
    with pytest.raises(ValueError, match="divisible by 16"):
        Fp8Linear(torch.zeros(10, 32), None, 1.0)


def test_fp8_engine_agrees_with_fp32(offline, faces):
    ref = ExpressionEngine(offline()).score(faces)
    fp8 = ExpressionEngine(offline("engine.precision=fp8"))
    assert fp8.fp8_calibration.pending
    out = fp8.score(faces)
    assert not fp8.fp8_calibration.pending
    assert all(isinstance(m, Fp8Linear) for blk in fp8.scoring_model.visual.blocks for m in blk.linears().values())
    cos = (out.features * ref.features).sum(1)
    assert cos.min() > 0.99
    assert np.abs(out.probs - ref.probs).max() < 0.05
    assert (np.array(out.labels) == np.array(ref.labels)).mean() >= 5 / 6


def test_fp8_needs_a_torch_backend(offline):
    with pytest.raises(ConfigError, match="fp8 runs on the torch or compile backend only"):
        ExpressionEngine(offline("engine.precision=fp8", "engine.backend=onnxruntime"))
