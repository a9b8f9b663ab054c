"""score() equals an independent re-statement of the reference formulas (docs/design.md).

The re-statement below uses only open_clip, torchvision and the head weight: it averages
LOGITS over templates (the reference code's way), while the engine averages normalised
template embeddings per class once and caches them. docs/design.md says both are equal.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2 as T

from engine import ExpressionEngine
from engine.prompts import reference_data

PROMPT_SETS = ["class_name", "an_expression_of", "a_photo_of_a_face", "ensemble5", "ensemble10"]


def reference_pixels(crop: np.ndarray, mode: str, size: int, mean, std) -> torch.Tensor:
    x = torch.from_numpy(crop).permute(2, 0, 1).float()
    if mode == "expclip":  # Resize((224, 224)) of an 8-bit image, ToTensor(), no normalisation
        x = (
            T.functional.resize(x, [size, size], antialias=True).round().clamp(0, 255)
            if x.shape[-2:] != (size, size)
            else x
        )
        return x / 255.0
    x = T.functional.resize(x, size, interpolation=T.InterpolationMode.BICUBIC, antialias=True).round().clamp(0, 255)
    x = T.functional.center_crop(x, [size, size]) / 255.0
    return T.functional.normalize(x, list(mean), list(std))


def reference_logits(engine: ExpressionEngine, weight: torch.Tensor | None, crops, prompt_set: str, classes):
    model, tok = engine.clip_model, engine.tokenizer
    spec = engine.preprocess_spec
    x = torch.stack([reference_pixels(c, spec.mode, spec.image_size, spec.mean, spec.std) for c in crops])
    table = reference_data()["prompt_sets"][prompt_set]
    texts = [p for c in classes for p in table[c]]
    n_templates = len(table[classes[0]])
    with torch.no_grad():
        img = model.encode_image(x).float()
        txt = model.encode_text(tok(texts)).float()
        if weight is not None:
            img, txt = img @ weight.T, txt @ weight.T
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * img @ txt.T
    return logits.reshape(len(crops), len(classes), n_templates).mean(-1).numpy()


def reference_projected(engine: ExpressionEngine, weight: torch.Tensor, crops) -> np.ndarray:
    spec = engine.preprocess_spec
    x = torch.stack([reference_pixels(c, spec.mode, spec.image_size, spec.mean, spec.std) for c in crops])
    with torch.no_grad():
        return (engine.clip_model.encode_image(x).float() @ weight.T).numpy()


@pytest.mark.parametrize("mode", ["expclip", "clip"])
@pytest.mark.parametrize("prompt_set", PROMPT_SETS)
def test_score_matches_reference_formulas(offline, expclip_head_file, crops, prompt_set, mode):
    path, weight = expclip_head_file
    eng = ExpressionEngine(
        offline(f"engine.head={path}", f"engine.prompts.set={prompt_set}", f"engine.preprocess={mode}")
    )
    out = eng.score(crops)
    ref = reference_logits(eng, weight, crops, prompt_set, eng.classes)
    np.testing.assert_allclose(out.logits, ref, rtol=0, atol=1e-5)
    assert out.labels == [eng.classes[i] for i in ref.argmax(1)]
    np.testing.assert_allclose(out.probs, torch.softmax(torch.from_numpy(ref), -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1), 1.0, atol=1e-5)
    projected = reference_projected(eng, weight, crops)
    np.testing.assert_allclose(out.projected_features(), projected, rtol=1e-4, atol=1e-5)
    assert out.features.shape == (len(crops), 4096)


def test_plain_clip_baseline_matches_reference(offline, crops):
    eng = ExpressionEngine(offline("engine.head=none", "engine.preprocess=clip", "engine.prompts.set=ensemble5"))
    ref = reference_logits(eng, None, crops, "ensemble5", eng.classes)
    np.testing.assert_allclose(eng.score(crops).logits, ref, rtol=0, atol=1e-5)


def test_class_mean_equals_logit_mean_and_is_not_renormalised(offline, expclip_head_file):
    path, _ = expclip_head_file
    eng = ExpressionEngine(offline(f"engine.head={path}", "engine.prompts.set=ensemble10"))
    norms = eng.class_embeddings.norm(dim=-1)
    assert torch.all(norms < 1.0 - 1e-4), "class embeddings must be plain means of unit vectors"


def test_mafw11_custom_class_list(offline, crops):
    eng = ExpressionEngine(offline("engine.prompts.classes=mafw11", "engine.prompts.set=ensemble5"))
    assert eng.classes[-1] == "disappointment" and len(eng.classes) == 11
    assert eng.score(crops).probs.shape == (len(crops), 11)
