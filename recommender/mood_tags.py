"""A catalogue's own mood tags, blended with what the model reads in the lyrics.

Tags come as one label column (an emotion's English or Korean name per track; empty for
untagged tracks) or as six probability columns ``mood_angry`` … ``mood_sad``. A tagged track's
vector moves ``weight`` of the way from the lyrics' reading to its tag on the sqrt(p) sphere the
index searches on: 0 ignores tags, 1 replaces the reading by the tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.emotions import EMOTIONS, KOREAN_NAMES, canonical_name
from recommender.errors import CatalogueError

DEFAULT_COLUMN = "mood"
PROBABILITY_COLUMNS = tuple(f"mood_{emotion}" for emotion in EMOTIONS)
PROBABILITIES = "mood_*"  # how the manifest names the six probability columns
SUM_TOLERANCE = 1e-3
SHOWN = 5


@dataclass(frozen=True)
class MoodTags:
    """One distribution per catalogue row (zeros where untagged) and which rows are tagged."""

    column: str
    vectors: np.ndarray
    tagged: np.ndarray

    def rows(self, keep: np.ndarray) -> MoodTags:
        """The tags of the rows ``keep`` selects (tracks that are indexed)."""
        return MoodTags(self.column, self.vectors[keep], self.tagged[keep])

    def manifest(self, weight: float) -> dict[str, Any]:
        """What the index manifest records about the blend."""
        return {"weight": weight, "column": self.column, "tagged": int(self.tagged.sum())}


def tags_to_blend(frame: Any, weight: float, column: str | None = None) -> MoodTags | None:
    """The catalogue's tags if they are to be blended in (``weight`` above 0), else None."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise CatalogueError(f"the tag weight must be a number from 0 to 1; got {weight!r}")
    return read_tags(frame, column) if weight > 0 else None


def read_tags(frame: Any, column: str | None = None) -> MoodTags:
    """The tags of a catalogue DataFrame, or CatalogueError in one line naming what is wrong.

    Without ``column``: the six ``mood_*`` columns if present, else the ``mood`` column.
    """
    if column is None:
        if all(c in frame.columns for c in PROBABILITY_COLUMNS):
            return _probabilities(frame)
        column = DEFAULT_COLUMN
    if column == PROBABILITIES:
        return _probabilities(frame)
    if column not in frame.columns:
        found = ", ".join(map(str, frame.columns))
        raise CatalogueError(
            f"no mood tag column {column!r} in the catalogue; name one with --tag-column, or "
            f"give six columns {', '.join(PROBABILITY_COLUMNS)}; found: {found}"
        )
    return _labels(frame, column)


def _labels(frame: Any, column: str) -> MoodTags:
    values = frame[column].tolist()
    ids = _track_ids(frame)
    vectors = np.zeros((len(values), len(EMOTIONS)), dtype=np.float32)
    tagged = np.zeros(len(values), dtype=bool)
    unknown: dict[str, list[str]] = {}  # label: the tracks carrying it
    for i, value in enumerate(values):
        if _missing(value):
            continue
        emotion = canonical_name(str(value))
        if emotion is None:
            unknown.setdefault(str(value), []).append(ids[i])
            continue
        vectors[i, EMOTIONS.index(emotion)] = 1.0
        tagged[i] = True
    if unknown:
        shown = "; ".join(f"{label!r} (tracks {_listed(ids)})" for label, ids in unknown.items())
        names = ", ".join(f"{e}/{KOREAN_NAMES[e]}" for e in EMOTIONS)
        raise CatalogueError(
            f"mood tag column {column!r} has {len(unknown)} unknown label(s): {shown}; "
            f"expected one of {names}, or empty for no tag"
        )
    return MoodTags(column, vectors, tagged)


def _probabilities(frame: Any) -> MoodTags:
    import pandas as pd

    ids = _track_ids(frame)
    numbers = frame[list(PROBABILITY_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    given = frame[list(PROBABILITY_COLUMNS)].map(lambda v: not _missing(v)).to_numpy()
    values = numbers.to_numpy(dtype=np.float64)
    problems = []
    if (given & np.isnan(values)).any():
        bad = (given & np.isnan(values)).any(1)
        problems.append(f"values that are not numbers for tracks {_listed(ids[bad])}")
    partial = given.any(1) & ~given.all(1)
    if partial.any():
        problems.append(f"some but not all six given for tracks {_listed(ids[partial])}")
    tagged = given.all(1) & ~np.isnan(values).any(1)
    negative = tagged & (values < 0).any(1)
    if negative.any():
        problems.append(f"negative values for tracks {_listed(ids[negative])}")
    sums = np.where(tagged, values.sum(1), 1.0)
    off = tagged & ~negative & (np.abs(sums - 1.0) > SUM_TOLERANCE)
    if off.any():
        sums_shown = [f"{t} ({total:.3f})" for t, total in zip(ids[off], sums[off], strict=True)]
        problems.append(f"tracks whose six do not sum to 1: {_listed(sums_shown)}")
    if problems:
        raise CatalogueError(f"mood tag columns {PROBABILITIES} have {'; '.join(problems)}")
    vectors = np.where(tagged[:, None], values, 0.0)
    vectors[tagged] /= vectors[tagged].sum(1, keepdims=True)
    return MoodTags(PROBABILITIES, vectors.astype(np.float32), tagged)


def blend(vectors: np.ndarray, tags: MoodTags, weight: float) -> np.ndarray:
    """``vectors`` with each tagged row moved ``weight`` of the way to its tag (sqrt sphere)."""
    if weight == 0.0 or not tags.tagged.any():
        return vectors
    rows = tags.tagged
    mixed = (1.0 - weight) * np.sqrt(vectors[rows].astype(np.float64)) + weight * np.sqrt(
        tags.vectors[rows].astype(np.float64)
    )
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    blended = vectors.copy()
    blended[rows] = (mixed**2 / (mixed**2).sum(1, keepdims=True)).astype(vectors.dtype)
    return blended


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _track_ids(frame: Any) -> np.ndarray:
    """Each row's track id, to name rows in messages (row numbers differ between shards)."""
    if "track_id" in frame.columns:
        return np.array(frame["track_id"].astype(str).tolist(), dtype=object)
    return np.array([f"row {i + 1}" for i in range(len(frame))], dtype=object)


def _listed(items: Any) -> str:
    items = list(items)
    shown = ", ".join(map(str, items[:SHOWN]))
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
