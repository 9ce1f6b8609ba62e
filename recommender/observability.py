"""The operators' view: request ids in logs and errors, structured logs, Prometheus metrics.

Every request carries an id: the client's ``X-Request-ID`` when it is a plain token of at most
128 characters, else a new one. It goes back in the ``X-Request-ID`` header and in every error
body, and onto every log line written while the request is served. Metrics are
prometheus-client's; under gunicorn they are kept in multiprocess mode (in the replica's own
``PROMETHEUS_MULTIPROC_DIR``, which ``recommender serve`` creates and removes), so ``/metrics``
from any worker reports the whole replica.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
import uuid
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from recommender.settings import LogFormat

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
# gunicorn's access log line, with the request id the app sent back.
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = Counter(
    "recommender_http_requests", "HTTP requests answered", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "recommender_http_request_duration_seconds",
    "Time to answer a request, by endpoint",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "recommender_classify_texts",
    "Texts classified per request",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
LOAD_SECONDS = Histogram(
    "recommender_load_duration_seconds",
    "Time to load the model or an index",
    ["what"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RELOADS = Counter("recommender_index_reloads", "Rebuilt indexes seen", ["outcome"])
MODEL_INFO = Gauge(
    "recommender_model_info",
    "The model serving (1), by public name and fingerprint",
    ["model", "fingerprint"],
    multiprocess_mode="liveall",
)
INDEX_TRACKS = Gauge(
    "recommender_index_tracks", "Tracks in the index serving", multiprocess_mode="liveall"
)
INDEX_LOADED = Gauge(
    "recommender_index_loaded_timestamp_seconds",
    "When the index serving was loaded (changes on a swap)",
    multiprocess_mode="liveall",
)


def request_id(header: str | None) -> str:
    """The client's id when it is a plain token, else a new one."""
    return header if header is not None and _PLAIN_ID.match(header) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being served (``-`` outside one) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(  # type: ignore[no-any-return]
            JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Root logging to stderr in ``log_format``, every record with its request id."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def gunicorn_logconfig(log_format: LogFormat) -> dict[str, Any]:
    """gunicorn's own error and access logs in the same format (``logconfig_dict``)."""
    factory = {"()": f"{__name__}.formatter", "log_format": log_format}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": factory},
        "handlers": {"default": handler},
        "root": {"level": "INFO", "handlers": ["default"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["default"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["default"], "propagate": False},
        },
    }


def metrics_text() -> tuple[bytes, str]:
    """The exposition of this process, or of every worker of the replica under gunicorn."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's ``child_exit`` hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def instrument(app: Any) -> None:
    """Request ids and request metrics on every request of a Flask app."""
    from flask import g, request

    @app.before_request
    def _begin() -> None:
        g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_token = REQUEST_ID.set(g.request_id)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Any) -> Any:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id(None)
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        LATENCY.labels(endpoint).observe(
            time.perf_counter() - g.get("started", time.perf_counter())
        )
        return response

    @app.teardown_request
    def _end(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)


def loaded_model(name: str, fingerprint: str, started: float) -> None:
    LOAD_SECONDS.labels("model").observe(time.perf_counter() - started)
    MODEL_INFO.labels(name, fingerprint).set(1)


def loaded_index(tracks: int, started: float) -> None:
    LOAD_SECONDS.labels("index").observe(time.perf_counter() - started)
    INDEX_TRACKS.set(tracks)
    INDEX_LOADED.set_to_current_time()


def index_reload(outcome: str, seconds: float, tracks: int | None = None) -> None:
    RELOADS.labels(outcome).inc()
    if tracks is not None:
        LOAD_SECONDS.labels("index").observe(seconds)
        INDEX_TRACKS.set(tracks)
        INDEX_LOADED.set_to_current_time()
