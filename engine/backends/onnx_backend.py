"""ONNX Runtime: the image tower + head + prompt matrix exported as one ONNX graph.

The export (fp32, dynamic batch) is cached under ``cache_dir/onnx/<fingerprint>.onnx``; a
cached graph that no longer loads (damaged from outside) is exported again, once.
CUDA is used when this onnxruntime build has the CUDA provider, else the CPU provider.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from configs.core.errors import BackendError
from engine.backends.base import Backend
from engine.bundle import temp_beside
from engine.onnx_scorer import session_options
from engine.scoring import ScoringModel

log = logging.getLogger(__name__)


def export_onnx(model: ScoringModel, path: Path, image_size: int, opset: int = 17) -> Path:
    """Export ``model`` (copied to fp32 on CPU) with a dynamic batch axis."""
    cpu = copy.deepcopy(model).float().cpu().eval()
    example = torch.zeros(2, 3, image_size, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    # nn.MultiheadAttention's inference fast path has no ONNX symbolic: trace the plain path.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _export(cpu, example, tmp, opset)
        tmp.replace(path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        tmp.unlink(missing_ok=True)
    return path


def _export(cpu: torch.nn.Module, example: torch.Tensor, tmp: Path, opset: int) -> None:
    with torch.no_grad():
        torch.onnx.export(
            cpu,
            (example,),
            str(tmp),
            input_names=["pixels"],
            output_names=["logits", "features"],
            dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
            opset_version=opset,
            dynamo=False,
        )


def quantise_int8(fp32_path: Path) -> Path:
    """Dynamic int8 quantisation of an exported graph (weights int8, activation scales computed
    per call), cached beside it."""
    out = fp32_path.with_suffix(".int8.onnx")
    if out.is_file():
        return out
    # optional backend: imported only when chosen
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8", fp32_path.name)
    tmp = temp_beside(out)
    try:
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
    except Exception as e:  # onnxruntime's quantiser raises many types
        tmp.unlink(missing_ok=True)
        raise BackendError(f"int8 quantisation failed: {e}") from e
    tmp.replace(out)
    return out


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    @classmethod
    def available(cls, device: torch.device) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        return None

    def build(self, model: ScoringModel) -> None:
        # optional backend: imported only when chosen
        import onnxruntime as ort

        fp32 = self.ctx.cache_dir / "onnx" / f"{self.ctx.fingerprint}.onnx"
        cached = fp32.is_file()
        providers = ["CPUExecutionProvider"]
        if self.ctx.device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            else:
                log.warning("onnxruntime has no CUDA provider here: running on CPU")
        # the CPU thread budget is torch's (set by the caller, e.g. pipeline.torch_threads)
        opts = session_options(torch.get_num_threads())
        path = self._graph(model, fp32)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime's load errors come in several types
            if not cached:
                raise BackendError(f"the exported ONNX graph {path} does not load: {e}") from e
            # a cached graph damaged from outside (our writes are atomic): export it again, once
            log.warning("cached ONNX graph %s does not load (%s); exporting it again", path, e)
            fp32.unlink(missing_ok=True)
            fp32.with_suffix(".int8.onnx").unlink(missing_ok=True)
            path = self._graph(model, fp32)
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.path = path

    def _graph(self, model: ScoringModel, fp32: Path) -> Path:
        """The graph to load: the cached export (made now when missing), quantised for int8."""
        if not fp32.is_file():
            log.info("exporting the scoring model to ONNX: %s", fp32)
            try:
                export_onnx(model, fp32, self.ctx.image_size)
            except Exception as e:  # exporter failures come in many types
                raise BackendError(f"ONNX export failed: {e}") from e
        return quantise_int8(fp32) if self.ctx.precision == "int8" else fp32

    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = pixels.detach().to("cpu", torch.float32).numpy()
        logits, feats = self.session.run(["logits", "features"], {"pixels": np.ascontiguousarray(x)})
        dev = self.ctx.device
        return torch.from_numpy(logits).to(dev), torch.from_numpy(feats).to(dev)
