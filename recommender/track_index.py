"""Where a vector becomes tracks: FAISS over the catalogue's emotion vectors, saved as a directory.

Vectors are probability distributions, so the index stores ``sqrt(p)``: these have unit L2
norm, and an inner-product search over them ranks exactly by the Bhattacharyya coefficient
``BC(p, q) = sum_i sqrt(p_i q_i)`` (1 for identical distributions, 0 for disjoint ones; the
Hellinger distance is ``sqrt(1 - BC)``). Unlike cosine over raw probabilities it does not
favour peaked vectors, and unlike L2 it is a true similarity between distributions.
"""

from __future__ import annotations

import functools
import glob
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from recommender import faiss_indexes
from recommender.emotions import EMOTIONS
from recommender.errors import IndexLoadError, InvalidInputError
from recommender.faiss_indexes import IndexType
from recommender.index_manifest import (
    FAISS_INDEX,
    FORMAT_VERSION,
    MANIFEST,
    TRACKS,
    VECTORS,
    Manifest,
    describe,
    file_checksums,
    read_manifest,
    rows_digest,
    verify_files,
)
from recommender.placement import faiss_gpus

log = logging.getLogger(__name__)

METRIC = "bhattacharyya"
DIMENSION = len(EMOTIONS)


class ModelIdentity(NamedTuple):
    """Which model made an index's vectors: a name for people, fingerprints for checks.

    ``source`` is the fingerprint of the checkpoint the weights come from (an ONNX export's
    source checkpoint; the fingerprint itself for a checkpoint; absent from manifests written
    before it was recorded). Indexes and models match by checkpoint, so an index built with one
    engine serves queries from another engine of the same checkpoint.
    """

    name: str
    fingerprint: str
    source: str | None = None

    @property
    def checkpoint(self) -> str:
        return self.source or self.fingerprint


class SearchResult(NamedTuple):
    """Per query, the ``k`` best rows (``-1`` where the index has fewer) and their scores."""

    scores: np.ndarray
    ids: np.ndarray


def check_vectors(vectors: Any, *, name: str = "vectors") -> np.ndarray:
    """C-contiguous float32 ``(n, 6)`` probability rows, or InvalidInputError naming the problem."""
    if (
        type(vectors) is np.ndarray
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and vectors.shape[1] == DIMENSION
        and vectors.size
        and vectors.flags.c_contiguous
        and vectors.min() >= 0  # NaN fails this, infinities fail the sums
        and np.abs(vectors.sum(axis=1) - 1.0).max() <= 1.01e-3
    ):
        return vectors  # the common case, a query per request, in a few microseconds
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != DIMENSION:
        raise InvalidInputError(
            f"{name} must have shape (n, {DIMENSION}); got {array.shape} of {array.dtype}"
        )
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(f"{name} must be numeric; got {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    sums = array.sum(axis=1)
    # One cheap pass for the common valid case (a query per request); details only on failure.
    if (
        (array >= 0).all()
        and np.isfinite(sums).all()
        and np.abs(sums - 1.0).max(initial=0) <= 1.01e-3
    ):
        return array
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{name} contain NaN or infinite values")
    if (array < 0).any():
        raise InvalidInputError(f"{name} must be probabilities; found negative values")
    if array.size and not np.allclose(sums, 1.0, atol=1e-3):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise InvalidInputError(f"{name} rows must sum to 1; row {worst} sums to {sums[worst]:.4f}")
    return array


def _embed(probabilities: np.ndarray) -> np.ndarray:
    """Probability rows to the unit vectors the index holds (see the module docstring)."""
    return np.ascontiguousarray(np.sqrt(probabilities), dtype=np.float32)


class TrackIndex:
    """Search over a catalogue's emotion vectors, with the tracks' metadata beside them.

    ``index_type`` ``auto`` is exact (flat) below ``auto_threshold`` tracks and IVF-Flat above
    it; ``flat``, ``ivf`` and ``hnsw`` force a type. ``index_params`` overrides the structure's
    parameters (``nlist``, ``nprobe``; ``m``, ``ef_construction``, ``ef_search``); search-time
    ones left out are tuned on the data when the index is built.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        tracks: Any,
        *,
        model: ModelIdentity,
        device: str | None = None,
        extra: Mapping[str, Any] | None = None,
        index_type: IndexType = "auto",
        index_params: Mapping[str, Any] | None = None,
        auto_threshold: int | None = None,
    ) -> None:
        self.vectors = check_vectors(vectors)
        if tracks.num_rows != len(self.vectors):
            raise InvalidInputError(
                f"{tracks.num_rows} track rows for {len(self.vectors)} vectors; they must match"
            )
        device = self._choose_device(device)
        if index_type == "auto" and device == "cuda":
            index_type = "flat"  # a GPU scans even 100M six-number vectors in milliseconds
        self.index_type = faiss_indexes.resolve_type(index_type, len(self.vectors), auto_threshold)
        self.index_params = dict(index_params or {})
        index = faiss_indexes.build(self.index_type, _embed(self.vectors), self.index_params)
        self._finish(tracks, model, device, extra, index)

    def _finish(
        self,
        tracks: Any,
        model: ModelIdentity,
        device: str | None,
        extra: Mapping[str, Any] | None,
        index: Any,
    ) -> None:
        import faiss

        self.tracks = tracks
        self.model = model
        self.extra = dict(extra or {})
        self.device = self._choose_device(device)
        if self.device == "cuda" and self.index_type != "flat":
            log.warning(
                "the %s index searches on the CPU; only flat indexes move to the GPU",
                self.index_type,
            )
            self.device = "cpu"
        if self.device == "cuda":
            index = faiss.index_cpu_to_all_gpus(index)
        self.index = index
        self._searcher = faiss_indexes.Searcher(index, self.index_type, self.index_params)

    @staticmethod
    def _choose_device(device: str | None) -> str:
        gpus = faiss_gpus()
        if device is None:
            device = "cuda" if gpus else "cpu"
        elif device.startswith("cuda") and not gpus:
            raise InvalidInputError(
                f"device {device!r} requested for the index, but this FAISS build sees no GPU "
                f"(install faiss-gpu on a CUDA machine)"
            )
        log.info("track index on %s", device)
        return "cuda" if device.startswith("cuda") else "cpu"

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: Any, k: int, *, exact: bool = False) -> SearchResult:
        """The ``k`` tracks nearest each query distribution, best first.

        An approximate index may miss a few true neighbours; ``exact`` scans every track.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer; got {k!r}")
        queries = check_vectors(queries, name="queries")
        scores, ids = self._searcher.search(_embed(queries), min(k, max(len(self), 1)), exact)
        if k > scores.shape[1]:
            pad = k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.clip(scores, 0.0, 1.0).astype(np.float32, copy=False)
        scores[ids < 0] = -np.inf
        return SearchResult(scores, ids.astype(np.int64, copy=False))

    def rows_of(self, track_ids: Iterable[str]) -> list[int]:
        """Row numbers of the given track ids (unknown ids are skipped)."""
        rows = self._rows_by_id
        return [rows[t] for t in track_ids if t in rows]

    @functools.cached_property
    def _rows_by_id(self) -> dict[str, int]:
        # Built on first use: a dict of millions of ids costs seconds and gigabytes at load.
        return {tid: i for i, tid in enumerate(self.tracks.column("track_id").to_pylist())}

    @property
    def manifest(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model._asdict(),
            "metric": METRIC,
            "dimension": DIMENSION,
            "emotions": list(EMOTIONS),
            "index_type": self.index_type,
            "index_params": self.index_params,
            "count": len(self),
            "rows_digest": rows_digest(self.tracks.column("track_id").to_pylist(), self.vectors),
            **self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index directory atomically: a reader sees the old index or the new one."""
        import faiss
        import pyarrow.parquet as pq

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = _staging(target, "tmp")
        staging.mkdir()
        try:
            np.save(staging / VECTORS, self.vectors)
            cpu_index = faiss.index_gpu_to_cpu(self.index) if self.device == "cuda" else self.index
            faiss.write_index(cpu_index, str(staging / FAISS_INDEX))
            pq.write_table(self.tracks, staging / TRACKS)
            manifest = {
                **self.manifest,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": file_checksums(staging),
            }
            try:  # what is written must read back: no machine paths, nothing mistyped
                Manifest.model_validate(manifest)
            except ValidationError as error:
                raise InvalidInputError(f"cannot save the index: {describe(error)}") from None
            # The manifest is written last: a directory without one never loads.
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
            _swap_into_place(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        checkpoint: str | None = None,
        device: str | None = None,
    ) -> TrackIndex:
        """Load an index directory, refusing one that is corrupt or whose vectors come from
        another checkpoint than ``checkpoint`` (the loading model's ``source_fingerprint``)."""
        root = Path(path)
        where = f"index {root.name!r}"
        manifest = read_manifest(root)
        verify_files(root, manifest)
        if manifest.dimension != DIMENSION or manifest.emotions != list(EMOTIONS):
            raise IndexLoadError(
                f"{where} holds {manifest.dimension}-d vectors over "
                f"{str(manifest.emotions)[:200]}; "
                f"this service needs {DIMENSION}-d over {list(EMOTIONS)}"
            )
        if manifest.metric != METRIC:
            raise IndexLoadError(f"{where} uses metric {manifest.metric[:40]!r}")
        model = ModelIdentity(**manifest.model.model_dump())
        if checkpoint is not None and model.checkpoint != checkpoint:
            raise IndexLoadError(
                f"{where} was built with model {model.name!r} "
                f"(checkpoint fingerprint {model.checkpoint}), but the loaded model's is "
                f"{checkpoint}; rebuild it with `recommender index ... --model` "
                f"or load the model it was built with"
            )
        vectors, tracks, index = _read_files(root)
        if len(vectors) != manifest.count or tracks.num_rows != manifest.count:
            raise IndexLoadError(f"{where}: counts disagree with its manifest")
        if index.ntotal != len(vectors) or index.d != DIMENSION:
            raise IndexLoadError(f"{where}: {FAISS_INDEX} disagrees with its manifest")
        ids = tracks.column("track_id").to_pylist()
        if rows_digest(ids, vectors) != manifest.rows_digest:
            raise IndexLoadError(
                f"{where}: the track rows do not match the vector rows (rows_digest); rebuild it"
            )
        self = cls.__new__(cls)
        self.vectors = vectors
        self.index_type = manifest.index_type
        self.index_params = dict(manifest.index_params)
        faiss_indexes.apply_search_params(index, self.index_type, self.index_params)
        self._finish(tracks, model, device, manifest.extra(), index)
        return self


def _read_files(root: Path) -> tuple[np.ndarray, Any, Any]:
    """The vectors, the tracks table and the FAISS index, each refused in one line if it is
    not what it should be (the checksums only say the files are the ones recorded)."""
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"index {root.name!r}"
    try:
        vectors = check_vectors(np.load(root / VECTORS, allow_pickle=False))
    except (OSError, ValueError, InvalidInputError) as error:
        reason = " ".join(str(error).split())[:160]
        raise IndexLoadError(f"{where}: {VECTORS} is not usable: {reason}") from None
    try:
        tracks = pq.read_table(root / TRACKS)
    except (OSError, pa.ArrowException):
        raise IndexLoadError(f"{where}: {TRACKS} is not a readable Parquet table") from None
    id_type = tracks.schema.field("track_id").type if "track_id" in tracks.column_names else None
    if id_type is None or not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
        raise IndexLoadError(f"{where}: {TRACKS} has no text track_id column")
    try:
        index = faiss.read_index(str(root / FAISS_INDEX))
    except RuntimeError:  # FAISS reports C++ exceptions with its source paths
        raise IndexLoadError(f"{where}: {FAISS_INDEX} is not a FAISS index") from None
    return vectors, tracks, index


def _staging(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex[:8]}"


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` with ``staging`` by renames, so no half-written index is ever visible."""
    if not target.exists():
        staging.rename(target)
        return
    old = _staging(target, "old")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_staging(target: str | os.PathLike[str]) -> list[Path]:
    """Remove what killed writes of ``target`` left behind; call it holding the writer lock.

    A write killed between its two renames left no index at ``target`` but the previous one
    under ``.old-``: that one is put back. Returns what was removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    leftovers = sorted(target.parent.glob(f".{glob.escape(target.name)}.tmp-*"))
    old = sorted(target.parent.glob(f".{glob.escape(target.name)}.old-*"))
    if old and not target.exists() and (old[-1] / MANIFEST).is_file():
        old.pop().rename(target)
        log.warning("put the previous index back at %s (a write was interrupted)", target)
    for path in leftovers + old:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers + old
