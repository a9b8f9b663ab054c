"""Each CPU backend agrees with eager torch; unavailable backends fail or fall back clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.core.errors import ConfigError
from engine import ExpressionEngine
from engine.backends import BackendError, available_backends
from engine.backends.base import bucket, pad_batch

# Stated tolerances vs eager fp32 on CPU (logits are scaled by CLIP's logit scale).
TOLERANCE = {"onnxruntime": 1e-4, "compile": 1e-4}


@pytest.fixture
def many_crops():
    rng = np.random.default_rng(11)
    return rng.integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)


@pytest.mark.parametrize("backend", ["onnxruntime", "compile"])
def test_backend_agrees_with_eager(offline, many_crops, backend):
    eager = ExpressionEngine(offline("engine.backend=torch"))
    other = ExpressionEngine(offline(f"engine.backend={backend}"))
    assert other.backend.name == backend
    ref, out = eager.score(many_crops), other.score(many_crops)
    tol = TOLERANCE[backend]
    np.testing.assert_allclose(out.logits, ref.logits, atol=tol * max(1.0, np.abs(ref.logits).max()))
    np.testing.assert_allclose(out.features, ref.features, atol=tol)
    assert out.labels == ref.labels
    # a batch size not seen before (compile pads to a bucket; onnxruntime has a dynamic axis)
    np.testing.assert_allclose(
        other.score(many_crops[:3]).logits, ref.logits[:3], atol=tol * max(1.0, np.abs(ref.logits).max())
    )


def test_onnx_export_is_cached_by_fingerprint(offline, many_crops):
    a = ExpressionEngine(offline("engine.backend=onnxruntime"))
    mtime = a.backend.path.stat().st_mtime_ns
    b = ExpressionEngine(offline("engine.backend=onnxruntime"))
    assert b.backend.path == a.backend.path and b.backend.path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_damaged_cached_graph_is_exported_again(offline, many_crops, caplog, precision):
    a = ExpressionEngine(offline("engine.backend=onnxruntime", f"engine.precision={precision}"))
    want = a.score(many_crops).logits
    fp32 = a.cache_dir / "onnx" / f"{a.fingerprint}.onnx"
    fp32.write_bytes(fp32.read_bytes()[:1000])  # truncated from outside
    a.backend.path.write_bytes(a.backend.path.read_bytes()[:1000])
    b = ExpressionEngine(offline("engine.backend=onnxruntime", f"engine.precision={precision}"))
    assert b.backend.name == "onnxruntime" and "exporting it again" in caplog.text
    np.testing.assert_allclose(b.score(many_crops).logits, want, rtol=1e-5, atol=1e-5)


def test_max_batch_splits_large_inputs(offline, many_crops):
    small = ExpressionEngine(offline("engine.max_batch=2"))
    big = ExpressionEngine(offline())
    np.testing.assert_allclose(small.score(many_crops).logits, big.score(many_crops).logits, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_tensorrt_by_name_is_a_clear_error_and_auto_falls_back(offline, many_crops):
    with pytest.raises(BackendError, match="TensorRT needs a CUDA device"):
        ExpressionEngine(offline("engine.backend=tensorrt"))
    eng = ExpressionEngine(offline("engine.backend=auto"))
    assert eng.backend.name == "onnxruntime"  # the fastest CPU backend measured here
    assert available_backends(torch.device("cpu"))["tensorrt"]


def test_unknown_backend_lists_valid_names():
    from engine.backends import create_backend

    with pytest.raises(ConfigError, match="allowed: auto, torch, compile, onnxruntime, tensorrt"):
        create_backend("turbo", None, None)


def test_bucket_and_pad():
    assert [bucket(n, 64) for n in (1, 2, 3, 5, 64, 65)] == [1, 2, 4, 8, 64, 65]
    x = torch.ones(3, 2)
    assert pad_batch(x, 4).shape == (4, 2) and pad_batch(x, 4)[3].abs().sum() == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["torch", "compile"])
def test_fp16_cuda_agrees_with_fp32_cpu(offline, many_crops, backend):
    ref = ExpressionEngine(offline()).score(many_crops)
    gpu = ExpressionEngine(offline("engine.device=cuda", "engine.precision=fp16", f"engine.backend={backend}"))
    out = gpu.score(many_crops)
    assert np.abs(out.probs - ref.probs).max() < 2e-2
    assert (np.array(out.labels) == np.array(ref.labels)).mean() >= 0.8


def test_auto_falls_back_to_torch_when_export_fails(offline, many_crops, monkeypatch):
    import engine.backends.onnx_backend as onnx_backend

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_backend, "export_onnx", broken)
    eng = ExpressionEngine(offline("engine.backend=auto"))
    assert eng.backend.name == "torch"
    assert eng.score(many_crops).probs.shape == (5, 7)
    with pytest.raises(BackendError, match="ONNX export failed: exporter exploded"):
        ExpressionEngine(offline("engine.backend=onnxruntime"))


def test_fp8_under_auto_uses_a_torch_backend(offline):
    assert ExpressionEngine(offline("engine.precision=fp8", "engine.backend=auto")).backend.name == "torch"


def test_int8_onnxruntime_stays_close_to_fp32(offline, many_crops):
    ref = ExpressionEngine(offline()).score(many_crops)
    q = ExpressionEngine(offline("engine.precision=int8", "engine.backend=auto"))
    assert q.backend.name == "onnxruntime" and q.backend.path.name.endswith(".int8.onnx")
    out = q.score(many_crops)
    assert (out.features * ref.features).sum(1).min() > 0.99
    assert np.abs(out.probs - ref.probs).max() < 0.05
    assert (np.array(out.labels) == np.array(ref.labels)).mean() >= 0.8


def test_int8_needs_onnxruntime(offline):
    from engine import ConfigError

    with pytest.raises(ConfigError, match="int8 runs on the onnxruntime backend only"):
        ExpressionEngine(offline("engine.precision=int8", "engine.backend=torch"))
