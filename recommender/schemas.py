"""The one declaration of every request and response.

Validation, defaults, limits, error messages, the OpenAPI document and the CLI's ``--json`` output
all come from these models. Limits that operators configure (text length, number of texts, k)
are read from ``Limits`` at validation time and written into the JSON Schema the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from recommender.emotions import EMOTIONS, KOREAN_NAMES, canonical_name
from recommender.errors import InvalidInputError
from recommender.settings import Settings

EXAMPLE_TEXT = "오늘은 정말 행복한 하루였다. 친구들과 오랜만에 만나서 많이 웃었다."
EXAMPLE_DAY = "아침엔 면접 때문에 떨렸는데, 합격 연락 받고 날아갈 것 같았다."
SHOWN_CHARACTERS = 60  # a value echoed in an error message is cut after this many characters


def _setting(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: the HTTP limits of the settings (their defaults unless an
    app passes the ones it was configured with)."""

    max_text_length: int = _setting("max_text_length")
    max_texts: int = _setting("max_texts")
    max_k: int = _setting("max_k")
    default_k: int = _setting("default_k")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_text_length=settings.max_text_length,
            max_texts=settings.max_texts,
            max_k=settings.max_k,
            default_k=settings.default_k,
        )


def _limits(info: ValidationInfo) -> Limits:
    context = info.context if isinstance(info.context, Mapping) else {}
    limits = context.get("limits")
    return limits if isinstance(limits, Limits) else Limits()


@dataclass(frozen=True)
class Limit:
    """A bound taken from ``Limits`` when validating, and written into the JSON Schema.

    ``keyword`` is the JSON Schema keyword it fills (maximum, maxLength, maxItems, default).
    """

    keyword: Literal["maximum", "maxLength", "maxItems", "default"]
    setting: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-limits", {})[self.keyword] = self.setting
        return json_schema

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        limit = getattr(_limits(info), self.setting)
        if self.keyword == "maximum" and value > limit:
            raise PydanticCustomError("out_of_range", "out of range")
        if self.keyword == "maxLength" and len(value) > limit:
            raise PydanticCustomError(
                "limit",
                "is {size} characters; the limit is {limit}",
                {"size": len(value), "limit": limit},
            )
        if self.keyword == "maxItems" and len(value) > limit:
            raise PydanticCustomError(
                "limit",
                "has {size} items; the limit is {limit}",
                {"size": len(value), "limit": limit},
            )
        return value


def _check_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON "\ud800" decodes to a lone surrogate
        raise PydanticCustomError(
            "unicode", "is not valid Unicode: it contains a lone surrogate"
        ) from None
    return text


def _check_text(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("empty", "is empty; write a few words about your day")
    return _check_unicode(text)


def _check_years(model: Any) -> Any:
    """``year_min`` after ``year_max`` would match nothing: a mistake, not an empty answer."""
    low, high = model.year_min, model.year_max
    if low is not None and high is not None and low > high:
        raise PydanticCustomError(
            "year_order", "year_min is greater than year_max", {"low": low, "high": high}
        )
    return model


def _check_emotion(name: str) -> str:
    emotion = canonical_name(name)
    if emotion is None:
        raise PydanticCustomError("emotion", "not an emotion")
    return emotion


Text = Annotated[
    str,
    AfterValidator(_check_text),
    Limit("maxLength", "max_text_length"),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": r"\S",
            "x-limits": {"maxLength": "max_text_length"},
            "description": "Korean text, not only spaces",
        }
    ),
]
EMOTION_NAMES = [*EMOTIONS, *(KOREAN_NAMES[e] for e in EMOTIONS)]
# Requests name an emotion in English or Korean; responses always use the English name.
EmotionName = Annotated[
    str,
    AfterValidator(_check_emotion),
    WithJsonSchema(
        {
            "type": "string",
            "enum": EMOTION_NAMES,
            "description": "An emotion, in English or Korean (분노, 불안, 당황, 행복, 상처, 슬픔)",
        }
    ),
]
Emotion = Literal["angry", "anxious", "embarrassed", "happy", "heartache", "sad"]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]
Year = Annotated[float, Field(ge=0, le=9999, allow_inf_nan=False)]
Focus = Literal["whole", "end"]
Detail = Literal["sentences"]
# Every string a request carries is checked for lone surrogates, as text is.
UnicodeString = Annotated[str, AfterValidator(_check_unicode)]
FilterScalar = UnicodeString | int | float
FilterValue = FilterScalar | Annotated[list[FilterScalar], Field(min_length=1)]


class Schema(BaseModel):
    """A request or options model: strict JSON types (``parse`` turns errors into words)."""

    model_config = ConfigDict(strict=True, frozen=True)


class Body(BaseModel):
    """A response model."""

    model_config = ConfigDict(frozen=True)


# --- requests -------------------------------------------------------------------------------


class Filters(Schema):
    """Which tracks may be recommended; any other catalogue column filters by equality."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"genre": ["발라드", "포크"], "year_min": 1990}]},
    )
    __pydantic_extra__: dict[str, FilterValue]  # type: ignore[assignment]

    genre: FilterValue | None = Field(
        None, description="A genre or a list of genres (case-insensitive)"
    )
    year_min: Year | None = Field(None, description="Only tracks from this year on")
    year_max: Year | None = Field(None, description="Only tracks up to this year")
    exclude_track_ids: list[UnicodeString] | None = Field(
        None, description="Tracks never to recommend"
    )

    _check_years = model_validator(mode="after")(_check_years)

    def active(self) -> dict[str, Any]:
        """Every filter that is set, declared or a catalogue column, by name."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class RankingOptions(Schema):
    """How candidates become the final list. ``diversity`` 0 ranks by similarity alone."""

    k: Count = 10
    per_artist: Count | None = 2
    diversity: Fraction = 0.0
    filters: Filters = Field(default_factory=Filters)
    overfetch: Count = 5


def _default_k(cls: type[BaseModel], data: Any, info: ValidationInfo) -> Any:
    """A request's ``k`` defaults to the configured ``default_k`` (a ``before`` validator)."""
    if isinstance(data, Mapping) and "k" not in data:
        return {**data, "k": _limits(info).default_k}
    return data


PerArtist = Annotated[Count, Limit("maximum", "max_k")] | None
PER_ARTIST = "At most this many tracks by one artist; null for no cap"
K = Annotated[Count, Limit("maximum", "max_k"), Limit("default", "default_k")]


class RecommendRequest(Schema):
    """``POST /recommend``: one text and how to choose its tracks."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"text": EXAMPLE_TEXT, "k": 5},
                {
                    "text": "내일 면접인데 잠이 안 온다.",
                    "k": 5,
                    "target": "happy",
                    "shift_strength": 0.5,
                    "filters": {"genre": ["발라드", "포크"], "year_min": 1920},
                    "per_artist": 2,
                    "diversity": 0.2,
                },
                {"text": EXAMPLE_DAY, "k": 5, "detail": "sentences", "focus": "end"},
            ]
        }
    )

    text: Text = Field(description="A few lines about the day, in Korean")
    k: K = Field(10, description="How many tracks")
    target: EmotionName | None = Field(
        None, description="Shift the mood towards this emotion before matching"
    )
    shift_strength: Fraction = Field(
        0.5, description="How far towards the target: 0 keeps the mood, 1 is the target alone"
    )
    filters: Filters | None = None
    per_artist: PerArtist = Field(2, description=PER_ARTIST)
    diversity: Fraction = Field(
        0.0, description="0 ranks by similarity alone; up to 1 trades it for varied emotions"
    )

    detail: Detail | None = Field(
        None, description='"sentences" also reads each sentence and names the dominant ones'
    )
    focus: Focus = Field(
        "whole",
        description='"whole" reads the text at once; "end" weighs the last sentences most '
        "(where the writer is now)",
    )

    _default_k = model_validator(mode="before")(_default_k)

    def ranking_options(self) -> RankingOptions:
        return RankingOptions(
            k=self.k,
            per_artist=self.per_artist,
            diversity=self.diversity,
            filters=self.filters or Filters(),
        )


class ClassifyRequest(Schema):
    """``POST /classify``: texts to read."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"texts": [EXAMPLE_TEXT, "내일 시험이 걱정된다"]}]}
    )

    texts: Annotated[list[Text], Field(min_length=1), Limit("maxItems", "max_texts")]
    detail: Detail | None = Field(
        None, description='"sentences" also reads each sentence and names the dominant ones'
    )


class PlaylistRequest(Schema):
    """``POST /playlist``: start at the text's mood and move step by step to ``target``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"text": "내일 면접인데 잠이 안 온다.", "target": "happy", "n": 8},
                {
                    "text": "비가 와서 마음이 슬프다.",
                    "n": 12,
                    "filters": {"genre": ["발라드", "포크"]},
                    "per_artist": 1,
                },
            ]
        }
    )

    text: Text = Field(description="A few lines about the day, in Korean")
    target: EmotionName | None = Field(
        None,
        description="The mood to end at; without it a mood other than happy is lifted halfway "
        "towards happy, and a happy mood stays",
    )
    n: Annotated[int, Field(ge=3, le=50)] = Field(12, description="How many tracks (steps)")
    filters: Filters | None = None
    per_artist: PerArtist = Field(2, description=PER_ARTIST)


class SimilarQuery(Schema):
    """``GET /tracks/{track_id}/similar``: the query string (numbers as query text)."""

    model_config = ConfigDict(strict=False)

    k: K = Field(10, description="How many tracks")
    per_artist: Annotated[Count, Limit("maximum", "max_k")] = Field(
        2, description="At most this many tracks by one artist"
    )
    genre: UnicodeString | Annotated[list[UnicodeString], Field(min_length=1)] | None = Field(
        None, description="A genre; repeat for several (?genre=발라드&genre=포크)"
    )
    year_min: Year | None = Field(None, description="Only tracks from this year on")
    year_max: Year | None = Field(None, description="Only tracks up to this year")

    _default_k = model_validator(mode="before")(_default_k)
    _check_years = model_validator(mode="after")(_check_years)

    def ranking_options(self) -> RankingOptions:
        filters = Filters.model_validate(self.model_dump(include={"genre", "year_min", "year_max"}))
        return RankingOptions(k=self.k, per_artist=self.per_artist, filters=filters)


# --- responses ------------------------------------------------------------------------------


class Emotions(Body):
    """A probability for each of the six emotions, summing to 1."""

    angry: float = Field(description="분노")
    anxious: float = Field(description="불안")
    embarrassed: float = Field(description="당황")
    happy: float = Field(description="행복")
    heartache: float = Field(description="상처")
    sad: float = Field(description="슬픔")


class Track(Body):
    """One recommended track; the catalogue's other columns (album, genre, year …) ride along."""

    model_config = ConfigDict(extra="allow")

    track_id: str
    title: str
    artist: str
    score: float = Field(description="Bhattacharyya coefficient of the two emotion readings")
    emotions: Emotions
    explanation: str = Field(description="Why this track, in Korean")


class TrackDetail(Body):
    """One catalogue track and its emotions; the catalogue's other columns ride along."""

    model_config = ConfigDict(extra="allow")

    track_id: str
    title: str
    artist: str
    emotions: Emotions


class SentenceReading(Body):
    """One sentence of a text and how it reads."""

    text: str
    start: int = Field(description="Offset of its first character, in Unicode code points")
    end: int = Field(description="Offset just past its last character (code points)")
    emotions: Emotions
    weight: float = Field(
        description="How much it counts: its part of the characters (whole), or halving per "
        "sentence back from the last (end)"
    )
    share: float = Field(description="Its part of the reading: weight times agreement, to 1")


SENTENCES = "Each sentence, in order (with detail: sentences)"
DOMINANT = "Indexes of the fewest sentences holding half the reading, in order"


class RecommendResponse(Body):
    emotions: Emotions = Field(description="The text's reading (weighted by focus)")
    tracks: list[Track] = Field(description="Best match first")
    target: Emotion | None = Field(None, description="Present when the mood was shifted")
    focus: Focus | None = Field(None, description="Present when not whole")
    sentences: list[SentenceReading] | None = Field(None, description=SENTENCES)
    dominant: list[int] | None = Field(None, description=DOMINANT)


class SimilarResponse(Body):
    track: TrackDetail = Field(description="The song asked about")
    tracks: list[Track] = Field(description="The nearest by emotion, best first")


class PlaylistTrack(Track):
    """A track of a playlist and the step it stands on."""

    step: int = Field(description="1 for the first track")
    goal: Emotions = Field(description="The mood this step aims at")
    distance: float = Field(description="Hellinger distance from the goal (0 = exactly it)")


class PlaylistResponse(Body):
    emotions: Emotions = Field(description="The text's reading: where the playlist starts")
    target: Emotion = Field(description="The emotion the playlist moves towards")
    mode: Literal["target", "lift", "stay"] = Field(
        description="target: to the target itself; lift: halfway to happy; stay: kept as it is"
    )
    end: Emotions = Field(description="The mood of the last step")
    tracks: list[PlaylistTrack] = Field(
        description="In order; fewer than n when the filters leave fewer"
    )


class ClassifyResult(Body):
    emotions: Emotions
    sentences: list[SentenceReading] | None = Field(None, description=SENTENCES)
    dominant: list[int] | None = Field(None, description=DOMINANT)


class ClassifyResponse(Body):
    results: list[ClassifyResult] = Field(description="One per text, in order")


class TextReading(Body):
    """The CLI's ``classify --json`` line: the text and its ``/classify`` result."""

    text: str
    emotions: Emotions
    sentences: list[SentenceReading] | None = None
    dominant: list[int] | None = None


class Genres(Body):
    genres: list[str] = Field(description="The catalogue's genres, sorted")


class Health(Body):
    status: Literal["ok"]


class Ready(Body):
    status: Literal["ready"]
    model: str
    model_fingerprint: str
    checkpoint_fingerprint: str
    tracks: int
    index_manifest: str | None = Field(
        default=None, description="sha256 of the serving index's manifest (changes on a swap)"
    )


class ErrorDetail(Body):
    code: str = Field(description="Stable, machine-readable")
    message: str = Field(description="What was wrong and what would be valid")
    request_id: str | None = Field(
        default=None, description="The request's X-Request-ID, also in the server's log"
    )


class ErrorBody(Body):
    error: ErrorDetail


def emotions(mapping: Mapping[str, float]) -> Emotions:
    return Emotions(**mapping)


def to_json(body: BaseModel) -> str:
    """A response as the API sends it: UTF-8 text, absent optional fields left out."""
    return body.model_dump_json(exclude_none=True)


# --- parsing and messages -------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, limits: Limits | None = None) -> M:
    """``data`` validated into ``model``, or InvalidInputError naming each bad field."""
    try:
        return model.model_validate(data, context={"limits": limits or Limits()})
    except ValidationError as error:
        raise InvalidInputError(describe(error, model, limits)) from None


def json_schema(
    model: type[BaseModel],
    limits: Limits | None = None,
    mode: Literal["validation", "serialization"] = "validation",
) -> dict[str, Any]:
    """The model's JSON Schema with the configured limits written in."""
    return resolve_limits(_raw_schema(model, mode), limits or Limits())


@functools.cache
def _raw_schema(model: type[BaseModel], mode: str) -> dict[str, Any]:
    return model.model_json_schema(mode=mode)  # type: ignore[arg-type]


def resolve_limits(schema: Any, limits: Limits) -> Any:
    """A copy of ``schema`` with every ``x-limits`` marker replaced by the limit's value."""
    if isinstance(schema, list):
        return [resolve_limits(item, limits) for item in schema]
    if not isinstance(schema, dict):
        return schema
    resolved = {key: resolve_limits(value, limits) for key, value in schema.items()}
    for keyword, setting in resolved.pop("x-limits", {}).items():
        resolved[keyword] = getattr(limits, setting)
    return resolved


OWN_CHECKS = {"empty", "unicode", "limit"}


def describe(error: ValidationError, model: type[BaseModel], limits: Limits | None = None) -> str:
    """Each failed field by its path, what it must be (read from the schema) and what came."""
    schema = json_schema(model, limits)
    messages: dict[str, str] = {}
    # A field's own check (a lone surrogate in one member of a union) says more than the
    # other members' type errors, so it comes first.
    items = sorted(error.errors(include_url=False), key=lambda i: i["type"] not in OWN_CHECKS)
    for item in items:
        path, node = _field(schema, item["loc"])
        if path in messages:
            continue  # one message per field, even when several union members failed
        name = f"{path!r}" if path else "request body"
        kind = item["type"]
        if kind == "missing":
            messages[path] = f"missing field {path!r}"
        elif kind in OWN_CHECKS:
            messages[path] = f"{name} {item['msg']}"
        elif kind == "year_order":
            low, high = (f"{path}.{field}" if path else field for field in ("year_min", "year_max"))
            ctx = item.get("ctx", {})
            messages[path] = (
                f"{low!r} ({_number(ctx['low'])}) is greater than {high!r} "
                f"({_number(ctx['high'])}); no track could match"
            )
        else:
            messages[path] = (
                f"{name} must be {_expected(node, schema)}; got {_shown(item['input'])}"
            )
    shown = list(messages.values())
    more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
    return "; ".join(shown[:3]) + more


def _field(schema: dict[str, Any], loc: tuple[int | str, ...]) -> tuple[str, dict[str, Any]]:
    """The deepest schema node ``loc`` reaches, and its path (``filters.genre``, ``texts[1]``).

    Pydantic adds a union member's name to ``loc``; such steps match no property and end the
    walk, so the message describes the whole field.
    """
    node = _resolve(schema, schema)
    path = ""
    for step in loc:
        node = _nonnull(_resolve(node, schema), schema)
        if isinstance(step, int) and node.get("type") == "array":
            node, path = node.get("items", {}), f"{path}[{step}]"
        elif isinstance(step, str) and step in node.get("properties", {}):
            node, path = node["properties"][step], f"{path}.{step}" if path else step
        elif isinstance(step, str) and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
            path = f"{path}.{step}" if path else step
        else:
            break
    return path, _resolve(node, schema)


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {
            **schema["$defs"][ref.removeprefix("#/$defs/")],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def _nonnull(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The one non-null alternative of a nullable field, to step into it."""
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    return _resolve(options[0], schema) if len(options) == 1 else node


def _expected(node: dict[str, Any], schema: dict[str, Any]) -> str:
    """A JSON Schema node in words: "an integer from 1 to 100 or null"."""
    node = _resolve(node, schema)
    if "anyOf" in node:
        words = [_expected(option, schema) for option in node["anyOf"]]
        if "a number" in words and "an integer" in words:
            words.remove("an integer")
        return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
    if node.get("enum") == EMOTION_NAMES:
        return f"an emotion ({', '.join(EMOTIONS)}) or its Korean name"
    if "enum" in node:
        return "one of " + ", ".join(map(str, node["enum"]))
    if "const" in node:
        return json.dumps(node["const"], ensure_ascii=False)
    kind = node.get("type")
    if kind in ("integer", "number"):
        low, high = node.get("minimum"), node.get("maximum")
        noun = "an integer" if kind == "integer" else "a number"
        if low is not None and high is not None:
            return f"{noun} from {_number(low)} to {_number(high)}"
        if low is not None:
            return f"{noun} of at least {_number(low)}"
        return noun
    if kind == "string":
        return "a string"
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        items = _expected(node.get("items", {}), schema)
        if node.get("minItems") and node.get("maxItems"):
            return f"an array of {node['minItems']} to {node['maxItems']} items, each {items}"
        if node.get("minItems"):
            return f"a non-empty array, each item {items}"
        return f"an array, each item {items}"
    if kind == "object":
        return "a JSON object"
    return "a JSON value" if not node else "valid"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(value: Any) -> str:
    """A request value as the client wrote it (JSON), short, and printable as UTF-8."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > SHOWN_CHARACTERS:
        text = text[:SHOWN_CHARACTERS] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
