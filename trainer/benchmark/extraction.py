"""``trainer bench-extract``: extraction throughput with the REAL architectures and random
weights, so it runs on a machine with no network and no downloaded models.

The CLIP tower comes from open_clip with ``pretrained: null`` (seeded random weights); the
teacher is BLIP-2 with the published Flan-T5 configuration, built directly on the device
(meta tensors -> ``to_empty`` -> random init), then the decoder is dropped. Cost depends on
shapes, not weight values, so the timing is the real one; the features are meaningless.

Example (plain text)::

    r = bench_extract("ViT-L-14", "blip2-flan-t5-xxl", images=2048, batch=64, device="cuda")
    r["images_per_s"]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from configs.engine import EngineSettings, ModelSettings
from configs.trainer import PAPER_INSTRUCTION, TeacherSettings
from engine import ExpressionEngine
from trainer.teacher.archs import arch_config
from trainer.teacher.blip2 import _OPENAI_MEAN, _OPENAI_STD, Blip2Teacher
from trainer.teacher.parts import TeacherParts


def random_teacher(arch: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Blip2Teacher:
    """A randomly initialised teacher of the real shape, built directly on ``device``."""
    # optional: transformers comes with the train extra
    from transformers import Blip2ForConditionalGeneration

    # optional: transformers comes with the train extra
    from trainer.teacher.tiny import _tiny_tokenizer

    cfg = arch_config(arch)
    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(cfg)
    lm = model.language_model
    lm.decoder, lm.lm_head = None, None  # never allocated: the feature needs the encoder only
    parts = TeacherParts(model).to(dtype).to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in parts.named_parameters():
            if "norm" in name.lower() and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=gen)
        for name, b in parts.named_buffers():
            if "position_ids" in name:
                b.copy_(torch.arange(b.shape[-1], device=device).expand_as(b))
            else:
                b.zero_()
    words = PAPER_INSTRUCTION.replace(".", " .").split()
    settings = TeacherSettings(model=f"random:{arch}", precision="fp32" if dtype == torch.float32 else "auto")
    return Blip2Teacher(
        parts,
        _tiny_tokenizer(words),
        settings,
        f"random:{arch}",
        device,
        int(cfg.vision_config.image_size),
        _OPENAI_MEAN,
        _OPENAI_STD,
    )


def bench_extract(
    clip_model: str = "ViT-L-14",
    teacher_arch: str = "blip2-flan-t5-xxl",
    images: int = 1024,
    batch: int = 64,
    device: str = "cuda",
    crop_px: int = 224,
    config_file: str | None = None,
    draws: int = 0,
) -> dict[str, Any]:
    """Time CLIP features and teacher features of ``images`` synthetic crops (no decoding);
    with ``draws`` > 0 the teacher computes that many stochastic (reference) targets per crop
    instead of one clean target."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    engine = ExpressionEngine(
        EngineSettings(
            model=ModelSettings(name=clip_model, pretrained=None, config_file=config_file),
            head="none",
            preprocess="expclip",
            prompts={"set": "class_name"},
            backend="torch",
            device=device,
            precision="fp16" if cuda else "fp32",
            max_batch=batch,
        )
    )
    teacher = random_teacher(teacher_arch, dev, torch.bfloat16 if cuda else torch.float32)
    teacher.settings = teacher.settings.model_copy(update={"batch_size": batch})
    crops = np.random.default_rng(0).integers(0, 256, (batch, crop_px, crop_px, 3), dtype=np.uint8)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def targets() -> None:
        if draws:
            teacher.draws(crops, seed=0, k=draws)
        else:
            teacher.features(crops)

    engine.clip_image_features(crops)  # warm-up
    targets()
    steps = max(1, images // batch)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.clip_image_features(crops)
    sync()
    t_clip = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        targets()
    sync()
    t_teacher = time.perf_counter() - t0
    n = steps * batch
    return {
        "clip_model": clip_model,
        "teacher_arch": teacher_arch,
        "teacher_precision": teacher.plan.name,
        "teacher_draws": draws or None,
        "teacher_params_m": round(sum(p.numel() for p in teacher.parts.parameters()) / 1e6, 1),
        "images": n,
        "batch": batch,
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch_threads": torch.get_num_threads(),
        "clip_images_per_s": n / t_clip,
        "teacher_images_per_s": n / t_teacher,
        "images_per_s": n / (t_clip + t_teacher),
        "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if cuda else None,
    }
