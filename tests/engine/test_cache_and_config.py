"""Prompt cache reuse/invalidation, fingerprints, config validation and model loading errors."""

from __future__ import annotations

import pytest
import yaml

from configs.engine import ModelSettings
from engine import ConfigError, ExpressionEngine, ModelLoadError
from engine.models import load_clip


def test_second_start_reuses_prompt_cache(offline):
    first = ExpressionEngine(offline())
    assert (first.prompt_cache.hits, first.prompt_cache.misses) == (0, 1)
    second = ExpressionEngine(offline())
    assert (second.prompt_cache.hits, second.prompt_cache.misses) == (1, 0)
    assert second.fingerprint == first.fingerprint
    assert (second.class_embeddings == first.class_embeddings).all()


def test_changing_one_template_recomputes(offline, tmp_path):
    custom = {"happy": ["a photo of a happy face."], "sad": ["a photo of a sad face."]}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"classes": custom}))
    a = ExpressionEngine(offline(f"engine.prompts.custom={f}"))
    assert a.classes == ["happy", "sad"]
    custom["sad"] = ["a photo of a very sad face."]
    f.write_text(yaml.safe_dump({"classes": custom}))
    b = ExpressionEngine(offline(f"engine.prompts.custom={f}"))
    assert b.prompt_cache.misses == 1 and b.prompt_cache.hits == 0
    assert b.fingerprint != a.fingerprint
    assert (b.class_embeddings[0] == a.class_embeddings[0]).all()
    assert not (b.class_embeddings[1] == a.class_embeddings[1]).all()


@pytest.mark.parametrize(
    "overrides",
    [
        ["engine.head=none"],
        ["engine.model.seed=1"],
        ["engine.preprocess=clip"],
        ["engine.prompts.set=ensemble10"],
        ["engine.precision=int8", "engine.backend=onnxruntime"],
        ["engine.precision=fp8"],
    ],
)
def test_fingerprint_changes_with_each_ingredient(offline, overrides):
    assert ExpressionEngine(offline()).fingerprint != ExpressionEngine(offline(*overrides)).fingerprint


def test_user_templates_with_placeholder(offline):
    eng = ExpressionEngine(
        offline('engine.prompts.templates=["a photo of a {} face.", "{}"]', "engine.prompts.classes=[calm, tense]")
    )
    assert eng.classes == ["calm", "tense"]
    assert eng.prompts.templates[1] == ("a photo of a tense face.", "tense")


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "engine.backend=cuda-magic",
            r"engine.backend: got 'cuda-magic'; allowed: 'auto', 'torch', 'compile', 'onnxruntime' or 'tensorrt'",
        ),
        ("engine.device=gpu", r"engine.device: got 'gpu'.*auto, cpu, cuda, cuda:N"),
        ("engine.max_batch=0", r"engine.max_batch: got 0"),
        ("engine.smoothing.ema_alpha=1.5", r"engine.smoothing.ema_alpha: got 1.5"),
        ("engine.modle.name=x", r"engine.modle: unknown key"),
        ("engine.prompts.set=nope", r"engine.prompts.set: got 'nope'; allowed: class_name"),
        ("engine.prompts.classes=basic9", r"engine.prompts.classes: got 'basic9'; allowed: basic7"),
        ("engine.prompts.templates=[no placeholder]", r"each template needs a \{\}"),
    ],
)
def test_bad_config_names_key_value_and_allowed(offline, override, expected):
    with pytest.raises(ConfigError, match=expected):
        ExpressionEngine(offline(override))


def test_unknown_model_and_bad_tag():
    with pytest.raises(ModelLoadError, match="unknown open_clip model 'ViT-Q-99'"):
        load_clip(ModelSettings(name="ViT-Q-99", pretrained=None))
    with pytest.raises(ModelLoadError, match="neither a file nor a pretrained tag of ViT-B-32"):
        load_clip(ModelSettings(name="ViT-B-32", pretrained="not-a-tag"))


def test_offline_without_weights_says_what_to_place_where(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"ViT-B-32/openai.*set engine.model.pretrained to the local file path"):
        load_clip(ModelSettings(name="ViT-B-32", pretrained="openai", cache_dir=str(tmp_path)))
