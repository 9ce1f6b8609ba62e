"""What a backend is: the weights of one checkpoint, turning a padded batch into logits.

Everything else (tokenizer, labels, windows, batches, softmax, the n-gram head) belongs to
:class:`~recommender.classifier.EmotionClassifier`, which holds one backend.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

from recommender.placement import Placement

BackendName = Literal["torch", "onnx"]


class Backend(Protocol):
    """A checkpoint's forward pass on one placement."""

    placement: Placement
    # "fp32", or "int8" for a quantized ONNX export.
    precision: str
    # The fingerprint of the checkpoint these weights were exported from; None when they are
    # that checkpoint's own.
    source_fingerprint: str | None

    @property
    def name(self) -> BackendName: ...

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """int64 ``(b, length)`` ids and mask in; ``(b, labels)`` logits out, in the
        checkpoint's own label order."""
        ...

    def fingerprint(self, tokenizer: Any) -> str:
        """Identity of the weights and the vocabulary: the vectors an index holds depend on
        both."""
        ...
