"""Trackers by name (ByteTrack, OC-SORT, SORT): stable ids, short misses, lifecycle events,
keypoints kept with their face, and the registry's errors."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from configs import load_settings
from configs.core.errors import ConfigError
from configs.streamer import TrackerSettings
from streamer.stages.tracking import TRACKERS, ByteTracker, create_tracker
from streamer.values import Detections


def faces_at(step: int, order=(0, 1, 2), with_kps: bool = True) -> Detections:
    """Three faces moving right by 3 px per frame, listed in ``order``."""
    base = np.array([[100, 100, 160, 170], [300, 120, 360, 190], [500, 90, 560, 160]], np.float32)
    boxes = base + np.array([3 * step, 0, 3 * step, 0], np.float32)
    kps = np.stack([np.tile(b[:2], (5, 1)) + 10 * (i + 1) for i, b in enumerate(boxes)]).astype(np.float32)
    idx = list(order)
    return Detections(boxes[idx], np.full(len(idx), 0.9, np.float32), kps[idx] if with_kps else None)


def test_ids_are_stable_and_keypoints_follow_their_face():
    tr = ByteTracker("cam", TrackerSettings(min_consecutive_frames=2))
    seen: dict[int, float] = {}
    started = []
    for step in range(30):
        order = (2, 0, 1) if step % 2 else (0, 1, 2)  # detector order changes between frames
        tracks, events = tr.update(faces_at(step, order), step)
        started += [e.track_id for e in events if e.kind == "started"]
        assert not [e for e in events if e.kind == "ended"]
        if step == 0:
            assert len(tracks) == 0  # not confirmed yet
            continue
        assert len(tracks) == 3
        for tid, box, kp in zip(tracks.track_ids.tolist(), tracks.bbox_xyxy, tracks.kps, strict=True):
            # keypoints were made 10/20/30 px off their own box's corner
            off = float(kp[0, 0] - box[0])
            assert off in (10.0, 20.0, 30.0)
            assert seen.setdefault(tid, off) == off, "a track id moved to another face"
        assert (tracks.ages == step - 1).all()
    assert sorted(started) == sorted(seen) and len(seen) == 3


def test_short_miss_keeps_the_id_long_miss_ends_the_track():
    tr = ByteTracker("cam", TrackerSettings(lost_track_s=0.3, frame_rate=30))
    for step in range(5):
        tracks, _ = tr.update(faces_at(step), step)
    ids = sorted(tracks.track_ids.tolist())
    # 3 frames with face 1 missing (0.1 s): it comes back with the same id.
    for step in range(5, 8):
        tracks, events = tr.update(faces_at(step, (0, 2)), step)
        assert not events
    tracks, events = tr.update(faces_at(8), 8)
    assert sorted(tracks.track_ids.tolist()) == ids and not events
    # Face 2 gone for good: it ends after ~0.3 s (9 frames at 30 fps), once.
    ended = []
    for step in range(9, 30):
        tracks, events = tr.update(faces_at(step, (0, 1)), step)
        ended += [(e.track_id, e.kind) for e in events]
    assert len(ended) == 1 and ended[0][1] == "ended" and ended[0][0] in ids
    assert ended[0][0] not in tracks.track_ids.tolist()
    assert len(tr.predicted_boxes()) == 2


def test_end_of_stream_ends_every_live_track():
    tr = ByteTracker("cam", TrackerSettings())
    for step in range(4):
        tr.update(faces_at(step, with_kps=False), step)
    events = tr.end(3)
    assert [e.kind for e in events] == ["ended"] * 3
    assert all(e.age == 2 and e.stream_id == "cam" for e in events)
    assert tr.live_ids == [] and tr.end(4) == []


def test_empty_frames():
    tr = ByteTracker("cam", TrackerSettings())
    tracks, events = tr.update(Detections.empty(), 0)
    assert len(tracks) == 0 and events == [] and tracks.kps is None


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_each_tracker_by_name_follows_three_faces_with_stable_ids(name):
    tr = create_tracker("cam", TrackerSettings(name=name, min_consecutive_frames=2))
    assert isinstance(tr, TRACKERS[name])
    seen: dict[int, float] = {}
    started, ended = [], []
    for step in range(30):
        order = (2, 0, 1) if step % 2 else (0, 1, 2)  # detector order changes between frames
        tracks, events = tr.update(faces_at(step, order), step)
        started += [e.track_id for e in events if e.kind == "started"]
        ended += [e.track_id for e in events if e.kind == "ended"]
        if step == 0:
            continue  # confirmed on the 2nd frame at the latest
        assert len(tracks) == 3 and tracks.matched.all()
        for tid, box, kp in zip(tracks.track_ids.tolist(), tracks.bbox_xyxy, tracks.kps, strict=True):
            off = float(kp[0, 0] - box[0])  # keypoints were made 10/20/30 px off their own box's corner
            assert seen.setdefault(tid, off) == off, "a track id moved to another face"
    assert sorted(started) == sorted(seen) and len(seen) == 3 and not ended
    events = tr.end(29)
    assert sorted(e.track_id for e in events) == sorted(seen) and {e.kind for e in events} == {"ended"}


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_each_tracker_keeps_a_briefly_missed_face_in_every_message_and_ends_a_lost_one(name):
    tr = create_tracker("cam", TrackerSettings(name=name, lost_track_s=0.3, coast_s=0.3, frame_rate=30))
    for step in range(5):
        tracks, _ = tr.update(faces_at(step), step)
    ids = sorted(tracks.track_ids.tolist())
    assert len(ids) == 3
    for step in range(5, 12):  # face 1 missed for 3 frames (0.1 s), then back
        tracks, events = tr.update(faces_at(step, (0, 2) if step < 8 else (0, 1, 2)), step)
        assert sorted(tracks.track_ids.tolist()) == ids and not events
    assert tracks.matched.all()
    ended = []
    for step in range(12, 40):  # face 2 gone for good: it ends once
        tracks, events = tr.update(faces_at(step, (0, 1)), step)
        ended += [(e.track_id, e.kind) for e in events]
    assert len(ended) == 1 and ended[0][1] == "ended" and ended[0][0] in ids
    assert sorted(tracks.track_ids.tolist()) == sorted(set(ids) - {ended[0][0]})


def test_an_unknown_tracker_name_is_a_config_error_listing_the_valid_ones():
    with pytest.raises(ConfigError, match=r"tracker\.name.*'kalman'.*bytetrack, ocsort, sort"):
        create_tracker("cam", TrackerSettings.model_construct(name="kalman"))
    with pytest.raises(ConfigError, match=r"tracker\.name.*'kalman'.*bytetrack.*ocsort.*sort"):
        load_settings(None, ["tracker.name=kalman"])


def test_the_setting_allows_exactly_the_registered_trackers():
    assert set(get_args(TrackerSettings.model_fields["name"].annotation)) == set(TRACKERS)
    assert TrackerSettings().name == "bytetrack"
