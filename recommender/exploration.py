"""Helpers for analysts' notebooks: an index as a table, and a 2-D map of the emotion simplex."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recommender.emotions import EMOTIONS
from recommender.service import Recommender
from recommender.track_index import TrackIndex, check_vectors

# Corners of a regular hexagon, one per emotion, in canonical order (angry at the top).
CORNERS = np.array(
    [
        [np.sin(2 * np.pi * i / len(EMOTIONS)), np.cos(2 * np.pi * i / len(EMOTIONS))]
        for i in range(len(EMOTIONS))
    ]
)


def simplex_map(vectors: Any) -> np.ndarray:
    """``(n, 2)`` points: each distribution as the probability-weighted mean of the corners.

    A track that is purely one emotion sits on that emotion's corner; mixed ones move inwards.
    """
    return check_vectors(vectors).astype(np.float64) @ CORNERS


def index_frame(index: TrackIndex) -> Any:
    """The index's tracks with one column per emotion and the dominant emotion."""
    frame = index.tracks.to_pandas()
    for i, emotion in enumerate(EMOTIONS):
        frame[emotion] = index.vectors[:, i]
    frame["dominant"] = [EMOTIONS[i] for i in index.vectors.argmax(axis=1)]
    return frame


def matches_frame(service: Recommender, texts: Sequence[str], k: int = 3) -> Any:
    """For each text: its dominant emotion and vector beside its top ``k`` tracks."""
    import pandas as pd

    rows = []
    for text in texts:
        result = service.recommend(text, k)
        mood = max(result.emotions, key=result.emotions.__getitem__)
        for rank, track in enumerate(result.tracks, 1):
            rows.append(
                {
                    "text": text,
                    "text_emotion": f"{mood} {result.emotions[mood]:.2f}",
                    "rank": rank,
                    "track": f"{track.title} — {track.artist}",
                    "track_emotion": max(track.emotions, key=track.emotions.__getitem__),
                    "score": round(track.score, 3),
                }
            )
    return pd.DataFrame(rows)
