from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from recommender.errors import InvalidInputError, TrackNotFoundError
from recommender.schemas import Filters, RankingOptions
from recommender.similar import similar_tracks, track_info
from recommender.track_index import TrackIndex
from tests.test_ranking import bhattacharyya, dirichlet, make_index


@pytest.fixture(scope="module")
def catalogue() -> TrackIndex:
    vectors = dirichlet(60, seed=7)
    return make_index(
        vectors,
        track_id=[f"id/{i}" if i % 10 == 0 else f"t{i}" for i in range(60)],
        artist=[f"artist {i % 12}" for i in range(60)],
        genre=[["발라드", "록"][i % 2] for i in range(60)],
        year=[1980 + i for i in range(60)],
    )


def test_track_info_has_metadata_and_emotions(catalogue: TrackIndex):
    info = track_info(catalogue, "t7")
    body = info.to_dict()
    assert list(body)[:4] == ["track_id", "title", "artist", "emotions"]
    assert body["track_id"] == "t7" and body["genre"] == "록" and body["year"] == 1987
    np.testing.assert_allclose(list(body["emotions"].values()), catalogue.vectors[7], atol=1e-4)
    assert "lyrics_sha256" not in body and "score" not in body


def test_ids_with_slashes_are_ordinary_ids(catalogue: TrackIndex):
    assert track_info(catalogue, "id/10").title == "title 10"


def test_unknown_track_is_not_found(catalogue: TrackIndex):
    with pytest.raises(TrackNotFoundError, match="no track with id 'nope'") as raised:
        track_info(catalogue, "nope")
    assert raised.value.status == 404 and raised.value.code == "track_not_found"
    with pytest.raises(TrackNotFoundError, match="'nope'"):
        similar_tracks(catalogue, "nope", RankingOptions())


def test_similar_tracks_are_the_nearest_without_the_song_itself(catalogue: TrackIndex):
    result = similar_tracks(catalogue, "t7", RankingOptions(k=5, per_artist=None))
    assert result.track.track_id == "t7"
    scores = {
        f"t{i}" if i % 10 else f"id/{i}": bhattacharyya(v, catalogue.vectors[7])
        for i, v in enumerate(catalogue.vectors)
        if i != 7
    }
    expected = sorted(scores, key=scores.__getitem__, reverse=True)[:5]
    assert [t.track_id for t in result.tracks] == expected
    assert [t.score for t in result.tracks] == pytest.approx(
        [scores[i] for i in expected], abs=1e-4
    )
    assert "원곡은" in result.tracks[0].explanation
    body = result.to_dict()
    assert list(body) == ["track", "tracks"] and body["track"]["track_id"] == "t7"


def test_similar_tracks_honour_caps_and_filters(catalogue: TrackIndex):
    # ballads are by the six even-numbered artists
    options = RankingOptions(k=8, per_artist=1, filters=Filters(genre="발라드", year_min=1990))
    result = similar_tracks(catalogue, "t7", options)
    assert len(result.tracks) == 6
    assert max(Counter(t.artist for t in result.tracks).values()) == 1
    assert all(
        t.metadata["genre"] == "발라드" and t.metadata["year"] >= 1990 for t in result.tracks
    )
    assert "t7" not in {t.track_id for t in result.tracks}


def test_similar_keeps_the_callers_exclusions(catalogue: TrackIndex):
    first = similar_tracks(catalogue, "t7", RankingOptions(k=1, per_artist=None)).tracks[0]
    filters = Filters(exclude_track_ids=[first.track_id])
    options = RankingOptions(k=3, per_artist=None, filters=filters)
    ids = [t.track_id for t in similar_tracks(catalogue, "t7", options).tracks]
    assert first.track_id not in ids and "t7" not in ids and len(ids) == 3


def test_similar_refuses_bad_options(catalogue: TrackIndex):
    with pytest.raises(InvalidInputError, match="unknown filter 'mood'"):
        similar_tracks(catalogue, "t7", RankingOptions(filters=Filters(mood="x")))
