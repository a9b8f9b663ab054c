"""The pipeline in-process: one engine batch per tick across streams, and a slow engine that
never stalls detection, tracking or publishing. The fake engine waits on what the detection
thread publishes (never on the clock), so the tests hold on a machine of any speed."""

from __future__ import annotations

import json
import threading

import numpy as np
import torch

from configs import Settings, load_settings
from engine.output import EngineOutput
from engine.smoothing import make_smoother
from streamer.base import Publisher
from streamer.device.path import HostFramePath
from streamer.output.messages import MessageContext, faces_message
from streamer.pipeline import Pipeline, StreamSpec
from streamer.pipeline.handoff import EndNotice, ResultsBoard, ScoreSlots
from streamer.pipeline.scoring_thread import ScoringThread
from streamer.pipeline.stats import PipelineStats
from streamer.values import PublisherStats
from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS
from tests.streamer.helpers import OFFLINE, score_job, validators

CLASSES = ["happiness", "sadness", "neutral"]
N_FRAMES = round(CLIP_SECONDS * CLIP_FPS)


class ListPublisher(Publisher):
    """Keeps every message; ``wait_for`` blocks until a condition on them holds."""

    def __init__(self) -> None:
        self.stats = PublisherStats()
        self.messages: list[tuple[str, dict]] = []
        self.cond = threading.Condition()

    def send(self, topic, msg):
        with self.cond:
            self.messages.append((topic, msg))
            self.stats.sent += 1
            self.cond.notify_all()
        return True

    def count(self, prefix: str) -> int:
        with self.cond:
            return sum(1 for t, _ in self.messages if t.startswith(prefix))

    def wait_for(self, predicate, timeout_s: float = 120.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout_s)

    def close(self):
        pass


class FakeEngine:
    """Records every batch. Scores = mean colour of the crop (deterministic). With ``gate``,
    each call first waits until ``gate()`` is true: a slow engine whose slowness is measured
    in frames published, not seconds."""

    fingerprint = "abcdef012345"
    classes = CLASSES
    crop_size = 64

    def __init__(self, gate_for_call=None) -> None:
        self.batches: list[int] = []
        self.gate_for_call = gate_for_call
        self.gates_met: list[bool] = []

    def make_smoother(self):
        return make_smoother("ema", alpha=0.5)

    def describe(self):
        return {"fingerprint": self.fingerprint}

    def score(self, crops: np.ndarray) -> EngineOutput:
        assert crops.ndim == 4 and crops.shape[1:] == (64, 64, 3) and crops.dtype == np.uint8
        if self.gate_for_call is not None:
            self.gates_met.append(self.gate_for_call(len(self.batches)))
        self.batches.append(len(crops))
        logits = torch.from_numpy(crops.reshape(len(crops), -1, 3).mean(axis=1).astype(np.float32) / 50)
        return EngineOutput.from_tensors(logits, torch.ones(len(crops), 4), CLASSES)


def scoring_thread(engine, settings: Settings, stats: PipelineStats | None = None) -> ScoringThread:
    """A scoring thread (never started: tests call ``score`` and ``forget``) with the
    sections of ``settings`` it uses, cutting crops on the host."""
    return ScoringThread(
        engine,
        ScoreSlots(),
        ResultsBoard(),
        stats or PipelineStats(),
        scheduler=settings.scheduler,
        crops=settings.crops,
        abstain=settings.abstain,
        tracker=settings.tracker,
        frame_path=HostFramePath((settings.detector.input_size,) * 2),
    )


def test_one_engine_batch_for_all_streams_and_state_freed_on_end():
    settings = load_settings(None, ["detector.name=haar", "scheduler.max_hz=1000"])
    eng = FakeEngine()
    stage = scoring_thread(eng, settings)
    stage.score([score_job("a", [1, 2]), score_job("b", [7])])
    assert eng.batches == [3]
    assert set(stage.results) == {("a", 1), ("a", 2), ("b", 7)}
    r = stage.results[("b", 7)]
    assert r.label in CLASSES and r.score == r.smoothed_probs.max()
    stage.forget(EndNotice("a", 1))
    stage.forget(EndNotice("b"))
    assert set(stage.results) == {("a", 2)} and len(stage.smoother) == 1


class NanEngine(FakeEngine):
    """Returns NaN scores for the crops at ``bad`` positions of every batch."""

    def __init__(self, bad: list[int]) -> None:
        super().__init__()
        self.bad = bad

    def score(self, crops: np.ndarray) -> EngineOutput:
        out = super().score(crops)
        logits = torch.from_numpy(out.logits.copy())
        logits[self.bad] = float("nan")
        return EngineOutput.from_tensors(logits, out.projected, CLASSES)


def test_non_finite_scores_of_one_crop_are_a_counted_per_face_error():
    """The NaN crop's track keeps no result (null in messages), the other faces are scored,
    the error is counted, and the faces message stays strict JSON."""
    settings = load_settings(None, ["detector.name=haar", "scheduler.max_hz=1000"])
    stats = PipelineStats()
    stage = scoring_thread(NanEngine(bad=[1]), settings, stats)
    job = score_job("a", [1, 2, 3])
    stage.score([job])
    assert set(stage.results) == {("a", 1), ("a", 3)}
    assert stats.stream("a").errors == 1
    assert all(np.isfinite(r.probs).all() and np.isfinite(r.smoothed_probs).all() for r in stage.results.values())
    ctx = MessageContext("abcdef012345", CLASSES)
    results = [stage.results.get(("a", t)) for t in (1, 2, 3)]
    msg = json.loads(json.dumps({**faces_message(job.frame, job.tracks, results, ctx), "seq": 0}, allow_nan=False))
    assert [f["label"] is None for f in msg["faces"]] == [False, True, False]
    validators()["faces"].validate(msg)
    stage.engine.bad = [0, 1, 2]  # a whole batch of NaN: nothing scored, nothing raised
    stage.score([score_job("b", [5, 6, 7])])
    assert not any(k[0] == "b" for k in stage.results) and stats.stream("b").errors == 3


def test_slow_engine_never_stalls_detection_and_tracking(face_clip):
    """Each engine call waits until the detection thread has published 5 more frames (or
    both streams are done). If detection waited for the engine, no call would ever pass its
    gate: every gate must open by frames published, never by its timeout."""
    settings = load_settings(OFFLINE, ["detector.name=haar", "stats.enabled=false", "scheduler.max_hz=1000"])
    pub = ListPublisher()
    total = 2 * N_FRAMES

    def gate(call: int) -> bool:
        start = pub.count("faces.")
        return pub.wait_for(lambda: pub.count("faces.") >= min(total, start + 5))

    eng = FakeEngine(gate)
    specs = [StreamSpec("a", str(face_clip)), StreamSpec("b", str(face_clip))]
    # No warm-up: its blank scoring would wait at a gate no frame can open yet.
    report = Pipeline(settings, specs, pub, engine=eng, warm=False).run()

    assert eng.gates_met and all(eng.gates_met), eng.gates_met
    for sid in ("a", "b"):
        faces = [m for t, m in pub.messages if t == f"faces.{sid}"]
        assert [m["frame_index"] for m in faces] == list(range(N_FRAMES))  # every frame published
        st = report.streams[sid].stats
        assert st.frames == N_FRAMES and st.outcome == "ended"
        kinds = [m["kind"] for t, m in pub.messages if t == f"events.{sid}" and m["scope"] == "stream"]
        assert kinds == ["started", "ended"]
    # Each engine call spanned at least 5 published frames, so there are far fewer calls than
    # frames, and frames offered while the engine was busy were replaced, not queued.
    assert 1 <= len(eng.batches) <= total // 5 + 2
    assert report.drops["score"] > 0
