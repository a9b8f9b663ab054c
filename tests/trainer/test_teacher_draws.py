"""The reference's stochastic teacher targets: dropout exactly where the authors' train-mode
forward had it, reproducible by seed, and different from draw to draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs.trainer import PAPER_INSTRUCTION, TeacherSettings
from trainer.teacher import Blip2Teacher, derive_seed, load_teacher


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 5 * i, 52, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path) -> Blip2Teacher:
    return load_teacher(TeacherSettings(model=str(tiny_teacher_dir), precision="fp32", batch_size=4), "cpu")


def _restated_reference_draw(model, tok, pixels: torch.Tensor, seed: int) -> torch.Tensor:
    """The authors' train-mode forward (train.py + BLIP2_T5.generate), step by step on the full
    model: ``model.train()`` with LAVIS's frozen ViT kept in eval, ViT -> float -> Q-Former ->
    t5_proj -> [queries ; instruction] -> T5 encoder, captured by a hook on final_layer_norm
    (before the encoder's last dropout) -> mean over tokens -> float -> L2-normalise."""
    model.train()
    model.vision_model.eval()
    lm = model.language_model
    n = pixels.shape[0]
    captured: list[torch.Tensor] = []
    hook = lm.get_encoder().final_layer_norm.register_forward_hook(lambda m, i, o: captured.append(o))
    torch.manual_seed(seed)
    with torch.no_grad():
        image = model.vision_model(pixel_values=pixels).last_hidden_state.float()
        query = model.qformer(
            query_embeds=model.query_tokens.expand(n, -1, -1),
            encoder_hidden_states=image,
            encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long),
        ).last_hidden_state
        t5_in = model.language_projection(query)
        ins = tok([PAPER_INSTRUCTION] * n, padding="longest", return_tensors="pt")
        embeds = torch.cat([t5_in, lm.get_input_embeddings()(ins.input_ids)], dim=1)
        mask = torch.cat([torch.ones(n, t5_in.shape[1], dtype=torch.long), ins.attention_mask], dim=1)
        lm.get_encoder()(inputs_embeds=embeds, attention_mask=mask)
    hook.remove()
    model.eval()
    assert len(captured) == 1
    return F.normalize(captured[0].mean(dim=1).float(), dim=-1)


def test_draws_equal_a_restatement_of_the_reference_train_mode_forward(
    teacher: Blip2Teacher, tiny_teacher_dir: Path
) -> None:
    from transformers import AutoTokenizer, Blip2ForConditionalGeneration

    model = Blip2ForConditionalGeneration.from_pretrained(tiny_teacher_dir)
    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    pixels = teacher.pixels(_crops(4))
    got = teacher.draws_from_pixels(pixels, seeds=[11, 12])
    assert got.shape == (2, 4, 32) and got.dtype == torch.float32

    for k, seed in enumerate((11, 12)):
        expected = _restated_reference_draw(model, tok, pixels, seed)
        torch.testing.assert_close(got[k], expected, rtol=0, atol=1e-6)

    # Dropout is really on: the two draws differ, and neither is the eval-mode (clean) target.
    clean = teacher.features_from_pixels(pixels)
    between = (got[0] * got[1]).sum(-1)
    to_clean = (got * clean).sum(-1)
    assert between.max() < 0.99 and to_clean.max() < 0.99
    assert to_clean.min() > 0.3  # a perturbed target, not an unrelated one
    assert not teacher.parts.training  # back in eval afterwards


def test_a_draw_is_reproducible_and_leaves_the_global_rng_alone(teacher: Blip2Teacher) -> None:
    crops = _crops(6)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = teacher.draws(crops, seed=5, k=3)
    after = torch.rand(3)
    b = teacher.draws(crops, seed=5, k=3)
    c = teacher.draws(crops, seed=6, k=3)
    assert torch.equal(before, after)  # the draws forked the RNG instead of consuming it
    assert a.shape == (3, 6, 32) and np.array_equal(a, b) and not np.allclose(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-6)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[1], a[2])


def test_sub_batches_get_their_own_seeds(teacher: Blip2Teacher) -> None:
    crops = _crops(6)  # teacher batch size 4: sub-batches of 4 and 2
    got = teacher.draws(crops, seed=9, k=2)
    for j, (lo, hi) in enumerate([(0, 4), (4, 6)]):
        seeds = [derive_seed(9, j, i) for i in range(2)]
        want = teacher.draws_from_pixels(teacher.pixels(crops[lo:hi]), seeds).numpy()
        np.testing.assert_array_equal(got[:, lo:hi], want)


def test_clean_targets_keep_todays_definition(teacher: Blip2Teacher) -> None:
    """``features`` is the eval-mode target (no dropout): the same for every call, and the
    mean of many stochastic draws lies closer to it than any single draw does."""
    crops = _crops(4)
    clean = teacher.features(crops)
    np.testing.assert_array_equal(clean, teacher.features(crops))
    draws = teacher.draws(crops, seed=1, k=16)
    mean = draws.mean(axis=0)
    mean /= np.linalg.norm(mean, axis=-1, keepdims=True)
    single = (draws * clean[None]).sum(-1)
    assert ((mean * clean).sum(-1) > single.max(axis=0)).all()
