"""open_clip, imported without the libraries of towers the engine's model does not have.

Importing open_clip imports transformers (for Hugging Face text towers and CoCa's caption
generation) and timm (for timm image towers): about 1.5 s of CPU on a 2-core machine, paid
by every ``streamer`` command, although OpenAI-style CLIP models (ViT-L/14, the offline
ExpStream-Tiny) use neither. open_clip imports both inside ``try`` blocks and works without
them, so ``open_clip()`` imports it with the two hidden; ``enable_towers`` then imports the
library a model's config names and re-runs the open_clip module that wraps it, so that model
builds as it would have (``engine.models.load_clip`` calls it before creating any model).
A library already imported by someone else is never hidden.

Example:
    >>> oc = open_clip()
    >>> needed_libraries({"vision_cfg": {"timm_model_name": "vit_tiny_patch16_224"}, "text_cfg": {}})
    ['timm']
    >>> needed_libraries(oc.get_model_config("ViT-B-32"))
    []
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

WRAPPERS = {"transformers": "open_clip.hf_model", "timm": "open_clip.timm_model"}
"""Each optional library -> the open_clip module that imports it in a ``try`` block."""


class _Deferred(importlib.abc.MetaPathFinder):
    """Makes ``import <name>`` fail as if the library were not installed."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (deferred by engine.openclip)", name=fullname)
        return None


def open_clip() -> ModuleType:
    """The ``open_clip`` module, imported (once) without transformers and timm."""
    if "open_clip" in sys.modules:
        return sys.modules["open_clip"]
    deferred = _Deferred([lib for lib in WRAPPERS if lib not in sys.modules])
    sys.meta_path.insert(0, deferred)
    try:
        import open_clip as oc
    finally:
        sys.meta_path.remove(deferred)
    return oc


def needed_libraries(model_cfg: Mapping[str, Any] | None) -> list[str]:
    """The optional libraries an open_clip model config's towers need (None: unknown, all)."""
    if model_cfg is None:
        return sorted(WRAPPERS)
    text, vision = model_cfg.get("text_cfg") or {}, model_cfg.get("vision_cfg") or {}
    out = []
    if vision.get("timm_model_name"):
        out.append("timm")
    if text.get("hf_model_name") or text.get("hf_tokenizer_name"):
        out.append("transformers")
    return sorted(out)


def enable_towers(model_cfg: Mapping[str, Any] | None) -> None:
    """Make open_clip able to build a model with ``model_cfg``'s towers (None: any model):
    import each library it needs and re-run the open_clip module that wraps it. The module's
    classes already referenced elsewhere in open_clip read the names from the module, so
    they see the library from then on. An import error names the missing package."""
    for lib in needed_libraries(model_cfg):
        wrapper = sys.modules.get(WRAPPERS[lib])
        if wrapper is None or getattr(wrapper, lib, None) is not None:
            continue
        importlib.import_module(lib)  # a missing package fails here, with its own name
        importlib.reload(wrapper)
