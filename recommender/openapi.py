"""The OpenAPI 3.1 document: pydantic's JSON Schema of each model plus a table of operations."""

from __future__ import annotations

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
    Ready,
    RecommendRequest,
    RecommendResponse,
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
    503: ("not_ready", "the model and index are still loading; retry shortly"),
}
ERROR_MEANINGS = {
    400: "A field is missing or invalid; the message names it by its path",
    413: "The body is over the configured size",
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


BODY_ERRORS = (400, 413, 415, 503)
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
        "/classify",
        "classify",
        "The six emotions read in each text",
        ClassifyResponse,
        {"results": [{"emotions": EXAMPLE_EMOTIONS}]},
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
            "model": "bundled:onnx-int8",
            "model_fingerprint": "3f2a…",
            "checkpoint_fingerprint": "9c1d…",
            "tracks": 361,
        },
        errors=(503,),
    ),
)


def _version() -> str:
    try:
        return version("recommender")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


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
                'Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.'
            ),
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
    return resolve_limits(document, limits or Limits())  # type: ignore[no-any-return]
