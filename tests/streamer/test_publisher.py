"""Publisher over real ZeroMQ sockets and the message schemas."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq

from configs.core.errors import ConfigError
from configs.streamer import PublisherSettings
from streamer.frames import Frame, FrameImage
from streamer.output.messages import MessageContext, faces_message, stream_event_message, track_event_message
from streamer.output.publisher import ZmqPublisher, decode
from streamer.values import FaceResult, StreamEvent, TrackEvent, Tracks
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


def _publisher(endpoint: str, **settings) -> ZmqPublisher:
    """A publisher that starts only once one subscription has arrived (no sleeping)."""
    return ZmqPublisher(PublisherSettings(endpoint=endpoint, wait_subscribers=1, settle_s=60, **settings))


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_roundtrip_multipart_topic_payload(encoding):
    endpoint = free_endpoint()
    ctx = zmq.Context()
    sub = _sub(ctx, endpoint)  # connects first; ZeroMQ retries until the publisher binds
    pub = _publisher(endpoint, encoding=encoding)
    try:
        assert pub.subscriptions == 1
        for i in range(3):
            assert pub.send("faces.cam0", {"i": i})
        got = []
        while len(got) < 3 and sub.poll(30_000):
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


def test_json_never_carries_nan_or_infinity():
    endpoint = free_endpoint()
    ctx = zmq.Context()
    sub = _sub(ctx, endpoint)
    pub = _publisher(endpoint)
    try:
        assert pub.send("faces.cam0", {"probs": [float("nan"), 0.5]})  # queued, then refused by the encoder
        assert pub.send("faces.cam0", {"probs": [0.5, 0.5]})
        got = [sub.recv_multipart()] if sub.poll(30_000) else []
    finally:
        pub.close()
        sub.close(0)
        ctx.term()
    assert [decode(p)["probs"] for _, p in got] == [[0.5, 0.5]]
    assert pub.stats.dropped_socket == 1 and pub.stats.sent == 1


def test_bind_failure_is_reported_with_the_endpoint():
    endpoint = free_endpoint()
    first = ZmqPublisher(PublisherSettings(endpoint=endpoint, settle_s=0))
    try:
        with pytest.raises(ConfigError, match=r"publisher\.endpoint"):
            ZmqPublisher(PublisherSettings(endpoint=endpoint, settle_s=0))
    finally:
        first.close()


def test_a_subscriber_that_never_reads_does_not_block_send():
    endpoint = free_endpoint()
    ctx = zmq.Context()
    stuck = _sub(ctx, endpoint, RCVHWM=10, RCVBUF=4096)
    pub = _publisher(endpoint, sndhwm=10, queue_size=64, linger_ms=0)
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
    assert pub.stats.sent + pub.stats.dropped == n
    assert accepted == n - pub.stats.dropped_queue
    assert 0 < received < n  # it was subscribed, and ZeroMQ dropped past the high-water marks


def test_one_copy_of_the_schemas_and_the_docs_link_to_it():
    from tests.streamer.helpers import ROOT

    assert not (ROOT / "docs" / "schemas").exists()
    text = (ROOT / "docs" / "messages.md").read_text()
    for name in ("faces.v1.json", "events.v1.json"):
        assert (ROOT / "streamer" / "schemas" / name).is_file()
        assert f"../streamer/schemas/{name}" in text


def test_subscriber_example_in_the_docs_runs(capsys):
    """The few-line subscriber of docs/messages.md, run against a real publisher."""
    import threading

    from tests.streamer.helpers import ROOT

    text = (ROOT / "docs" / "messages.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    endpoint = free_endpoint()
    code = code.replace("tcp://127.0.0.1:5556", endpoint).replace("while True:", "for _ in range(1):")
    pubs = []

    def feed():  # binds, waits for the example's subscription, then sends one message
        pubs.append(_publisher(endpoint))
        pubs[0].send("faces.cam0", sample_faces_message(1))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        exec(compile(code, "docs/messages.md", "exec"), {})
    finally:
        feeder.join(60)
        for pub in pubs:
            pub.close()
    assert capsys.readouterr().out.strip() == "cam0 7 1 happiness 0.7"
