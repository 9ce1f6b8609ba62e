"""Classification throughput: the reference model card's one-text loop beside the project's
engines (PyTorch batches, ONNX Runtime fp32 and int8), on the same texts, in the same run.

    python benchmarks/classify.py [--texts 512] [--quick] [--card-every 8] [--rounds 4]

Texts: short diary lines and full multi-verse lyrics, generated deterministically from the
repository's own Korean text (data/diary/train.tsv, catalog/sample.jsonl). Checkpoints, built
in a temporary directory: the bundled model (skipped with a note when absent) and one with the
reference model's exact architecture (ElectraForSequenceClassification, 12 layers, hidden 768,
12 heads, intermediate 3072, vocabulary 35,000, 512 positions) with random weights and the
bundled model's tokenizer (without one, a WordPiece trained on the same local text).

Every engine runs in its own child process (so peak RSS is that engine's), all loaded at once
and driven in rounds, the order rotating each round, so that load from other work on this
shared machine falls on every engine alike. The model-card loop is slow: it runs on every
``--card-every``-th text of each round and its rate is extrapolated (the printout says so).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.testing import SENTENCES

ROOT = Path(__file__).resolve().parent.parent
DIARY = ROOT / "data" / "diary" / "train.tsv"
CATALOGUE = ROOT / "catalog" / "sample.jsonl"
ENGINES = ("card", "torch", "onnx-fp32", "onnx-int8")
LABELS = {
    "card": "model card loop (1 text/call)",
    "torch": "PyTorch batches (project)",
    "onnx-fp32": "ONNX Runtime fp32",
    "onnx-int8": "ONNX Runtime int8",
}
FALLBACK_LINES = [
    *SENTENCES[:6],  # one diary line per emotion
    "바람이 불어오는 곳 그곳으로 가네",
    "그대 없는 밤은 너무 길어요",
]


# ---------------------------------------------------------------------------------------------
# Texts


def _diary_lines() -> list[str]:
    if not DIARY.is_file():
        return list(FALLBACK_LINES)
    lines = DIARY.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines if line.strip()]


def _stanzas() -> list[str]:
    if not CATALOGUE.is_file():
        return ["\n".join(FALLBACK_LINES[i : i + 4]) for i in range(0, len(FALLBACK_LINES), 2)]
    stanzas = []
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        lyrics = json.loads(line).get("lyrics") or ""
        stanzas += [s.strip() for s in lyrics.split("\n\n") if s.strip()]
    return stanzas


def benchmark_texts(n: int, *, lyrics_share: float = 1 / 3, seed: int = 0) -> list[str]:
    """``n`` texts, deterministic: diary lines and songs of verses and a repeated chorus."""
    rng = random.Random(seed)
    diary, stanzas = _diary_lines(), _stanzas()
    n_lyrics = round(n * lyrics_share)
    texts = [rng.choice(diary) for _ in range(n - n_lyrics)]
    for _ in range(n_lyrics):
        chorus = rng.choice(stanzas)
        verses = rng.sample(stanzas, rng.randint(3, 5))
        song: list[str] = []
        for verse in verses:
            song += [verse, chorus]
        texts.append("\n\n".join(song))
    rng.shuffle(texts)
    return texts


def corpus_lines() -> list[str]:
    return _diary_lines() + _stanzas()


# ---------------------------------------------------------------------------------------------
# Checkpoints


def bundled_tokenizer() -> Any | None:
    """The bundled model's tokenizer where there is one: its token counts are realistic."""
    from transformers import AutoTokenizer

    from recommender.classifier import BUNDLED_MODEL

    if not (BUNDLED_MODEL / "tokenizer.json").is_file():
        return None
    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL)
    tokenizer.model_max_length = 512
    return tokenizer


# ---------------------------------------------------------------------------------------------
# The child process: one engine, driven by JSON commands on stdin


def _model_card_loop(checkpoint: str, device: str = "cpu") -> Any:
    """The reference card's ``analyze_emotion``: one text per call, truncated at 512 tokens
    (or at the model's own limit where that is shorter, as for the bundled model)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).to(device)
    labels = ["angry", "anxious", "embarrassed", "happy", "heartache", "sad"]
    max_length = min(512, model.config.max_position_embeddings)

    def analyze_emotion(text: str) -> dict[str, float]:
        inputs = tokenizer(
            text, return_tensors="pt", truncation=True, max_length=max_length, padding=True
        ).to(device)
        with torch.no_grad():
            outputs = model(**inputs)
        probs = torch.softmax(outputs.logits, dim=1)
        return {label: float(probs[0][i]) for i, label in enumerate(labels)}

    def predict(texts: list[str]) -> np.ndarray:
        rows = [analyze_emotion(text) for text in texts]
        return np.array([[row[label] for label in labels] for row in rows], dtype=np.float32)

    return predict


def worker(engine: str, model_dir: str, threads: int | None) -> None:
    start = time.perf_counter()
    if engine == "card":
        if threads:
            import torch

            torch.set_num_threads(threads)
        predict = _model_card_loop(model_dir)
    else:
        from recommender.classifier import EmotionClassifier

        classifier = EmotionClassifier.from_pretrained(
            model_dir, backend="torch" if engine == "torch" else "onnx", threads=threads
        )
        predict = classifier.predict_proba
    predict(["오늘은 정말 행복한 하루였다", "내일 시험이 걱정된다"])  # warm-up
    print(json.dumps({"load_s": time.perf_counter() - start}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("stop"):
            break
        start = time.perf_counter()
        probs = predict(command["texts"])
        seconds = time.perf_counter() - start
        reply = {"seconds": seconds, "probs": probs.tolist(), "max_rss_mb": peak_rss_mb()}
        print(json.dumps(reply), flush=True)
    print(json.dumps({"max_rss_mb": peak_rss_mb()}), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set. ``ru_maxrss`` survives ``exec`` and would report the
    parent's peak at fork time, so the kernel's high-water mark of this image (VmHWM) is read
    where there is one."""
    import resource

    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Child:
    """A worker process: one JSON command per line in, one JSON reply per line out."""

    def __init__(self, engine: str, model_dir: Path, threads: int | None) -> None:
        self.engine = engine
        command = [sys.executable, __file__, "--worker", engine, "--model", str(model_dir)]
        self.process = subprocess.Popen(
            command + (["--threads", str(threads)] if threads else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine} worker died (exit {self.process.wait()})")
        return json.loads(line)


# ---------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Row:
    engine: str
    texts: int = 0
    seconds: float = 0.0
    load_s: float = 0.0
    max_rss_mb: float = 0.0
    agreement: float = float("nan")
    max_delta: float = float("nan")

    @property
    def rate(self) -> float:
        return self.texts / self.seconds if self.seconds else float("nan")


def export_engines(checkpoint: Path, workdir: Path) -> dict[str, Path]:
    from recommender.onnx_export import export_onnx

    dirs = {"card": checkpoint, "torch": checkpoint}
    for precision in ("fp32", "int8"):
        if (workdir / f"onnx-{precision}" / "model.onnx").is_file():
            dirs[f"onnx-{precision}"] = workdir / f"onnx-{precision}"
            continue
        start = time.perf_counter()
        dirs[f"onnx-{precision}"] = export_onnx(
            checkpoint, workdir / f"onnx-{precision}", quantize=precision == "int8"
        )
        print(f"  exported ONNX {precision} in {time.perf_counter() - start:.0f} s", flush=True)
    return dirs


def run_checkpoint(
    name: str,
    dirs: dict[str, Path],
    texts: list[str],
    *,
    rounds: int,
    card_every: int,
    threads: int | None,
) -> list[Row]:
    """Time every engine on ``texts`` in rounds; after each round, print the table so far."""
    children = {engine: Child(engine, dirs[engine], threads) for engine in ENGINES}
    rows = {engine: Row(engine) for engine in ENGINES}
    for engine, child in children.items():
        rows[engine].load_s = child.receive()["load_s"]  # loads run in parallel, then wait
    probs: dict[str, dict[int, np.ndarray]] = {engine: {} for engine in ENGINES}
    chunks = np.array_split(np.arange(len(texts)), rounds)
    for r, chunk in enumerate(chunks):
        order = ENGINES[r % len(ENGINES) :] + ENGINES[: r % len(ENGINES)]
        for engine in order:
            ids = chunk[::card_every] if engine == "card" else chunk
            children[engine].send({"texts": [texts[i] for i in ids]})
            reply = children[engine].receive()
            rows[engine].texts += len(ids)
            rows[engine].seconds += reply["seconds"]
            rows[engine].max_rss_mb = reply["max_rss_mb"]
            probs[engine].update(zip(ids.tolist(), np.asarray(reply["probs"]), strict=True))
        _compare(rows, probs)
        done = sum(len(c) for c in chunks[: r + 1])
        if r + 1 < rounds:
            table = format_table(name, list(rows.values()), card_every=card_every)
            print(f"\n  after round {r + 1}/{rounds} ({done}/{len(texts)} texts):\n{table}")
            print("", flush=True)
    for engine, child in children.items():
        child.send({"stop": True})
        rows[engine].max_rss_mb = child.receive()["max_rss_mb"]
        child.process.wait()
    return list(rows.values())


def _compare(rows: dict[str, Row], probs: dict[str, dict[int, np.ndarray]]) -> None:
    """Argmax agreement and largest probability difference of each engine against PyTorch."""
    reference = probs["torch"]
    for engine, row in rows.items():
        ids = sorted(probs[engine])
        a = np.stack([probs[engine][i] for i in ids])
        b = np.stack([reference[i] for i in ids])
        row.agreement = float((a.argmax(1) == b.argmax(1)).mean())
        row.max_delta = float(np.abs(a - b).max())


def format_table(name: str, rows: list[Row], *, card_every: int) -> str:
    card = rows[0].rate
    lines = [
        f"### {name}",
        "",
        "| engine | texts/s | × model card | peak RSS (MB) | load (s) "
        "| argmax agreement vs PyTorch | max abs Δp |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        note = f" ¹ ({row.texts} texts)" if row.engine == "card" else ""
        lines.append(
            f"| {LABELS[row.engine]}{note} | {row.rate:.2f} | {row.rate / card:.2f}× "
            f"| {row.max_rss_mb:.0f} | {row.load_s:.1f} | {row.agreement:.1%} "
            f"| {row.max_delta:.4f} |"
        )
    lines += [
        "",
        f"¹ timed on every {card_every}th text of each round and extrapolated; it truncates "
        "at the model's window where the project windows, so it differs on long lyrics.",
    ]
    return "\n".join(lines)


def describe_texts(texts: list[str], tokenizer: Any, window: int) -> str:
    lengths = np.array([len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]])
    return (
        f"{len(texts)} texts: median {np.median(lengths):.0f} tokens, mean {lengths.mean():.0f}, "
        f"max {lengths.max()}; {np.mean(lengths > window):.0%} over the model's {window}-token "
        f"window (windowed by the project, truncated by the model card)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--card-every", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="64 texts, 2 rounds")
    parser.add_argument(
        "--only", choices=["bundled", "base"], default=None, help="One checkpoint only."
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="Threads for every engine (default: torch's)."
    )
    parser.add_argument(
        "--workdir", default=None, help="Keep checkpoints and exports here and reuse them."
    )
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.model, args.threads)
        return
    if args.quick:
        args.texts, args.rounds, args.card_every = 64, 2, 4

    from transformers import AutoConfig, AutoTokenizer

    from recommender.classifier import BUNDLED_MODEL
    from recommender.testing import build_reference_architecture, train_wordpiece

    texts = benchmark_texts(args.texts)
    print(
        f"# classify benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; threads per engine: {args.threads or 'torch default'}",
        flush=True,
    )
    tables = []
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as scratch:
        work = Path(args.workdir or scratch)
        checkpoints: list[tuple[str, Path]] = []
        if args.only in (None, "bundled"):
            if (BUNDLED_MODEL / "config.json").is_file():
                checkpoints.append(("bundled model", BUNDLED_MODEL))
            else:
                print(f"note: no bundled model at {BUNDLED_MODEL}; skipping it", flush=True)
        if args.only in (None, "base"):
            base = work / "koelectra-base-shape"
            if not (base / "config.json").is_file():
                print("building the reference-architecture checkpoint (random weights) ...")
                tokenizer = bundled_tokenizer() or train_wordpiece(corpus_lines())
                build_reference_architecture(base, tokenizer)
            checkpoints.append(("KoELECTRA-base shape (12×768, random weights)", base))
        for name, checkpoint in checkpoints:
            print(f"\n{name}: {checkpoint}", flush=True)
            tokenizer = AutoTokenizer.from_pretrained(checkpoint)
            window = min(512, AutoConfig.from_pretrained(checkpoint).max_position_embeddings)
            print("  " + describe_texts(texts, tokenizer, window), flush=True)
            dirs = export_engines(checkpoint, work / name.split()[0])
            rows = run_checkpoint(
                name,
                dirs,
                texts,
                rounds=args.rounds,
                card_every=args.card_every,
                threads=args.threads,
            )
            table = format_table(name, rows, card_every=args.card_every)
            tables.append(table)
            print("\n" + table, flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
