"""``trainer reproduce``: a head on the paper's seven datasets (eight Table 2 columns) in their
published layouts, with the paper's protocol and prompts, printed beside the paper's Table 2
and the authors' own log (docs/training.md).

Example (plain text)::

    cfg = reproduce_settings("default", ["engine.head=expclip-l14"])
    print(format_table(reproduce(cfg, "/data", "repro/"), load_published()))
"""

from trainer.reproduce.datasets import BENCHMARKS, Absent, Benchmark, Located, locate
from trainer.reproduce.paper import PAPER_PROMPTS, BenchmarkResult, Reproduction, reproduce, reproduce_settings
from trainer.reproduce.results import Published, load_published
from trainer.reproduce.table import format_table

__all__ = [
    "BENCHMARKS",
    "PAPER_PROMPTS",
    "Absent",
    "Benchmark",
    "BenchmarkResult",
    "Located",
    "Published",
    "Reproduction",
    "format_table",
    "load_published",
    "locate",
    "reproduce",
    "reproduce_settings",
]
