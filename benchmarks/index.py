"""Batch indexing throughput per engine: `recommender index` on a synthetic catalogue.

    python benchmarks/index.py [--tracks 10000] [--quick] [--model DIR]

The catalogue (JSON Lines: track_id, title, artist, genre, lyrics of verses and a repeated
chorus) is generated deterministically into a temporary directory from the repository's own
lyrics. The model is the bundled one (or ``--model DIR``); without either, a stand-in of about
the bundled model's architecture is built there (random weights) and the printout
says so. Each engine (PyTorch, ONNX Runtime fp32, int8) indexes the whole catalogue as its own
`recommender index` process, one after the other, and the rates are printed beside PyTorch's
(rates from different runs on this shared machine are not comparable; ratios are).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classify import _stanzas, corpus_lines

from recommender.testing import build_bundled_architecture

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = ROOT / "recommender" / "bundled_model"
GENRES = ("ballad", "rock", "hiphop", "folk", "indie", "trot", "r&b", "jazz", "pop", "ost")


def synthetic_catalogue(path: Path, n: int, *, seed: int = 1) -> Path:
    """``n`` tracks whose lyrics are 2-4 verses with a repeated chorus, deterministic."""
    rng = random.Random(seed)
    stanzas = _stanzas()
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            chorus = rng.choice(stanzas)
            song: list[str] = []
            for verse in rng.sample(stanzas, rng.randint(2, 4)):
                song += [verse, chorus]
            row = {
                "track_id": f"syn-{i:07d}",
                "title": f"노래 {i}",
                "artist": f"가수 {rng.randrange(n // 10 + 1)}",
                "genre": rng.choice(GENRES),
                "lyrics": "\n\n".join(song),
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stdout, stderr = process.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stdout}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="1,000 tracks")
    parser.add_argument("--model", default=None, help="Checkpoint (default: the bundled model).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--build-standin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_standin:
        build_bundled_architecture(Path(args.build_standin), corpus_lines())
        return
    tracks = 1000 if args.quick else args.tracks
    cli = [sys.executable, "-m", "recommender"]
    print(
        f"# index benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-index-") as scratch:
        work = Path(scratch)
        catalogue = synthetic_catalogue(work / "catalogue.jsonl", tracks)
        if args.model:
            model, model_note = Path(args.model), f"model {args.model}"
        elif (BUNDLED_MODEL / "config.json").is_file():
            model, model_note = BUNDLED_MODEL, "the bundled model"
        else:
            model = work / "standin"
            # In a child, so that this process stays small and children's peak RSS is theirs.
            subprocess.run([sys.executable, __file__, "--build-standin", str(model)], check=True)
            model_note = (
                "NO bundled model here: a stand-in of its architecture (ELECTRA, 6 layers, "
                "hidden 256, random weights)"
            )
        print(f"{tracks} synthetic tracks; {model_note}", flush=True)
        engines = {"torch": model}
        for precision in ("fp32", "int8"):
            out = work / f"onnx-{precision}"
            flag = ["--int8"] if precision == "int8" else []
            run([*cli, "export-onnx", str(model), "-o", str(out), *flag])
            engines[f"onnx-{precision}"] = out
        results = {}
        for engine, model_dir in engines.items():
            seconds, rss = run(
                [
                    *cli,
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
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
