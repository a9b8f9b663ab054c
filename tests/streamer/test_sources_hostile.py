"""Sources against inputs a hostile tester brings: timestamps that jump or run backwards,
truncated files, a camera that refuses the password, URIs with odd passwords."""

from __future__ import annotations

import itertools

import pytest

from configs.sources import SourceSettings
from streamer.sources import redact_uri
from tests.media import concat_files, truncate_file, write_video
from tests.streamer.helpers import LIVENESS_S
from tests.streamer.test_sources import read_all

FPS = 15


def test_realtime_file_with_a_forward_jump_does_not_stall(start_source, tmp_path, event_log):
    """MPEG-TS whose timestamps jump +1000 s half-way: realtime pacing used to wait 1000 s."""
    clip = write_video(tmp_path / "jump.ts", 20, container="mpegts", jump_at=10, jump_s=1000.0)
    src = start_source(str(clip), "jump", SourceSettings(realtime=True, queue_size=64), event_log)
    frames = read_all(src, timeout_s=LIVENESS_S)
    assert [f.index for f in frames] == list(range(20))
    pts = [f.pts_s for f in frames]
    assert pts[10] - pts[9] == pytest.approx(1000.0 + 1 / FPS, abs=1e-3)  # published as the file has it
    assert event_log.kinds() == ["started", "discontinuity", "ended"]
    jump = event_log.of_kind("discontinuity")[0]
    assert jump.details["jump_s"] == pytest.approx(1000.0 + 1 / FPS, abs=1e-3)
    assert jump.details["pts_from_s"] == pytest.approx(pts[9], abs=1e-3)
    assert "jumped +1000.067 s" in jump.reason
    assert src.stats.discontinuities == 1


def test_timestamps_running_backwards_are_published_as_is(start_source, tmp_path, event_log):
    later = write_video(tmp_path / "a.ts", 10, container="mpegts", start_s=10.0)
    earlier = write_video(tmp_path / "b.ts", 10, (96, 64), container="mpegts")
    clip = concat_files(tmp_path / "back.ts", later, earlier)  # also a resolution change
    src = start_source(str(clip), "back", SourceSettings(realtime=True, queue_size=64), event_log)
    frames = read_all(src)
    assert [f.index for f in frames] == list(range(20))
    pts = [f.pts_s for f in frames]
    assert pts[9] > 10.0 and pts[10] < 1.0
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert sum(s < 0 for s in steps) == 1  # one step back, every other one forward
    assert {f.image.size_wh for f in frames} == {(64, 48), (96, 64)}
    assert event_log.kinds() == ["started", "discontinuity", "ended"]
    assert event_log.of_kind("discontinuity")[0].details["jump_s"] < -9.0


def test_a_small_timestamp_gap_is_not_a_discontinuity(start_source, tmp_path, event_log):
    clip = write_video(tmp_path / "gap.ts", 12, container="mpegts", jump_at=6, jump_s=1.0)
    src = start_source(str(clip), "gap", SourceSettings(discontinuity_s=2.0), event_log)
    assert len(read_all(src)) == 12
    assert event_log.kinds() == ["started", "ended"]


def test_truncated_file_with_its_index_first_ends_flagged_truncated(start_source, tmp_path, event_log):
    whole = write_video(tmp_path / "whole.mp4", 60, (160, 120), faststart=True)
    cut = truncate_file(whole, tmp_path / "cut.mp4", 0.6)
    src = start_source(str(cut), "cut", SourceSettings(), event_log)
    frames = read_all(src)
    assert 0 < len(frames) < 60
    assert event_log.kinds() == ["started", "ended"]
    ended = event_log.events[-1]
    assert ended.details["truncated"] is True and "truncated" in ended.reason, ended
    # The whole file is not flagged.
    event_log.events.clear()
    src = start_source(str(whole), "whole", SourceSettings(), event_log)
    assert len(read_all(src)) == 60
    assert event_log.events[-1].details["truncated"] is False


def test_truncated_file_with_its_index_last_fails_with_the_reason(start_source, tmp_path, event_log):
    whole = write_video(tmp_path / "whole.mp4", 60, (160, 120))
    cut = truncate_file(whole, tmp_path / "cut.mp4", 0.5)
    src = start_source(str(cut), "cut", SourceSettings(), event_log)
    assert read_all(src) == []
    assert event_log.kinds() == ["failed"]
    assert "InvalidDataError" in event_log.events[0].reason


@pytest.mark.parametrize(
    ("uri", "secret"),
    [
        ("rtsp://admin:s3cret@[::1/live", "s3cret"),  # no parser accepts it
        ("rtsp://admin:pa/ss@cam/live", "pa"),  # an unescaped "/" in the password
        ("rtsp://admin:p@ss@cam/live", "p@ss"),
        ("http://u:tok3n@h/x.m3u8?a=b", "tok3n"),
    ],
)
def test_redact_uri_hides_odd_passwords(uri, secret):
    redacted = redact_uri(uri)
    assert secret not in redacted.replace("admin", "").replace("u:***", "")
    assert ":***@" in redacted


@pytest.mark.rtsp
def test_a_refused_password_fails_at_once_without_retrying(rtsp_server, start_source, event_log):
    server = rtsp_server(auth="user:secret")
    wrong = server.url.replace("rtsp://", "rtsp://user:wrong@")
    settings = SourceSettings(backoff_initial_s=0.05, backoff_max_s=0.1, open_timeout_s=10)  # retries forever
    src = start_source(wrong, "locked", settings, event_log)
    failed = event_log.wait_for("failed", LIVENESS_S)
    assert failed is not None and event_log.kinds() == ["failed"], event_log.kinds()
    assert "401" in failed.reason and "not retried" in failed.reason and failed.details["auth_failed"] is True
    assert src.stats.reconnects == 0
    assert "wrong" not in repr(event_log.events)
    # The right password plays.
    ok = start_source(server.url.replace("rtsp://", "rtsp://user:secret@"), "open", settings, event_log)
    assert ok.read(timeout=LIVENESS_S) is not None
