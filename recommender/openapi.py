"""The OpenAPI 3.1 document: pydantic's JSON Schema of each model plus a table of operations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from recommender.schemas import (
    EXAMPLE_TEXT,
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    Genres,
    Health,
    Limits,
    PlaylistRequest,
    PlaylistResponse,
    Ready,
    RecommendRequest,
    RecommendResponse,
    SimilarQuery,
    SimilarResponse,
    TrackDetail,
    resolve_limits,
)

EXAMPLE_EMOTIONS = {
    "angry": 0.01,
    "anxious": 0.02,
    "embarrassed": 0.03,
    "happy": 0.9,
    "heartache": 0.01,
    "sad": 0.03,
}
ERROR_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("invalid_input", "'text' is empty; write a few words about your day"),
    413: ("request_entity_too_large", "request body over the limit of 65536 bytes"),
    415: (
        "unsupported_media_type",
        "send JSON with content-type application/json; got 'text/plain'",
    ),
    404: ("track_not_found", "no track with id 'orig-999' in the index"),
    503: ("not_ready", "the model and index are still loading; retry shortly"),
}
ERROR_MEANINGS = {
    400: "A field is missing or invalid; the message names it by its path",
    404: "No track with this id",
    413: "The body is over the configured size (or, on /classify, the texts hold more "
    "characters in all than one request may: code too_much_work)",
    415: "The body is not sent as application/json",
    503: "The model and index are still loading (or failed to load)",
}


@dataclass(frozen=True)
class Operation:
    """One path and method: its models, the errors it can answer and an example answer."""

    method: Literal["get", "post"]
    path: str
    operation_id: str
    summary: str
    response: type[BaseModel]
    example: dict[str, Any]
    request: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None  # the query string's parameters


BODY_ERRORS = (400, 413, 415, 503)
EXAMPLE_TRACK = {
    "track_id": "orig-012",
    "title": "봄날의 산책",
    "artist": "김하늘",
    "emotions": EXAMPLE_EMOTIONS,
    "genre": "포크",
    "year": 2023,
}
SAD = {"angry": 0.02, "anxious": 0.05, "embarrassed": 0.02, "happy": 0.03, "heartache": 0.08}
EXAMPLE_SAD = {**SAD, "sad": 0.8}
EXAMPLE_SENTENCES = [
    {
        "text": "아침엔 면접 때문에 떨렸는데,",
        "start": 0,
        "end": 16,
        "emotions": {**EXAMPLE_EMOTIONS, "anxious": 0.85, "happy": 0.07},
        "weight": 0.3333,
        "share": 0.21,
    },
    {
        "text": "합격 연락 받고 날아갈 것 같았다.",
        "start": 17,
        "end": 35,
        "emotions": EXAMPLE_EMOTIONS,
        "weight": 0.6667,
        "share": 0.79,
    },
]
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/recommend",
        "recommend",
        "Songs whose lyrics match the emotion of a diary text (or a mood it is shifted to)",
        RecommendResponse,
        {
            "emotions": EXAMPLE_EMOTIONS,
            "tracks": [
                {
                    "track_id": "orig-012",
                    "title": "봄날의 산책",
                    "artist": "김하늘",
                    "score": 0.9712,
                    "emotions": EXAMPLE_EMOTIONS,
                    "explanation": "지금 기분에 어울려요: 글은 행복 90%, 이 노래는 행복 88%",
                    "genre": "포크",
                    "year": 2023,
                }
            ],
        },
        RecommendRequest,
        BODY_ERRORS,
    ),
    Operation(
        "post",
        "/playlist",
        "playlist",
        "A playlist that starts at the text's mood and moves step by step to a target mood",
        PlaylistResponse,
        {
            "emotions": EXAMPLE_SAD,
            "target": "happy",
            "mode": "target",
            "end": {**{e: 0.0 for e in EXAMPLE_EMOTIONS}, "happy": 1.0},
            "tracks": [
                {
                    **{k: v for k, v in EXAMPLE_TRACK.items() if k != "emotions"},
                    "score": 0.97,
                    "emotions": EXAMPLE_SAD,
                    "explanation": "1/8단계: 목표는 슬픔 80%, 이 노래는 슬픔 80%",
                    "step": 1,
                    "goal": EXAMPLE_SAD,
                    "distance": 0.17,
                }
            ],
        },
        PlaylistRequest,
        BODY_ERRORS,
    ),
    Operation(
        "get",
        "/tracks/{track_id}",
        "track",
        "One track of the catalogue: its metadata and emotions",
        TrackDetail,
        EXAMPLE_TRACK,
        errors=(404, 503),
    ),
    Operation(
        "get",
        "/tracks/{track_id}/similar",
        "similarTracks",
        "The tracks whose emotions are nearest a track's (the track itself left out)",
        SimilarResponse,
        {
            "track": EXAMPLE_TRACK,
            "tracks": [
                {
                    "track_id": "heritage-087",
                    "title": "모란이 피기까지는",
                    "artist": "김영랑",
                    "score": 0.98,
                    "emotions": EXAMPLE_EMOTIONS,
                    "explanation": "이 노래와 감정이 닮았어요: 원곡은 행복 90%, 이 노래는 행복 87%",
                }
            ],
        },
        errors=(400, 404, 503),
        query=SimilarQuery,
    ),
    Operation(
        "post",
        "/classify",
        "classify",
        "The six emotions read in each text",
        ClassifyResponse,
        {
            "results": [
                {
                    "emotions": EXAMPLE_EMOTIONS,
                    "sentences": EXAMPLE_SENTENCES,
                    "dominant": [1],
                }
            ]
        },
        ClassifyRequest,
        BODY_ERRORS,
    ),
    Operation(
        "get",
        "/genres",
        "genres",
        "The genres a recommendation can be filtered by",
        Genres,
        {"genres": ["발라드", "민요", "포크"]},
        errors=(503,),
    ),
    Operation("get", "/health", "health", "The process is up", Health, {"status": "ok"}),
    Operation(
        "get",
        "/ready",
        "ready",
        "The model and index are loaded",
        Ready,
        {
            "status": "ready",
            "model": "bundled/onnx-int8",
            "model_fingerprint": "3f2a…",
            "checkpoint_fingerprint": "9c1d…",
            "tracks": 361,
            "index_manifest": "c19e9c00…",
        },
        errors=(503,),
    ),
)


def _version() -> str:
    try:
        return version("recommender")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "As in the catalogue; may hold '/' (one ending in '/similar' reads "
            "as the similar-songs path)",
            "example": "orig-012",
        }
        for name in re.findall(r"{(\w+)}", path)
    ]


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    """The model's fields as query parameters (a list-valued one is repeated: ?genre=a&genre=b)."""
    if model is None:
        return []
    schema = model.model_json_schema()
    return [
        {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", []),
            "schema": {k: v for k, v in field.items() if k not in ("description", "title")},
            "description": field.get("description", ""),
            "explode": True,
        }
        for name, field in schema["properties"].items()
    ]


def openapi_document(limits: Limits | None = None) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document, with the configured limits written in."""
    models = [(op.request, "validation") for op in OPERATIONS if op.request is not None]
    models += [(op.response, "serialization") for op in OPERATIONS]
    models.append((ErrorBody, "serialization"))
    refs, definitions = models_json_schema(
        models,  # type: ignore[arg-type]
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": refs[(op.response, "serialization")],
                        "example": op.example,
                    }
                },
            }
        }
        for status in op.errors:
            code, message = ERROR_EXAMPLES[status]
            responses[str(status)] = {
                "description": ERROR_MEANINGS[status],
                "content": {
                    "application/json": {
                        "schema": refs[(ErrorBody, "serialization")],
                        "example": {"error": {"code": code, "message": message}},
                    }
                },
            }
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "responses": responses,
        }
        parameters = _path_parameters(op.path) + _query_parameters(op.query)
        if parameters:
            operation["parameters"] = parameters
        if op.request is not None:
            schema = refs[(op.request, "validation")]
            examples = op.request.model_json_schema().get("examples", [])
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": schema,
                        "examples": {
                            f"example{i + 1}": {"value": value} for i, value in enumerate(examples)
                        },
                    }
                },
            }
        paths.setdefault(op.path, {})[op.method] = operation
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "recommender",
            "version": _version(),
            "summary": "한국어 일기 글의 감정을 읽고 어울리는 노래를 추천합니다",
            "description": (
                "Reads the emotion in Korean diary text (angry, anxious, embarrassed, happy, "
                "heartache, sad) and recommends songs whose lyrics carry a matching emotion, "
                f"or one shifted towards a chosen mood. Example text: {EXAMPLE_TEXT}\n\n"
                'Every error is JSON: `{"error": {"code": "...", "message": "...", '
                '"request_id": "..."}}`; the request id (the client\'s `X-Request-ID` when it '
                "is a plain token, else a new one) is also in the `X-Request-ID` header."
            ),
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
    return resolve_limits(document, limits or Limits())  # type: ignore[no-any-return]
