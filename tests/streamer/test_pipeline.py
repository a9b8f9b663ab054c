"""The pipeline in-process: one engine batch per tick across streams, and a slow engine that
never stalls detection, tracking or publishing."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from engine.engine import EngineOutput
from engine.smoothing import make_smoother
from streamer.base import Publisher, Tracks
from streamer.config import load_settings
from streamer.frames import Frame, FrameImage
from streamer.pipeline import Pipeline, StreamSpec
from streamer.pipeline.handoff import EndNotice, ScoreJob, ScoreSlots
from streamer.pipeline.scoring import ScoringStage
from streamer.stats import PipelineStats
from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS
from tests.streamer.helpers import OFFLINE

CLASSES = ["happiness", "sadness", "neutral"]


class FakeEngine:
    """Records every batch; optionally slow. Scores = mean colour of the crop (deterministic)."""

    fingerprint = "abcdef012345"
    classes = CLASSES
    preprocess_spec = SimpleNamespace(image_size=64)

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []

    def make_smoother(self):
        return make_smoother("ema", alpha=0.5)

    def score(self, crops: np.ndarray) -> EngineOutput:
        assert crops.ndim == 4 and crops.shape[1:] == (64, 64, 3) and crops.dtype == np.uint8
        self.batches.append(len(crops))
        time.sleep(self.delay_s)
        logits = crops.reshape(len(crops), -1, 3).mean(axis=1).astype(np.float32) / 50
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return EngineOutput(
            logits,
            probs.astype(np.float32),
            [CLASSES[i] for i in probs.argmax(1)],
            np.ones((len(crops), 4), np.float32),
            np.ones(len(crops), np.float32),
        )


class ListPublisher(Publisher):
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def send(self, topic, msg):
        with self.lock:
            self.messages.append((topic, msg))
        return True

    def close(self):
        pass


def job(stream_id: str, ids: list[int]) -> ScoreJob:
    img = FrameImage.from_bgr(np.full((120, 160, 3), 100, np.uint8))
    n = len(ids)
    boxes = np.tile(np.float32([20, 20, 60, 70]), (n, 1))
    tracks = Tracks(np.array(ids, np.int64), boxes, np.ones(n, np.float32), np.zeros(n, np.int64))
    return ScoreJob(Frame(stream_id, 0, 0.0, time.time(), img), tracks)


def test_one_engine_batch_for_all_streams_and_state_freed_on_end():
    settings = load_settings(None, ["detector.name=haar", "scheduler.max_hz=1000"])
    eng = FakeEngine()
    slots = ScoreSlots()
    stage = ScoringStage(eng, slots, settings, PipelineStats())
    stage.score([job("a", [1, 2]), job("b", [7])])
    assert eng.batches == [3]
    assert set(stage.results) == {("a", 1), ("a", 2), ("b", 7)}
    r = stage.results[("b", 7)]
    assert r.label in CLASSES and r.score == r.smoothed_probs.max()
    stage._forget(EndNotice("a", 1))
    stage._forget(EndNotice("b"))
    assert set(stage.results) == {("a", 2)} and len(stage.smoother) == 1


def test_slots_keep_only_the_newest_frame_per_stream():
    slots = ScoreSlots()
    slots.offer(job("a", [1]))
    slots.offer(job("a", [1, 2]))
    slots.offer(job("b", [3]))
    jobs, ends = slots.take(0.01)
    assert slots.replaced == 1 and ends == []
    assert sorted((j.frame.stream_id, len(j.tracks)) for j in jobs) == [("a", 2), ("b", 1)]


def test_slow_engine_never_stalls_detection_and_tracking(face_clip):
    settings = load_settings(OFFLINE, ["detector.name=haar", "stats.enabled=false"])
    eng = FakeEngine(delay_s=0.4)
    pub = ListPublisher()
    specs = [StreamSpec("a", str(face_clip)), StreamSpec("b", str(face_clip))]
    report = Pipeline(settings, specs, pub, engine=eng).run()
    n = round(CLIP_SECONDS * CLIP_FPS)
    for sid in ("a", "b"):
        faces = [m for t, m in pub.messages if t == f"faces.{sid}"]
        assert [m["frame_index"] for m in faces] == list(range(n))  # every frame published
        assert any(f["label"] is not None for m in faces for f in m["faces"])
        assert report["streams"][sid]["frames"] == n and report["streams"][sid]["ended"]
    # The engine ran far fewer times than frames went through detection and tracking.
    assert len(eng.batches) < n / 2 and sum(eng.batches) >= 6
    assert report["score_jobs_replaced"] > 0
    kinds = [m["kind"] for t, m in pub.messages if t == "events.a" and m["scope"] == "stream"]
    assert kinds == ["started", "ended"]
