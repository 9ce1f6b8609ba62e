from __future__ import annotations

import math

import pytest

from recommender.errors import InvalidInputError
from recommender.schemas import (
    SHOWN_CHARACTERS,
    ClassifyRequest,
    Filters,
    Limits,
    RankingOptions,
    RecommendRequest,
    SimilarQuery,
    json_schema,
    parse,
)

TEXT = "오늘은 정말 행복한 하루였다"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, "'k' must be an integer of at least 1; got 0$"),
        ({"k": -3}, "'k' must be an integer of at least 1; got -3$"),
        ({"k": 2.0}, "'k' must be an integer of at least 1; got 2.0$"),
        ({"k": "5"}, "'k' must be an integer of at least 1; got \"5\"$"),
        ({"k": True}, "'k' must be an integer of at least 1; got true$"),
        ({"per_artist": 0}, "'per_artist' must be an integer of at least 1 or null; got 0$"),
        ({"per_artist": 1.5}, "'per_artist' must be an integer of at least 1 or null; got 1.5$"),
        ({"per_artist": False}, "'per_artist' must be an integer of at least 1 or null; got false"),
        ({"diversity": -0.1}, "'diversity' must be a number from 0 to 1; got -0.1$"),
        ({"diversity": 1.01}, "'diversity' must be a number from 0 to 1; got 1.01$"),
        ({"diversity": "0.5"}, "'diversity' must be a number from 0 to 1; got \"0.5\"$"),
        ({"diversity": True}, "'diversity' must be a number from 0 to 1; got true$"),
        ({"diversity": math.nan}, "'diversity' must be a number from 0 to 1; got NaN$"),
        ({"diversity": math.inf}, "'diversity' must be a number from 0 to 1; got Infinity$"),
        ({"filters": ["genre"]}, r"'filters' must be a JSON object; got \[\"genre\"\]$"),
        ({"filters": "genre=rock"}, "'filters' must be a JSON object; got \"genre=rock\"$"),
        ({"filters": {"genre": []}}, "'filters.genre' must be a string, a number, a non-empty"),
        ({"filters": {"genre": {"is": "rock"}}}, "'filters.genre' must be a string, a number"),
        ({"filters": {"genre": ["rock", ["jazz"]]}}, "'filters.genre' must be a string"),
        ({"filters": {"year_min": "1990"}}, "'filters.year_min' must be a number from 0 to 9999"),
        ({"filters": {"year_max": True}}, "'filters.year_max' must be a number from 0 to 9999"),
        ({"filters": {"year_min": 10**309}}, "'filters.year_min' must be a number from 0 to 9999"),
        ({"filters": {"exclude_track_ids": "t1"}}, "'filters.exclude_track_ids' must be an array"),
        ({"filters": {"exclude_track_ids": [1]}}, r"'filters.exclude_track_ids\[0\]' must be a st"),
        ({"filters": {"language": None}}, "'filters.language' must be a string, a number or a"),
    ],
)
def test_ranking_options_name_the_bad_field(options, message):
    with pytest.raises(InvalidInputError, match=message):
        parse(RankingOptions, options)


def test_ranking_options_defaults_and_filters():
    options = parse(RankingOptions, {"filters": {"genre": "록", "language": ["ko", "en"]}})
    assert (options.k, options.per_artist, options.diversity, options.overfetch) == (10, 2, 0, 5)
    assert options.filters.active() == {"genre": "록", "language": ["ko", "en"]}
    assert Filters().active() == {}
    # A null filter means no filter on that column.
    assert parse(Filters, {"genre": None, "year_min": 1990}).active() == {"year_min": 1990}


def test_every_bad_field_is_named_at_once():
    with pytest.raises(InvalidInputError) as caught:
        parse(RecommendRequest, {"text": "", "k": 0, "diversity": 2, "per_artist": "x"})
    message = str(caught.value)
    assert message.startswith("'text' is empty; write a few words about your day; 'k' must be")
    assert message.endswith("(and 1 more)")


def test_echoed_values_are_short_and_utf8():
    long_text = "가" * 200
    with pytest.raises(InvalidInputError) as caught:
        parse(RecommendRequest, {"text": TEXT, "target": long_text})
    shown = str(caught.value).split("got ", 1)[1]
    assert shown == '"' + "가" * (SHOWN_CHARACTERS - 1) + "…"
    with pytest.raises(InvalidInputError) as caught:
        parse(RecommendRequest, {"text": TEXT, "target": "\ud800슬픔"})
    message = str(caught.value)
    assert message.endswith('got "\\ud800슬픔"')
    message.encode("utf-8")  # printable: no lone surrogate left


def test_limits_come_from_the_context_and_the_schema_says_them():
    limits = Limits(max_text_length=10, max_texts=2, max_k=7, default_k=3)
    assert parse(RecommendRequest, {"text": "행복"}, limits).k == 3
    assert parse(RecommendRequest, {"text": TEXT}).k == 10
    with pytest.raises(InvalidInputError, match="'k' must be an integer from 1 to 7; got 8$"):
        parse(RecommendRequest, {"text": "행복", "k": 8}, limits)
    with pytest.raises(InvalidInputError, match="'text' is 11 characters; the limit is 10$"):
        parse(RecommendRequest, {"text": "가" * 11}, limits)
    with pytest.raises(InvalidInputError, match="'texts' has 3 items; the limit is 2$"):
        parse(ClassifyRequest, {"texts": ["a", "b", "c"]}, limits)
    schema = json_schema(RecommendRequest, limits)
    text, k = schema["properties"]["text"], schema["properties"]["k"]
    assert (text["maxLength"], text["minLength"], k["maximum"], k["default"]) == (10, 1, 7, 3)
    assert "x-limits" not in str(schema)
    texts = json_schema(ClassifyRequest, limits)["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"], texts["items"]["maxLength"]) == (1, 2, 10)


@pytest.mark.parametrize(
    ("name", "emotion"), [("슬픔", "sad"), ("HAPPY", "happy"), ("분노", "angry")]
)
def test_target_accepts_korean_and_english_names(name, emotion):
    assert parse(RecommendRequest, {"text": TEXT, "target": name}).target == emotion


def test_request_converts_to_ranking_options():
    request = parse(
        RecommendRequest,
        {"text": TEXT, "k": 4, "per_artist": None, "diversity": 0.5, "filters": {"genre": "록"}},
    )
    options = request.ranking_options()
    assert (options.k, options.per_artist, options.diversity) == (4, None, 0.5)
    assert options.filters.active() == {"genre": "록"}
    assert parse(RecommendRequest, {"text": TEXT, "filters": None}).ranking_options().filters == (
        Filters()
    )


def test_similar_query_checks_its_strings_and_years_like_the_body():
    with pytest.raises(InvalidInputError, match="'genre' is not valid Unicode"):
        parse(SimilarQuery, {"genre": ["록", "\ud800"]})
    with pytest.raises(InvalidInputError, match="'year_min' .1990.5. is greater than 'year_max'"):
        parse(SimilarQuery, {"year_min": "1990.5", "year_max": "1990"})
