"""Production serving: the Flask app under gunicorn, a model per worker, loaded after fork."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with its options given in code; the app is created in each worker.

    ``preload_app`` stays off, so ``load()`` runs in every worker after the fork and each loads
    its own model: torch state is never shared across a fork, and the master stays small.
    """

    def __init__(
        self, app_config: dict[str, Any], options: dict[str, Any], *, torch_threads: int
    ) -> None:
        self.app_config = app_config
        self.options = options
        self.torch_threads = torch_threads
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        import faiss
        import torch

        # Workers share the machine's cores: splitting them avoids oversubscription. FAISS gets
        # the same share: a one-query search gains nothing from more, and idle OpenMP threads
        # spin on cores the other workers need.
        torch.set_num_threads(self.torch_threads)
        faiss.omp_set_num_threads(self.torch_threads)
        from recommender.api import EXTENSION, create_app

        app = create_app(self.app_config)
        # Take requests only once this worker's model and index are loaded (or failed): a
        # worker still loading (at start, or restarted) would otherwise answer them with 503
        # while its siblings are ready.
        app.extensions[EXTENSION].wait()
        return app


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    threads: int = 1,
    app_config: dict[str, Any] | None = None,
) -> None:
    """Run the API under gunicorn until interrupted."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "preload_app": False,
        "timeout": 120,
        "accesslog": "-",
        "worker_class": "gthread" if threads > 1 else "sync",
    }
    torch_threads = max(1, (os.cpu_count() or 1) // workers)
    GunicornServer(app_config or {}, options, torch_threads=torch_threads).run()
