"""Batch indexing: throughput per engine, in-process vs Ray, and a catalogue at scale.

    python benchmarks/index.py [--only engines|ray] [--tracks 10000] [--quick] [--model DIR]
    nice python benchmarks/index.py --scale 1000000 [--shards 100] [--actors 2]

The catalogue (JSON Lines: track_id, title, artist, genre, lyrics of verses and a repeated
chorus) is generated deterministically into a temporary directory from the repository's own
lyrics. The model is the bundled one (or ``--model DIR``); without either, a stand-in of about
the bundled model's architecture is built there (random weights) and the printout
says so. Each engine (PyTorch, ONNX Runtime fp32, int8) indexes the whole catalogue as its own
`recommender index` process, one after the other, and the rates are printed beside PyTorch's
(rates from different runs on this shared machine are not comparable; ratios are).

The Ray table (``--ray-tracks``, 2,000 by default, in four shards) runs the same model
in-process and on a local Ray instance with 1 and 2 actors. Each is run twice, on 20 tracks and
on all of them: the 20-track command is the start-up cost (process, Ray, model loads), and the
rate is the extra tracks over the extra time, so start-up is stated apart from throughput.

``--scale N`` indexes N synthetic tracks in ``--shards`` JSON Lines files end to end on a local
Ray instance with a tiny random model (the pipeline at that size, not the model's speed): wall
time and its phases (from the command's log), peak RSS of the driver, of each actor and of all
the command's processes together, and the size of the catalogue and of the index.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from classify import _stanzas, corpus_lines

from recommender.testing import build_bundled_architecture

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = ROOT / "recommender" / "bundled_model"
GENRES = ("ballad", "rock", "hiphop", "folk", "indie", "trot", "r&b", "jazz", "pop", "ost")


def synthetic_rows(n: int, *, seed: int = 1) -> Iterator[dict[str, str]]:
    """``n`` tracks whose lyrics are 2-4 verses with a repeated chorus, deterministic."""
    rng = random.Random(seed)
    stanzas = _stanzas()
    for i in range(n):
        chorus = rng.choice(stanzas)
        song: list[str] = []
        for verse in rng.sample(stanzas, rng.randint(2, 4)):
            song += [verse, chorus]
        yield {
            "track_id": f"syn-{i:07d}",
            "title": f"노래 {i}",
            "artist": f"가수 {rng.randrange(n // 10 + 1)}",
            "genre": rng.choice(GENRES),
            "lyrics": "\n\n".join(song),
        }


def synthetic_catalogue(path: Path, n: int, *, seed: int = 1) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for row in synthetic_rows(n, seed=seed):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def synthetic_shards(directory: Path, n: int, shards: int, *, seed: int = 1) -> Path:
    """The same tracks as :func:`synthetic_catalogue`, in ``shards`` JSON Lines files."""
    directory.mkdir(parents=True, exist_ok=True)
    per_shard = -(-n // shards)
    files = [(directory / f"part-{s:04d}.jsonl").open("w", encoding="utf-8") for s in range(shards)]
    try:
        for i, row in enumerate(synthetic_rows(n, seed=seed)):
            files[i // per_shard].write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        for file in files:
            file.close()
    return directory


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    seconds, memory, _ = run_watched(command)
    return seconds, memory.driver


class Memory(NamedTuple):
    driver: float  # peak RSS of the command's own process, MB
    actors: list[float]  # peak RSS of each Ray classifier actor
    # Largest sum of the RSS of all its processes seen at one moment: pages of Ray's object
    # store count once per process that maps them, so this overstates the memory in use.
    together: float


def _descendants(root: int) -> dict[int, str]:
    """The processes below ``root`` (a local Ray instance's are), with their command lines."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            stack.append(child)
    return {pid: line.decode(errors="replace") for pid, line in found.items()}


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_watched(command: list[str], env: dict[str, str] | None = None) -> tuple[float, Memory, str]:
    """Wall seconds, peak memory and stderr of a child process and everything it starts."""
    peaks: dict[int, tuple[str, float]] = {}
    together = 0.0
    done = threading.Event()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        environment = {**os.environ, **(env or {})}
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=environment)

        def watch() -> None:
            nonlocal together
            while not done.wait(0.5):
                processes = {process.pid: "driver", **_descendants(process.pid)}
                total = 0.0
                for pid, line in processes.items():
                    total += _status_mb(pid, "VmRSS")
                    peak = max(peaks.get(pid, ("", 0.0))[1], _status_mb(pid, "VmHWM"))
                    peaks[pid] = (line, peak)
                together = max(together, total)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stdout}\n{stderr}")
    actors = [mb for line, mb in peaks.values() if "MapWorker" in line and "Classifier" in line]
    return seconds, Memory(usage.ru_maxrss / 1024, actors, together), stderr


def resolve_benchmark_model(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    if args.model:
        return Path(args.model), f"model {args.model}"
    if (BUNDLED_MODEL / "config.json").is_file():
        return BUNDLED_MODEL, "the bundled model"
    model = work / "standin"
    # In a child, so that this process stays small and children's peak RSS is theirs.
    subprocess.run([sys.executable, __file__, "--build-standin", str(model)], check=True)
    return model, (
        "NO bundled model here: a stand-in of its architecture (ELECTRA, 6 layers, "
        "hidden 256, random weights)"
    )


def engines_table(args: argparse.Namespace, work: Path) -> None:
    tracks = 1000 if args.quick else args.tracks
    catalogue = synthetic_catalogue(work / "catalogue.jsonl", tracks)
    model, model_note = resolve_benchmark_model(args, work)
    print(f"\n## Engines: {tracks} synthetic tracks; {model_note}", flush=True)
    engines = {"torch": model}
    for precision in ("fp32", "int8"):
        out = work / f"onnx-{precision}"
        flag = ["--int8"] if precision == "int8" else []
        run([*CLI, "export-onnx", str(model), "-o", str(out), *flag])
        engines[f"onnx-{precision}"] = out
    results = {}
    for engine, model_dir in engines.items():
        seconds, rss = run(
            [
                *CLI,
                "index",
                str(catalogue),
                "-o",
                str(work / f"index-{engine}"),
                "--model",
                str(model_dir),
                "--engine",
                engine.split("-")[0],
                "--batch-size",
                str(args.batch_size),
                "--json",
            ]
        )
        results[engine] = (tracks / seconds, seconds, rss)
        print(f"  {engine}: {tracks / seconds:.1f} tracks/s", flush=True)
    base = results["torch"][0]
    print(
        "\n| engine | tracks/s | × PyTorch | wall (s) | peak RSS (MB) |\n|---|---:|---:|---:|---:|"
    )
    for engine, (rate, seconds, rss) in results.items():
        print(f"| {engine} | {rate:.1f} | {rate / base:.2f}× | {seconds:.0f} | {rss:.0f} |")
    print(
        "\nWall time covers the whole command: start-up, model load, reading the catalogue, "
        "classifying every lyric, building and saving the index."
    )


def ray_table(args: argparse.Namespace, work: Path) -> None:
    """In-process vs Ray with 1 and 2 actors; start-up (a 20-track command) apart."""
    tracks, small = args.ray_tracks, 20
    catalogues = {
        n: synthetic_shards(work / f"ray-catalogue-{n}", n, 4, seed=2) for n in (small, tracks)
    }
    model_note = "the default model (the bundled int8 ONNX export on a CPU)"
    model_flags = []
    if args.model:
        model_note, model_flags = f"model {args.model}", ["--model", args.model]
    print(f"\n## In-process vs Ray: {tracks} synthetic tracks in 4 shards; {model_note}")
    # Ray's workers run one intra-op thread each (Ray sets OMP_NUM_THREADS=1); in-process runs
    # torch's default (one a core) and, as a row like the actors, one thread.
    modes = {
        "in-process": ([], {}),
        "in-process, 1 thread": ([], {"OMP_NUM_THREADS": "1"}),
        "Ray, 1 actor": (["--ray", "--actors", "1"], {}),
        "Ray, 2 actors": (["--ray", "--actors", "2"], {}),
    }
    results = {}
    for mode, (flags, env) in modes.items():
        if args.ray_modes and mode not in args.ray_modes:
            continue
        timings = {}
        for n, catalogue in catalogues.items():
            output = work / f"ray-index-{n}"
            shutil.rmtree(output, ignore_errors=True)
            command = [*CLI, "index", str(catalogue), "-o", str(output), "--json"]
            seconds, memory, _ = run_watched([*command, *model_flags, *flags], env)
            timings[n] = (seconds, memory)
        start_up = timings[small][0]
        rate = (tracks - small) / (timings[tracks][0] - start_up)
        results[mode] = (rate, start_up, timings[tracks][0], timings[tracks][1])
        print(f"  {mode}: {rate:.1f} tracks/s after {start_up:.1f} s of start-up", flush=True)
    base = results.get("in-process", (float("nan"),))[0]
    print(
        "\n| run | tracks/s | × in-process | start-up (s) | wall (s) | peak RSS driver (MB) "
        "| peak RSS sum, all processes (MB) |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for mode, (rate, start_up, wall, memory) in results.items():
        print(
            f"| {mode} | {rate:.1f} | {rate / base:.2f}× | {start_up:.1f} | {wall:.0f} "
            f"| {memory.driver:.0f} | {memory.together:.0f} |"
        )
    print(
        f"\ntracks/s = {tracks - small} / (wall of {tracks} tracks − wall of {small}); start-up = "
        f"the wall time of the {small}-track command (process, Ray, model loads, index write)."
    )


PHASES = {
    "Ray ready": "start-up: process, imports, local Ray instance",
    "planned": "files read and checked in Ray tasks, model identified, plan",
    "writing the index": "classification on the actors, parts kept",
    "end": "index built and written, Ray stopped",
}


def scale_run(args: argparse.Namespace, work: Path) -> None:
    """A large synthetic catalogue through Ray end to end with a tiny random model."""
    from recommender.testing import save_tiny_checkpoint

    model = save_tiny_checkpoint(work / "tiny-model")
    started = time.perf_counter()
    catalogue = synthetic_shards(work / "scale-catalogue", args.scale, args.shards)
    size = sum(f.stat().st_size for f in catalogue.iterdir())
    print(
        f"\n## Scale: {args.scale:,} synthetic tracks in {args.shards} JSON Lines shards "
        f"({size / 1e6:.0f} MB, written in {time.perf_counter() - started:.0f} s); tiny random "
        f"model (ELECTRA 1 layer, hidden 16, 64 positions, torch); {args.actors} actors",
        flush=True,
    )
    output = work / "scale-index"
    command = [*CLI, "-v", "index", str(catalogue), "-o", str(output), "--model", str(model)]
    command += ["--engine", "torch", "--ray", "--actors", str(args.actors), "--json"]
    launched = datetime.now()
    seconds, memory, stderr = run_watched(command)
    marks = {"start": launched}
    for line in stderr.splitlines():
        found = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)", line)
        if found:
            for mark in PHASES:
                if found.group(2).startswith(mark):
                    marks[mark] = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
    marks["end"] = launched + (datetime.now() - launched)
    index_size = sum(f.stat().st_size for f in output.iterdir())
    print(f"\nwall {seconds:.1f} s end to end: {args.scale / seconds:,.0f} tracks/s\n")
    print("| phase | s |\n|---|---:|")
    previous = marks["start"]
    for mark, what in PHASES.items():
        if mark in marks:
            print(f"| {what} | {(marks[mark] - previous).total_seconds():.1f} |")
            previous = marks[mark]
    classify = ("planned", "writing the index")
    if all(m in marks for m in classify):
        span = (marks[classify[1]] - marks[classify[0]]).total_seconds()
        print(f"\nclassification alone: {args.scale / span:,.0f} tracks/s")
    actors = ", ".join(f"{mb:.0f}" for mb in sorted(memory.actors))
    print(
        f"peak RSS: driver {memory.driver:.0f} MB; actors {actors} MB; sum over all the "
        f"command's processes {memory.together:.0f} MB (shared object-store pages counted in "
        f"each process)"
    )
    print(f"index directory {index_size / 1e6:.1f} MB; catalogue {size / 1e6:.0f} MB")


CLI = [sys.executable, "-m", "recommender"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["engines", "ray"], default=None)
    parser.add_argument("--tracks", type=int, default=10000, help="Engines table's tracks.")
    parser.add_argument("--quick", action="store_true", help="1,000 tracks in the engines table")
    parser.add_argument("--ray-tracks", type=int, default=2000, help="Ray table's tracks.")
    parser.add_argument("--ray-modes", nargs="*", help="Only these rows of the Ray table.")
    parser.add_argument("--model", default=None, help="Checkpoint (default: the bundled model).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--scale", type=int, default=None, help="Only the run at this size.")
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="Keep files here.")
    parser.add_argument("--build-standin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_standin:
        build_bundled_architecture(Path(args.build_standin), corpus_lines())
        return
    print(
        f"# index benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-index-", dir=args.workdir) as scratch:
        work = Path(scratch)
        if args.scale:
            scale_run(args, work)
        else:
            if args.only in (None, "engines"):
                engines_table(args, work)
            if args.only in (None, "ray"):
                ray_table(args, work)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
