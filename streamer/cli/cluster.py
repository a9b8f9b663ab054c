"""``streamer cluster``: the service on a Ray cluster, one worker actor per GPU (or per
``cluster.worker_cpus`` CPUs), behind one endpoint (docs/deployment.md); ``streamer
cluster status`` asks a running driver (its ``control.endpoint``) for workers, streams and
load; ``streamer cluster rebalance`` asks it to even its workers' loads now.

Exit codes: 0 stopped (SIGINT/SIGTERM) or every source ended; 1 some source failed; 2 bad
configuration or sources file; 3 no worker could start (or none is left).

Example (plain text)::

    $ streamer cluster -c site.yaml --sources sources.yaml --set cluster.address=auto
    $ streamer cluster status -c site.yaml
    $ streamer cluster rebalance -c site.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections import Counter
from typing import Any

from configs import Settings, dump_settings, load_settings
from configs.core.errors import ConfigError

log = logging.getLogger("streamer")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    from configs.core.cli import add_config_args, shorthand

    parser.add_argument(
        "action",
        nargs="?",
        choices=["run", "status", "rebalance"],
        default="run",
        help="run the cluster (default), print its status, or even its workers' loads now",
    )
    parser.add_argument("--sources", metavar="FILE.yaml", help="the sources: stream ids -> URIs (docs/deployment.md)")
    parser.add_argument("--json", action="store_true", help="status: print the whole reply as JSON")
    add_config_args(parser, "cluster.address=auto")
    shorthand(
        parser, "--web", key="web.listen", metavar="[HOST:]PORT", help="serve the live view of every worker's streams"
    )


def _check(settings: Settings) -> None:
    if settings.publisher.kind != "zmq" or not settings.publisher.bind:
        raise ConfigError("publisher: streamer cluster publishes on one bound ZeroMQ endpoint (kind zmq, bind true)")
    if settings.preview.path:
        raise ConfigError("preview.path: a preview is per process; streamer cluster does not write one")


def cluster_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.overrides)
    if args.action == "status":
        return status_command(settings, args.json)
    if args.action == "rebalance":
        return rebalance_command(settings, args.json)
    from streamer.cli.run import stop_on_signals
    from streamer.cluster.driver import ClusterDriver
    from streamer.cluster.sourcelist import load_sources

    _check(settings)
    sources = load_sources(args.sources) if args.sources else []
    if not sources and not settings.control.endpoint:
        raise ConfigError("no sources: give --sources FILE.yaml, or turn on control.endpoint to add them later")
    log.info("resolved configuration:\n%s", dump_settings(settings))
    driver = ClusterDriver(settings, sources, log_level=logging.getLevelName(logging.getLogger().level))
    stop = threading.Event()
    try:
        driver.start()
        assert driver.front is not None
        driver.front.serve_web(driver.status)  # web.listen: the live view of every worker's streams
    except BaseException:
        driver.shutdown()
        raise
    with stop_on_signals(stop):  # after ray.init, which installs its own SIGTERM handler
        return driver.run(stop)


def status_command(settings: Settings, as_json: bool) -> int:
    """Print a running cluster's workers, streams and load (``control.endpoint``)."""
    reply = _ask(settings, {"op": "status"}, "streamer cluster status")
    print(json.dumps(reply, indent=2) if as_json else status_text(reply))
    return 0


def rebalance_command(settings: Settings, as_json: bool) -> int:
    """Ask a running cluster to even its workers' loads; print the moves it will make."""
    reply = _ask(settings, {"op": "rebalance"}, "streamer cluster rebalance")
    planned = reply.get("planned", [])
    lines = [f"move {m['stream']}: {m['from']} -> {m['to']}" for m in planned] or ["loads are even: nothing to move"]
    print(json.dumps(reply, indent=2) if as_json else "\n".join(lines))
    return 0


def _ask(settings: Settings, body: dict[str, Any], what: str) -> dict[str, Any]:
    """Send ``body`` to the driver's ``control.endpoint`` (as a CurveZMQ client with keys); its reply."""
    import zmq

    from streamer.net.sockets import Sockets

    endpoint = settings.control.endpoint
    if not endpoint:
        raise ConfigError(f"control.endpoint: {what} asks the driver's control endpoint; set it")
    with Sockets(settings.security, serve=False) as sockets:  # a client: security.client_secret_key
        sock = sockets.client(zmq.REQ, endpoint)
        try:
            sock.send(json.dumps(body).encode())
            if not sock.poll(10_000):
                raise ConfigError(f"control.endpoint {endpoint}: no answer within 10 s (is the cluster running?)")
            reply = json.loads(sock.recv())
        finally:
            sock.close(0)
    if not reply.get("ok"):
        raise ConfigError(f"{body['op']} refused: {reply.get('error')}")
    return reply


def status_text(reply: dict[str, Any]) -> str:
    """The status reply as a few readable lines."""
    workers = reply.get("workers", [])
    lines = [f"endpoint {reply.get('endpoint')}  engine {reply.get('engine')}  capacity {reply.get('capacity')}/worker"]
    lines.append(f"{'worker':8} {'state':10} {'node (ip/id)':25} {'pid':>7} {'load':>6} {'cpu%':>6}  streams (fps)")
    for w in workers:
        node = (w.get("node_ip") or "-") + (f"/{w['node_id'][:8]}" if w.get("node_id") else "")
        fps = w.get("fps", {})
        streams = ", ".join(f"{s} ({fps[s]:.1f})" if s in fps else s for s in w.get("streams", [])) or "-"
        cpu = w.get("cpu_percent")
        stale = w.get("stale", [])
        lines.append(
            f"{w['id']:8} {w['state']:10} {node:25} {w.get('pid') or '-':>7} "
            f"{w.get('load', 0)}/{w.get('capacity', 0):<4} {'-' if cpu is None else f'{cpu:.0f}':>6}  {streams}"
            + (f"  (stopping {', '.join(stale)})" if stale else "")
            + (f"  [{w['cause']}]" if w.get("cause") else "")
        )
    sources = reply.get("sources", {})
    waiting = [sid for sid, s in sources.items() if s["state"] == "pending"]
    states = Counter(s["state"] for s in sources.values())
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    lines.append(f"sources: {len(sources)} ({by_state or 'none'}); pending: {', '.join(waiting) or 'none'}")
    for sid, s in sources.items():
        if s["state"] in ("ended", "failed"):
            lines.append(f"{s['state']} {sid}: {s.get('reason') or '-'}")
    for m in reply.get("moves", []):
        lines.append(
            f"moved {m['stream']}: {m['from']} -> {m['to'] or '(waiting)'} epoch {m['epoch']} at "
            f"{m['at']:.1f}, gap {m['gap_s']} s ({m['cause']})"
        )
    f = reply.get("forwarder", {})
    lines.append(
        f"forwarder: {f.get('forwarded', 0)} forwarded, {f.get('fenced', 0)} fenced, "
        f"{f.get('ingest_gaps', 0)} lost on the way in, {f.get('subscriptions', 0)} subscriptions"
    )
    return "\n".join(lines)
