"""POST /playlist, GET /tracks/{id} and /similar, sentence detail and focus over HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from recommender.api import create_app
from recommender.emotions import EMOTIONS
from recommender.playlist import glued_nearest, great_circle, steps_between
from recommender.service import Recommender
from tests.catalogue import catalogue_rows, load_index, make_index
from tests.test_api import SMALL_LIMITS, assert_error

ANXIOUS_TEXT = "내일 시험이 걱정된다"
DAY = "아침엔 시험이 걱정됐다. 그런데 결과가 좋아서 행복했다!"


@pytest.fixture()
def service(tmp_path: Path, fake_classifier) -> Recommender:
    rows = catalogue_rows()
    rows[4]["track_id"] = "ep/01/side-a"  # an id with slashes
    index = load_index(make_index(tmp_path, fake_classifier, rows), fake_classifier)
    return Recommender(fake_classifier, index)


@pytest.fixture()
def app(service: Recommender) -> Flask:
    return create_app({**SMALL_LIMITS, "MAX_CONTENT_LENGTH": 4096}, service=service)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def vectors(tracks: list[dict]) -> np.ndarray:
    return np.array([list(t["emotions"].values()) for t in tracks])


# --- POST /playlist -------------------------------------------------------------------------


def test_playlist_contract(client: FlaskClient):
    response = client.post("/playlist", json={"text": ANXIOUS_TEXT, "target": "happy", "n": 6})
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["emotions", "target", "mode", "end", "tracks"]
    assert (body["target"], body["mode"]) == ("happy", "target")
    assert body["end"]["happy"] == 1.0
    tracks = body["tracks"]
    assert [t["step"] for t in tracks] == [1, 2, 3, 4, 5, 6]
    goals = great_circle(np.array(list(body["emotions"].values())), np.eye(6)[3], 6)
    for track, goal in zip(tracks, goals, strict=True):
        # the goals start at the reading before it is rounded for the body
        assert list(track["goal"].values()) == pytest.approx(goal.tolist(), abs=2e-3)
        assert 0 <= track["distance"] <= 1 and "단계" in track["explanation"]
    assert tracks[0]["track_id"].startswith("anxious-")
    assert tracks[-1]["track_id"].startswith("happy-")
    assert len({t["track_id"] for t in tracks}) == 6
    assert max(Counter(t["artist"] for t in tracks).values()) <= 2


def test_playlist_is_smoother_than_glued_nearest(client: FlaskClient, service: Recommender):
    body = client.post("/playlist", json={"text": ANXIOUS_TEXT, "target": "sad", "n": 8}).get_json()
    start = np.array(list(body["emotions"].values()), dtype=np.float32)
    glued = service.index.vectors[
        glued_nearest(start, np.eye(6, dtype=np.float32)[5], service.index, 8)
    ]
    assert steps_between(vectors(body["tracks"])).max() <= steps_between(glued).max()


def test_playlist_defaults_lift_towards_happy(client: FlaskClient):
    body = client.post("/playlist", json={"text": ANXIOUS_TEXT}).get_json()
    assert (body["target"], body["mode"]) == ("happy", "lift")
    assert len(body["tracks"]) == 12  # n defaults to 12; six artists of three tracks, two each
    assert 0.4 < body["end"]["happy"] < 0.9


def test_playlist_of_a_happy_text_stays(client: FlaskClient):
    body = client.post("/playlist", json={"text": "오늘은 정말 행복한 하루였다", "n": 3}).get_json()
    assert body["mode"] == "stay"
    assert all(t["track_id"].startswith("happy-") for t in body["tracks"])


def test_playlist_with_filters_and_caps(client: FlaskClient):
    request = {
        "text": ANXIOUS_TEXT,
        "target": "행복",
        "n": 5,
        "filters": {"genre": ["발라드", "록"]},
        "per_artist": 1,
    }
    body = client.post("/playlist", json=request).get_json()
    assert body["target"] == "happy"
    # ballads and rock are by four artists: one track each cuts the path to four steps
    assert [t["step"] for t in body["tracks"]] == [1, 2, 3, 4]
    assert {t["genre"] for t in body["tracks"]} <= {"발라드", "록"}
    assert len({t["artist"] for t in body["tracks"]}) == 4
    assert body["tracks"][-1]["goal"]["happy"] == 1.0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": ANXIOUS_TEXT, "n": 2}, "'n' must be an integer from 3 to 50; got 2"),
        ({"text": ANXIOUS_TEXT, "n": 51}, "'n' must be an integer from 3 to 50; got 51"),
        ({"text": ANXIOUS_TEXT, "n": "5"}, "'n' must be an integer from 3 to 50; got \"5\""),
        ({"text": ANXIOUS_TEXT, "n": 4.5}, "'n' must be an integer"),
        ({"text": ANXIOUS_TEXT, "n": True}, "'n' must be an integer"),
        ({"text": ANXIOUS_TEXT, "target": "bored"}, "'target' must be an emotion"),
        ({"text": ANXIOUS_TEXT, "target": 3}, "'target' must be an emotion"),
        ({"text": ANXIOUS_TEXT, "per_artist": 0}, "'per_artist' must be an integer from 1"),
        ({"text": ANXIOUS_TEXT, "filters": []}, "'filters' must be a JSON object or null"),
        ({"text": ANXIOUS_TEXT, "filters": {"mood": "x"}}, "unknown filter 'mood'"),
        ({"text": ""}, "'text' is empty"),
        ({"text": 5}, "'text' must be a string"),
        ({"n": 5}, "missing field 'text'"),
    ],
)
def test_playlist_bad_input(client: FlaskClient, body, fragment):
    assert_error(client.post("/playlist", json=body), 400, "invalid_input", fragment)


def test_playlist_needs_json(client: FlaskClient):
    response = client.post("/playlist", data="text", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type", "send JSON")


# --- GET /tracks/{id} and /similar ------------------------------------------------------------


def test_track(client: FlaskClient):
    body = client.get("/tracks/sad-2").get_json()
    assert list(body)[:4] == ["track_id", "title", "artist", "emotions"]
    assert body["track_id"] == "sad-2" and body["genre"] == "인디"
    assert max(body["emotions"], key=body["emotions"].__getitem__) == "sad"
    assert "score" not in body and "lyrics_sha256" not in body


def test_track_ids_with_slashes_and_korean(client: FlaskClient):
    assert client.get("/tracks/ep/01/side-a").get_json()["track_id"] == "ep/01/side-a"
    similar = client.get("/tracks/ep/01/side-a/similar?k=2").get_json()
    assert similar["track"]["track_id"] == "ep/01/side-a" and len(similar["tracks"]) == 2
    assert_error(client.get("/tracks/%EB%85%B8%EB%9E%98"), 404, "track_not_found", "'노래'")


def test_similar(client: FlaskClient):
    body = client.get("/tracks/happy-0/similar?k=4&per_artist=1").get_json()
    assert list(body) == ["track", "tracks"]
    ids = [t["track_id"] for t in body["tracks"]]
    assert len(ids) == 4 and "happy-0" not in ids
    assert ids[:2] == ["happy-1", "happy-2"] or ids[:2] == ["happy-2", "happy-1"]
    scores = [t["score"] for t in body["tracks"]]
    assert scores == sorted(scores, reverse=True)
    assert len({t["artist"] for t in body["tracks"]}) == 4


def test_similar_filters(client: FlaskClient):
    body = client.get("/tracks/happy-0/similar?k=3&genre=록&genre=인디&year_min=1980").get_json()
    assert body["tracks"]
    assert all(t["genre"] in {"록", "인디"} and t["year"] >= 1980 for t in body["tracks"])
    assert client.get("/tracks/happy-0/similar").get_json()["tracks"]  # k defaults to 10


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("k=0", "'k' must be an integer from 1 to 100"),
        ("k=101", "'k' must be an integer from 1 to 100"),
        ("k=abc", "'k' must be an integer from 1 to 100; got \"abc\""),
        ("k=1&k=2", "'k' must be an integer"),
        ("per_artist=-1", "'per_artist' must be an integer from 1 to 100"),
        ("year_min=old", "'year_min' must be a number from 0 to 9999"),
        ("year_min=2000&year_max=1990", "'year_min' (2000) is greater than 'year_max' (1990)"),
    ],
)
def test_similar_bad_query(client: FlaskClient, query: str, fragment: str):
    assert_error(client.get(f"/tracks/happy-0/similar?{query}"), 400, "invalid_input", fragment)


@pytest.mark.parametrize(
    "path", ["/tracks/nope", "/tracks/nope/similar", "/tracks/nope/similar?k=3"]
)
def test_unknown_track_is_404(client: FlaskClient, path: str):
    assert_error(client.get(path), 404, "track_not_found", "no track with id 'nope'")


def test_tracks_only_answer_get(client: FlaskClient):
    assert_error(client.post("/tracks/happy-0", json={}), 405, "method_not_allowed", "POST")


# --- sentence detail and focus ----------------------------------------------------------------


def test_recommend_with_sentence_detail(client: FlaskClient):
    plain = client.post("/recommend", json={"text": DAY, "k": 3}).get_json()
    body = client.post("/recommend", json={"text": DAY, "k": 3, "detail": "sentences"}).get_json()
    assert list(body) == ["emotions", "tracks", "sentences", "dominant"]
    assert body["emotions"] == plain["emotions"] and body["tracks"] == plain["tracks"]
    sentences = body["sentences"]
    assert [s["text"] for s in sentences] == [
        "아침엔 시험이 걱정됐다.",
        "그런데 결과가 좋아서 행복했다!",
    ]
    assert [DAY[s["start"] : s["end"]] for s in sentences] == [s["text"] for s in sentences]
    assert [max(s["emotions"], key=s["emotions"].__getitem__) for s in sentences] == [
        "anxious",
        "happy",
    ]
    assert sum(s["share"] for s in sentences) == pytest.approx(1, abs=1e-3)


def test_focus_end_reads_the_last_sentences_most(client: FlaskClient):
    text = "시험이 걱정됐다. 시험이 걱정됐다. 그래도 결국 행복했다."
    whole = client.post("/recommend", json={"text": text, "k": 3}).get_json()
    end = client.post("/recommend", json={"text": text, "k": 3, "focus": "end"}).get_json()
    assert list(end) == ["emotions", "tracks", "focus"] and end["focus"] == "end"
    assert max(whole["emotions"], key=whole["emotions"].__getitem__) == "anxious"
    assert max(end["emotions"], key=end["emotions"].__getitem__) == "happy"
    assert end["tracks"][0]["track_id"].startswith("happy-")


def test_classify_with_sentence_detail(client: FlaskClient):
    body = client.post(
        "/classify", json={"texts": [DAY, "슬프다"], "detail": "sentences"}
    ).get_json()
    first, second = body["results"]
    assert list(first) == ["emotions", "sentences", "dominant"]
    assert len(first["sentences"]) == 2 and len(second["sentences"]) == 1
    assert second["dominant"] == [0]
    plain = client.post("/classify", json={"texts": [DAY]}).get_json()["results"][0]
    assert list(plain) == ["emotions"] and plain["emotions"] == first["emotions"]


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/recommend", {"text": DAY, "detail": "words"}, "'detail' must be \"sentences\" or null"),
        ("/recommend", {"text": DAY, "focus": "start"}, "'focus' must be one of whole, end"),
        ("/recommend", {"text": DAY, "focus": None}, "'focus' must be one of whole, end"),
        ("/classify", {"texts": [DAY], "detail": 1}, "'detail' must be \"sentences\" or null"),
    ],
)
def test_sentence_options_bad_input(client: FlaskClient, path, body, fragment):
    assert_error(client.post(path, json=body), 400, "invalid_input", fragment)


# --- documentation --------------------------------------------------------------------------


def test_openapi_documents_the_new_operations(client: FlaskClient):
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    assert paths["/playlist"]["post"]["operationId"] == "playlist"
    assert set(paths["/tracks/{track_id}"]["get"]["responses"]) == {"200", "404", "503"}
    similar = paths["/tracks/{track_id}/similar"]["get"]
    names = [(p["name"], p["in"]) for p in similar["parameters"]]
    assert names == [
        ("track_id", "path"), ("k", "query"), ("per_artist", "query"), ("genre", "query"),
        ("year_min", "query"), ("year_max", "query"),
    ]  # fmt: skip
    k = similar["parameters"][1]["schema"]
    assert (k["maximum"], k["default"]) == (100, 10)
    playlist = document["components"]["schemas"]["PlaylistRequest"]["properties"]
    assert (playlist["n"]["minimum"], playlist["n"]["maximum"]) == (3, 50)
    recommend = document["components"]["schemas"]["RecommendRequest"]["properties"]
    assert recommend["focus"]["enum"] == ["whole", "end"]


def test_unknown_endpoint_lists_the_new_ones(client: FlaskClient):
    message = client.get("/nowhere").get_json()["error"]["message"]
    assert "POST /playlist" in message and "GET /tracks/{track_id}/similar" in message


def test_emotion_order_everywhere(client: FlaskClient):
    body = client.post("/playlist", json={"text": ANXIOUS_TEXT, "n": 3}).get_json()
    for mapping in [body["emotions"], body["end"], body["tracks"][0]["goal"]]:
        assert list(mapping) == list(EMOTIONS)


LONE_SURROGATE = "is not valid Unicode: it contains a lone surrogate"


@pytest.mark.parametrize("path", ["/recommend", "/playlist"])
@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        (
            '{"year_min": 2000, "year_max": 1990}',
            "'filters.year_min' (2000) is greater than 'filters.year_max' (1990)",
        ),
        ('{"genre": "\\ud800"}', f"'filters.genre' {LONE_SURROGATE}"),
        ('{"genre": ["록", "\\ud800"]}', f"'filters.genre' {LONE_SURROGATE}"),
        (
            '{"exclude_track_ids": ["happy-0", "\\udfff"]}',
            f"'filters.exclude_track_ids[1]' {LONE_SURROGATE}",
        ),
        ('{"album": "\\ud800"}', f"'filters.album' {LONE_SURROGATE}"),
    ],
)
def test_bad_filters_are_a_400_on_every_endpoint(client: FlaskClient, path, filters, fragment):
    data = f'{{"text": "{ANXIOUS_TEXT}", "filters": {filters}}}'
    response = client.post(path, data=data, content_type="application/json")
    assert_error(response, 400, "invalid_input", fragment)


def test_equal_years_are_allowed(client: FlaskClient):
    response = client.get("/tracks/happy-0/similar?k=3&year_min=1980&year_max=1980")
    assert response.status_code == 200, response.get_json()
