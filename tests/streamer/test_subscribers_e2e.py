"""What subscribers get beyond raw scores, end to end through ``streamer run`` (offline
engine, Haar detector, real PyAV and ZeroMQ): state for a late joiner, live prompt and
source changes, episodes, abstentions, and the JSON-lines sink. Every wait is on messages,
never on the clock."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from streamer.client import StateSubscriber
from streamer.net.endpoints import request
from streamer.output.state import StateBoard
from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS
from tests.streamer.helpers import (
    LIVENESS_S,
    OFFLINE,
    OFFLINE_SETS,
    Collector,
    free_endpoint,
    sets,
    start_streamer,
    validators,
    wait_for,
)

N_FRAMES = round(CLIP_SECONDS * CLIP_FPS)


def check_schemas(messages) -> None:
    v = validators()
    for topic, msg in messages:
        errors = [e.message for e in v[topic.split(".", 1)[0]].iter_errors(msg)]
        assert not errors, (topic, errors, msg)


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


@pytest.mark.timeout(900)
def test_late_joiner_gets_the_whole_state_then_every_update_once(face_clip):
    endpoint, snap_ep = free_endpoint(), free_endpoint()
    witness = Collector(endpoint)  # subscribed before the first message: sees everything
    proc = start_streamer(
        "run",
        f"cam0={face_clip}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *sets(f"publisher.endpoint={endpoint}", f"snapshot.endpoint={snap_ep}", "sources.loop=true"),
    )
    try:
        wait_for(lambda: len(witness.of("faces.cam0")) >= N_FRAMES, LIVENESS_S, "a first pass of the clip")
        reply = request(snap_ep, {"op": "snapshot"}, LIVENESS_S)
        errors = [e.message for e in validators()["snapshot"].iter_errors(reply)]
        assert not errors, errors
        late = StateSubscriber(endpoint, snap_ep, timeout_s=LIVENESS_S)
        state = late.state
        updates = []
        for topic, msg in late.updates(timeout_s=LIVENESS_S):
            updates.append((topic, msg))
            if sum(t.startswith("faces.") for t, _ in updates) >= 10:
                break
        late.close()
        err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    witness.close()
    assert proc.returncode == 0, err[-3000:]

    # The state equals the witness's complete stream folded up to the snapshot's seq.
    expected = StateBoard()
    for topic, msg in witness.messages:
        if msg["seq"] <= state["seq"].get(topic, -1):
            expected.apply(topic, msg)
    want = expected.snapshot()
    assert state["streams"] == want["streams"] and state["seq"] == want["seq"]
    cam = state["streams"]["cam0"]
    assert cam["started"]["details"]["codec"] == "h264" and cam["started"]["details"]["fps"] == CLIP_FPS
    assert cam["tracks"], "the faces in view are in the state"
    for tr in cam["tracks"].values():
        assert tr["started"]["kind"] == "started"
        assert tr["face"]["smoothed_probs"] is None or len(tr["face"]["smoothed_probs"]) == len(state["classes"])
    assert any(tr["face"]["label"] for tr in cam["tracks"].values()), "smoothed state of scored tracks"

    # Then every update exactly once: per topic the seq goes on from the snapshot's, no gap.
    by_topic: dict[str, list[int]] = {}
    for topic, msg in updates:
        by_topic.setdefault(topic, []).append(msg["seq"])
    assert "faces.cam0" in by_topic
    for topic, seqs in by_topic.items():
        first = state["seq"].get(topic, -1) + 1
        assert seqs == list(range(first, first + len(seqs))), (topic, first, seqs[:5])
    assert late.gaps == 0
    check_schemas(updates)


@pytest.mark.timeout(900)
def test_live_prompt_change_and_runtime_sources(face_clip, tmp_path):
    endpoint, control = free_endpoint(), free_endpoint()
    col = Collector(endpoint)
    proc = start_streamer(
        "run",
        f"cam0={face_clip}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *sets(f"publisher.endpoint={endpoint}", f"control.endpoint={control}", "sources.loop=true"),
    )
    try:
        wait_for(lambda: len(col.of("faces.cam0")) >= 20, LIVENESS_S, "faces before the change")
        before = request(control, {"op": "status"}, LIVENESS_S)
        assert before["ok"] and before["streams"] == ["cam0"] and len(before["classes"]) == 7

        # A malformed request changes nothing.
        bad = request(control, {"op": "set_prompts", "prompts": {"templates": ["no placeholder"]}}, LIVENESS_S)
        assert not bad["ok"] and "{}" in bad["error"]
        assert request(control, {"op": "frobnicate"}, LIVENESS_S)["ok"] is False
        assert request(control, {"op": "status"}, LIVENESS_S)["engine"] == before["engine"]

        custom = {"calm": ["a photo of a calm face."], "tense": ["a photo of a tense face."]}
        changed = request(control, {"op": "set_prompts", "prompts": {"custom": custom}}, LIVENESS_S)
        assert changed["ok"] and changed["classes"] == ["calm", "tense"] and changed["engine"] != before["engine"]
        n = len(col.of("faces.cam0"))
        wait_for(lambda: len(col.of("faces.cam0")) >= n + 20, LIVENESS_S, "faces after the change")

        added = request(control, {"op": "add_source", "id": "cam1", "uri": str(face_clip)}, LIVENESS_S)
        assert added["ok"] and added["streams"] == ["cam0", "cam1"]
        again = request(control, {"op": "add_source", "id": "cam1", "uri": str(face_clip)}, LIVENESS_S)
        assert not again["ok"] and "in use" in again["error"]
        wait_for(lambda: len(col.of("faces.cam1")) >= 10, LIVENESS_S, "faces of the added stream")
        assert request(control, {"op": "remove_source", "id": "cam1"}, LIVENESS_S)["ok"]
        ended = lambda: [m for m in col.of("events.cam1") if m["scope"] == "stream" and m["kind"] == "ended"]  # noqa: E731
        wait_for(lambda: ended(), LIVENESS_S, "the removed stream's end")
        assert not request(control, {"op": "remove_source", "id": "nope"}, LIVENESS_S)["ok"]
        err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    col.close()
    assert proc.returncode == 0, err[-3000:]
    check_schemas(col.messages)

    # cam0: every message before the engine change carries the old engine, every one after
    # it the new one; no faces message mixes classes and scores of two engines.
    cam0 = [(t, m) for t, m in col.messages if t.endswith(".cam0")]
    i = next(k for k, (t, m) in enumerate(cam0) if m.get("scope") == "engine")
    change = cam0[i][1]
    assert change["engine"] == changed["engine"] and change["classes"] == ["calm", "tense"]
    assert [m.get("scope") for _, m in cam0].count("engine") == 1
    assert {m["engine"] for _, m in cam0[:i]} == {before["engine"]}
    assert {m["engine"] for _, m in cam0[i:]} == {changed["engine"]}
    for _, m in cam0:
        if m["type"] == "faces":
            for f in m["faces"]:
                if f["probs"] is not None:
                    assert len(f["probs"]) == len(f["smoothed_probs"]) == len(m["classes"])
                    assert f["label"] in m["classes"]
    assert any(f["label"] in ("calm", "tense") for _, m in cam0[i:] if m["type"] == "faces" for f in m["faces"])
    # cam1 was added and removed while running, with the new engine throughout.
    cam1_stream = [m["kind"] for m in col.of("events.cam1") if m["scope"] == "stream"]
    assert cam1_stream == ["started", "ended"]
    assert ended()[0]["reason"] == "removed"
    assert {m["engine"] for m in col.of("faces.cam1")} == {changed["engine"]}


def test_episodes_abstentions_and_the_jsonl_sink(face_clip, tmp_path):
    """A file run into a JSON-lines file: every frame is there; faces too small for the
    threshold abstain; episodes open and close consistently."""
    out = tmp_path / "results.jsonl"
    proc = start_streamer(
        "run",
        f"cam0={face_clip}",
        "-c",
        OFFLINE,
        "--out",
        str(out),
        *sets(
            "detector.name=haar",
            "scheduler.max_hz=30",
            "abstain.min_face_px=52",
            "episodes.p_on=0.15",
            "episodes.p_off=0.1",
            "episodes.t_on_s=0.1",
            "episodes.t_off_s=0.1",
            "episodes.ignore=[]",
        ),
    )
    _, err = proc.communicate(timeout=3 * LIVENESS_S)
    assert proc.returncode == 0, err[-3000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    messages = [(("faces" if m["type"] == "faces" else "events") + "." + m["stream_id"], m) for m in lines]
    check_schemas(messages)
    faces = [m for t, m in messages if t == "faces.cam0"]
    assert [m["frame_index"] for m in faces] == list(range(N_FRAMES))  # every frame, none dropped
    assert [m["seq"] for m in faces] == list(range(N_FRAMES))

    all_faces = [f for m in faces for f in m["faces"]]
    small = [f for f in all_faces if f.get("abstain") == "too_small"]
    assert small and all(f["label"] is None and f["probs"] is None for f in small)
    assert all(min(f["bbox_xyxy"][2] - f["bbox_xyxy"][0], f["bbox_xyxy"][3] - f["bbox_xyxy"][1]) < 52 for f in small)
    assert any(f["label"] is not None for f in all_faces)

    episodes = [m for t, m in messages if t == "events.cam0" and m["scope"] == "episode"]
    assert episodes, "the low thresholds open episodes on the random model's scores"
    kinds = Counter((m["episode_id"], m["kind"]) for m in episodes)
    ids = {m["episode_id"] for m in episodes}
    assert all(kinds[(i, "started")] == 1 and kinds[(i, "ended")] == 1 for i in ids)
    for m in episodes:
        if m["kind"] == "ended":
            assert m["reason"] in ("dropped", "track_ended", "stream_ended")
            assert m["offset_s"] >= m["onset_s"] and m["duration_s"] == pytest.approx(m["offset_s"] - m["onset_s"])
            assert m["onset_s"] <= m["peak_time_s"] <= max(m["offset_s"], m["peak_time_s"])
    # An episode never outlives its track: its end comes before the track's end event.
    order = [(m["scope"], m["kind"], m.get("track_id")) for t, m in messages if t == "events.cam0"]
    for m in episodes:
        if m["kind"] == "ended" and m["reason"] != "dropped":
            ep_at = order.index(("episode", "ended", m["track_id"]))
            assert ("track", "ended", m["track_id"]) in order[ep_at:]
    assert lines[-1]["scope"] == "stream" and lines[-1]["kind"] == "ended"
