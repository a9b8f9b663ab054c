"""``streamer run`` end to end: a subprocess on real H.264 clips of real faces (insightface's
group photo), the offline engine and RetinaFace, real PyAV and real ZeroMQ sockets."""

from __future__ import annotations

import itertools
import signal
from collections import Counter

import av
import numpy as np
import pytest

from configs.core.errors import ExitCode
from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS, CLIP_SIZE_WH
from tests.streamer.helpers import (
    LIVENESS_S,
    OFFLINE,
    OFFLINE_SETS,
    Collector,
    free_endpoint,
    start_streamer,
    validators,
    wait_for,
)

N_FRAMES = round(CLIP_SECONDS * CLIP_FPS)


def run_to_end(*args: str, timeout_s: float = 3 * LIVENESS_S):
    proc = start_streamer(*args)
    try:
        _out, err = proc.communicate(timeout=timeout_s)
    except Exception:
        proc.kill()
        raise
    return proc.returncode, err


def check_schemas(col: Collector) -> None:
    v = validators()
    for topic, msg in col.messages:
        kind = topic.split(".", 1)[0]
        errors = [e.message for e in v[kind].iter_errors(msg)]
        assert not errors, (topic, errors, msg)
        assert topic == f"{kind}.{msg['stream_id']}"


def test_run_file_publishes_valid_stable_results_and_end_events(face_clip, tmp_path):
    endpoint = free_endpoint()
    col = Collector(endpoint)
    preview = tmp_path / "preview.mp4"
    rc, err = run_to_end(
        "run",
        f"cam0={face_clip}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        "--set",
        f"publisher.endpoint={endpoint}",
        "--preview",
        str(preview),
    )
    col.close()
    assert rc == 0, err[-3000:]
    assert "resolved configuration" in err
    check_schemas(col)

    faces = col.of("faces.cam0")
    assert [m["frame_index"] for m in faces] == list(range(N_FRAMES))
    assert [m["seq"] for m in faces] == list(range(N_FRAMES))
    assert len({m["engine"] for _, m in col.messages}) == 1
    assert faces[0]["classes"][:3] == ["happiness", "sadness", "neutral"]
    assert faces[-1]["size_wh"] == list(CLIP_SIZE_WH)

    # Six faces: five in view from the start, the sixth panning in from the edge. RetinaFace
    # finds every one, and each keeps one track id from its first frame to the end.
    per_frame = [set(f["track_id"] for f in m["faces"]) for m in faces]
    counts = Counter(t for ids in per_frame for t in ids)
    assert len(counts) == 6, counts
    steady = sorted(counts)
    for t in steady:
        seen = [i for i, ids in enumerate(per_frame) if t in ids]
        assert seen == list(range(seen[0], N_FRAMES)), (t, seen)  # never lost once found
    assert sum(len(ids) == 5 for ids in per_frame[:3]) >= 1, per_frame[:3]  # five at once, at the start
    assert per_frame[N_FRAMES // 2] == set(steady)  # the sixth within half the clip
    for t in steady:  # a track's box moves smoothly (no id swap between faces)
        xs = [f["bbox_xyxy"][0] for m in faces for f in m["faces"] if f["track_id"] == t]
        assert np.abs(np.diff(xs)).max() < 15, (t, xs)

    scored = [f for m in faces for f in m["faces"] if f["label"] is not None]
    assert scored, "no face was ever scored"
    for f in scored:
        assert f["label"] == faces[0]["classes"][int(np.argmax(f["smoothed_probs"]))]
        assert abs(sum(f["probs"]) - 1) < 1e-2 and abs(sum(f["smoothed_probs"]) - 1) < 1e-2
        assert f["score"] == pytest.approx(max(f["smoothed_probs"]), abs=1e-3)

    events = col.of("events.cam0")
    stream_events = [e["kind"] for e in events if e["scope"] == "stream"]
    assert stream_events == ["started", "ended"]
    assert events[-1]["scope"] == "stream" and events[-1]["kind"] == "ended"  # the last message
    started = {e["track_id"] for e in events if e["scope"] == "track" and e["kind"] == "started"}
    ended = {e["track_id"] for e in events if e["scope"] == "track" and e["kind"] == "ended"}
    assert started == ended == set(steady)

    with av.open(str(preview)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == N_FRAMES and (frames[0].width, frames[0].height) == CLIP_SIZE_WH


def test_corrupt_file_fails_and_the_other_stream_completes(face_clip, corrupt_file):
    endpoint = free_endpoint()
    col = Collector(endpoint)
    rc, err = run_to_end(
        "run",
        f"good={face_clip}",
        f"bad={corrupt_file}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        "--set",
        f"publisher.endpoint={endpoint}",
    )
    col.close()
    assert rc == ExitCode.STREAM_FAILED, err[-3000:]
    check_schemas(col)
    bad = [e for e in col.of("events.bad") if e["scope"] == "stream"]
    assert [e["kind"] for e in bad] == ["failed"]
    assert "corrupt.mp4" in bad[0]["reason"] or "nvalid data" in bad[0]["reason"], bad[0]["reason"]
    assert col.of("faces.bad") == []
    good = [e for e in col.of("events.good") if e["scope"] == "stream"]
    assert [e["kind"] for e in good] == ["started", "ended"]
    assert [m["frame_index"] for m in col.of("faces.good")] == list(range(N_FRAMES))


@pytest.mark.timeout(900)
def test_slow_subscriber_loses_messages_not_throughput_and_sigterm_exits_cleanly(face_clip, tmp_path):
    # ipc: the kernel buffers little (TCP on loopback would absorb ~2 MB before any drop).
    endpoint = f"ipc://{tmp_path / 'pub.ipc'}"
    fast = Collector(endpoint)
    slow = Collector(endpoint, rcvhwm=2, rcvbuf=4096, paused=True)  # reads nothing until speed_up()
    proc = start_streamer(
        "run",
        f"loop={face_clip}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        "--set",
        f"publisher.endpoint={endpoint}",
        "--set",
        "sources.loop=true",
        "--set",
        "publisher.sndhwm=50",
        "--set",
        "publisher.wait_subscribers=2",
    )
    try:
        wait_for(lambda: len(fast.of("faces.")) >= 6 * N_FRAMES, 3 * LIVENESS_S, "faces messages")
        # The paused reader starts reading while the streamer still runs (a closed connection
        # discards what ZeroMQ still holds for it), then the streamer is stopped.
        slow.speed_up()
        target = len(fast.of("faces.")) + 20
        wait_for(lambda: len(fast.of("faces.")) >= target, LIVENESS_S, "more faces messages")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    fast.close()
    slow.close()
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM received" in err

    f_faces, s_faces = fast.of("faces.loop"), slow.of("faces.loop")
    assert [m["seq"] for m in f_faces] == list(range(len(f_faces)))  # the fast reader lost nothing
    assert [m["frame_index"] for m in f_faces] == list(range(len(f_faces)))
    seqs = [m["seq"] for m in s_faces]
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(seqs))
    assert gaps > 0 and len(s_faces) + gaps == len(f_faces), (len(s_faces), gaps, len(f_faces))
    # Clean stop: tracks and the stream end, and the end event is the last word.
    events = fast.of("events.loop")
    assert events[-1]["scope"] == "stream" and events[-1]["kind"] == "ended" and events[-1]["reason"] == "stopped"
    assert {e["track_id"] for e in events if e["kind"] == "started" and e["scope"] == "track"} == {
        e["track_id"] for e in events if e["kind"] == "ended" and e["scope"] == "track"
    }
    print(f"\nfast reader {len(f_faces)} faces messages, slow reader {len(s_faces)} with {gaps} seq gaps")


def test_exit_codes_tell_a_supervisor_what_happened(face_clip, corrupt_file, tmp_path):
    """4 when no stream could start (missing and zero-byte files), 0 when all ended normally."""
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    sets = ["-c", OFFLINE, "--set", "detector.name=haar", "--set", f"publisher.endpoint={free_endpoint()}"]
    rc, err = run_to_end("run", f"gone={tmp_path / 'missing.mp4'}", f"empty={empty}", *sets)
    assert rc == ExitCode.NO_STREAM, err[-3000:]
    assert "no stream" in err
    rc, err = run_to_end("run", f"ok={face_clip}", *sets, "--set", "publisher.settle_s=0")
    assert rc == ExitCode.OK, err[-3000:]
