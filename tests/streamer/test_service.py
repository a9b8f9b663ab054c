"""The one service assembly with CurveZMQ keys: every ZeroMQ socket a running ``Service``
serves (the faces/events publisher, the snapshot and control endpoints), and every one the
cluster driver serves as it assembles them (the forwarder's publish and ingest endpoints,
snapshot, control; ``ClusterOutlets``, no Ray), refuses a client whose key is not in the
allow-list (its handshake fails, it receives nothing) and serves one whose key is. Real
sockets, real handshakes, the server's one context. The metrics endpoint is HTTP: not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zmq
import zmq.utils.monitor

from configs import load_settings
from streamer.client import Subscriber
from streamer.cluster.front import ClusterOutlets
from streamer.cluster.plan import worker_settings
from streamer.net.endpoints import request
from streamer.net.security import secure_client
from streamer.net.sockets import MAX_MESSAGE_BYTES, Sockets
from streamer.service import Service
from tests.streamer.helpers import LIVENESS_S, OFFLINE, REFUSED_HANDSHAKE, ROOT, free_endpoint, wait_for


def _server_keys(keys: tuple[Path, Path]) -> list[str]:
    folder, allowed = keys
    return [f"security.server_secret_key={folder / 'server.key_secret'}", f"security.authorized_clients={allowed}"]


def _assert_refused(ctx: zmq.Context, kind: int, endpoint: str, folder: Path, name: str) -> None:
    """A ``kind`` client with ``name``'s keys: its handshake fails and nothing reaches it."""
    sock = ctx.socket(kind)
    secure_client(sock, folder / "server.key", folder / f"{name}.key_secret")
    if kind == zmq.SUB:
        sock.setsockopt_string(zmq.SUBSCRIBE, "")
    monitor = sock.get_monitor_socket()
    sock.connect(endpoint)
    try:
        if kind == zmq.REQ:
            sock.send(json.dumps({"op": "status"}).encode())  # queued; never delivered
        while True:
            assert monitor.poll(int(LIVENESS_S * 1000)), f"no failed handshake seen on {endpoint}"
            event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
            assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED, f"{name} completed a handshake with {endpoint}"
            if event in REFUSED_HANDSHAKE:
                break
        assert sock.poll(300) == 0, f"{name} received something from {endpoint}"
    finally:
        sock.disable_monitor()
        sock.close(linger=0)
        monitor.close(linger=0)


def _ask(endpoint: str, body: dict, folder: Path, name: str = "alice") -> dict:
    return request(endpoint, body, LIVENESS_S, None, folder / "server.key", folder / f"{name}.key_secret")


@pytest.mark.timeout(900)
def test_every_socket_of_a_running_service_admits_only_allowed_keys(keys, face_clip):
    folder, _ = keys
    endpoint, snapshot, control = free_endpoint(), free_endpoint(), free_endpoint()
    settings = load_settings(
        OFFLINE,
        [
            "detector.name=haar",
            "sources.loop=true",
            "sources.realtime=true",
            f"publisher.endpoint={endpoint}",
            "publisher.settle_s=0",
            f"snapshot.endpoint={snapshot}",
            f"control.endpoint={control}",
            *_server_keys(keys),
        ],
    )
    stop = threading.Event()
    ctx = zmq.Context()  # the clients'
    with Service(settings) as svc:
        runner = threading.Thread(target=svc.run, args=(stop,), name="service")
        runner.start()
        alice = None
        try:
            for kind, where in ((zmq.SUB, endpoint), (zmq.REQ, snapshot), (zmq.REQ, control)):
                _assert_refused(ctx, kind, where, folder, "mallory")
            allow_list = svc.outlets.sockets.security.allow_list
            assert allow_list is not None and allow_list.refusals >= 3

            alice = Subscriber(endpoint, server_key=folder / "server.key", client_key=folder / "alice.key_secret")
            added = _ask(control, {"op": "add_source", "id": "cam0", "uri": str(face_clip)}, folder)
            assert added["ok"] and added["streams"] == ["cam0"], added
            got = alice.recv(LIVENESS_S)  # the looping stream publishes on: one arrives once subscribed
            assert got is not None and got[1]["stream_id"] == "cam0"
            state = _ask(snapshot, {"op": "snapshot"}, folder)
            assert state["ok"] and "cam0" in state["streams"], state
        finally:
            stop.set()
            runner.join(LIVENESS_S)
            if alice is not None:
                alice.close()
    ctx.term()
    assert not runner.is_alive()


def test_every_socket_the_cluster_driver_serves_admits_only_allowed_keys(keys):
    folder, _ = keys
    snapshot, control = free_endpoint(), free_endpoint()
    settings = load_settings(
        None,
        [
            f"publisher.endpoint={free_endpoint()}",
            "cluster.ingest_endpoint=tcp://127.0.0.1:*",
            f"snapshot.endpoint={snapshot}",
            f"control.endpoint={control}",
            *_server_keys(keys),
        ],
    )
    ctx = zmq.Context()  # the viewer's and the workers'
    with ClusterOutlets(settings) as front:
        front.serve_control(lambda req: {"streams": []})
        fwd = front.forwarder
        for kind, where in (
            (zmq.SUB, fwd.publish_endpoint),  # a subscriber
            (zmq.XPUB, fwd.ingest_endpoint),  # a worker's publisher
            (zmq.REQ, snapshot),
            (zmq.REQ, control),
        ):
            _assert_refused(ctx, kind, where, folder, "mallory")
        assert fwd.stats.subscriptions == 0, "a refused subscriber's subscription reached the forwarder"

        viewer = ctx.socket(zmq.SUB)
        worker = ctx.socket(zmq.XPUB)
        try:
            for sock in (viewer, worker):
                secure_client(sock, folder / "server.key", folder / "alice.key_secret")
            viewer.setsockopt_string(zmq.SUBSCRIBE, "")
            viewer.connect(fwd.publish_endpoint)
            worker.connect(fwd.ingest_endpoint)
            assert worker.poll(int(LIVENESS_S * 1000)) and worker.recv()[:1] == b"\x01", "the forwarder subscribed"
            wait_for(lambda: fwd.stats.subscriptions >= 1, LIVENESS_S, "the viewer's subscription")
            fwd.call(lambda: fwd.set_epoch("cam0", 1))
            msg = {"type": "event", "scope": "stream", "kind": "started", "stream_id": "cam0", "epoch": 1, "seq": 0}
            worker.send_multipart([b"events.cam0", json.dumps(msg).encode()])
            assert viewer.poll(int(LIVENESS_S * 1000)), "the allowed worker's message reached the allowed viewer"
            assert json.loads(viewer.recv_multipart()[1])["stream_id"] == "cam0"
        finally:
            viewer.close(0)
            worker.close(0)
        wait_for(lambda: "cam0" in front.board.snapshot()["streams"], LIVENESS_S, "the message on the board")
        state = _ask(snapshot, {"op": "snapshot"}, folder)
        assert state["ok"] and "cam0" in state["streams"], state
        assert _ask(control, {"op": "status"}, folder) == {"ok": True, "streams": []}
    ctx.term()


def test_a_worker_serves_nothing_and_only_connects(keys):
    """A worker's settings keep its client keys and drop the driver's server keys, endpoints
    and metrics; a connect-only ``Sockets`` makes no server socket."""
    folder, _ = keys
    client = [
        f"security.client_secret_key={folder / 'alice.key_secret'}",
        f"security.server_public_key={folder / 'server.key'}",
    ]
    driver = load_settings(
        None, [*_server_keys(keys), *client, "metrics.enabled=true", "control.endpoint=tcp://127.0.0.1:5558"]
    )
    w = worker_settings(driver, "tcp://127.0.0.1:5560", 60.0)
    assert w.security.server_secret_key is None and w.security.authorized_clients is None
    assert w.security.client_secret_key == driver.security.client_secret_key
    assert not w.metrics.enabled and w.control.endpoint is None and w.snapshot.endpoint is None
    with Sockets(driver.security, serve=False) as sockets:
        assert not sockets.security.enabled, "a connect-only process starts no authenticator"
        with pytest.raises(RuntimeError, match="only connects"):
            sockets.server(zmq.XPUB, "tcp://127.0.0.1:*")


def test_the_cluster_driver_imports_no_torch():
    code = (
        "import sys\nimport streamer.cluster.driver, streamer.cli.cluster\n"
        "print([m for m in ('torch', 'numpy', 'ray') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["[]"], res.stdout


CONTROL_SERVER = """
import sys
from configs import load_settings
from streamer.service.outlets import Outlets
with Outlets(load_settings(None, [f"control.endpoint={sys.argv[1]}"])) as outlets:
    outlets.serve_control(lambda req: {"echo": req})
    print("ready", flush=True)
    sys.stdin.read()
"""


def _memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (the peak so far) of ``pid``, in MiB (Linux)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v.split()[0]) / 1024 for k, v in (ln.split(":", 1) for ln in lines) if k in ("VmRSS", "VmHWM")}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_an_oversized_control_request_is_dropped_before_it_is_read(tmp_path):
    """300 MB to a control endpoint that takes at most 1 MiB (``control.max_request_bytes``):
    the server process's peak memory stays where it was (libzmq drops the peer as soon as it
    announces the size, ``ZMQ_MAXMSGSIZE``), and the endpoint goes on answering."""
    endpoint = free_endpoint()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-c", CONTROL_SERVER, endpoint],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    ctx = zmq.Context()
    try:
        assert server.stdout.readline().strip() == b"ready"
        assert request(endpoint, {"op": "status"}, LIVENESS_S, ctx)["ok"]
        before = _memory_mib(server.pid)
        big = ctx.socket(zmq.DEALER)
        monitor = big.get_monitor_socket()
        big.connect(endpoint)
        big.send_multipart([b"", b'{"op": "status", "pad": "' + b" " * (300 << 20) + b'"}'], copy=False)
        poller = zmq.Poller()
        poller.register(big, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        outcome = None
        while outcome is None:  # dropped (the fix) or read and answered (what it did before)
            ready = dict(poller.poll(int(LIVENESS_S * 1000)))
            assert ready, "the oversized request was neither dropped nor answered"
            if big in ready:
                outcome = f"answered: {big.recv_multipart()[-1][:200]!r}"
            elif zmq.utils.monitor.recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED:
                outcome = "dropped"
        after = _memory_mib(server.pid)
        assert after["VmHWM"] - before["VmRSS"] < 100, f"{outcome}; memory before {before}, after {after} (MiB)"
        assert outcome == "dropped"
        big.disable_monitor()
        assert request(endpoint, {"op": "status"}, LIVENESS_S, ctx) == {"ok": True, "echo": {"op": "status"}}
    finally:
        server.stdin.close()
        server.wait(LIVENESS_S)
        ctx.destroy(linger=0)


def test_every_server_socket_has_a_largest_frame():
    """``Sockets.server`` makes every served socket (publisher, endpoints, the cluster's
    forwarder); each gets ``ZMQ_MAXMSGSIZE``, the default or its maker's limit."""
    with Sockets() as sockets:
        plain = sockets.server(zmq.XPUB, "tcp://127.0.0.1:*")
        limited = sockets.server(zmq.ROUTER, "tcp://127.0.0.1:*", max_message_bytes=4096)
        assert plain.getsockopt(zmq.MAXMSGSIZE) == MAX_MESSAGE_BYTES
        assert limited.getsockopt(zmq.MAXMSGSIZE) == 4096
        plain.close(0)
        limited.close(0)
