"""The ``engine`` section: which CLIP backbone, head, prompts, backend, device and precision,
and how scores are smoothed per track (docs/engine.md).

Example:
    >>> EngineSettings().model.name, EngineSettings().head
    ('ViT-L-14', 'expclip-l14')
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from configs.base import ConfigPath, Device, StrictSettings

HEAD_FILES = (".pth", ".pt", ".safetensors")
WEIGHT_FILES = (".pt", ".pth", ".bin", ".safetensors")
PROMPT_FILES = (".yaml", ".yml")


class ModelSettings(StrictSettings):
    """Which CLIP backbone to load and from where."""

    name: str = "ViT-L-14"
    """open_clip model name (``open_clip.list_models()``), or one defined in ``config_file``."""
    pretrained: Annotated[str | None, ConfigPath(WEIGHT_FILES)] = "openai"
    """open_clip pretrained tag (downloaded on first use), a local checkpoint file, or null for
    random weights (seeded; for tests and speed benchmarks only)."""
    config_file: Annotated[str | None, ConfigPath()] = None
    """Extra open_clip model-config JSON to register (e.g. the tiny test model)."""
    seed: int = 0
    """Seed for random weights when ``pretrained`` is null."""
    cache_dir: Annotated[str | None, ConfigPath()] = None
    """Where open_clip caches downloaded weights (default: its own cache)."""


class PromptSettings(StrictSettings):
    """Which classes to score and which text prompts describe them."""

    set: str = "ensemble10"
    """A reference prompt set: class_name, an_expression_of, a_photo_of_a_face, ensemble5,
    ensemble10 (ignored when ``custom`` or ``templates`` is given)."""
    classes: str | list[str] = "basic7"
    """A class set (basic7, basic8, mafw11) or an explicit list of class names."""
    templates: list[str] | None = None
    """Templates with ``{}`` for the class name, applied to every class (e.g. "a photo of a {} face.")."""
    custom: Annotated[str | dict[str, list[str]] | None, ConfigPath(PROMPT_FILES)] = None
    """Path to a YAML mapping ``class: [prompt, ...]`` or that mapping inline: new classes."""
    file: Annotated[str | None, ConfigPath()] = None
    """Reference prompt data (default: the packaged configs/prompts/expclip_prompts.yaml)."""

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, value: str | list[str]) -> str | list[str]:
        """An explicit list: at least one class, no blank name, no name twice (ignoring case
        and surrounding spaces); names are stripped. Every path (config file, ``--set``,
        ``--classes``, the control endpoint) refuses the same way."""
        if isinstance(value, str):
            return value
        names = [str(c).strip() for c in value]
        if not names:
            raise ValueError("an explicit class list needs at least one class")
        if any(not n for n in names):
            raise ValueError("a class name is empty or blank")
        folded = [n.casefold() for n in names]
        twice = sorted({n for n, f in zip(names, folded, strict=True) if folded.count(f) > 1})
        if twice:
            raise ValueError(f"class {', '.join(twice)} given twice; each class once")
        return names


class SmoothingSettings(StrictSettings):
    """Per-track temporal smoothing of expression scores."""

    method: Literal["ema", "window", "none"] = "ema"
    """ema = exponential moving average of probabilities; window = the paper's video protocol
    (mean of the last ``window`` projected features, then scored); none = raw scores."""
    ema_alpha: float = Field(0.3, gt=0.0, le=1.0)
    """Weight of the newest probabilities in the exponential moving average."""
    window: int = Field(16, ge=1, le=10_000)
    """Number of most recent projected features averaged (16 = the paper's video protocol)."""
    max_tracks: int = Field(4096, ge=1, le=1_000_000)
    """Hard cap on tracks with smoothing state; the least recently updated are evicted."""


class EngineSettings(StrictSettings):
    """Everything the expression engine needs."""

    model: ModelSettings = ModelSettings()
    head: Annotated[str, ConfigPath(HEAD_FILES)] = "expclip-l14"
    """Released head (expclip-b32, expclip-b16, expclip-l14; fetched once and cached), a
    local .pth (authors' format) or .safetensors (ours) file, ``none`` for plain CLIP, or
    ``random`` (seeded by model.seed: tests and speed benchmarks only)."""
    preprocess: Literal["auto", "expclip", "clip"] = "auto"
    """expclip = the reference (224x224 squash, [0,1], no mean/std); clip = open_clip's
    standard transform; auto = expclip when a head is loaded, clip for ``head: none``."""
    prompts: PromptSettings = PromptSettings()
    backend: Literal["auto", "torch", "compile", "onnxruntime", "tensorrt"] = "auto"
    """Inference backend. auto = tensorrt on CUDA when torch-tensorrt is installed, else torch;
    onnxruntime, else torch, on CPU, where later starts with the same settings need no torch
    (docs/engine.md)."""
    device: Device = "auto"
    """auto (cuda when available), cpu, cuda or cuda:N."""
    precision: Literal["auto", "fp32", "fp16", "bf16", "fp8", "int8"] = "auto"
    """auto = fp16 on CUDA, fp32 on CPU. Opt-in, accuracy on real weights unverified, so never
    the default: fp8 (torch/compile backends; fast on Hopper only) puts the tower's linear
    layers in float8 e4m3 with static scales calibrated on the first batch; int8 (onnxruntime
    backend, CPU) quantises the exported graph's weights to int8 with dynamic activation
    scales (2.6x fp32 for ViT-B/32 on an AVX-512 VNNI CPU)."""
    text_precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """Precision of the CLIP text tower when the prompt embeddings are built: fp16 / bf16 convert
    its weights as OpenAI's ``clip.load`` does on CUDA (linear and attention weights in low
    precision, LayerNorms computed in fp32). auto = fp16 on CUDA (what the reference ran), fp32
    on CPU (docs/engine.md)."""
    max_batch: int = Field(64, ge=1, le=4096)
    """Largest batch one backend call takes; bigger inputs are split."""
    cache_dir: Annotated[str, ConfigPath()] = "~/.cache/expstream"
    """Prompt-embedding cache, downloaded heads, exported/compiled engines."""
    smoothing: SmoothingSettings = SmoothingSettings()
