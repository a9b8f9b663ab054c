"""The CLIP text tower in the reference's precision: on CUDA OpenAI's ``clip.load`` converts
CLIP to fp16 (linear / attention weights and ``text_projection``; embeddings and LayerNorm
weights stay fp32 and LayerNorms compute in fp32). Checked on CPU, where fp16 runs too."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, LayerNormFp32

from engine import ExpressionEngine
from engine.fingerprint import identity, prompt_cache_key
from engine.prompts import text_tower
from engine.runtime import resolve_text_dtype


@pytest.mark.parametrize(
    ("precision", "device", "dtype"),
    [("auto", "cuda", torch.float16), ("auto", "cpu", torch.float32), ("bf16", "cpu", torch.bfloat16)],
)
def test_text_dtype_resolution(precision: str, device: str, dtype: torch.dtype) -> None:
    assert resolve_text_dtype(precision, torch.device(device)) == dtype


def test_text_tower_is_converted_like_openai_clip_load(offline) -> None:
    engine = ExpressionEngine(offline("engine.head=none"))
    model = engine.clip_model
    low = text_tower(model, torch.float16)
    assert low is not model and low.visual is None and model.visual is not None  # no image tower copied
    kinds = {n: p.dtype for n, p in low.named_parameters()}
    assert kinds["text_projection"] == torch.float16
    assert kinds["transformer.resblocks.0.attn.in_proj_weight"] == torch.float16
    assert kinds["transformer.resblocks.1.mlp.c_fc.weight"] == torch.float16
    assert kinds["token_embedding.weight"] == kinds["positional_embedding"] == torch.float32
    assert kinds["ln_final.weight"] == kinds["transformer.resblocks.0.ln_1.weight"] == torch.float32
    norms = [m for m in low.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(type(m) is LayerNormFp32 for m in norms)  # compute in fp32, cast back
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the engine's model untouched
    assert any(type(m) is LayerNorm for m in model.modules())
    assert text_tower(model, torch.float32) is model

    tokens = engine.tokenizer(["a photo of a face with an expression of happiness.", "sadness."])
    with torch.no_grad():
        exact, half = model.encode_text(tokens), low.encode_text(tokens)
    assert half.dtype == torch.float16
    cos = F.cosine_similarity(exact, half.float())
    assert (cos > 0.999).all() and not torch.equal(exact, half.float())


def test_text_precision_changes_the_prompt_cache_entry(offline) -> None:
    fp32 = ExpressionEngine(offline())
    fp16 = ExpressionEngine(offline("engine.text_precision=fp16"))
    assert fp16.prompt_cache.misses == 1 and fp16.text_dtype == torch.float16  # not fp32's cached matrix
    cos = F.cosine_similarity(fp32.class_embeddings, fp16.class_embeddings)
    assert (cos > 0.999).all() and not torch.equal(fp32.class_embeddings, fp16.class_embeddings)
    ident = identity("m", "w", "h", "p")
    assert prompt_cache_key(ident, "float32") == prompt_cache_key(ident) != prompt_cache_key(ident, "float16")
