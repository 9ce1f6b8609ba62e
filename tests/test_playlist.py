from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from recommender.emotions import EMOTIONS
from recommender.playlist import (
    END_WEIGHT,
    corner,
    destination,
    glued_nearest,
    great_circle,
    make_playlist,
    steps_between,
)
from recommender.schemas import Filters
from recommender.track_index import TrackIndex
from tests.test_ranking import bhattacharyya, dirichlet, make_index

ANXIOUS = np.array([0.03, 0.8, 0.05, 0.04, 0.04, 0.04], dtype=np.float32)
HAPPY_MOOD = np.array([0.02, 0.03, 0.02, 0.85, 0.04, 0.04], dtype=np.float32)


@pytest.fixture(scope="module")
def catalogue() -> TrackIndex:
    """300 tracks of mixed moods by 60 artists, with genres."""
    vectors = dirichlet(300, seed=3, alpha=0.4)
    return make_index(
        vectors,
        artist=[f"artist {i % 60}" for i in range(300)],
        genre=[["발라드", "록", "포크"][i % 3] for i in range(300)],
    )


def angle(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.arccos(np.clip(bhattacharyya(p, q), -1.0, 1.0)))


# --- the path -------------------------------------------------------------------------------


def test_great_circle_runs_from_start_to_end_in_equal_steps():
    goals = great_circle(ANXIOUS, corner("happy"), 7)
    assert goals.shape == (7, 6) and goals.dtype == np.float32
    np.testing.assert_allclose(goals.sum(axis=1), 1.0, atol=1e-6)
    assert (goals >= 0).all()
    np.testing.assert_allclose(goals[0], ANXIOUS, atol=1e-6)
    np.testing.assert_allclose(goals[-1], corner("happy"), atol=1e-6)
    arcs = [angle(a, b) for a, b in zip(goals[:-1], goals[1:], strict=True)]
    np.testing.assert_allclose(arcs, arcs[0], rtol=1e-3)
    assert sum(arcs) == pytest.approx(angle(ANXIOUS, corner("happy")), rel=1e-3)
    # happiness grows and anxiety falls monotonically along the way
    assert (np.diff(goals[:, EMOTIONS.index("happy")]) > 0).all()
    assert (np.diff(goals[:, EMOTIONS.index("anxious")]) < 0).all()


def test_great_circle_of_one_point_or_no_distance():
    np.testing.assert_allclose(great_circle(ANXIOUS, corner("happy"), 1), [ANXIOUS], atol=1e-6)
    np.testing.assert_allclose(great_circle(ANXIOUS, ANXIOUS, 4), [ANXIOUS] * 4, atol=1e-6)


def test_destination_with_a_target_is_its_corner():
    target, mode, end = destination(ANXIOUS, "sad")
    assert (target, mode) == ("sad", "target")
    np.testing.assert_array_equal(end, corner("sad"))


def test_destination_lifts_a_mood_other_than_happy_halfway():
    target, mode, end = destination(ANXIOUS, None)
    assert (target, mode) == ("happy", "lift")
    half = angle(ANXIOUS, corner("happy")) / 2
    assert angle(ANXIOUS, end) == pytest.approx(half, rel=1e-3)
    assert angle(end, corner("happy")) == pytest.approx(half, rel=1e-3)


def test_destination_keeps_a_happy_mood():
    target, mode, end = destination(HAPPY_MOOD, None)
    assert (target, mode) == ("happy", "stay")
    np.testing.assert_array_equal(end, HAPPY_MOOD)


# --- the tracks -----------------------------------------------------------------------------


def test_playlist_shape_and_steps(catalogue: TrackIndex):
    playlist = make_playlist(ANXIOUS, catalogue, n=12, target="happy")
    assert (playlist.target, playlist.mode) == ("happy", "target")
    assert [t.step for t in playlist.tracks] == list(range(1, 13))
    goals = great_circle(ANXIOUS, corner("happy"), 12)
    for track, goal in zip(playlist.tracks, goals, strict=True):
        vector = np.array(list(track.track.emotions.values()))
        assert list(track.goal) == list(EMOTIONS)
        np.testing.assert_allclose(list(track.goal.values()), goal, atol=1e-4)
        assert track.track.score == pytest.approx(bhattacharyya(goal, vector), abs=1e-3)
        assert track.distance == pytest.approx(np.sqrt(1 - track.track.score), abs=1e-4)
    body = playlist.to_dict()
    assert list(body) == ["emotions", "target", "mode", "end", "tracks"]
    first = body["tracks"][0]
    assert list(first)[:9] == [
        "track_id", "title", "artist", "score", "emotions", "explanation",
        "step", "goal", "distance",
    ]  # fmt: skip
    assert first["step"] == 1 and list(first["goal"]) == list(EMOTIONS)
    assert "1/12단계" in first["explanation"]


def test_playlist_has_no_track_twice_and_honours_the_cap(catalogue: TrackIndex):
    playlist = make_playlist(ANXIOUS, catalogue, n=30, target="happy", per_artist=1)
    ids = [t.track.track_id for t in playlist.tracks]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert max(Counter(t.track.artist for t in playlist.tracks).values()) == 1


def test_artist_cap_is_enforced_against_a_catalogue_with_few_artists():
    # Three artists; the best tracks for every step all belong to artist 0.
    vectors = np.vstack([dirichlet(30, seed=5, alpha=0.4), np.tile(ANXIOUS, (10, 1))])
    index = make_index(vectors, artist=[f"a{i % 3}" for i in range(30)] + ["a0"] * 10)
    playlist = make_playlist(ANXIOUS, index, n=6, target="happy", per_artist=2)
    counts = Counter(t.track.artist for t in playlist.tracks)
    assert len(playlist.tracks) == 6 and max(counts.values()) == 2


def test_first_and_last_tracks_match_their_ends(catalogue: TrackIndex):
    playlist = make_playlist(ANXIOUS, catalogue, n=12, target="happy")
    vectors = np.array([list(t.track.emotions.values()) for t in playlist.tracks])
    first = bhattacharyya(vectors[0], ANXIOUS)
    last = bhattacharyya(vectors[-1], corner("happy"))
    # as close as the catalogue allows: within reach of its single best track for each end
    best_first = catalogue.search(ANXIOUS[None], 1, exact=True).scores[0, 0]
    best_last = catalogue.search(corner("happy")[None], 1, exact=True).scores[0, 0]
    assert first >= best_first - 0.02
    assert last >= best_last - 0.02


@pytest.mark.parametrize(
    ("mood", "target"), [(ANXIOUS, "happy"), (ANXIOUS, None), (HAPPY_MOOD, "sad")]
)
@pytest.mark.parametrize("n", [6, 12, 24])
def test_playlist_moves_more_smoothly_than_glued_nearest_neighbours(
    catalogue: TrackIndex, mood: np.ndarray, target: str | None, n: int
):
    playlist = make_playlist(mood, catalogue, n=n, target=target)
    _, _, end = destination(mood, target)
    ours = np.array([list(t.track.emotions.values()) for t in playlist.tracks])
    glued = catalogue.vectors[glued_nearest(mood, end, catalogue, n)]
    assert len(glued) == n
    assert steps_between(ours).max() <= steps_between(glued).max()


def test_staying_happy_picks_the_nearest_tracks(catalogue: TrackIndex):
    playlist = make_playlist(HAPPY_MOOD, catalogue, n=5, per_artist=None)
    nearest = catalogue.search(HAPPY_MOOD[None], 5, exact=True).ids[0]
    assert playlist.mode == "stay"
    assert {t.track.track_id for t in playlist.tracks} == {f"t{i}" for i in nearest}


@pytest.mark.parametrize("seed", range(6))
def test_assignment_is_the_optimum_with_the_ends_weighted(seed: int):
    vectors = dirichlet(7, seed=seed, alpha=0.6)
    index = make_index(vectors)
    n = 4
    goals = great_circle(ANXIOUS, corner("happy"), n)
    cost = 1 - np.sqrt(goals.astype(np.float64)) @ np.sqrt(vectors.astype(np.float64)).T
    weights = np.array([END_WEIGHT, 1, 1, END_WEIGHT])
    best = min(
        itertools.permutations(range(7), n),
        key=lambda rows: float((weights * cost[np.arange(n), list(rows)]).sum()),
    )
    playlist = make_playlist(ANXIOUS, index, n=n, target="happy", per_artist=None)
    assert [t.track.track_id for t in playlist.tracks] == [f"t{i}" for i in best]


def test_weighting_the_ends_favours_their_matches():
    """Across random catalogues the weighted assignment matches the ends at least as well as
    the plain one, and better somewhere."""
    gains = []
    for seed in range(30):
        vectors = dirichlet(7, seed=seed, alpha=0.6)
        goals = great_circle(ANXIOUS, corner("happy"), 4)
        cost = 1 - np.sqrt(goals.astype(np.float64)) @ np.sqrt(vectors.astype(np.float64)).T
        plain = min(
            itertools.permutations(range(7), 4),
            key=lambda rows: float(cost[np.arange(4), list(rows)].sum()),
        )
        playlist = make_playlist(ANXIOUS, make_index(vectors), n=4, target="happy", per_artist=None)
        ours = [int(t.track.track_id[1:]) for t in playlist.tracks]
        gains.append(cost[0, plain[0]] + cost[3, plain[3]] - cost[0, ours[0]] - cost[3, ours[3]])
    assert min(gains) >= -1e-9 and max(gains) > 1e-3


def test_filters_apply_to_every_step(catalogue: TrackIndex):
    playlist = make_playlist(ANXIOUS, catalogue, n=10, target="happy", filters=Filters(genre="록"))
    assert len(playlist.tracks) == 10
    assert {t.track.metadata["genre"] for t in playlist.tracks} == {"록"}


def test_a_filter_leaving_few_tracks_shortens_the_path(catalogue: TrackIndex):
    keep = ["t1", "t2", "t3", "t4"]
    excluded = [f"t{i}" for i in range(300) if f"t{i}" not in keep]
    playlist = make_playlist(
        ANXIOUS, catalogue, n=10, target="happy", filters=Filters(exclude_track_ids=excluded)
    )
    assert sorted(t.track.track_id for t in playlist.tracks) == keep
    assert [t.step for t in playlist.tracks] == [1, 2, 3, 4]
    np.testing.assert_allclose(list(playlist.tracks[-1].goal.values()), corner("happy"), atol=1e-4)


def test_a_filter_leaving_nothing_gives_an_empty_playlist(catalogue: TrackIndex):
    playlist = make_playlist(ANXIOUS, catalogue, n=5, target="happy", filters=Filters(genre="재즈"))
    assert playlist.tracks == []


def test_glued_baseline_starts_near_the_start_and_ends_near_the_end(catalogue: TrackIndex):
    rows = glued_nearest(ANXIOUS, corner("happy"), catalogue, 6)
    nearest_start = catalogue.search(ANXIOUS[None], 1, exact=True).ids[0, 0]
    nearest_end = catalogue.search(corner("happy")[None], 1, exact=True).ids[0, 0]
    assert rows[0] == nearest_start and rows[-1] == nearest_end and len(set(rows)) == 6


def test_steps_between_is_the_hellinger_distance():
    vectors = np.array([ANXIOUS, ANXIOUS, corner("happy")])
    steps = steps_between(vectors)
    assert steps[0] == pytest.approx(0.0, abs=1e-6)
    assert steps[1] == pytest.approx(np.sqrt(1 - np.sqrt(ANXIOUS[3])), abs=1e-6)
