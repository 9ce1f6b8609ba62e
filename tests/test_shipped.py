"""What ships in the repository: the bundled model, the sample catalogue and its index agree."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recommender.classifier import BUNDLED_MODEL, EmotionClassifier
from recommender.emotions import EMOTIONS
from recommender.indexing import read_catalogue
from recommender.service import SAMPLE_CATALOGUE, SAMPLE_INDEX, Recommender
from recommender.track_index import MANIFEST


@pytest.fixture(scope="module")
def bundled() -> EmotionClassifier:
    return EmotionClassifier.from_pretrained(BUNDLED_MODEL, device="cpu")


def test_bundled_model_is_small_and_labelled_canonically(bundled):
    size = sum(f.stat().st_size for f in BUNDLED_MODEL.iterdir())
    assert size <= 50 * 1024 * 1024
    assert [bundled.model.config.id2label[i] for i in range(6)] == list(EMOTIONS)
    assert (BUNDLED_MODEL / "README.md").is_file()


def test_sample_catalogue_covers_every_emotion_with_enough_tracks():
    frame = read_catalogue(SAMPLE_CATALOGUE)
    assert len(frame) >= 300
    assert set(frame["emotion"]) == set(EMOTIONS)
    assert {"title", "artist", "album", "genre", "year", "language", "attribution"} <= set(
        frame.columns
    )
    assert frame["attribution"].map(bool).all()


def test_sample_index_was_built_with_the_bundled_model(bundled):
    manifest = json.loads((SAMPLE_INDEX / MANIFEST).read_text())
    assert manifest["model"]["fingerprint"] == bundled.fingerprint, (
        "the bundled model changed: rebuild the sample index with "
        "`recommender index catalog/sample.jsonl -o catalog/sample_index`"
    )
    assert manifest["count"] == len(pd.read_json(SAMPLE_CATALOGUE, lines=True))


def test_default_service_answers_the_readme_example(monkeypatch):
    monkeypatch.delenv("RECOMMENDER_MODEL", raising=False)
    monkeypatch.delenv("RECOMMENDER_INDEX", raising=False)
    result = Recommender.load(device="cpu").recommend("오늘은 정말 행복한 하루였다.", 5)
    assert len(result.tracks) == 5
    assert abs(sum(result.emotions.values()) - 1) < 1e-3
    scores = [t.score for t in result.tracks]
    assert scores == sorted(scores, reverse=True)
