"""A publisher that restarts begins its ``seq`` again under a new ``run``: subscribers must
tell that from duplicates. A ``StateSubscriber`` re-reads the state from the new run's
snapshot and goes on (before ``run`` existed it dropped every new message as already held,
and went silent); a plain ``Subscriber`` counts the restart instead of a gap."""

from __future__ import annotations

import time

from configs import load_settings
from streamer.client import StateSubscriber, Subscriber
from streamer.output.messages import MessageContext, stream_event_message
from streamer.service.outlets import Outlets
from streamer.values import StreamEvent
from tests.streamer.helpers import LIVENESS_S, free_endpoint, validators

CTX = MessageContext("0123456789ab", ["happiness", "sadness", "neutral"])
HELD = 1000
"""Messages the first run publishes: the second run stays far below this seq in the test."""


def _event(kind: str, reason: str | None = None) -> dict:
    return stream_event_message(StreamEvent("cam0", kind, time.time(), reason), CTX)


def _publisher(settings):
    outlets = Outlets(settings)
    pub = outlets.publish()
    outlets.serve_snapshot()
    return outlets, pub


def _until_received(pub, receive) -> tuple[str, dict]:
    """Publish discontinuities until ``receive()`` returns one (the subscription takes a
    moment to reach a restarted publisher); bounded by ``LIVENESS_S``."""
    deadline = time.monotonic() + LIVENESS_S
    while time.monotonic() < deadline:
        pub.send("events.cam0", _event("discontinuity", "test"))
        got = receive()
        if got is not None:
            return got
    raise AssertionError("nothing received from the restarted publisher")


def test_a_state_subscriber_resyncs_after_the_publisher_restarts():
    endpoint, snap_endpoint = free_endpoint(), free_endpoint()
    settings = load_settings(
        None,
        [
            f"publisher.endpoint={endpoint}",
            f"snapshot.endpoint={snap_endpoint}",
            "publisher.settle_s=0",
            f"publisher.queue_size={4 * HELD}",  # the first run's burst is queued whole, never dropped
        ],
    )
    first, pub = _publisher(settings)
    pub.send("events.cam0", _event("started"))
    for _ in range(HELD):
        pub.send("events.cam0", _event("discontinuity", "before"))
    deadline = time.monotonic() + LIVENESS_S
    while first.board.seq("events.cam0") != HELD:  # the publisher thread applies as it sends
        assert time.monotonic() < deadline, f"the first run's burst was not sent: {first.board.seq('events.cam0')}"
        time.sleep(0.01)
    old_run = first.board.run
    plain = Subscriber(endpoint, ["cam0"], ["events"])
    sub = StateSubscriber(endpoint, snap_endpoint, ["cam0"], join_timeout_s=0.2)
    try:
        assert sub.state["run"] == old_run and sub.state["seq"]["events.cam0"] >= HELD
        _until_received(pub, lambda: plain.recv(0.05))
        assert plain.run == old_run
        first.close()  # the publisher restarts: same endpoints, a new run, seq from 0

        second, pub = _publisher(settings)
        try:
            pub.send("events.cam0", _event("started"))

            def from_second_run() -> tuple[str, dict] | None:
                for got in sub.updates(timeout_s=0.05):  # the first run's last ones may still queue
                    if got[1]["run"] != old_run:
                        return got
                return None

            _, msg = _until_received(pub, from_second_run)
            assert msg["run"] == second.board.run != old_run
            assert msg["seq"] < HELD, "the second run's seq starts again"
            assert sub.resyncs == 1 and sub.state["run"] == msg["run"]
            assert sub.state["streams"]["cam0"]["last_event"]["seq"] == msg["seq"]
            _until_received(pub, lambda: got if (got := plain.recv(0.05)) and got[1]["run"] != old_run else None)
            assert plain.restarts == 1 and plain.run == msg["run"]
            errors = [e.message for e in validators()["events"].iter_errors(msg)]
            assert not errors, errors
        finally:
            second.close()
    finally:
        sub.close()
        plain.close()
