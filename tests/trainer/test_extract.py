"""Extraction: resumable by shard, duplicates and unreadable files handled, videos harvested."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from configs import Settings, load_settings
from engine import ExpressionEngine
from tests.media import make_corrupt_file, make_face_clip
from tests.trainer.conftest import write_images
from trainer.distributed import DistContext
from trainer.extract import extract_features, extraction_engine
from trainer.harvest import harvest_videos
from trainer.images import list_images, read_rgb, unique_items
from trainer.store import FeatureStore, StoreError
from trainer.teacher import Teacher, derive_seed, load_teacher


class CountingTeacher(Teacher):
    """Wraps the real teacher; counts images and can fail on a chosen call (an interruption)."""

    def __init__(self, inner: Teacher, fail_on_call: int | None = None) -> None:
        self.inner, self.fail_on_call = inner, fail_on_call
        self.name, self.feature_dim = inner.name, inner.feature_dim
        self.calls = self.images = 0

    def _count(self, crops: Sequence[np.ndarray]) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        self.images += len(crops)

    def features(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        self._count(crops)
        return self.inner.features(crops)

    def draws(self, crops: Sequence[np.ndarray], seed: int, k: int) -> np.ndarray:
        self._count(crops)
        return self.inner.draws(crops, seed, k)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


@pytest.fixture(scope="module")
def small_cfg(config_path: Path, overrides: list[str]) -> Settings:
    return load_settings(config_path, [*overrides, "trainer.extract.shard_size=4", "trainer.extract.batch_size=4"])


@pytest.fixture(scope="module")
def engine(small_cfg: Settings) -> ExpressionEngine:
    return extraction_engine(small_cfg)


@pytest.fixture(scope="module")
def teacher(small_cfg: Settings) -> Teacher:
    return load_teacher(small_cfg.trainer.teacher, "cpu", small_cfg.engine.cache_dir)


def _by_hash(store: FeatureStore) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    clip, teach = store.load_pairs()
    hashes = [h for s in store.shards() for h in s.hashes]
    return {h: (clip[i].numpy(), teach[i].numpy()) for i, h in enumerate(hashes)}


def test_interrupted_extraction_resumes_without_recomputation(
    tmp_path: Path, small_cfg: Settings, engine: ExpressionEngine, teacher: Teacher
) -> None:
    write_images(tmp_path / "faces", 20)
    out = tmp_path / "feats"
    boom = CountingTeacher(teacher, fail_on_call=4)  # dies while computing the 4th shard
    with pytest.raises(KeyboardInterrupt):
        extract_features(small_cfg, [tmp_path / "faces"], out, engine=engine, teacher=boom)
    store = FeatureStore(out)
    assert len(store.shard_paths()) == 3 and len(store) == 12

    again = CountingTeacher(teacher)
    stats = extract_features(small_cfg, [tmp_path / "faces"], out, engine=engine, teacher=again)
    assert (stats.found, stats.done_before, stats.computed, stats.shards_written) == (20, 12, 8, 2)
    assert again.images == 8  # only the unfinished inputs went through the teacher
    assert len(FeatureStore(out)) == 20 and len(FeatureStore(out).done_hashes()) == 20

    idle = CountingTeacher(teacher)
    stats = extract_features(small_cfg, [tmp_path / "faces"], out, engine=engine, teacher=idle)
    assert (stats.done_before, stats.computed, idle.calls) == (20, 0, 0)

    clean = tmp_path / "clean"
    extract_features(small_cfg, [tmp_path / "faces"], clean, engine=engine, teacher=teacher)
    resumed, fresh = _by_hash(FeatureStore(out)), _by_hash(FeatureStore(clean))
    assert resumed.keys() == fresh.keys()
    for h in fresh:
        np.testing.assert_allclose(resumed[h][0], fresh[h][0], atol=1e-6)
        np.testing.assert_allclose(resumed[h][1], fresh[h][1], atol=1e-6)


def test_duplicates_skipped_and_unreadable_listed(
    tmp_path: Path, small_cfg: Settings, engine: ExpressionEngine, teacher: Teacher
) -> None:
    paths = write_images(tmp_path / "faces", 6)
    (tmp_path / "faces" / "a" / "copy.png").write_bytes(paths[0].read_bytes())
    make_corrupt_file(tmp_path / "faces" / "b" / "broken.jpg")
    (tmp_path / "faces" / "b" / "empty.png").write_bytes(b"")
    (tmp_path / "faces" / "b" / "notes.txt").write_text("not an image, not listed")
    stats = extract_features(small_cfg, [tmp_path / "faces"], tmp_path / "feats", engine=engine, teacher=teacher)
    assert (stats.found, stats.duplicates, stats.computed) == (9, 1, 6)
    bad = sorted(Path(p).name for p, _ in stats.unreadable)
    assert bad == ["broken.jpg", "empty.png"]
    listed = sorted(Path(d["path"]).name for d in FeatureStore(tmp_path / "feats").skipped())
    assert listed == bad


def test_store_refuses_features_from_other_models(tmp_path: Path) -> None:
    ident = {"model": "ExpStream-Tiny", "teacher": "tiny", "instruction": "a"}
    FeatureStore.create(tmp_path, ident)
    with pytest.raises(StoreError, match="instruction: stored 'a' vs now 'b'"):
        FeatureStore.create(tmp_path, {**ident, "instruction": "b"})
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path / "nothing")


def test_faces_harvested_from_video(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    clip = make_face_clip(tmp_path / "clips" / "group.mp4", seconds=1.0, fps=10)
    make_corrupt_file(tmp_path / "clips" / "broken.mp4")
    settings = load_settings(
        "train-offline",
        ["detector.min_face_px=20", "trainer.extract.harvest.every_s=0.5", "trainer.extract.harvest.crop_size=96"],
    )
    stats = harvest_videos([tmp_path / "clips"], tmp_path / "harvest", settings)
    assert stats.videos == 1 and stats.frames == 2
    assert stats.faces >= 2
    assert [Path(p).name for p, _ in stats.failed] == ["broken.mp4"]
    pngs = list((tmp_path / "harvest").rglob("*.png"))
    assert len(pngs) == stats.faces
    again = harvest_videos([clip], tmp_path / "harvest", settings)
    assert again.skipped_done == 1 and again.faces == 0


class OneRankOfTwo(DistContext):
    """Rank 1 of a 2-process torchrun group, without the process group (barriers are no-ops)."""

    def barrier(self) -> None:
        return None


def test_a_rank_takes_every_world_th_input_and_writes_its_own_shards(
    tmp_path: Path, small_cfg: Settings, engine: ExpressionEngine, teacher: Teacher
) -> None:
    write_images(tmp_path / "faces", 10, seed=3)
    ctx = OneRankOfTwo(rank=1, world=2, device=torch.device("cpu"))
    stats = extract_features(
        small_cfg, [tmp_path / "faces"], tmp_path / "feats", engine=engine, teacher=teacher, ctx=ctx
    )
    store = FeatureStore(tmp_path / "feats")
    assert stats.computed == 5 and all(p.name.startswith("shard-r1-") for p in store.shard_paths())
    items, _, _ = unique_items(list_images([tmp_path / "faces"]))
    assert store.done_hashes() == {it.sha256 for it in items[1::2]}


def test_reference_targets_store_k_seeded_draws_and_clean_targets_one(
    tmp_path: Path, config_path: Path, overrides: list[str], engine: ExpressionEngine, teacher: Teacher
) -> None:
    write_images(tmp_path / "faces", 6)
    base = [*overrides, "trainer.extract.shard_size=4", "trainer.extract.batch_size=4", "trainer.fit.epochs=3"]
    items, _, _ = unique_items(list_images([tmp_path / "faces"]))
    crops = [read_rgb(it.path, 224) for it in items]  # the reference's PIL resize to CLIP's 224

    ref_cfg = load_settings(config_path, base)
    stats = extract_features(ref_cfg, [tmp_path / "faces"], tmp_path / "ref", engine=engine, teacher=teacher)
    ref = FeatureStore(tmp_path / "ref")
    clip, draws = ref.load_pairs()
    assert draws.shape == (6, 3, 32)  # K = trainer.fit.epochs draws per face
    assert (stats.targets, stats.draws) == ("reference", 3) and stats.teacher_seconds > 0
    assert ref.identity["teacher_targets"] == "reference" and ref.identity["teacher_draws"] == 3
    assert ref.identity["resize"] == "pil" and stats.store_bytes == ref.nbytes() > 0
    for lo, hi in [(0, 4), (4, 6)]:  # each batch seeded by draw_seed and its first content hash
        want = teacher.draws(crops[lo:hi], derive_seed(1, items[lo].sha256), 3).transpose(1, 0, 2)
        np.testing.assert_allclose(draws[lo:hi].numpy(), want, atol=1e-6)
    assert not torch.allclose(draws[:, 0], draws[:, 1], atol=1e-3)
    np.testing.assert_allclose(clip.numpy(), engine.clip_image_features(crops), atol=1e-5)

    clean_cfg = load_settings(config_path, [*base, "trainer.teacher.targets=clean"])
    stats = extract_features(clean_cfg, [tmp_path / "faces"], tmp_path / "clean", engine=engine, teacher=teacher)
    clean = FeatureStore(tmp_path / "clean")
    _, targets = clean.load_pairs()
    assert targets.shape == (6, 32) and clean.identity["teacher_draws"] == 1
    np.testing.assert_allclose(targets.numpy(), teacher.features(crops), atol=1e-6)  # today's target
    assert stats.store_bytes < ref.nbytes()  # 64 + 32 floats per face vs 64 + 3 x 32
    with pytest.raises(StoreError, match="teacher_targets: stored 'clean' vs now 'reference'"):
        extract_features(ref_cfg, [tmp_path / "faces"], tmp_path / "clean", engine=engine, teacher=teacher)


def test_tensor_resize_is_the_engines_own_path(
    tmp_path: Path, config_path: Path, overrides: list[str], engine: ExpressionEngine, teacher: Teacher
) -> None:
    write_images(tmp_path / "faces", 3, seed=4)
    cfg = load_settings(config_path, [*overrides, "trainer.extract.resize=tensor", "trainer.teacher.targets=clean"])
    extract_features(cfg, [tmp_path / "faces"], tmp_path / "feats", engine=engine, teacher=teacher)
    store = FeatureStore(tmp_path / "feats")
    items, _, _ = unique_items(list_images([tmp_path / "faces"]))
    clip, _ = store.load_pairs()
    assert store.identity["resize"] == "tensor"
    np.testing.assert_allclose(clip.numpy(), engine.clip_image_features([read_rgb(i.path) for i in items]), atol=1e-5)
