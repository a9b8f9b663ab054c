"""The published numbers ``trainer reproduce`` compares with: the paper's Table 2 and the
authors' own evaluation logs, read from ``configs/reference/expclip_results.yaml`` (data).

Rows are named like the released heads (``expclip-l14``, ``expclip-b16``, ``expclip-b32``)
plus the paper's plain-CLIP row ``clip-l14``; the authors' logs have one section per prompt
set (``class_name`` ... ``ensemble10``), for the three Exp-CLIP heads only.

Example:
    >>> pub = load_published()
    >>> pub.paper("expclip-l14", "raf-db"), pub.log("expclip-l14", "a_photo_of_a_face", "dfew")
    ((58.7, 65.37), (40.73, 47.09))
    >>> pub.paper("clip-b32", "raf-db") is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import configs
from configs.core.errors import ConfigError
from configs.loader import read_yaml

Pair = tuple[float, float]
"""(UAR, WAR) in %."""

BACKBONE_ROWS = {"ViT-L-14": "expclip-l14", "ViT-B-16": "expclip-b16", "ViT-B-32": "expclip-b32"}
"""The paper row of an Exp-CLIP head trained on each OpenAI backbone."""


def _pairs(table: dict[str, Any], where: str) -> dict[str, Pair]:
    out = {}
    for key, value in table.items():
        if not (isinstance(value, list) and len(value) == 2):
            raise ConfigError(f"{where}.{key}: expected [UAR, WAR], got {value!r}")
        out[key] = (float(value[0]), float(value[1]))
    return out


@dataclass(frozen=True)
class Published:
    """Paper Table 2 rows and the authors' log sections, (UAR, WAR) per dataset key."""

    datasets: tuple[str, ...]
    sources: dict[str, str]
    paper_rows: dict[str, dict[str, Pair]]
    log_rows: dict[str, dict[str, dict[str, Pair]]]

    def paper(self, row: str | None, dataset: str) -> Pair | None:
        """The paper's (UAR, WAR) for ``row`` on ``dataset``; None where the paper has none."""
        return self.paper_rows.get(row or "", {}).get(dataset)

    def log(self, row: str | None, prompts: str, dataset: str) -> Pair | None:
        """The authors' log (UAR, WAR) for ``row`` with prompt set ``prompts``; None if absent."""
        return self.log_rows.get(row or "", {}).get(prompts, {}).get(dataset)


def load_published(path: str | None = None) -> Published:
    """Read the published-results file (the packaged one unless ``path`` is given)."""
    p = path or str(configs.path("reference/expclip_results.yaml"))
    data = read_yaml(p)
    try:
        paper = {row: _pairs(t, f"paper.{row}") for row, t in data["paper"].items()}
        logs = {
            row: {prompts: _pairs(t, f"authors_log.{row}.{prompts}") for prompts, t in sections.items()}
            for row, sections in data["authors_log"].items()
        }
        return Published(tuple(data["datasets"]), dict(data["source"]), paper, logs)
    except (KeyError, AttributeError, TypeError) as e:
        raise ConfigError(f"{p}: not a published-results file ({type(e).__name__}: {e})") from e
