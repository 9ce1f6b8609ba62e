from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from recommender.classifier import EmotionClassifier
from recommender.emotions import EMOTIONS
from recommender.errors import ModelLoadError
from recommender.ngram_head import HEAD_FILE, NgramHead, sharpen
from recommender.onnx_export import export_onnx

CUES = {
    "angry": ["정말 화가 난다", "짜증 나 죽겠다", "화가 치민다 짜증"],
    "anxious": ["시험이 걱정된다", "불안해서 잠이 안 온다", "걱정 걱정 불안"],
    "embarrassed": ["너무 당황했다", "당황스럽고 민망했다", "민망해서 당황"],
    "happy": ["오늘 정말 행복하다", "행복하고 기쁘다", "기뻐서 행복해"],
    "heartache": ["배신당해 상처받았다", "상처가 된 말", "믿었는데 배신 상처"],
    "sad": ["비가 와서 슬프다", "슬프고 우울하다", "우울해서 슬퍼"],
}
TEXTS = [text for texts in CUES.values() for text in texts]
LABELS = np.repeat(np.arange(len(EMOTIONS)), 3)


@pytest.fixture(scope="module")
def head() -> NgramHead:
    return NgramHead.fit(TEXTS * 2, np.concatenate([LABELS, LABELS])).with_weight(0.4)


def test_reads_its_training_cues_in_canonical_order(head):
    probs = head.predict_proba(["화가 난다 짜증", "행복하고 기쁘다", "우울하고 슬프다"])
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert [EMOTIONS[i] for i in probs.argmax(axis=1)] == ["angry", "happy", "sad"]


def test_mix_weights_the_two_readings(head):
    encoder = np.full((2, 6), 1 / 6, dtype=np.float32)
    texts = ["정말 화가 난다", "너무 당황했다"]
    mixed = head.mix(encoder, texts)
    assert mixed.dtype == np.float32
    np.testing.assert_allclose(mixed, 0.6 * encoder + 0.4 * head.predict_proba(texts), atol=1e-6)
    assert head.with_weight(0.0).mix(encoder, texts) is encoder


def test_mix_temperature_sharpens_without_changing_the_reading(head):
    encoder = np.tile(np.array([0.3, 0.2, 0.1, 0.2, 0.1, 0.1], dtype=np.float32), (2, 1))
    texts = ["정말 화가 난다", "너무 당황했다"]
    plain, sharp = head.mix(encoder, texts), head.with_weight(0.4, 0.5).mix(encoder, texts)
    squared = plain.astype(np.float64) ** 2
    np.testing.assert_allclose(sharp, squared / squared.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0, atol=1e-6)
    assert (sharp.argmax(axis=1) == plain.argmax(axis=1)).all()
    assert (sharp.max(axis=1) > plain.max(axis=1)).all()
    assert sharpen(plain, 1.0) is plain


def test_save_and_load_round_trip_without_pickle(head, tmp_path: Path):
    (tmp_path / "tempered").mkdir()
    head.with_weight(0.4, 0.8).save(tmp_path / "tempered")
    assert NgramHead.load(tmp_path / "tempered").temperature == pytest.approx(0.8)
    head.save(tmp_path)
    with np.load(tmp_path / HEAD_FILE, allow_pickle=False) as arrays:
        assert {"terms", "idf", "coef", "intercept", "weight"} <= set(arrays.files)
    loaded = NgramHead.load(tmp_path)
    assert loaded is not None and loaded.weight == pytest.approx(0.4)
    texts = ["시험이 걱정된다", "상처받은 하루", "처음 보는 글자 조합"]
    # Coefficients are stored as float16.
    np.testing.assert_allclose(loaded.predict_proba(texts), head.predict_proba(texts), atol=2e-3)
    assert NgramHead.load(tmp_path / "nowhere") is None
    # A head saved before the mix had a temperature reads with temperature 1.
    with np.load(tmp_path / HEAD_FILE) as arrays:
        old = {k: arrays[k] for k in arrays.files if k != "temperature"}
    (tmp_path / "old").mkdir()
    np.savez_compressed(tmp_path / "old" / HEAD_FILE, **old)
    assert NgramHead.load(tmp_path / "old").temperature == 1.0


def test_classes_absent_from_training_get_no_probability():
    two = NgramHead.fit(TEXTS[:6], LABELS[:6])  # angry and anxious only
    probs = two.predict_proba(["화가 난다", "걱정된다"])
    assert probs[:, 2:].max() < 1e-9
    assert list(probs.argmax(axis=1)) == [0, 1]


def test_soft_targets_share_a_row_between_its_classes():
    mixed = "화가 나면서도 슬프다 애매"
    targets = np.vstack([np.eye(6)[LABELS], [[0.5, 0, 0, 0, 0, 0.5]] * 3])
    soft = NgramHead.fit(TEXTS + [mixed] * 3, targets)
    probs = soft.predict_proba([mixed])[0]
    assert set(np.argsort(probs)[-2:]) == {0, 5}  # angry and sad, nothing else
    assert abs(probs[0] - probs[5]) < 0.15
    # Index labels are one-hot soft targets: the same model.
    hard = NgramHead.fit(TEXTS, LABELS)
    onehot = NgramHead.fit(TEXTS, np.eye(6)[LABELS])
    np.testing.assert_allclose(hard.predict_proba(TEXTS), onehot.predict_proba(TEXTS))


def test_unreadable_head_file_is_a_load_error(tmp_path: Path):
    (tmp_path / HEAD_FILE).write_bytes(b"not a zip file")
    with pytest.raises(ModelLoadError, match="cannot read the n-gram head"):
        NgramHead.load(tmp_path)


@pytest.fixture(scope="module")
def model_with_head(tiny_model_dir: Path, head: NgramHead, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("with-head") / "model"
    shutil.copytree(tiny_model_dir, directory)
    head.save(directory)
    return directory


def test_both_engines_mix_the_checkpoint_head(model_with_head, tiny_classifier, tmp_path):
    texts = ["정말 화가 난다", "오늘 정말 행복하다", "아무 말"]
    with_head = EmotionClassifier.from_pretrained(model_with_head, device="cpu")
    assert with_head.head is not None and tiny_classifier.head is None
    expected = 0.6 * tiny_classifier.predict_proba(texts) + 0.4 * with_head.head.predict_proba(
        texts
    )
    np.testing.assert_allclose(with_head.predict_proba(texts), expected, atol=1e-5)
    # The head is part of the checkpoint's identity, and travels with its ONNX export.
    assert with_head.fingerprint != tiny_classifier.fingerprint
    exported = export_onnx(model_with_head, tmp_path / "onnx")
    assert (exported / HEAD_FILE).is_file()
    onnx_model = EmotionClassifier.from_pretrained(exported, backend="onnx")
    assert onnx_model.source_fingerprint == with_head.fingerprint
    np.testing.assert_allclose(onnx_model.predict_proba(texts), expected, atol=1e-4)
