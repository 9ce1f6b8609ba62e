"""Models for tests and benchmarks, built locally: no download, seeded, small where they can be.

- :func:`save_tiny_checkpoint`: a real ELECTRA checkpoint (random weights, a tokenizer trained
  on a few lines) that exercises the real loading, windowing and export code in seconds.
- :class:`FakeClassifier`: deterministic cue-word readings that satisfy the model protocol.
- :func:`save_random_electra` and the two architecture builders: checkpoints of a real model's
  exact shape with seeded random weights, for timing.

PyTorch (``recommender[torch]``) is needed by the checkpoint builders, not by the fake.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recommender.emotions import EMOTIONS
from recommender.texts import validate_texts

SENTENCES = [
    "오늘은 정말 행복한 하루였다",
    "내일 시험이 걱정된다",
    "친구가 약속을 어겨서 화가 났다",
    "갑자기 이름을 잘못 불러서 당황했다",
    "믿었던 사람에게 상처를 받았다",
    "비가 와서 마음이 슬프다",
    "아리랑 아리랑 아라리요 아리랑 고개로 넘어간다",
    "the quick brown fox jumps over the lazy dog",
]

# Words the fake model reads as each emotion, so tests can predict its output.
FAKE_CUES = {
    "angry": ("화", "짜증", "분노"),
    "anxious": ("걱정", "불안", "시험"),
    "embarrassed": ("당황", "민망", "놀라"),
    "happy": ("행복", "기쁘", "좋"),
    "heartache": ("상처", "배신", "실망"),
    "sad": ("슬프", "눈물", "외로"),
}


class FakeClassifier:
    """Deterministic: cue words pick the emotion; other texts get a hash-seeded vector."""

    name = "fake"
    fingerprint = source_fingerprint = "fake-0001"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = validate_texts(texts)
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            scores = np.array(
                [sum(text.count(cue) for cue in FAKE_CUES[e]) for e in EMOTIONS], dtype=np.float64
            )
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            noise = np.random.default_rng(seed).random(len(EMOTIONS)) * 0.1
            logits = 4.0 * scores + noise
            probs = np.exp(logits - logits.max())
            rows.append(probs / probs.sum())
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), len(EMOTIONS))


def save_tiny_checkpoint(
    directory: Path,
    *,
    id2label: dict[int, str] | None = None,
    max_positions: int = 64,
    seed: int = 0,
) -> Path:
    """A real ELECTRA checkpoint with random weights and a tokenizer trained on a few lines."""
    from recommender.training.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(
        SENTENCES, vocab_size=300, model_max_length=max_positions, min_frequency=1
    )
    labels = id2label if id2label is not None else dict(enumerate(EMOTIONS))
    return save_random_electra(
        directory,
        tokenizer,
        id2label=labels,
        seed=seed,
        vocab_size=len(tokenizer),
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=max_positions,
        initializer_range=0.6,
    )


def save_random_electra(
    directory: Path,
    tokenizer: Any,
    *,
    id2label: dict[int, str] | None = None,
    seed: int = 0,
    **shape: Any,
) -> Path:
    """An ELECTRA emotion classifier of the given shape with seeded random weights, saved with
    ``tokenizer`` into ``directory``."""
    from recommender.torch_backend import require_torch

    torch = require_torch()
    from transformers import ElectraConfig, ElectraForSequenceClassification

    labels = id2label if id2label is not None else dict(enumerate(EMOTIONS))
    config = ElectraConfig(  # type: ignore[call-arg]
        **shape,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(seed)
    ElectraForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)


def train_wordpiece(texts: list[str], vocab_size: int = 35000, max_length: int = 512) -> Any:
    """A WordPiece tokenizer trained on ``texts``, the way `recommender train` trains its own."""
    from recommender.training.tokenizer import train_tokenizer

    return train_tokenizer(texts, vocab_size=vocab_size, model_max_length=max_length)


def build_bundled_architecture(directory: Path, corpus: list[str]) -> Path:
    """The bundled model's exact shape (the training's ``small`` preset, as `recommender train`
    builds it) with seeded random weights and a tokenizer trained on ``corpus``."""
    from recommender.torch_backend import require_torch
    from recommender.training.options import TrainOptions
    from recommender.training.train import build_config

    torch = require_torch()
    from transformers import ElectraForSequenceClassification

    hp = TrainOptions(data_dir=directory, output_dir=directory).hyperparameters()
    tokenizer = train_wordpiece(corpus, vocab_size=hp.vocab_size, max_length=hp.max_positions)
    torch.manual_seed(0)
    config = build_config(hp, len(tokenizer), tokenizer.pad_token_id)
    ElectraForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)


def build_reference_architecture(directory: Path, tokenizer: Any) -> Path:
    """KoELECTRA-base's exact shape (the reference model: 12 layers, hidden 768, 12 heads,
    intermediate 3072, vocabulary 35,000, 512 positions) with seeded random weights."""
    return save_random_electra(
        directory,
        tokenizer,
        vocab_size=35000,
        embedding_size=768,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
