"""Zero-shot evaluation: datasets, metrics and the run that scores them with the engine.

Example (plain text)::

    report = evaluate(cfg, out="eval/", images="RAFDB/test", layout="raf-db")
"""

from trainer.evaluate.datasets import (
    LAYOUTS,
    folder_mapping,
    image_folder,
    read_video_list,
    segment_indices,
)
from trainer.evaluate.metrics import confusion_matrix, per_class_recall, plot_confusion, uar_war
from trainer.evaluate.zeroshot import engine_inputs, eval_engines, evaluate, score_samples

__all__ = [
    "LAYOUTS",
    "confusion_matrix",
    "engine_inputs",
    "eval_engines",
    "evaluate",
    "folder_mapping",
    "image_folder",
    "per_class_recall",
    "plot_confusion",
    "read_video_list",
    "score_samples",
    "segment_indices",
    "uar_war",
]
