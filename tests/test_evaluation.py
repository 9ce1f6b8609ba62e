from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.emotions import EMOTIONS
from recommender.errors import DatasetError
from recommender.evaluation import (
    LabelledData,
    compute_metrics,
    evaluate,
    expected_calibration_error,
    load_labelled,
    mean_cosine,
)


def one_hot(labels: list[int], confidence: float = 1.0) -> np.ndarray:
    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    probs = np.full((len(labels), len(EMOTIONS)), rest)
    probs[np.arange(len(labels)), labels] = confidence
    return probs


def test_perfect_predictions() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5, 3, 3])
    report = compute_metrics(one_hot(labels.tolist()), labels)
    assert report.n == 8
    assert report.accuracy == 1.0
    assert report.macro_f1 == 1.0
    assert report.ece == pytest.approx(0.0)
    assert report.cosine is None
    assert np.array_equal(report.confusion, np.diag([1, 1, 1, 3, 1, 1]))
    assert [m.support for m in report.per_class] == [1, 1, 1, 3, 1, 1]


def test_known_confusion_and_f1() -> None:
    # true: angry x2, happy x2; predicted: angry, happy, happy, happy
    labels = np.array([0, 0, 3, 3])
    report = compute_metrics(one_hot([0, 3, 3, 3]), labels)
    assert report.accuracy == pytest.approx(0.75)
    angry, happy = report.per_class[0], report.per_class[3]
    assert (angry.precision, angry.recall, angry.f1) == pytest.approx((1.0, 0.5, 2 / 3))
    assert (happy.precision, happy.recall, happy.f1) == pytest.approx((2 / 3, 1.0, 0.8))
    # Macro-F1 averages over the classes present in the data only.
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert report.confusion[0].tolist() == [1, 0, 0, 1, 0, 0]
    assert report.confusion[3].tolist() == [0, 0, 0, 2, 0, 0]


def test_ece_known_value() -> None:
    # Confidence 0.9 everywhere, half correct: ECE = |0.5 - 0.9| = 0.4.
    probs = one_hot([0, 0, 0, 0], confidence=0.9)
    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    # Two bins: 0.9 confident and right, 0.5 confident and wrong -> (0.1 + 0.5) / 2.
    probs = np.vstack([one_hot([0], 0.9), one_hot([0], 0.5)])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.3)


def test_cosine_against_soft_targets() -> None:
    probs = one_hot([0, 3])
    targets = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 1]], dtype=float)
    assert mean_cosine(probs, targets) == pytest.approx((1 + 1 / np.sqrt(2)) / 2)
    report = compute_metrics(probs, np.array([0, 3]), targets)
    assert report.cosine == pytest.approx((1 + 1 / np.sqrt(2)) / 2)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(DatasetError, match=r"shape \(n, 6\)"):
        compute_metrics(np.zeros((3, 5)), np.zeros(3, dtype=int))
    with pytest.raises(DatasetError, match="expected 3 labels"):
        compute_metrics(np.zeros((3, 6)), np.zeros(2, dtype=int))
    with pytest.raises(DatasetError, match="empty"):
        compute_metrics(np.zeros((0, 6)), np.zeros(0, dtype=int))
    with pytest.raises(DatasetError, match="targets of shape"):
        compute_metrics(np.eye(6), np.arange(6), np.eye(5))


def test_report_dict_and_format() -> None:
    report = compute_metrics(one_hot([0, 3, 3]), np.array([0, 3, 5]))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["labels"] == list(EMOTIONS)
    assert data["per_class"]["sad"]["support"] == 1
    assert data["confusion_matrix"][5][3] == 1
    text = report.format()
    assert "macro-F1" in text and "heartache" in text and "confusion matrix" in text


class FixedModel:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return one_hot([3 if "행복" in t else 5 for t in texts], confidence=0.8)


def test_evaluate_batches_a_model() -> None:
    data = LabelledData(
        texts=["행복해", "슬퍼", "행복한 날", "우울"] * 3, labels=np.array([3, 5, 3, 5] * 3)
    )
    model = FixedModel()
    report = evaluate(model, data, batch_size=5)
    assert model.batches == [5, 5, 2]
    assert report.accuracy == 1.0
    assert report.ece == pytest.approx(0.2)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_tsv_with_english_and_korean_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.tsv", "text\tlabel\n기분 좋다\thappy\n화가 난다\t분노\n무섭다\tAnxious\n"
    )
    data = load_labelled(path)
    assert data.texts == ["기분 좋다", "화가 난다", "무섭다"]
    assert data.labels.tolist() == [3, 0, 1]
    assert data.targets is None


def test_load_csv_with_int_labels_and_custom_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'sentence,emotion\n"쉼표, 있는 문장",5\n좋아,3\n')
    data = load_labelled(path, text_column="sentence", label_column="emotion")
    assert data.texts == ["쉼표, 있는 문장", "좋아"]
    assert data.labels.tolist() == [5, 3]


def test_load_sniffs_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "d.txt", "text\tlabel\n슬프다\tsad\n속상해\t상처\n")
    assert load_labelled(path).labels.tolist() == [5, 4]


def test_load_soft_targets(tmp_path: Path) -> None:
    header = "text\tlabel\t" + "\t".join(EMOTIONS)
    path = write(tmp_path / "d.tsv", f"{header}\n좋다\thappy\t0\t0\t0\t3\t0\t1\n")
    data = load_labelled(path)
    assert data.targets is not None
    assert data.targets[0].tolist() == pytest.approx([0, 0, 0, 0.75, 0, 0.25])


def test_unknown_labels_are_named(tmp_path: Path) -> None:
    rows = "".join(f"t{i}\t{label}\n" for i, label in enumerate(["happy", "joyful", "7", "meh"]))
    path = write(tmp_path / "d.tsv", "text\tlabel\n" + rows)
    with pytest.raises(DatasetError, match=r"'7', 'joyful', 'meh'.*valid labels: angry, anxious"):
        load_labelled(path)


def test_many_unknown_labels_are_truncated(tmp_path: Path) -> None:
    rows = "".join(f"t{i}\tbad{i}\n" for i in range(8))
    path = write(tmp_path / "d.tsv", "text\tlabel\n" + rows)
    with pytest.raises(DatasetError, match=r"'bad4' \.\.\."):
        load_labelled(path)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "sentence,label\n좋다,happy\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) 'text'; found: 'sentence', 'label'"):
        load_labelled(path)


def test_empty_texts_report_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", "text\tlabel\n좋다\thappy\n \tsad\n슬퍼\tsad\n\tangry\n")
    with pytest.raises(DatasetError, match=r"2 empty text\(s\) at line\(s\) 3, 5"):
        load_labelled(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_labelled(tmp_path / "nope.tsv")
    binary = tmp_path / "d.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81text,label\n")
    with pytest.raises(DatasetError, match="cannot read"):
        load_labelled(binary)
    empty = write(tmp_path / "e.csv", "")
    with pytest.raises(DatasetError, match="empty"):
        load_labelled(empty)
    header_only = write(tmp_path / "h.csv", "text,label\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_labelled(header_only)
