"""HTTP API: a thin Flask shell over one Recommender. Every error is JSON with a stable shape.

Requests and responses are the models of ``recommender.schemas``; ``GET /openapi.json`` is
generated from them, ``GET /docs`` shows it in Swagger UI and ``GET /`` is the page for people.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request, send_from_directory
from pydantic import BaseModel
from werkzeug.exceptions import BadRequest, HTTPException

from recommender import observability, sentences
from recommender.classifier import EmotionModel, public_name
from recommender.errors import InvalidInputError, RecommenderError
from recommender.openapi import OPERATIONS, openapi_document
from recommender.reloading import IndexWatcher, manifest_digest
from recommender.schemas import (
    ClassifyRequest,
    ErrorBody,
    ErrorDetail,
    Genres,
    Health,
    Limits,
    PlaylistRequest,
    Ready,
    RecommendRequest,
    SimilarQuery,
    parse,
    to_json,
)
from recommender.service import Recommender, default_index, read_texts
from recommender.settings import Settings
from recommender.track_index import TrackIndex
from recommender.worker import too_large

log = logging.getLogger(__name__)

EXTENSION = "recommender"
OPENAPI = "recommender.openapi"
LIMITS = "recommender.limits"
# swagger-ui-py ships Swagger UI 5's files; found without importing the package's Python code.
SWAGGER_UI = Path(next(iter(find_spec("swagger_ui").submodule_search_locations or ()))) / "static"  # type: ignore[union-attr]
M = TypeVar("M", bound=BaseModel)
ROOT = Path(__file__).resolve().parent.parent

bp = Blueprint("recommender", __name__)


class ServiceSlot:
    """Holds the model once loaded, then the service (model and index).

    ``/classify`` needs only the model, so it answers as soon as that is loaded; the rest waits
    for the index too. :meth:`load` runs in a thread (the dev server answers ``/health`` at
    once) or, with ``background=False``, before the app is returned (a gunicorn worker takes no
    request before it is ready).
    """

    def __init__(self, service: Recommender | None = None) -> None:
        self.service = service
        self.classifier: EmotionModel | None = service.classifier if service else None
        self.error: str | None = None
        # sha256 of the serving index's manifest; a watcher swaps in a rebuilt index.
        self.index_manifest: str | None = None
        self.watcher: IndexWatcher | None = None
        self._ready = threading.Event()
        if service is not None:
            self._ready.set()

    def load(
        self,
        load_model: Callable[[], EmotionModel],
        load_service: Callable[[EmotionModel], Recommender],
        *,
        background: bool,
    ) -> None:
        if background:
            threading.Thread(
                target=self._load, args=(load_model, load_service), daemon=True
            ).start()
        else:
            self._load(load_model, load_service)

    def _load(
        self,
        load_model: Callable[[], EmotionModel],
        load_service: Callable[[EmotionModel], Recommender],
    ) -> None:
        try:
            self.classifier = load_model()
            self.service = load_service(self.classifier)
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

    def swap(self, index: TrackIndex, manifest: str | None = None) -> None:
        """Serve ``index`` from now on: one reference assignment, so a request in flight keeps
        the service it started with and the next one gets the new index."""
        assert self.classifier is not None
        self.service = Recommender(self.classifier, index)
        self.index_manifest = manifest


class ApiError(RecommenderError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    service: Recommender | None = None,
    settings: Settings | None = None,
    background: bool = True,
) -> Flask:
    """``settings`` (default: read from the environment), then ``config`` (upper-case keys
    of :class:`~recommender.settings.Settings`, as in ``Settings.as_config``).

    Without ``service`` the model and then the index load in a background thread (``/classify``
    is 503 until the model is loaded, ``/ready`` until both are), or before this returns when
    ``background`` is false; under gunicorn each worker loads its own copy after the fork.
    """
    settings = settings or Settings.from_env()
    overrides = {key.lower(): value for key, value in (config or {}).items()}
    known = {k: v for k, v in overrides.items() if k in Settings.model_fields}
    settings = settings.replace(**known)
    app = Flask(__name__)
    app.config.update(settings.as_config())
    app.config.update({k.upper(): v for k, v in overrides.items() if k not in known})
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def load_model() -> EmotionModel:
        from recommender.classifier import EmotionClassifier

        started = time.perf_counter()
        model = EmotionClassifier.from_pretrained(settings=settings)
        observability.loaded_model(public_name(model.name), model.fingerprint, started)
        if settings.sentences == "warm":
            sentences.warm()  # else the first request with sentence detail waits for Kiwi
        return model

    def load_service(classifier: EmotionModel) -> Recommender:
        path = default_index(settings)
        digest = manifest_digest(path)
        started = time.perf_counter()
        loaded = Recommender.with_index(classifier, settings)
        observability.loaded_index(len(loaded.index), started)
        slot.index_manifest = digest
        if settings.reload_interval > 0:
            slot.watcher = IndexWatcher(
                path,
                digest=digest,
                interval=settings.reload_interval,
                load=lambda p: Recommender.index_for(classifier, p),
                swap=slot.swap,
                on_outcome=observability.index_reload,
            ).start()
        return loaded

    slot = ServiceSlot(service)
    app.extensions[EXTENSION] = slot
    if service is None:
        slot.load(load_model, load_service, background=background)
    observability.instrument(app)
    app.extensions[LIMITS] = limits = Limits.from_settings(settings)
    app.extensions[OPENAPI] = openapi_document(limits)
    app.register_blueprint(bp)
    app.register_error_handler(RecommenderError, _recommender_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def respond(body: BaseModel, status: int = 200) -> Response:
    """A declared response model as JSON, Korean as UTF-8."""
    return current_app.response_class(to_json(body), status=status, mimetype="application/json")


def error_body(status: int, code: str, message: str) -> tuple[Response, int]:
    # Messages may quote request text: lone surrogates are escaped, so the body stays UTF-8.
    printable = message.encode("utf-8", "backslashreplace").decode("utf-8")
    detail = ErrorDetail(code=code, message=printable, request_id=g.get("request_id"))
    return respond(ErrorBody(error=detail), status), status


def _public(message: str) -> str:
    """A load error as clients see it: the server's paths reduced to their last part."""
    paths = {current_app.config.get("MODEL"), current_app.config.get("INDEX"), str(ROOT)}
    for path in sorted((str(p) for p in paths if p), key=len, reverse=True):
        for form in {path, str(Path(path).resolve())}:
            message = message.replace(form, Path(form).name)
    return message


def _recommender_error(error: RecommenderError) -> tuple[Response, int]:
    return error_body(error.status, error.code, str(error))


def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    endpoints = ", ".join(f"{op.method.upper()} {op.path}" for op in OPERATIONS)
    messages = {
        404: f"no endpoint at {request.path}; endpoints: {endpoints}, GET /openapi.json, "
        "GET /docs, GET /",
        405: f"{request.method} is not allowed on {request.path}",
        413: too_large(current_app.config["MAX_CONTENT_LENGTH"]),
    }
    response, status = error_body(status, code, messages.get(status, error.description or code))
    # Keep the exception's own headers (a 405 must say which methods are allowed in Allow).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, status


def _unexpected_error(error: Exception) -> tuple[Response, int]:
    log.exception("unexpected error")
    return error_body(500, "internal_error", "internal error; see the server log")


def _service() -> Recommender:
    slot: ServiceSlot = current_app.extensions[EXTENSION]
    if slot.service is None:
        message = slot.error or "the model and index are still loading; retry shortly"
        raise ApiError(503, "not_ready", _public(message))
    return slot.service


def _classifier() -> EmotionModel:
    slot: ServiceSlot = current_app.extensions[EXTENSION]
    if slot.classifier is None:
        message = slot.error or "the model is still loading; retry shortly"
        raise ApiError(503, "not_ready", _public(message))
    return slot.classifier


def _request(model: type[M]) -> M:
    """The JSON body, validated into ``model`` with the app's limits."""
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send JSON with content-type application/json; got {request.mimetype or 'none'!r}",
        )
    try:
        body = request.get_json()
    except BadRequest:  # only a body that does not parse; null parses and is refused by the model
        raise InvalidInputError("request body is not valid JSON") from None
    except RecursionError:  # the json module's limit on nesting, not a server fault
        raise InvalidInputError("request body is JSON nested too deeply") from None
    return parse(model, body, current_app.extensions[LIMITS])


@bp.post("/recommend")
def recommend() -> Response:
    query = _request(RecommendRequest)
    return respond(_service().answer(query).to_body())


@bp.post("/classify")
def classify() -> Response:
    query = _request(ClassifyRequest)
    # A budget on the work one request may ask for: characters in all its texts.
    total, budget = sum(len(t) for t in query.texts), current_app.config["CLASSIFY_BUDGET"]
    if total > budget:
        raise ApiError(
            413,
            "too_much_work",
            f"the texts hold {total:,} characters in all; one request may hold at most "
            f"{budget:,}: send them in several requests",
        )
    observability.BATCH_SIZE.observe(len(query.texts))
    return respond(read_texts(_classifier(), query))


@bp.post("/playlist")
def playlist() -> Response:
    query = _request(PlaylistRequest)
    return respond(_service().answer_playlist(query).to_body())


# A track id may hold "/" (the path converter keeps it); one that ends in "/similar" reads as
# the similar songs of the id before it.
@bp.get("/tracks/<path:track_id>")
def track(track_id: str) -> Response:
    return respond(_service().track(track_id).to_body())


@bp.get("/tracks/<path:track_id>/similar")
def similar(track_id: str) -> Response:
    # A parameter given once is a value, given again (?genre=a&genre=b) a list.
    args = {name: vals[0] if len(vals) == 1 else vals for name, vals in request.args.lists()}
    query = parse(SimilarQuery, args, current_app.extensions[LIMITS])
    return respond(_service().answer_similar(track_id, query).to_body())


@bp.get("/genres")
def genres() -> Response:
    return respond(Genres(genres=_service().genres()))


@bp.get("/health")
def health() -> Response:
    return respond(Health(status="ok"))


@bp.get("/ready")
def ready() -> Response | tuple[Response, int]:
    slot: ServiceSlot = current_app.extensions[EXTENSION]
    if slot.service is None:
        message = slot.error or "the model and index are still loading"
        return error_body(503, "not_ready", _public(message))
    service = slot.service
    return respond(
        Ready(
            status="ready",
            model=public_name(service.classifier.name),
            model_fingerprint=service.classifier.fingerprint,
            checkpoint_fingerprint=service.classifier.source_fingerprint,
            tracks=len(service.index),
            index_manifest=slot.index_manifest,
        )
    )


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus' text exposition: this worker's, or the whole replica's under gunicorn."""
    body, content_type = observability.metrics_text()
    return current_app.response_class(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    document = current_app.extensions[OPENAPI]
    return current_app.response_class(
        json.dumps(document, ensure_ascii=False), mimetype="application/json"
    )


@bp.get("/docs")
def docs() -> Response:
    return current_app.send_static_file("docs.html")


@bp.get("/docs/swagger-ui/<path:name>")
def swagger_ui(name: str) -> Response:
    """Swagger UI's own files, from the installed swagger-ui-py package (no CDN)."""
    return send_from_directory(SWAGGER_UI, name, max_age=3600)


@bp.get("/")
def page() -> Response:
    return current_app.send_static_file("index.html")
