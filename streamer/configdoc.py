"""Generate the commented ``configs/default.yaml`` and the docs/config.md reference from the
settings models, so the file, the docs and the code cannot drift apart.

Comments come from the attribute docstrings in the settings modules (engine/config.py,
streamer/sources/settings.py, streamer/config.py). Run after changing a setting:

    $ python -m streamer.configdoc --yaml configs/default.yaml --markdown docs/config.md
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streamer.config import StreamerSettings

HEADER = """\
# ExpStream default configuration: every key, its default and what it does.
# Real models: ViT-L/14 (OpenAI weights) + the released Exp-CLIP L/14 head, SCRFD from insightface's
# buffalo_l pack; both download on first use. Offline/tests: configs/offline.yaml.
# Load order: these defaults -> `-c FILE` -> `--set dotted.key=value` -> validation.
# Regenerate after changing a setting: python -m streamer.configdoc --yaml configs/default.yaml
"""

SECTION_DOCS = {
    "engine": "Expression engine: CLIP image tower + Exp-CLIP head scored against cached prompts.",
    "sources": "Video sources (files, RTSP, HTTP/HLS, V4L2), one decode thread each.",
    "detector": "Face detection on every frame (batched across streams).",
    "tracker": "ByteTrack per stream: stable ids through short misses; track started/ended events.",
    "crops": "Face crops handed to the engine.",
    "scheduler": "Expression re-scoring rate per track.",
    "publisher": "ZeroMQ PUB output: topics faces.<stream_id> and events.<stream_id>.",
    "pipeline": "Threads and queues.",
    "preview": "Annotated preview video (also --preview OUT.mp4).",
    "stats": "Periodic statistics line on stderr.",
}


def attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """``field -> docstring`` from the string literal following each annotated attribute."""
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, nxt in zip(body, [*body[1:], None], strict=True):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _allowed(model: type[BaseModel], name: str) -> str:
    ann = model.model_fields[name].annotation
    args = getattr(ann, "__args__", ())
    if getattr(ann, "__origin__", None) is not None and str(ann).startswith("typing.Literal"):
        return ", ".join(map(str, args))
    return ""


def _scalar(value: Any) -> str:
    return (
        json.dumps(value)
        if isinstance(value, str | list | dict)
        else ("null" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
    )


def _yaml_lines(model: type[BaseModel], instance: BaseModel, indent: int) -> list[str]:
    pad = "  " * indent
    docs = attribute_docs(model)
    lines: list[str] = []
    for name, field in model.model_fields.items():
        value = getattr(instance, name)
        doc = docs.get(name) or field.description or ""
        if not doc and isinstance(value, BaseModel):
            doc = (type(value).__doc__ or name).strip().splitlines()[0]
        allowed = _allowed(model, name)
        if allowed and "allowed" not in doc.lower():
            doc = f"{doc} Allowed: {allowed}.".strip()
        for line in textwrap.wrap(doc, 96 - len(pad)) or [name]:
            lines.append(f"{pad}# {line}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.extend(_yaml_lines(type(value), value, indent + 1))
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
    return lines


def default_yaml() -> str:
    """The whole commented default configuration."""
    s = StreamerSettings()
    out = [HEADER.rstrip()]
    for name in StreamerSettings.model_fields:
        section = getattr(s, name)
        out += ["", f"# {SECTION_DOCS.get(name, name)}", f"{name}:"]
        out += _yaml_lines(type(section), section, 1)
    return "\n".join(out) + "\n"


def _md_rows(model: type[BaseModel], instance: BaseModel, prefix: str) -> list[str]:
    docs = attribute_docs(model)
    rows: list[str] = []
    for name, field in model.model_fields.items():
        value = getattr(instance, name)
        key = f"{prefix}.{name}"
        if isinstance(value, BaseModel):
            rows += _md_rows(type(value), value, key)
            continue
        doc = (docs.get(name) or field.description or "").replace("|", "\\|")
        allowed = _allowed(model, name)
        if allowed and "allowed" not in doc.lower():
            doc += f" Allowed: {allowed}."
        rows.append(f"| `{key}` | `{_scalar(value)}` | {doc} |")
    return rows


def markdown_reference() -> str:
    """The key table of docs/config.md."""
    s = StreamerSettings()
    out = []
    for name in StreamerSettings.model_fields:
        section = getattr(s, name)
        out += [f"### `{name}`", "", SECTION_DOCS.get(name, ""), "", "| key | default | meaning |", "|---|---|---|"]
        out += _md_rows(type(section), section, name)
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--yaml", type=Path, help="write the commented default config here")
    p.add_argument("--markdown", type=Path, help="print/write the key reference table (markdown)")
    args = p.parse_args(argv)
    if args.yaml:
        args.yaml.write_text(default_yaml(), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown_reference(), encoding="utf-8")
    if not args.yaml and not args.markdown:
        print(default_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
