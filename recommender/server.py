"""Production serving: the Flask app under gunicorn, a model per worker, loaded after fork.

Workers are :class:`recommender.worker.ServiceWorker` (requests read in the event loop, a
bounded number computing at once, JSON for every refusal). Each replica (one `recommender
serve`) keeps its runtime files, gunicorn's control socket and the Prometheus multiprocess
files, in a directory of its own, removed when it exits: replicas on one machine never share
them.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from recommender.errors import RecommenderError
from recommender.placement import available_cores
from recommender.settings import Settings

WORKER_CLASS = "recommender.worker.ServiceWorker"
CONTROL_SOCKET = "gunicorn.ctl"
METRICS_DIR = "metrics"


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with its options given in code; the app is created in each worker.

    ``preload_app`` stays off, so ``load()`` runs in every worker after the fork and each loads
    its own model: no runtime state is shared across a fork, and the master stays small.
    """

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        import faiss

        from recommender.api import create_app
        from recommender.observability import configure_logging

        configure_logging(self.settings.log_format)
        # FAISS gets the model's share of the cores: a one-query search gains nothing from
        # more, and idle OpenMP threads spin on cores the other workers need.
        if self.settings.threads is not None:
            faiss.omp_set_num_threads(self.settings.threads)
        # Loaded before the worker takes requests: a worker still loading (at start, or
        # restarted) would otherwise answer them with 503 while its siblings are ready.
        return create_app(settings=self.settings, background=False)


@contextmanager
def runtime_dir() -> Iterator[Path]:
    """A directory for this replica's runtime files, removed when it exits."""
    path = Path(tempfile.mkdtemp(prefix=f"recommender-{os.getpid()}-"))
    try:
        (path / METRICS_DIR).mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check_loads(settings: Settings) -> None:
    """Load the model and the index once, exactly as a worker does, before gunicorn starts: a
    model or index that cannot be served stops ``serve`` with its one-line error instead of
    leaving workers that answer 503 ``not_ready`` for ever. The check runs in a child process
    (``python -m recommender.server``), so the master still never holds a model."""
    result = subprocess.run(
        [sys.executable, "-m", __name__],
        input=pickle.dumps(settings.replace(reload_interval=0)),
        capture_output=True,
        check=False,
    )
    error = result.stdout.decode("utf-8", "replace").strip()
    if result.returncode:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"]
        error = f"loading the model and index failed (exit code {result.returncode}): {lines[-1]}"
    if error:
        raise RecommenderError(error)


def _load_error(settings: Settings) -> str | None:
    """The error a worker would record on loading, or None when it would serve."""
    from recommender.api import EXTENSION, create_app

    logging.disable(logging.CRITICAL)  # the parent prints the error once, as one line
    app = create_app(settings=settings, background=False)
    error: str | None = app.extensions[EXTENSION].error
    return error


def _child_exit(server: Any, worker: Any) -> None:
    from recommender.observability import worker_exited

    worker_exited(worker.pid)


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
) -> None:
    """Run the API under gunicorn until interrupted; unless ``settings`` name a thread count,
    the workers split this process's cores between them."""
    if settings.threads is None:
        settings = settings.replace(threads=max(1, available_cores() // workers))
    check_loads(settings)
    with runtime_dir() as runtime:
        # Read by prometheus-client when the workers import it: set before they start.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(runtime / METRICS_DIR)
        from recommender.observability import ACCESS_FORMAT, gunicorn_logconfig

        options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": WORKER_CLASS,
            "preload_app": False,
            "timeout": 120,
            "graceful_timeout": 30,
            "accesslog": "-",
            "access_log_format": ACCESS_FORMAT,
            "logconfig_dict": gunicorn_logconfig(settings.log_format),
            "control_socket": str(runtime / CONTROL_SOCKET),
            "child_exit": _child_exit,
        }
        GunicornServer(settings, options).run()


if __name__ == "__main__":  # check_loads' child: settings in on stdin, the error out on stdout
    result = os.dup(1)
    os.dup2(2, 1)  # whatever loading prints goes to stderr; stdout carries only the error
    os.write(result, (_load_error(pickle.loads(sys.stdin.buffer.read())) or "").encode())
