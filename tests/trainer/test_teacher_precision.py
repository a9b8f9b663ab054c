"""Per-module precision of the teacher: which stage holds which weights and computes in which
type. The reference plan is meant for CUDA; its dataflow is checked here on CPU, where torch's
autocast supports the same fp16 / bf16 types (speed and GPU kernels are not checked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from configs.core.errors import ConfigError
from configs.trainer import TeacherSettings
from trainer.teacher import PLANS, load_teacher, resolve_plan, stage_dtypes

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16


@pytest.mark.parametrize(
    ("precision", "device", "name"),
    [
        ("auto", "cuda", "reference"),
        ("auto", "cpu", "fp32"),
        ("reference", "cpu", "reference"),
        ("bf16", "cuda", "bf16"),
        ("fp32", "cuda", "fp32"),
    ],
)
def test_plan_resolution(precision: str, device: str, name: str) -> None:
    assert resolve_plan(precision, torch.device(device)).name == name


def test_plans_say_where_each_stage_runs() -> None:
    ref = PLANS["reference"]
    assert (ref.vision.weights, ref.vision.autocast) == (F32, F16)  # LAVIS vit_precision fp16
    assert (ref.qformer.weights, ref.qformer.autocast) == (F32, None)  # outside autocast
    assert (ref.language.weights, ref.language.autocast) == (BF16, BF16)  # T5 in bf16
    assert ref.load_dtype == F32  # the Q-Former needs the fp32 checkpoint values
    assert all(getattr(PLANS["bf16"], s) == PLANS["bf16"].vision for s in ("qformer", "language"))
    assert PLANS["bf16"].load_dtype == BF16 and PLANS["fp32"].vision.autocast is None
    with pytest.raises(ConfigError, match="allowed: auto, reference"):
        resolve_plan("int8", torch.device("cpu"))


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        ("reference", {"vision": {F32}, "qformer": {F32}, "language": {BF16}}),
        ("bf16", {"vision": {BF16}, "qformer": {BF16}, "language": {BF16}}),
        ("fp32", {"vision": {F32}, "qformer": {F32}, "language": {F32}}),
    ],
)
def test_each_module_gets_its_plans_weights(tiny_teacher_dir: Path, precision: str, expected: dict) -> None:
    teacher = load_teacher(TeacherSettings(model=str(tiny_teacher_dir), precision=precision), "cpu")
    assert stage_dtypes(teacher.parts) == expected
    assert teacher.parts.query_tokens.dtype == next(iter(expected["qformer"]))
    assert teacher.describe()["teacher_precision"] == precision


def test_reference_plan_dataflow(tiny_teacher_dir: Path) -> None:
    """Under the reference plan: ViT linears compute in fp16 while its output (residual stream
    after the final LayerNorm) is fp32; Q-Former and projection in fp32; the fp32 visual tokens
    make the T5 input fp32; T5's linears compute in bf16; the hooked final_layer_norm output
    is bf16, so the mean over tokens is taken in bf16, then cast to float."""
    teacher = load_teacher(TeacherSettings(model=str(tiny_teacher_dir), precision="reference"), "cpu")
    p = teacher.parts
    seen: dict[str, tuple[torch.dtype, torch.dtype]] = {}

    def record(name: str):
        def hook(module, inputs, output) -> None:
            out = output[0] if isinstance(output, tuple) else getattr(output, "last_hidden_state", output)
            seen[name] = (inputs[0].dtype if inputs else None, out.dtype)

        return hook

    watched = {
        "vit_fc1": p.vision_model.encoder.layers[0].mlp.fc1,
        "vit": p.vision_model,
        "qformer": p.qformer,
        "t5_proj": p.language_projection,
        "t5_block0": p.encoder.block[0],
        "t5_q": p.encoder.block[0].layer[0].SelfAttention.q,
        "final_ln": p.encoder.final_layer_norm,
    }
    handles = [m.register_forward_hook(record(n)) for n, m in watched.items()]
    rng = np.random.default_rng(0)
    feats = teacher.features([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)])
    for h in handles:
        h.remove()
    assert seen["vit_fc1"][1] == F16 and seen["vit"][1] == F32
    assert seen["qformer"][1] == F32 and seen["t5_proj"] == (F32, F32)
    assert seen["t5_block0"][0] == F32 and seen["t5_q"] == (BF16, BF16)
    assert seen["final_ln"][1] == BF16
    assert feats.dtype == np.float32 and feats.shape == (3, 32)

    fp32 = load_teacher(TeacherSettings(model=str(tiny_teacher_dir), precision="fp32"), "cpu")
    again = np.random.default_rng(0)
    exact = fp32.features([again.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)])
    cos = (feats * exact).sum(-1)
    assert (cos > 0.999).all() and not np.array_equal(feats, exact)  # rounding, not another feature
