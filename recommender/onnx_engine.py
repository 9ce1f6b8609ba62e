"""Compatibility names for code written before the backends were split out.

Use ``EmotionClassifier.from_pretrained(path, backend="onnx")`` (:mod:`recommender.classifier`)
and :func:`recommender.onnx_export.export_onnx`.
"""

from __future__ import annotations

import os
import warnings

from recommender.classifier import EmotionClassifier
from recommender.onnx_backend import METADATA_FILE, ONNX_FILE, is_onnx_dir
from recommender.onnx_export import export_onnx
from recommender.settings import Settings

__all__ = ["METADATA_FILE", "ONNX_FILE", "OnnxEmotionClassifier", "export_onnx", "is_onnx_dir"]


class OnnxEmotionClassifier(EmotionClassifier):
    """Deprecated: an :class:`EmotionClassifier` on the ONNX backend."""

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        settings: Settings | None = None,
    ) -> EmotionClassifier:
        """``EmotionClassifier.from_pretrained(path, backend="onnx", ...)``."""
        warnings.warn(
            "OnnxEmotionClassifier.from_pretrained(path) is deprecated; use "
            "EmotionClassifier.from_pretrained(path, backend='onnx')",
            DeprecationWarning,
            stacklevel=2,
        )
        return super().from_pretrained(
            name_or_path,
            backend="onnx",
            device=device,
            batch_size=batch_size,
            threads=threads,
            settings=settings,
        )
