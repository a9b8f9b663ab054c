"""The Exp-CLIP projection head: one ``Linear(D -> 4096, bias=False)``.

Two file formats load here:

* the authors' release: ``torch.save(head.state_dict())`` with the single key ``mlp.weight``
  of shape ``[4096, D]`` (``ExpCLIP_{B32,B16,L14}_model.pth``). Loaded with
  ``torch.load(weights_only=True)``, so a pickle that carries code is refused;
* ours: safetensors with the weight under ``mlp.weight`` and JSON metadata (backbone,
  pretrained tag, preprocessing, teacher, instruction, data fingerprint) under the
  ``expstream`` metadata key.

Example (plain text)::

    head, info = load_head("expclip-l14", backbone="ViT-L-14", in_dim=768, cache_dir="~/.cache/expstream")
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from configs.core.errors import HeadFormatError
from engine.models import file_sha256

log = logging.getLogger(__name__)

EXPCLIP_OUT_DIM = 4096
_RELEASE_BASE = "https://github.com/zengqunzhao/Exp-CLIP/raw/main/checkpoint"


@dataclass(frozen=True)
class ReleasedHead:
    """A head published with the paper."""

    backbone: str
    pretrained: str
    url: str


RELEASED_HEADS: dict[str, ReleasedHead] = {
    "expclip-b32": ReleasedHead("ViT-B-32", "openai", f"{_RELEASE_BASE}/ExpCLIP_B32_model.pth"),
    "expclip-b16": ReleasedHead("ViT-B-16", "openai", f"{_RELEASE_BASE}/ExpCLIP_B16_model.pth"),
    "expclip-l14": ReleasedHead("ViT-L-14", "openai", f"{_RELEASE_BASE}/ExpCLIP_L14_model.pth"),
}


class ProjectionHead(nn.Module):
    """Exp-CLIP's projection: CLIP embedding (D) -> teacher space (4096 by default)."""

    def __init__(self, in_dim: int, out_dim: int = EXPCLIP_OUT_DIM) -> None:
        super().__init__()
        self.mlp = nn.Linear(in_dim, out_dim, bias=False)

    @property
    def in_dim(self) -> int:
        return self.mlp.in_features

    @property
    def out_dim(self) -> int:
        return self.mlp.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


@dataclass(frozen=True)
class HeadInfo:
    """Where a head came from; ``sha256`` of the file feeds the engine fingerprint."""

    source: str
    sha256: str
    format: str
    """``expclip`` (authors' .pth), ``expstream`` (safetensors) or ``none``."""
    metadata: dict[str, Any] = field(default_factory=dict)


NO_HEAD = HeadInfo(source="none", sha256="none", format="none")


def _expected(backbone: str, in_dim: int, out_dim: int | None = EXPCLIP_OUT_DIM) -> str:
    rows = out_dim if out_dim is not None else "K"
    return f"expected mlp.weight of shape [{rows}, {in_dim}] for backbone {backbone}"


def _check_weight(sd: dict[str, Any], path: Path, backbone: str, in_dim: int, out_dim: int | None) -> torch.Tensor:
    keys = sorted(sd)
    stripped = {k.removeprefix("module."): v for k, v in sd.items()}
    if list(stripped) != ["mlp.weight"]:
        raise HeadFormatError(
            f"{path}: not a projection head (keys {keys[:5]}); {_expected(backbone, in_dim, out_dim)}"
        )
    w = stripped["mlp.weight"]
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise HeadFormatError(f"{path}: mlp.weight is not a matrix; {_expected(backbone, in_dim, out_dim)}")
    rows_ok = out_dim is None or w.shape[0] == out_dim
    if w.shape[1] != in_dim or not rows_ok:
        raise HeadFormatError(f"{path}: mlp.weight has shape {list(w.shape)}; {_expected(backbone, in_dim, out_dim)}")
    w = w.float()
    bad = int((~torch.isfinite(w)).sum())
    if bad:
        raise HeadFormatError(f"{path}: mlp.weight holds {bad} non-finite value(s) (NaN or Infinity); refused")
    return w


def _load_expclip_pth(path: Path, backbone: str, in_dim: int) -> torch.Tensor:
    try:
        with path.open("rb") as f:  # a file object: torch.load would go by a .safetensors name
            sd = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise HeadFormatError(
            f"{path}: refused: the file is a pickle that needs code to load, not a plain "
            f"state_dict (weights_only loading failed: {str(e).splitlines()[0]})"
        ) from e
    except Exception as e:  # untrusted bytes: the unpickler fails in many ways (IndexError, KeyError, ...)
        raise HeadFormatError(
            f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0]}); "
            f"{_expected(backbone, in_dim)}"
        ) from e
    if not isinstance(sd, dict):
        raise HeadFormatError(f"{path}: holds a {type(sd).__name__}, not a state_dict; {_expected(backbone, in_dim)}")
    return _check_weight(sd, path, backbone, in_dim, EXPCLIP_OUT_DIM)


def _load_safetensors(path: Path, backbone: str, in_dim: int) -> tuple[torch.Tensor, dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as e:
        raise HeadFormatError(f"{path}: not a safetensors head ({e}); {_expected(backbone, in_dim, None)}") from e
    meta = _metadata(path, raw_meta.get("expstream", "{}"))
    file_backbone = meta.get("backbone")
    if file_backbone and file_backbone != backbone:
        raise HeadFormatError(f"{path}: head was trained for backbone {file_backbone}, but the engine loads {backbone}")
    return _check_weight(sd, path, backbone, in_dim, None), meta


def _metadata(path: Path, text: str) -> dict[str, Any]:
    """The ``expstream`` metadata of a safetensors head: a JSON object."""
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise HeadFormatError(f"{path}: its 'expstream' metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise HeadFormatError(f"{path}: its 'expstream' metadata must be a JSON object, got {type(meta).__name__}")
    return meta


def fetch_released_head(name: str, cache_dir: str | Path) -> Path:
    """Download a released head once into ``cache_dir/heads`` and return its path."""
    spec = RELEASED_HEADS[name]
    dest = Path(cache_dir).expanduser() / "heads" / Path(spec.url).name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading released head %s from %s", name, spec.url)
    tmp = dest.with_suffix(".part")
    try:
        torch.hub.download_url_to_file(spec.url, str(tmp), progress=False)
    except Exception as e:  # urllib raises several unrelated types
        tmp.unlink(missing_ok=True)
        raise HeadFormatError(
            f"could not download head {name} from {spec.url} ({type(e).__name__}: {e}). "
            f"Without network, fetch that file elsewhere and place it at {dest} "
            f"(or set engine.head to its path)."
        ) from e
    tmp.replace(dest)
    return dest


def random_head(in_dim: int, seed: int, out_dim: int = EXPCLIP_OUT_DIM) -> ProjectionHead:
    """A seeded random head: right shape and cost, meaningless scores (tests, speed runs)."""
    gen = torch.Generator().manual_seed(seed)
    head = ProjectionHead(in_dim, out_dim)
    with torch.no_grad():
        head.mlp.weight.copy_(torch.randn(out_dim, in_dim, generator=gen) / in_dim**0.5)
    return head.eval().requires_grad_(False)


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` holds a safetensors file, told by its content, not its name: an
    8-byte little-endian header length, then that many bytes of JSON object (a ``.pth`` is
    a zip archive or a pickle)."""
    with path.open("rb") as f:
        start = f.read(9)
    if len(start) < 9:
        return False
    return start[8:9] == b"{" and 2 <= int.from_bytes(start[:8], "little") <= path.stat().st_size - 8


def load_head(
    spec: str, backbone: str, in_dim: int, cache_dir: str | Path, seed: int = 0
) -> tuple[ProjectionHead | None, HeadInfo]:
    """Load the head named by ``spec``: a released name, a file path, ``random`` (seeded;
    tests and speed runs) or ``none`` (plain CLIP)."""
    if spec.lower() in ("none", "null", ""):
        log.warning("engine.head is none: running plain CLIP zero-shot (the paper's baseline)")
        return None, NO_HEAD
    if spec.lower() == "random":
        return random_head(in_dim, seed), HeadInfo(source="random", sha256=f"random:seed={seed}", format="random")
    if spec in RELEASED_HEADS:
        want = RELEASED_HEADS[spec].backbone
        if want != backbone:
            raise HeadFormatError(f"engine.head {spec} belongs to backbone {want}, but engine.model.name is {backbone}")
        path = fetch_released_head(spec, cache_dir)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            names = ", ".join(RELEASED_HEADS)
            raise HeadFormatError(f"engine.head: {spec!r} is neither a file nor a released head ({names}, none)")
    meta: dict[str, Any] = {}
    if is_safetensors(path):
        weight, meta = _load_safetensors(path, backbone, in_dim)
        fmt = "expstream"
    else:
        weight = _load_expclip_pth(path, backbone, in_dim)
        fmt = "expclip"
    head = ProjectionHead(in_dim, weight.shape[0])
    with torch.no_grad():
        head.mlp.weight.copy_(weight)
    head.eval().requires_grad_(False)
    return head, HeadInfo(source=str(path), sha256=file_sha256(path), format=fmt, metadata=meta)


def save_head(path: str | Path, head: ProjectionHead, metadata: dict[str, Any]) -> Path:
    """Save ``head`` in ExpStream's format: safetensors + JSON metadata."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    weight = head.mlp.weight.detach().to("cpu", torch.float32).contiguous()
    save_file({"mlp.weight": weight}, str(p), metadata={"expstream": json.dumps(metadata, sort_keys=True)})
    return p


def export_expclip(path: str | Path, head: ProjectionHead) -> Path:
    """Save ``head`` in the authors' format (a state_dict with the single key ``mlp.weight``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"mlp.weight": head.mlp.weight.detach().to("cpu", torch.float32).clone()}, p)
    return p
