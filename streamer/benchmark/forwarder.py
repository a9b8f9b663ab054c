"""How many messages per second the cluster's forwarder passes: a worker's publishing stack
(``FencedPublisher`` over ``ZmqPublisher``, connecting) -> ``Forwarder`` (fence, ``seq``,
state board) -> one subscriber, all in this process, on this machine (docs/deployment.md).

    $ python -m streamer.benchmark.forwarder --messages 20000 --faces 4
"""

from __future__ import annotations

import argparse
import time

import zmq

from configs.streamer import PublisherSettings
from streamer.cluster.fencing import FencedPublisher
from streamer.cluster.forwarder import Forwarder
from streamer.output.publisher import ZmqPublisher
from streamer.output.state import StateBoard

CLASSES = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]


def faces_message(i: int, sid: str, faces: int) -> dict:
    face = {
        "bbox_xyxy": [412.0, 110.5, 466.2, 163.0],
        "det_score": 0.93,
        "label": "happiness",
        "score": 0.61,
        "probs": [0.58, 0.1, 0.12, 0.05, 0.08, 0.03, 0.04],
        "smoothed_probs": [0.61, 0.09, 0.11, 0.05, 0.07, 0.03, 0.04],
        "track_age": 40,
        "scored_frame_index": 36,
    }
    return {
        "schema_version": 1,
        "type": "faces",
        "stream_id": sid,
        "frame_index": i,
        "pts_s": i / 30,
        "wall_time_s": time.time(),
        "latency_ms": 12.4,
        "engine": "01b57fcc2e43",
        "classes": CLASSES,
        "size_wh": [1280, 720],
        "faces": [dict(face, track_id=k) for k in range(faces)],
    }


def subscribed(fwd: Forwarder) -> tuple[zmq.Context, zmq.Socket]:
    """A subscriber to everything ``fwd`` publishes (no receive limit), once its
    subscription has reached the forwarder."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(fwd.publish_endpoint)
    while fwd.stats.subscriptions < 1:
        time.sleep(0.01)
    return ctx, sub


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--faces", type=int, default=4, help="faces per message")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--encoding", choices=["json", "msgpack"], default="json")
    args = ap.parse_args()
    n = args.messages
    fwd = Forwarder("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", observer=StateBoard().apply, sndhwm=n + 10)
    ctx, sub = subscribed(fwd)
    settings = PublisherSettings(
        endpoint=fwd.ingest_endpoint,
        bind=False,
        wait_subscribers=1,
        settle_s=30,
        queue_size=n + 10,
        sndhwm=n + 10,
        encoding=args.encoding,
    )
    pub = FencedPublisher(ZmqPublisher(settings))
    sids = [f"cam{s}" for s in range(args.streams)]
    for sid in sids:
        fwd.call(lambda sid=sid: fwd.set_epoch(sid, 1))
    keys = [pub.hold(sid, 1) for sid in sids]  # a worker's pipeline instances are named so
    msgs = [faces_message(i, keys[i % len(keys)], args.faces) for i in range(n)]
    t0 = time.perf_counter()
    for msg in msgs:
        pub.send(f"faces.{msg['stream_id']}", msg)
    for _ in range(n):
        sub.recv_multipart()
    dt = time.perf_counter() - t0
    print(
        f"{n} faces messages ({args.faces} faces, {args.encoding}) worker -> forwarder -> subscriber in {dt:.2f} s: "
        f"{n / dt:,.0f} messages/s (forwarded {fwd.stats.forwarded}, fenced {fwd.stats.fenced})"
    )
    pub.close()
    sub.close(0)
    ctx.term()
    fwd.close()


if __name__ == "__main__":
    main()
