"""CurveZMQ on the publisher: an allowed subscriber receives everything; one whose key is not
allowed, one with the wrong server key and one without keys receive nothing, and the server
logs the refusal. Real sockets, real handshakes."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading

import pytest
import zmq
import zmq.auth
import zmq.utils.monitor

from configs.core.errors import ConfigError, ExitCode
from configs.streamer import PublisherSettings, SecuritySettings
from streamer.cli import main
from streamer.client import Subscriber
from streamer.net.security import ServerSecurity, is_loopback, secure_client
from streamer.net.sockets import Sockets
from streamer.output.publisher import ZmqPublisher
from tests.streamer.helpers import (
    LIVENESS_S,
    OFFLINE,
    OFFLINE_SETS,
    REFUSED_HANDSHAKE,
    free_endpoint,
    start_streamer,
    wait_for,
)

N = 20


def _sockets(keys) -> Sockets:
    """The server side: one context whose authenticator holds the allow-list."""
    folder, allowed = keys
    settings = SecuritySettings(server_secret_key=str(folder / "server.key_secret"), authorized_clients=str(allowed))
    return Sockets(settings)


def _watched_sub(ctx, endpoint, server_key=None, client_key=None):
    """A SUB socket (CurveZMQ when keys are given) and a monitor of its handshakes."""
    sock = ctx.socket(zmq.SUB)
    if server_key is not None:
        secure_client(sock, server_key, client_key)
    sock.setsockopt_string(zmq.SUBSCRIBE, "")
    monitor = sock.get_monitor_socket()
    sock.connect(endpoint)
    return sock, monitor


def _wait_refused(monitor, timeout_s: float = LIVENESS_S) -> int:
    """The first event showing the handshake failed (or the server hung up)."""
    while monitor.poll(int(timeout_s * 1000)):
        event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
        if event in REFUSED_HANDSHAKE:
            return event
        assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED, "a client that must be refused completed its handshake"
    raise AssertionError("no failed handshake seen")


def test_only_an_allowed_key_with_the_right_server_key_receives_anything(keys, caplog):
    folder, _ = keys
    endpoint = free_endpoint()
    ctx = zmq.Context()  # the clients'
    sockets = _sockets(keys)
    caplog.set_level(logging.INFO, logger="streamer.net.security")
    pub_box: list[ZmqPublisher] = []
    opened = threading.Thread(  # binds, then holds its first message until alice has subscribed
        target=lambda: pub_box.append(
            ZmqPublisher(PublisherSettings(endpoint=endpoint, wait_subscribers=1, settle_s=LIVENESS_S), sockets)
        )
    )
    opened.start()
    try:
        mallory, mallory_mon = _watched_sub(ctx, endpoint, folder / "server.key", folder / "mallory.key_secret")
        wrong_server, wrong_mon = _watched_sub(ctx, endpoint, folder / "mallory.key", folder / "alice.key_secret")
        plain, plain_mon = _watched_sub(ctx, endpoint)
        for mon in (mallory_mon, wrong_mon, plain_mon):
            _wait_refused(mon)
        mallory_key = zmq.auth.load_certificate(folder / "mallory.key")[0].decode()
        wait_for(lambda: mallory_key in caplog.text, LIVENESS_S, "the server logging mallory's refusal")
        refusal = next(r.getMessage() for r in caplog.records if mallory_key in r.getMessage())
        assert "from 127.0.0.1 " in refusal, refusal  # names where the refused client connected from

        alice = Subscriber(endpoint, server_key=folder / "server.key", client_key=folder / "alice.key_secret")
        opened.join(LIVENESS_S)
        pub = pub_box[0]
        for i in range(N):
            pub.send("events.cam0", {"i": i})
        got = [alice.recv(LIVENESS_S) for _ in range(N)]
        assert [m["i"] for _, m in got] == list(range(N)) and alice.missed == 0
        for sock in (mallory, wrong_server, plain):
            assert sock.poll(300) == 0, "a refused subscriber received a message"
        assert sockets.security.allow_list is not None and sockets.security.allow_list.refusals >= 1
        assert "refused a CurveZMQ client" in caplog.text
        alice.close()
        for sock in (mallory, wrong_server, plain):
            sock.disable_monitor()
            sock.close(linger=0)
        for mon in (mallory_mon, wrong_mon, plain_mon):
            mon.close(linger=0)
    finally:
        opened.join(LIVENESS_S)
        for pub in pub_box:
            pub.close()
        sockets.close()
        ctx.term()


def test_a_key_added_to_the_directory_is_allowed_without_a_restart(keys, caplog):
    folder, allowed = keys
    caplog.set_level(logging.INFO, logger="streamer.net.security")
    with _sockets(keys) as sockets:
        allow_list = sockets.security.allow_list
        mallory = zmq.auth.load_certificate(folder / "mallory.key")[0]
        assert not allow_list.callback("*", mallory)
        (allowed / "mallory.key").write_bytes((folder / "mallory.key").read_bytes())
        assert allow_list.callback("*", mallory)
        assert f"client key mallory.key added: {mallory.decode()} is allowed" in caplog.text


def _public(folder, name: str) -> bytes:
    return zmq.auth.load_certificate(folder / f"{name}.key")[0]


def _look_untouched(path, before: os.stat_result) -> None:
    """Put back the times a reload by timestamp would look at (``cp -p`` or a restore does)."""
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_key_replaced_in_place_is_read_again(keys, caplog):
    """``cp mallory.key clients/alice.key``: the folder keeps its count of keys, and here its
    and the file's modification times too; the old key is refused, the new one allowed."""
    folder, allowed = keys
    caplog.set_level(logging.INFO, logger="streamer.net.security")
    alice, mallory = _public(folder, "alice"), _public(folder, "mallory")
    with _sockets(keys) as sockets:
        allow_list = sockets.security.allow_list
        assert allow_list.callback("*", alice) and not allow_list.callback("*", mallory)
        folder_stat, file_stat = os.stat(allowed), os.stat(allowed / "alice.key")
        shutil.copyfile(folder / "mallory.key", allowed / "alice.key")
        _look_untouched(allowed / "alice.key", file_stat)
        _look_untouched(allowed, folder_stat)
        assert allow_list.callback("*", mallory), "the new key in alice.key was not read"
        assert not allow_list.callback("*", alice), "the replaced key is still allowed"
        assert f"client key alice.key replaced: {alice.decode()} is no longer allowed, {mallory.decode()} is" in (
            caplog.text
        )


def test_a_key_removed_from_the_directory_is_refused_at_the_next_handshake(keys, caplog):
    folder, allowed = keys
    caplog.set_level(logging.INFO, logger="streamer.net.security")
    endpoint = free_endpoint()
    ctx = zmq.Context()
    with _sockets(keys) as sockets:
        server = sockets.server(zmq.XPUB, endpoint, what="test.endpoint")
        try:
            first, first_mon = _watched_sub(ctx, endpoint, folder / "server.key", folder / "alice.key_secret")
            _wait_handshake(first_mon)
            (allowed / "alice.key").unlink()
            again, again_mon = _watched_sub(ctx, endpoint, folder / "server.key", folder / "alice.key_secret")
            _wait_refused(again_mon)
            assert f"client key alice.key removed: {_public(folder, 'alice').decode()} is no longer allowed" in (
                caplog.text
            )
            for sock, mon in ((first, first_mon), (again, again_mon)):
                sock.disable_monitor()
                sock.close(linger=0)
                mon.close(linger=0)
        finally:
            server.close(0)
    ctx.term()


def test_a_file_that_is_not_a_key_allows_no_one_and_breaks_nothing(keys, caplog):
    folder, allowed = keys
    with _sockets(keys) as sockets:
        allow_list = sockets.security.allow_list
        (allowed / "junk.key").write_bytes(b"not a certificate\x00\xff")
        assert allow_list.callback("*", _public(folder, "alice"))
        assert not allow_list.callback("*", _public(folder, "mallory"))
        assert "junk.key is not a readable public key" in caplog.text


def _wait_handshake(monitor, timeout_s: float = LIVENESS_S) -> None:
    while monitor.poll(int(timeout_s * 1000)):
        event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return
        assert event not in REFUSED_HANDSHAKE - {zmq.EVENT_DISCONNECTED}, "an allowed client was refused"
    raise AssertionError("no handshake seen")


def test_allow_any_client_encrypts_without_authenticating(keys):
    folder, _ = keys
    endpoint = free_endpoint()
    ctx = zmq.Context()  # the clients'
    sockets = Sockets(SecuritySettings(server_secret_key=str(folder / "server.key_secret"), allow_any_client=True))
    box: list[ZmqPublisher] = []
    t = threading.Thread(
        target=lambda: box.append(
            ZmqPublisher(PublisherSettings(endpoint=endpoint, wait_subscribers=1, settle_s=LIVENESS_S), sockets)
        )
    )
    t.start()
    try:
        anyone = Subscriber(endpoint, server_key=folder / "server.key", client_key=folder / "mallory.key_secret")
        plain, plain_mon = _watched_sub(ctx, endpoint)
        _wait_refused(plain_mon)  # no keys at all: still refused (the traffic is encrypted)
        t.join(LIVENESS_S)
        box[0].send("faces.x", {"i": 1})
        assert anyone.recv(LIVENESS_S)[1]["i"] == 1
        assert plain.poll(300) == 0
        anyone.close()
        plain.disable_monitor()
        plain.close(linger=0)
        plain_mon.close(linger=0)
    finally:
        t.join(LIVENESS_S)
        for pub in box:
            pub.close()
        sockets.close()
        ctx.term()


def test_keys_command_writes_private_secrets_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keys", str(tmp_path), "srv"]) == 0
    secret = tmp_path / "srv.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    public, private = zmq.auth.load_certificate(secret)
    assert len(public) == 40 and len(private) == 40
    assert main(["keys", str(tmp_path), "srv"]) == ExitCode.CONFIG
    assert "exists already" in capsys.readouterr().err
    assert main(["keys", str(tmp_path), "srv", "--force"]) == 0
    assert zmq.auth.load_certificate(secret)[0] != public


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"server_secret_key": "/k/s.key_secret"}, "needs authorized_clients"),
        ({"authorized_clients": "/k"}, "need server_secret_key"),
        ({"server_secret_key": "/s", "authorized_clients": "/k", "allow_any_client": True}, "exclude each other"),
    ],
)
def test_security_settings_that_cannot_work_are_refused(values, expected):
    with pytest.raises(ValueError, match=expected):
        SecuritySettings(**values)


def test_missing_or_public_only_server_key_is_a_config_error(keys, tmp_path):
    folder, allowed = keys
    for path, expected in ((tmp_path / "nope", "not found"), (folder / "server.key", "holds only a public key")):
        settings = SecuritySettings(server_secret_key=str(path), authorized_clients=str(allowed))
        with pytest.raises(ConfigError, match=f"security.server_secret_key: .*{expected}"):
            Sockets(settings)


def test_exposed_endpoint_without_keys_is_warned_about(caplog):
    ctx = zmq.Context()
    try:
        security = ServerSecurity(SecuritySettings(), ctx)
        security.warn_if_exposed("publisher.endpoint", "tcp://127.0.0.1:5556")
        assert "reachable from other machines" not in caplog.text
        security.warn_if_exposed("publisher.endpoint", "tcp://0.0.0.0:5556")
        assert "tcp://0.0.0.0:5556 is reachable from other machines" in caplog.text
    finally:
        ctx.term()
    assert is_loopback("tcp://localhost:1") and is_loopback("inproc://x") and not is_loopback("tcp://*:5556")


@pytest.mark.timeout(900)
def test_streamer_run_and_subscribe_with_curve_keys(keys, face_clip):
    """The CLI end to end: `streamer run` with keys; `streamer subscribe` with alice's keys
    gets the messages; the streamer logs mallory's refusal."""
    folder, allowed = keys
    endpoint = free_endpoint()
    proc = start_streamer(
        "run",
        f"cam0={face_clip}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        "--set",
        f"publisher.endpoint={endpoint}",
        "--set",
        f"security.server_secret_key={folder / 'server.key_secret'}",
        "--set",
        f"security.authorized_clients={allowed}",
    )
    ctx = zmq.Context()
    mallory, monitor = _watched_sub(ctx, endpoint, folder / "server.key", folder / "mallory.key_secret")
    try:
        _wait_refused(monitor)
        sub = start_streamer(
            "subscribe",
            endpoint,
            "--raw",
            "--count",
            "10",
            "--server-key",
            str(folder / "server.key"),
            "--client-key",
            str(folder / "alice.key_secret"),
        )
        out, sub_err = sub.communicate(timeout=LIVENESS_S)
        assert sub.returncode == 0, sub_err[-2000:]
        assert len(out.splitlines()) == 10 and "received 10 message(s), 0 missed" in sub_err
        assert mallory.poll(300) == 0
        _, err = proc.communicate(timeout=3 * LIVENESS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        mallory.disable_monitor()
        mallory.close(linger=0)
        monitor.close(linger=0)
        ctx.term()
    assert proc.returncode == 0, err[-3000:]
    assert "refused a CurveZMQ client" in err and "CurveZMQ, server key" in err


NODE_CLIENT = r"""
const zmq = require("zeromq");
const fs = require("fs");
const key = (path, which) => fs.readFileSync(path, "utf8").match(new RegExp(which + '-key = "(.{40})"'))[1];
(async () => {
  const [endpoint, serverKey, clientKey, n] = process.argv.slice(2);
  const sock = new zmq.Subscriber({
    curveServerKey: key(serverKey, "public"),
    curvePublicKey: key(clientKey, "public"),
    curveSecretKey: key(clientKey, "secret"),
  });
  sock.connect(endpoint);
  sock.subscribe("faces.");
  const seqs = [];
  for await (const [topic, payload] of sock) {
    const msg = JSON.parse(payload.toString());  // strict JSON: throws on NaN
    seqs.push(msg.seq);
    if (seqs.length >= Number(n)) break;
  }
  console.log(JSON.stringify(seqs));
  sock.close();
})();
"""


def test_a_node_client_with_curve_keys_receives_everything(keys, tmp_path):
    """Another language's CurveZMQ client (zeromq.js) against the secured publisher. Skips
    without node and the npm package zeromq (EXPSTREAM_NODE_MODULES)."""
    import json
    import subprocess

    from tests.streamer.test_events_contract import _node_with
    from tests.streamer.test_publisher import sample_faces_message

    found = _node_with("zeromq")
    if found is None:
        pytest.skip("node with the npm package zeromq not found (set EXPSTREAM_NODE_MODULES)")
    node, env = found
    folder, _ = keys
    endpoint = free_endpoint()
    script = tmp_path / "client.js"
    script.write_text(NODE_CLIENT)
    args = [node, str(script), endpoint, str(folder / "server.key"), str(folder / "alice.key_secret"), str(N)]
    client = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sockets = _sockets(keys)
    pub = None
    try:
        pub = ZmqPublisher(PublisherSettings(endpoint=endpoint, wait_subscribers=1, settle_s=LIVENESS_S), sockets)
        assert pub.subscriptions == 1, "the node client never subscribed"
        for _ in range(N):
            pub.send("faces.cam0", sample_faces_message())
        out, err = client.communicate(timeout=LIVENESS_S)
    finally:
        if client.poll() is None:
            client.kill()
        if pub is not None:
            pub.close()
        sockets.close()
    assert client.returncode == 0, err[-2000:]
    assert json.loads(out) == list(range(N))
