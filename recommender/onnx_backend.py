"""The ONNX Runtime backend: a checkpoint exported by :mod:`recommender.onnx_export` (fp32 or
dynamic int8). It never imports torch.

An export directory holds ``model.onnx``, the tokenizer, ``config.json`` (so ``id2label``
travels), ``onnx_export.json`` naming the source checkpoint, its fingerprint and the precision,
and the source's n-gram head where it has one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recommender.digest import sha256_file
from recommender.errors import ModelLoadError
from recommender.placement import Placement

ONNX_FILE = "model.onnx"
METADATA_FILE = "onnx_export.json"


def is_onnx_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ONNX export directory (it holds ``model.onnx``)."""
    return (Path(path) / ONNX_FILE).is_file()


class OnnxBackend:
    """An inference session on its placement."""

    name: Literal["onnx"] = "onnx"

    def __init__(
        self,
        session: Any,
        placement: Placement,
        *,
        onnx_digest: str,
        source_fingerprint: str | None = None,
        precision: str = "fp32",
    ) -> None:
        self.session = session
        self.placement = placement
        self.onnx_digest = onnx_digest
        self.source_fingerprint = source_fingerprint
        self.precision = precision

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(
            ["logits"], {"input_ids": input_ids, "attention_mask": attention_mask}
        )
        return np.asarray(logits)

    def fingerprint(self, tokenizer: Any) -> str:
        """The exported graph's weights and the vocabulary. It differs from the source
        checkpoint's and between fp32 and int8: their vectors differ slightly, so re-indexing
        never reuses one's vectors for another (indexes match models by source checkpoint)."""
        digest = hashlib.sha256(b"onnx:" + self.onnx_digest.encode())
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
        return digest.hexdigest()[:16]


def session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def load(path: str | os.PathLike[str], placement: Placement) -> OnnxBackend:
    """The export at ``path`` in an ONNX Runtime session on ``placement``."""
    import onnxruntime as ort

    root = Path(path)
    if placement.on_gpu:
        device_id = int(placement.device.partition(":")[2] or 0)
        providers: list[Any] = [
            ("CUDAExecutionProvider", {"device_id": device_id}),
            "CPUExecutionProvider",
        ]
    else:
        providers = ["CPUExecutionProvider"]
    try:
        metadata = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
        session = ort.InferenceSession(
            str(root / ONNX_FILE),
            sess_options=session_options(placement.threads),
            providers=providers,
        )
    except Exception as error:  # onnxruntime and json raise many types
        raise ModelLoadError(f"cannot load ONNX model from {str(root)!r}: {error}") from None
    return OnnxBackend(
        session,
        placement,
        onnx_digest=sha256_file(root / ONNX_FILE),
        source_fingerprint=metadata.get("source_fingerprint"),
        precision=str(metadata.get("precision", "fp32")),
    )
