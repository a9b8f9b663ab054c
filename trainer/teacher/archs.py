"""BLIP-2 teacher architectures by name, as one table: the paper's Flan-T5 XXL, the smaller
XL, and the tiny test model. ``trainer bench-extract`` builds the real ones with random
weights; the tiny one is what the tests and the offline config train with.

Example:
    >>> cfg = arch_config("tiny")
    >>> cfg.num_query_tokens, cfg.text_config.d_model, cfg.vision_config.image_size
    (32, 32, 64)
"""

from __future__ import annotations

from typing import Any, Literal

from configs.core.errors import ConfigError

TINY_VOCAB = 64

_T5 = {
    "model_type": "t5",
    "feed_forward_proj": "gated-gelu",
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
_VISION_G = {
    "hidden_size": 1408,
    "intermediate_size": 6144,
    "num_hidden_layers": 39,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
}
_QFORMER = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "cross_attention_frequency": 2,
    "encoder_hidden_size": 1408,
}
_FLAN_T5 = {**_T5, "vocab_size": 32128, "d_kv": 64, "num_layers": 24, "num_decoder_layers": 24}

ARCHS: dict[str, dict[str, Any]] = {
    "blip2-flan-t5-xxl": {
        "vision_config": _VISION_G,
        "qformer_config": _QFORMER,
        "text_config": {**_FLAN_T5, "d_model": 4096, "d_ff": 10240, "num_heads": 64},
    },
    "blip2-flan-t5-xl": {
        "vision_config": _VISION_G,
        "qformer_config": _QFORMER,
        "text_config": {**_FLAN_T5, "d_model": 2048, "d_ff": 5120, "num_heads": 32},
    },
    "tiny": {
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 16,
        },
        "qformer_config": {
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "cross_attention_frequency": 1,
            "vocab_size": TINY_VOCAB,
            "max_position_embeddings": 64,
        },
        "text_config": {
            **_T5,
            "vocab_size": TINY_VOCAB,
            "d_model": 32,
            "d_kv": 8,
            "d_ff": 64,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 4,
            "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16,
        },
    },
}
"""Each architecture's sub-configs (no weights); all have 32 query tokens."""


def arch_config(arch: str, kind: Literal["blip2", "instructblip"] = "blip2"):  # -> PretrainedConfig
    """The transformers config of a named architecture (BLIP-2 or InstructBLIP layout)."""
    # optional: transformers comes with the train extra
    from transformers import Blip2Config, InstructBlipConfig

    if arch not in ARCHS:
        raise ConfigError(f"teacher architecture {arch!r}; allowed: {', '.join(ARCHS)}")
    cls = InstructBlipConfig if kind == "instructblip" else Blip2Config
    return cls(**ARCHS[arch], num_query_tokens=32)
