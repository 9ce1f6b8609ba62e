"""HTTP API: a thin Flask shell over one Recommender. Every error is JSON with a stable shape."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

from recommender.errors import InvalidInputError, RecommenderError
from recommender.service import Recommender

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "MODEL": None,  # None: RECOMMENDER_MODEL, else the bundled model
    "INDEX": None,  # None: RECOMMENDER_INDEX, else the sample catalogue's index
    "DEVICE": None,
    "ENGINE": None,  # None: RECOMMENDER_ENGINE, else onnx for an ONNX export dir, else torch
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_TEXT_LENGTH": 5000,
    "MAX_TEXTS": 64,
    "MAX_K": 100,
    "DEFAULT_K": 10,
}
INT_SETTINGS = {"MAX_CONTENT_LENGTH", "MAX_TEXT_LENGTH", "MAX_TEXTS", "MAX_K", "DEFAULT_K"}
EXTENSION = "recommender"

bp = Blueprint("recommender", __name__)


class ServiceSlot:
    """Holds the service once loaded; loading runs in a thread so /health answers at once."""

    def __init__(self, loader: Callable[[], Recommender] | None, service: Recommender | None):
        self.service = service
        self.error: str | None = None
        self._ready = threading.Event()
        if service is not None:
            self._ready.set()
        elif loader is not None:
            threading.Thread(target=self._load, args=(loader,), daemon=True).start()

    def _load(self, loader: Callable[[], Recommender]) -> None:
        try:
            self.service = loader()
        except RecommenderError as error:
            self.error = str(error)
            log.error("service failed to load: %s", error)
        except Exception as error:  # keep the process up and report it on /ready
            self.error = f"{type(error).__name__}: {error}"
            log.exception("service failed to load")
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)


class ApiError(RecommenderError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _settings_from_env() -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for key in DEFAULTS:
        value = os.environ.get(f"RECOMMENDER_{key}")
        if not value:
            continue
        if key in INT_SETTINGS and not value.isdigit():
            raise InvalidInputError(f"RECOMMENDER_{key} must be a whole number; got {value!r}")
        settings[key] = int(value) if key in INT_SETTINGS else value
    return settings


def create_app(
    config: Mapping[str, Any] | None = None, *, service: Recommender | None = None
) -> Flask:
    """Defaults, then ``RECOMMENDER_*`` environment variables, then ``config``.

    Without ``service`` the model and index load in a background thread (``/ready`` is 503
    until then), so under gunicorn each worker loads its own copy after the fork.
    """
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(_settings_from_env())
    app.config.update(config or {})
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def load() -> Recommender:
        return Recommender.load(
            app.config["MODEL"],
            app.config["INDEX"],
            device=app.config["DEVICE"],
            engine=app.config["ENGINE"],
        )

    app.extensions[EXTENSION] = ServiceSlot(None if service else load, service)
    app.register_blueprint(bp)
    app.register_error_handler(RecommenderError, _recommender_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def error_body(status: int, code: str, message: str) -> tuple[Any, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def _recommender_error(error: RecommenderError) -> tuple[Any, int]:
    return error_body(error.status, error.code, str(error))


def _http_error(error: HTTPException) -> tuple[Any, int]:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    messages = {
        404: f"no endpoint at {request.path}; endpoints: POST /recommend, POST /classify, "
        f"GET /health, GET /ready",
        405: f"{request.method} is not allowed on {request.path}",
        413: f"request body over the limit of {current_app.config['MAX_CONTENT_LENGTH']} bytes",
    }
    response, status = error_body(status, code, messages.get(status, error.description or code))
    # Keep the exception's own headers (a 405 must say which methods are allowed in Allow).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, status


def _unexpected_error(error: Exception) -> tuple[Any, int]:
    log.exception("unexpected error")
    return error_body(500, "internal_error", "internal error; see the server log")


def _service() -> Recommender:
    slot: ServiceSlot = current_app.extensions[EXTENSION]
    if slot.service is None:
        message = slot.error or "the model and index are still loading; retry shortly"
        raise ApiError(503, "not_ready", message)
    return slot.service


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send JSON with content-type application/json; got {request.mimetype or 'none'!r}",
        )
    try:
        body = request.get_json()
    except BadRequest:  # only a body that does not parse; null parses and is refused below
        raise InvalidInputError("request body is not valid JSON") from None
    except RecursionError:  # the json module's limit on nesting, not a server fault
        raise InvalidInputError("request body is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidInputError(f"request body must be a JSON object; got {_json_type(body)}")
    return body


def _text(value: Any, field: str) -> str:
    limit = current_app.config["MAX_TEXT_LENGTH"]
    if not isinstance(value, str):
        raise InvalidInputError(f"{field!r} must be a string; got {_json_type(value)}")
    if not value.strip():
        raise InvalidInputError(f"{field!r} is empty; write a few words about your day")
    if len(value) > limit:
        raise InvalidInputError(f"{field!r} is {len(value)} characters; the limit is {limit}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _integer(
    body: dict[str, Any], field: str, default: int, low: int, high: int, *, nullable: bool = False
) -> Any:
    value = body.get(field, default)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        allowed = f"an integer from {low} to {high}" + (" or null" if nullable else "")
        raise InvalidInputError(f"{field!r} must be {allowed}; got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A request value as JSON, the way the client wrote it."""
    return json.dumps(value, ensure_ascii=False)[:80]


def _number(body: dict[str, Any], field: str, default: float) -> float:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"{field!r} must be a number from 0 to 1; got {_shown(value)}")
    return float(value)


@bp.post("/recommend")
def recommend() -> Any:
    body = _json_body()
    config = current_app.config
    if "text" not in body:
        raise InvalidInputError("missing field 'text'")
    text = _text(body["text"], "text")
    k = _integer(body, "k", config["DEFAULT_K"], 1, config["MAX_K"])
    per_artist = _integer(body, "per_artist", 2, 1, config["MAX_K"], nullable=True)
    filters = body.get("filters")
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise InvalidInputError(f"'filters' must be an object; got {_json_type(filters)}")
    target = body.get("target")
    if target is not None and not isinstance(target, str):
        raise InvalidInputError(f"'target' must be an emotion name; got {_json_type(target)}")
    result = _service().recommend(
        text,
        k,
        target=target,
        shift_strength=_number(body, "shift_strength", 0.5),
        filters=filters,
        per_artist=per_artist,
        diversity=_number(body, "diversity", 0.0),
    )
    return jsonify(result.to_dict())


@bp.post("/classify")
def classify() -> Any:
    body = _json_body()
    if "texts" not in body:
        raise InvalidInputError("missing field 'texts' (a list of strings)")
    texts = body["texts"]
    limit = current_app.config["MAX_TEXTS"]
    if not isinstance(texts, list):
        raise InvalidInputError(f"'texts' must be an array of strings; got {_json_type(texts)}")
    if not texts:
        raise InvalidInputError("'texts' is empty; send at least one text")
    if len(texts) > limit:
        raise InvalidInputError(f"too many texts: {len(texts)}; the limit is {limit}")
    texts = [_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
    results = [{"emotions": e} for e in _service().classify(texts)]
    return jsonify({"results": results})


@bp.get("/health")
def health() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready() -> Any:
    slot: ServiceSlot = current_app.extensions[EXTENSION]
    if slot.service is None:
        message = slot.error or "the model and index are still loading"
        return error_body(503, "not_ready", message)
    service = slot.service
    return jsonify(
        {
            "status": "ready",
            "model": service.classifier.name,
            "model_fingerprint": service.classifier.fingerprint,
            "checkpoint_fingerprint": service.classifier.source_fingerprint,
            "tracks": len(service.index),
        }
    )
