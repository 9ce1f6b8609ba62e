"""Models are data, never code: a model directory is checked before anything in it is loaded.

transformers runs a checkpoint's own Python when its configuration asks for it (``auto_map``),
and PyTorch's pickled weight files can run code when read. The project loads weights only from
safetensors or ONNX files, and every transformers call passes ``trust_remote_code=False``; this
check refuses, with one line, directories that would need more: remote code, an unknown model
type, pickled files, NumPy object arrays, and symlinks that leave the directory.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from recommender.errors import ModelLoadError

# Files read by unpickling (PyTorch checkpoints, joblib dumps, Trainer's training_args.bin).
PICKLED_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
# Configuration files whose "auto_map" makes transformers import code from the directory.
CODE_MAPS = ("config.json", "tokenizer_config.json", "preprocessor_config.json")


def check_model_dir(path: str | os.PathLike[str]) -> None:
    """Refuse a model directory that could run code when loaded (ModelLoadError, one line)."""
    root = Path(path)
    resolved = root.resolve()
    where = f"model directory {root.name!r}"
    for entry in sorted(root.rglob("*")):
        relative = entry.relative_to(root).as_posix()
        if entry.is_symlink() and not entry.resolve().is_relative_to(resolved):
            raise ModelLoadError(f"{where}: {relative} is a symlink leading outside it; refused")
        if not entry.is_file():
            continue
        if entry.suffix.lower() in PICKLED_SUFFIXES:
            raise ModelLoadError(
                f"{where} holds a pickled file ({relative}), which can run code when read; "
                "only safetensors and ONNX weights are loaded"
            )
        if entry.suffix.lower() in (".npy", ".npz"):
            problem = _array_problem(entry)
            if problem:
                raise ModelLoadError(f"{where}: {relative} {problem}; refused")
    for name in CODE_MAPS:
        config = _json_object(root / name, where)
        if "auto_map" in config:
            raise ModelLoadError(
                f"{where}: {name} asks for the directory's own code (auto_map); "
                "models are loaded as data only"
            )
    _check_model_type(_json_object(root / "config.json", where), where)


def _json_object(file: Path, where: str) -> dict:
    if not file.is_file():
        return {}
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise ModelLoadError(f"{where}: {file.name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{where}: {file.name} is not a JSON object")
    return value


def _check_model_type(config: dict, where: str) -> None:
    if not config:
        return
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        shown = repr(model_type)[:60]
        raise ModelLoadError(
            f"{where}: config.json has model_type {shown}, not one transformers knows; "
            "custom architectures are not loaded"
        )


def _array_problem(file: Path) -> str | None:
    """Why a .npy file, or an array in a .npz file, is not plain numbers (headers only)."""
    try:
        if file.suffix.lower() == ".npy":
            with file.open("rb") as handle:
                return _header_problem(handle)
        with zipfile.ZipFile(file) as archive:
            for member in archive.namelist():
                with archive.open(member) as handle:
                    problem = _header_problem(handle)
                    if problem:
                        return problem
    except (OSError, ValueError, zipfile.BadZipFile):
        return "is not a readable NumPy file"
    return None


def _header_problem(handle: IO[bytes]) -> str | None:
    version = np.lib.format.read_magic(handle)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else (np.lib.format.read_array_header_2_0)
    )
    _, _, dtype = read(handle)
    return "holds an object array (read by unpickling)" if dtype.hasobject else None
