"""From search candidates to the final list: filters, de-duplication, artist caps, diversity."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.emotions import EMOTIONS, KOREAN_NAMES, as_mapping
from recommender.errors import InvalidInputError
from recommender.schemas import RankingOptions, Track, emotions
from recommender.track_index import TrackIndex

__all__ = ["RankedTrack", "RankingOptions", "explain", "rank", "shift_query"]

RANGE_FILTERS = {"year_min": ("year", np.greater_equal), "year_max": ("year", np.less_equal)}
SPECIAL_FILTERS = {"exclude_track_ids"}
HIDDEN_COLUMNS = {"lyrics_sha256"}


@dataclass(frozen=True)
class RankedTrack:
    """One recommended track: its metadata, emotion vector, score and a short explanation."""

    track_id: str
    title: str
    artist: str
    score: float
    emotions: dict[str, float]
    explanation: str
    metadata: dict[str, Any]

    def to_body(self) -> Track:
        # Catalogue columns ride along, but never replace a contract field of the same name.
        extra = {
            k: v for k, v in self.metadata.items() if v is not None and k not in Track.model_fields
        }
        return Track(
            track_id=self.track_id,
            title=self.title,
            artist=self.artist,
            score=round(self.score, 4),
            emotions=emotions(self.emotions),
            explanation=self.explanation,
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_body().model_dump(mode="json")


def _filter_mask(index: TrackIndex, filters: dict[str, Any]) -> np.ndarray:
    """Rows of the index allowed by the filters (equality, lists of values, year range).

    The values were checked by ``Filters``; the names of catalogue columns are checked here.
    """
    columns = set(index.tracks.column_names) - HIDDEN_COLUMNS
    mask = np.ones(len(index), dtype=bool)
    for name, wanted in filters.items():
        if name in SPECIAL_FILTERS:
            mask[index.rows_of(wanted)] = False
            continue
        if name in RANGE_FILTERS:
            column, compare = RANGE_FILTERS[name]
            if column not in columns:
                raise InvalidInputError(
                    f"filter {name!r} needs a {column!r} column in the catalogue"
                )
            numbers = np.array(
                [_as_number(v) for v in index.tracks.column(column).to_pylist()], dtype=float
            )
            known = ~np.isnan(numbers)
            mask &= known & compare(np.where(known, numbers, 0.0), wanted)
            continue
        if name not in columns:
            valid = sorted(columns | set(RANGE_FILTERS) | SPECIAL_FILTERS)
            raise InvalidInputError(f"unknown filter {name!r}; valid filters: {', '.join(valid)}")
        options = wanted if isinstance(wanted, list) else [wanted]
        allowed = {_filter_key(v) for v in options}
        values = index.tracks.column(name).to_pylist()
        mask &= np.array([v is not None and _filter_key(v) in allowed for v in values])
    return mask


def _as_number(value: Any) -> float:
    """A catalogue value as a number; NaN when missing or not numeric (CSV columns are text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _filter_key(value: Any) -> str:
    """A value compared case-insensitively as text; whole floats read as integers (1990.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).casefold()


def _dominant(vector: np.ndarray) -> str:
    i = int(np.argmax(vector))
    return f"{KOREAN_NAMES[EMOTIONS[i]]} {vector[i]:.0%}"


def explain(mood: np.ndarray, track: np.ndarray, target: str | None) -> str:
    """A one-line reason a person can read, in Korean like the texts it answers.

    The similarity itself is the track's ``score``.
    """
    wanted = f"{KOREAN_NAMES[target]} 쪽으로 옮긴 기분" if target else "지금 기분"
    return f"{wanted}에 어울려요: 글은 {_dominant(mood)}, 이 노래는 {_dominant(track)}"


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient between rows of ``a`` and the vector ``b``."""
    return np.sqrt(a * b).sum(axis=-1)


def rank(
    query: np.ndarray,
    index: TrackIndex,
    options: RankingOptions,
    *,
    target: str | None = None,
    mood: np.ndarray | None = None,
) -> list[RankedTrack]:
    """The best ``k`` tracks for one query distribution, after the options' rules.

    ``mood`` is the text's own vector when ``query`` was shifted towards ``target``.
    """
    mood = query if mood is None else mood
    filters = options.filters.active()
    allowed = _filter_mask(index, filters) if filters else None
    pool = int(allowed.sum()) if allowed is not None else len(index)
    fetch = min(max(options.k * options.overfetch, 50), len(index))
    exact = False
    while True:
        # A widened search is exact: an approximate index may hold back rows a filter needs.
        result = index.search(query[None, :], max(fetch, 1), exact=exact)
        ids, scores = result.ids[0], result.scores[0]
        keep = ids >= 0
        if allowed is not None:
            keep &= allowed[np.where(keep, ids, 0)]
        picked = _select(ids[keep], scores[keep], index, options)
        if len(picked) >= options.k or fetch >= len(index) or len(picked) >= pool:
            break
        fetch, exact = min(fetch * 4, len(index)), True
    # One take for all picked rows: per-row pyarrow access costs more than the search.
    metas = index.tracks.take(np.array([row for row, _ in picked], dtype=np.int64)).to_pylist()
    return [
        RankedTrack(
            track_id=str(meta["track_id"]),
            title=str(meta["title"]),
            artist=str(meta["artist"]),
            score=float(score),
            emotions=as_mapping(index.vectors[row]),
            explanation=explain(mood, index.vectors[row], target),
            metadata={
                k: v
                for k, v in meta.items()
                if k not in {"track_id", "title", "artist"} | HIDDEN_COLUMNS
            },
        )
        for (row, score), meta in zip(picked, metas, strict=True)
    ]


def _folded(value: Any) -> str:
    return str(value or "").strip().casefold()


def _select(
    ids: np.ndarray, scores: np.ndarray, index: TrackIndex, options: RankingOptions
) -> list[tuple[int, float]]:
    """Greedy pick: skip duplicates and capped artists; trade similarity for diversity (MMR)."""
    rows = ids.tolist()
    candidates = index.tracks.select(["title", "artist"]).take(np.asarray(rows, dtype=np.int64))
    titles = [_folded(t) for t in candidates.column("title").to_pylist()]
    artist_of = dict(zip(rows, map(_folded, candidates.column("artist").to_pylist()), strict=True))
    seen: set[tuple[str, str]] = set()
    per_artist: Counter[str] = Counter()
    eligible: list[tuple[int, float]] = []
    for row, title, score in zip(rows, titles, scores.tolist(), strict=True):
        key = (title, artist_of[row])
        if key in seen:
            continue
        seen.add(key)
        eligible.append((row, score))
    picked: list[tuple[int, float]] = []
    remaining = eligible
    while remaining and len(picked) < options.k:
        if options.diversity > 0 and picked:
            chosen = index.vectors[[row for row, _ in picked]]
            values = [
                (1 - options.diversity) * score
                - options.diversity * float(_similarity(chosen, index.vectors[row]).max())
                for row, score in remaining
            ]
            best = int(np.argmax(values))
        else:
            best = 0
        row, score = remaining.pop(best)
        artist = artist_of[row]
        if options.per_artist is not None and per_artist[artist] >= options.per_artist:
            continue
        per_artist[artist] += 1
        picked.append((row, score))
    return picked


def shift_query(query: np.ndarray, target: str, strength: float) -> np.ndarray:
    """Move a distribution ``strength`` (0 to 1) of the way towards one canonical emotion."""
    corner = np.zeros(len(EMOTIONS), dtype=np.float32)
    corner[EMOTIONS.index(target)] = 1.0
    return ((1.0 - strength) * query + strength * corner).astype(np.float32)
