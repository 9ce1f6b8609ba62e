"""The one service object the API and the CLI share: text in, emotions and tracks out."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.classifier import EmotionModel, Engine
from recommender.emotions import as_mapping
from recommender.ranking import RankedTrack, rank, shift_query
from recommender.schemas import RecommendRequest, RecommendResponse, emotions, parse
from recommender.settings import Settings
from recommender.track_index import TrackIndex

log = logging.getLogger(__name__)

SAMPLE_CATALOGUE = Path(__file__).resolve().parent.parent / "catalog" / "sample.jsonl"
SAMPLE_INDEX = SAMPLE_CATALOGUE.parent / "sample_index"


def default_index(settings: Settings | None = None) -> str:
    """The index used when none is named: the ``index`` setting (``RECOMMENDER_INDEX``), else
    the sample catalogue's."""
    return (settings or Settings.from_env()).index or str(SAMPLE_INDEX)


@dataclass(frozen=True)
class Recommendation:
    """The emotions read from a text and the tracks chosen for it, best first."""

    emotions: dict[str, float]
    tracks: list[RankedTrack]
    target: str | None = None

    def to_body(self) -> RecommendResponse:
        return RecommendResponse(
            emotions=emotions(self.emotions),
            tracks=[track.to_body() for track in self.tracks],
            target=self.target,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``POST /recommend`` body."""
        return self.to_body().model_dump(mode="json", exclude_none=True)


class Recommender:
    """A loaded emotion model and track index, checked to belong together."""

    def __init__(self, classifier: EmotionModel, index: TrackIndex) -> None:
        self.classifier = classifier
        self.index = index

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None = None,
        index: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        engine: Engine | None = None,
        threads: int | None = None,
        settings: Settings | None = None,
    ) -> Recommender:
        """Load a model (default: configured) and the index built with it (default: sample)."""
        from recommender.classifier import EmotionClassifier

        settings = (settings or Settings.from_env()).replace(
            model=None if model is None else str(model),
            index=None if index is None else str(index),
            device=device,
            engine=engine,
            threads=threads,
        )
        return cls.with_index(EmotionClassifier.from_pretrained(settings=settings), settings)

    @classmethod
    def with_index(cls, classifier: EmotionModel, settings: Settings | None = None) -> Recommender:
        """``classifier`` with the configured index, checked to have been built with it; on
        the GPU when the classifier's placement put FAISS there."""
        placement = getattr(classifier, "placement", None)
        track_index = TrackIndex.load(
            default_index(settings),
            checkpoint=classifier.source_fingerprint,
            device="cuda" if placement is not None and placement.faiss_gpu else "cpu",
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
        """Tracks whose lyrics match the text's emotion (or one shifted towards ``target``).

        The arguments are checked as a ``POST /recommend`` body would be (InvalidInputError).
        """
        request = {
            "text": text,
            "k": k,
            "target": target,
            "shift_strength": shift_strength,
            "filters": dict(filters) if isinstance(filters, Mapping) else filters,
            "per_artist": per_artist,
            "diversity": diversity,
        }
        return self.answer(parse(RecommendRequest, request))

    def answer(self, request: RecommendRequest) -> Recommendation:
        """The recommendation for a validated request."""
        vector = self.classifier.predict_proba([request.text])[0]
        query: np.ndarray = vector
        if request.target is not None:
            query = shift_query(vector, request.target, request.shift_strength)
        options = request.ranking_options()
        tracks = rank(query, self.index, options, target=request.target, mood=vector)
        return Recommendation(emotions=as_mapping(vector), tracks=tracks, target=request.target)

    def genres(self) -> list[str]:
        """The catalogue's genres, each once (first spelling kept), sorted."""
        if "genre" not in self.index.tracks.column_names:
            return []
        seen: dict[str, str] = {}
        for value in self.index.tracks.column("genre").to_pylist():
            if value is not None and str(value).strip():
                seen.setdefault(str(value).strip().casefold(), str(value).strip())
        return sorted(seen.values())
