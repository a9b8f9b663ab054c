"""Sources without a network: files through real PyAV, the queue, URIs, settings, backoff."""

from __future__ import annotations

import functools
import http.server
import itertools
import random
import threading
import time
from pathlib import Path

import av
import numpy as np
import pydantic
import pytest

from configs.sources import SourceSettings
from streamer.sources import (
    Backoff,
    FileSource,
    LiveSource,
    SourceTarget,
    backoff_delay,
    classify_uri,
    open_source,
    redact_uri,
)
from streamer.values import StreamEvent
from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS, CLIP_SIZE_WH
from tests.streamer.helpers import LIVENESS_S

N_FRAMES = round(CLIP_SECONDS * CLIP_FPS)


def read_all(source, timeout_s: float = LIVENESS_S) -> list:
    """Every frame until the source is done (fails the test past ``timeout_s``)."""
    frames = []
    deadline = time.monotonic() + timeout_s
    while not source.done:
        assert time.monotonic() < deadline, "source never finished"
        frame = source.read(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    return frames


# ---- files ------------------------------------------------------------------------------


def test_file_source_delivers_every_frame_in_order(face_clip, event_log):
    src = open_source(str(face_clip), "clip", SourceSettings(), event_log)
    assert isinstance(src, FileSource) and not src.live
    src.start()
    frames = read_all(src)
    src.stop()

    assert [f.index for f in frames] == list(range(N_FRAMES))
    pts = [f.pts_s for f in frames]
    assert None not in pts
    assert pts[0] == pytest.approx(0.0)
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[-1] == pytest.approx((N_FRAMES - 1) / CLIP_FPS, abs=1e-3)
    walls = [f.wall_time_s for f in frames]
    assert walls == sorted(walls)
    first = frames[0]
    assert first.stream_id == "clip"
    assert first.size_wh == CLIP_SIZE_WH
    # The source hands over the decoder's own picture; nothing converted it to RGB.
    assert first.image.format == "yuv420p"
    assert first.image.to_bgr((64, 36)).shape == (36, 64, 3)

    assert event_log.kinds() == ["started", "ended"]
    started, ended = event_log.events
    assert started.details["size_wh"] == list(CLIP_SIZE_WH)
    assert started.details["fps"] == pytest.approx(CLIP_FPS)
    assert ended.reason == "end of file"
    assert all(e.stream_id == "clip" for e in event_log.events)
    assert src.stats.frames_decoded == N_FRAMES
    assert src.stats.frames_dropped == 0
    assert src.done
    assert src.read(timeout=0) is None


def test_prepare_sees_every_frame_before_it_is_queued_and_a_raising_one_loses_none(face_clip, event_log):
    """``prepare`` (the pipeline's frame path) runs on the decode thread for each frame before
    it is queued; when it raises, the frame is queued all the same."""
    prepared: list[int] = []

    def prepare(frame):
        prepared.append(frame.index)
        if frame.index % 2:
            raise ValueError("cannot prepare this one")

    src = open_source(str(face_clip), "prep", SourceSettings(), event_log, prepare=prepare)
    src.start()
    frames = read_all(src)
    src.stop()
    assert [f.index for f in frames] == list(range(N_FRAMES)) == prepared
    assert src.stats.prepare_s > 0.0


def test_realtime_file_is_paced_at_native_rate(face_clip, event_log):
    src = open_source(str(face_clip), "rt", SourceSettings(realtime=True, queue_size=64), event_log)
    t0 = time.monotonic()
    src.start()
    frames = read_all(src)
    elapsed_s = time.monotonic() - t0
    src.stop()
    assert len(frames) == N_FRAMES
    media_s = (N_FRAMES - 1) / CLIP_FPS
    assert elapsed_s >= 0.8 * media_s, f"{N_FRAMES} frames took {elapsed_s:.2f} s"
    # Frames leave the decoder at their own media time, not in one burst.
    wall_span_s = frames[-1].wall_time_s - frames[0].wall_time_s
    assert wall_span_s >= 0.8 * media_s


def test_looping_file_restarts_with_increasing_pts(start_source, face_clip, event_log):
    src = start_source(str(face_clip), "loop", SourceSettings(loop=True), event_log)
    frames = []
    while len(frames) < 2 * N_FRAMES + 5:
        frame = src.read(timeout=LIVENESS_S)
        assert frame is not None, "a looping file stopped delivering"
        frames.append(frame)
    src.stop()
    assert [f.index for f in frames] == list(range(len(frames)))
    pts = [f.pts_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[N_FRAMES] == pytest.approx(N_FRAMES / CLIP_FPS, abs=1e-3)
    assert event_log.kinds() == ["started", "ended"]
    assert event_log.events[-1].reason == "stopped"


def test_corrupt_file_fails_with_reason(start_source, corrupt_file, event_log):
    src = start_source(str(corrupt_file), "bad", SourceSettings(), event_log)
    assert read_all(src, timeout_s=LIVENESS_S) == []
    src.stop()
    assert event_log.kinds() == ["failed"]
    reason = event_log.events[0].reason
    assert "InvalidDataError" in reason and str(corrupt_file) in reason
    assert src.done
    assert src.stats.last_error == reason


def test_missing_file_fails(start_source, tmp_path, event_log):
    missing = tmp_path / "nope.mp4"
    src = start_source(str(missing), "missing", SourceSettings(), event_log)
    assert read_all(src, timeout_s=LIVENESS_S) == []
    src.stop()
    assert event_log.kinds() == ["failed"]
    assert "No such file" in event_log.events[0].reason
    assert src.done


def test_damaged_file_plays_to_its_end(start_source, face_clip, tmp_path, event_log):
    # Random bytes over part of the picture data: FFmpeg conceals the damage; the source must
    # neither raise nor stop early.
    data = bytearray(face_clip.read_bytes())
    start = len(data) // 3
    data[start : start + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    src = start_source(str(damaged), "damaged", SourceSettings(), event_log)
    frames = read_all(src)
    assert [f.index for f in frames] == list(range(src.stats.frames_decoded))
    assert len(frames) > N_FRAMES // 2
    assert event_log.kinds() == ["started", "ended"]


def test_file_without_video_fails(start_source, tmp_path, event_log):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    src = start_source(str(path), "audio", SourceSettings(), event_log)
    assert read_all(src, timeout_s=LIVENESS_S) == []
    assert event_log.kinds() == ["failed"]
    assert "no video stream" in event_log.events[0].reason


def test_file_applies_backpressure_instead_of_dropping(start_source, face_clip, event_log):
    src = start_source(str(face_clip), "slow", SourceSettings(queue_size=2), event_log)
    deadline = time.monotonic() + LIVENESS_S
    while src.stats.frames_decoded < 3:  # two queued, a third waiting for room
        assert time.monotonic() < deadline, "the decoder never filled the queue"
        time.sleep(0.01)
    time.sleep(0.3)  # a consumer that is not reading: the decoder must wait, not drop
    assert src.stats.frames_decoded == 3
    frames = read_all(src)
    src.stop()
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert src.stats.frames_dropped == 0


def test_live_policy_drops_oldest_and_counts(face_clip, event_log):
    # A live source over a local file decodes without pacing: a consumer that reads nothing
    # until the end must get only the newest frames, and the rest counted as dropped.
    target = SourceTarget("file", True, str(face_clip))
    src = LiveSource(target, "live", SourceSettings(queue_size=3, reconnect=False), event_log)
    src.start()
    assert event_log.wait_for("ended", timeout_s=LIVENESS_S) is not None
    frames = read_all(src)
    src.stop()
    assert [f.index for f in frames] == [N_FRAMES - 3, N_FRAMES - 2, N_FRAMES - 1]
    assert src.stats.frames_decoded == N_FRAMES
    assert src.stats.frames_dropped == N_FRAMES - 3
    assert event_log.kinds() == ["started", "ended"]
    assert event_log.events[-1].reason == "stream ended"


def test_stop_unblocks_a_full_queue_and_emits_ended_once(start_source, face_clip, event_log):
    src = start_source(str(face_clip), "stop", SourceSettings(queue_size=1), event_log)
    deadline = time.monotonic() + LIVENESS_S
    while src.stats.frames_decoded < 2:  # one frame queued, the next one waiting for room
        assert time.monotonic() < deadline, "the decoder never filled the queue"
        time.sleep(0.01)
    src.stop()
    src.stop()
    assert not src._thread.is_alive()
    assert event_log.kinds() == ["started", "ended"]
    assert event_log.events[-1].reason == "stopped"
    # What was queued stays readable, then the source is done.
    assert src.read(timeout=0) is not None
    assert src.read(timeout=0) is None
    assert src.done


def test_stop_before_start_and_start_twice(start_source, face_clip, event_log):
    never = open_source(str(face_clip), "never", SourceSettings(), event_log)
    never.stop()
    never.start()  # ignored after stop
    assert never.done
    assert event_log.kinds() == ["ended"]

    twice = start_source(str(face_clip), "twice", SourceSettings(), lambda e: None)
    twice.start()
    assert len(read_all(twice)) == N_FRAMES
    twice.stop()


def test_raising_callback_is_not_fatal(start_source, face_clip):
    calls = []

    def explode(event: StreamEvent) -> None:
        calls.append(event.kind)
        raise RuntimeError("subscriber bug")

    src = start_source(str(face_clip), "cb", SourceSettings(), explode)
    assert len(read_all(src)) == N_FRAMES
    src.stop()
    assert calls == ["started", "ended"]


# ---- HTTP and HLS (a local web server) --------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def remux(src: Path, dst: Path, **open_kwargs) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w", **open_kwargs) as out:
        video = inp.streams.video[0]
        copy = out.add_stream_from_template(video)
        for packet in inp.demux(video):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)


@pytest.fixture
def web_dir(tmp_path, face_clip):
    """``face_clip`` as a plain file and as a 1-second-segment HLS VOD playlist, served over
    HTTP on 127.0.0.1; yields the base URL."""
    # moov first: the test server ignores Range requests, so the client cannot seek.
    remux(face_clip, tmp_path / "clip.mp4", options={"movflags": "+faststart"})
    remux(face_clip, tmp_path / "index.m3u8", format="hls", options={"hls_time": "1", "hls_playlist_type": "vod"})
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_media_file_is_a_file_source(web_dir, event_log):
    src = open_source(f"{web_dir}/clip.mp4", "web", SourceSettings(), event_log)
    assert isinstance(src, FileSource)
    src.start()
    frames = read_all(src)
    src.stop()
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert event_log.kinds() == ["started", "ended"]


def test_hls_playlist_is_live(web_dir, event_log):
    # A VOD playlist ends; with reconnect=False the live source then ends instead of looping.
    src = open_source(f"{web_dir}/index.m3u8", "hls", SourceSettings(reconnect=False), event_log)
    assert isinstance(src, LiveSource)
    src.start()
    frames = read_all(src)
    src.stop()
    assert frames and frames[0].size_wh == CLIP_SIZE_WH
    assert all(b.index > a.index for a, b in itertools.pairwise(frames))
    # Live: nothing blocks the decoder; whatever the reader missed was counted as dropped.
    assert src.stats.frames_decoded == N_FRAMES
    assert len(frames) + src.stats.frames_dropped == N_FRAMES
    assert event_log.kinds() == ["started", "ended"]


def test_http_not_found_fails(start_source, web_dir, event_log):
    src = start_source(f"{web_dir}/missing.mp4", "404", SourceSettings(), event_log)
    assert read_all(src, timeout_s=LIVENESS_S) == []
    assert event_log.kinds() == ["failed"]
    assert "404" in event_log.events[0].reason


# ---- URIs, settings, events ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "kind", "live", "url", "fmt"),
    [
        ("rtsp://10.0.0.5:554/live", "rtsp", True, None, None),
        ("RTSPS://cam.example/a", "rtsp", True, None, None),
        ("https://cdn.example/live/index.m3u8?token=1", "hls", True, None, None),
        ("http://cam.example/video.mjpg", "http", True, None, None),
        ("http://cam.example/stream", "http", True, None, None),
        ("https://files.example/clip.MP4", "http", False, None, None),
        ("rtmp://server/app/key", "network", True, None, None),
        ("srt://host:9000", "network", True, None, None),
        ("/dev/video0", "v4l2", True, None, "v4l2"),
        ("v4l2:///dev/video2", "v4l2", True, "/dev/video2", "v4l2"),
        ("/data/clip.mp4", "file", False, None, None),
        ("clip.mkv", "file", False, None, None),
        ("file:///data/clip.mp4", "file", False, None, None),
        ("/dev/videox", "file", False, None, None),
    ],
)
def test_classify_uri(uri, kind, live, url, fmt):
    target = classify_uri(uri)
    assert (target.kind, target.live, target.url, target.format) == (kind, live, url or uri, fmt)


def test_classify_uri_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        classify_uri("")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
        ("rtsp://admin@10.0.0.5/live", "rtsp://admin@10.0.0.5/live"),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("/data/a@b.mp4", "/data/a@b.mp4"),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


def test_events_never_carry_a_password(start_source, event_log):
    src = start_source("rtsp://admin:s3cret@127.0.0.1:9/x", "pw", SourceSettings(reconnect=False), event_log)
    assert event_log.wait_for("failed", timeout_s=LIVENESS_S) is not None
    src.stop()
    assert "s3cret" not in repr(event_log.events) and "s3cret" not in repr(src)
    assert event_log.events[-1].details["uri"] == "rtsp://admin:***@127.0.0.1:9/x"


def test_settings_defaults_validation_and_docs():
    s = SourceSettings()
    assert (s.rtsp_transport, s.open_timeout_s, s.queue_size, s.max_reconnects) == ("tcp", 5.0, 4, None)
    for name, field in SourceSettings.model_fields.items():
        assert field.description, f"SourceSettings.{name} has no docstring"
    with pytest.raises(pydantic.ValidationError, match="extra"):
        SourceSettings(rtsp_tranport="tcp")
    with pytest.raises(pydantic.ValidationError, match="backoff_max_s"):
        SourceSettings(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(pydantic.ValidationError, match="queue_size"):
        SourceSettings(queue_size=0)
    with pytest.raises(pydantic.ValidationError, match="rtsp_transport"):
        SourceSettings(rtsp_transport="http")
    with pytest.raises(pydantic.ValidationError):
        s.queue_size = 8  # frozen


@pytest.mark.parametrize(
    ("kind", "reason", "error"),
    [
        ("started", None, None),
        ("ended", "stopped", None),
        ("failed", None, "needs a reason"),
        ("reconnecting", "", "needs a reason"),
        ("paused", "x", "must be one of"),
    ],
)
def test_stream_event_checks_itself(kind, reason, error):
    if error is None:
        assert StreamEvent("s", kind, 1.0, reason).kind == kind
    else:
        with pytest.raises(ValueError, match=error):
            StreamEvent("s", kind, 1.0, reason)


# ---- backoff ---------------------------------------------------------------------------------


def test_backoff_schedule_doubles_and_caps():
    assert [backoff_delay(n, 0.5, 30.0, 0.0, 0.9) for n in range(1, 10)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
    ]
    assert backoff_delay(10_000, 0.5, 30.0, 0.0, 0.0) == 30.0  # no float overflow
    assert backoff_delay(2, 0.5, 30.0, 0.25, 0.0) == pytest.approx(0.75)
    assert backoff_delay(2, 0.5, 30.0, 0.25, 0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(0, 0.5, 30.0, 0.25, 0.5)


def test_backoff_with_seeded_rng_is_deterministic_and_bounded():
    a = Backoff(0.5, 30.0, 0.25, rng=random.Random(42))
    b = Backoff(0.5, 30.0, 0.25, rng=random.Random(42))
    schedule = [a.delay(n) for n in range(1, 12)]
    assert schedule == [b.delay(n) for n in range(1, 12)]
    # Pinned: the same seed must give the same schedule across releases.
    assert [round(d, 4) for d in schedule[:7]] == [0.5349, 0.7625, 1.775, 3.4464, 8.9459, 17.4136, 35.8827]
    for n, d in enumerate(schedule, start=1):
        base = min(30.0, 0.5 * 2 ** (n - 1))
        assert 0.75 * base <= d <= 1.25 * base
    assert len(set(schedule[7:])) == len(schedule[7:]), "capped delays must still be jittered"


def test_source_rejects_empty_stream_id(face_clip):
    with pytest.raises(ValueError, match="stream_id"):
        open_source(str(face_clip), "", SourceSettings(), lambda e: None)
