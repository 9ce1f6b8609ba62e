"""From search candidates to the final list: filters, de-duplication, artist caps, diversity."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from recommender.emotions import EMOTIONS, KOREAN_NAMES, as_mapping, strongest
from recommender.errors import InvalidInputError
from recommender.schemas import Filters, RankingOptions, Track, TrackDetail, emotions
from recommender.track_index import TrackIndex

__all__ = ["RankedTrack", "RankingOptions", "TrackInfo", "explain", "rank", "shift_query"]

RANGE_FILTERS = {"year_min": ("year", np.greater_equal), "year_max": ("year", np.less_equal)}
SPECIAL_FILTERS = {"exclude_track_ids"}
HIDDEN_COLUMNS = {"lyrics_sha256"}
T = TypeVar("T")


@dataclass(frozen=True)
class TrackInfo:
    """One catalogue track: its metadata and the emotion vector the index holds for it."""

    track_id: str
    title: str
    artist: str
    emotions: dict[str, float]
    metadata: dict[str, Any]

    def to_body(self) -> TrackDetail:
        return TrackDetail(
            track_id=self.track_id,
            title=self.title,
            artist=self.artist,
            emotions=emotions(self.emotions),
            **self.extra(TrackDetail),
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_body().model_dump(mode="json")

    def extra(self, body: type[BaseModel]) -> dict[str, Any]:
        """Catalogue columns ride along, but never replace a field of the body's own."""
        return {
            k: v for k, v in self.metadata.items() if v is not None and k not in body.model_fields
        }


@dataclass(frozen=True)
class RankedTrack(TrackInfo):
    """One recommended track: a catalogue track with its score and a short explanation."""

    score: float
    explanation: str

    def to_body(self) -> Track:  # type: ignore[override]
        return Track(
            track_id=self.track_id,
            title=self.title,
            artist=self.artist,
            score=round(self.score, 4),
            emotions=emotions(self.emotions),
            explanation=self.explanation,
            **self.extra(Track),
        )


def filter_mask(index: TrackIndex, filters: dict[str, Any]) -> np.ndarray:
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


def explain(mood: np.ndarray, track: np.ndarray, target: str | None) -> str:
    """A one-line reason a person can read, in Korean like the texts it answers.

    The similarity itself is the track's ``score``.
    """
    wanted = f"{KOREAN_NAMES[target]} 쪽으로 옮긴 기분" if target else "지금 기분"
    return f"{wanted}에 어울려요: 글은 {strongest(mood)}, 이 노래는 {strongest(track)}"


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
    picked = pick(query, index, options)
    return ranked_tracks(
        index,
        picked,
        [explain(mood, index.vectors[row], target) for row, _ in picked],
    )


def allowed_rows(index: TrackIndex, filters: Filters) -> np.ndarray | None:
    """The rows the filters allow, or None when no filter is set."""
    active = filters.active()
    return filter_mask(index, active) if active else None


def pick(query: np.ndarray, index: TrackIndex, options: RankingOptions) -> list[tuple[int, float]]:
    """Rows and scores of the best ``k`` tracks for one query, after the options' rules."""
    return search_wider(
        index,
        query[None, :],
        allowed_rows(index, options.filters),
        max(options.k * options.overfetch, 50),
        lambda rows, scores: _select(rows[0], scores[0], index, options),
        options.k,
    )


def search_wider(
    index: TrackIndex,
    queries: np.ndarray,
    allowed: np.ndarray | None,
    fetch: int,
    choose: Callable[[list[np.ndarray], list[np.ndarray]], list[T]],
    want: int,
) -> list[T]:
    """Let ``choose`` pick from the ``fetch`` rows nearest each query that pass the filters.

    ``choose`` gets, per query, the allowed rows best first and their scores. While it picks
    fewer than ``want`` and more rows could help, the search widens fourfold; a widened search
    is exact, since an approximate index may hold back rows a filter needs.
    """
    pool = len(index) if allowed is None else int(allowed.sum())
    fetch = min(fetch, len(index))
    exact = False
    while True:
        result = index.search(queries, max(fetch, 1), exact=exact)
        keep = result.ids >= 0
        if allowed is not None:
            keep &= allowed[np.where(keep, result.ids, 0)]
        picked = choose(
            [ids[mask] for ids, mask in zip(result.ids, keep, strict=True)],
            [scores[mask] for scores, mask in zip(result.scores, keep, strict=True)],
        )
        if len(picked) >= want or fetch >= len(index) or len(picked) >= pool:
            return picked
        fetch, exact = min(fetch * 4, len(index)), True


def track_infos(index: TrackIndex, rows: list[int]) -> list[TrackInfo]:
    """The tracks at these rows of the index, in the given order."""
    # One take for all rows: per-row pyarrow access costs more than the search.
    metas = index.tracks.take(np.array(rows, dtype=np.int64)).to_pylist()
    return [
        TrackInfo(
            track_id=str(meta["track_id"]),
            title=str(meta["title"]),
            artist=str(meta["artist"]),
            emotions=as_mapping(index.vectors[row]),
            metadata={
                k: v
                for k, v in meta.items()
                if k not in {"track_id", "title", "artist"} | HIDDEN_COLUMNS
            },
        )
        for row, meta in zip(rows, metas, strict=True)
    ]


def ranked_tracks(
    index: TrackIndex, picked: list[tuple[int, float]], explanations: list[str]
) -> list[RankedTrack]:
    """Picked ``(row, score)`` pairs as tracks with their metadata, in the given order."""
    infos = track_infos(index, [row for row, _ in picked])
    return [
        RankedTrack(**vars(info), score=float(score), explanation=explanation)
        for info, (_, score), explanation in zip(infos, picked, explanations, strict=True)
    ]


def _folded(value: Any) -> str:
    return str(value or "").strip().casefold()


def distinct(index: TrackIndex, rows: np.ndarray) -> tuple[list[int], list[str]]:
    """``rows`` without repeats of a title by the same artist (the first kept), and each
    kept row's artist as compared for caps (case and spacing folded)."""
    candidates = index.tracks.select(["title", "artist"]).take(np.asarray(rows, dtype=np.int64))
    titles = [_folded(t) for t in candidates.column("title").to_pylist()]
    artists = [_folded(a) for a in candidates.column("artist").to_pylist()]
    seen: set[tuple[str, str]] = set()
    kept: list[int] = []
    kept_artists: list[str] = []
    for row, title, artist in zip(rows.tolist(), titles, artists, strict=True):
        if (title, artist) in seen:
            continue
        seen.add((title, artist))
        kept.append(row)
        kept_artists.append(artist)
    return kept, kept_artists


def _select(
    ids: np.ndarray, scores: np.ndarray, index: TrackIndex, options: RankingOptions
) -> list[tuple[int, float]]:
    """Greedy pick: skip duplicates and capped artists; trade similarity for diversity (MMR)."""
    rows, artists = distinct(index, ids)
    score_of = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    artist_of = dict(zip(rows, artists, strict=True))
    per_artist: Counter[str] = Counter()
    remaining = [(row, score_of[row]) for row in rows]
    picked: list[tuple[int, float]] = []
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
