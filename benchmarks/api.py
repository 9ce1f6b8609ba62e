"""End to end: POST /recommend under gunicorn beside a naive single-threaded Flask dev server.

    python benchmarks/api.py                          # what `make serve` runs (sample index)
    python benchmarks/api.py --engine torch           # the bundled PyTorch checkpoint instead
    python benchmarks/api.py --model M --index I      # any checkpoint and the index built with it
    python benchmarks/api.py --stand-in small         # random weights, the bundled architecture
    python benchmarks/api.py --onnx int8              # the model exported to ONNX int8

Both servers run as subprocesses on 127.0.0.1 with the same model and index and get the same
bounded load: at each concurrency level, a fixed number of requests (or until a time limit)
from a pool of client threads, each holding its own HTTP connection (kept alive when the server
allows it). The table gives requests/s, p50/p99 latency and errors for both, and the ratio.
``--profile`` also times the stages of one request in this process (tokenize, model, search,
ranking, JSON, the whole Flask request without a socket). Servers are always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TEXTS = (
    "오늘은 정말 행복한 하루였다",
    "내일 시험이 걱정된다",
    "친구가 약속을 어겨서 너무 화가 났다",
    "발표 중에 갑자기 머리가 하얘져서 당황했다",
    "믿었던 사람에게 배신당해서 마음이 아프다",
    "비가 오는 날이면 이유 없이 슬퍼진다",
    "오랜만에 가족들과 저녁을 먹으며 웃었다. 이런 날이 계속되면 좋겠다",
    "면접 결과가 아직 안 나와서 잠이 오지 않는다. 떨어지면 어떡하지",
    "회사에서 하루 종일 일이 꼬여서 짜증이 났다. 퇴근길 지하철도 너무 붐볐다",
    "헤어진 지 한 달이 지났는데도 아직 그 사람 생각이 난다",
    "시험을 망쳤다. 열심히 했는데 결과가 이래서 너무 속상하고 눈물이 난다",
    "길에서 넘어졌는데 사람들이 다 쳐다봐서 민망했다",
)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    server_cpu_s: float = float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return 1e3 * self.server_cpu_s / self.requests if self.requests else float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else np.nan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A server subprocess in its own process group, stopped (group and all) on exit."""

    def __init__(self, name: str, command: Sequence[str], port: int, log_dir: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; "
                    f"see {self.log_path}:\n{self.tail()}"
                )
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
                connection.request("GET", "/ready")
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its workers (contention does not count)."""
        import psutil

        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
        except psutil.Error:
            pass
        return total

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def gunicorn_command(args: argparse.Namespace, port: int) -> list[str]:
    command = [sys.executable, "-m", "recommender", "serve", "--host", HOST, "--port", str(port)]
    command += ["--model", args.model, "--index", args.index]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.threads:
        command += ["--compute-slots", str(args.threads)]
    if args.engine:
        command += ["--engine", args.engine]
    return command


DEV_SERVER = """
import sys
from werkzeug.serving import run_simple
from recommender.api import create_app
config = {"MODEL": sys.argv[1], "INDEX": sys.argv[2]}
if sys.argv[4]:
    config["ENGINE"] = sys.argv[4]
run_simple("127.0.0.1", int(sys.argv[3]), create_app(config), threaded=False)
"""


def dev_command(args: argparse.Namespace, port: int) -> list[str]:
    return [sys.executable, "-c", DEV_SERVER, args.model, args.index, str(port), args.engine or ""]


def drive(port: int, concurrency: int, requests: int, max_seconds: float, k: int) -> LoadResult:
    """``requests`` POST /recommend calls from ``concurrency`` threads, cut at ``max_seconds``."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors = 0
    reasons: list[str] = []
    start = time.perf_counter()
    deadline = start + max_seconds

    def next_ticket() -> int | None:
        nonlocal issued
        with lock:
            if issued >= requests or time.perf_counter() > deadline:
                return None
            issued += 1
            return issued

    def client(_: int) -> None:
        nonlocal errors
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            while (ticket := next_ticket()) is not None:
                body = json.dumps({"text": TEXTS[ticket % len(TEXTS)], "k": k}).encode()
                t0 = time.perf_counter()
                try:
                    connection.request(
                        "POST", "/recommend", body, {"Content-Type": "application/json"}
                    )
                    response = connection.getresponse()
                    payload = response.read()
                    ok = response.status == 200 and b'"tracks"' in payload
                    if response.getheader("Connection", "").lower() == "close":
                        connection.close()
                except (OSError, http.client.HTTPException) as error:
                    ok, payload = False, repr(error).encode()
                    connection.close()
                elapsed = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors += 1
                        if len(reasons) < 3:
                            reasons.append(payload[:200].decode(errors="replace"))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    seconds = time.perf_counter() - start
    for reason in reasons:
        print(f"    error: {reason}", file=sys.stderr)
    return LoadResult(len(latencies) + errors, errors, seconds, np.asarray(latencies) * 1e3)


def run_server(
    name: str, command: list[str], port: int, args: argparse.Namespace, log_dir: Path
) -> dict[int, LoadResult]:
    results: dict[int, LoadResult] = {}
    print(f"starting {name}: {' '.join(command[:4])} ...", file=sys.stderr, flush=True)
    with Server(name, command, port, log_dir) as server:
        server.wait_ready(args.ready_timeout)
        drive(port, max(args.levels), args.warmup, args.max_seconds, args.k)
        for level in args.levels:
            cpu = server.cpu_seconds()
            result = drive(port, level, args.requests, args.max_seconds, args.k)
            result.server_cpu_s = server.cpu_seconds() - cpu
            results[level] = result
            print(
                f"  {name} c={level}: {result.rps:.1f} req/s, p50 {result.pct(50):.1f} ms, "
                f"p99 {result.pct(99):.1f} ms, {result.errors} errors, "
                f"server CPU {result.cpu_ms_per_request:.1f} ms/request",
                file=sys.stderr,
                flush=True,
            )
    return results


def print_table(gunicorn: dict[int, LoadResult], dev: dict[int, LoadResult]) -> None:
    print(
        "| concurrency | gunicorn req/s | p50 ms | p99 ms | errors | CPU ms/req "
        "| dev server req/s | p50 ms | p99 ms | errors | CPU ms/req | req/s ratio | p50 ratio |"
    )
    print("|" + "---|" * 13)
    for level, g in gunicorn.items():
        d = dev.get(level)
        cells = [f"{level}", f"{g.rps:.1f}", f"{g.pct(50):.1f}", f"{g.pct(99):.1f}", f"{g.errors}"]
        cells += [f"{g.cpu_ms_per_request:.1f}"]
        if d is not None:
            cells += [f"{d.rps:.1f}", f"{d.pct(50):.1f}", f"{d.pct(99):.1f}", f"{d.errors}"]
            cells += [f"{d.cpu_ms_per_request:.1f}"]
            cells += [f"{g.rps / d.rps:.2f}x" if d.rps else "-"]
            cells += [f"{d.pct(50) / g.pct(50):.2f}x"]
        else:
            cells += ["-"] * 7
        print("| " + " | ".join(cells) + " |")


def check_targets(results: dict[int, LoadResult]) -> None:
    if 4 not in results:
        return
    r = results[4]
    holds = r.pct(50) <= 20 and r.pct(99) <= 60 and r.errors == 0
    print(
        f"\nTarget at concurrency 4 (p50 <= 20 ms, p99 <= 60 ms, 0 errors): "
        f"p50 {r.pct(50):.1f} ms, p99 {r.pct(99):.1f} ms, {r.errors} errors -> "
        f"{'holds' if holds else 'MISSED'}"
    )


def profile(args: argparse.Namespace, repeats: int = 50) -> None:
    """Where one request's time goes, in this process, stage by stage."""
    import faiss
    import torch

    from recommender.api import create_app
    from recommender.ranking import RankingOptions, rank
    from recommender.service import Recommender

    # As in a gunicorn worker (two workers share the cores): see recommender/server.py.
    threads = max(1, (os.cpu_count() or 1) // (args.workers or 2))
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    service = Recommender.load(args.model, args.index, engine=args.engine)
    classifier = service.classifier
    tokenizer = getattr(classifier, "tokenizer", None)
    client = create_app(service=service).test_client()
    options = RankingOptions(k=args.k)
    stages: dict[str, list[tuple[float, float]]] = {}

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        spent = (time.perf_counter() - t0, time.process_time() - c0)
        stages.setdefault(name, []).append(spent)

    for i in range(repeats + 5):
        if i == 5:  # the first five warm up
            stages.clear()
        text = TEXTS[i % len(TEXTS)]
        if tokenizer is not None:
            with stage("tokenize"):
                tokenizer([text])
        with stage("classify (tokenize + model)"):
            vector = classifier.predict_proba([text])[0]
        with stage("index search (k=50)"):
            service.index.search(vector[None, :], 50)
        with stage("rank (search + select + metadata)"):
            tracks = rank(vector, service.index, options)
        with stage("JSON encode"):
            json.dumps({"tracks": [t.to_dict() for t in tracks]}, ensure_ascii=False)
        with stage("whole request, Flask test client"):
            client.post("/recommend", json={"text": text, "k": args.k})
    print(
        f"\nIn-process profile of one request ({repeats} texts, {threads} torch/FAISS "
        f"thread(s); wall time, and CPU time, which contention does not inflate):\n"
    )
    print("| stage | wall p50 ms | wall p90 ms | CPU mean ms |")
    print("|---|---|---|---|")
    for name, values in stages.items():
        wall, cpu = (np.asarray(v) * 1e3 for v in zip(*values, strict=True))
        print(
            f"| {name} | {np.percentile(wall, 50):.2f} | {np.percentile(wall, 90):.2f} "
            f"| {cpu.mean():.2f} |"
        )


def build_stand_in(kind: str, directory: Path) -> tuple[str, str]:
    """A random-weight checkpoint and the sample catalogue indexed with it, for timing only."""
    catalogue = ROOT / "catalog" / "sample.jsonl"
    from recommender.testing import build_bundled_architecture, save_tiny_checkpoint

    if kind == "tiny":
        model = save_tiny_checkpoint(directory / "tiny-model")
    else:
        lyrics = [json.loads(line)["lyrics"] for line in catalogue.open(encoding="utf-8")]
        model = build_bundled_architecture(directory / "small-model", lyrics + list(TEXTS))
    index = directory / f"{kind}-index"
    subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(catalogue), "-o", str(index)]
        + ["--model", str(model), "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return str(model), str(index)


def index_sample(model: str, output: Path, engine: str | None) -> str:
    """The sample catalogue indexed with ``model`` (when no sample index is shipped yet)."""
    catalogue = ROOT / "catalog" / "sample.jsonl"
    command = [sys.executable, "-m", "recommender", "index", str(catalogue), "-o", str(output)]
    command += ["--model", model, "--json"] + (["--engine", engine] if engine else [])
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return str(output)


def export_onnx(model: str, precision: str, directory: Path) -> tuple[str, str]:
    """``model`` exported to ONNX (fp32 or int8) and the sample catalogue indexed with it."""
    export = directory / f"onnx-{precision}"
    command = [sys.executable, "-m", "recommender", "export-onnx", model, "-o", str(export)]
    subprocess.run(command + (["--int8"] if precision == "int8" else []), check=True)
    return str(export), index_sample(str(export), directory / f"onnx-{precision}-index", "onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--index", default=None, help="index dir (default: the sample index)")
    parser.add_argument("--engine", default=None, choices=["torch", "onnx"])
    parser.add_argument(
        "--stand-in",
        choices=["tiny", "small"],
        default=None,
        help="time a random-weight model instead: the tests' tiny one, or the bundled "
        "model's architecture (hidden 256, 6 layers)",
    )
    parser.add_argument(
        "--onnx",
        choices=["fp32", "int8"],
        default=None,
        help="export the model to ONNX, index the sample catalogue with it, serve that",
    )
    parser.add_argument("--workers", type=int, default=None, help="default: serve's default")
    parser.add_argument(
        "--compute-slots", dest="threads", type=int, default=None, help="serve's --compute-slots"
    )
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--requests", type=int, default=300, help="per concurrency level")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per concurrency level")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--no-dev-server", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also time one request's stages")
    args = parser.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",") if c]
    from recommender.classifier import resolve_model
    from recommender.service import default_index

    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        if args.stand_in:
            args.model, args.index = build_stand_in(args.stand_in, Path(tmp))
        # What `recommender serve` runs by default, or the checkpoint to export with --onnx.
        args.model, args.engine = resolve_model(
            args.model, engine="torch" if args.onnx else args.engine, device="cpu"
        )
        if args.index is None and not Path(default_index()).exists():
            args.index = index_sample(args.model, Path(tmp) / "sample-index", args.engine)
        args.index = args.index or default_index()
        for what, path in (("model", args.model), ("index", args.index)):
            if not Path(path).exists():
                parser.error(f"no {what} at {path}; pass --{what}, or --stand-in")
        if args.onnx:
            args.model, args.index = export_onnx(args.model, args.onnx, Path(tmp))
            args.engine = "onnx"
        print(
            f"model {args.model}, index {args.index}, {os.cpu_count()} CPUs, "
            f"{args.requests} requests or {args.max_seconds:.0f}s per level; "
            f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        port = free_port()
        gunicorn = run_server("gunicorn", gunicorn_command(args, port), port, args, Path(tmp))
        dev: dict[int, LoadResult] = {}
        if not args.no_dev_server:
            port = free_port()
            dev = run_server("dev-server", dev_command(args, port), port, args, Path(tmp))
        print()
        print_table(gunicorn, dev)
        check_targets(gunicorn)
        if args.profile:
            profile(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
