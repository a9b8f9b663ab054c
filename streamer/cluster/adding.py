"""The answer to the cluster's ``add_source``, as honest as one process's
(``streamer.service.control``): it comes once the worker's pipeline instance of the new
source opened (``"state": "running"``) or failed (refused with the reason: a missing file, a
bad URI), waiting at most ``sources.open_timeout_s`` + 5 s (then ``"state"`` is
``"starting"`` or ``"reconnecting"``). A source no worker has room for is answered at once
with ``"state": "pending"``: it starts as soon as one has.

The wait is the worker's (``StreamWorker.opened``, a Ray call); the driver waits for that
call without its lock, on a thread of its own (``streamer.net.endpoints.Later``), so its
loop (heartbeats, moves, placing), the snapshot endpoint and other control requests go on
meanwhile.

Example (plain text: needs a worker actor)::

    reply = await_open(driver.workers["w0"], "cam9", 1, wait_s=15.0)   # {"state": "running", ...}
"""

from __future__ import annotations

from typing import Any

from configs.core.errors import SourceError
from streamer.cluster.workers import WorkerSlot, error_text

OPEN_MARGIN_S = 5.0
"""How much longer than ``sources.open_timeout_s`` the worker waits for the source to open or
fail (one process's ``streamer.service.control.OPEN_MARGIN_S``; not imported: the driver
loads no pipeline)."""
ANSWER_MARGIN_S = 5.0
"""How much longer than the worker's own wait the driver waits for its answer."""


def await_open(slot: WorkerSlot, stream_id: str, epoch: int, wait_s: float) -> dict[str, Any]:
    """Wait until ``stream_id``'s instance of ``epoch`` on ``slot`` opened or failed: the
    ``add_source`` reply (SourceError, with the reason, when it failed)."""
    import ray

    reply: dict[str, Any] = {"stream": stream_id, "worker": slot.id, "epoch": epoch}
    try:
        got = ray.get(slot.actor.opened.remote(stream_id, epoch, wait_s), timeout=wait_s + ANSWER_MARGIN_S)
    except ray.exceptions.RayError as e:  # the worker went (its streams move) or did not answer
        return {**reply, "state": "starting", "reason": f"worker {slot.id}: {error_text(e)}"}
    if got["state"] == "failed":
        raise SourceError(f"add_source {stream_id}: the source failed: {got['reason']}")
    return {**reply, "state": got["state"]}
