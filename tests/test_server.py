"""End to end: `recommender serve` under gunicorn on loopback, the model loaded only in workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from recommender.track_index import FAISS_INDEX
from tests.catalogue import make_index
from tests.serving import children, free_port, log_tail, serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc"),
]


def has_torch(pid: int) -> bool:
    """Whether libtorch is mapped into the process (torch imported, so a model can be held)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps


def test_serve_loads_the_model_in_workers_only(
    tmp_path: Path, tiny_model_dir: Path, tiny_classifier
):
    index = make_index(tmp_path, tiny_classifier)
    with serve(tmp_path, tiny_model_dir, index) as server:
        status, body, _ = server.request("/ready")
        assert status == 200, body
        assert body["tracks"] == 18
        assert body["model_fingerprint"] == tiny_classifier.fingerprint

        text = "오늘은 정말 행복한 하루였다"
        status, body, _ = server.request("/recommend", {"text": text, "k": 4})
        assert status == 200, body
        assert len(body["tracks"]) == 4
        status, body, _ = server.request("/recommend", {"text": "", "k": 4})
        assert status == 400 and body["error"]["code"] == "invalid_input"
        detail = {"text": "시험이 걱정됐다. 그래도 행복했다.", "k": 2, "detail": "sentences"}
        status, body, _ = server.request("/recommend", detail)
        assert status == 200 and len(body["sentences"]) == 2, body

        # What `make serve` promises a person and an app developer: the page, the docs, and a
        # document that validates as OpenAPI 3.1.
        status, document, _ = server.request("/openapi.json")
        assert status == 200
        validate(document, cls=OpenAPIV31SpecValidator)
        for path, kind in [("/", "text/html"), ("/docs", "text/html"),
                           ("/docs/swagger-ui/swagger-ui-bundle.js", "javascript")]:  # fmt: skip
            with urllib.request.urlopen(server.base + path, timeout=10) as response:
                assert response.status == 200 and kind in response.headers["content-type"]

        # Each worker imports torch and loads its own model after the fork; the master never
        # does. Workers seen with libtorch mapped also show that the check can see it.
        workers = children(server.process.pid)
        assert len(workers) == 2, workers
        deadline = time.monotonic() + 60
        while not all(has_torch(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert all(has_torch(pid) for pid in workers)
        assert not has_torch(server.process.pid), "the gunicorn master has loaded torch"
    assert server.process.returncode == 0, log_tail(server.log)


def serve_exits(model: Path, index: Path) -> subprocess.CompletedProcess[str]:
    """`recommender serve` expected to stop by itself; a server that stays up fails the test."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_")}
    environment["HF_HUB_OFFLINE"] = "1"
    command = [
        sys.executable, "-m", "recommender", "serve", "--model", str(model),
        "--index", str(index), "--port", str(free_port()), "--workers", "1", "--device", "cpu",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)


def test_serve_with_a_missing_index_stops_with_one_line(tmp_path: Path, tiny_model_dir: Path):
    result = serve_exits(tiny_model_dir, tmp_path / "nonexistent")
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: no index directory at '{tmp_path / 'nonexistent'}'"), line


def test_serve_with_a_corrupt_index_stops_with_one_line(
    tmp_path: Path, tiny_model_dir: Path, tiny_classifier
):
    index = make_index(tmp_path, tiny_classifier)
    with (index / FAISS_INDEX).open("ab") as file:
        file.write(b"garbage")
    result = serve_exits(tiny_model_dir, index)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ") and "index.faiss fails its checksum" in line, line
