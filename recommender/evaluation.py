"""Scoring an emotion model on labelled text: loading the data and computing the metrics.

Works with anything that has ``predict_proba(list[str]) -> (n, 6)``; no torch needed here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from recommender.classifier import ProbabilityModel
from recommender.emotions import EMOTIONS, canonical_name
from recommender.errors import DatasetError

ECE_BINS = 15
_SHOWN = 5


@dataclass(frozen=True)
class LabelledData:
    """Texts with canonical label indices and, when the file has them, (n, 6) soft targets."""

    texts: list[str]
    labels: np.ndarray
    targets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvaluationReport:
    n: int
    accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    confusion: np.ndarray
    ece: float
    cosine: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "ece": round(self.ece, 4),
            "cosine": None if self.cosine is None else round(self.cosine, 4),
            "per_class": {
                m.label: {
                    "precision": round(m.precision, 4),
                    "recall": round(m.recall, 4),
                    "f1": round(m.f1, 4),
                    "support": m.support,
                }
                for m in self.per_class
            },
            "labels": list(EMOTIONS),
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }

    def format(self) -> str:
        """A human-readable summary: headline metrics, per-class table, confusion matrix."""
        cosine = "n/a" if self.cosine is None else f"{self.cosine:.4f}"
        lines = [
            f"n={self.n}  accuracy={self.accuracy:.4f}  macro-F1={self.macro_f1:.4f}  "
            f"ECE={self.ece:.4f}  cosine={cosine}",
            "",
            f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
        ]
        for m in self.per_class:
            lines.append(
                f"{m.label:<12}{m.precision:>10.4f}{m.recall:>10.4f}{m.f1:>10.4f}{m.support:>10d}"
            )
        width = max(len(e) for e in EMOTIONS) + 1
        lines += ["", "confusion matrix (rows: true, columns: predicted)"]
        lines.append(" " * width + "".join(f"{e[:6]:>8}" for e in EMOTIONS))
        for emotion, row in zip(EMOTIONS, self.confusion, strict=True):
            lines.append(f"{emotion:<{width}}" + "".join(f"{int(v):>8d}" for v in row))
        return "\n".join(lines)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE over equal-width bins of the top probability: sum of |accuracy - confidence| * share."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def mean_cosine(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean cosine similarity between each predicted vector and its soft target."""
    p = probabilities.astype(np.float64)
    t = targets.astype(np.float64)
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1)
    return float(np.mean((p * t).sum(axis=1) / np.maximum(norms, 1e-12)))


def compute_metrics(
    probabilities: np.ndarray, labels: np.ndarray, targets: np.ndarray | None = None
) -> EvaluationReport:
    """All metrics for (n, 6) probabilities against canonical label indices (and soft targets)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = len(EMOTIONS)
    if probabilities.ndim != 2 or probabilities.shape[1] != k:
        raise DatasetError(f"expected probabilities of shape (n, {k}), got {probabilities.shape}")
    if labels.shape != (probabilities.shape[0],):
        raise DatasetError(
            f"expected {probabilities.shape[0]} labels, got an array of shape {labels.shape}"
        )
    if len(labels) == 0:
        raise DatasetError("cannot evaluate on an empty data set")
    predicted = probabilities.argmax(axis=1)
    classes = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    present = support > 0
    per_class = tuple(
        ClassMetrics(e, float(p), float(r), float(f), int(s))
        for e, p, r, f, s in zip(EMOTIONS, precision, recall, f1, support, strict=True)
    )
    cosine = None
    if targets is not None:
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != probabilities.shape:
            raise DatasetError(
                f"expected targets of shape {probabilities.shape}, got {targets.shape}"
            )
        cosine = mean_cosine(probabilities, targets)
    return EvaluationReport(
        n=len(labels),
        accuracy=float((predicted == labels).mean()),
        # Macro-F1 over the classes the data has, so a set without a class is not penalised.
        macro_f1=float(f1[present].mean()),
        per_class=per_class,
        confusion=confusion_matrix(labels, predicted, labels=classes),
        ece=expected_calibration_error(probabilities, labels),
        cosine=cosine,
    )


def evaluate(
    model: ProbabilityModel, data: LabelledData, *, batch_size: int = 64
) -> EvaluationReport:
    """Run ``model`` over ``data`` in batches and score it."""
    if batch_size < 1:
        raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
    chunks = [
        np.asarray(model.predict_proba(data.texts[i : i + batch_size]), dtype=np.float64)
        for i in range(0, len(data.texts), batch_size)
    ]
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0, len(EMOTIONS)))
    return compute_metrics(probabilities, data.labels, data.targets)


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".tsv", ".tab"):
            sep = "\t"
        elif suffix == ".csv":
            sep = ","
        else:
            with path.open(encoding="utf-8") as handle:
                sample = handle.read(65536)
            sep = csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
        return pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL
        )
    except (OSError, UnicodeDecodeError, csv.Error, pd.errors.ParserError) as exc:
        raise DatasetError(f"cannot read labelled data {path}: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(f"labelled data {path} is empty") from exc


def _label_index(value: str) -> int | None:
    value = value.strip()
    if value.lstrip("-").isdigit():
        index = int(value)
        return index if 0 <= index < len(EMOTIONS) else None
    name = canonical_name(value)
    return None if name is None else EMOTIONS.index(name)


def load_labelled(
    path: str | Path, *, text_column: str = "text", label_column: str = "label"
) -> LabelledData:
    """Read a labelled CSV/TSV: English or Korean emotion names, or indices 0-5.

    Optional columns named after the six emotions hold soft targets (normalised per row).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"labelled data file not found: {path}")
    frame = _read_table(path)
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path} lacks column(s) {', '.join(map(repr, missing))}; "
            f"found: {', '.join(map(repr, frame.columns))}"
        )
    if frame.empty:
        raise DatasetError(f"labelled data {path} has no rows")
    texts = [str(t) for t in frame[text_column]]
    # Row numbers as in the file: 1 is the header, so data starts at line 2.
    empty = [i + 2 for i, t in enumerate(texts) if not t.strip()]
    if empty:
        shown = ", ".join(map(str, empty[:_SHOWN])) + (" ..." if len(empty) > _SHOWN else "")
        raise DatasetError(f"{path} has {len(empty)} empty text(s) at line(s) {shown}")
    raw = [str(v) for v in frame[label_column]]
    indices = [_label_index(v) for v in raw]
    bad = sorted({v for v, i in zip(raw, indices, strict=True) if i is None})
    if bad:
        shown = ", ".join(map(repr, bad[:_SHOWN])) + (" ..." if len(bad) > _SHOWN else "")
        raise DatasetError(
            f"{path} has label(s) outside the six emotions: {shown}; valid labels: "
            f"{', '.join(EMOTIONS)} (or Korean names, or indices 0-{len(EMOTIONS) - 1})"
        )
    targets = None
    if all(e in frame.columns for e in EMOTIONS):
        try:
            values = frame[list(EMOTIONS)].astype(float).to_numpy()
        except ValueError as exc:
            raise DatasetError(f"{path} has non-numeric soft-target columns: {exc}") from exc
        sums = values.sum(axis=1, keepdims=True)
        if (values < 0).any() or (sums <= 0).any():
            raise DatasetError(f"{path} has soft targets that are negative or all zero")
        targets = (values / sums).astype(np.float32)
    return LabelledData(texts=texts, labels=np.array(indices, dtype=np.int64), targets=targets)
