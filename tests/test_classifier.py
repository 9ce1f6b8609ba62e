from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.classifier import BUNDLED_MODEL, EmotionClassifier, resolve_model
from recommender.emotions import EMOTIONS, label_order
from recommender.errors import InvalidInputError, ModelLoadError
from recommender.texts import validate_texts

from .conftest import BAD_TEXTS, save_tiny_checkpoint


def test_predict_proba_shape_dtype_and_rows_sum_to_one(tiny_classifier):
    probs = tiny_classifier.predict_proba(["오늘은 정말 행복한 하루였다", "내일 시험이 걱정된다"])
    assert probs.shape == (2, 6)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_batched_results_match_one_at_a_time_in_input_order(tiny_classifier):
    texts = [
        "행복",
        "내일 시험이 걱정된다 정말 많이 걱정된다",
        "비",
        "친구가 약속을 어겨서 화가 났다",
    ]
    batched = tiny_classifier.predict_proba(texts)
    single = np.vstack([tiny_classifier.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_empty_list_gives_empty_array(tiny_classifier):
    assert tiny_classifier.predict_proba([]).shape == (0, 6)


@pytest.mark.parametrize(
    ("texts", "message"),
    BAD_TEXTS,
)
def test_bad_texts_are_refused(tiny_classifier, texts, message):
    with pytest.raises(InvalidInputError, match=message):
        tiny_classifier.predict_proba(texts)


def test_validate_texts_limits_count():
    with pytest.raises(InvalidInputError, match="too many texts: 3"):
        validate_texts(["a", "b", "c"], max_texts=2)


def test_long_text_is_windowed_not_truncated(tiny_classifier):
    long_text = " ".join(["아리랑 아리랑 아라리요"] * 60)
    n_tokens = len(tiny_classifier.tokenizer(long_text)["input_ids"])
    assert n_tokens > tiny_classifier.window
    encoded = tiny_classifier.tokenizer(
        [long_text],
        truncation=True,
        max_length=tiny_classifier.window,
        stride=tiny_classifier.stride,
        return_overflowing_tokens=True,
    )
    assert len(encoded["input_ids"]) > 1
    # The text's vector is the token-weighted mean of its windows' vectors.
    windows = encoded["input_ids"]
    window_probs = tiny_classifier._predict_windows(windows)
    weights = np.array([len(w) for w in windows], dtype=np.float64)
    expected = (window_probs * weights[:, None]).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(tiny_classifier.predict_proba([long_text])[0], expected, atol=1e-5)


def test_tail_of_long_text_changes_the_vector(tiny_classifier):
    head = " ".join(["아리랑 아리랑 아라리요"] * 40)
    a = tiny_classifier.predict_proba([head + " 행복한 하루였다" * 30])
    b = tiny_classifier.predict_proba([head + " 시험이 걱정된다" * 30])
    assert not np.allclose(a, b)


def test_label_order_from_checkpoint_is_applied(tmp_path: Path, tiny_classifier):
    # The same weights with rows of the classifier head permuted and labels renamed in Korean
    # must give the same canonical vectors.
    import torch

    korean = {0: "슬픔", 1: "행복", 2: "분노", 3: "불안", 4: "당황", 5: "상처"}
    permuted = tmp_path / "korean"
    save_tiny_checkpoint(permuted, id2label=korean)
    model = EmotionClassifier.from_pretrained(tiny_classifier.name, device="cpu").model
    source = [
        EMOTIONS.index(e) for e in ("sad", "happy", "angry", "anxious", "embarrassed", "heartache")
    ]
    state = model.state_dict()
    state["classifier.out_proj.weight"] = state["classifier.out_proj.weight"][source]
    state["classifier.out_proj.bias"] = state["classifier.out_proj.bias"][source]
    other = EmotionClassifier.from_pretrained(permuted, device="cpu")
    other.model.load_state_dict(state)
    texts = ["오늘은 정말 행복한 하루였다", "비가 와서 마음이 슬프다"]
    with torch.inference_mode():
        np.testing.assert_allclose(
            other.predict_proba(texts), tiny_classifier.predict_proba(texts), atol=1e-5
        )


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({i: e.upper() for i, e in enumerate(EMOTIONS)}, [0, 1, 2, 3, 4, 5]),
        ({i: f"LABEL_{i}" for i in range(6)}, [0, 1, 2, 3, 4, 5]),
        ({0: "기쁨", 1: "분노", 2: "불안", 3: "당황", 4: "상처", 5: "슬픔"}, [1, 2, 3, 0, 4, 5]),
        (
            {
                "5": "Sad",
                "0": "Angry",
                "1": "Anxious",
                "2": "Embarrassed",
                "3": "Happy",
                "4": "Heartache",
            },
            [0, 1, 2, 3, 4, 5],
        ),
    ],
)
def test_label_order_maps_names(id2label, expected):
    assert label_order(id2label).tolist() == expected


@pytest.mark.parametrize(
    ("id2label", "message"),
    [
        ({i: e for i, e in enumerate(EMOTIONS[:5])}, "has 5 labels"),
        ({**{i: e for i, e in enumerate(EMOTIONS)}, 6: "neutral"}, "has 7 labels.*'neutral'"),
        (
            {**{i: e for i, e in enumerate(EMOTIONS)}, 5: "neutral"},
            "unmapped: sad.*'neutral'|'neutral'.*unmapped: sad",
        ),
        ({i: "happy" for i in range(6)}, "cannot map"),
    ],
)
def test_unmappable_labels_are_refused(id2label, message):
    with pytest.raises(ModelLoadError, match=message):
        label_order(id2label)


def test_checkpoint_with_wrong_label_count_is_refused(tmp_path: Path):
    save_tiny_checkpoint(tmp_path, id2label={0: "negative", 1: "positive"})
    with pytest.raises(ModelLoadError, match="has 2 labels.*'negative'"):
        EmotionClassifier.from_pretrained(tmp_path, device="cpu")


def test_unreachable_hub_id_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ModelLoadError,
        match=r"could not be reached.*`hf download Jinuuuu/KoELECTRA_fine_tunning_emotion "
        r"--local-dir DIR` \(`huggingface-cli download` on huggingface_hub before 0\.34\)",
    ):
        EmotionClassifier.from_pretrained("Jinuuuu/KoELECTRA_fine_tunning_emotion", device="cpu")


def test_missing_local_path_and_file_path(tmp_path: Path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        EmotionClassifier.from_pretrained(file, device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="cannot load model from"):
        EmotionClassifier.from_pretrained(empty, device="cpu")


def test_default_model_follows_environment(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("RECOMMENDER_MODEL", str(tiny_model_dir))
    monkeypatch.delenv("RECOMMENDER_ENGINE", raising=False)
    assert resolve_model() == (str(tiny_model_dir), "torch")
    classifier = EmotionClassifier.from_pretrained(device="cpu")
    assert classifier.name == str(tiny_model_dir)
    monkeypatch.delenv("RECOMMENDER_MODEL")
    assert resolve_model(engine="torch")[0] == str(BUNDLED_MODEL)


def test_fingerprint_depends_on_weights(tmp_path: Path, tiny_classifier):
    other = EmotionClassifier.from_pretrained(save_tiny_checkpoint(tmp_path, seed=1), device="cpu")
    same = EmotionClassifier.from_pretrained(tiny_classifier.name, device="cpu")
    assert same.fingerprint == tiny_classifier.fingerprint
    assert other.fingerprint != tiny_classifier.fingerprint


def test_cuda_request_without_cuda_is_refused(tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        EmotionClassifier.from_pretrained(tiny_model_dir, device="cuda")


def test_batches_are_length_sorted_and_capped_by_count_and_tokens():
    from recommender.windowing import length_sorted_batches

    windows = [[1] * n for n in (5, 300, 40, 300, 7, 120, 300, 2)]
    batches = list(length_sorted_batches(windows, batch_size=3, pad_id=0, max_tokens=700))
    # A batch led by a 300-token window holds two (2 x 300 <= 700); shorter ones up to three.
    assert [list(rows) for rows, _, _ in batches] == [[1, 3], [6, 5], [2, 4, 0], [7]]
    for rows, ids, mask in batches:
        assert ids.shape == (len(rows), len(windows[rows[0]]))  # padded to the batch's longest
        assert mask.sum(axis=1).tolist() == [len(windows[r]) for r in rows]
    # A window longer than the budget still runs, alone.
    (rows, ids, _), *_ = length_sorted_batches([[1] * 900, [1] * 10], 8, 0, max_tokens=700)
    assert list(rows) == [0] and ids.shape == (1, 900)
