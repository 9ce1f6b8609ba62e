"""Soak: `recommender serve` under steady load, during hot index swaps, and with slow clients.

    python benchmarks/soak.py                       # 2 workers, c=8, 30 s a phase, 200,000 tracks
    python benchmarks/soak.py --seconds 120 --tracks 1000000

The server runs the bundled model over a synthetic index of ``--tracks`` tracks (vectors drawn
from a Dirichlet, the bundled model's fingerprints, so it loads like a real one), watching it
every ``--reload-interval`` seconds. Three phases of ``--seconds`` each, under the same load
(``--concurrency`` clients, each on its own kept-alive connection, POST /recommend):

1. steady: nothing else happens (the baseline);
2. swaps: every ``--swap-every`` seconds the index directory is replaced by renames (as
   `recommender index` does) with another index of the same size, prepared beforehand so that
   writing it takes nothing from the server, and every worker swaps it in while serving;
3. slow clients: ``--dribblers`` connections send headers and part of a body and then nothing,
   reconnecting after each 408, while a probe times GET /health on a fresh connection.

Printed: requests, errors, p50/p99/max latency per phase, the ratio of p99 to steady and the
server's RSS (master and workers) after each phase; swaps seen by the workers, the probe's worst
wait, 408s, and the RSS before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# The API benchmark's texts and helpers (this script's directory is on sys.path when it runs).
from api import HOST, TEXTS, free_port

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_MANIFEST = ROOT / "catalog" / "sample_index" / "manifest.json"


def write_index(path: Path, tracks: int, seed: int) -> None:
    """A synthetic index with the bundled model's identity, written as `recommender index` does."""
    import pyarrow as pa

    from recommender.track_index import ModelIdentity, TrackIndex

    model = json.loads(SAMPLE_MANIFEST.read_text())["model"]
    rng = np.random.default_rng(seed)
    vectors = rng.dirichlet(np.full(6, 0.4), size=tracks).astype(np.float32)
    ids = [f"t{seed}-{i}" for i in range(tracks)]
    table = pa.table(
        {
            "track_id": ids,
            "title": [f"곡 {i}" for i in range(tracks)],
            "artist": [f"가수 {i % 5000}" for i in range(tracks)],
        }
    )
    index = TrackIndex(
        vectors, table, model=ModelIdentity(**model), device="cpu", index_type="flat"
    )
    index.save(path)


def swap_in(variant: Path, index: Path) -> None:
    """Replace the served index by a copy of ``variant``, by renames as `recommender index` does."""
    staging = index.parent / f".{index.name}.staging"
    shutil.copytree(variant, staging)
    old = index.parent / f".{index.name}.old"
    index.rename(old)
    staging.rename(index)
    shutil.rmtree(old)


def rss_kib(pid: int) -> int:
    """RSS of a process and its children, from /proc."""
    total = 0
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("PPid:") and int(line.split()[1]) == pid:
                        pids.append(int(entry.name))
            except OSError:
                continue
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Load:
    """``concurrency`` clients posting /recommend on kept-alive connections until stopped."""

    def __init__(self, port: int, concurrency: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(concurrency)
        ]

    def client(self, number: int) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        i = number
        while not self.stop.is_set():
            body = json.dumps({"text": TEXTS[i % len(TEXTS)], "k": 10})
            i += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/recommend", body, {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
            elapsed = time.perf_counter() - started
            with self.lock:
                if ok:
                    self.latencies.append(elapsed)
                else:
                    self.errors += 1

    def phase(self) -> tuple[list[float], int]:
        """Latencies and errors since the last call."""
        with self.lock:
            latencies, errors = self.latencies, self.errors
            self.latencies, self.errors = [], 0
        return latencies, errors

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def dribble(port: int, stop: threading.Event, refused: list[int]) -> None:
    head = (
        b"POST /recommend HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"text"'
    )
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=60) as sock:
                sock.sendall(head)
                answer = sock.recv(200)
                if answer.startswith(b"HTTP/1.1 408"):
                    refused.append(408)
        except OSError:
            time.sleep(0.1)


def probe(port: int, stop: threading.Event, waits: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
            connection.request("GET", "/health")
            ok = connection.getresponse().status == 200
            connection.close()
        except (OSError, http.client.HTTPException):
            ok = False
        waits.append(time.perf_counter() - started if ok else float("inf"))
        time.sleep(0.2)


def summary(
    name: str, latencies: list[float], errors: int, seconds: float, base: float | None, pid: int
) -> float:
    ms = np.asarray(latencies) * 1e3
    p50, p99, worst = np.percentile(ms, [50, 99, 100]) if len(ms) else (np.nan,) * 3
    ratio = f"{p99 / base:.2f}x" if base else "1.00x"
    print(
        f"{name:<14} {len(ms):>8} {errors:>7} {len(ms) / seconds:>8.1f} "
        f"{p50:>8.1f} {p99:>8.1f} {worst:>8.1f} {ratio:>10} {rss_kib(pid) / 1024:>8.0f}"
    )
    return float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tracks", type=int, default=200_000)
    parser.add_argument("--swap-every", type=float, default=5.0)
    parser.add_argument("--reload-interval", type=float, default=1.0)
    parser.add_argument("--dribblers", type=int, default=32)
    parser.add_argument("--read-timeout", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        index = Path(scratch) / "index"
        started = time.perf_counter()
        variants = [Path(scratch) / f"variant-{seed}" for seed in range(3)]
        for seed, variant in enumerate(variants):
            write_index(variant, args.tracks, seed=seed)
        shutil.copytree(variants[0], index)
        print(
            f"{len(variants)} indexes of {args.tracks:,} tracks written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_")}
        env.update(
            RECOMMENDER_RELOAD_INTERVAL=str(args.reload_interval),
            RECOMMENDER_READ_TIMEOUT=str(args.read_timeout),
            HF_HUB_OFFLINE="1",
        )
        log = Path(scratch) / "server.log"
        command = [
            sys.executable, "-m", "recommender", "serve", "--index", str(index),
            "--host", HOST, "--port", str(port), "--workers", str(args.workers),
        ]  # fmt: skip
        with log.open("wb") as out:
            server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(port, server, log)
            rss_before = rss_kib(server.pid)
            print(
                f"\n{'phase':<14} {'requests':>8} {'errors':>7} {'req/s':>8} "
                f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/steady':>10} {'RSS MiB':>8}"
            )
            with Load(port, args.concurrency) as load:
                time.sleep(2.0)  # warm-up, not counted
                load.phase()
                time.sleep(args.seconds)
                steady = summary("steady", *load.phase(), args.seconds, None, server.pid)

                swaps = 0
                until = time.monotonic() + args.seconds
                while time.monotonic() < until:
                    swaps += 1
                    swap_in(variants[swaps % len(variants)], index)
                    time.sleep(max(0.0, min(args.swap_every, until - time.monotonic())))
                summary("index swaps", *load.phase(), args.seconds, steady, server.pid)

                stop = threading.Event()
                refused: list[int] = []
                waits: list[float] = []
                helpers = [
                    threading.Thread(target=dribble, args=(port, stop, refused), daemon=True)
                    for _ in range(args.dribblers)
                ]
                helpers.append(threading.Thread(target=probe, args=(port, stop, waits)))
                for thread in helpers:
                    thread.start()
                time.sleep(args.seconds)
                summary(
                    f"{args.dribblers} dribblers", *load.phase(), args.seconds, steady, server.pid
                )
                stop.set()
            for thread in helpers:
                thread.join(timeout=args.read_timeout + 5)
            rss_after = rss_kib(server.pid)
            seen = log.read_text(errors="replace").count("swapped in the rebuilt index")
            print(
                f"\nindex rebuilt {swaps} times; swaps done by workers: {seen} "
                f"(of {swaps * args.workers}); refused: "
                f"{log.read_text(errors='replace').count('was refused')}"
            )
            finite = [w for w in waits if w != float("inf")]
            print(
                f"slow clients: {len(refused)} answered 408; GET /health probes: {len(waits)}, "
                f"failed {len(waits) - len(finite)}, worst {max(finite, default=0) * 1e3:.0f} ms"
            )
            print(
                f"server RSS (master + workers): {rss_before / 1024:.0f} MiB before, "
                f"{rss_after / 1024:.0f} MiB after ({(rss_after - rss_before) / 1024:+.0f} MiB)"
            )
        finally:
            server.terminate()
            server.wait(timeout=60)


def wait_ready(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.5)
    raise SystemExit("server not ready in 180 s")


if __name__ == "__main__":
    main()
