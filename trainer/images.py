"""Finding, hashing and decoding input images.

Example (plain text)::

    paths = list_images(["faces/"], ["jpg", "png"])
    items, duplicates, unreadable = unique_items(paths)
    rgb = read_rgb(items[0].path)              # uint8 [H, W, 3]
    crop = read_rgb(items[0].path, size=224)   # resized as the reference did (PIL bilinear)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from configs.core.errors import ConfigError
from engine.models import file_sha256

DEFAULT_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class UnreadableImage(ValueError):
    """A file could not be decoded as an image; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Item:
    """One input image, identified by the hash of its bytes."""

    path: str
    sha256: str


def list_images(roots: Iterable[str | Path], extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """Image files under ``roots`` (recursively; ImageFolder class folders included), sorted.

    A root may also be a single image file.
    """
    exts = {("." + e.lower().lstrip(".")) for e in extensions}
    out: list[Path] = []
    for root in roots:
        r = Path(root).expanduser()
        if r.is_file():
            out.append(r)
        elif r.is_dir():
            out.extend(p for p in r.rglob("*") if p.suffix.lower() in exts and p.is_file())
        else:
            raise ConfigError(f"input {r}: no such file or folder")
    return sorted(set(out))


def unique_items(paths: Iterable[Path], progress: bool = False) -> tuple[list[Item], int, list[tuple[str, str]]]:
    """Hash each file; keep the first of each content. Returns (items, duplicates, unreadable)."""

    seen: set[str] = set()
    items: list[Item] = []
    unreadable: list[tuple[str, str]] = []
    dups = 0
    paths = list(paths)
    for p in tqdm(paths, desc="hashing", unit="file", disable=not progress):
        try:
            digest = file_sha256(p)
        except OSError as e:
            unreadable.append((str(p), f"{type(e).__name__}: {e}"))
            continue
        if digest in seen:
            dups += 1
            continue
        seen.add(digest)
        items.append(Item(str(p), digest))
    return items, dups, unreadable


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode an image file to uint8 RGB [H, W, 3]; raise UnreadableImage if it cannot.

    With ``size``, the image is resized to ``size`` x ``size`` the reference's way
    (``pil_resize``) right after decoding.
    """

    try:
        with Image.open(path) as im:
            rgb_im = im.convert("RGB")
            small = rgb_im.size[0] < 2 or rgb_im.size[1] < 2
            if size is not None and not small:
                rgb_im = rgb_im.resize((size, size), Image.Resampling.BILINEAR)
            rgb = np.asarray(rgb_im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UnreadableImage(path, f"{type(e).__name__}: {e}") from e
    if rgb.ndim != 3 or small:
        raise UnreadableImage(path, f"image too small ({rgb.shape})")
    return np.ascontiguousarray(rgb)


def pil_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> [size, size, 3] exactly as the reference resized: PIL bilinear
    (torchvision's ``Resize((S, S))`` of a PIL image calls it; the reference's video loader
    calls it directly), aspect ratio not kept.

    Example:
        >>> pil_resize(np.zeros((40, 30, 3), np.uint8), 224).shape
        (224, 224, 3)
    """

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))
