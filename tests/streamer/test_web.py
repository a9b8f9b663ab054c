"""The live view without a browser: its settings, the frame tap (rate, drawing on demand,
blurring), the token (401 logged with the peer), TLS, what the page may never carry (URI
passwords, key paths, feature vectors), and the cluster driver's page (worker and epoch of
each stream; a moved stream moves). Real aiohttp servers on free ports; the browser test is
tests/streamer/test_web_browser.py."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from configs import load_settings
from configs.core.errors import ConfigError
from streamer.frames import Frame, FrameImage
from streamer.output.state import StateBoard
from streamer.values import FaceResult, Tracks
from streamer.web import EventFeed, FrameTap, LiveView
from tests.streamer.helpers import LIVENESS_S, free_endpoint, wait_for

TOKEN = "t0ken-for-tests"


def get(url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None):
    """(status, headers, body) of a GET that does not follow redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=LIVENESS_S) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["web.listen=0.0.0.0:8080"], "a non-loopback address needs token or token_file"),
        (["web.listen=99999"], "port 0-65535"),
        (["web.listen=cam/x:80"], "a host name or an IP address"),
        (["web.fps=6"], "less than or equal to 5"),
        (["web.tls_cert=/x.pem"], "tls_cert and tls_key go together"),
        (["web.token=abcdefgh", "web.token_file=/x"], "exclude each other"),
        (["web.listen=8080"], None),
        (["web.listen=::1:0"], None),
        (["web.listen=0.0.0.0:0", "web.token=abcdefgh"], None),
    ],
)
def test_web_settings(overrides, error):
    if error is None:
        web = load_settings(None, overrides).web
        assert web.port in (0, 8080) and web.host in ("127.0.0.1", "::1", "0.0.0.0")
    else:
        with pytest.raises(ConfigError, match=error):
            load_settings(None, overrides)


def noisy_frame(stream_id: str, index: int) -> Frame:
    rng = np.random.default_rng(index)
    bgr = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    return Frame(stream_id, index, index / 15, 0.0, FrameImage.from_bgr(bgr))


def one_track(box=(200, 100, 360, 300)) -> tuple[Tracks, list]:
    tracks = Tracks(np.int64([7]), np.float32([box]), np.float32([0.9]), np.int64([3]))
    result = FaceResult(np.float32([0.8, 0.2]), np.float32([0.7, 0.3]), "happiness", 0.7, 0)
    return tracks, [result]


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_the_tap_keeps_at_most_fps_frames_and_draws_each_once_on_demand():
    now = [0.0]
    tap = FrameTap(load_settings(None, ["web.fps=2", "web.width=320"]).web, blur=False, clock=lambda: now[0])
    tracks, results = one_track()
    assert tap.jpeg("cam") == (None, None)
    for i in range(10):  # 10 frames over 0.9 s at 2 pictures a second: the ones at 0.0 and 0.5 s
        now[0] = i / 10
        tap.put(noisy_frame("cam", i), tracks, results)
    assert tap.kept == 2 and tap.encoded == 0
    index, jpeg = tap.jpeg("cam")
    assert index == 5 and tap.jpeg("cam") == (5, jpeg) and tap.encoded == 1
    assert decode(jpeg).shape == (180, 320, 3)  # scaled down to web.width
    tap.forget("cam")
    assert tap.jpeg("cam") == (None, None)


@pytest.mark.parametrize("blur", [False, True])
def test_preview_blur_faces_applies_to_the_live_picture(blur):
    tap = FrameTap(load_settings(None, []).web, blur=blur)
    tracks, results = one_track(box=(200, 100, 360, 300))
    tap.put(noisy_frame("cam", 0), tracks, results)
    picture = decode(tap.jpeg("cam")[1]).astype(np.float32)
    inside, outside = picture[140:260, 240:320], picture[20:80, 450:600]  # within the box, clear of the drawing
    assert outside.std() > 50  # the noise is there
    assert (inside.std() < 20) == blur


@pytest.fixture
def board_and_feed() -> tuple[StateBoard, EventFeed]:
    board, feed = StateBoard(), EventFeed(10)

    def apply(topic, msg):
        board.apply(topic, msg)
        feed.apply(topic, msg)

    apply(
        "events.cam0",
        {
            "type": "event",
            "scope": "stream",
            "kind": "started",
            "stream_id": "cam0",
            "seq": 0,
            "details": {"uri": "rtsp://admin:hunter2@10.0.0.5/live", "fps": 15.0},
        },
    )
    apply(
        "faces.cam0",
        {
            "type": "faces",
            "stream_id": "cam0",
            "seq": 0,
            "frame_index": 4,
            "classes": ["a", "b"],
            "faces": [
                {
                    "track_id": 7,
                    "label": "b",
                    "score": 0.7,
                    "smoothed_probs": [0.3, 0.7],
                    "probs": [0.2, 0.8],
                    "features": [0.125] * 512,
                }
            ],
        },
    )
    apply(
        "events.gone",
        {
            "type": "event",
            "scope": "stream",
            "kind": "failed",
            "stream_id": "gone",
            "seq": 0,
            "reason": "cannot open rtsp://admin:hunter2@10.0.0.9/x: refused",
            "details": {},
        },
    )
    return board, feed


def test_a_token_is_needed_and_a_refusal_is_logged_with_the_peer(board_and_feed, tmp_path, caplog):
    (tmp_path / "token").write_text(TOKEN + "\n")
    settings = load_settings(None, ["web.listen=127.0.0.1:0", f"web.token_file={tmp_path / 'token'}"]).web
    view = LiveView(settings, *board_and_feed)
    try:
        with caplog.at_level(logging.WARNING, logger="streamer.web.app"):
            for path in ("/", "/api/state", "/static/app.js", "/api/frame/cam0"):
                assert get(view.url + path)[0] == 401
            assert get(view.url + "/api/state", {"Authorization": "Bearer wrong-token"})[0] == 401
        assert "refused GET / from 127.0.0.1: no token" in caplog.text
        status, _, body = get(view.url + "/api/state", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "cam0" in json.loads(body)["streams"]
        status, headers, _ = get(view.url + f"/?token={TOKEN}")  # a link with the token: a cookie, then a clean URL
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert TOKEN in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, body = get(view.url + "/", {"Cookie": cookie.split(";")[0]})
        assert status == 200 and b"ExpStream" in body
    finally:
        view.close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_when_a_certificate_is_configured_and_no_secret_reaches_the_page(board_and_feed, tmp_path):
    cert, key = self_signed(tmp_path)
    overrides = ["web.listen=127.0.0.1:0", f"web.tls_cert={cert}", f"web.tls_key={key}", f"web.token={TOKEN}"]
    view = LiveView(load_settings(None, overrides).web, *board_and_feed)
    trust = ssl.create_default_context(cafile=str(cert))
    trust.check_hostname = False
    try:
        assert view.url.startswith("https://")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        pages = [get(view.url + p, auth, trust) for p in ("/", "/static/app.js", "/static/style.css", "/api/state")]
        assert [status for status, _, _ in pages] == [200] * 4
        with pytest.raises(OSError):  # plain HTTP is not served (refused or cut)
            urllib.request.urlopen(view.url.replace("https", "http"), timeout=LIVENESS_S)
    finally:
        view.close()
    text = b"".join(body for _, _, body in pages).decode()
    for secret in ("hunter2", "10.0.0.5", str(key), str(tmp_path), TOKEN, "0.125"):  # 10.0.0.5: the URI itself
        assert secret not in text
    doc = json.loads(pages[-1][2])
    assert doc["streams"]["gone"]["state"] == "failed"
    assert doc["streams"]["gone"]["reason"] == "cannot open rtsp://admin:***@10.0.0.9/x: refused"
    assert [(t["track_id"], t["label"], t["bars"]) for t in doc["streams"]["cam0"]["tracks"]] == [(7, "b", [0.3, 0.7])]


def test_a_busy_web_port_is_a_config_error(board_and_feed):
    first = LiveView(load_settings(None, ["web.listen=0"]).web, *board_and_feed)
    try:
        with pytest.raises(ConfigError, match=r"web\.listen: cannot listen on 127\.0\.0\.1:"):
            LiveView(load_settings(None, [f"web.listen={first.port}"]).web, *board_and_feed)
    finally:
        first.close()


def test_the_cluster_page_shows_each_stream_with_its_worker_and_epoch_and_follows_a_move():
    from streamer.cluster.front import ClusterOutlets

    settings = load_settings(
        None,
        [
            "web.listen=127.0.0.1:0",
            f"publisher.endpoint={free_endpoint()}",
            f"cluster.ingest_endpoint={free_endpoint()}",
        ],
    )
    placement = {"cam0": ("w0", 1)}

    def status() -> dict:
        sources = {
            sid: {"state": "assigned", "worker": w, "epoch": e, "reason": None} for sid, (w, e) in placement.items()
        }
        return {"sources": sources, "workers": [{"id": w, "fps": {sid: 15.0}} for sid, (w, _) in placement.items()]}

    with ClusterOutlets(settings) as front:
        front.serve_web(status)
        url = f"http://127.0.0.1:{front.web.port}/api/state"
        front.observe("events.cam0", {"type": "event", "scope": "stream", "kind": "started", "stream_id": "cam0",
                                      "seq": 0, "epoch": 1, "details": {}})  # fmt: skip
        doc = json.loads(get(url)[2])
        cam = doc["streams"]["cam0"]
        assert (cam["worker"], cam["epoch"], cam["health"]["fps"], doc["pictures"]) == ("w0", 1, 15.0, None)
        placement["cam0"] = ("w1", 2)  # the driver moved it: its status says so, then the moved event goes out
        front.observe("events.cam0", {"type": "event", "scope": "stream", "kind": "moved", "stream_id": "cam0",
                                      "seq": 1, "epoch": 2, "reason": "worker w0 died",
                                      "details": {"from": "w0", "to": "w1", "epoch": 2}})  # fmt: skip
        wait_for(lambda: json.loads(get(url)[2])["streams"]["cam0"]["worker"] == "w1", LIVENESS_S, "the move")
        doc = json.loads(get(url)[2])
        assert doc["streams"]["cam0"]["epoch"] == 2
        assert doc["events"][0] | {"wall_time_s": None} == {
            "scope": "stream", "kind": "moved", "stream_id": "cam0", "wall_time_s": None, "reason": "worker w0 died",
            "epoch": 2, "from": "w0", "to": "w1",
        }  # fmt: skip
