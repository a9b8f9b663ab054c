"""Abstentions (tiny, blurred, profile faces), coasting through detector misses, and
re-linking a face that comes back as a new track, on constructed inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from configs import load_settings
from configs.analytics import AbstainSettings
from configs.streamer import TrackerSettings
from engine.output import EngineOutput
from engine.smoothing import make_smoother
from streamer.pipeline.handoff import EndNotice
from streamer.stages.abstain import blur_reasons, geometry_reasons, sharpness
from streamer.stages.tracking import ByteTracker
from streamer.values import Abstention, FaceResult
from tests.media import group_photo_bgr
from tests.streamer.helpers import score_job
from tests.streamer.test_pipeline import scoring_thread
from tests.streamer.test_tracking import faces_at

FRONTAL = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
PROFILE = np.array([[30, 40], [45, 40], [60, 60], [35, 80], [50, 80]], np.float32)


def test_size_and_pose_abstentions():
    boxes = np.array([[0, 0, 20, 30], [0, 0, 100, 120], [0, 0, 100, 120]], np.float32)
    kps = np.stack([FRONTAL, FRONTAL, PROFILE])
    assert geometry_reasons(boxes, kps, AbstainSettings(min_face_px=32)) == ["too_small", None, "not_frontal"]
    assert geometry_reasons(boxes, None, AbstainSettings(min_face_px=32)) == ["too_small", None, None]
    off = AbstainSettings(min_face_px=0, max_yaw=1.0)
    assert geometry_reasons(boxes, kps, off) == [None, None, None]


def test_blurred_face_abstains_sharp_one_does_not():
    photo = cv2.cvtColor(group_photo_bgr(), cv2.COLOR_BGR2RGB)
    h, w = photo.shape[:2]
    face = cv2.resize(photo[h // 4 : h // 4 + w // 6, w // 3 : w // 3 + w // 6], (224, 224))
    blurred = cv2.GaussianBlur(face, (0, 0), 6)
    sharp_v, blurred_v = sharpness(face), sharpness(blurred)
    assert sharp_v > 4 * blurred_v
    threshold = (sharp_v * blurred_v) ** 0.5
    assert blur_reasons(np.stack([face, blurred]), AbstainSettings(min_sharpness=threshold)) == [None, "blurred"]
    assert blur_reasons(np.stack([face, blurred]), AbstainSettings(min_sharpness=0)) == [None, None]


@pytest.mark.parametrize(("gap", "coasting"), [(3, 3), (6, 6), (12, 9)])
def test_missed_faces_coast_at_their_predicted_box(gap, coasting):
    """A k-frame detection gap of one face: it stays in the output (predicted: true) for up
    to coast_s (9 frames at 30 fps), keeps its id, and is matched again after."""
    tr = ByteTracker("cam", TrackerSettings(coast_s=0.3, lost_track_s=1.0, frame_rate=30))
    for step in range(5):
        tracks, _ = tr.update(faces_at(step), step)
    ids = sorted(tracks.track_ids.tolist())
    missing = None
    seen_predicted = 0
    for step in range(5, 5 + gap):
        tracks, events = tr.update(faces_at(step, (0, 2)), step)
        assert not events
        pred = tracks.predicted if tracks.predicted is not None else np.zeros(len(tracks), bool)
        if pred.any():
            seen_predicted += 1
            (idx,) = np.flatnonzero(pred)
            missing = missing or int(tracks.track_ids[idx])
            assert tracks.det_scores[idx] == 0 and abs(tracks.bbox_xyxy[idx, 0] - (300 + 3 * step)) < 6
    assert seen_predicted == coasting
    tracks, events = tr.update(faces_at(5 + gap), 5 + gap)
    assert sorted(tracks.track_ids.tolist()) == ids and not events
    assert tracks.predicted is None or not tracks.predicted.any()
    assert missing in ids


class IdentityEngine:
    """Scores = mean colour (softmax); projected feature = the crop's colour histogram, so
    the same face gives the same feature whatever its track."""

    fingerprint = "abcdef012345"
    classes = ("a", "b", "c")
    crop_size = 32

    def make_smoother(self):
        return make_smoother("ema", alpha=0.5)

    def score(self, crops):
        n = len(crops)
        logits = torch.from_numpy(crops.reshape(n, -1, 3).mean(axis=1).astype(np.float32) / 20)
        hist = np.stack([np.histogram(c, bins=16, range=(0, 256))[0] for c in crops]).astype(np.float32)
        return EngineOutput.from_tensors(logits, torch.from_numpy(hist), self.classes)


def test_a_face_back_as_a_new_track_continues_the_old_one():
    relink = ["tracker.relink_s=5", "tracker.relink_min_similarity=0.99"]
    settings = load_settings(None, ["scheduler.max_hz=1000", *relink])
    stage = scoring_thread(IdentityEngine(), settings)
    face = np.zeros((120, 160, 3), np.uint8)
    face[20:70, 20:60] = (200, 80, 30)
    stage.score([score_job("cam0", [1], image=face)])
    first = stage.results[("cam0", 1)]
    stage.forget(EndNotice("cam0", 1))
    other = np.full((120, 160, 3), 40, np.uint8)
    stage.score([score_job("cam0", [5], image=face), score_job("cam1", [5], image=face)])
    stage.score([score_job("cam0", [6], image=other)])
    back = stage.results[("cam0", 5)]
    assert isinstance(back, FaceResult) and back.relinked_from == 1
    # the smoothing state came along: EMA of the old track's and the new observation
    np.testing.assert_allclose(back.smoothed_probs, 0.5 * first.smoothed_probs + 0.5 * back.probs, atol=1e-6)
    assert stage.results[("cam1", 5)].relinked_from is None  # another stream's face is another face
    assert stage.results[("cam0", 6)].relinked_from is None  # a different face
    assert stage.stats.relinks == 1


def test_blurred_crops_are_published_as_abstentions_and_not_scored():
    settings = load_settings(None, ["scheduler.max_hz=1000", "abstain.min_sharpness=1000"])
    eng = IdentityEngine()
    calls = []
    eng.score = lambda crops, inner=eng.score: calls.append(len(crops)) or inner(crops)
    stage = scoring_thread(eng, settings)
    flat = np.full((120, 160, 3), 90, np.uint8)  # no edges at all: sharpness 0
    stage.score([score_job("cam0", [1, 2], image=flat)])
    assert calls == []
    assert {k: (type(r), r.reason) for k, r in stage.results.items()} == {
        ("cam0", 1): (Abstention, "blurred"),
        ("cam0", 2): (Abstention, "blurred"),
    }


def test_preview_blurs_faces_and_nothing_else():
    from streamer.output.preview import blur_faces

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = blur_faces(img.copy(), np.array([[40, 30, 100, 90]], np.float32))
    inside, outside = (slice(30, 90), slice(40, 100)), (slice(0, 30), slice(0, 160))
    assert np.abs(out[inside].astype(int) - img[inside]).mean() > 20  # noise averaged away
    assert (out[outside] == img[outside]).all()
