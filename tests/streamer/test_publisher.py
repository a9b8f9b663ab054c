"""Publisher over real ZeroMQ sockets and the message schemas."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq

from streamer.base import FaceResult, TrackEvent, Tracks
from streamer.config import PublisherSettings
from streamer.frames import Frame, FrameImage
from streamer.messages import MessageContext, faces_message, stream_event_message, track_event_message
from streamer.publisher import ZmqPublisher, decode
from streamer.sources import StreamEvent
from tests.streamer.helpers import free_endpoint, validators

CTX = MessageContext("0123456789ab", ["happiness", "sadness", "neutral"])


def sample_faces_message(n_faces: int = 2, scored: bool = True) -> dict:
    frame = Frame("cam0", 7, 0.25, time.time(), FrameImage.from_bgr(np.zeros((48, 64, 3), np.uint8)))
    tracks = Tracks(
        np.arange(1, n_faces + 1, dtype=np.int64),
        np.tile(np.float32([1, 2, 30, 40]), (n_faces, 1)),
        np.full(n_faces, 0.9, np.float32),
        np.arange(n_faces, dtype=np.int64),
    )
    p = np.float32([0.7, 0.2, 0.1])
    res = FaceResult(p, p, "happiness", 0.7, 6) if scored else None
    return faces_message(frame, tracks, [res] * n_faces, CTX)


def test_messages_validate_against_the_schemas():
    v = validators()
    for msg in (sample_faces_message(), sample_faces_message(0), sample_faces_message(1, scored=False)):
        msg["seq"] = 0
        v["faces"].validate(msg)
    ev = stream_event_message(StreamEvent("cam0", "failed", time.time(), "boom", {"attempt": np.int64(2)}), CTX)
    tev = track_event_message(TrackEvent("cam0", 3, "ended", 10, age=9), CTX)
    for msg in (ev, tev):
        msg["seq"] = 0
        v["events"].validate(msg)
    assert ev["details"]["attempt"] == 2


def test_schema_rejects_a_bad_message():
    msg = sample_faces_message()
    msg["seq"] = 0
    msg["faces"][0]["probs"] = [1.5]
    assert list(validators()["faces"].iter_errors(msg))


def _sub(ctx, endpoint, **opts):
    s = ctx.socket(zmq.SUB)
    for k, v in opts.items():
        s.setsockopt(getattr(zmq, k), v)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    return s


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_roundtrip_multipart_topic_payload(encoding):
    endpoint = free_endpoint()
    pub = ZmqPublisher(PublisherSettings(endpoint=endpoint, encoding=encoding, settle_s=0.3))
    ctx = zmq.Context()
    sub = _sub(ctx, endpoint)
    time.sleep(0.3)
    try:
        for i in range(3):
            assert pub.send("faces.cam0", {"i": i})
        got = []
        while len(got) < 3 and sub.poll(3000):
            got.append(sub.recv_multipart())
    finally:
        pub.close()
        sub.close(0)
        ctx.term()
    assert [t for t, _ in got] == [b"faces.cam0"] * 3
    msgs = [decode(p) for _, p in got]
    assert [m["i"] for m in msgs] == [0, 1, 2] and [m["seq"] for m in msgs] == [0, 1, 2]
    if encoding == "msgpack":
        assert msgpack.unpackb(got[0][1]) == msgs[0]


def test_bind_failure_is_reported_with_the_endpoint():
    endpoint = free_endpoint()
    first = ZmqPublisher(PublisherSettings(endpoint=endpoint, settle_s=0))
    try:
        with pytest.raises(RuntimeError, match=r"publisher\.endpoint"):
            ZmqPublisher(PublisherSettings(endpoint=endpoint, settle_s=0))
    finally:
        first.close()


@pytest.mark.timeout(60)
def test_a_subscriber_that_never_reads_does_not_block_send():
    endpoint = free_endpoint()
    pub = ZmqPublisher(PublisherSettings(endpoint=endpoint, sndhwm=10, queue_size=64, settle_s=0, linger_ms=0))
    ctx = zmq.Context()
    stuck = _sub(ctx, endpoint, RCVHWM=10, RCVBUF=4096)
    time.sleep(0.3)
    payload = {"blob": "x" * 2000}
    n = 5000
    try:
        accepted = sum(pub.send("faces.cam0", dict(payload)) for _ in range(n))
        pub.close()  # returns: the sending thread never blocked on the stuck subscriber
        received = 0
        while stuck.poll(200):
            stuck.recv_multipart()
            received += 1
    finally:
        stuck.close(0)
        ctx.term()
    assert pub.sent + pub.dropped == n
    assert accepted == n - pub.dropped_queue
    assert received < n  # ZeroMQ dropped past the high-water marks instead of waiting


def test_docs_carry_the_same_schemas():
    from tests.streamer.helpers import ROOT, SCHEMAS

    for name in ("faces.v1.json", "events.v1.json"):
        assert (ROOT / "docs" / "schemas" / name).read_bytes() == (SCHEMAS / name).read_bytes()


def test_subscriber_example_in_the_docs_runs(capsys):
    """The few-line subscriber of docs/messages.md, run against a real publisher."""
    from tests.streamer.helpers import ROOT

    text = (ROOT / "docs" / "messages.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    endpoint = free_endpoint()
    code = code.replace("tcp://127.0.0.1:5556", endpoint).replace("while True:", "for _ in range(1):")
    pub = ZmqPublisher(PublisherSettings(endpoint=endpoint, settle_s=0))
    try:
        import threading

        def feed():
            time.sleep(0.5)
            msg = sample_faces_message(1)
            pub.send("faces.cam0", msg)

        threading.Thread(target=feed, daemon=True).start()
        exec(compile(code, "docs/messages.md", "exec"), {})
    finally:
        pub.close()
    assert capsys.readouterr().out.strip() == "cam0 7 1 happiness 0.7"
