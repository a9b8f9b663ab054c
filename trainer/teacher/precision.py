"""Which precision each part of the teacher runs in.

The authors' code ran BLIP-2 through LAVIS on CUDA with a different precision per module
(docs/training.md, "Precision"):

* the ViT under fp16 autocast (LAVIS ``vit_precision: fp16`` stores its linear layers in fp16;
  its LayerNorms, embeddings and residual stream stay fp32). Here: weights kept fp32 under
  fp16 autocast, which rounds every linear layer's weights and inputs to fp16 exactly as the
  stored fp16 weights did, and keeps the embeddings and residual stream in fp32;
* the Q-Former, its query tokens and ``t5_proj`` in fp32, outside any autocast;
* Flan-T5 (token embeddings and encoder) with bf16 weights under bf16 autocast; the fp32
  visual tokens are concatenated with the bf16 instruction embeddings (promoted to fp32).

The uniform plans run the whole teacher in one type (``bf16`` is the all-bf16 switch).
``apply_plan`` casts the modules and ``stage_dtypes`` reports what each part holds, so which
module gets which type can be checked on any device.

Example:
    >>> plan = resolve_plan("auto", torch.device("cuda"))
    >>> plan.name, plan.vision.autocast, plan.qformer.autocast, plan.language.weights
    ('reference', torch.float16, None, torch.bfloat16)
    >>> resolve_plan("auto", torch.device("cpu")).name
    'fp32'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from configs.core.errors import ConfigError


@dataclass(frozen=True)
class StagePrecision:
    """The weight type of one stage and the autocast type it runs under (None: no autocast)."""

    weights: torch.dtype
    autocast: torch.dtype | None


@dataclass(frozen=True)
class PrecisionPlan:
    """Per-stage precision of the teacher: vision tower, Q-Former (+ queries and projection),
    language model (token embeddings + T5 encoder)."""

    name: str
    vision: StagePrecision
    qformer: StagePrecision
    language: StagePrecision

    @property
    def load_dtype(self) -> torch.dtype:
        """The type to load checkpoint weights in: the widest any stage keeps."""
        kept = {self.vision.weights, self.qformer.weights, self.language.weights}
        return kept.pop() if len(kept) == 1 else torch.float32


_F32, _F16, _BF16 = torch.float32, torch.float16, torch.bfloat16


def _uniform(name: str, dtype: torch.dtype) -> PrecisionPlan:
    stage = StagePrecision(dtype, None if dtype == _F32 else dtype)
    return PrecisionPlan(name, stage, stage, stage)


PLANS: dict[str, PrecisionPlan] = {
    "reference": PrecisionPlan(
        "reference",
        vision=StagePrecision(_F32, _F16),
        qformer=StagePrecision(_F32, None),
        language=StagePrecision(_BF16, _BF16),
    ),
    "bf16": _uniform("bf16", _BF16),
    "fp16": _uniform("fp16", _F16),
    "fp32": _uniform("fp32", _F32),
}
"""The precision plans by ``trainer.teacher.precision`` value (``auto`` resolves to one)."""


def resolve_plan(precision: str, device: torch.device) -> PrecisionPlan:
    """``auto`` = the reference's plan on CUDA and fp32 elsewhere; other names as given."""
    name = ("reference" if device.type == "cuda" else "fp32") if precision == "auto" else precision
    if name not in PLANS:
        raise ConfigError(f"trainer.teacher.precision: got {precision!r}; allowed: auto, {', '.join(PLANS)}")
    return PLANS[name]


def stage_modules(parts: nn.Module) -> dict[str, list[nn.Module | nn.Parameter]]:
    """The modules (and the query-token parameter) of each stage of ``TeacherParts``."""
    return {
        "vision": [parts.vision_model],
        "qformer": [parts.qformer, parts.query_tokens, parts.language_projection],
        "language": [parts.embed_tokens, parts.encoder],
    }


def apply_plan(parts: nn.Module, plan: PrecisionPlan) -> nn.Module:
    """Cast each stage's weights to the plan's type (in place); returns ``parts``."""
    for stage, members in stage_modules(parts).items():
        dtype = getattr(plan, stage).weights
        for m in members:
            if isinstance(m, nn.Parameter):
                m.data = m.data.to(dtype)
            else:
                m.to(dtype)
    return parts


def stage_dtypes(parts: nn.Module) -> dict[str, set[torch.dtype]]:
    """The floating-point types each stage's parameters hold (one per stage once a plan is applied)."""
    out: dict[str, set[torch.dtype]] = {}
    for stage, members in stage_modules(parts).items():
        params: list[nn.Parameter] = []
        for m in members:
            params.extend([m] if isinstance(m, nn.Parameter) else m.parameters())
        out[stage] = {p.dtype for p in params if p.is_floating_point()}
    return out


@contextlib.contextmanager
def autocast(stage: StagePrecision, device: torch.device) -> Iterator[None]:
    """Run a stage under its autocast type, or with autocast explicitly off (the reference ran
    the Q-Former outside autocast even though the calls around it enabled it)."""
    if stage.autocast is None:
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        with torch.autocast(device.type, dtype=stage.autocast):
            yield
