"""Texts to model-sized batches and back, shared by every engine (PyTorch, ONNX Runtime).

Long texts are split into overlapping token windows; windows run in batches sorted longest
first and padded only to each batch's longest; each window's softmax is weighted by its token
count and the weighted mean is the text's vector, in the project's canonical column order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from recommender.emotions import EMOTIONS

MAX_WINDOW = 512

# An engine's forward pass: int64 ``input_ids`` and ``attention_mask`` of shape (b, length) in,
# (b, labels) logits out, in the checkpoint's own label order.
LogitsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Windows(NamedTuple):
    """Token ids of every window, and for each window the index of the text it came from."""

    ids: list[list[int]]
    owner: np.ndarray


def window_limit(config: Any, tokenizer: Any, window: int | None = None) -> int:
    """The longest window the model accepts (at most 512), or ``window`` if that is shorter."""
    limit = min(
        getattr(config, "max_position_embeddings", MAX_WINDOW),
        tokenizer.model_max_length,
        MAX_WINDOW,
    )
    return min(window or limit, limit)


def split_windows(tokenizer: Any, texts: Sequence[str], *, window: int, stride: int) -> Windows:
    """Tokenize ``texts`` into windows of at most ``window`` tokens overlapping by ``stride``."""
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=window,
        stride=stride,
        return_overflowing_tokens=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return Windows(encoded["input_ids"], np.asarray(encoded["overflow_to_sample_mapping"]))


# Padded tokens per batch at most (a batch of long windows holds fewer of them), so that a
# batch's activations stay in cache (benchmarks/README.md has the measurement).
MAX_BATCH_TOKENS = 2048


def length_sorted_batches(
    windows: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    max_tokens: int = MAX_BATCH_TOKENS,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(rows, input_ids, attention_mask)`` per batch, longest first, right-padded to the
    longest window of the batch; at most ``batch_size`` windows and, beyond one window,
    ``max_tokens`` padded tokens per batch."""
    order = np.argsort([-len(ids) for ids in windows], kind="stable")
    start = 0
    while start < len(order):
        longest = max(1, len(windows[order[start]]))
        size = max(1, min(batch_size, max_tokens // longest))
        rows = order[start : start + size]
        start += size
        input_ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for j, i in enumerate(rows):
            ids = windows[i]
            input_ids[j, : len(ids)] = ids
            mask[j, : len(ids)] = 1
        yield rows, input_ids, mask


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predict_windows(
    windows: Sequence[Sequence[int]],
    logits_fn: LogitsFn,
    *,
    columns: np.ndarray,
    batch_size: int,
    pad_id: int,
) -> np.ndarray:
    """Softmax of every window in canonical column order, rows in the windows' order."""
    out = np.empty((len(windows), len(EMOTIONS)), dtype=np.float32)
    for rows, input_ids, mask in length_sorted_batches(windows, batch_size, pad_id):
        out[rows] = softmax(np.asarray(logits_fn(input_ids, mask)))[:, columns]
    return out


def combine_windows(windows: Windows, window_probs: np.ndarray, n_texts: int) -> np.ndarray:
    """Each text's token-weighted mean of its windows' probabilities, as float32 rows."""
    weights = np.array([len(ids) for ids in windows.ids], dtype=np.float64)
    combined = np.zeros((n_texts, len(EMOTIONS)), dtype=np.float64)
    np.add.at(combined, windows.owner, window_probs * weights[:, None])
    combined /= combined.sum(axis=1, keepdims=True)
    return combined.astype(np.float32)


def predict_windowed(
    texts: Sequence[str],
    tokenizer: Any,
    logits_fn: LogitsFn,
    *,
    columns: np.ndarray,
    window: int,
    stride: int,
    batch_size: int,
) -> np.ndarray:
    """``(n, 6)`` float32 probabilities of already validated ``texts`` through ``logits_fn``."""
    if not texts:
        return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
    windows = split_windows(tokenizer, texts, window=window, stride=stride)
    probs = predict_windows(
        windows.ids,
        logits_fn,
        columns=columns,
        batch_size=batch_size,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
    )
    return combine_windows(windows, probs, len(texts))
