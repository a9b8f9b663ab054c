"""A tiny random BLIP-2 (or InstructBLIP) teacher with a tokenizer built offline.

Right structure, meaningless features: ~84k parameters, built in milliseconds, saved with
``save_pretrained`` so the normal local-directory loading path reads it back
(the offline config's ``tiny-random`` teacher).

Example (plain text)::

    path = build_tiny_teacher("/tmp/tiny-blip2", seed=0)
    teacher = load_teacher(TeacherSettings(model=str(path)))
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch

from configs.trainer import PAPER_INSTRUCTION
from trainer.teacher.archs import TINY_VOCAB, arch_config


def _tiny_tokenizer(words: list[str]):  # -> PreTrainedTokenizerFast
    # optional: transformers comes with the train extra
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in words:
        if w not in vocab and len(vocab) < TINY_VOCAB:
            vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_config(kind: Literal["blip2", "instructblip"] = "blip2"):  # -> PretrainedConfig
    """The tiny configuration (vision 64 px, Q-Former 32 queries, T5 d_model 32)."""
    return arch_config("tiny", kind)


def build_tiny_teacher(
    path: str | Path,
    seed: int = 0,
    kind: Literal["blip2", "instructblip"] = "blip2",
    instruction: str = PAPER_INSTRUCTION,
) -> Path:
    """Build a seeded tiny teacher and save model + tokenizer(s) to ``path``."""
    # optional: transformers comes with the train extra
    from transformers import Blip2ForConditionalGeneration, InstructBlipForConditionalGeneration

    out = Path(path).expanduser()
    cls = InstructBlipForConditionalGeneration if kind == "instructblip" else Blip2ForConditionalGeneration
    torch.manual_seed(seed)
    model = cls(tiny_config(kind)).eval()
    with torch.no_grad():  # random query tokens start at zero: make them informative
        model.query_tokens.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(seed))
    words = re.findall(r"\w+|[^\w\s]+", instruction)
    tokenizer = _tiny_tokenizer(words)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if kind == "instructblip":
        tokenizer.save_pretrained(out / "qformer_tokenizer")
    return out
