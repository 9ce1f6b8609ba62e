from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.emotions import EMOTIONS
from recommender.errors import IndexLoadError, InvalidInputError
from recommender.service import Recommendation, Recommender
from tests.catalogue import load_index, make_index

HAPPY_TEXT = "오늘은 정말 행복한 하루였다"


@pytest.fixture()
def service(tmp_path: Path, fake_classifier) -> Recommender:
    index = load_index(make_index(tmp_path, fake_classifier), fake_classifier)
    return Recommender(fake_classifier, index)


def dominant(emotions: dict[str, float]) -> str:
    return max(emotions, key=emotions.__getitem__)


def test_recommend_returns_k_tracks_best_first(service: Recommender):
    result = service.recommend(HAPPY_TEXT, 5)
    assert isinstance(result, Recommendation) and result.target is None
    assert list(result.emotions) == list(EMOTIONS)
    assert sum(result.emotions.values()) == pytest.approx(1.0, abs=1e-3)
    assert dominant(result.emotions) == "happy"
    assert len(result.tracks) == 5
    scores = [t.score for t in result.tracks]
    assert scores == sorted(scores, reverse=True)
    assert {t.track_id for t in result.tracks[:3]} == {"happy-0", "happy-1", "happy-2"}
    for track in result.tracks:
        assert sum(track.emotions.values()) == pytest.approx(1.0, abs=1e-3)


def test_recommend_matches_the_text_emotion(service: Recommender):
    for text, emotion in [
        ("내일 시험이 걱정된다", "anxious"),
        ("친구 때문에 화가 났다", "angry"),
        ("눈물이 나고 슬프다", "sad"),
    ]:
        result = service.recommend(text, 3)
        assert {t.track_id.split("-")[0] for t in result.tracks} == {emotion}


def mean_probability(result: Recommendation, emotion: str) -> float:
    return float(np.mean([t.emotions[emotion] for t in result.tracks]))


def test_target_shifts_results_towards_the_target(service: Recommender):
    plain = service.recommend(HAPPY_TEXT, 3)
    halfway = service.recommend(HAPPY_TEXT, 3, target="sad", shift_strength=0.5)
    fully = service.recommend(HAPPY_TEXT, 3, target="sad", shift_strength=1.0)
    assert mean_probability(plain, "sad") < mean_probability(halfway, "sad")
    assert {t.track_id.split("-")[0] for t in fully.tracks} == {"sad"}
    # The text's own emotions are reported, not the shifted query.
    assert fully.emotions == plain.emotions
    assert fully.target == "sad" and fully.to_dict()["target"] == "sad"
    assert fully.tracks[0].explanation.startswith("슬픔 쪽으로 옮긴 기분")


def test_korean_target_names_are_accepted(service: Recommender):
    result = service.recommend(HAPPY_TEXT, 3, target="슬픔", shift_strength=1.0)
    assert result.target == "sad"
    assert {t.track_id.split("-")[0] for t in result.tracks} == {"sad"}


def test_zero_shift_keeps_the_ranking(service: Recommender):
    plain = service.recommend(HAPPY_TEXT, 5)
    unshifted = service.recommend(HAPPY_TEXT, 5, target="angry", shift_strength=0.0)
    assert [t.track_id for t in unshifted.tracks] == [t.track_id for t in plain.tracks]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "'text' must be a string; got null"),
        (42, "'text' must be a string; got 42"),
        (["행복"], r"'text' must be a string; got \[\"행복\"\]"),
        (b"bytes", "'text' must be a string; got b'bytes'"),
        ("", "'text' is empty; write a few words about your day"),
        ("  \n\t ", "'text' is empty; write a few words about your day"),
        ("가" * 5001, "'text' is 5001 characters; the limit is 5000"),
    ],
)
def test_bad_text(service: Recommender, text, message):
    with pytest.raises(InvalidInputError, match=message):
        service.recommend(text)


@pytest.mark.parametrize("target", ["calm", "", "HAPPYY", 3])
def test_bad_target_lists_the_valid_names(service: Recommender, target):
    message = (
        r"'target' must be an emotion \(angry, anxious, embarrassed, happy, heartache, sad\) "
        "or its Korean name or null; got "
    )
    with pytest.raises(InvalidInputError, match=message):
        service.recommend(HAPPY_TEXT, target=target)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "'k' must be an integer from 1 to 100; got 0"),
        ({"k": 101}, "'k' must be an integer from 1 to 100; got 101"),
        ({"per_artist": 0}, "'per_artist' must be an integer from 1 to 100 or null; got 0"),
        ({"diversity": 2}, "'diversity' must be a number from 0 to 1; got 2"),
        ({"target": "sad", "shift_strength": 1.5}, "'shift_strength' must be a number from 0"),
        ({"filters": {"mood": "x"}}, "unknown filter 'mood'; valid filters: artist, "),
        ({"filters": ["genre"]}, "'filters' must be a JSON object or null"),
        ({"filters": "genre"}, "'filters' must be a JSON object or null"),
    ],
)
def test_bad_options(service: Recommender, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        service.recommend(HAPPY_TEXT, **kwargs)


def test_filters_pass_through(service: Recommender):
    result = service.recommend(HAPPY_TEXT, 10, filters={"genre": "록", "year_max": 2000})
    assert result.tracks
    assert all(t.metadata["genre"] == "록" and t.metadata["year"] <= 2000 for t in result.tracks)


def test_classify_maps_each_text(service: Recommender):
    results = service.classify([HAPPY_TEXT, "배신당해서 상처받았다"])
    assert len(results) == 2
    for mapping in results:
        assert list(mapping) == list(EMOTIONS)
        assert all(isinstance(p, float) for p in mapping.values())
        assert sum(mapping.values()) == pytest.approx(1.0, abs=1e-3)
    assert [dominant(m) for m in results] == ["happy", "heartache"]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("행복", "got a single string"),
        (["좋아", ""], "text 1 is empty or whitespace only"),
        (["좋아", 3], "text 1 is int, not a string"),
    ],
)
def test_classify_bad_input(service: Recommender, texts, message):
    with pytest.raises(InvalidInputError, match=message):
        service.classify(texts)


def test_to_dict_has_the_documented_shape(service: Recommender):
    body = service.recommend(HAPPY_TEXT, 4).to_dict()
    assert list(body) == ["emotions", "tracks"]
    assert list(body["emotions"]) == list(EMOTIONS)
    assert len(body["tracks"]) == 4
    for track in body["tracks"]:
        assert list(track)[:6] == [
            "track_id",
            "title",
            "artist",
            "score",
            "emotions",
            "explanation",
        ]
        assert isinstance(track["track_id"], str) and isinstance(track["title"], str)
        assert isinstance(track["artist"], str) and isinstance(track["explanation"], str)
        assert isinstance(track["score"], float) and 0.0 <= track["score"] <= 1.0
        assert list(track["emotions"]) == list(EMOTIONS)
        # catalogue metadata rides along; internal columns do not
        assert {"genre", "year", "language"} <= set(track)
        assert "lyrics" not in track and "lyrics_sha256" not in track


def test_load_with_a_real_model_and_its_index(tmp_path: Path, tiny_model_dir, tiny_classifier):
    index_dir = make_index(tmp_path, tiny_classifier)
    service = Recommender.load(str(tiny_model_dir), index_dir, device="cpu")
    assert service.classifier.fingerprint == tiny_classifier.fingerprint
    assert len(service.index) == 18
    result = service.recommend(HAPPY_TEXT, 5)
    assert len(result.tracks) == 5
    assert sum(result.emotions.values()) == pytest.approx(1.0, abs=1e-3)
    expected = tiny_classifier.predict_proba([HAPPY_TEXT])[0]
    np.testing.assert_allclose(list(result.emotions.values()), expected, atol=1e-4)


def test_load_refuses_an_index_built_with_another_model(
    tmp_path: Path, tiny_model_dir, fake_classifier
):
    index_dir = make_index(tmp_path, fake_classifier)
    with pytest.raises(IndexLoadError, match="was built with model 'fake'.*rebuild it"):
        Recommender.load(str(tiny_model_dir), index_dir, device="cpu")


def test_load_refuses_a_missing_index(tmp_path: Path, tiny_model_dir):
    with pytest.raises(IndexLoadError, match="no index directory at"):
        Recommender.load(str(tiny_model_dir), tmp_path / "nowhere", device="cpu")


def test_load_uses_the_environment_defaults(
    tmp_path: Path, tiny_model_dir, tiny_classifier, monkeypatch
):
    index_dir = make_index(tmp_path, tiny_classifier)
    monkeypatch.setenv("RECOMMENDER_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("RECOMMENDER_INDEX", str(index_dir))
    service = Recommender.load(device="cpu")
    assert len(service.index) == 18
