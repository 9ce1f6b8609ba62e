"""Catalogue files: which files a catalogue is, and each one read and checked.

A catalogue is one file, a directory of files or a glob of them (CSV, TSV, Parquet, JSON
Lines, mixed as needed). Each file is read and checked by the same functions whether the
indexing runs in this process or in Ray workers, so both see the same tracks.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import CatalogueError

REQUIRED_COLUMNS = ("track_id", "title", "artist", "lyrics")
CONTENT_HASH = "lyrics_sha256"
# Where each track is in its file: parts of the work name tracks by these to read their lyrics.
SHARD_COLUMN = "_shard"
ROW_COLUMN = "_row"
READERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
FORMATS = ".csv, .tsv, .parquet or .jsonl"


def catalogue_files(source: str | os.PathLike[str]) -> list[Path]:
    """The files of a catalogue: the file itself, a directory's files (recursively, hidden ones
    left out) or the files a glob matches, sorted; in a directory or a glob, files of other
    formats are left out."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        files = [
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in READERS
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
        if not files:
            raise CatalogueError(f"directory {text!r} holds no {FORMATS} files")
        return sorted(files)
    if glob.has_magic(text) and not path.exists():
        files = [
            Path(p)
            for p in glob.glob(text, recursive=True)
            if Path(p).is_file() and Path(p).suffix.lower() in READERS
        ]
        if not files:
            raise CatalogueError(f"no {FORMATS} files match {text!r}")
        return sorted(files)
    return [path]


def read_catalogue(path: str | os.PathLike[str]) -> Any:
    """One catalogue file as a DataFrame with checked columns and unique ``track_id``s."""
    import pandas as pd

    source = Path(path)
    kind = READERS.get(source.suffix.lower())
    if kind is None:
        raise CatalogueError(f"cannot tell the format of {str(source)!r}; use {FORMATS}")
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
    check_unique(frame["track_id"], f"in {str(source)!r}")
    for column in ("title", "artist"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame


def combine_shards(shards: Sequence[Shard]) -> Any:
    """The tracks of all shards as one DataFrame, each column of one kind.

    A CSV reads every column as text while Parquet and JSON Lines keep numbers, so a column
    (``year``) can be numbers in some files and text in others. Text that reads as numbers
    becomes numbers; a column that is numbers in one file and words in another is refused,
    naming the files, before any lyrics are classified.
    """
    import pandas as pd

    frames = [shard.tracks for shard in shards]
    columns = dict.fromkeys(column for frame in frames for column in frame.columns)
    for column in columns:
        numeric = [
            shard.path
            for shard, frame in zip(shards, frames, strict=True)
            if column in frame and frame[column].dtype.kind in "iuf"
        ]
        if not numeric:
            continue
        for i, (shard, frame) in enumerate(zip(shards, frames, strict=True)):
            if column not in frame or frame[column].dtype.kind in "iuf":
                continue
            values = pd.to_numeric(frame[column], errors="coerce")
            words = frame[column][frame[column].notna() & values.isna()]
            if len(words):
                shown = ", ".join(map(repr, numeric[:3])) + (" ..." if len(numeric) > 3 else "")
                raise CatalogueError(
                    f"column {column!r} holds numbers in {shown} but text in {shard.path!r} "
                    f"(row {int(frame[ROW_COLUMN].iloc[words.index[0]]) + 1}: "
                    f"{str(words.iloc[0])[:40]!r}); make it numbers in every file or text in all"
                )
            frames[i] = frame.assign(**{column: values})
    return pd.concat(frames, ignore_index=True)


def check_unique(track_ids: Any, where: str) -> None:
    """CatalogueError listing the duplicated ids of a pandas Series, if any."""
    duplicated = track_ids[track_ids.duplicated()].unique().tolist()
    if duplicated:
        shown = ", ".join(duplicated[:10]) + (" ..." if len(duplicated) > 10 else "")
        raise CatalogueError(f"duplicate track_id(s) {where}: {shown}")


def content_hash(lyrics: str) -> str:
    return hashlib.sha256(lyrics.encode("utf-8")).hexdigest()


@dataclass
class Shard:
    """One checked catalogue file without its lyrics: what the index needs of it."""

    path: str
    tracks: Any  # DataFrame: metadata, lyrics hash and row in the file of each usable track
    skipped: list[dict[str, str]]


def scan_shard(path: str | os.PathLike[str], number: int = 0) -> Shard:
    """Read and check file ``number`` of a catalogue, keeping the lyrics' hashes, not the lyrics
    (the driver of a million-track run would otherwise hold every lyric)."""
    frame = read_catalogue(path)
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
    frame[SHARD_COLUMN] = number
    frame[ROW_COLUMN] = np.arange(len(frame))
    frame = frame[usable].reset_index(drop=True)
    frame[CONTENT_HASH] = frame["lyrics"].map(content_hash)
    return Shard(str(path), frame.drop(columns=["lyrics"]), skipped)


def read_lyrics(path: str, rows: Sequence[int], hashes: Sequence[str]) -> list[str]:
    """The lyrics at ``rows`` of a catalogue file, checked against the hashes taken when the
    work was planned (a file edited since then would otherwise index stale vectors)."""
    stat = os.stat(path)
    column = _lyrics_column(path, stat.st_mtime_ns, stat.st_size)
    lyrics = column[np.asarray(rows, dtype=np.int64)].tolist()
    for text, expected in zip(lyrics, hashes, strict=True):
        if not isinstance(text, str) or content_hash(text) != expected:
            raise CatalogueError(f"catalogue {path!r} changed while it was being indexed; rerun")
    return lyrics


@functools.lru_cache(maxsize=1)
def _lyrics_column(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # Parts of one file follow each other: a large file is read once, not once per part.
    return read_catalogue(path)["lyrics"].to_numpy()
