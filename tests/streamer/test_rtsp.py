"""Live sources against a real RTSP server (GStreamer), killed, frozen and restarted."""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest

from configs.sources import SourceSettings
from streamer.sources import LiveSource
from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS, CLIP_SIZE_WH
from tests.streamer.helpers import LIVENESS_S

N_FRAMES = round(CLIP_SECONDS * CLIP_FPS)
# Short waits so outages resolve within a test's budget; real deployments keep the defaults.
# A queue long enough that a reader slowed down by a busy machine never loses frames here.
FAST = {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, "open_timeout_s": 3.0, "read_timeout_s": 2.0, "queue_size": 64}


def read_n(source, n: int, timeout_s: float = LIVENESS_S) -> list:
    """``n`` frames from ``source`` (fails the test past ``timeout_s``)."""
    frames = []
    deadline = time.monotonic() + timeout_s
    while len(frames) < n:
        assert time.monotonic() < deadline, f"got {len(frames)} of {n} frames in {timeout_s} s"
        frame = source.read(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    return frames


def assert_increasing(frames) -> None:
    indexes = [f.index for f in frames]
    assert all(b > a for a, b in itertools.pairwise(indexes)), indexes
    pts = [f.pts_s for f in frames if f.pts_s is not None]
    assert len(pts) >= len(frames) - 1  # only the very first RTSP frame may lack a pts
    assert all(b >= a for a, b in itertools.pairwise(pts)), pts


@pytest.mark.rtsp
def test_rtsp_frames_arrive_and_stop_is_clean(start_source, rtsp_server, event_log):
    src = start_source(rtsp_server.url, "cam", SourceSettings(**FAST), event_log)
    assert isinstance(src, LiveSource) and src.live
    frames = read_n(src, 20)
    assert [f.index for f in frames] == list(range(20))
    assert_increasing(frames)
    assert frames[0].size_wh == CLIP_SIZE_WH
    assert frames[0].image.format == "yuv420p"
    assert frames[0].image.region_rgb(100, 100, 200, 180).shape == (80, 100, 3)
    assert all(f.stream_id == "cam" for f in frames)

    src.stop()
    assert not src._thread.is_alive()
    assert event_log.kinds() == ["started", "ended"]
    started, ended = event_log.events
    assert started.details["codec"] == "h264" and started.details["uri"] == rtsp_server.url
    assert ended.reason == "stopped"
    assert src.stats.reconnects == 0 and src.stats.frames_decoded >= 20
    # A stopped live source drains what it queued and is then done.
    while src.read(timeout=0) is not None:
        pass
    assert src.done


@pytest.mark.rtsp
def test_rtsp_normal_end_of_stream_counts_as_disconnect(start_source, rtsp_server, face_clip, event_log):
    # Without --loop the server plays the clip once per client; PyAV then ends the demux loop
    # without an error. A live source must reconnect, and the server plays it again.
    once = rtsp_server(face_clip, loop=False)
    src = start_source(once.url, "once", SourceSettings(**FAST), event_log)
    frames = read_n(src, N_FRAMES + 10, timeout_s=LIVENESS_S)
    src.stop()
    assert_increasing(frames[:N_FRAMES])
    assert [f.index for f in frames] == list(range(N_FRAMES + 10))
    reconnecting = event_log.of_kind("reconnecting")
    assert reconnecting and reconnecting[0].reason == "stream ended"
    assert reconnecting[0].details["attempt"] == 1
    assert event_log.of_kind("resumed"), event_log.kinds()
    assert event_log.kinds()[-1] == "ended"


@pytest.mark.rtsp
@pytest.mark.slow
def test_rtsp_server_killed_and_restarted(start_source, rtsp_server, event_log):
    src = start_source(rtsp_server.url, "door", SourceSettings(**FAST), event_log)
    before = read_n(src, 10)

    n_events = len(event_log.events)
    rtsp_server.kill()
    first = event_log.wait_for("reconnecting", timeout_s=LIVENESS_S, after=n_events)
    assert first is not None, event_log.kinds()
    assert first.details["attempt"] == 1 and first.details["delay_s"] > 0
    # While the server is down every attempt fails and backs off.
    assert event_log.wait_for("reconnecting", timeout_s=LIVENESS_S, after=event_log.events.index(first) + 1)
    assert event_log.of_kind("resumed") == []

    rtsp_server.start()  # same port
    resumed = event_log.wait_for("resumed", timeout_s=LIVENESS_S)
    assert resumed is not None, event_log.kinds()
    assert resumed.details["attempts"] >= 2 and resumed.details["downtime_s"] > 0
    while src.read(timeout=0) is not None:  # frames from before the outage
        pass
    after = read_n(src, 10)
    # Decoded from the restarted server, numbered on from before the outage.
    assert all(f.wall_time_s >= resumed.wall_time_s for f in after)
    assert after[0].index > before[-1].index
    assert_increasing(after)

    src.stop()
    kinds = event_log.kinds()
    assert kinds[0] == "started" and kinds[-1] == "ended"
    assert kinds.count("started") == 1 and kinds.count("ended") == 1 and "failed" not in kinds
    assert src.stats.reconnects == len(event_log.of_kind("reconnecting")) >= 2
    assert not src._thread.is_alive()


@pytest.mark.rtsp
@pytest.mark.slow
def test_rtsp_frozen_server_hits_read_timeout(start_source, rtsp_server, event_log):
    settings = SourceSettings(**{**FAST, "read_timeout_s": 1.0})
    src = start_source(rtsp_server.url, "frozen", settings, event_log)
    read_n(src, 5)
    rtsp_server.pause()  # TCP stays open, nothing arrives
    try:
        reconnecting = event_log.wait_for("reconnecting", timeout_s=LIVENESS_S)
        assert reconnecting is not None, event_log.kinds()
        assert reconnecting.reason != "stream ended"  # a timeout error, not a clean end
    finally:
        rtsp_server.resume()
    assert event_log.wait_for("resumed", timeout_s=LIVENESS_S) is not None, event_log.kinds()
    read_n(src, 5)
    src.stop()
    assert event_log.kinds()[-1] == "ended"


# ---- no server needed -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dead_rtsp_url_fails_after_max_reconnects(start_source, event_log):
    url = f"rtsp://127.0.0.1:{free_port()}/test"
    settings = SourceSettings(**{**FAST, "max_reconnects": 2})
    src = start_source(url, "dead", settings, event_log)
    assert event_log.wait_for("failed", timeout_s=LIVENESS_S) is not None, event_log.kinds()
    src.stop()
    assert event_log.kinds() == ["reconnecting", "reconnecting", "failed"]
    assert [e.details["attempt"] for e in event_log.of_kind("reconnecting")] == [1, 2]
    assert all("Connection refused" in e.reason for e in event_log.events)
    assert "gave up after 2" in event_log.events[-1].reason
    assert src.done and src.stats.reconnects == 2 and src.stats.frames_decoded == 0


def test_dead_rtsp_url_without_reconnect_fails_at_once(start_source, event_log):
    url = f"rtsp://127.0.0.1:{free_port()}/test"
    src = start_source(url, "dead", SourceSettings(**{**FAST, "reconnect": False}), event_log)
    assert event_log.wait_for("failed", timeout_s=LIVENESS_S) is not None
    src.stop()
    assert event_log.kinds() == ["failed"]
    assert src.done


@pytest.fixture
def silent_url():
    """An RTSP URL whose peer accepts TCP connections and never says a word."""
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(conn)

        threading.Thread(target=accept, daemon=True).start()
        yield f"rtsp://127.0.0.1:{listener.getsockname()[1]}/test"
        for conn in accepted:
            conn.close()


def test_silent_server_hits_open_timeout(start_source, silent_url, event_log):
    settings = SourceSettings(**{**FAST, "open_timeout_s": 0.5, "read_timeout_s": 0.5, "max_reconnects": 1})
    src = start_source(silent_url, "silent", settings, event_log)
    assert event_log.wait_for("failed", timeout_s=LIVENESS_S) is not None, event_log.kinds()
    src.stop()
    assert event_log.kinds() == ["reconnecting", "failed"]
    assert all(e.reason != "stream ended" for e in event_log.events)
    assert src.done


def test_stop_while_connecting_to_a_silent_server(start_source, silent_url, event_log):
    settings = SourceSettings(**{**FAST, "open_timeout_s": 1.5, "read_timeout_s": 1.5})
    src = start_source(silent_url, "stuck", settings, event_log)
    time.sleep(0.3)  # inside av.open, waiting for an answer
    src.stop()
    assert not src._thread.is_alive()
    assert event_log.kinds() == ["ended"]
    assert event_log.events[0].reason == "stopped"
    assert src.done
