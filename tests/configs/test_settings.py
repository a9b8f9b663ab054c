"""The settings root: one schema and one loader for every command, generated references that
cannot go stale, errors that name the dotted key, and one path resolver."""

from __future__ import annotations

import pytest
import yaml

import configs
from configs import Settings, load_settings
from configs.core.errors import ConfigError, ExitCode
from configs.docgen import default_yaml, undocumented, with_reference
from configs.loader import read_yaml
from tests.streamer.helpers import ROOT

DEFAULT_YAML = ROOT / "configs" / "default.yaml"
CONFIG_MD = ROOT / "docs" / "config.md"


def test_default_yaml_is_generated_from_the_models_and_comments_every_key():
    assert load_settings(DEFAULT_YAML) == Settings()
    text = DEFAULT_YAML.read_text()
    assert text == default_yaml(), "configs/default.yaml is stale: python -m configs.docgen --yaml configs/default.yaml"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), f"key without a comment: {line!r}"
    assert set(yaml.safe_load(text)) == set(Settings.model_fields)


def test_docs_reference_is_current_and_covers_every_section():
    text = CONFIG_MD.read_text()
    assert text == with_reference(text), "docs/config.md is stale: python -m configs.docgen --markdown docs/config.md"
    for section in Settings.model_fields:
        assert f"### `{section}`" in text
    assert "`trainer.fit.lr`" in text and "`detector.min_face_px`" in text


def test_every_key_has_a_description():
    assert undocumented() == []


def test_file_then_overrides():
    s = load_settings("offline", ["detector.name=haar", "scheduler.max_hz=4", "sources.queue_size=8"])
    assert s.engine.model.name == "ExpStream-Tiny"
    assert s.detector.name == "haar" and s.scheduler.max_hz == 4.0 and s.sources.queue_size == 8
    assert s.engine.model.config_file == str(configs.path("models/ExpStream-Tiny.json"))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("detector.name=yolo", ["detector.name", "'yolo'", "insightface", "haar"]),
        ("detector.model=foo", ["detector.model", "'foo'", "buffalo_l", ".onnx"]),
        ("scheduler.max_hz=0", ["scheduler.max_hz", "0", "greater than 0"]),
        ("publisher.endpoint=localhost:5556", ["publisher.endpoint", "localhost:5556", "tcp://"]),
        ("publisher.endpoint=tcp://127.0.0.1:99999", ["publisher.endpoint", "99999", "1-65535"]),
        ("publisher.endpoint=tcp://127.0.0.1:http", ["publisher.endpoint", "not a number"]),
        ("publisher.encoding=xml", ["publisher.encoding", "'xml'", "json", "msgpack"]),
        ("tracker.lost_track=3", ["tracker.lost_track", "unknown key", "tracker.lost_track_s"]),
        ("sources.queue_size=0", ["sources.queue_size", "0"]),
        ("engine.backend=tpu", ["engine.backend", "'tpu'", "onnxruntime"]),
        ("engine.device=gpu", ["engine.device", "'gpu'", "cuda:N"]),
        ("engine.modle.name=x", ["engine.modle", "unknown key", "engine.model"]),
        ("engine.smoothing.ema_alpha=1.5", ["engine.smoothing.ema_alpha", "1.5"]),
        ("trainer.fit.lr=-1", ["trainer.fit.lr", "-1", "greater than 0"]),
        ("trainer.fit.device=gpu", ["trainer.fit.device", "cuda:N"]),
        ("trainer.extract.harvest.detector=haar", ["trainer.extract.harvest.detector", "unknown key"]),
        ("trainr.fit.epochs=2", ["trainr", "unknown key", "did you mean 'trainer'"]),
    ],
)
def test_errors_name_key_value_and_allowed(override, expected):
    with pytest.raises(ConfigError) as e:
        load_settings(None, [override])
    for piece in expected:
        assert piece in str(e.value), (piece, str(e.value))
    assert e.value.exit_code == ExitCode.CONFIG


def test_typos_at_every_level_of_a_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("trainr:\n  fit: {}\nengine:\n  promtps: {}\ntrainer:\n  fit:\n    epoch: 3\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    text = str(e.value)
    for key in ("trainr: unknown key", "engine.promtps: unknown key", "trainer.fit.epoch: unknown key"):
        assert key in text, text
    assert str(cfg) in text


def test_missing_file_bad_yaml_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(bad)
    for item in ("detector.name", "=x", "a..b=1"):
        with pytest.raises(ConfigError, match=r"dotted\.key=value"):
            load_settings(None, [item])
    with pytest.raises(ConfigError, match="not a section"):
        load_settings(None, ["scheduler.max_hz=4", "scheduler.max_hz.x=1"])


def test_packaged_config_by_name(tmp_path):
    by_name = load_settings("offline", [f"engine.cache_dir={tmp_path}"])
    by_path = load_settings(configs.path("offline.yaml"), [f"engine.cache_dir={tmp_path}"])
    assert by_name == by_path and by_name.engine.model.name == "ExpStream-Tiny"
    with pytest.raises(ConfigError, match="config file not found: no-such-config"):
        load_settings("no-such-config")


def test_relative_paths_resolve_against_the_file_overrides_against_the_working_dir(tmp_path, monkeypatch):
    (tmp_path / "cfg" / "m").mkdir(parents=True)
    cfg = tmp_path / "cfg" / "c.yaml"
    cfg.write_text(
        "detector: {model: m/det.onnx}\n"
        "engine: {head: heads/h.safetensors, cache_dir: cache, model: {pretrained: openai}}\n"
        "trainer: {teacher: {model: ./teachers/tiny}}\n"
        "preview: {path: out/preview.mp4}\n"
    )
    s = load_settings(cfg)
    base = cfg.parent.resolve()
    assert s.detector.model == str(base / "m" / "det.onnx")
    assert s.engine.head == str(base / "heads" / "h.safetensors")
    assert s.engine.cache_dir == str(base / "cache")
    assert s.trainer.teacher.model == str(base / "teachers" / "tiny")
    assert s.preview.path == str(base / "out" / "preview.mp4")
    # Names stay names: a pretrained tag, a released head, a pack, a Hugging Face id.
    assert s.engine.model.pretrained == "openai"
    named = load_settings(None, ["engine.head=expclip-b32", "trainer.teacher.model=Salesforce/blip2-flan-t5-xl"])
    assert named.engine.head == "expclip-b32" and named.trainer.teacher.model == "Salesforce/blip2-flan-t5-xl"
    assert named.detector.model == "buffalo_l"
    monkeypatch.chdir(tmp_path)
    over = load_settings(cfg, ["engine.head=h2.pth", "preview.path=p.mp4"])
    assert over.engine.head == str(tmp_path.resolve() / "h2.pth")
    assert over.preview.path == str(tmp_path.resolve() / "p.mp4")


def test_one_file_drives_serving_and_training():
    s = load_settings("train-offline")
    assert s.detector.name == "haar" and s.trainer.teacher.model == "tiny-random"
    assert s.engine == load_settings("offline").engine


def test_replace_validates():
    s = Settings()
    assert s.scheduler.replace(max_hz=3).max_hz == 3
    with pytest.raises(ValueError, match="greater than 0"):
        s.scheduler.replace(max_hz=0)


def test_packaged_yaml_files_load():
    for name in ("default.yaml", "offline.yaml", "train-offline.yaml"):
        assert isinstance(read_yaml(configs.path(name)), dict)
        load_settings(configs.path(name))
