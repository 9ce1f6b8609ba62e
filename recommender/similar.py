"""Songs like a song: the catalogue's nearest tracks by emotion, the song itself left out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.emotions import strongest
from recommender.errors import TrackNotFoundError
from recommender.ranking import (
    RankedTrack,
    RankingOptions,
    TrackInfo,
    pick,
    ranked_tracks,
    track_infos,
)
from recommender.schemas import SimilarResponse
from recommender.track_index import TrackIndex


@dataclass(frozen=True)
class SimilarTracks:
    """A track and the tracks nearest it, best first."""

    track: TrackInfo
    tracks: list[RankedTrack]

    def to_body(self) -> SimilarResponse:
        return SimilarResponse(
            track=self.track.to_body(), tracks=[t.to_body() for t in self.tracks]
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``GET /tracks/{track_id}/similar`` body."""
        return self.to_body().model_dump(mode="json", exclude_none=True)


def row_of(index: TrackIndex, track_id: str) -> int:
    """The index row holding ``track_id``, or TrackNotFoundError (a 404 in the API)."""
    rows = index.rows_of([track_id])
    if not rows:
        raise TrackNotFoundError(f"no track with id {track_id!r} in the index")
    return rows[0]


def track_info(index: TrackIndex, track_id: str) -> TrackInfo:
    """One track's metadata and emotions."""
    return track_infos(index, [row_of(index, track_id)])[0]


def similar_tracks(index: TrackIndex, track_id: str, options: RankingOptions) -> SimilarTracks:
    """The tracks whose emotions are nearest ``track_id``'s, after the options' rules."""
    row = row_of(index, track_id)
    excluded = [*(options.filters.exclude_track_ids or []), track_id]
    filters = options.filters.model_copy(update={"exclude_track_ids": excluded})
    options = options.model_copy(update={"filters": filters})
    vector = index.vectors[row]
    picked = pick(vector, index, options)
    explanations = [_explain(vector, index.vectors[r]) for r, _ in picked]
    return SimilarTracks(track_infos(index, [row])[0], ranked_tracks(index, picked, explanations))


def _explain(song: np.ndarray, track: np.ndarray) -> str:
    return f"이 노래와 감정이 닮았어요: 원곡은 {strongest(song)}, 이 노래는 {strongest(track)}"
