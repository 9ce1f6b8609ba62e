"""Batch indexing: a catalogue becomes an index directory (classify lyrics, build, save).

One path for every way of running it: :func:`plan_index` checks the scanned catalogue and says
which lyrics still need a vector, something classifies those parts (this process in
:func:`build_index`, Ray actors in :mod:`recommender.distributed`), and :func:`finish_index`
writes the index. Vectors are reused by content: from an existing index built with the same
model, and from the parts an interrupted run kept in ``OUTPUT.work/``, so a rerun classifies
only what is new.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.catalogue import (
    CONTENT_HASH,
    ROW_COLUMN,
    SHARD_COLUMN,
    Shard,
    catalogue_files,
    check_unique,
    combine_shards,
    read_catalogue,
    read_lyrics,
    scan_shard,
)
from recommender.emotions import EMOTIONS
from recommender.errors import CatalogueError, IndexLoadError, IndexWriteError, InvalidInputError
from recommender.faiss_indexes import IndexType
from recommender.index_manifest import read_manifest
from recommender.mood_tags import MoodTags, blend, tags_to_blend
from recommender.track_index import ModelIdentity, TrackIndex, remove_stale_staging

if TYPE_CHECKING:
    from recommender.classifier import EmotionModel, Engine

__all__ = [
    "IndexOptions",
    "IndexPlan",
    "IndexSummary",
    "Part",
    "build_index",
    "classify_parts",
    "finish_index",
    "index_writer",
    "plan_index",
    "read_catalogue",
]

log = logging.getLogger(__name__)

PART_SIZE = 10_000
TAGS = "mood_tags"  # the manifest's record of a tag blend


@dataclass(frozen=True)
class IndexOptions:
    """How to index a catalogue: the same object drives the in-process and the Ray runs."""

    model: str | None = None
    engine: Engine | None = None
    device: str | None = None
    batch_size: int = 32
    index_type: IndexType = "auto"
    # Discard the parts an interrupted run kept instead of resuming from them.
    fresh: bool = False
    progress: bool = False
    # At most this many lyrics of one file per part: the unit kept on disk and handed out.
    part_size: int = PART_SIZE
    # Blend the catalogue's own mood tags into the saved vectors (0 ignores them).
    tag_weight: float = 0.0
    tag_column: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.part_size < 1:
            raise InvalidInputError(
                f"batch_size and part_size must be positive; got {self.batch_size}, "
                f"{self.part_size}"
            )

    def load_classifier(
        self, device: str | None = None, threads: int | None = None
    ) -> EmotionModel:
        """The classifier these options name, through the project's one loader."""
        from recommender.classifier import EmotionClassifier

        return EmotionClassifier.from_pretrained(
            self.model,
            backend=self.engine,
            device=device or self.device,
            batch_size=self.batch_size,
            threads=threads,
        )


@dataclass(frozen=True)
class IndexSummary:
    """What an indexing run did, for the CLI, the manifest and the closing log line."""

    catalogue: str
    output: str
    tracks: int
    classified: int
    reused: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    # Tracks whose vectors came from the parts an interrupted run kept.
    resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Part:
    """Distinct lyrics of one file to classify together; kept as ``WORK/<name>.npy``."""

    name: str
    path: str
    rows: tuple[int, ...]
    hashes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def lyrics(self) -> list[str]:
        return read_lyrics(self.path, self.rows, self.hashes)


@dataclass
class IndexPlan:
    """A checked catalogue, the vectors already known by lyrics hash, and the parts to do."""

    catalogue: str
    output: Path
    model: ModelIdentity
    tracks: Any  # DataFrame of every usable track, in catalogue order
    skipped: list[dict[str, str]]
    known: dict[str, np.ndarray]
    todo: list[Part]
    reused: int
    resumed: int
    # Distinct lyrics this run classifies or took from kept parts: the progress bar's total.
    planned: int
    # The catalogue's mood tags, when they are to be blended in.
    tags: MoodTags | None = None

    @property
    def work(self) -> Path:
        return work_dir(self.output)

    @property
    def remaining(self) -> int:
        return sum(len(p) for p in self.todo)

    def complete(self, part: Part, vectors: np.ndarray) -> None:
        """Keep a classified part on disk (atomically), so an interrupted run resumes."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(part), len(EMOTIONS)):
            raise ValueError(f"part {part.name}: {vectors.shape} vectors for {len(part)} lyrics")
        self.work.mkdir(parents=True, exist_ok=True)
        staging = self.work / f".{part.name}.{os.getpid()}.tmp"
        with staging.open("wb") as out:
            np.save(out, vectors)
        os.replace(staging, self.work / f"{part.name}.npy")
        self.known.update(zip(part.hashes, vectors, strict=True))
        self.todo.remove(part)


def work_dir(output: str | os.PathLike[str]) -> Path:
    """Where classified parts wait for the index to be written: ``OUTPUT.work`` beside it."""
    path = Path(output)
    return path.parent / f"{path.name}.work"


def scan_catalogue(catalogue: str | os.PathLike[str]) -> list[Shard]:
    """Every file of the catalogue read and checked in this process."""
    return [scan_shard(path, i) for i, path in enumerate(catalogue_files(catalogue))]


def _previous_vectors(output: Path, model: ModelIdentity) -> dict[str, np.ndarray]:
    """Vectors by lyrics hash from an existing index at ``output`` made by the same model."""
    try:
        manifest = read_manifest(output)
        if manifest.model.fingerprint != model.fingerprint:
            return {}
        if manifest.extra().get(TAGS, {}).get("weight", 0) > 0:
            return {}  # its vectors hold tags, not the lyrics' own reading
        previous = TrackIndex.load(output, checkpoint=model.checkpoint, device="cpu")
    except IndexLoadError:
        return {}
    if CONTENT_HASH not in previous.tracks.column_names:
        return {}
    hashes = previous.tracks.column(CONTENT_HASH).to_pylist()
    return dict(zip(hashes, previous.vectors, strict=True))


def _check_writable(output: Path) -> None:
    """Fail before hours of classification, not after, if the index cannot be written."""
    parent = output.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as error:
        raise CatalogueError(f"cannot write the index to {str(output)!r}: {error}") from None


def _kept_part(work: Path, name: str, size: int) -> np.ndarray | None:
    try:
        vectors = np.load(work / f"{name}.npy")
    except (OSError, ValueError):
        return None
    return vectors if vectors.shape == (size, len(EMOTIONS)) else None


def _cut_parts(tracks: Any, shards: Sequence[Shard], known: dict, model: ModelIdentity, size: int):
    """Distinct lyrics without a vector, grouped by file and cut into parts of ``size``."""
    todo = tracks[~tracks[CONTENT_HASH].isin(known.keys())]
    todo = todo.drop_duplicates(CONTENT_HASH)
    for number, group in todo.groupby(SHARD_COLUMN, sort=True):
        rows = group[ROW_COLUMN].tolist()
        hashes = group[CONTENT_HASH].tolist()
        for start in range(0, len(rows), size):
            chunk = tuple(hashes[start : start + size])
            digest = hashlib.sha256("\n".join((model.fingerprint, *chunk)).encode()).hexdigest()
            yield Part(
                name=digest[:32],
                path=shards[int(number)].path,
                rows=tuple(int(r) for r in rows[start : start + size]),
                hashes=chunk,
            )


def plan_index(
    catalogue: str | os.PathLike[str],
    shards: Sequence[Shard],
    output: str | os.PathLike[str],
    model: ModelIdentity,
    options: IndexOptions,
) -> IndexPlan:
    """Check the scanned catalogue as a whole and find the lyrics that still need a vector."""
    import pandas as pd

    output = Path(output)
    tracks = combine_shards(shards)
    skipped = [row for s in shards for row in s.skipped]
    if len(shards) > 1:
        ids = pd.concat([tracks["track_id"], pd.Series([s["track_id"] for s in skipped])])
        check_unique(ids.reset_index(drop=True), "across the catalogue's files")
    tags = tags_to_blend(tracks, options.tag_weight, options.tag_column)
    _check_writable(output)
    known = _previous_vectors(output, model)
    reused = int(tracks[CONTENT_HASH].isin(known.keys()).sum())
    work = work_dir(output)
    if options.fresh and work.exists():
        shutil.rmtree(work)
    todo: list[Part] = []
    kept: set[str] = set()
    planned = 0
    for part in _cut_parts(tracks, shards, known, model, options.part_size):
        planned += len(part)
        vectors = _kept_part(work, part.name, len(part))
        if vectors is None:
            todo.append(part)
        else:
            kept.update(part.hashes)
            known.update(zip(part.hashes, vectors, strict=True))
    resumed = int(tracks[CONTENT_HASH].isin(kept).sum())
    log.info(
        "planned %d tracks from %d files: %d lyrics to classify in %d parts, %d kept in %s, "
        "%d tracks reused from the previous index",
        len(tracks),
        len(shards),
        sum(len(p) for p in todo),
        len(todo),
        len(kept),
        work,
        reused,
    )
    return IndexPlan(
        catalogue=str(catalogue),
        output=output,
        model=model,
        tracks=tracks,
        skipped=skipped,
        known=known,
        todo=todo,
        reused=reused,
        resumed=resumed,
        planned=planned,
        tags=tags,
    )


@contextmanager
def progress_bar(plan: IndexPlan, options: IndexOptions) -> Iterator[Any]:
    """Lyrics done / total and the rate, counting the parts kept by an interrupted run."""
    from tqdm.auto import tqdm

    with tqdm(
        total=plan.planned,
        initial=plan.planned - plan.remaining,
        desc="classifying lyrics",
        unit="track",
        disable=not options.progress,
        smoothing=0.05,
    ) as bar:
        yield bar


def _whole_numbers(frame: Any) -> Any:
    """Float columns holding only whole numbers (years with gaps) as nullable integers."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind == "f" and values.notna().any():
            present = values.dropna()
            if (present == present.round()).all():
                frame[column] = values.astype("Int64")
    return frame


def finish_index(plan: IndexPlan, options: IndexOptions) -> IndexSummary:
    """Write the index of a plan whose parts are all classified, then drop the kept parts.

    The one place an index is written from a catalogue, whichever way it was classified.
    """
    import pyarrow as pa

    if plan.todo:
        raise RuntimeError(f"{len(plan.todo)} parts of the plan are not classified yet")
    log.info("writing the index of %d tracks to %s", len(plan.tracks), plan.output)
    hashes = plan.tracks[CONTENT_HASH]
    vectors = np.zeros((len(hashes), len(EMOTIONS)), dtype=np.float32)
    for row, digest in enumerate(hashes):
        vectors[row] = plan.known[digest]
    metadata = plan.tracks.drop(columns=[SHARD_COLUMN, ROW_COLUMN])
    tracks = pa.Table.from_pandas(_whole_numbers(metadata), preserve_index=False)
    extra: dict[str, Any] = {"catalogue": Path(plan.catalogue).name, "skipped": len(plan.skipped)}
    if plan.tags is not None:
        vectors = blend(vectors, plan.tags, options.tag_weight)
        extra[TAGS] = plan.tags.manifest(options.tag_weight)
    index = TrackIndex(
        vectors,
        tracks,
        model=plan.model,
        device="cpu",
        extra=extra,
        index_type=options.index_type,
    )
    index.save(plan.output)
    shutil.rmtree(plan.work, ignore_errors=True)
    summary = IndexSummary(
        catalogue=plan.catalogue,
        output=str(plan.output),
        tracks=len(vectors),
        classified=len(vectors) - plan.reused - plan.resumed,
        reused=plan.reused,
        skipped=plan.skipped,
        resumed=plan.resumed,
    )
    log.info(
        "indexed %d tracks (%d classified, %d reused, %d resumed, %d skipped) into %s",
        summary.tracks,
        summary.classified,
        summary.reused,
        summary.resumed,
        len(summary.skipped),
        plan.output,
    )
    return summary


def identity(model: EmotionModel) -> ModelIdentity:
    """What the manifest records of a model: its public name (no path) and fingerprints."""
    from recommender.classifier import public_name

    return ModelIdentity(public_name(model.name), model.fingerprint, model.source_fingerprint)


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The writer lock of an index directory: ``.OUTPUT.lock`` beside it."""
    path = Path(output)
    return path.parent / f".{path.name}.lock"


@contextmanager
def index_writer(output: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the index's writer lock, or fail at once if another run is writing it.

    Every indexing path (in this process, on Ray) plans and writes inside this, so two runs
    never overwrite each other's index; what killed runs left behind is removed first. The
    lock is the operating system's (flock): it goes with the process that held it.
    """
    import fcntl

    _check_writable(Path(output))
    with lock_path(output).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()[:20] or "another process"
            raise IndexWriteError(
                f"another `recommender index` run (pid {holder}) is writing {str(output)!r}; "
                "wait for it to finish"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            for path in remove_stale_staging(output):
                log.info("removed %s, left by an interrupted run", path)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_index(
    catalogue: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: EmotionModel | None = None,
    options: IndexOptions | None = None,
) -> IndexSummary:
    """Classify the catalogue's lyrics that lack a vector in this process and save an index.

    ``model`` is the classifier to use; without one, ``options`` name it (loaded after the
    catalogue has been checked, so a bad catalogue fails at once).
    """
    options = options or IndexOptions()
    with index_writer(output):  # first: a second writer fails at once
        shards = scan_catalogue(catalogue)
        if model is None:
            model = options.load_classifier()
        plan = plan_index(catalogue, shards, output, identity(model), options)
        classify_parts(plan, model, options)
        return finish_index(plan, options)


def classify_parts(plan: IndexPlan, model: EmotionModel, options: IndexOptions) -> None:
    """Classify the plan's parts in this process, keeping each one as it completes."""
    with progress_bar(plan, options) as bar:
        for part in list(plan.todo):
            texts = part.lyrics()
            vectors = np.empty((len(texts), len(EMOTIONS)), dtype=np.float32)
            for start in range(0, len(texts), options.batch_size):
                stop = start + options.batch_size
                vectors[start:stop] = model.predict_proba(texts[start:stop])
                bar.update(len(texts[start:stop]))
            plan.complete(part, vectors)
