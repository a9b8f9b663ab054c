"""Zero-shot metrics (docs/design.md): WAR = overall accuracy; UAR = mean per-class recall
(the diagonal of the row-normalised confusion matrix), both in %.

Example:
    >>> cm = confusion_matrix([0, 0, 1], [0, 1, 1], num_classes=2)
    >>> [round(v, 2) for v in uar_war(cm)]
    [75.0, 66.67]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts [K, K]: rows = true class, columns = predicted class."""
    t = np.asarray(y_true, np.int64)
    p = np.asarray(y_pred, np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"confusion_matrix: y_true {t.shape} and y_pred {p.shape} must be equal 1-d")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: labels must be in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class in %; NaN for a class with no true samples."""
    rows = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm) / rows * 100.0, np.nan)


def uar_war(cm: np.ndarray) -> tuple[float, float]:
    """(UAR, WAR) in %. UAR averages the classes that have true samples."""
    total = cm.sum()
    if total == 0:
        return float("nan"), float("nan")
    recall = per_class_recall(cm)
    return float(np.nanmean(recall)), float(np.trace(cm) / total * 100.0)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (%) as a PNG, like the reference's figures."""
    # optional: matplotlib comes with the train extra
    import matplotlib

    matplotlib.use("Agg")
    # optional: matplotlib comes with the train extra
    import matplotlib.pyplot as plt

    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(cm * 100.0, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 * k + 3, 1.0 * k + 2))
    im = ax.imshow(norm, interpolation="nearest", cmap="Reds", vmin=0, vmax=100)
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(k), list(classes), rotation=45, ha="right")
    ax.set_yticks(range(k), list(classes))
    thresh = norm.max() / 2 if norm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if norm[i, j] > thresh else "black",
            )
    ax.set_ylabel("True label")
    ax.set_xlabel("Predicted label")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
