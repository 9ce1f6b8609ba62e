"""A small catalogue whose lyrics carry the fake model's cue words, and helpers to index it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recommender.emotions import EMOTIONS
from recommender.indexing import build_index
from recommender.track_index import TrackIndex

# Three lyrics per emotion; the fake classifier reads each as its emotion.
CUE_LYRICS: dict[str, tuple[str, ...]] = {
    "angry": ("화가 나서 짜증이 난다", "분노가 치민다 화가 난다", "짜증 나는 하루"),
    "anxious": ("내일 시험이 걱정된다", "불안한 밤 걱정뿐", "불안 불안 또 불안"),
    "embarrassed": ("당황해서 얼굴이 빨개졌다", "민망하고 당황스러운 순간", "놀라서 당황했다"),
    "happy": ("오늘은 행복한 날", "기쁘고 좋은 하루 행복", "좋아 좋아 행복해"),
    "heartache": ("배신의 상처", "실망과 상처만 남았다", "믿었는데 배신당한 상처"),
    "sad": ("슬프고 눈물이 난다", "외로운 밤 눈물", "슬프다 슬프다"),
}
ARTISTS = ("아리", "보라", "차니", "다온", "에린", "파도")
GENRES = ("발라드", "록", "인디")


def catalogue_rows() -> list[dict[str, Any]]:
    """18 tracks, three per emotion, spread over six artists, three genres and many years."""
    rows = []
    for e, emotion in enumerate(EMOTIONS):
        for j, lyrics in enumerate(CUE_LYRICS[emotion]):
            n = 3 * e + j
            rows.append(
                {
                    "track_id": f"{emotion}-{j}",
                    "title": f"{emotion} song {j}",
                    "artist": ARTISTS[n % len(ARTISTS)],
                    "lyrics": lyrics,
                    "genre": GENRES[j],
                    "year": 1950 + 4 * n,
                    "language": "ko",
                }
            )
    return rows


def write_catalogue(path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    frame = pd.DataFrame(catalogue_rows() if rows is None else rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def make_index(directory: Path, classifier: Any, rows: list[dict[str, Any]] | None = None) -> Path:
    """Index the catalogue with ``classifier`` into ``directory / "index"``."""
    catalogue = write_catalogue(directory / "catalogue.jsonl", rows)
    output = directory / "index"
    build_index(catalogue, output, classifier)
    return output


def load_index(directory: Path, classifier: Any) -> TrackIndex:
    return TrackIndex.load(directory, checkpoint=classifier.source_fingerprint, device="cpu")
