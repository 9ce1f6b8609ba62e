"""Search at catalogue scale: exact flat search beside IVF-Flat and HNSW-Flat, synthetic data.

    python benchmarks/search.py                      # 1M tracks, plus the flat/IVF crossover sweep
    python benchmarks/search.py --sizes 1000000,10000000

The catalogues look like real softmax outputs: most rows sit near a corner of the simplex
(one dominant emotion), some near an edge (two emotions), with exact and near duplicates, so
there are many near-ties. Every index is a ``TrackIndex`` built as the service builds it, and
queried through ``TrackIndex.search`` (array checks included). Times are noisy on a shared
machine; the ``vs flat`` column is the ratio to exact search measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.faiss_indexes import recall_at_k
from recommender.track_index import FAISS_INDEX, ModelIdentity, TrackIndex

MODEL = ModelIdentity("synthetic", "benchmark")
K = 10
# Service workers search one query each with one FAISS thread (request parallelism comes from
# the workers); on a loaded 2-core machine two OpenMP threads for one query add tail latency.
SINGLE_QUERY_THREADS = 1


def synthetic_catalogue(n: int, seed: int) -> np.ndarray:
    """``(n, 6)`` float32 rows shaped like a classifier's softmax over many lyrics."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.10, 0.15, 0.07, 0.30, 0.16, 0.22])
    out = np.empty((n, 6), dtype=np.float32)
    for start in range(0, n, 1_000_000):
        m = min(1_000_000, n - start)
        kind = rng.choice(4, size=m, p=[0.55, 0.2, 0.15, 0.1])
        # peaked softmax: one dominant emotion, logit margin 2..8
        logits = rng.normal(0.0, 1.0, size=(m, 6))
        logits[np.arange(m), rng.choice(6, size=m, p=prior)] += rng.uniform(2.0, 8.0, size=m)
        # two emotions at once (sad + heartache, anxious + embarrassed, ...)
        pair = rng.choice(6, size=(m, 2), p=prior)
        logits2 = rng.normal(0.0, 0.7, size=(m, 6))
        logits2[np.arange(m), pair[:, 0]] += rng.uniform(3.0, 6.0, size=m)
        logits2[np.arange(m), pair[:, 1]] += rng.uniform(3.0, 6.0, size=m)
        chosen = np.where((kind == 1)[:, None], logits2, logits)
        rows = np.exp(chosen - chosen.max(axis=1, keepdims=True))
        rows /= rows.sum(axis=1, keepdims=True)
        # sparse Dirichlet: mass spread over a random few emotions
        sparse = rng.dirichlet(np.full(6, 0.15), size=m)
        rows = np.where((kind == 2)[:, None], sparse, rows)
        # duplicates: copies of earlier rows, half of them with a tiny perturbation
        dup = np.flatnonzero(kind == 3)
        source = rng.integers(0, m, size=len(dup))
        copies = rows[source]
        jitter = rng.random(len(dup)) < 0.5
        copies[jitter] *= 1.0 + rng.normal(0.0, 1e-3, size=(int(jitter.sum()), 6))
        rows[dup] = copies / copies.sum(axis=1, keepdims=True)
        out[start : start + m] = rows
    return out


@dataclass
class Row:
    size: int
    kind: str
    params: str
    build_s: float
    index_mb: float
    rss_mb: float
    p50_ms: float
    p99_ms: float
    batch_qps: float
    recall: float


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def index_mb(index: TrackIndex) -> float:
    import faiss

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FAISS_INDEX
        faiss.write_index(index.index, str(path))
        return path.stat().st_size / 2**20


def single_query_ms(
    index: TrackIndex, queries: np.ndarray, count: int, budget_s: float
) -> np.ndarray:
    """Latencies of one-query searches, one at a time, as a service worker issues them."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(SINGLE_QUERY_THREADS)
    try:
        return _timed_singles(index, queries, count, budget_s)
    finally:
        faiss.omp_set_num_threads(threads)


def _timed_singles(
    index: TrackIndex, queries: np.ndarray, count: int, budget_s: float
) -> np.ndarray:
    for q in queries[:20]:
        index.search(q[None, :], K)
    times = []
    deadline = time.perf_counter() + budget_s
    for q in queries[:count]:
        q = q[None, :]
        start = time.perf_counter()
        index.search(q, K)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return np.asarray(times) * 1e3


def batch_qps(index: TrackIndex, queries: np.ndarray, repeats: int = 3) -> tuple[float, np.ndarray]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = index.search(queries, K)
        best = min(best, time.perf_counter() - start)
    return len(queries) / best, result.scores


def measure(
    size: int,
    kind: str,
    vectors: np.ndarray,
    tracks: object,
    queries: np.ndarray,
    truth: np.ndarray | None,
    args: argparse.Namespace,
) -> tuple[Row, np.ndarray]:
    gc.collect()
    start = time.perf_counter()
    index = TrackIndex(vectors, tracks, model=MODEL, device="cpu", index_type=kind)
    build = time.perf_counter() - start
    rss = rss_mb()
    budget = args.single_budget_s
    latencies = single_query_ms(index, queries, args.single_queries, budget)
    qps, scores = batch_qps(index, queries[: args.batch])
    recall = 1.0 if truth is None else recall_at_k(scores, truth)
    params = ", ".join(
        f"{k}={v}" for k, v in index.index_params.items() if k != "tuned_recall_at_10"
    )
    row = Row(
        size=size,
        kind=kind,
        params=params or "-",
        build_s=build,
        index_mb=index_mb(index),
        rss_mb=rss,
        p50_ms=float(np.percentile(latencies, 50)),
        p99_ms=float(np.percentile(latencies, 99)),
        batch_qps=qps,
        recall=recall,
    )
    print(
        f"  {kind:<5} built in {build:.1f}s ({params or 'exact'}); "
        f"p50 {row.p50_ms:.3f} ms over {len(latencies)} queries",
        file=sys.stderr,
        flush=True,
    )
    del index
    return row, scores


def tracks_table(n: int) -> object:
    import pyarrow as pa

    ids = pa.array(np.arange(n, dtype=np.int64)).cast(pa.string())
    return pa.table({"track_id": ids, "title": ids, "artist": ids})


def run_size(size: int, kinds: list[str], args: argparse.Namespace) -> list[Row]:
    print(f"{size:,} tracks: generating", file=sys.stderr, flush=True)
    vectors = synthetic_catalogue(size, seed=args.seed)
    queries = synthetic_catalogue(max(args.single_queries, args.batch), seed=args.seed + 1000)
    tracks = tracks_table(size)
    rows: list[Row] = []
    truth = None
    for kind in ["flat", *[k for k in kinds if k != "flat"]]:
        if kind == "hnsw" and size > args.hnsw_max:
            print(f"  hnsw skipped above --hnsw-max {args.hnsw_max:,}", file=sys.stderr)
            continue
        row, scores = measure(size, kind, vectors, tracks, queries, truth, args)
        if kind == "flat":
            truth = scores
        rows.append(row)
    return rows


def print_table(rows: list[Row]) -> None:
    header = (
        "| tracks | index | params | build s | index MB | RSS MB | p50 ms | p99 ms "
        "| p50 vs flat | batch q/s | batch vs flat | recall@10 |"
    )
    print(header)
    print("|" + "---|" * 12)
    flat: dict[int, Row] = {r.size: r for r in rows if r.kind == "flat"}
    for r in rows:
        base = flat.get(r.size)
        speed = f"{base.p50_ms / r.p50_ms:.1f}x" if base else "-"
        batch = f"{r.batch_qps / base.batch_qps:.1f}x" if base else "-"
        print(
            f"| {r.size:,} | {r.kind} | {r.params} | {r.build_s:.1f} | {r.index_mb:.0f} "
            f"| {r.rss_mb:.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {speed} "
            f"| {r.batch_qps:,.0f} | {batch} | {r.recall:.4f} |"
        )


def sweep(sizes: list[int], args: argparse.Namespace) -> None:
    """Flat against IVF single-query latency at small sizes: where `auto` should switch."""
    print("\nFlat/IVF crossover (single-query p50, ms):\n")
    print("| tracks | flat p50 | ivf p50 | ivf params | flat/ivf | ivf recall@10 |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        vectors = synthetic_catalogue(size, seed=args.seed)
        queries = synthetic_catalogue(args.batch, seed=args.seed + 1000)
        tracks = tracks_table(size)
        flat, truth = measure(size, "flat", vectors, tracks, queries, None, args)
        ivf, _ = measure(size, "ivf", vectors, tracks, queries, truth, args)
        print(
            f"| {size:,} | {flat.p50_ms:.3f} | {ivf.p50_ms:.3f} | {ivf.params} "
            f"| {flat.p50_ms / ivf.p50_ms:.2f}x | {ivf.recall:.4f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="comma-separated catalogue sizes")
    parser.add_argument("--kinds", default="flat,ivf,hnsw", help="index types to compare")
    parser.add_argument(
        "--sweep",
        default="10000,30000,100000,300000",
        help="sizes for the flat/IVF crossover sweep ('' to skip)",
    )
    parser.add_argument("--single-queries", type=int, default=2000)
    parser.add_argument("--single-budget-s", type=float, default=20.0, help="cap per index")
    parser.add_argument("--batch", type=int, default=1000, help="queries per batched search")
    parser.add_argument("--hnsw-max", type=int, default=2_000_000, help="skip HNSW above this")
    parser.add_argument("--threads", type=int, default=None, help="FAISS threads for batches")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads, "
        f"{os.cpu_count()} CPUs; k={K}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    rows: list[Row] = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        rows += run_size(size, kinds, args)
    if rows:
        print()
        print_table(rows)
    if args.sweep:
        sweep([int(s) for s in args.sweep.split(",") if s], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
