"""`trainer extract` / `fit` / `eval` / `bench-fit` end to end from the CLI, offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from safetensors import safe_open

import configs
from configs.core.errors import ExitCode
from streamer.cli import main as streamer_main
from tests.media import make_face_clip
from tests.trainer.conftest import write_images
from trainer.cli import main


def test_extract_fit_eval_from_the_cli(
    tmp_path: Path, config_path: Path, overrides: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_images(tmp_path / "faces", 24, seed=5)
    (tmp_path / "clips").mkdir()
    make_face_clip(tmp_path / "clips" / "group.mp4", seconds=1.0, fps=10)
    for seed, c in enumerate(("happy", "sad", "surprised")):
        write_images(tmp_path / "labelled", 4, seed=seed, classes=(c,))
    sets = [a for o in [*overrides, "trainer.extract.shard_size=8", "detector.min_face_px=20"] for a in ("--set", o)]
    common = ["--config", str(config_path), "-q", *sets]

    assert (
        main(
            [
                "extract",
                *common,
                "--images",
                str(tmp_path / "faces"),
                "--videos",
                str(tmp_path / "clips"),
                "--out",
                str(tmp_path / "feats"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    faces = int(re.search(r"(\d+) faces harvested", out).group(1))
    computed = int(re.search(r"(\d+) computed", out).group(1))
    assert faces >= 2 and computed == 24 + faces  # harvested faces are extracted too
    assert "0 unreadable" in out
    assert "teacher targets: 5 stochastic draws per face (reference)" in out  # K = epochs (5) by default
    n_stored = sum(1 for _ in (tmp_path / "feats").glob("shard-*.safetensors"))
    assert n_stored >= 3

    head = tmp_path / "head.safetensors"
    assert (
        main(
            [
                "fit",
                *common,
                "--store",
                str(tmp_path / "feats"),
                "--out",
                str(head),
                "--export-expclip",
                str(tmp_path / "head.pth"),
                "--epochs",
                "2",
                "--set",
                "trainer.fit.batch_size=8",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "epoch 1/2: loss" in out and "epoch 2/2: loss" in out and "in-batch acc" in out
    assert "teacher draw 0)" in out and "teacher draw 1)" in out
    with safe_open(str(head), framework="pt") as f:
        meta = json.loads(f.metadata()["expstream"])
        assert f.get_tensor("mlp.weight").shape == (32, 64)  # tiny teacher 32-d, tiny CLIP 64-d
    assert meta["backbone"] == "ExpStream-Tiny" and meta["preprocess"] == "expclip"
    assert meta["fit"]["epochs"] == 2 and (tmp_path / "head.pth").is_file()
    assert (meta["teacher_targets"], meta["teacher_draws"], meta["resize"]) == ("reference", 5, "pil")

    assert (
        main(
            [
                "eval",
                *common,
                "--head",
                str(head),
                "--images",
                str(tmp_path / "labelled"),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "head: UAR" in out and "clip: UAR" in out
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["samples"] == 12 and report["mapping"]["surprised"] == "surprise"
    assert {p.name for p in (tmp_path / "eval").glob("*.png")} == {"confusion-head.png", "confusion-clip.png"}


def test_bench_fit_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench-fit",
                "--pairs",
                "300",
                "--dim",
                "32",
                "--out-dim",
                "64",
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["pairs"] == 300 and len(r["seconds_per_epoch"]) == 2 and r["pairs_per_s"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "--store", "/no/store", "--out", "h.safetensors"], "not a feature store"),
        (["eval", "--images", "/no/folder", "--out", "x", "--set", "engine.head=none"], "no such folder"),
        (["extract", "--out", "x", "--set", "trainer.fit.lr=-1"], "trainer.fit.lr"),
        (["fit", "--store", "x", "--out", "h.safetensors", "--epochs", "0"], "trainer.fit.epochs: got 0"),
        (["reproduce", "--data", "/no/root", "--out", "x"], "--data: no such folder /no/root"),
        (["reproduce", "--data", ".", "--out", "x", "--datasets", "rafdb"], "unknown ['rafdb']; allowed: raf-db"),
    ],
)
def test_cli_errors_name_the_problem(
    argv: list[str],
    message: str,
    config_path: Path,
    overrides: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written into the checkout
    sets = [a for o in overrides for a in ("--set", o)]
    assert main([*argv, "--config", str(config_path), "-q", *sets]) == 2
    assert message in capsys.readouterr().err


def test_bench_extract_cli_with_tiny_shapes(tmp_path: Path) -> None:
    import configs

    tiny_clip = str(configs.path("models/ExpStream-Tiny.json"))
    argv = [
        "bench-extract",
        "--clip-model",
        "ExpStream-Tiny",
        "--clip-config-file",
        tiny_clip,
        "--teacher-arch",
        "tiny",
        "--images",
        "16",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--json",
        str(tmp_path / "e.json"),
    ]
    assert main(argv) == 0
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["images"] == 16 and r["teacher_images_per_s"] > 0 and r["clip_images_per_s"] > 0
    assert r["teacher_draws"] is None and r["teacher_precision"] == "fp32"
    assert main([*argv, "--draws", "2"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["teacher_draws"] == 2


def test_one_config_file_drives_streamer_run_and_trainer_extract(tmp_path, tiny_teacher_dir, cache_dir):
    """The same file (with the tiny teacher) serves a clip and extracts training features."""
    cfg = tmp_path / "site.yaml"
    tiny = configs.path("models/ExpStream-Tiny.json")
    cfg.write_text(
        f"engine:\n  model: {{name: ExpStream-Tiny, pretrained: null, config_file: {tiny}}}\n"
        f"  head: random\n  device: cpu\n  backend: torch\n  cache_dir: {cache_dir}\n"
        "detector:\n  name: haar\n  min_face_px: 20\n"
        f"trainer:\n  teacher: {{model: {tiny_teacher_dir}, precision: fp32}}\n"
        "  extract: {shard_size: 8, batch_size: 8}\n"
    )
    clip = make_face_clip(tmp_path / "clip.mp4", seconds=1.0, fps=10)
    out = tmp_path / "results.jsonl"
    assert streamer_main(["run", f"cam0={clip}", "-c", str(cfg), "--out", str(out)]) == ExitCode.OK
    faces = [m for m in map(json.loads, out.read_text().splitlines()) if m["type"] == "faces"]
    assert len(faces) == 10 and any(m["faces"] for m in faces)
    write_images(tmp_path / "faces", 8)
    feats = tmp_path / "feats"
    assert main(["extract", "-c", str(cfg), "-q", "--images", str(tmp_path / "faces"), "--out", str(feats)]) == 0
    assert list(feats.glob("shard-*.safetensors"))
