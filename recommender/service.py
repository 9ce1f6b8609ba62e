"""The one service object the API and the CLI share: text in, emotions and tracks out."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.classifier import EmotionModel, Engine, check_text
from recommender.emotions import as_mapping, parse_emotion
from recommender.ranking import RankedTrack, RankingOptions, rank, shift_query
from recommender.track_index import TrackIndex

log = logging.getLogger(__name__)

SAMPLE_CATALOGUE = Path(__file__).resolve().parent.parent / "catalog" / "sample.jsonl"
SAMPLE_INDEX = SAMPLE_CATALOGUE.parent / "sample_index"


def default_index() -> str:
    """The index used when none is named: ``RECOMMENDER_INDEX``, else the sample catalogue's."""
    return os.environ.get("RECOMMENDER_INDEX") or str(SAMPLE_INDEX)


@dataclass(frozen=True)
class Recommendation:
    """The emotions read from a text and the tracks chosen for it, best first."""

    emotions: dict[str, float]
    tracks: list[RankedTrack]
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "emotions": self.emotions,
            "tracks": [track.to_dict() for track in self.tracks],
        }
        if self.target is not None:
            body["target"] = self.target
        return body


class Recommender:
    """A loaded emotion model and track index, checked to belong together."""

    def __init__(self, classifier: EmotionModel, index: TrackIndex) -> None:
        self.classifier = classifier
        self.index = index

    @classmethod
    def load(
        cls,
        model: str | None = None,
        index: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        engine: Engine | None = None,
    ) -> Recommender:
        """Load a model (default: configured) and the index built with it (default: sample)."""
        from recommender.classifier import load_classifier

        classifier = load_classifier(model, engine=engine, device=device)
        track_index = TrackIndex.load(
            index if index is not None else default_index(),
            checkpoint=classifier.source_fingerprint,
            device=device,
        )
        log.info("loaded %s and an index of %d tracks", classifier.name, len(track_index))
        return cls(classifier, track_index)

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One ``{emotion: probability}`` mapping per text."""
        return [as_mapping(row) for row in self.classifier.predict_proba(texts)]

    def recommend(
        self,
        text: str,
        k: int = 10,
        *,
        target: str | None = None,
        shift_strength: float = 0.5,
        filters: Mapping[str, Any] | None = None,
        per_artist: int | None = 2,
        diversity: float = 0.0,
    ) -> Recommendation:
        """Tracks whose lyrics match the text's emotion (or one shifted towards ``target``)."""
        if filters is None:
            filters = {}
        options = RankingOptions(
            k=k,
            per_artist=per_artist,
            diversity=diversity,
            # A copy of a mapping; anything else is refused by RankingOptions with a clear error.
            filters=dict(filters) if isinstance(filters, Mapping) else filters,
        )
        check_text(text)
        vector = self.classifier.predict_proba([text])[0]
        query: np.ndarray = vector
        if target is not None:
            target = parse_emotion(target)
            query = shift_query(vector, target, shift_strength)
        tracks = rank(query, self.index, options, target=target, mood=vector)
        return Recommendation(emotions=as_mapping(vector), tracks=tracks, target=target)
