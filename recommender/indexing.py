"""Batch indexing: a catalogue file becomes an index directory (classify lyrics, build, save).

Vectors are cached by content: re-indexing into an existing index built with the same model
reuses the vectors of every track whose lyrics are unchanged and classifies only the rest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.classifier import EmotionModel
from recommender.emotions import EMOTIONS
from recommender.errors import CatalogueError, IndexLoadError
from recommender.faiss_indexes import IndexType
from recommender.track_index import ModelIdentity, TrackIndex, read_manifest

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("track_id", "title", "artist", "lyrics")
CONTENT_HASH = "lyrics_sha256"
READERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass(frozen=True)
class IndexSummary:
    """What an indexing run did, for the CLI, the manifest and the closing log line."""

    catalogue: str
    output: str
    tracks: int
    classified: int
    reused: int
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_catalogue(path: str | os.PathLike[str]) -> Any:
    """The catalogue as a DataFrame with checked columns and unique ``track_id``s."""
    import pandas as pd

    source = Path(path)
    kind = READERS.get(source.suffix.lower())
    if kind is None:
        raise CatalogueError(
            f"cannot tell the format of {str(source)!r}; use .csv, .tsv, .parquet or .jsonl"
        )
    if not source.is_file():
        raise CatalogueError(f"catalogue {str(source)!r} does not exist")
    try:
        if kind == "csv":
            sep = "\t" if source.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(source, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
        elif kind == "parquet":
            frame = pd.read_parquet(source)
        else:
            frame = pd.read_json(source, lines=True, dtype=False)
    except Exception as error:  # pandas raises many types for unreadable files
        raise CatalogueError(f"cannot read catalogue {str(source)!r}: {error}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogueError(
            f"catalogue {str(source)!r} lacks column(s) {', '.join(missing)}; "
            f"found: {', '.join(map(str, frame.columns)) or 'none'}"
        )
    frame = frame.copy()
    ids = frame["track_id"]
    if ids.isna().any():
        rows = [int(i) + 1 for i in np.flatnonzero(ids.isna().to_numpy())[:5]]
        raise CatalogueError(f"catalogue {str(source)!r} has rows without track_id: {rows}")
    frame["track_id"] = ids.astype(str)
    duplicated = frame["track_id"][frame["track_id"].duplicated()].unique().tolist()
    if duplicated:
        shown = ", ".join(duplicated[:10]) + (" ..." if len(duplicated) > 10 else "")
        raise CatalogueError(f"duplicate track_id(s) in {str(source)!r}: {shown}")
    for column in ("title", "artist"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame


def content_hash(lyrics: str) -> str:
    return hashlib.sha256(lyrics.encode("utf-8")).hexdigest()


def _previous_vectors(output: Path, model: EmotionModel) -> dict[str, np.ndarray]:
    """Vectors by lyrics hash from an existing index at ``output`` made by the same model."""
    try:
        manifest = read_manifest(output)
        if manifest["model"]["fingerprint"] != model.fingerprint:
            return {}
        previous = TrackIndex.load(output, checkpoint=model.source_fingerprint, device="cpu")
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


def _whole_numbers(frame: Any) -> Any:
    """Float columns holding only whole numbers (years with gaps) as nullable integers."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind == "f" and values.notna().any():
            present = values.dropna()
            if (present == present.round()).all():
                frame[column] = values.astype("Int64")
    return frame


def build_index(
    catalogue: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: EmotionModel,
    *,
    batch_size: int = 64,
    progress: bool = False,
    device: str | None = "cpu",
    index_type: IndexType = "auto",
) -> IndexSummary:
    """Classify the catalogue's lyrics (only those not already indexed) and save an index."""
    import pyarrow as pa
    from tqdm.auto import tqdm

    frame = read_catalogue(catalogue)
    _check_writable(Path(output))
    lyrics = frame["lyrics"]
    usable = lyrics.map(lambda x: isinstance(x, str) and bool(x.strip())).to_numpy(dtype=bool)
    skipped = [
        {
            "track_id": tid,
            "reason": "missing lyrics" if not isinstance(text, str) else "empty lyrics",
        }
        for tid, text, ok in zip(frame["track_id"], lyrics, usable, strict=True)
        if not ok
    ]
    frame = frame[usable].reset_index(drop=True)
    frame[CONTENT_HASH] = frame["lyrics"].map(content_hash)
    cache = _previous_vectors(Path(output), model)
    vectors = np.zeros((len(frame), len(EMOTIONS)), dtype=np.float32)
    todo = [i for i, h in enumerate(frame[CONTENT_HASH]) if h not in cache]
    for i, h in enumerate(frame[CONTENT_HASH]):
        if h in cache:
            vectors[i] = cache[h]
    texts = frame["lyrics"].tolist()
    with tqdm(
        total=len(todo), desc="classifying lyrics", unit="track", disable=not progress
    ) as bar:
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            vectors[rows] = model.predict_proba([texts[i] for i in rows])
            bar.update(len(rows))
    summary = IndexSummary(
        catalogue=str(catalogue),
        output=str(output),
        tracks=len(frame),
        classified=len(todo),
        reused=len(frame) - len(todo),
        skipped=skipped,
    )
    tracks = pa.Table.from_pandas(
        _whole_numbers(frame.drop(columns=["lyrics"])), preserve_index=False
    )
    index = TrackIndex(
        vectors,
        tracks,
        model=ModelIdentity(model.name, model.fingerprint, model.source_fingerprint),
        device=device,
        extra={"catalogue": Path(catalogue).name, "skipped": len(skipped)},
        index_type=index_type,
    )
    index.save(output)
    log.info(
        "indexed %d tracks (%d classified, %d reused, %d skipped) into %s",
        summary.tracks,
        summary.classified,
        summary.reused,
        len(skipped),
        output,
    )
    return summary
