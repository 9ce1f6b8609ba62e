"""Shared fixtures: a tiny real transformer built locally, and a deterministic fake model."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.testing import SENTENCES, FakeClassifier, save_tiny_checkpoint

__all__ = ["BAD_TEXTS", "SENTENCES", "save_tiny_checkpoint"]

# Inputs every backend's predict_proba refuses, with a fragment of the message it must give.
BAD_TEXTS = [
    ("a bare string", "single string"),
    (["ok", ""], "text 1 is empty"),
    (["   \n"], "text 0 is empty"),
    (["ok", 3], "text 1 is int"),
    ([None], "text 0 is NoneType"),
    (42, "got int"),
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir: Path):
    from recommender.classifier import EmotionClassifier

    return EmotionClassifier.from_pretrained(tiny_model_dir, device="cpu", batch_size=4)


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
