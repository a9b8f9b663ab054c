"""Every number in the settings schema has an upper bound (a ``le``/``lt`` in its Field), so a
typo like ``publisher.settle_s=1e9`` is refused with the key named instead of hanging the
service; the few that are not durations, sizes or counts are listed here with why."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

import pytest
from annotated_types import Le, Lt
from pydantic import BaseModel

from configs import Settings, load_settings
from configs.core.errors import ConfigError

UNBOUNDED = {
    "engine.model.seed": "a seed: any integer",
    "trainer.teacher.seed": "a seed: any integer",
    "trainer.teacher.draw_seed": "a seed: any integer",
    "trainer.fit.seed": "a seed: any integer",
    "abstain.min_sharpness": "a Laplacian-variance threshold: a huge one abstains on every face, visibly",
    "trainer.fit.lr": "optimiser maths, not a duration or size",
    "trainer.fit.momentum": "optimiser maths, not a duration or size",
    "trainer.fit.weight_decay": "optimiser maths, not a duration or size",
    "trainer.fit.logit_scale": "optimiser maths, not a duration or size",
}


def _numbers(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, list[object]]]:
    """(dotted key, constraints) of every int or float field, inside unions too."""
    for name, field in model.model_fields.items():
        key, ann = f"{prefix}{name}", field.annotation
        union = typing.get_origin(ann) in (typing.Union, types.UnionType)
        for part in typing.get_args(ann) if union else (ann,):
            if isinstance(part, type) and issubclass(part, BaseModel):
                yield from _numbers(part, f"{key}.")
            elif typing.get_origin(part) is typing.Annotated:
                base, *extra = typing.get_args(part)
                if base in (int, float):
                    yield key, [m for e in extra for m in getattr(e, "metadata", [e])]
            elif part in (int, float):
                yield key, list(field.metadata)


def test_every_duration_size_and_count_has_an_upper_bound():
    numbers = dict(_numbers(Settings))
    assert "publisher.settle_s" in numbers and "scheduler.max_hz" in numbers  # the walk sees them
    unbounded = sorted(k for k, metas in numbers.items() if not any(isinstance(m, (Le, Lt)) for m in metas))
    assert unbounded == sorted(UNBOUNDED), "give these an upper bound (or say here why not)"


@pytest.mark.parametrize(
    "override",
    [
        "publisher.settle_s=1e9",
        "publisher.settle_s=1000000000",
        "scheduler.max_batch=1000000000000",
        "engine.max_batch=1000000000000",
        "trainer.fit.batch_size=1000000000000",
        "tracker.coast_s=.inf",
        "tracker.coast_s=.nan",
        "sources.open_timeout_s=.inf",
        "control.max_request_bytes=1000000000000",
        "stats.interval_s=1e12",
    ],
)
def test_huge_and_infinite_values_are_refused_naming_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}: got .*less than"):
        load_settings(None, [override])
