"""``streamer subscribe``: print what a streamer publishes, as readable lines or raw JSON;
with ``--state SNAPSHOT_ENDPOINT`` first the whole current state (late joiners), then only
newer updates. Built on the light client (``streamer.client``): it imports neither torch,
numpy nor the engine, so it starts in a fraction of a second. ``--server-key`` and
``--client-key`` subscribe to a CurveZMQ-secured streamer (docs/operations.md).

Example (plain text)::

    $ streamer subscribe tcp://127.0.0.1:5556 --stream cam0
    faces  cam0 #42 t=1.40s 2 face(s) 18.2ms | 1 happiness 0.61 [100,80,180,170] | 2 neutral 0.44 [...]
    event  cam0 track 3 ended at frame 57 (age 57)
    event  cam0 episode 2 of track 1: surprise ended at 13.90s (1.50 s, peak 0.82): dropped
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import zmq

from configs.core.errors import ConfigError
from streamer.client import StateSubscriber, Subscriber


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
            if f.get("abstain"):
                label = f"({f['abstain']})"
            else:
                label = f"{f['label']} {f['score']:.2f}" if f["label"] is not None else "(not scored yet)"
            faces.append(f"{f['track_id']} {label} [{box}]")
        return f"{head} {len(faces)} face(s) {msg['latency_ms']:.1f}ms" + "".join(f" | {x}" for x in faces)
    if msg.get("scope") == "track":
        extra = f" (age {msg['track_age']})" if msg["kind"] == "ended" else ""
        if msg["kind"] == "relinked":
            extra = f" (continues track {msg['relinked_from']})"
        return f"event  {sid} track {msg['track_id']} {msg['kind']} at frame {msg['frame_index']}{extra}"
    if msg.get("scope") == "episode":
        head = f"event  {sid} episode {msg['episode_id']} of track {msg['track_id']}: {msg['label']}"
        if msg["kind"] == "started":
            return f"{head} started at {msg['onset_s']:.2f}s"
        return (
            f"{head} ended at {msg['offset_s']:.2f}s ({msg['duration_s']:.2f} s, peak {msg['peak_score']:.2f}):"
            f" {msg['reason']}"
        )
    if msg.get("scope") == "engine":
        return f"event  {sid} engine changed to {msg['engine']}: {', '.join(msg['classes'])}"
    reason = f": {msg['reason']}" if msg.get("reason") else ""
    return f"event  {sid} stream {msg.get('kind')}{reason}"


def format_state(state: dict[str, Any]) -> str:
    """Readable lines for a state snapshot: each stream and its tracks."""
    lines = [f"state  engine {state['engine']} ({len(state['classes'] or [])} classes)"]
    for sid, st in sorted(state["streams"].items()):
        details = (st.get("started") or {}).get("details", {})
        size = "x".join(str(v) for v in details.get("size_wh") or [])
        lines.append(f"state  {sid} {details.get('codec', '?')} {size} {len(st['tracks'])} track(s)")
        for tid, tr in sorted(st["tracks"].items(), key=lambda kv: int(kv[0])):
            face = tr.get("face") or {}
            label = face.get("abstain") or (f"{face['label']} {face['score']:.2f}" if face.get("label") else "-")
            ep = tr.get("episode")
            lines.append(f"state  {sid} track {tid} {label}" + (f" | episode: {ep['label']}" if ep else ""))
    return "\n".join(lines)


def _keys(args: argparse.Namespace) -> dict[str, Any]:
    if (args.server_key is None) != (args.client_key is None):
        raise ConfigError("--server-key and --client-key go together (CurveZMQ)")
    return {"server_key": args.server_key, "client_key": args.client_key}


def _state_command(args: argparse.Namespace) -> int:
    with StateSubscriber(args.endpoint, args.state, args.stream, **_keys(args)) as sub:
        state = sub.state
        print(json.dumps(state) if args.raw else format_state(state), flush=True)
        received = 0
        for topic, msg in sub.updates(timeout_s=args.idle_timeout or None):
            print(json.dumps(msg) if args.raw else format_message(topic, msg), flush=True)
            received += 1
            if args.count and received >= args.count:
                break
        restarts = f", {sub.resyncs} publisher restart(s) (state re-synchronised)" if sub.resyncs else ""
        print(f"received {received} update(s) after the state, {sub.gaps} missed (seq gaps){restarts}", file=sys.stderr)
    return 0


def subscribe_command(args: argparse.Namespace) -> int:
    if args.state:
        return _state_command(args)
    kinds = ["faces", "events"] if args.topics == "all" else [args.topics]
    try:
        sub = Subscriber(args.endpoint, args.stream, kinds, bind=args.bind, **_keys(args))
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
    restarts = f", {sub.restarts} publisher restart(s)" if sub.restarts else ""
    print(f"received {sub.received} message(s), {sub.missed} missed (seq gaps){restarts}", file=sys.stderr)
    return 0
