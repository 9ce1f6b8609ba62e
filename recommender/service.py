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
from recommender.playlist import Playlist, make_playlist
from recommender.ranking import RankedTrack, TrackInfo, rank, shift_query
from recommender.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ClassifyResult,
    Filters,
    Focus,
    PlaylistRequest,
    RecommendRequest,
    RecommendResponse,
    SimilarQuery,
    emotions,
    parse,
)
from recommender.sentences import Arc, read_arcs
from recommender.settings import Settings
from recommender.similar import SimilarTracks, similar_tracks, track_info
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
    """The emotions read from a text and the tracks chosen for it, best first.

    ``focus`` says how the text was read; ``arc`` is its sentence detail, when asked for.
    """

    emotions: dict[str, float]
    tracks: list[RankedTrack]
    target: str | None = None
    focus: Focus = "whole"
    arc: Arc | None = None

    def to_body(self) -> RecommendResponse:
        return RecommendResponse(
            emotions=emotions(self.emotions),
            tracks=[track.to_body() for track in self.tracks],
            target=self.target,  # type: ignore[arg-type]
            focus=None if self.focus == "whole" else self.focus,
            sentences=self.arc.sentence_bodies() if self.arc else None,
            dominant=self.arc.dominant if self.arc else None,
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
        track_index = cls.index_for(classifier, default_index(settings))
        log.info("loaded %s and an index of %d tracks", classifier.name, len(track_index))
        return cls(classifier, track_index)

    @staticmethod
    def index_for(classifier: EmotionModel, path: str | os.PathLike[str]) -> TrackIndex:
        """The index at ``path``, checked to have been built with ``classifier``'s checkpoint;
        on the GPU when the classifier's placement put FAISS there."""
        placement = getattr(classifier, "placement", None)
        return TrackIndex.load(
            path,
            checkpoint=classifier.source_fingerprint,
            device="cuda" if placement is not None and placement.faiss_gpu else "cpu",
        )

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
        detail: str | None = None,
        focus: str = "whole",
    ) -> Recommendation:
        """Tracks whose lyrics match the text's emotion (or one shifted towards ``target``).

        ``focus`` "end" reads the last sentences most; ``detail`` "sentences" adds the arc.
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
            "detail": detail,
            "focus": focus,
        }
        return self.answer(parse(RecommendRequest, request))

    def answer(self, request: RecommendRequest) -> Recommendation:
        """The recommendation for a validated request."""
        arc = None
        if request.detail == "sentences" or request.focus != "whole":
            arc = read_arcs(self.classifier, [request.text], request.focus)[0]
            vector = arc.reading
        else:
            vector = self.classifier.predict_proba([request.text])[0]
        query: np.ndarray = vector
        if request.target is not None:
            query = shift_query(vector, request.target, request.shift_strength)
        options = request.ranking_options()
        tracks = rank(query, self.index, options, target=request.target, mood=vector)
        return Recommendation(
            emotions=as_mapping(vector),
            tracks=tracks,
            target=request.target,
            focus=request.focus,
            arc=arc if request.detail == "sentences" else None,
        )

    def playlist(
        self,
        text: str,
        n: int = 12,
        *,
        target: str | None = None,
        filters: Mapping[str, Any] | None = None,
        per_artist: int | None = 2,
    ) -> Playlist:
        """``n`` tracks that start at the text's mood and move step by step to ``target``.

        The arguments are checked as a ``POST /playlist`` body would be (InvalidInputError).
        """
        request = {
            "text": text,
            "n": n,
            "target": target,
            "filters": dict(filters) if isinstance(filters, Mapping) else filters,
            "per_artist": per_artist,
        }
        return self.answer_playlist(parse(PlaylistRequest, request))

    def answer_playlist(self, request: PlaylistRequest) -> Playlist:
        """The playlist for a validated request."""
        mood = self.classifier.predict_proba([request.text])[0]
        return make_playlist(
            mood,
            self.index,
            n=request.n,
            target=request.target,
            filters=request.filters or Filters(),
            per_artist=request.per_artist,
        )

    def track(self, track_id: str) -> TrackInfo:
        """One catalogue track's metadata and emotions (TrackNotFoundError if unknown)."""
        return track_info(self.index, track_id)

    def similar(
        self,
        track_id: str,
        k: int = 10,
        *,
        per_artist: int | None = 2,
        genre: str | list[str] | None = None,
        year_min: float | None = None,
        year_max: float | None = None,
    ) -> SimilarTracks:
        """The tracks nearest ``track_id`` by emotion, the track itself left out."""
        query: dict[str, Any] = {"k": k, "per_artist": per_artist, "genre": genre}
        query.update({"year_min": year_min, "year_max": year_max})
        return self.answer_similar(track_id, parse(SimilarQuery, query))

    def answer_similar(self, track_id: str, query: SimilarQuery) -> SimilarTracks:
        """The similar tracks for a validated query."""
        return similar_tracks(self.index, track_id, query.ranking_options())

    def genres(self) -> list[str]:
        """The catalogue's genres, each once (first spelling kept), sorted."""
        if "genre" not in self.index.tracks.column_names:
            return []
        seen: dict[str, str] = {}
        for value in self.index.tracks.column("genre").to_pylist():
            if value is not None and str(value).strip():
                seen.setdefault(str(value).strip().casefold(), str(value).strip())
        return sorted(seen.values())


def read_texts(classifier: EmotionModel, request: ClassifyRequest) -> ClassifyResponse:
    """The ``POST /classify`` answer: each text's emotions, and its sentences if asked."""
    if request.detail != "sentences":
        readings = classifier.predict_proba(request.texts)
        return ClassifyResponse(
            results=[ClassifyResult(emotions=emotions(as_mapping(r))) for r in readings]
        )
    return ClassifyResponse(
        results=[
            ClassifyResult(
                emotions=emotions(as_mapping(arc.reading)),
                sentences=arc.sentence_bodies(),
                dominant=arc.dominant,
            )
            for arc in read_arcs(classifier, request.texts)
        ]
    )
