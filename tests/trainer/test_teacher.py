"""The teacher feature is exactly the reference's definition (docs/design.md); loading errors say where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs.trainer import PAPER_INSTRUCTION, TeacherSettings
from trainer.teacher import TEACHERS, TeacherLoadError, build_tiny_teacher, load_teacher


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 7 * i, 52, 3), dtype=np.uint8) for i in range(n)]


def test_feature_equals_direct_restatement_of_reference(tiny_teacher_dir: Path) -> None:
    from transformers import AutoTokenizer, Blip2ForConditionalGeneration

    teacher = load_teacher(TeacherSettings(model=str(tiny_teacher_dir), precision="fp32"), "cpu")
    crops = _crops(5)
    got = teacher.features(crops)

    # docs/design.md, re-stated on the full model: image -> ViT -> Q-Former (32 queries) ->
    # t5_proj -> [queries ; instruction embeddings] -> T5 encoder -> final_layer_norm
    # output -> mean over all tokens -> float32 -> L2-normalise.
    model = Blip2ForConditionalGeneration.from_pretrained(tiny_teacher_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    pixels = teacher.pixels(crops)
    n = pixels.shape[0]
    captured: list[torch.Tensor] = []
    lm = model.language_model
    hook = lm.get_encoder().final_layer_norm.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        image = model.vision_model(pixel_values=pixels).last_hidden_state
        queries = model.qformer(
            query_embeds=model.query_tokens.expand(n, -1, -1),
            encoder_hidden_states=image,
            encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long),
        ).last_hidden_state
        assert queries.shape[1] == 32
        t5_in = model.language_projection(queries)
        ins = tok([PAPER_INSTRUCTION], padding="longest", return_tensors="pt")
        text = lm.get_input_embeddings()(ins.input_ids).expand(n, -1, -1)
        mask = torch.cat([torch.ones(n, 32, dtype=torch.long), ins.attention_mask.expand(n, -1)], 1)
        lm.get_encoder()(inputs_embeds=torch.cat([t5_in, text], 1), attention_mask=mask)
    hook.remove()
    assert len(captured) == 1 and captured[0].shape[1] == 32 + ins.input_ids.shape[1]
    expected = F.normalize(captured[0].mean(dim=1).float(), dim=-1).numpy()

    assert got.dtype == np.float32 and got.shape == (5, 32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert ins.input_ids[0, -1].item() == tok.eos_token_id  # T5 appends </s>
    assert (ins.input_ids != tok.unk_token_id).all()  # the tiny vocab knows every word


def test_instruction_is_configurable(tiny_teacher_dir: Path) -> None:
    crops = _crops(2)
    a = load_teacher(TeacherSettings(model=str(tiny_teacher_dir)), "cpu").features(crops)
    b = load_teacher(TeacherSettings(model=str(tiny_teacher_dir), instruction="Describe the face."), "cpu")
    assert b.ids.shape[1] != len(PAPER_INSTRUCTION.split())
    assert not np.allclose(a, b.features(crops), atol=1e-4)


def test_instructblip_teacher_reads_the_instruction(tmp_path: Path) -> None:
    path = build_tiny_teacher(tmp_path / "tiny-instructblip", seed=1, kind="instructblip")
    teacher = load_teacher(TeacherSettings(model=str(path)), "cpu")
    assert teacher.parts.instruct and teacher.q_ids is not None
    feats = teacher.features(_crops(3))
    assert feats.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-6)


def test_registry_names_feature_sizes() -> None:
    assert TEACHERS["blip2-flan-t5-xxl"].hf_id == "Salesforce/blip2-flan-t5-xxl"
    assert TEACHERS["blip2-flan-t5-xxl"].feature_dim == 4096
    assert TEACHERS["blip2-flan-t5-xl"].feature_dim == 2048


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("blip2-flan-t5-xxl", ["Salesforce/blip2-flan-t5-xxl", "HF_HUB_OFFLINE=1", "hf"]),  # not cached, offline
        ("/no/such/teacher-dir", ["/no/such/teacher-dir", "no such directory"]),
        ("not-a-teacher", ["not-a-teacher", "not a known teacher", "./dir"]),
    ],
)
def test_unloadable_teacher_names_model_and_places(
    model: str, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    settings = TeacherSettings(model=model, cache_dir=str(tmp_path / "hf"))
    with pytest.raises(TeacherLoadError) as err:
        load_teacher(settings, "cpu", tmp_path / "cache")
    msg = str(err.value)
    for piece in expected:
        assert piece in msg, (piece, msg)
    if model == "blip2-flan-t5-xxl":
        assert str(tmp_path / "hf") in msg


def test_random_teacher_of_real_shape_is_built_without_weights() -> None:
    import torch
    from transformers import Blip2ForConditionalGeneration

    from trainer.benchmark.extraction import random_teacher
    from trainer.teacher.archs import arch_config

    with torch.device("meta"):  # the published BLIP-2 Flan-T5-XXL: 12.1 B parameters
        total = sum(p.numel() for p in Blip2ForConditionalGeneration(arch_config("blip2-flan-t5-xxl")).parameters())
    assert 12.0e9 < total < 12.2e9
    tiny = random_teacher("tiny", torch.device("cpu"), torch.float32)
    feats = tiny.features(_crops(3))
    assert feats.shape == (3, 32) and np.isfinite(feats).all()
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
