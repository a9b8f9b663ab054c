"""Assignment epochs and cluster-wide track ids (light: no numpy, no torch; the driver,
the forwarder and the workers share it).

The driver hands each assignment of a stream to a worker a new epoch (1, 2, ... per stream);
every message a worker publishes carries its ``epoch``. Track ids stay schema version 1
integers and unique per stream across workers and moves: ``cluster_track_id(epoch, local)``
= ``(epoch - 1) * 2**32 + local``, so epoch 1 keeps the tracker's own ids (as in one
process) and ids stay below 2**53 (exact in JavaScript) for two million moves of a stream.

On a worker, each assignment runs as its own pipeline instance under ``instance_key(stream,
epoch)`` (``cam0@2``: ``@`` is never part of a stream id), so every message names the
instance that produced it, and the worker's fence (``streamer.cluster.fencing``) stamps it
with that instance's epoch, never with whatever epoch the stream holds when it is sent.

Example:
    >>> cluster_track_id(1, 7), cluster_track_id(3, 7), split_track_id(cluster_track_id(3, 7))
    (7, 8589934599, (3, 7))
    >>> msg = {"type": "faces", "stream_id": "cam0", "faces": [{"track_id": 4, "relinked_from": 2}]}
    >>> stamp(msg, 2)["faces"], msg["epoch"]
    ([{'track_id': 4294967300, 'relinked_from': 4294967298}], 2)
    >>> instance_key("cam0", 2), split_instance_key("cam0@2"), split_instance_key("cam0")
    ('cam0@2', ('cam0', 2), None)
"""

from __future__ import annotations

from typing import Any

TRACK_ID_STRIDE = 1 << 32
"""Track ids of epoch ``e`` start at ``(e - 1) * TRACK_ID_STRIDE``."""


def cluster_track_id(epoch: int, local_id: int) -> int:
    """A tracker's per-stream id made unique across the stream's epochs."""
    if epoch < 1 or not 0 <= local_id < TRACK_ID_STRIDE:
        raise ValueError(f"epoch {epoch} must be >= 1 and track id {local_id} in [0, 2**32)")
    return (epoch - 1) * TRACK_ID_STRIDE + local_id


def split_track_id(track_id: int) -> tuple[int, int]:
    """``(epoch, tracker's id)`` of a cluster track id."""
    return track_id // TRACK_ID_STRIDE + 1, track_id % TRACK_ID_STRIDE


INSTANCE_SEP = "@"
"""Between the stream id and the epoch in a worker's pipeline instance key."""


def instance_key(stream_id: str, epoch: int) -> str:
    """The pipeline stream id a worker runs ``epoch`` of ``stream_id`` under."""
    return f"{stream_id}{INSTANCE_SEP}{epoch}"


def split_instance_key(key: str) -> tuple[str, int] | None:
    """``(stream id, epoch)`` of an instance key; None for anything else."""
    sid, sep, epoch = key.rpartition(INSTANCE_SEP)
    if not sep or not sid or not epoch.isdigit():
        return None
    return sid, int(epoch)


def stamp(msg: dict[str, Any], epoch: int) -> dict[str, Any]:
    """Add ``epoch`` to a message and make its track ids cluster-wide (in place)."""
    msg["epoch"] = epoch
    for holder in (msg, *msg.get("faces", ())):
        for key in ("track_id", "relinked_from"):
            if isinstance(holder.get(key), int):
                holder[key] = cluster_track_id(epoch, holder[key])
    return msg


def is_terminal(msg: dict[str, Any]) -> bool:
    """A stream's last message: its ``ended`` or ``failed`` stream event."""
    return msg.get("type") == "event" and msg.get("scope") == "stream" and msg.get("kind") in ("ended", "failed")
