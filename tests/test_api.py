from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from recommender.api import EXTENSION, create_app
from recommender.classifier import EmotionClassifier
from recommender.emotions import EMOTIONS
from recommender.errors import ConfigurationError
from recommender.service import Recommender
from recommender.settings import Settings
from tests.catalogue import load_index, make_index

HAPPY_TEXT = "오늘은 정말 행복한 하루였다"
SMALL_LIMITS = {"MAX_TEXT_LENGTH": 50, "MAX_TEXTS": 3, "MAX_CONTENT_LENGTH": 2048}


@pytest.fixture()
def service(tmp_path: Path, fake_classifier) -> Recommender:
    index = load_index(make_index(tmp_path, fake_classifier), fake_classifier)
    return Recommender(fake_classifier, index)


@pytest.fixture()
def app(service: Recommender) -> Flask:
    return create_app(SMALL_LIMITS, service=service)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assert_error(response, status: int, code: str, fragment: str) -> dict[str, Any]:
    """The one error shape: status, JSON content type, exactly {"error": {"code", "message",
    "request_id"}}, the id also in the X-Request-ID header."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["error"]
    assert sorted(body["error"]) == ["code", "message", "request_id"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"], body["error"]["message"]
    return body


# --- the contract ---------------------------------------------------------------------------


def test_recommend_contract(client: FlaskClient):
    response = client.post("/recommend", json={"text": HAPPY_TEXT, "k": 5})
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["emotions", "tracks"]
    assert list(body["emotions"]) == list(EMOTIONS)
    assert sum(body["emotions"].values()) == pytest.approx(1.0, abs=1e-3)
    assert len(body["tracks"]) == 5
    for track in body["tracks"]:
        assert {"track_id", "title", "artist", "score", "emotions", "explanation"} <= set(track)
        assert list(track["emotions"]) == list(EMOTIONS)
    scores = [t["score"] for t in body["tracks"]]
    assert scores == sorted(scores, reverse=True)
    assert {t["track_id"] for t in body["tracks"][:3]} == {"happy-0", "happy-1", "happy-2"}


def test_recommend_keeps_korean_readable(client: FlaskClient):
    raw = client.post("/recommend", json={"text": HAPPY_TEXT, "k": 1}).get_data(as_text=True)
    assert "발라드" in raw or "록" in raw or "인디" in raw


def test_recommend_defaults_to_ten(client: FlaskClient):
    body = client.post("/recommend", json={"text": HAPPY_TEXT}).get_json()
    assert len(body["tracks"]) == 10


def test_recommend_with_every_option(client: FlaskClient):
    response = client.post(
        "/recommend",
        json={
            "text": HAPPY_TEXT,
            "k": 3,
            "target": "sad",
            "shift_strength": 1.0,
            "filters": {"genre": ["발라드", "록", "인디"], "year_min": 1950},
            "per_artist": 1,
            "diversity": 0.2,
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["target"] == "sad"
    assert len(body["tracks"]) == 3
    assert len({t["artist"] for t in body["tracks"]}) == 3
    assert all(t["track_id"].startswith("sad-") for t in body["tracks"])


def test_recommend_accepts_null_for_optional_fields(client: FlaskClient):
    body = {"text": HAPPY_TEXT, "k": 2, "target": None, "filters": None}
    assert client.post("/recommend", json=body).status_code == 200


def test_recommend_accepts_json_with_charset(client: FlaskClient):
    response = client.post(
        "/recommend",
        data=json.dumps({"text": HAPPY_TEXT, "k": 1}),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 200


def test_classify_contract(client: FlaskClient):
    response = client.post("/classify", json={"texts": [HAPPY_TEXT, "시험이 걱정된다"]})
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["results"]
    assert len(body["results"]) == 2
    for result in body["results"]:
        assert list(result) == ["emotions"]
        assert list(result["emotions"]) == list(EMOTIONS)
        assert sum(result["emotions"].values()) == pytest.approx(1.0, abs=1e-3)
    top = [max(r["emotions"], key=r["emotions"].get) for r in body["results"]]
    assert top == ["happy", "anxious"]


def test_health(client: FlaskClient):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_with_a_service(client: FlaskClient):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "model": "fake",
        "model_fingerprint": "fake-0001",
        "checkpoint_fingerprint": "fake-0001",
        "tracks": 18,
    }


# --- bad input ------------------------------------------------------------------------------

LONG_TEXT = "가" * 51  # SMALL_LIMITS allows 50 characters


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "missing field 'text'"),
        ({"k": 3}, "missing field 'text'"),
        ({"text": ""}, "'text' is empty"),
        ({"text": "   \n\t"}, "'text' is empty"),
        ({"text": 42}, "'text' must be a string; got 42"),
        ({"text": None}, "'text' must be a string; got null"),
        ({"text": ["행복"]}, "'text' must be a string; got [\"행복\"]"),
        ({"text": {"a": 1}}, "'text' must be a string; got {\"a\": 1}"),
        ({"text": True}, "'text' must be a string; got true"),
        ({"text": LONG_TEXT}, "'text' is 51 characters; the limit is 50"),
        ({"text": HAPPY_TEXT, "k": 0}, "'k' must be an integer from 1 to 100; got 0"),
        ({"text": HAPPY_TEXT, "k": 101}, "'k' must be an integer from 1 to 100; got 101"),
        ({"text": HAPPY_TEXT, "k": -1}, "'k' must be an integer from 1 to 100; got -1"),
        ({"text": HAPPY_TEXT, "k": "5"}, "'k' must be an integer from 1 to 100; got \"5\""),
        ({"text": HAPPY_TEXT, "k": 2.5}, "'k' must be an integer from 1 to 100; got 2.5"),
        ({"text": HAPPY_TEXT, "k": 5.0}, "'k' must be an integer from 1 to 100; got 5.0"),
        ({"text": HAPPY_TEXT, "k": True}, "'k' must be an integer from 1 to 100; got true"),
        ({"text": HAPPY_TEXT, "k": None}, "'k' must be an integer from 1 to 100; got null"),
        ({"text": HAPPY_TEXT, "k": [5]}, "'k' must be an integer from 1 to 100"),
        (
            {"text": HAPPY_TEXT, "per_artist": 0},
            "'per_artist' must be an integer from 1 to 100 or null; got 0",
        ),
        ({"text": HAPPY_TEXT, "per_artist": "2"}, "'per_artist' must be an integer from 1"),
        ({"text": HAPPY_TEXT, "per_artist": 1.5}, "'per_artist' must be an integer from 1"),
        ({"text": HAPPY_TEXT, "diversity": 1.5}, "'diversity' must be a number from 0 to 1"),
        ({"text": HAPPY_TEXT, "diversity": -0.5}, "'diversity' must be a number from 0 to 1"),
        ({"text": HAPPY_TEXT, "diversity": "0.5"}, "'diversity' must be a number from 0 to 1"),
        ({"text": HAPPY_TEXT, "diversity": False}, "'diversity' must be a number from 0 to 1"),
        ({"text": HAPPY_TEXT, "diversity": None}, "'diversity' must be a number from 0 to 1"),
        ({"text": HAPPY_TEXT, "shift_strength": 2}, "'shift_strength' must be a number from 0"),
        ({"text": HAPPY_TEXT, "shift_strength": "x"}, "'shift_strength' must be a number"),
        ({"text": HAPPY_TEXT, "shift_strength": True}, "'shift_strength' must be a number"),
        ({"text": HAPPY_TEXT, "target": 3}, "'target' must be an emotion (angry, anxious, "),
        ({"text": HAPPY_TEXT, "target": ["sad"]}, 'or its Korean name or null; got ["sad"]'),
        (
            {"text": HAPPY_TEXT, "target": "calm"},
            "'target' must be an emotion (angry, anxious, embarrassed, happy, heartache, sad) "
            'or its Korean name or null; got "calm"',
        ),
        (
            {"text": HAPPY_TEXT, "filters": "genre"},
            "'filters' must be a JSON object or null; got \"",
        ),
        (
            {"text": HAPPY_TEXT, "filters": ["genre"]},
            "'filters' must be a JSON object or null; got [",
        ),
        ({"text": HAPPY_TEXT, "filters": []}, "'filters' must be a JSON object or null; got []"),
        ({"text": HAPPY_TEXT, "filters": ""}, "'filters' must be a JSON object or null; got \"\""),
        (
            {"text": HAPPY_TEXT, "filters": False},
            "'filters' must be a JSON object or null; got false",
        ),
        ({"text": HAPPY_TEXT, "filters": 0}, "'filters' must be a JSON object or null; got 0"),
        (
            {"text": HAPPY_TEXT, "filters": {"mood": "happy"}},
            "unknown filter 'mood'; valid filters: artist, exclude_track_ids, genre, language, "
            "title, track_id, year, year_max, year_min",
        ),
        (
            {"text": HAPPY_TEXT, "filters": {"genre": []}},
            "'filters.genre' must be a string, a number, a non-empty array, each item a string or "
            "a number or null; got []",
        ),
        ({"text": HAPPY_TEXT, "filters": {"genre": {"a": 1}}}, "'filters.genre' must be a string"),
        (
            {"text": HAPPY_TEXT, "filters": {"year_min": "1990"}},
            "'filters.year_min' must be a number from 0 to 9999 or null; got \"1990\"",
        ),
        (
            {"text": HAPPY_TEXT, "filters": {"year_max": 10**309}},
            "'filters.year_max' must be a number from 0 to 9999 or null; got 1000000000",
        ),
        (
            {"text": HAPPY_TEXT, "filters": {"language": None}},
            "'filters.language' must be a string, a number or a non-empty array",
        ),
        (
            {"text": HAPPY_TEXT, "filters": {"exclude_track_ids": "happy-0"}},
            "'filters.exclude_track_ids' must be an array, each item a string or null; "
            'got "happy-0"',
        ),
    ],
)
def test_recommend_bad_input(client: FlaskClient, body, fragment):
    assert_error(client.post("/recommend", json=body), 400, "invalid_input", fragment)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "missing field 'texts'"),
        ({"text": HAPPY_TEXT}, "missing field 'texts'"),
        ({"texts": HAPPY_TEXT}, "'texts' must be an array of 1 to 3 items, each a string; got \""),
        ({"texts": {"a": "b"}}, "'texts' must be an array of 1 to 3 items, each a string; got {"),
        ({"texts": None}, "'texts' must be an array of 1 to 3 items, each a string; got null"),
        ({"texts": []}, "'texts' must be an array of 1 to 3 items, each a string; got []"),
        ({"texts": ["a", "b", "c", "d"]}, "'texts' has 4 items; the limit is 3"),
        ({"texts": [HAPPY_TEXT, 3]}, "'texts[1]' must be a string; got 3"),
        ({"texts": [HAPPY_TEXT, None]}, "'texts[1]' must be a string; got null"),
        ({"texts": [""]}, "'texts[0]' is empty"),
        ({"texts": [HAPPY_TEXT, "  "]}, "'texts[1]' is empty"),
        ({"texts": [LONG_TEXT]}, "'texts[0]' is 51 characters; the limit is 50"),
    ],
)
def test_classify_bad_input(client: FlaskClient, body, fragment):
    assert_error(client.post("/classify", json=body), 400, "invalid_input", fragment)


@pytest.mark.parametrize("path", ["/recommend", "/classify"])
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"text": "행복', "request body is not valid JSON"),
        ("", "request body is not valid JSON"),
        ("{'text': 'single quotes'}", "request body is not valid JSON"),
        (b"\xff\xfe{}", "request body is not valid JSON"),
        ('["행복"]', 'request body must be a JSON object; got ["행복"]'),
        ('"행복"', 'request body must be a JSON object; got "행복"'),
        ("5", "request body must be a JSON object; got 5"),
        ("null", "request body must be a JSON object; got null"),
    ],
)
def test_body_not_a_json_object(client: FlaskClient, path, data, fragment):
    response = client.post(path, data=data, content_type="application/json")
    assert_error(response, 400, "invalid_input", fragment)


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/recommend", '{"text": "\\ud800 행복"}'),
        ("/classify", '{"texts": ["좋아", "\\udfff"]}'),
    ],
)
def test_lone_surrogate_is_a_400(client: FlaskClient, path, data):
    response = client.post(path, data=data, content_type="application/json")
    assert_error(response, 400, "invalid_input", "not valid Unicode: it contains a lone surrogate")


@pytest.mark.parametrize("path", ["/recommend", "/classify"])
@pytest.mark.parametrize("data", ["[" * 20_000 + "]" * 20_000, '{"text": ' + "[" * 30_000])
def test_deeply_nested_json_is_a_400(service: Recommender, path, data):
    client = create_app({"MAX_CONTENT_LENGTH": 64 * 1024}, service=service).test_client()
    response = client.post(path, data=data, content_type="application/json")
    assert_error(response, 400, "invalid_input", "request body is JSON nested too deeply")


@pytest.mark.parametrize("path", ["/recommend", "/classify"])
@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "'text/plain'"),
        ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
        (None, "'none'"),
    ],
)
def test_wrong_content_type(client: FlaskClient, path, content_type, shown):
    data = json.dumps({"text": HAPPY_TEXT, "texts": [HAPPY_TEXT]})
    response = client.post(path, data=data, content_type=content_type)
    assert_error(response, 415, "unsupported_media_type", f"application/json; got {shown}")


@pytest.mark.parametrize("path", ["/recommend", "/classify"])
def test_body_over_the_limit(client: FlaskClient, path):
    body = json.dumps({"text": "가" * 1000, "texts": ["가" * 1000]})  # over 2048 bytes
    response = client.post(path, data=body, content_type="application/json")
    assert_error(response, 413, "request_entity_too_large", "over the limit of 2048 bytes")


@pytest.mark.parametrize(
    "path", ["/nope", "/recommend/extra", "/static/x.js", "/docs/swagger-ui/x"]
)
def test_unknown_path(client: FlaskClient, path):
    assert_error(client.get(path), 404, "not_found", f"no endpoint at {path}; endpoints:")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/recommend", "POST"),
        ("put", "/classify", "POST"),
        ("delete", "/recommend", "POST"),
        ("post", "/health", "GET"),
    ],
)
def test_wrong_method(client: FlaskClient, method, path, allowed):
    response = getattr(client, method)(path)
    assert_error(response, 405, "method_not_allowed", f"{method.upper()} is not allowed on {path}")
    assert allowed in response.headers["Allow"]


def test_unexpected_exception_is_a_json_500(app: Flask, service: Recommender, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, with a secret detail")

    monkeypatch.setattr(service, "answer", broken)
    monkeypatch.setattr(service.classifier, "predict_proba", broken)
    client = app.test_client()
    for path, body in [("/recommend", {"text": HAPPY_TEXT}), ("/classify", {"texts": ["a"]})]:
        response = client.post(path, json=body)
        payload = assert_error(response, 500, "internal_error", "internal error")
        assert "secret" not in payload["error"]["message"]


# --- loading --------------------------------------------------------------------------------


def loading_app(tmp_path: Path, **extra: Any) -> Flask:
    """An app whose model cannot load; waits until the background load has failed."""
    app = create_app({"MODEL": str(tmp_path / "no-model"), "INDEX": str(tmp_path), **extra})
    assert app.extensions[EXTENSION].wait(timeout=30)
    return app


def test_a_model_that_cannot_load_is_a_503_not_a_500(tmp_path: Path):
    client = loading_app(tmp_path, DEVICE="cpu").test_client()
    assert client.get("/health").status_code == 200
    fragment = "no model directory at"
    assert_error(client.get("/ready"), 503, "not_ready", fragment)
    assert_error(client.post("/recommend", json={"text": HAPPY_TEXT}), 503, "not_ready", fragment)
    assert_error(client.post("/classify", json={"texts": [HAPPY_TEXT]}), 503, "not_ready", fragment)
    # Bad input is still reported as such while the service is unavailable.
    assert_error(client.post("/recommend", json={"k": 3}), 400, "invalid_input", "'text'")


def test_ready_is_503_while_loading(service: Recommender, monkeypatch):
    import threading

    release = threading.Event()

    def slow_load(*args, **kwargs):
        release.wait(timeout=30)
        return service.classifier

    monkeypatch.setattr(EmotionClassifier, "from_pretrained", slow_load)
    monkeypatch.setattr(Recommender, "with_index", lambda classifier, settings: service)
    app = create_app()
    client = app.test_client()
    try:
        assert_error(client.get("/ready"), 503, "not_ready", "still loading")
        response = client.post("/recommend", json={"text": HAPPY_TEXT})
        assert_error(response, 503, "not_ready", "still loading; retry shortly")
        response = client.post("/classify", json={"texts": [HAPPY_TEXT]})
        assert_error(response, 503, "not_ready", "model is still loading")
    finally:
        release.set()
    assert app.extensions[EXTENSION].wait(timeout=30)
    assert client.get("/ready").status_code == 200
    assert client.post("/recommend", json={"text": HAPPY_TEXT, "k": 2}).status_code == 200


def test_classify_answers_once_the_model_is_loaded_while_the_index_loads(
    service: Recommender, monkeypatch
):
    import threading

    release = threading.Event()

    def slow_index(classifier, settings):
        release.wait(timeout=30)
        return service

    monkeypatch.setattr(EmotionClassifier, "from_pretrained", lambda **kw: service.classifier)
    monkeypatch.setattr(Recommender, "with_index", slow_index)
    app = create_app()
    client = app.test_client()
    try:
        for _ in range(300):  # the model "loads" at once; wait for the thread to store it
            if app.extensions[EXTENSION].classifier is not None:
                break
            threading.Event().wait(0.01)
        response = client.post("/classify", json={"texts": [HAPPY_TEXT]})
        assert response.status_code == 200
        emotions = response.get_json()["results"][0]["emotions"]
        assert max(emotions, key=emotions.get) == "happy"
        assert_error(client.get("/ready"), 503, "not_ready", "still loading")
        assert_error(client.post("/recommend", json={"text": HAPPY_TEXT}), 503, "not_ready", "")
    finally:
        release.set()
    assert app.extensions[EXTENSION].wait(timeout=30)
    assert client.get("/ready").status_code == 200


def test_load_uses_the_configured_model_index_and_device(
    tmp_path: Path, service: Recommender, monkeypatch
):
    seen: dict[str, Settings] = {}

    def fake_model(**kwargs):
        seen["model"] = kwargs["settings"]
        return service.classifier

    def fake_index(classifier, settings):
        seen["index"] = settings
        return service

    monkeypatch.setattr(EmotionClassifier, "from_pretrained", fake_model)
    monkeypatch.setattr(Recommender, "with_index", fake_index)
    monkeypatch.setenv("RECOMMENDER_ENGINE", "onnx")
    app = create_app({"MODEL": "some/model", "INDEX": str(tmp_path), "DEVICE": "cpu"})
    assert app.extensions[EXTENSION].wait(timeout=30)
    assert seen["model"].model == "some/model" and seen["model"].device == "cpu"
    assert seen["model"].engine == "onnx"  # from the environment
    assert seen["index"].index == str(tmp_path)


def test_synchronous_load_is_done_when_the_app_is_returned(service: Recommender, monkeypatch):
    monkeypatch.setattr(EmotionClassifier, "from_pretrained", lambda **kw: service.classifier)
    monkeypatch.setattr(Recommender, "with_index", lambda classifier, settings: service)
    app = create_app(background=False)
    assert app.extensions[EXTENSION].service is service
    assert app.test_client().get("/ready").status_code == 200


# --- configuration --------------------------------------------------------------------------


def test_config_precedence(service: Recommender, monkeypatch):
    for field in Settings.model_fields:
        monkeypatch.delenv(Settings.env_name(field), raising=False)
    app = create_app(service=service)
    assert app.config["MAX_TEXT_LENGTH"] == Settings().max_text_length == 5000
    assert app.config["MAX_TEXTS"] == Settings().max_texts

    monkeypatch.setenv("RECOMMENDER_MAX_TEXT_LENGTH", "20")
    monkeypatch.setenv("RECOMMENDER_MAX_TEXTS", "7")
    monkeypatch.setenv("RECOMMENDER_MODEL", "/env/model")
    app = create_app(service=service)
    assert (app.config["MAX_TEXT_LENGTH"], app.config["MAX_TEXTS"]) == (20, 7)
    assert app.config["MODEL"] == "/env/model"

    app = create_app({"MAX_TEXT_LENGTH": 30, "MODEL": "/config/model"}, service=service)
    assert (app.config["MAX_TEXT_LENGTH"], app.config["MAX_TEXTS"]) == (30, 7)
    assert app.config["MODEL"] == "/config/model"

    client = app.test_client()
    assert_error(
        client.post("/recommend", json={"text": "가" * 31}), 400, "invalid_input", "limit is 30"
    )
    assert client.post("/recommend", json={"text": "행복" * 15, "k": 1}).status_code == 200


def test_env_limits_apply_to_requests(service: Recommender, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_MAX_K", "5")
    monkeypatch.setenv("RECOMMENDER_DEFAULT_K", "3")
    monkeypatch.setenv("RECOMMENDER_MAX_CONTENT_LENGTH", "100")
    client = create_app(service=service).test_client()
    assert len(client.post("/recommend", json={"text": HAPPY_TEXT}).get_json()["tracks"]) == 3
    assert_error(
        client.post("/recommend", json={"text": HAPPY_TEXT, "k": 6}),
        400,
        "invalid_input",
        "from 1 to 5",
    )
    response = client.post("/recommend", json={"text": "가" * 100})
    assert_error(response, 413, "request_entity_too_large", "limit of 100 bytes")


def test_service_lives_in_app_extensions(app: Flask, service: Recommender):
    assert app.extensions[EXTENSION].service is service


def test_per_artist_null_lifts_the_cap(client: FlaskClient):
    capped = client.post("/recommend", json={"text": HAPPY_TEXT, "k": 6, "per_artist": 1})
    uncapped = client.post("/recommend", json={"text": HAPPY_TEXT, "k": 6, "per_artist": None})
    assert capped.status_code == uncapped.status_code == 200
    capped_artists = [t["artist"] for t in capped.get_json()["tracks"]]
    artists = [t["artist"] for t in uncapped.get_json()["tracks"]]
    assert len(set(capped_artists)) == len(capped_artists)
    assert len(artists) == 6 and len(artists) > len(set(artists))


@pytest.mark.parametrize(
    ("value", "reason"),
    [("abc", "valid integer"), ("-5", "greater than or equal to 1"), ("1.5", "valid integer")],
)
def test_bad_integer_setting_in_the_environment_is_named(
    service: Recommender, monkeypatch, value, reason
):
    monkeypatch.setenv("RECOMMENDER_MAX_K", value)
    message = f"^RECOMMENDER_MAX_K='{value}' is not usable: .*{reason}"
    with pytest.raises(ConfigurationError, match=message):
        create_app(service=service)


# --- declared responses ---------------------------------------------------------------------


def test_genres_lists_each_catalogue_genre_once(client: FlaskClient):
    response = client.get("/genres")
    assert response.status_code == 200
    assert response.get_json() == {"genres": sorted({"발라드", "록", "인디"})}


def test_korean_goes_out_as_utf8_in_bodies_and_errors(client: FlaskClient):
    for response in [
        client.post("/recommend", json={"text": HAPPY_TEXT, "k": 2}),
        client.post("/recommend", json={"text": HAPPY_TEXT, "target": "기쁨이"}),
    ]:
        raw = response.get_data()
        assert "\\u" not in raw.decode("utf-8")
        assert "기쁨이".encode() in raw or "기분".encode() in raw


def test_a_lone_surrogate_echoed_in_an_error_is_escaped(client: FlaskClient):
    data = '{"text": "행복", "target": "\\udc80슬픔"}'
    response = client.post("/recommend", data=data, content_type="application/json")
    body = assert_error(response, 400, "invalid_input", "'target' must be an emotion")
    assert body["error"]["message"].endswith('got "\\udc80슬픔"')
    response.get_data().decode("utf-8")  # strict UTF-8 throughout


def test_the_page_is_served_with_only_local_assets(client: FlaskClient):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<html lang="ko">' in html and 'name="viewport"' in html
    assert "http://" not in html and "https://" not in html
    for asset in ["static/app.js", "static/style.css"]:
        assert f'"{asset}"' in html
        assert client.get("/" + asset).status_code == 200
