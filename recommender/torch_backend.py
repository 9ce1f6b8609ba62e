"""The PyTorch backend: a transformers sequence-classification model (``recommender[torch]``)."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np

from recommender.errors import ModelLoadError
from recommender.placement import Placement


def require_torch() -> Any:
    """The torch module, or ModelLoadError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ModelLoadError(
            "this needs PyTorch, which is not installed: pip install 'recommender[torch]' "
            "(or use the ONNX backend: --engine onnx)"
        ) from None
    return torch


class TorchBackend:
    """A loaded (or in-training) model on its placement's device."""

    name: Literal["torch"] = "torch"
    precision = "fp32"
    source_fingerprint: str | None = None

    def __init__(self, model: Any, placement: Placement) -> None:
        self.model = model.to(placement.device).eval()
        self.placement = placement

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.placement.device),
                attention_mask=torch.from_numpy(attention_mask).to(self.placement.device),
            ).logits
            return logits.float().cpu().numpy()

    def fingerprint(self, tokenizer: Any) -> str:
        import torch

        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
        return digest.hexdigest()[:16]


def load(name: str, config: Any, placement: Placement) -> TorchBackend:
    """The checkpoint's weights (local directory or hub id) on ``placement``; transformers'
    errors propagate for the loader to word."""
    torch = require_torch()
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(placement.threads)
    model = AutoModelForSequenceClassification.from_pretrained(
        name, config=config, trust_remote_code=False
    )
    return TorchBackend(model, placement)
