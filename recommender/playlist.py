"""Mood playlists: meet the listener's mood, then move step by step towards the one wanted.

Music therapy calls this the iso principle. The steps' goals lie evenly spaced on the great
circle from ``sqrt(start)`` to ``sqrt(end)`` — the unit sphere the index searches on, where the
inner product is the Bhattacharyya coefficient — so every goal is itself a distribution and
neighbouring goals are equally far apart. Tracks are assigned to the steps jointly (the
Hungarian method on squared Hellinger distance, the first and last steps weighted more), so one
good track is not spent early on a step another track fits almost as well.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recommender.emotions import EMOTIONS, as_mapping, strongest
from recommender.ranking import RankedTrack, allowed_rows, distinct, ranked_tracks, search_wider
from recommender.schemas import Filters, PlaylistResponse, PlaylistTrack, emotions
from recommender.track_index import TrackIndex

PlaylistMode = Literal["target", "lift", "stay"]
LIFT_TOWARDS = "happy"
LIFT = 0.5  # without a target, how far along the way to happy a mood other than happy goes
END_WEIGHT = 4.0  # the first and last steps count this much more than the ones between


@dataclass(frozen=True)
class PlaylistStep:
    """One step of a playlist: the goal the step aims at and the track assigned to it."""

    step: int
    goal: dict[str, float]
    distance: float
    track: RankedTrack

    def to_body(self) -> PlaylistTrack:
        return PlaylistTrack(
            **self.track.to_body().model_dump(),
            step=self.step,
            goal=emotions(self.goal),
            distance=round(self.distance, 4),
        )


@dataclass(frozen=True)
class Playlist:
    """The text's mood, where the playlist ends, and its tracks in order."""

    emotions: dict[str, float]
    target: str
    mode: PlaylistMode
    end: dict[str, float]
    tracks: list[PlaylistStep]

    def to_body(self) -> PlaylistResponse:
        return PlaylistResponse(
            emotions=emotions(self.emotions),
            target=self.target,  # type: ignore[arg-type]
            mode=self.mode,
            end=emotions(self.end),
            tracks=[track.to_body() for track in self.tracks],
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``POST /playlist`` body."""
        return self.to_body().model_dump(mode="json", exclude_none=True)


def corner(emotion: str) -> np.ndarray:
    """The distribution that is all one emotion."""
    vector = np.zeros(len(EMOTIONS), dtype=np.float32)
    vector[EMOTIONS.index(emotion)] = 1.0
    return vector


def great_circle(start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    """``n`` distributions evenly spaced from ``start`` to ``end`` (both included; one point
    is ``start``) on the sqrt(p) sphere."""
    return along(start, end, np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1))


def along(start: np.ndarray, end: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The distributions at these fractions of the great circle from ``start`` to ``end``.

    The arc between two points of the positive orthant stays in it, so every point squares
    back to a distribution.
    """
    a = np.sqrt(np.asarray(start, dtype=np.float64))
    b = np.sqrt(np.asarray(end, dtype=np.float64))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    t = np.asarray(fractions, dtype=np.float64)[:, None]
    angle = float(np.arccos(np.clip(a @ b, -1.0, 1.0)))
    if angle < 1e-6:
        points = np.repeat(a[None, :], len(t), axis=0)
    else:
        points = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    goals = points**2
    return (goals / goals.sum(axis=1, keepdims=True)).astype(np.float32)


def destination(mood: np.ndarray, target: str | None) -> tuple[str, PlaylistMode, np.ndarray]:
    """Where a playlist ends: the target emotion itself; without one, a mood other than happy
    lifted part of the way towards happy, and a happy mood kept as it is."""
    if target is not None:
        return target, "target", corner(target)
    if EMOTIONS[int(np.argmax(mood))] == LIFT_TOWARDS:
        return LIFT_TOWARDS, "stay", np.asarray(mood, dtype=np.float32)
    return LIFT_TOWARDS, "lift", along(mood, corner(LIFT_TOWARDS), np.array([LIFT]))[0]


def make_playlist(
    mood: np.ndarray,
    index: TrackIndex,
    *,
    n: int,
    target: str | None = None,
    filters: Filters | None = None,
    per_artist: int | None = 2,
) -> Playlist:
    """``n`` tracks from ``mood`` to the destination (fewer if the filters leave fewer)."""
    target, mode, end = destination(mood, target)
    allowed = allowed_rows(index, filters) if filters is not None else None
    # The joint optimum lies within each goal's n nearest rows; caps and repeats need more.
    rows: list[int] = search_wider(
        index,
        great_circle(mood, end, n),
        allowed,
        max(2 * n, 50),
        lambda rows, _scores: assign(mood, end, n, index, rows, per_artist),
        n,
    )
    goals = great_circle(mood, end, len(rows))
    scores = [float(np.sqrt(goals[i] * index.vectors[row]).sum()) for i, row in enumerate(rows)]
    tracks = ranked_tracks(
        index,
        list(zip(rows, scores, strict=True)),
        [_explain(i + 1, len(rows), goals[i], index.vectors[row]) for i, row in enumerate(rows)],
    )
    return Playlist(
        emotions=as_mapping(mood),
        target=target,
        mode=mode,
        end=as_mapping(end),
        tracks=[
            PlaylistStep(
                step=i + 1,
                goal=as_mapping(goals[i]),
                distance=float(np.sqrt(max(0.0, 1.0 - track.score))),
                track=track,
            )
            for i, track in enumerate(tracks)
        ],
    )


def assign(
    start: np.ndarray,
    end: np.ndarray,
    n: int,
    index: TrackIndex,
    candidates: list[np.ndarray],
    per_artist: int | None,
) -> list[int]:
    """A row for each step, in step order: no row twice, no artist over ``per_artist``.

    ``candidates`` holds each goal's allowed rows, best first. When they cannot fill ``n``
    steps, the path is cut into as many steps as they can fill.
    """
    from scipy.optimize import linear_sum_assignment

    ordered = np.concatenate(candidates)
    _, first = np.unique(ordered, return_index=True)
    rows, artists = distinct(index, ordered[np.sort(first)])
    counts = Counter(artists).values()
    steps = min(n, sum(min(c, per_artist) for c in counts) if per_artist else len(rows))
    if steps == 0:
        return []
    goals = great_circle(start, end, steps)
    # Squared Hellinger distance: 1 - BC, linear in the sqrt vectors the index holds.
    cost = 1.0 - np.sqrt(goals.astype(np.float64)) @ np.sqrt(index.vectors[rows].T)
    cost[[0, -1]] *= END_WEIGHT
    usable = np.ones(len(rows), dtype=bool)
    while True:
        columns = np.flatnonzero(usable)
        _, picked = linear_sum_assignment(cost[:, columns])  # steps come back in order
        chosen = columns[picked]
        by_artist: dict[str, list[tuple[float, int]]] = {}
        for step, j in enumerate(chosen):
            by_artist.setdefault(artists[j], []).append((float(cost[step, j]), int(j)))
        over = [fits for fits in by_artist.values() if per_artist and len(fits) > per_artist]
        if not over:
            return [rows[j] for j in chosen]
        # A capped artist keeps its best-fitting tracks; the rest leave the candidates and the
        # steps are assigned again (the artist keeps ``per_artist`` rows: still fillable).
        for fits in over:
            for _, j in sorted(fits)[per_artist:]:
                usable[j] = False


def _explain(step: int, total: int, goal: np.ndarray, track: np.ndarray) -> str:
    return f"{step}/{total}단계: 목표는 {strongest(goal)}, 이 노래는 {strongest(track)}"


def steps_between(vectors: np.ndarray) -> np.ndarray:
    """Hellinger distance between each pair of neighbouring tracks' distributions."""
    roots = np.sqrt(np.asarray(vectors, dtype=np.float64))
    agreement = (roots[1:] * roots[:-1]).sum(axis=1)
    return np.sqrt(np.clip(1.0 - agreement, 0.0, 1.0))


def glued_nearest(start: np.ndarray, end: np.ndarray, index: TrackIndex, n: int) -> list[int]:
    """The baseline a playlist is measured against: the start's nearest tracks (best first)
    followed by the end's nearest (best last), ``n`` rows in all, none twice."""
    head = (n + 1) // 2
    near_start = index.search(np.asarray(start)[None, :], n, exact=True).ids[0]
    near_end = index.search(np.asarray(end)[None, :], 2 * n, exact=True).ids[0]
    rows = [int(r) for r in near_start[:head] if r >= 0]
    tail = [int(r) for r in near_end if r >= 0 and int(r) not in rows][: n - len(rows)]
    return rows + tail[::-1]
