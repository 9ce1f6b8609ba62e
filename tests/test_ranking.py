from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from recommender.emotions import EMOTIONS
from recommender.errors import InvalidInputError
from recommender.ranking import RankingOptions, rank, shift_query
from recommender.track_index import ModelIdentity, TrackIndex

MODEL = ModelIdentity("fake", "fake-0001")
HAPPY = np.array([0.02, 0.02, 0.02, 0.9, 0.02, 0.02], dtype=np.float32)
SAD = np.array([0.02, 0.02, 0.02, 0.02, 0.02, 0.9], dtype=np.float32)


def dirichlet(n: int, seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet([alpha] * len(EMOTIONS), n).astype(np.float32)


def make_index(vectors: np.ndarray, **columns: list[Any]) -> TrackIndex:
    """An index over ``vectors``; missing metadata columns get one distinct value per row."""
    n = len(vectors)
    data = {
        "track_id": columns.pop("track_id", [f"t{i}" for i in range(n)]),
        "title": columns.pop("title", [f"title {i}" for i in range(n)]),
        "artist": columns.pop("artist", [f"artist {i}" for i in range(n)]),
        **columns,
        "lyrics_sha256": [f"{i:064x}" for i in range(n)],
    }
    return TrackIndex(np.asarray(vectors), pa.table(data), model=MODEL, device="cpu")


def ids(tracks) -> list[str]:
    return [t.track_id for t in tracks]


def bhattacharyya(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(p.astype(np.float64) * q.astype(np.float64)).sum())


@pytest.fixture()
def catalogue() -> TrackIndex:
    """40 random tracks with genre, year (some missing) and language metadata."""
    vectors = dirichlet(40)
    return make_index(
        vectors,
        genre=[["Rock", "발라드", "indie", "Jazz"][i % 4] for i in range(40)],
        year=[None if i % 10 == 9 else 1960 + 2 * i for i in range(40)],
        language=["ko" if i % 3 else "en" for i in range(40)],
    )


# --- scores and order -----------------------------------------------------------------------


def test_scores_are_the_bhattacharyya_coefficient_best_first(catalogue: TrackIndex):
    query = dirichlet(1, seed=7)[0]
    tracks = rank(query, catalogue, RankingOptions(k=10, per_artist=None))
    expected = np.array([bhattacharyya(query, v) for v in catalogue.vectors])
    best = np.argsort(-expected)[:10]
    assert ids(tracks) == [f"t{i}" for i in best]
    for track, row in zip(tracks, best, strict=True):
        assert track.score == pytest.approx(expected[row], abs=1e-5)
    scores = [t.score for t in tracks]
    assert scores == sorted(scores, reverse=True)


def test_track_fields_carry_the_row_metadata(catalogue: TrackIndex):
    (track,) = rank(catalogue.vectors[5], catalogue, RankingOptions(k=1))
    assert (track.track_id, track.title, track.artist) == ("t5", "title 5", "artist 5")
    assert track.score == pytest.approx(1.0, abs=1e-5)
    assert list(track.emotions) == list(EMOTIONS)
    assert track.emotions == pytest.approx(
        dict(zip(EMOTIONS, catalogue.vectors[5].tolist(), strict=True)), abs=1e-4
    )
    assert track.metadata == {"genre": "발라드", "year": 1970, "language": "ko"}
    body = track.to_dict()
    assert list(body)[:6] == ["track_id", "title", "artist", "score", "emotions", "explanation"]
    assert "lyrics_sha256" not in body and body["genre"] == "발라드"


def test_metadata_never_overrides_the_contract_fields():
    index = make_index(
        np.stack([HAPPY, SAD]),
        score=["five stars", "one star"],
        emotions=["joyful", "gloomy"],
        explanation=["from the catalogue", "from the catalogue"],
        album=[None, "B-sides"],
    )
    tracks = rank(HAPPY, index, RankingOptions(k=2))
    for track in tracks:
        body = track.to_dict()
        assert isinstance(body["score"], float) and body["score"] == round(track.score, 4)
        assert isinstance(body["emotions"], dict)
        assert body["explanation"].startswith("지금 기분에 어울려요")
    assert "album" not in tracks[0].to_dict()  # missing values are left out
    assert tracks[1].to_dict()["album"] == "B-sides"


def test_dates_in_metadata_become_iso_strings():
    import datetime

    index = make_index(
        np.stack([HAPPY]),
        released=[datetime.datetime(2020, 1, 2, 3, 4)],
        day=[datetime.date(1999, 12, 31)],
    )
    body = rank(HAPPY, index, RankingOptions(k=1))[0].to_dict()
    assert body["released"] == "2020-01-02T03:04:00" and body["day"] == "1999-12-31"
    json.dumps(body)


# --- filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        ({"genre": "Rock"}, lambda i: i % 4 == 0),
        ({"genre": "rock"}, lambda i: i % 4 == 0),  # case-insensitive
        ({"genre": "ROCK", "language": "EN"}, lambda i: i % 4 == 0 and i % 3 == 0),
        ({"genre": ["발라드", "JAZZ"]}, lambda i: i % 4 in (1, 3)),
        ({"year": 1970}, lambda i: i == 5),
        ({"year": [1960, "1962"]}, lambda i: i in (0, 1)),
        ({"year_min": 2000}, lambda i: i % 10 != 9 and 1960 + 2 * i >= 2000),
        ({"year_max": 1979.5}, lambda i: i % 10 != 9 and 1960 + 2 * i <= 1979),
        ({"year_min": 1970, "year_max": 1990}, lambda i: i % 10 != 9 and 5 <= i <= 15),
        ({"exclude_track_ids": ["t0", "t1", "nope"]}, lambda i: i > 1),
        ({"track_id": ["T3", "t4"]}, lambda i: i in (3, 4)),
    ],
)
def test_filters_keep_only_matching_tracks(catalogue: TrackIndex, filters, allowed):
    query = dirichlet(1, seed=3)[0]
    options = RankingOptions(k=40, per_artist=None, filters=filters)
    tracks = rank(query, catalogue, options)
    expected = [
        f"t{i}"
        for i in np.argsort(-np.sqrt(catalogue.vectors * query).sum(axis=1))
        if allowed(int(i))
    ]
    assert ids(tracks) == expected
    assert tracks  # every case above matches something


def test_numeric_equality_filter_matches_a_float_column():
    # A year column with a gap is stored as float (1990.0); filtering on 1990 must still match.
    index = make_index(dirichlet(3), year=[1990.0, None, 2001.0])
    tracks = rank(HAPPY, index, RankingOptions(k=3, filters={"year": 1990}))
    assert ids(tracks) == ["t0"]
    tracks = rank(HAPPY, index, RankingOptions(k=3, filters={"year": ["2001", 1990]}))
    assert sorted(ids(tracks)) == ["t0", "t2"]


def test_year_range_over_a_text_column_skips_values_that_are_not_numbers():
    # CSV catalogues are read as text: years are strings and some are not numbers at all.
    index = make_index(dirichlet(5), year=["1990", "unknown", None, "2001.0", "199x"])
    tracks = rank(HAPPY, index, RankingOptions(k=5, filters={"year_min": 1995}))
    assert ids(tracks) == ["t3"]
    tracks = rank(HAPPY, index, RankingOptions(k=5, filters={"year_max": 2001}))
    assert sorted(ids(tracks)) == ["t0", "t3"]


def test_unknown_filter_lists_the_valid_ones(catalogue: TrackIndex):
    message = (
        "unknown filter 'mood'; valid filters: artist, exclude_track_ids, genre, language, "
        "title, track_id, year, year_max, year_min$"
    )
    with pytest.raises(InvalidInputError, match=message):
        rank(HAPPY, catalogue, RankingOptions(filters={"mood": "happy"}))
    with pytest.raises(InvalidInputError, match="unknown filter 'lyrics_sha256'"):
        rank(HAPPY, catalogue, RankingOptions(filters={"lyrics_sha256": "0"}))


def test_range_filter_needs_its_column():
    index = make_index(dirichlet(3))
    with pytest.raises(InvalidInputError, match="filter 'year_min' needs a 'year' column"):
        rank(HAPPY, index, RankingOptions(filters={"year_min": 1990}))


def test_filter_matching_nothing_returns_nothing(catalogue: TrackIndex):
    assert rank(HAPPY, catalogue, RankingOptions(filters={"genre": "trot"})) == []


# --- caps, duplicates, diversity ------------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_per_artist_cap(cap: int):
    artists = ["Same Artist", " same artist ", "SAME ARTIST", "same artist", "Other", "Third"]
    index = make_index(dirichlet(6, seed=1), artist=artists)
    tracks = rank(HAPPY, index, RankingOptions(k=6, per_artist=cap))
    same = [t for t in tracks if t.artist.strip().casefold() == "same artist"]
    assert len(same) == min(cap, 4)
    assert len(tracks) == min(cap, 4) + 2


def test_no_artist_cap_with_none():
    index = make_index(dirichlet(6, seed=1), artist=["a"] * 6)
    assert len(rank(HAPPY, index, RankingOptions(k=6, per_artist=None))) == 6
    assert len(rank(HAPPY, index, RankingOptions(k=6))) == 2  # the default cap


def test_same_title_and_artist_is_recommended_once():
    vectors = np.stack([HAPPY, HAPPY * 0.5 + SAD * 0.5, HAPPY, SAD])
    index = make_index(
        vectors,
        title=["Arirang", "Arirang", " ARIRANG ", "Arirang"],
        artist=["Folk", "Folk", "folk", "Other"],
    )
    tracks = rank(HAPPY, index, RankingOptions(k=4, per_artist=None))
    # t0 and t2 are the same song (equal vectors, so either may come first); t1 is a duplicate
    # too; t3 has the same title by another artist and stays.
    assert len(tracks) == 2
    assert ids(tracks)[0] in {"t0", "t2"} and ids(tracks)[1] == "t3"


def mean_pairwise_similarity(index: TrackIndex, tracks) -> float:
    rows = index.rows_of(ids(tracks))
    pairs = list(itertools.combinations(rows, 2))
    return float(np.mean([bhattacharyya(index.vectors[a], index.vectors[b]) for a, b in pairs]))


@pytest.mark.parametrize(("diversity", "margin"), [(0.3, 0.01), (0.5, 0.05), (1.0, 0.1)])
def test_diversity_picks_less_similar_tracks(diversity: float, margin: float):
    index = make_index(dirichlet(200, seed=10))
    query = dirichlet(1, seed=100)[0]
    plain = rank(query, index, RankingOptions(k=8, per_artist=None))
    varied = rank(query, index, RankingOptions(k=8, per_artist=None, diversity=diversity))
    assert len(plain) == len(varied) == 8
    assert ids(varied)[0] == ids(plain)[0]  # the best match always leads
    similarity = mean_pairwise_similarity(index, varied)
    assert similarity < mean_pairwise_similarity(index, plain) - margin
    # Scores stay the true similarity to the query, whatever the order.
    for track in varied:
        row = index.rows_of([track.track_id])[0]
        assert track.score == pytest.approx(bhattacharyya(query, index.vectors[row]), abs=1e-5)


# --- over-fetching and short pools ----------------------------------------------------------


def test_selective_filter_still_returns_k():
    # 300 happy tracks; only 12 sad ones are in the wanted genre, so they are never among the
    # first candidates fetched for a happy query.
    vectors = np.concatenate([np.tile(HAPPY, (300, 1)), np.tile(SAD, (12, 1))])
    genre = ["pop"] * 300 + ["trot"] * 12
    index = make_index(vectors, genre=genre)
    tracks = rank(HAPPY, index, RankingOptions(k=10, per_artist=None, filters={"genre": "trot"}))
    assert len(tracks) == 10
    assert all(t.metadata["genre"] == "trot" for t in tracks)


def test_caps_and_duplicates_still_return_k():
    # The 200 best candidates are one artist's songs; k distinct artists lie further away.
    vectors = np.concatenate([np.tile(HAPPY, (200, 1)), np.tile(SAD, (20, 1))])
    artists = ["one"] * 200 + [f"a{i}" for i in range(20)]
    index = make_index(vectors, artist=artists)
    tracks = rank(HAPPY, index, RankingOptions(k=10, per_artist=1))
    assert len(tracks) == 10
    assert len({t.artist for t in tracks}) == 10


def test_small_pool_returns_fewer_than_k(catalogue: TrackIndex):
    assert len(rank(HAPPY, make_index(dirichlet(4)), RankingOptions(k=10))) == 4
    tracks = rank(HAPPY, catalogue, RankingOptions(k=10, filters={"year": [1960, 1962, 1964]}))
    assert sorted(ids(tracks)) == ["t0", "t1", "t2"]


# --- shifting the query ---------------------------------------------------------------------


def test_shift_query_moves_towards_the_target():
    query = dirichlet(1, seed=5)[0]
    np.testing.assert_allclose(shift_query(query, "sad", 0.0), query, atol=1e-7)
    np.testing.assert_allclose(shift_query(query, "sad", 1.0), np.eye(6)[5], atol=1e-7)
    half = shift_query(query, "happy", 0.5)
    expected = 0.5 * query + 0.5 * np.eye(6)[EMOTIONS.index("happy")]
    np.testing.assert_allclose(half, expected, atol=1e-6)
    assert half.dtype == np.float32 and half.sum() == pytest.approx(1.0, abs=1e-6)
    assert half[3] > query[3] and all(half[i] <= query[i] for i in range(6) if i != 3)


# --- options and explanations ---------------------------------------------------------------


def test_ranking_options_defaults():
    options = RankingOptions()
    assert (options.k, options.per_artist, options.diversity, options.filters.active()) == (
        10,
        2,
        0.0,
        {},
    )
    assert RankingOptions(k=1, per_artist=None, diversity=1).diversity == 1


def test_explanation_names_the_moods_and_similarity():
    index = make_index(np.stack([SAD, HAPPY]))
    (track,) = rank(HAPPY, index, RankingOptions(k=1))
    assert track.explanation == "지금 기분에 어울려요: 글은 행복 90%, 이 노래는 행복 90%"
    shifted = shift_query(HAPPY, "sad", 1.0)
    (track,) = rank(shifted, index, RankingOptions(k=1), target="sad", mood=HAPPY)
    assert track.track_id == "t0"
    assert track.explanation == (
        "슬픔 쪽으로 옮긴 기분에 어울려요: 글은 행복 90%, 이 노래는 슬픔 90%"
    )
