"""Keeping held-out text held out: training rows too close to any held-out text are dropped.

"Too close" is the character 2–4-gram TF-IDF cosine the team's data READMEs use (0.45): writers
who never saw a test file still come that near to some of its rows. A held-out text with blank
lines (a song, a stanza set) is also compared stanza by stanza, so a training stanza copied
from one verse of a long song is caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.errors import DatasetError

NEAR_COSINE = 0.45


@dataclass(frozen=True)
class HeldOutFilter:
    """Which rows of a training file survive, and each row's closest held-out cosine."""

    keep: np.ndarray  # bool, one per training row
    closest: np.ndarray  # float, one per training row
    threshold: float

    @property
    def removed(self) -> int:
        return int((~self.keep).sum())


def stanzas(text: str) -> list[str]:
    """The text itself and, when it has blank lines, each blank-line-separated part."""
    parts = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return [text.strip()] + (parts if len(parts) > 1 else [])


def closest_cosine(texts: Sequence[str], held_out: Sequence[str]) -> np.ndarray:
    """For each of ``texts``, its largest char 2–4-gram TF-IDF cosine to any ``held_out`` text
    (the vocabulary and idf fitted on both together)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not texts:
        return np.zeros(0)
    if not held_out:
        return np.zeros(len(texts))
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    vectorizer.fit(list(texts) + list(held_out))
    # Rows are L2-normalised, so the sparse product is the cosine.
    similarity = vectorizer.transform(list(texts)) @ vectorizer.transform(list(held_out)).T
    return np.asarray(similarity.max(axis=1).todense()).ravel()


def filter_near(
    texts: Sequence[str], held_out: Iterable[str], threshold: float = NEAR_COSINE
) -> HeldOutFilter:
    """Training ``texts`` with cosine above ``threshold`` to any held-out text (or stanza of
    one) marked for removal."""
    pieces = [piece for text in held_out for piece in stanzas(text)]
    closest = closest_cosine(texts, pieces)
    return HeldOutFilter(keep=closest <= threshold, closest=closest, threshold=threshold)


def read_texts(path: Path) -> list[str]:
    """The texts of a data file: ``.jsonl`` (each object's ``text``, or ``lyrics`` for a
    catalogue), a TSV/CSV with a ``text`` column, or plain text (one per line)."""
    import pandas as pd

    if not path.is_file():
        raise DatasetError(f"data file not found: {path}")
    if path.suffix.lower() == ".jsonl":
        texts = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number} is not JSON: {exc.msg}") from None
            text = (row.get("text") or row.get("lyrics")) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise DatasetError(f"{path}:{number} has no 'text' (or 'lyrics') string")
            texts.append(text)
        return texts
    if path.suffix.lower() in (".tsv", ".csv"):
        try:
            frame = pd.read_csv(
                path,
                sep="\t" if path.suffix.lower() == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                quoting=3,
            )
        except (UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
        if "text" not in frame.columns:
            raise DatasetError(f"{path} has no 'text' column; found: {list(frame.columns)}")
        return [str(t) for t in frame["text"]]
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def filter_file(
    source: Path, output: Path, held_out_files: Sequence[Path], threshold: float = NEAR_COSINE
) -> HeldOutFilter:
    """Copy ``source`` to ``output`` without the rows near any held-out file's texts.

    Rows are kept byte for byte (a TSV/CSV keeps its header line; a JSONL file its objects).
    """
    held_out = [text for path in held_out_files for text in read_texts(path)]
    texts = read_texts(source)
    result = filter_near(texts, held_out, threshold)
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    tabular = source.suffix.lower() in (".tsv", ".csv")
    header, rows = (lines[:1], lines[1:]) if tabular else ([], [x for x in lines if x.strip()])
    if len(rows) != len(texts):
        raise DatasetError(f"{source}: {len(texts)} texts on {len(rows)} lines; write one a line")
    kept = header + [line for line, keep in zip(rows, result.keep, strict=True) if keep]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(kept), encoding="utf-8")
    return result
