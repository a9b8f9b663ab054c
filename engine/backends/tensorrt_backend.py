"""TensorRT through torch-tensorrt (``pip install 'expstream[trt]'``).

Compiles the ScoringModel with the dynamo frontend, fp16, a dynamic batch range
[1, max_batch], and caches the serialised engine under
``cache_dir/trt/<key>.ep`` where the key hashes the engine fingerprint, GPU name, compute
capability, TensorRT / torch-tensorrt versions and the batch range. Build ahead of time with
``streamer build-engine``.

UNVERIFIED: written against torch-tensorrt's documented API (``torch_tensorrt.compile``,
``torch_tensorrt.Input``, ``torch_tensorrt.save``/``load``); TensorRT could not be installed
on any machine this was developed on. Every failure raises BackendError so ``auto``
falls back to another backend.
"""

from __future__ import annotations

import hashlib
import logging

import torch

from configs.core.errors import BackendError
from engine.backends.base import Backend
from engine.scoring import ScoringModel

log = logging.getLogger(__name__)


def engine_key(fingerprint: str, device: torch.device, max_batch: int, dtype: torch.dtype) -> str:
    """Cache key of a serialised TensorRT engine."""
    # optional: TensorRT exists only on NVIDIA machines
    import tensorrt
    import torch_tensorrt

    props = torch.cuda.get_device_properties(device)
    parts = [
        fingerprint,
        props.name,
        f"sm{props.major}{props.minor}",
        f"trt{tensorrt.__version__}",
        f"tt{torch_tensorrt.__version__}",
        f"b1-{max_batch}",
        str(dtype),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


class TensorRTBackend(Backend):
    name = "tensorrt"

    @classmethod
    def available(cls, device: torch.device) -> str | None:
        if device.type != "cuda":
            return "TensorRT needs a CUDA device"
        try:
            import tensorrt  # noqa: F401
            import torch_tensorrt  # noqa: F401
        except ImportError as e:
            return f"torch-tensorrt is not installed ({e}); pip install 'expstream[trt]'"
        return None

    def build(self, model: ScoringModel) -> None:
        reason = self.available(self.ctx.device)
        if reason:
            raise BackendError(reason)
        # optional: TensorRT exists only on NVIDIA machines
        import torch_tensorrt

        s, b = self.ctx.image_size, self.ctx.max_batch
        key = engine_key(self.ctx.fingerprint, self.ctx.device, b, self.ctx.dtype)
        path = self.ctx.cache_dir / "trt" / f"{key}.ep"
        try:
            if path.is_file():
                log.info("loading TensorRT engine %s", path)
                self.module = torch_tensorrt.load(str(path)).module()
            else:
                log.info("building TensorRT engine (fp16, batch 1..%d); this takes minutes", b)
                example = torch.zeros((min(8, b), 3, s, s), device=self.ctx.device, dtype=self.ctx.dtype)
                inputs = [
                    torch_tensorrt.Input(
                        min_shape=(1, 3, s, s),
                        opt_shape=(min(64, b), 3, s, s),
                        max_shape=(b, 3, s, s),
                        dtype=self.ctx.dtype,
                    )
                ]
                self.module = torch_tensorrt.compile(
                    model.eval(),
                    ir="dynamo",
                    inputs=inputs,
                    enabled_precisions={torch.float16, torch.float32},
                    truncate_double=True,
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                torch_tensorrt.save(self.module, str(path), output_format="exported_program", inputs=[example])
        except BackendError:
            raise
        except Exception as e:  # TensorRT raises many types; auto must fall back
            raise BackendError(f"TensorRT build/load failed: {type(e).__name__}: {e}") from e
        self.path = path

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, feats = self.module(pixels.to(self.ctx.dtype))
        return logits.float(), feats.float()
