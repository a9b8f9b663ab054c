"""``streamer subscribe``: print what a streamer publishes, as readable lines or raw JSON.

Built on the light client (``streamer.client``): it imports neither torch nor the engine,
so it starts in a fraction of a second. ``--server-key``/``--client-key`` subscribe to a
CurveZMQ-secured streamer (docs/operations.md).

Example (plain text)::

    $ streamer subscribe tcp://127.0.0.1:5556 --stream cam0
    faces  cam0 #42 t=1.40s 2 face(s) 18.2ms | 1 happiness 0.61 [100,80,180,170] | 2 neutral 0.44 [...]
    event  cam0 track 3 ended (age 57)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import zmq

from engine.errors import ConfigError
from streamer.client import Subscriber


def format_message(topic: str, msg: dict[str, Any]) -> str:
    """One readable line for a faces or events message."""
    sid = msg.get("stream_id", "?")
    if msg.get("type") == "faces":
        pts = msg.get("pts_s")
        head = (
            f"faces  {sid} #{msg['frame_index']} t={pts:.2f}s"
            if pts is not None
            else f"faces  {sid} #{msg['frame_index']}"
        )
        faces = []
        for f in msg["faces"]:
            box = ",".join(str(round(v)) for v in f["bbox_xyxy"])
            label = f"{f['label']} {f['score']:.2f}" if f["label"] is not None else "(not scored yet)"
            faces.append(f"{f['track_id']} {label} [{box}]")
        return f"{head} {len(faces)} face(s) {msg['latency_ms']:.1f}ms" + "".join(f" | {x}" for x in faces)
    if msg.get("scope") == "track":
        extra = f" (age {msg['track_age']})" if msg["kind"] == "ended" else ""
        return f"event  {sid} track {msg['track_id']} {msg['kind']} at frame {msg['frame_index']}{extra}"
    reason = f": {msg['reason']}" if msg.get("reason") else ""
    return f"event  {sid} stream {msg.get('kind')}{reason}"


def subscribe_command(args: argparse.Namespace) -> int:
    kinds = ["faces", "events"] if args.topics == "all" else [args.topics]
    if (args.server_key is None) != (args.client_key is None):
        raise ConfigError("--server-key and --client-key go together (CurveZMQ)")
    try:
        sub = Subscriber(
            args.endpoint,
            args.stream,
            kinds,
            bind=args.bind,
            server_key=args.server_key,
            client_key=args.client_key,
        )
    except zmq.ZMQError as e:
        raise ConfigError(f"endpoint {args.endpoint!r}: {e}") from e
    last_msg = time.monotonic()
    try:
        while True:
            got = sub.recv(timeout_s=0.2)
            if got is not None:
                topic, msg = got
                print(json.dumps(msg) if args.raw else format_message(topic, msg), flush=True)
                last_msg = time.monotonic()
                if args.count and sub.received >= args.count:
                    break
            elif args.idle_timeout and time.monotonic() - last_msg > args.idle_timeout:
                break
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    print(f"received {sub.received} message(s), {sub.missed} missed (seq gaps)", file=sys.stderr)
    return 0
