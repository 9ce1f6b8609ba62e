"""Production serving: the Flask app under gunicorn, a model per worker, loaded after fork."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from recommender.placement import available_cores
from recommender.settings import Settings


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

        # FAISS gets the model's share of the cores: a one-query search gains nothing from
        # more, and idle OpenMP threads spin on cores the other workers need.
        if self.settings.threads is not None:
            faiss.omp_set_num_threads(self.settings.threads)
        # Loaded before the worker takes requests: a worker still loading (at start, or
        # restarted) would otherwise answer them with 503 while its siblings are ready.
        return create_app(settings=self.settings, background=False)


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    threads: int = 1,
) -> None:
    """Run the API under gunicorn until interrupted; unless ``settings`` name a thread count,
    the workers split this process's cores between them."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "preload_app": False,
        "timeout": 120,
        "accesslog": "-",
        "worker_class": "gthread" if threads > 1 else "sync",
    }
    if settings.threads is None:
        settings = settings.replace(threads=max(1, available_cores() // workers))
    GunicornServer(settings, options).run()
