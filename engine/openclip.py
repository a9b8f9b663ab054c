"""open_clip, imported without the optional libraries the engine's model does not need.

Importing open_clip imports transformers (for Hugging Face text towers and CoCa's caption
generation), timm (for timm image towers) and huggingface_hub (to download weights): about
2 s of CPU on a 2-core machine, paid by every ``streamer`` command, although OpenAI-style
CLIP models (ViT-L/14, the offline ExpStream-Tiny) need no tower library and weights from a
file or random weights need no hub. open_clip imports all three inside ``try`` blocks and
works without them, so ``open_clip()`` imports it with them hidden; ``enable_towers`` then
imports what a model's config and weights need and re-runs the open_clip modules that wrap
it, so that model builds as it would have (``engine.models.load_clip`` calls it before
creating any model). A library already imported by someone else is never hidden.

Example:
    >>> oc = open_clip()
    >>> needed_libraries({"vision_cfg": {"timm_model_name": "vit_tiny_patch16_224"}, "text_cfg": {}})
    ['timm']
    >>> needed_libraries(oc.get_model_config("ViT-B-32")), needed_libraries(oc.get_model_config("ViT-B-32"), True)
    ([], ['huggingface_hub'])
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

WRAPPERS = {
    "transformers": ("open_clip.hf_model",),
    "timm": ("open_clip.timm_model",),
    "huggingface_hub": ("open_clip.pretrained", "open_clip.push_to_hf_hub"),
}
"""Each optional library -> the open_clip modules that import it in a ``try`` block."""

_hidden: set[str] = set()
"""Libraries open_clip was imported without, and has not been given since."""


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
    if "open_clip" not in sys.modules:
        deferred = _Deferred([lib for lib in WRAPPERS if lib not in sys.modules])
        sys.meta_path.insert(0, deferred)
        try:
            import open_clip  # noqa: F401
        finally:
            sys.meta_path.remove(deferred)
        _hidden.update(deferred.names)
    return sys.modules["open_clip"]


def needed_libraries(model_cfg: Mapping[str, Any] | None, download: bool = False) -> list[str]:
    """The optional libraries an open_clip model config's towers need (None: unknown, all),
    and the hub's when its weights are to be ``download``ed (a pretrained tag)."""
    if model_cfg is None:
        return sorted(WRAPPERS)
    text, vision = model_cfg.get("text_cfg") or {}, model_cfg.get("vision_cfg") or {}
    out = ["huggingface_hub"] if download else []
    if vision.get("timm_model_name"):
        out.append("timm")
    if text.get("hf_model_name") or text.get("hf_tokenizer_name"):
        out.append("transformers")
    return sorted(out)


def enable_towers(model_cfg: Mapping[str, Any] | None, download: bool = False) -> None:
    """Make open_clip able to build a model with ``model_cfg``'s towers (None: any model) and,
    with ``download``, fetch its weights: import each library needed and re-run the open_clip
    modules that wrap it. Their functions and classes already referenced elsewhere in
    open_clip read the names from their module, so they see the library from then on. An
    import error names the missing package."""
    for lib in needed_libraries(model_cfg, download):
        if lib not in _hidden:
            continue
        importlib.import_module(lib)  # a missing package fails here, with its own name
        for name in WRAPPERS[lib]:
            if (wrapper := sys.modules.get(name)) is not None:
                importlib.reload(wrapper)
        _hidden.discard(lib)
