"""``streamer run rtsp://...`` end to end: the camera (a real GStreamer RTSP server) is
killed and restarted mid-run; reconnecting/resumed events go out on events.<id> and the
streamer carries on publishing. Cameras behind a password: a refused login fails at once,
and no password reaches a log line, an event or a message."""

from __future__ import annotations

import signal
import socket

import pytest

from configs.core.errors import ExitCode
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

FAST_RECONNECT = [
    "--set",
    "sources.backoff_initial_s=0.1",
    "--set",
    "sources.backoff_max_s=0.5",
    "--set",
    "sources.open_timeout_s=3",
    "--set",
    "sources.read_timeout_s=2",
]


@pytest.mark.rtsp
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_camera_killed_and_restarted_mid_run(rtsp_server):
    endpoint = free_endpoint()
    col = Collector(endpoint)
    proc = start_streamer(
        "run",
        f"door={rtsp_server.url}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *FAST_RECONNECT,
        "--set",
        f"publisher.endpoint={endpoint}",
    )
    kinds = lambda: [e["kind"] for e in col.of("events.door") if e["scope"] == "stream"]  # noqa: E731
    try:
        wait_for(lambda: len(col.of("faces.door")) >= 10, LIVENESS_S, "faces before the outage")
        rtsp_server.kill()
        wait_for(lambda: "reconnecting" in kinds(), LIVENESS_S, "a reconnecting event")
        before = len(col.of("faces.door"))
        rtsp_server.start()
        wait_for(lambda: "resumed" in kinds(), LIVENESS_S, "a resumed event")
        wait_for(lambda: len(col.of("faces.door")) >= before + 10, LIVENESS_S, "faces after the outage")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    col.close()
    assert proc.returncode == 0, err[-3000:]
    k = kinds()
    assert k[0] == "started" and k[-1] == "ended"
    assert k.index("reconnecting") < k.index("resumed")
    reconnecting = next(e for e in col.of("events.door") if e["kind"] == "reconnecting")
    assert reconnecting["reason"]
    faces = col.of("faces.door")
    idx = [m["frame_index"] for m in faces]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)  # the stream carried on, in order
    v = validators()
    for topic, msg in col.messages:
        assert not list(v[topic.split(".")[0]].iter_errors(msg)), msg


@pytest.mark.rtsp
@pytest.mark.timeout(900)
def test_credentials_never_reach_logs_events_or_messages(rtsp_server, tmp_path):
    """A camera with the right password, one with a wrong one (401: fails at once, not
    retried forever), and a refused port, all with passwords in their URIs, at DEBUG."""
    server = rtsp_server(loop=True, auth="user:pw-s3cr3t")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    endpoint = free_endpoint()
    col = Collector(endpoint)
    proc = start_streamer(
        "--log-level",
        "DEBUG",
        "run",
        f"cam={server.url.replace('rtsp://', 'rtsp://user:pw-s3cr3t@')}",
        f"locked={server.url.replace('rtsp://', 'rtsp://user:wrong-pw@')}",
        f"refused=rtsp://user:hunter2@127.0.0.1:{closed_port}/x",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *FAST_RECONNECT,
        "--set",
        "sources.max_reconnects=1",
        "--set",
        f"publisher.endpoint={endpoint}",
    )
    failed = lambda: {e["stream_id"] for _, e in col.messages if e.get("kind") == "failed"}  # noqa: E731
    try:
        wait_for(lambda: failed() == {"locked", "refused"}, LIVENESS_S, "two failed streams")
        wait_for(lambda: len(col.of("faces.cam")) >= 10, LIVENESS_S, "faces of the camera")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    col.close()
    assert proc.returncode == ExitCode.STREAM_FAILED, err[-3000:]
    everything = out + err + b"".join(col.raw).decode()
    for secret in ("pw-s3cr3t", "wrong-pw", "hunter2"):
        assert secret not in everything, [line for line in everything.splitlines() if secret in line][:5]
    assert "user:***@" in err
    locked = [e for e in col.of("events.locked") if e["scope"] == "stream"]
    assert [e["kind"] for e in locked] == ["failed"] and "401" in locked[0]["reason"]
    refused = [e for e in col.of("events.refused") if e["scope"] == "stream"]
    assert [e["kind"] for e in refused] == ["reconnecting", "failed"], refused
    assert "Connection refused" in refused[-1]["reason"]
