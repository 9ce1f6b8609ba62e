"""Shared fixtures: a tiny real transformer built locally, and a deterministic fake model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from recommender.emotions import EMOTIONS

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

# Inputs every engine's predict_proba refuses, with a fragment of the message it must give.
BAD_TEXTS = [
    ("a bare string", "single string"),
    (["ok", ""], "text 1 is empty"),
    (["   \n"], "text 0 is empty"),
    (["ok", 3], "text 1 is int"),
    ([None], "text 0 is NoneType"),
    (42, "got int"),
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


def save_tiny_checkpoint(
    directory: Path,
    *,
    id2label: dict[int, str] | None = None,
    max_positions: int = 64,
    seed: int = 0,
) -> Path:
    """A real ELECTRA checkpoint with random weights and a tokenizer trained on a few lines."""
    import torch
    from transformers import ElectraConfig, ElectraForSequenceClassification

    from recommender.training.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(
        SENTENCES, vocab_size=300, model_max_length=max_positions, min_frequency=1
    )
    labels = id2label if id2label is not None else dict(enumerate(EMOTIONS))
    config = ElectraConfig(
        vocab_size=len(tokenizer),
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=max_positions,
        num_labels=len(labels),
        initializer_range=0.6,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(seed)
    model = ElectraForSequenceClassification(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir: Path):
    from recommender.classifier import EmotionClassifier

    return EmotionClassifier.from_pretrained(tiny_model_dir, device="cpu", batch_size=4)


class FakeClassifier:
    """Deterministic: cue words pick the emotion; other texts get a hash-seeded vector."""

    name = "fake"
    fingerprint = source_fingerprint = "fake-0001"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        from recommender.classifier import validate_texts

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


@pytest.fixture()
def fake_classifier() -> FakeClassifier:
    return FakeClassifier()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What a reader of the run needs: the schemathesis case count and the screenshots' paths."""
    reports = terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
    properties = [
        (name, value)
        for report in reports
        if report.when == "call"
        for name, value in report.user_properties
    ]
    counts = [value for name, value in properties if name == "fuzz_cases"]
    if counts:
        terminalreporter.write_line(
            f"schemathesis: {sum(counts)} generated cases over {len(counts)} operation runs"
        )
    for name, value in properties:
        if name == "screenshot":
            terminalreporter.write_line(f"browser screenshot: {value}")
