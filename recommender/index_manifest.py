"""An index directory's manifest: a declared schema, checked in full before anything is loaded.

Format 2 records a checksum for every file the index consists of (whatever the manifest says,
the loader checks all of them), a digest tying the track ids to the vector rows in order, and
the model by its public name (never a path on the machine that built the index).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recommender.digest import sha256_file
from recommender.errors import IndexLoadError
from recommender.faiss_indexes import INDEX_TYPES

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
FAISS_INDEX = "index.faiss"
TRACKS = "tracks.parquet"
# Every file an index consists of: each is checksummed when written and checked when loaded.
FILES = (VECTORS, FAISS_INDEX, TRACKS)
Sha256 = Field(pattern=r"^[0-9a-f]{64}$")
FINGERPRINT = r"^[0-9A-Za-z._-]{1,128}$"
# What a saved index can be ("auto" is resolved before saving).
SAVED_TYPES = tuple(t for t in INDEX_TYPES if t != "auto")


class ModelEntry(BaseModel):
    """The model that made the vectors: its public name and fingerprints."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=300)
    fingerprint: str = Field(pattern=FINGERPRINT)
    source: str | None = Field(default=None, pattern=FINGERPRINT)

    @field_validator("name")
    @classmethod
    def _no_machine_path(cls, name: str) -> str:
        if os.path.isabs(name) or name.startswith(("~", "\\")) or ":\\" in name:
            raise ValueError("must be the model's public name, not a path on a machine")
        return name


class Manifest(BaseModel):
    """``manifest.json`` of format 2. Further keys (``catalogue``, ``skipped``) are kept."""

    model_config = ConfigDict(extra="allow", strict=True)

    format_version: Literal[2]
    model: ModelEntry
    metric: str
    dimension: int = Field(ge=1)
    emotions: list[str]
    index_type: str
    index_params: dict[str, int | float]
    count: int = Field(ge=0)
    rows_digest: str = Sha256
    files: dict[str, str]
    created_at: str

    @field_validator("index_type")
    @classmethod
    def _known_index_type(cls, value: str) -> str:
        if value not in SAVED_TYPES:
            raise ValueError(f"unknown index type {value[:20]!r}; one of {', '.join(SAVED_TYPES)}")
        return value

    @field_validator("files")
    @classmethod
    def _every_file_checksummed(cls, files: dict[str, str]) -> dict[str, str]:
        missing = [name for name in FILES if name not in files]
        unknown = sorted(set(files) - set(FILES))
        if missing or unknown:
            raise ValueError(
                f"must give a checksum for exactly {', '.join(FILES)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(repr(u[:40]) for u in unknown)}" if unknown else "")
            )
        for name, checksum in files.items():
            if not isinstance(checksum, str) or len(checksum) != 64:
                raise ValueError(f"{name}'s checksum is not a sha256 hex digest")
        return files

    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def rows_digest(track_ids: list[str], vectors: np.ndarray) -> str:
    """sha256 of the track ids in row order and the vector rows: a reordered table fails it."""
    digest = hashlib.sha256(json.dumps(track_ids, ensure_ascii=True).encode("ascii"))
    digest.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return digest.hexdigest()


def file_checksums(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in FILES}


def describe(error: ValidationError) -> str:
    """Pydantic's findings as one line: ``field: problem; field: problem``."""
    parts = []
    for item in error.errors()[:5]:
        field = ".".join(str(part) for part in item["loc"]) or "manifest"
        parts.append(f"{field}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The checked manifest of an index directory, or IndexLoadError saying what is wrong."""
    root = Path(path)
    where = f"index {root.name!r}"
    if not root.is_dir():
        raise IndexLoadError(
            f"no index directory at {str(path)!r}; build one with `recommender index`"
        )
    try:
        raw = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexLoadError(f"{where} has no {MANIFEST}: not an index, or incomplete") from None
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: nested too deep
        reason = " ".join(str(error).split())[:200]
        raise IndexLoadError(f"cannot read {where}'s {MANIFEST}: {reason}") from None
    if not isinstance(raw, dict):
        raise IndexLoadError(f"{where}: {MANIFEST} is not a JSON object")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexLoadError(
            f"{where} has format version {repr(version)[:20]}; this version reads "
            f"{FORMAT_VERSION}: rebuild it with `recommender index CATALOGUE -o DIR`"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        raise IndexLoadError(f"{where}: {MANIFEST} is not valid: {describe(error)}") from None


def verify_files(root: Path, manifest: Manifest) -> None:
    """Every file of the index present and matching its checksum."""
    for name in FILES:
        file = root / name
        if not file.is_file() or file.is_symlink():
            raise IndexLoadError(f"index {root.name!r} is missing {name}")
        if sha256_file(file) != manifest.files[name]:
            raise IndexLoadError(f"index {root.name!r}: {name} fails its checksum")
