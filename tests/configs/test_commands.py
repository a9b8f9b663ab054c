"""Every command loads the same config the same way: a typo at any level is a configuration
error naming the dotted key (exit 2, no traceback), and one file drives serving and training."""

from __future__ import annotations

import pytest

from configs.core.errors import ExitCode
from streamer.cli import main as streamer
from trainer.cli import main as trainer

TYPOS = [
    ("trainr.fit.epochs=2", "trainr: unknown key (did you mean 'trainer'?)"),
    ("engine.promtps.set=ensemble5", "engine.promtps: unknown key (did you mean 'engine.prompts'?)"),
    ("trainer.fit.epoch=2", "trainer.fit.epoch: unknown key (did you mean 'trainer.fit.epochs'?)"),
    ("detector.min_face=3", "detector.min_face: unknown key"),
]

COMMANDS = [
    ("streamer", ["run", "clip.mp4"]),
    ("streamer", ["bench"]),
    ("streamer", ["bench", "--engine-only"]),
    ("streamer", ["build-engine"]),
    ("trainer", ["extract", "--images", "faces", "--out", "feats"]),
    ("trainer", ["fit", "--store", "feats", "--out", "head.safetensors"]),
    ("trainer", ["eval", "--images", "labelled", "--out", "eval"]),
    ("trainer", ["reproduce", "--data", "data", "--out", "repro"]),
    ("trainer", ["bench-fit"]),
    ("trainer", ["bench-extract"]),
]


@pytest.mark.parametrize(("override", "message"), TYPOS)
@pytest.mark.parametrize(("prog", "argv"), COMMANDS, ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_a_typo_at_any_level_is_a_config_error_naming_the_key(
    prog, argv, override, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # nothing may be written into the checkout
    main = streamer if prog == "streamer" else trainer
    assert main([*argv, "-c", "offline", "--set", override]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_typo_in_the_file_names_the_file_and_the_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("engine:\n  model:\n    nmae: ViT-B-32\n")
    for main, argv in ((streamer, ["run", "x.mp4"]), (trainer, ["fit", "--store", "s", "--out", "h.safetensors"])):
        assert main([*argv, "-c", str(cfg)]) == ExitCode.CONFIG
        err = capsys.readouterr().err
        assert "engine.model.nmae: unknown key (did you mean 'engine.model.name'?)" in err and str(cfg) in err
