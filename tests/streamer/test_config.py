"""Streamer settings: defaults, the commented default.yaml, overrides and error messages."""

from __future__ import annotations

import pytest
import yaml

from streamer.config import ConfigError, StreamerSettings, load_settings
from streamer.configdoc import default_yaml
from tests.streamer.helpers import OFFLINE, ROOT

DEFAULT_YAML = ROOT / "configs" / "default.yaml"


def test_default_yaml_matches_the_models_and_comments_every_key():
    assert load_settings(DEFAULT_YAML) == StreamerSettings()
    text = DEFAULT_YAML.read_text()
    assert text == default_yaml(), "configs/default.yaml is stale: python -m streamer.configdoc --yaml ..."
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), f"key without a comment: {line!r}"


def test_default_publisher_endpoint_and_sections():
    s = load_settings(None)
    assert s.publisher.endpoint == "tcp://127.0.0.1:5556"
    assert set(yaml.safe_load(DEFAULT_YAML.read_text())) == set(StreamerSettings.model_fields)


def test_file_then_overrides():
    s = load_settings(OFFLINE, ["detector.name=haar", "scheduler.max_hz=4", "sources.queue_size=8"])
    assert s.engine.model.name == "ExpStream-Tiny"
    assert s.detector.name == "haar" and s.scheduler.max_hz == 4.0 and s.sources.queue_size == 8
    assert s.engine.model.config_file.endswith("configs/models/ExpStream-Tiny.json")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("detector.name=yolo", ["detector.name", "'yolo'", "insightface", "haar"]),
        ("detector.model=foo", ["detector.model", "'foo'", "buffalo_l", ".onnx"]),
        ("scheduler.max_hz=0", ["scheduler.max_hz", "0", "greater than 0"]),
        ("publisher.endpoint=localhost:5556", ["publisher.endpoint", "localhost:5556", "tcp://"]),
        ("publisher.encoding=xml", ["publisher.encoding", "'xml'", "json", "msgpack"]),
        ("tracker.lost_track=3", ["tracker.lost_track", "unknown key"]),
        ("sources.queue_size=0", ["sources.queue_size", "0"]),
        ("engine.backend=tpu", ["engine.backend", "'tpu'", "onnxruntime"]),
    ],
)
def test_errors_name_key_value_and_allowed(override, expected):
    with pytest.raises(ConfigError) as e:
        load_settings(None, [override])
    for piece in expected:
        assert piece in str(e.value), (piece, str(e.value))


def test_missing_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"dotted\.key=value"):
        load_settings(None, ["detector.name"])


def test_relative_detector_model_resolves_against_the_config_file(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "det.onnx").write_bytes(b"x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector:\n  model: m/det.onnx\n")
    assert load_settings(cfg).detector.model == str(tmp_path / "m" / "det.onnx")
