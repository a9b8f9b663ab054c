"""How many messages per second the cluster's forwarder passes when workers on several Ray
nodes publish at once: one publisher actor pinned to each alive node (a worker's publishing
stack, ``FencedPublisher`` over ``ZmqPublisher``, connecting to the ingest over TCP), the
``Forwarder`` (fence, ``seq``, state board) and one subscriber in this process, as on the
driver (docs/deployment.md). The single-process figure is ``streamer.benchmark.forwarder``.

    $ ray start --head ... ; ray start --address=HEAD:6379 ...
    $ python -m streamer.benchmark.forwarder_nodes --address HEAD:6379 --messages 20000 --faces 4

Each actor builds its messages first, then all send at once, as fast as their sockets take
them; the time runs from the start order to the last message at the subscriber. The actors
reserve no CPU (``num_cpus=0``): they measure the path, not the scheduler.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from configs.streamer import PublisherSettings
from streamer.benchmark.forwarder import faces_message, subscribed
from streamer.cluster.forwarder import Forwarder
from streamer.cluster.plan import worker_ingest
from streamer.output.state import StateBoard

WAIT_S = 300.0
"""The longest the subscriber waits for the next message before it reports what came."""


class NodePublisher:
    """One node's publisher (a Ray actor): connects to the ingest, holds its streams."""

    def __init__(self, ingest: str, sids: list[str], hwm: int, encoding: str) -> None:
        import ray

        from streamer.cluster.fencing import FencedPublisher
        from streamer.output.publisher import ZmqPublisher

        settings = PublisherSettings(
            endpoint=ingest, bind=False, wait_subscribers=1, settle_s=60, queue_size=hwm, sndhwm=hwm, encoding=encoding
        )
        self.pub = FencedPublisher(ZmqPublisher(settings))
        self.keys = [self.pub.hold(sid, 1) for sid in sids]
        self.node = ray.get_runtime_context().get_node_id()

    def send(self, n: int, faces: int) -> dict[str, Any]:
        msgs = [faces_message(i, self.keys[i % len(self.keys)], faces) for i in range(n)]
        t0 = time.perf_counter()
        for msg in msgs:
            self.pub.send(f"faces.{msg['stream_id']}", msg)
        return {"node": self.node, "sent_s": time.perf_counter() - t0}

    def close(self) -> None:
        self.pub.close()


def main() -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", required=True, help="the Ray cluster (HOST:PORT of its head)")
    ap.add_argument("--messages", type=int, default=20000, help="per node")
    ap.add_argument("--faces", type=int, default=4, help="faces per message")
    ap.add_argument("--streams", type=int, default=4, help="per node")
    ap.add_argument("--encoding", choices=["json", "msgpack"], default="json")
    ap.add_argument("--ingest", default="tcp://*:*", help="where the forwarder's XSUB binds")
    args = ap.parse_args()
    ray.init(address=args.address, logging_level="ERROR", log_to_driver=True)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    n, hwm = args.messages, args.messages + 10
    fwd = Forwarder(args.ingest, "tcp://127.0.0.1:*", observer=StateBoard().apply, sndhwm=hwm * len(nodes))
    ingest = worker_ingest(fwd.ingest_endpoint, None, ray.util.get_node_ip_address())
    ctx, sub = subscribed(fwd)
    actor = ray.remote(num_cpus=0)(NodePublisher)
    pubs = []
    for k, node in enumerate(nodes):
        sids = [f"n{k}-cam{s}" for s in range(args.streams)]
        for sid in sids:
            fwd.call(lambda sid=sid: fwd.set_epoch(sid, 1))
        where = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        pubs.append(actor.options(scheduling_strategy=where).remote(ingest, sids, hwm, args.encoding))
    ray.get([p.__ray_ready__.remote() for p in pubs])
    total, got = n * len(pubs), 0
    t0 = time.perf_counter()
    refs = [p.send.remote(n, args.faces) for p in pubs]
    while got < total and sub.poll(int(WAIT_S * 1000)):
        sub.recv_multipart()
        got += 1
    dt = time.perf_counter() - t0
    sent = ray.get(refs)
    print(
        f"{len(pubs)} nodes x {n} faces messages ({args.faces} faces, {args.encoding}) -> forwarder -> subscriber: "
        f"{got} of {total} in {dt:.2f} s: {got / dt:,.0f} messages/s (forwarded {fwd.stats.forwarded}, "
        f"fenced {fwd.stats.fenced}, lost on the way in {fwd.stats.ingest_gaps}); each node sent its own in "
        + ", ".join(f"{s['sent_s']:.2f} s ({s['node'][:8]})" for s in sent)
    )
    ray.get([p.close.remote() for p in pubs])
    sub.close(0)
    ctx.term()
    fwd.close()


if __name__ == "__main__":
    main()
