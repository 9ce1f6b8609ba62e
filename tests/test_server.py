"""End to end: `recommender serve` under gunicorn on loopback, the model loaded only in workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.catalogue import make_index

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc"),
]

READY_TIMEOUT = 120.0  # each worker loads the model and Kiwi; the machine may be busy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if body is not None else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers), timeout=timeout
        ) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:  # exited meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(entry.name))
    return found


def has_torch(pid: int) -> bool:
    """Whether libtorch is mapped into the process (torch imported, so a model can be held)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def test_serve_loads_the_model_in_workers_only(
    tmp_path: Path, tiny_model_dir: Path, tiny_classifier
):
    index = make_index(tmp_path, tiny_classifier)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_")}
    env["HF_HUB_OFFLINE"] = "1"
    command = [
        sys.executable, "-m", "recommender", "serve",
        "--model", str(tiny_model_dir), "--index", str(index),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--device", "cpu",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT

        def until_served(url: str, body: dict | None = None) -> tuple[int, dict]:
            """Retry while nothing listens or the worker that answers is still loading (503)."""
            status, answer = 0, {}
            while time.monotonic() < deadline:
                assert server.poll() is None, f"server exited early:\n{log_tail(log)}"
                try:
                    status, answer = request(url, body, timeout=5)
                except (OSError, ValueError):  # not listening yet
                    status = 0
                if status not in (0, 503):
                    break
                time.sleep(0.25)
            return status, answer

        status, body = until_served(f"{base}/ready")
        assert status == 200, f"not ready after {READY_TIMEOUT}s: {body}\n{log_tail(log)}"
        assert body["tracks"] == 18
        assert body["model_fingerprint"] == tiny_classifier.fingerprint

        text = "오늘은 정말 행복한 하루였다"
        status, body = until_served(f"{base}/recommend", {"text": text, "k": 4})
        assert status == 200, body
        assert len(body["tracks"]) == 4
        status, body = until_served(f"{base}/recommend", {"text": "", "k": 4})
        assert status == 400 and body["error"]["code"] == "invalid_input"
        detail = {"text": "시험이 걱정됐다. 그래도 행복했다.", "k": 2, "detail": "sentences"}
        status, body = until_served(f"{base}/recommend", detail)
        assert status == 200 and len(body["sentences"]) == 2, body

        # What `make serve` promises a person and an app developer: the page, the docs, and a
        # document that validates as OpenAPI 3.1.
        status, document = request(f"{base}/openapi.json")
        assert status == 200
        validate(document, cls=OpenAPIV31SpecValidator)
        for path, kind in [("/", "text/html"), ("/docs", "text/html"),
                           ("/docs/swagger-ui/swagger-ui-bundle.js", "javascript")]:  # fmt: skip
            with urllib.request.urlopen(base + path, timeout=10) as response:
                assert response.status == 200 and kind in response.headers["content-type"]

        # Each worker imports torch and loads its own model after the fork; the master never
        # does. Workers seen with libtorch mapped also show that the check can see it.
        workers = children(server.pid)
        assert len(workers) == 2, workers
        while not all(has_torch(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert all(has_torch(pid) for pid in workers)
        assert not has_torch(server.pid), "the gunicorn master has loaded torch"
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    assert server.returncode == 0, log_tail(log)
