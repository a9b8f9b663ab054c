"""Property-based fuzzing of the one config loader (hypothesis): random YAML documents and
``--set`` values always load or raise a ``ConfigError`` that names the offending key (or the
file, or the override); never any other exception (which the CLI would report as a bug)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from configs import Settings, load_settings
from configs.core.errors import ConfigError


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        keys.append(prefix + name)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _dotted_keys(ann, f"{prefix}{name}.")
    return keys


KNOWN = _dotted_keys(Settings)
SCALE = float(os.environ.get("EXPSTREAM_FUZZ_SCALE", "1"))
"""Multiplies every test's example count (CI: 1; a long local run: e.g. 20)."""
odd_text = st.text(st.characters(codec="utf-8"), max_size=12)  # NUL, "~user", newlines, ...
key_part = st.one_of(st.sampled_from([k.rsplit(".", 1)[-1] for k in KNOWN]), odd_text)
dotted = st.one_of(st.sampled_from(KNOWN), st.lists(key_part, min_size=1, max_size=4).map(".".join))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and Infinity included
    odd_text,
    st.sampled_from(["~nosuchuser/x.onnx", "./a\x00b.pth", "tcp://127.0.0.1:99999", "/dev/null", "..", "random"]),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3), max_leaves=6
)


def _nest(pairs: list[tuple[str, object]]) -> dict:
    """A document with each dotted key set (later ones win; a scalar in the way is replaced)."""
    doc: dict = {}
    for key, value in pairs:
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return doc


def _check(doc_text: str, overrides: list[str], keys: list[str], tmp: Path) -> None:
    path = tmp / "fuzz.yaml"
    path.write_text(doc_text, encoding="utf-8")
    try:
        loaded = load_settings(path, overrides)
    except ConfigError as e:
        event("ConfigError")
        msg = str(e)
        named = [k for key in keys for k in _prefixes(key) if k and k in msg]
        assert named or str(path) in msg or any(o in msg or repr(o) in msg for o in overrides), msg
        return
    event("loaded")
    assert isinstance(loaded, Settings)


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(dotted, values), max_size=5))
@example(pairs=[("engine.head", "./a\x00b.pth")])
@example(pairs=[("detector.model", "~nosuchuser/x.onnx")])
@example(pairs=[("engine", [1, 2])])
@example(pairs=[("sources.open_timeout_s", math.inf)])
def test_random_yaml_documents(pairs, tmp_path_factory):
    doc = _nest(pairs)
    _check(yaml.safe_dump(doc, allow_unicode=True), [], [k for k, _ in pairs], tmp_path_factory.mktemp("f"))


@settings(max_examples=int(200 * SCALE), deadline=None)
@given(text=st.text(max_size=200))
@example(text="engine: [")
@example(text="- 1\n- 2")
@example(text="? [a, b]\n: 1")
@example(text="engine: !!python/object:os.system {}")
def test_random_text_as_a_config_file(text, tmp_path_factory):
    _check(text, [], [], tmp_path_factory.mktemp("t"))


@settings(max_examples=int(300 * SCALE), deadline=None)
@given(items=st.lists(st.tuples(dotted, st.one_of(values.map(yaml.safe_dump), odd_text)), max_size=4))
@example(items=[("engine.cache_dir", "./x\x00y")])
@example(items=[("publisher.endpoint", "tcp://[::1:5556")])
@example(items=[("engine.model.name.x", "1")])
def test_random_set_overrides(items, tmp_path_factory):
    overrides = [f"{key}={value}" for key, value in items]
    _check("", overrides, [k for k, _ in items], tmp_path_factory.mktemp("o"))
