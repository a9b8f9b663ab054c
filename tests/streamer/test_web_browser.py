"""The live view in a real browser (Debian's chromium, headless, driven by selenium through
``/usr/bin/chromedriver``) against a real ``streamer run --web`` of two clips and a source
that cannot open, listening on every address with a token: the page shows a tile per
stream; the picture updates; the track list names exactly the labels the ZeroMQ message of
the same ``seq`` carries; the failed stream shows its reason; a request without the token
gets 401, and the service logs it with the peer."""

from __future__ import annotations

import shutil
import signal
import socket
import urllib.error
import urllib.request

import pytest

from tests.streamer.conftest import CLIP_FPS, CLIP_SECONDS
from tests.streamer.helpers import LIVENESS_S, OFFLINE, OFFLINE_SETS, Collector, free_endpoint, sets, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "browser-test-token"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]


def own_address() -> str:
    """This machine's address on its default route (127.0.0.1 when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the interface
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=LIVENESS_S) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


TILES_JS = """
return [...document.querySelectorAll('.tile')].map(t => ({
  stream: t.dataset.stream, state: t.dataset.state, seq: t.dataset.seq,
  reason: t.querySelector('.reason').textContent,
  picture: t.querySelector('.picture').dataset.frame || null,
  tracks: [...t.querySelectorAll('.track')].map(r => [Number(r.dataset.track), r.dataset.label]),
}));
"""


@pytest.mark.timeout(900)
def test_the_page_in_a_browser_against_a_real_run(face_clip, tmp_path, browser):
    from tests.streamer.helpers import start_streamer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "token").write_text(TOKEN)
    endpoint = free_endpoint()
    col = Collector(endpoint)
    proc = start_streamer(
        "run",
        f"a={face_clip}",
        f"b={face_clip}",
        f"gone={tmp_path / 'missing.mp4'}",
        "-c",
        OFFLINE,
        *OFFLINE_SETS,
        *sets(
            f"publisher.endpoint={endpoint}", "sources.loop=true", "web.fps=5", f"web.token_file={tmp_path / 'token'}"
        ),
        "--web",
        f"0.0.0.0:{port}",
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def listening() -> bool:
            try:
                return status_of(f"{base}/api/state") == 401
            except OSError:
                return False

        wait_for(listening, 3 * LIVENESS_S, "the live view to listen")
        assert status_of(f"http://{own_address()}:{port}/") == 401  # no token: refused, from anywhere
        browser.get(f"{base}/?token={TOKEN}")  # sets the cookie, then the page loads without the token
        assert TOKEN not in browser.current_url

        def tiles() -> dict[str, dict]:
            return {t["stream"]: t for t in browser.execute_script(TILES_JS)}

        wait_for(
            lambda: (
                {(s, t["state"]) for s, t in tiles().items()}
                == {("a", "running"), ("b", "running"), ("gone", "failed")}
            ),
            LIVENESS_S,
            "a tile per stream: two running, one failed",
        )
        assert "cannot open" in tiles()["gone"]["reason"] and "missing.mp4" in tiles()["gone"]["reason"]

        wait_for(lambda: tiles()["a"]["picture"] is not None, LIVENESS_S, "a's first picture")
        picture = browser.find_element("css selector", '.tile[data-stream="a"] .picture')
        first_frame, first = tiles()["a"]["picture"], picture.screenshot_as_png
        n = round(CLIP_SECONDS * CLIP_FPS)  # the clip loops: a picture n frames later is the same one

        def moved_on() -> bool:
            later = tiles()["a"]["picture"]
            return later is not None and (int(later) - int(first_frame)) % n != 0

        wait_for(moved_on, LIVENESS_S, "a picture of another frame of a")
        # the page names the new frame before the browser has decoded and drawn its JPEG (on a
        # busy machine, a while): wait for the drawn picture to change
        wait_for(lambda: picture.screenshot_as_png != first, LIVENESS_S, "another frame drawn in a's tile")

        def labelled_moment() -> dict | None:
            t = tiles()["a"]
            return t if t["seq"] and any(label for _, label in t["tracks"]) else None

        wait_for(lambda: labelled_moment() is not None, LIVENESS_S, "a labelled track on the page")
        shown = labelled_moment()
        assert shown is not None
        seq = int(shown["seq"])

        def message_at_seq() -> dict | None:
            return next((m for m in col.of("faces.a") if m["seq"] == seq), None)

        wait_for(lambda: message_at_seq() is not None, LIVENESS_S, f"the ZeroMQ message faces.a seq {seq}")
        sent = message_at_seq()
        # The page's tracks are the message's (a track that ended right after it is gone from
        # both the board and the page), each with the label the message gave it.
        assert {tuple(t) for t in shown["tracks"]} <= {(f["track_id"], f["label"] or "") for f in sent["faces"]}
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=LIVENESS_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            col.close()
    assert proc.returncode == 1, err[-3000:]  # the missing file failed its stream: exit 1
    assert f"refused GET / from {own_address()}: no token" in err
