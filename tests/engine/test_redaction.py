"""URL passwords never reach a log line, a traceback or an error message the CLI prints."""

from __future__ import annotations

import io
import logging

import av
import pytest

from configs.core.logs import install_log_redaction, redact_secrets


@pytest.fixture
def redacted_log():
    """A logger whose handler writes to a buffer through the CLI's redaction filter."""
    buf = io.StringIO()
    logger = logging.getLogger("tests.redaction")
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    install_log_redaction(logger)
    yield logger, buf
    logger.removeHandler(handler)


def test_log_arguments_and_ffmpeg_tracebacks_are_redacted(redacted_log):
    log, buf = redacted_log
    log.warning("sources: %s", ["cam=rtsp://admin:s3cret@10.0.0.5/live", "b.mp4"])
    with pytest.raises(av.error.FFmpegError) as info:  # PyAV puts the URL in the error's text
        av.open("rtsp://admin:s3cret@127.0.0.1:1/x", options={"rtsp_transport": "tcp"}, timeout=(5, 5))
    assert "s3cret" in str(info.value)
    try:
        raise RuntimeError("wrapped") from info.value
    except RuntimeError:
        log.exception("cannot open")
    log.info("resolved configuration:\n%s", "engine:\n  head: /srv/https:/u:hunter2@host/h.pth\n")
    text = buf.getvalue()
    assert "s3cret" not in text and "hunter2" not in text
    assert text.count("admin:***@") >= 3 and "Traceback" in text and "ConnectionRefusedError" in text


def test_config_error_messages_are_redacted(capsys):
    from streamer.cli import main

    assert main(["run", "x.mp4", "--set", "sources.rtsp_transport=rtsp://u:s3cret@h/x"]) == 2
    err = capsys.readouterr().err
    assert "sources.rtsp_transport" in err and "u:***@h/x" in err and "s3cret" not in err


def test_text_without_credentials_is_untouched():
    for text in ("rtsp://cam/live", "/data/a@b.mp4", "user@example.com wrote", "tcp://127.0.0.1:5556"):
        assert redact_secrets(text) == text


def test_the_resolved_configuration_and_model_errors_are_redacted(tmp_path):
    """`streamer run` logs its resolved configuration, then fails to load a head named by a
    URL with a password: neither the dump nor the error shows the password."""
    import subprocess

    from tests.streamer.helpers import OFFLINE, ROOT, streamer_cmd

    head = "https://user:s3cret@models.example/head.pth"
    cmd = streamer_cmd("run", "x.mp4", "-c", OFFLINE, "--set", f"engine.head={head}")
    cmd += ["--set", f"engine.cache_dir={tmp_path}", "--set", "publisher.endpoint=tcp://127.0.0.1:*"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "resolved configuration" in res.stderr and "user:***@models.example/head.pth" in res.stderr
    assert "s3cret" not in res.stderr + res.stdout


def test_sources_can_come_from_a_file_so_passwords_stay_out_of_the_process_list(tmp_path):
    from streamer.cli import build_parser

    listing = tmp_path / "sources.txt"
    listing.write_text("door=rtsp://user:s3cret@10.0.0.5/live\nlobby.mp4\n")
    args = build_parser().parse_args(["run", f"@{listing}", "--set", "scheduler.max_hz=4"])
    assert args.sources == ["door=rtsp://user:s3cret@10.0.0.5/live", "lobby.mp4"]
    assert args.overrides == ["scheduler.max_hz=4"]
