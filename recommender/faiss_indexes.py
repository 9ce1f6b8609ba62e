"""The FAISS structures behind a TrackIndex: exact flat, IVF-Flat or HNSW-Flat, and their tuning.

Every structure holds the same unit vectors (``sqrt(p)``) under inner product, and every one
keeps the full vectors (IVF-Flat in its lists, HNSW-Flat in its storage), so an exact search is
always available without a second copy. Approximate structures are tuned when built: the
smallest ``nprobe`` (IVF) or ``efSearch`` (HNSW) whose recall@10 against exact search reaches
``TARGET_RECALL`` on a fixed sample of queries is stored with the index.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

IndexType = Literal["auto", "flat", "ivf", "hnsw"]
INDEX_TYPES: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw")
# Below this many tracks `auto` means exact search: up to there one exact query stays within the
# single-query budget, above it IVF is faster at the target recall (benchmarks/search.py; figures
# in benchmarks/README.md).
AUTO_THRESHOLD = 20_000
TARGET_RECALL = 0.995
TUNING_QUERIES = 500
TUNING_K = 10
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def resolve_type(index_type: str, count: int, threshold: int | None = None) -> str:
    """The concrete type for ``index_type`` (``auto``: flat below the threshold, else IVF)."""
    if index_type not in INDEX_TYPES:
        from recommender.errors import InvalidInputError

        raise InvalidInputError(
            f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}"
        )
    if index_type != "auto":
        return index_type
    return "flat" if count < (AUTO_THRESHOLD if threshold is None else threshold) else "ivf"


def default_nlist(count: int) -> int:
    """About ``sqrt(n)`` lists (at least 39 training points each).

    Measured at 1M tracks: 1,000 lists reach recall@10 0.999 at nprobe 6 with a 5x faster build
    than 4,000 lists and no slower queries; six-number vectors make scanning a list cheap.
    """
    return max(1, min(int(round(math.sqrt(count))), count // 39))


def build(index_type: str, embedded: np.ndarray, params: dict[str, Any], *, seed: int = 0) -> Any:
    """A populated FAISS index of ``index_type`` over ``embedded``; fills ``params`` in place."""
    import faiss

    dimension = embedded.shape[1]
    index: Any
    if index_type == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif index_type == "ivf":
        nlist = int(params.setdefault("nlist", default_nlist(len(embedded))))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True
        index.cp.seed = seed
        sample = _sample(len(embedded), 64 * nlist, seed)
        index.train(embedded[sample] if sample is not None else embedded)
    elif index_type == "hnsw":
        m = int(params.setdefault("m", HNSW_M))
        index = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params.setdefault("ef_construction", HNSW_EF_CONSTRUCTION))
    else:  # pragma: no cover - resolve_type guards this
        raise ValueError(index_type)
    index.add(embedded)
    if index_type != "flat":
        knob = "nprobe" if index_type == "ivf" else "ef_search"
        if knob not in params:
            params[knob], params["tuned_recall_at_10"] = tune(index, index_type, embedded, seed)
        apply_search_params(index, index_type, params)
    return index


def apply_search_params(index: Any, index_type: str, params: dict[str, Any]) -> None:
    """Set the stored search-time knobs (``nprobe``, ``efSearch``) on a built or loaded index."""
    import faiss

    if index_type == "ivf":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    elif index_type == "hnsw":
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efSearch = int(params["ef_search"])


class Searcher:
    """Top ``k`` by inner product over one built index; ``exact`` scans everything.

    What each call needs is looked up once, here: a one-query search takes tens of
    microseconds, so per-call SWIG lookups would show. Search-time knobs travel in per-call
    parameters, never by mutating the shared index, so concurrent request threads are safe.
    IVF widens ``nprobe`` for large ``k`` so that the lists probed hold several times ``k``
    vectors; HNSW already searches with ``max(efSearch, k)``.
    """

    def __init__(self, index: Any, index_type: str, params: dict[str, Any]) -> None:
        import faiss

        self.index = index
        self.index_type = index_type
        self.exact_index = index
        self.nlist = 0
        self.per_list = 1.0
        self.cheap_k = sys.maxsize  # up to this k the stored search knobs suffice
        if index_type == "hnsw":
            self.exact_index = faiss.downcast_index(index.storage)
        elif index_type == "ivf":
            ivf = faiss.extract_index_ivf(index)
            self.nlist = int(ivf.nlist)
            self.per_list = max(ivf.ntotal / max(self.nlist, 1), 1.0)
            self.cheap_k = int(int(params["nprobe"]) * self.per_list / 4)

    def search(self, queries: np.ndarray, k: int, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        if exact and self.index_type == "ivf":
            return self.index.search(queries, k, params=_ivf_parameters(self.nlist))
        if exact:
            return self.exact_index.search(queries, k)
        if k <= self.cheap_k:
            return self.index.search(queries, k)
        nprobe = min(self.nlist, math.ceil(4 * k / self.per_list))
        return self.index.search(queries, k, params=_ivf_parameters(nprobe))


def tune(index: Any, index_type: str, embedded: np.ndarray, seed: int) -> tuple[int, float]:
    """The smallest search knob whose recall@10 on a fixed query sample reaches TARGET_RECALL."""
    import faiss

    queries = tuning_queries(embedded, TUNING_QUERIES, seed)
    k = min(TUNING_K, len(embedded))
    truth, _ = faiss.knn(queries, embedded, k, metric=faiss.METRIC_INNER_PRODUCT)
    if index_type == "ivf":
        ivf = faiss.extract_index_ivf(index)
        steps = [s for s in NPROBE_STEPS if s < ivf.nlist] + [ivf.nlist]
    else:
        steps = list(EF_SEARCH_STEPS)
    value, recall = steps[-1], 1.0
    for step in steps:
        if index_type == "ivf":
            params: Any = _ivf_parameters(step)
        else:
            params = faiss.SearchParametersHNSW(efSearch=step)  # type: ignore[attr-defined]
        scores, _ = index.search(queries, k, params=params)
        recall = recall_at_k(scores, truth)
        if recall >= TARGET_RECALL:
            value = step
            break
    log.info(
        "tuned %s: %s=%d gives recall@%d %.4f", index_type, _knob(index_type), value, k, recall
    )
    return value, round(float(recall), 4)


def _ivf_parameters(nprobe: int) -> Any:
    import faiss

    return faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]


def _knob(index_type: str) -> str:
    return "nprobe" if index_type == "ivf" else "efSearch"


def recall_at_k(scores: np.ndarray, truth: np.ndarray, tolerance: float = 1e-5) -> float:
    """Share of returned results as good as the exact k-th best (ties count as hits).

    Emotion vectors have many exact and near duplicates, so which of several tied rows comes
    back is arbitrary; a result is a hit when its score reaches the exact k-th score.
    """
    kth = truth[:, -1:]
    hits = (scores >= kth - tolerance) & np.isfinite(scores) & (scores > -1e30)
    return float(hits.sum() / truth.size)


def tuning_queries(embedded: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Catalogue rows and sharpened/flattened variants of them, as unit query vectors."""
    rng = np.random.default_rng(seed + 1)
    rows = embedded[rng.integers(0, len(embedded), size=count)].astype(np.float64) ** 2
    power = rng.choice([0.5, 1.0, 2.0], size=(count, 1))
    probabilities = rows**power
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(np.sqrt(probabilities), dtype=np.float32)


def _sample(count: int, size: int, seed: int) -> np.ndarray | None:
    if count <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(count, size=size, replace=False))
