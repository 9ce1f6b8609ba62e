"""Starting `recommender serve` for end-to-end tests, and talking to it over raw sockets."""

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 120.0  # each worker loads the model (and Kiwi, unless lazy); the machine is busy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class Server:
    """A running `recommender serve` on loopback."""

    process: subprocess.Popen
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, path: str, body: dict | None = None, timeout: float = 10.0):
        """(status, JSON body, headers) of one request on a fresh connection."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, _json(raw), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read()), dict(error.headers)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def _json(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


@contextmanager
def serve(
    tmp: Path,
    model: Path,
    index: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[Server]:
    """`recommender serve` with the given model and index, ready when entered."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_")}
    environment["HF_HUB_OFFLINE"] = "1"
    environment.update(env or {})
    command = [
        sys.executable, "-m", "recommender", "serve",
        "--model", str(model), "--index", str(index), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--device", "cpu", *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = Server(process, port, log, environment)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        status = 0
        while time.monotonic() < deadline:
            assert process.poll() is None, f"server exited early:\n{log_tail(log)}"
            try:
                status = server.request("/ready", timeout=5)[0]
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, f"not ready after {READY_TIMEOUT}s:\n{log_tail(log)}"
        yield server
    finally:
        server.stop()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def read_response(sock: socket.socket) -> Response:
    """One HTTP/1.1 response (Content-Length framed, as this server sends them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    if status == 100:  # 100 Continue: the real response follows
        sock_rest = rest
        return _after_continue(sock, sock_rest)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, headers, rest[:length])


def _after_continue(sock: socket.socket, rest: bytes) -> Response:
    class Buffered:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def recv(self, size: int) -> bytes:
            if self.data:
                data, self.data = self.data[:size], self.data[size:]
                return data
            return sock.recv(size)

    return read_response(Buffered(rest))  # type: ignore[arg-type]


def exchange(port: int, data: bytes, *, timeout: float = 5.0, half_close: bool = False):
    """Send raw bytes on a new connection and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def json_post(path: str, body: bytes | str, extra: str = "") -> bytes:
    data = body.encode() if isinstance(body, str) else body
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n{extra}\r\n"
    ).encode() + data


def get(path: str, *, keep_alive: bool = False) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n".encode()
