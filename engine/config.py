"""Engine settings and the YAML loading shared by every ExpStream config.

Loading order (STYLE.md #5): model defaults -> user YAML file -> ``--set a.b=c`` overrides ->
typed, validated settings. Errors name the dotted key, the bad value and what is allowed.

Example:
    >>> raw = load_yaml_config("configs/offline.yaml", ["engine.backend=torch"])
    >>> settings = validate(EngineSettings, raw["engine"], prefix="engine")
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration value is missing, malformed or not allowed."""


class StrictSettings(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable, and each
    field's docstring is its description (the generated config reference uses it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True)


class ModelSettings(StrictSettings):
    """Which CLIP backbone to load and from where."""

    name: str = "ViT-L-14"
    """open_clip model name (``open_clip.list_models()``), or one defined in ``config_file``."""
    pretrained: str | None = "openai"
    """open_clip pretrained tag (downloaded on first use), a local checkpoint file, or null for
    random weights (seeded; for tests and speed benchmarks only)."""
    config_file: str | None = None
    """Extra open_clip model-config JSON to register (e.g. the tiny test model)."""
    seed: int = 0
    """Seed for random weights when ``pretrained`` is null."""
    cache_dir: str | None = None
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
    custom: str | dict[str, list[str]] | None = None
    """Path to a YAML mapping ``class: [prompt, ...]`` or that mapping inline: new classes."""
    file: str | None = None
    """Reference prompt data (default: the packaged configs/prompts/expclip_prompts.yaml)."""


class SmoothingSettings(StrictSettings):
    """Per-track temporal smoothing of expression scores."""

    method: Literal["ema", "window", "none"] = "ema"
    ema_alpha: float = Field(0.3, gt=0.0, le=1.0)
    """Weight of the newest probabilities in the exponential moving average."""
    window: int = Field(16, ge=1)
    """Number of most recent projected features averaged (16 = the paper's video protocol)."""
    max_tracks: int = Field(4096, ge=1)
    """Hard cap on tracks with smoothing state; the least recently updated are evicted."""


class EngineSettings(StrictSettings):
    """Everything the expression engine needs."""

    model: ModelSettings = ModelSettings()
    head: str = "expclip-l14"
    """Released head (expclip-b32, expclip-b16, expclip-l14; fetched once and cached), a
    local .pth (authors' format) or .safetensors (ours) file, ``none`` for plain CLIP, or
    ``random`` (seeded by model.seed: tests and speed benchmarks only)."""
    preprocess: Literal["auto", "expclip", "clip"] = "auto"
    """expclip = the reference (224x224 squash, [0,1], no mean/std); clip = open_clip's
    standard transform; auto = expclip when a head is loaded, clip for ``head: none``."""
    prompts: PromptSettings = PromptSettings()
    backend: Literal["auto", "torch", "compile", "onnxruntime", "tensorrt"] = "auto"
    device: str = "auto"
    """auto (cuda when available), cpu, cuda or cuda:N."""
    precision: Literal["auto", "fp32", "fp16", "bf16", "fp8", "int8"] = "auto"
    """auto = fp16 on CUDA, fp32 on CPU. Opt-in, accuracy on real weights unverified, so never
    the default: fp8 (torch/compile backends; fast on Hopper only) puts the tower's linear
    layers in float8 e4m3 with static scales calibrated on the first batch; int8 (onnxruntime
    backend, CPU) quantises the exported graph's weights to int8 with dynamic activation
    scales (2.6x fp32 for ViT-B/32 on an AVX-512 VNNI CPU)."""
    max_batch: int = Field(64, ge=1)
    """Largest batch one backend call takes; bigger inputs are split."""
    cache_dir: str = "~/.cache/expstream"
    """Prompt-embedding cache, downloaded heads, exported/compiled engines."""
    smoothing: SmoothingSettings = SmoothingSettings()

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError("allowed: auto, cpu, cuda, cuda:N")
        return v


# ---------------------------------------------------------------- loading


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into its key path and a YAML-parsed value."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r}: expected dotted.key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from e
    return key.strip().split("."), parsed


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``dotted.key=value`` override set."""
    out = copy.deepcopy(data)
    for item in overrides or []:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a section")
            node = child
        node[keys[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_relative_paths(engine: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make the engine section's file paths relative to the config file that named them."""
    out = copy.deepcopy(engine)

    def fix(section: dict[str, Any], key: str) -> None:
        value = section.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            candidate = base_dir / value
            if candidate.exists():
                section[key] = str(candidate)

    model = out.get("model")
    if isinstance(model, dict):
        fix(model, "config_file")
        fix(model, "pretrained")
    fix(out, "head")
    prompts = out.get("prompts")
    if isinstance(prompts, dict):
        fix(prompts, "file")
        fix(prompts, "custom")
    return out


def resolve_config_path(config: str | Path) -> Path:
    """A config file path; a bare name such as ``offline`` or ``default.yaml`` that is not a
    file here names a config shipped in the package's ``configs/``."""
    p = Path(config).expanduser()
    if p.is_file() or len(p.parts) != 1:
        return p
    import configs

    name = p.name if p.suffix else f"{p.name}.yaml"
    try:
        return configs.path(name)
    except FileNotFoundError:
        return p


def add_config_args(parser: Any, config_help: str, example_key: str) -> None:
    """The ``-c/--config`` and repeatable ``--set KEY=VALUE`` (``args.overrides``) arguments
    every ExpStream command takes; ``parser`` is an ``argparse.ArgumentParser``."""
    parser.add_argument("-c", "--config", default=None, help=config_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one setting, e.g. --set {example_key} (repeatable)",
    )


def load_yaml_config(config: str | Path | dict[str, Any] | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load a whole ExpStream config (file path or parsed dict) and apply overrides.

    Paths inside the ``engine`` section are taken relative to the config file's folder when
    such a file exists there, else relative to the working directory. A bare name
    (``offline``) names a packaged config.
    """
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, dict):
        data = copy.deepcopy(config)
    else:
        config = resolve_config_path(config)
        data = read_yaml(config)
        if isinstance(data.get("engine"), dict):
            base = config.resolve().parent
            data["engine"] = resolve_relative_paths(data["engine"], base)
    return apply_overrides(data, overrides)


def _describe(err: dict[str, Any], prefix: str) -> str:
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    value = err.get("input")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if err["type"] == "literal_error":
        return f"{loc}: got {value!r}; {msg.replace('Input should be', 'allowed:')}"
    return f"{loc}: got {value!r}; {msg}"


def validate(model: type[T], data: Any, prefix: str = "") -> T:
    """Build typed settings from a parsed mapping; raise ConfigError naming each bad key."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = [_describe(err, prefix) for err in e.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from e


def engine_settings_from(
    config: str | Path | dict[str, Any] | EngineSettings | None,
    overrides: list[str] | None = None,
) -> EngineSettings:
    """EngineSettings from a whole config (file or dict with an ``engine`` section) or an
    engine section alone."""
    if isinstance(config, EngineSettings):
        if overrides:
            data = apply_overrides({"engine": config.model_dump()}, overrides)
            return validate(EngineSettings, data["engine"], "engine")
        return config
    data = load_yaml_config(config, overrides)
    section = data.get("engine", data if "model" in data or "head" in data else {})
    return validate(EngineSettings, section, "engine")
