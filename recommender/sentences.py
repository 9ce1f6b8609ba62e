"""The arc of a text: its sentences, each read on its own, and which of them dominate.

Sentences are split by Kiwi (``kiwipiepy``), a Korean morphological analyser that finds
sentence ends from the endings of predicates as well as from punctuation, so diary text typed
without full stops still splits. Offsets count Unicode code points (Python ``str`` indices,
end exclusive), not UTF-16 units: ``text[start:end]`` is the sentence.

Kiwi costs about half a gigabyte and a few seconds to load; it is loaded once per process, on
first use or by ``warm()`` (the API calls it while loading the model when sentence detail is
enabled).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.emotions import as_mapping
from recommender.schemas import Focus, SentenceReading, emotions

if TYPE_CHECKING:
    from recommender.classifier import EmotionModel

END_DECAY = 0.5  # with focus "end", each sentence counts this much of the one after it
DOMINANT_SHARE = 0.5  # the dominant sentences hold at least this much of the reading

_kiwi: Any = None
_kiwi_lock = threading.Lock()


def splitter() -> Any:
    """The process's one Kiwi, loaded (and its model read) on first call."""
    global _kiwi
    with _kiwi_lock:
        if _kiwi is None:
            from kiwipiepy import Kiwi

            kiwi = Kiwi()
            kiwi.split_into_sents("준비.")  # Kiwi loads its model lazily, on the first analysis
            _kiwi = kiwi
    return _kiwi


def warm() -> None:
    """Load Kiwi now, so that the first request with sentence detail does not wait for it."""
    splitter()


def split(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` code-point offsets of each sentence; the whole text if Kiwi finds none."""
    spans = [(s.start, s.end) for s in splitter().split_into_sents(text) if s.text.strip()]
    if not spans:
        stripped = text.strip()
        start = text.index(stripped[0]) if stripped else 0
        return [(start, start + len(stripped))]
    return spans


@dataclass(frozen=True)
class Sentence:
    """One sentence: where it is, how it reads, how much it counts and how much it agrees."""

    text: str
    start: int
    end: int
    emotions: dict[str, float]
    weight: float
    share: float

    def to_body(self) -> SentenceReading:
        return SentenceReading(
            text=self.text,
            start=self.start,
            end=self.end,
            emotions=emotions(self.emotions),
            weight=round(self.weight, 4),
            share=round(self.share, 4),
        )


@dataclass(frozen=True)
class Arc:
    """A text read sentence by sentence.

    ``reading`` is what the text reads as under ``focus``: for "whole" the whole text read at
    once (exactly the reading without sentence detail), for "end" the sentences' readings
    weighted towards the last. ``dominant`` lists, in text order, the fewest sentences whose
    shares hold at least half the reading.
    """

    reading: np.ndarray
    focus: Focus
    sentences: list[Sentence]
    dominant: list[int]

    def sentence_bodies(self) -> list[SentenceReading]:
        return [sentence.to_body() for sentence in self.sentences]


def read_arcs(model: EmotionModel, texts: Sequence[str], focus: Focus = "whole") -> list[Arc]:
    """Each text split into sentences and read, all in one call to the model."""
    spans = [split(text) for text in texts]
    pieces = [text[a:b] for text, parts in zip(texts, spans, strict=True) for a, b in parts]
    whole = list(texts) if focus == "whole" else []
    vectors = model.predict_proba([*whole, *pieces])
    readings, vectors = vectors[: len(whole)], vectors[len(whole) :]
    arcs = []
    offset = 0
    for i, (text, parts) in enumerate(zip(texts, spans, strict=True)):
        sentences = vectors[offset : offset + len(parts)].astype(np.float64)
        offset += len(parts)
        weights = _weights(parts, focus)
        if focus == "whole":
            reading = readings[i].astype(np.float64)
        else:
            reading = weights @ sentences
            reading /= reading.sum()
        # A sentence's share: its weight times how well it agrees with the reading (BC).
        agreement = np.sqrt(sentences * reading).sum(axis=1)
        shares = weights * agreement
        shares /= shares.sum()
        arcs.append(
            Arc(
                reading=reading.astype(np.float32),
                focus=focus,
                sentences=[
                    Sentence(text[a:b], a, b, as_mapping(v), float(w), float(s))
                    for (a, b), v, w, s in zip(parts, sentences, weights, shares, strict=True)
                ],
                dominant=_dominant(shares),
            )
        )
    return arcs


def _weights(parts: list[tuple[int, int]], focus: Focus) -> np.ndarray:
    """How much each sentence counts: its part of the characters ("whole"), or halving for
    each sentence back from the last ("end": where the writer is now)."""
    if focus == "whole":
        weights = np.array([b - a for a, b in parts], dtype=np.float64)
    else:
        weights = END_DECAY ** np.arange(len(parts) - 1, -1, -1, dtype=np.float64)
    return weights / weights.sum()


def _dominant(shares: np.ndarray) -> list[int]:
    order = np.argsort(-shares, kind="stable")
    held = np.cumsum(shares[order])
    count = int(np.searchsorted(held, DOMINANT_SHARE - 1e-9)) + 1
    return sorted(int(i) for i in order[:count])
