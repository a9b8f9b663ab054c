"""``--classes`` and ``--prompts``: zero-shot classes from the command line, for ``streamer
run``, ``bench`` and ``analyze`` (docs/analyze.md, "Choosing class words").

``--classes "engaged,confused,bored"`` sets ``engine.prompts.classes``; each class gets the
engine's templates: ``engine.prompts.templates`` when the configuration has them, else the
wording of the reference prompt set (``engine.prompts.set``) with the class name as the slot
("an expression of {}.", "a photo of a face with an expression of {}.", ...). Classes the
reference set already names (``--classes happiness,sadness``) keep its own prompts.
``--prompts FILE`` is a YAML mapping ``class: [prompt, ...]`` (``engine.prompts.custom``).
An empty or repeated class is refused (``configs.engine.PromptSettings``).

Example:
    >>> split_classes(" engaged, confused ,bored ")
    ['engaged', 'confused', 'bored']
    >>> templates_of({"happiness": ["an expression of happiness.", "a happy face."]}, "happiness")
    ['an expression of {}.']
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

from configs.core.cli import shorthand
from configs.core.errors import ConfigError


def split_classes(text: str) -> list[str]:
    """The comma-separated class names, stripped (blank or repeated names are refused later,
    by the settings, with the key named)."""
    return [c.strip() for c in text.split(",")]


def add_class_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--classes`` (kept in ``args.classes``, resolved by ``class_overrides``) and ``--prompts``."""
    parser.add_argument(
        "--classes",
        type=split_classes,
        default=None,
        metavar="A,B,C",
        help="zero-shot classes, comma-separated (e.g. 'engaged,confused,bored'); prompts from the engine's "
        "templates (docs/analyze.md)",
    )
    shorthand(
        parser,
        "--prompts",
        key="engine.prompts.custom",
        metavar="FILE.yaml",
        help="classes and prompts of your own: a YAML mapping class -> [prompt, ...]",
    )


def templates_of(table: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """The prompts of class ``name`` in a reference prompt table that contain its name, with
    the name made a ``{}`` slot."""
    return [p.replace(name, "{}") for p in table.get(name, []) if name in p and "{" not in p]


def class_overrides(args: argparse.Namespace) -> None:
    """Turn ``args.classes`` into ``--set`` overrides appended to ``args.overrides``."""
    if getattr(args, "classes", None) is not None:
        args.overrides = with_classes(args.config, args.overrides, args.classes)


def with_classes(config: str | None, overrides: Sequence[str], classes: Sequence[str]) -> list[str]:
    """``overrides`` plus those that make ``classes`` the engine's classes, with templates
    chosen as the module says (the configuration tells which templates it has)."""
    if any(o.startswith("engine.prompts.custom=") for o in overrides):
        raise ConfigError("give --classes or --prompts, not both (--prompts FILE names its own classes)")
    from configs import load_settings
    from engine.prompt_sets import reference_data  # the reference set's wording

    out = [*overrides, f"engine.prompts.classes={json.dumps(list(classes))}", "engine.prompts.custom=null"]
    prompts = load_settings(config, out).engine.prompts  # refuses empty and repeated classes
    if prompts.templates is None:
        data = reference_data(prompts.file)
        table = data.get("prompt_sets", {}).get(prompts.set, {})
        if not all(c in table for c in prompts.classes):
            order = data.get("class_order") or list(table)
            templates = templates_of(table, order[0]) if order else []
            if not templates:
                raise ConfigError(f"engine.prompts.set {prompts.set}: no templates to build prompts for --classes")
            out.append(f"engine.prompts.templates={json.dumps(templates)}")
    return out
