"""Fitting on stored pairs: the reference objective learns; the head round-trips through
the engine's loaders in both formats."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs import Settings
from configs.trainer import FitSettings
from engine import ExpressionEngine
from engine.head import ProjectionHead, load_head
from trainer.fit import fit_head, fit_store, infonce
from trainer.store import FeatureStore

D, T, N = 64, 4096, 512  # the tiny CLIP's D; the real teacher width


def synthetic(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs where the teacher feature is a noisy linear image of the CLIP feature."""
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(N, D, generator=g)
    w = torch.randn(T, D, generator=g)
    teacher = F.normalize(clip @ w.T + 0.5 * torch.randn(N, T, generator=g), dim=-1)
    return clip, teacher


def test_infonce_matches_the_reference_formula() -> None:
    g = torch.Generator().manual_seed(3)
    img = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    loss, logits = infonce(img, txt, 100.0)
    per_image = 100.0 * img @ txt.T
    per_text = 100.0 * txt @ img.T
    ce = torch.nn.CrossEntropyLoss()
    expected = 0.5 * ce(per_image, torch.arange(6)) + 0.5 * ce(per_text, torch.arange(6))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, per_image)


def test_reference_recipe_lowers_loss_and_raises_retrieval() -> None:
    clip, teacher = synthetic()
    r = fit_head(clip, teacher, FitSettings(batch_size=128, device="cpu"), logit_scale=100.0)
    losses = [h.loss for h in r.history]
    assert len(losses) == 5 and all(b < a for a, b in itertools.pairwise(losses))
    assert r.history[-1].accuracy > r.history[0].accuracy
    assert r.history[0].batches == N // 128

    fast = fit_head(clip, teacher, FitSettings(batch_size=128, lr=1e-2, device="cpu"), 100.0)
    assert fast.history[-1].loss < 0.5 * fast.history[0].loss
    assert fast.history[-1].accuracy > 50.0 > fast.history[0].accuracy


def test_fit_is_deterministic_with_a_seed() -> None:
    clip, teacher = synthetic()
    s = FitSettings(batch_size=128, epochs=2, device="cpu")
    a = fit_head(clip, teacher, s, 100.0).head.mlp.weight
    b = fit_head(clip, teacher, s, 100.0).head.mlp.weight
    c = fit_head(clip, teacher, s.model_copy(update={"seed": 2}), 100.0).head.mlp.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def _store_from(root: Path, clip: torch.Tensor, teacher: torch.Tensor, cfg: Settings) -> FeatureStore:
    identity = {
        "model": "ExpStream-Tiny",
        "preprocess": "expclip",
        "teacher": "synthetic",
        "teacher_dim": T,
        "logit_scale": 100.0,
    }
    store = FeatureStore.create(root, identity)
    hashes = [f"h{i}" for i in range(N)]
    half = N // 2
    store.write_shard(0, 0, clip[:half].numpy(), teacher[:half].numpy(), hashes[:half], hashes[:half])
    store.write_shard(0, 1, clip[half:].numpy(), teacher[half:].numpy(), hashes[half:], hashes[half:])
    return store


def test_saved_head_loads_in_engine_and_gives_the_trainers_features(tmp_path: Path, cfg: Settings) -> None:
    clip, teacher = synthetic()
    _store_from(tmp_path / "store", clip, teacher, cfg)
    settings = FitSettings(batch_size=128, epochs=2, device="cpu")
    r = fit_store(tmp_path / "store", settings, tmp_path / "head.safetensors", tmp_path / "head.pth")

    engine = ExpressionEngine(cfg.engine.replace(head=str(tmp_path / "head.safetensors")))
    assert engine.head_info.format == "expstream"
    assert engine.head_info.metadata["backbone"] == "ExpStream-Tiny"
    assert engine.head_info.metadata["fit"]["lr"] == 1e-3
    assert len(engine.head_info.metadata["history"]) == 2
    torch.testing.assert_close(engine.head.mlp.weight, r.head.mlp.weight.cpu())

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (50, 40, 3), dtype=np.uint8) for _ in range(3)]
    out = engine.score(crops)
    with torch.no_grad():
        x = torch.from_numpy(engine.clip_image_features(crops))
        mine = F.normalize(r.head(x), dim=-1).numpy()
    np.testing.assert_allclose(out.features, mine, atol=1e-5)

    head, info = load_head(str(tmp_path / "head.pth"), "ExpStream-Tiny", D, tmp_path)
    assert info.format == "expclip"
    sd = torch.load(tmp_path / "head.pth", weights_only=True)
    assert list(sd) == ["mlp.weight"] and sd["mlp.weight"].shape == (T, D)
    assert head is not None and torch.equal(head.mlp.weight, r.head.mlp.weight.cpu())


def test_fit_rejects_mismatched_pairs() -> None:
    with pytest.raises(ValueError, match=r"clip \[N, D\] and teacher \[N, T\]"):
        fit_head(torch.zeros(4, 8), torch.zeros(5, 16), FitSettings(device="cpu"), 100.0)


@pytest.mark.parametrize(("draws", "epochs", "expected"), [(3, 3, [0, 1, 2]), (2, 5, [0, 1, 0, 1, 0])])
def test_epoch_e_fits_stored_draw_e(draws: int, epochs: int, expected: list[int]) -> None:
    """Seen through the loss: with a step too small to move the head, each epoch's mean loss is
    the initial head's InfoNCE against exactly one stored draw, the one for that epoch."""
    g = torch.Generator().manual_seed(4)
    n, d, t = 64, 16, 32
    clip = torch.randn(n, d, generator=g)
    targets = F.normalize(torch.randn(n, draws, t, generator=g), dim=-1)
    s = FitSettings(epochs=epochs, batch_size=n, lr=1e-9, momentum=0.0, weight_decay=0.0, device="cpu")
    r = fit_head(clip, targets, s, logit_scale=10.0)

    torch.manual_seed(s.seed)  # the fit's own initialisation
    image = F.normalize(ProjectionHead(d, t)(clip), dim=-1).detach()
    per_draw = [float(infonce(image, targets[:, k], 10.0)[0]) for k in range(draws)]
    assert min(abs(a - b) for a, b in itertools.combinations(per_draw, 2)) > 1e-3  # the draws tell apart
    assert [h.draw for h in r.history] == expected
    np.testing.assert_allclose([h.loss for h in r.history], [per_draw[k] for k in expected], atol=1e-5)
    assert r.head.out_dim == t


def test_clean_targets_have_no_draw() -> None:
    clip, teacher = synthetic()
    r = fit_head(clip[:64], teacher[:64], FitSettings(batch_size=32, epochs=1, device="cpu"), 100.0)
    assert r.history[0].draw is None
