from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.emotions import EMOTIONS
from recommender.errors import CatalogueError
from recommender.indexing import IndexOptions, build_index
from recommender.mood_tags import PROBABILITY_COLUMNS, blend, read_tags, tags_to_blend
from recommender.track_index import MANIFEST, TrackIndex
from tests.test_indexing import ROWS, write

LABELS = ["happy", "불안", None, "", "Sad"]  # rows a1..a5; a4 has no lyrics


def with_labels(labels: list[str | None], column: str = "mood") -> list[dict]:
    return [{**row, column: label} for row, label in zip(ROWS, labels, strict=True)]


def probabilities(rows: list[list[float] | None]) -> pd.DataFrame:
    data = {
        c: [r[i] if r is not None else None for r in rows]
        for i, c in enumerate(PROBABILITY_COLUMNS)
    }
    return pd.DataFrame(data)


def test_label_column_in_english_or_korean():
    tags = read_tags(pd.DataFrame({"mood": LABELS}))
    assert tags.column == "mood"
    assert tags.tagged.tolist() == [True, True, False, False, True]
    assert [EMOTIONS[i] for i in tags.vectors[tags.tagged].argmax(1)] == ["happy", "anxious", "sad"]
    np.testing.assert_array_equal(tags.vectors[~tags.tagged], 0)
    assert tags.manifest(0.5) == {"weight": 0.5, "column": "mood", "tagged": 3}


def test_a_named_label_column():
    tags = read_tags(pd.DataFrame({"emotion": ["분노", "heartache"]}), "emotion")
    assert tags.column == "emotion" and tags.tagged.all()


def test_unknown_labels_are_listed_in_one_line():
    labels = ["happy", "joyful", "신남", "joyful", "sad"]
    frame = pd.DataFrame({"track_id": [f"t{i}" for i in range(1, 6)], "mood": labels})
    with pytest.raises(
        CatalogueError,
        match=r"2 unknown label\(s\): 'joyful' \(tracks t2, t4\); '신남' \(tracks t3\); "
        "expected one of angry/분노",
    ) as raised:
        read_tags(frame)
    assert "\n" not in str(raised.value)


def test_a_missing_column_names_what_was_found():
    with pytest.raises(CatalogueError, match="no mood tag column 'mood'.*found: track_id, lyrics"):
        read_tags(pd.DataFrame({"track_id": ["a"], "lyrics": ["x"]}))


def test_probability_columns_are_read_first():
    frame = probabilities([[0.5, 0.5, 0, 0, 0, 0], None, [0, 0, 0, 0.2, 0.3, 0.5]])
    frame["mood"] = ["happy", "happy", "happy"]
    tags = read_tags(frame)
    assert tags.column == "mood_*"
    assert tags.tagged.tolist() == [True, False, True]
    np.testing.assert_allclose(tags.vectors[2], [0, 0, 0, 0.2, 0.3, 0.5])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([0.5, 0.4, 0, 0, 0, 0], r"tracks whose six do not sum to 1: row 2 \(0\.900\)"),
        ([1.2, -0.2, 0, 0, 0, 0], "negative values for tracks row 2"),
        ([0.5, 0.5, None, 0, 0, 0], "some but not all six given for tracks row 2"),
        ([0.5, "x", 0, 0, 0, 0.5], "values that are not numbers for tracks row 2"),
    ],
)
def test_bad_probability_rows_are_refused(row, message):
    with pytest.raises(CatalogueError, match=message):
        read_tags(probabilities([[1, 0, 0, 0, 0, 0], row]))


@pytest.mark.parametrize("weight", [-0.1, 1.5, "0.5", True])
def test_tag_weight_must_be_a_fraction(weight):
    with pytest.raises(CatalogueError, match="tag weight must be a number from 0 to 1"):
        tags_to_blend(pd.DataFrame({"mood": ["happy"]}), weight)


def test_weight_zero_ignores_tags_entirely():
    assert tags_to_blend(pd.DataFrame({"mood": ["nonsense"]}), 0.0) is None


def test_blend_moves_tagged_rows_along_the_sphere():
    vectors = np.array([[0.7, 0.1, 0.05, 0.05, 0.05, 0.05]] * 2, dtype=np.float32)
    tags = read_tags(pd.DataFrame({"mood": ["happy", None]}))
    np.testing.assert_array_equal(blend(vectors, tags, 0.0), vectors)
    np.testing.assert_allclose(blend(vectors, tags, 1.0)[0], np.eye(6)[3], atol=1e-6)
    half = blend(vectors, tags, 0.5)
    np.testing.assert_allclose(half.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(half[1], vectors[1])  # untagged rows keep the lyrics' reading
    assert vectors[0, 3] < half[0, 3] < 1 and half[0, 0] < vectors[0, 0]


def test_build_index_blends_and_records_the_tags(tmp_path: Path, fake_classifier):
    catalogue = write(tmp_path / "cat.jsonl", with_labels(LABELS))
    build_index(catalogue, tmp_path / "plain", fake_classifier)
    build_index(catalogue, tmp_path / "tagged", fake_classifier, IndexOptions(tag_weight=1.0))
    plain = TrackIndex.load(tmp_path / "plain")
    tagged = TrackIndex.load(tmp_path / "tagged")
    ids = tagged.tracks.column("track_id").to_pylist()
    assert ids == ["a1", "a2", "a3", "a5"]  # a4 has no lyrics and is skipped with its tag
    np.testing.assert_allclose(tagged.vectors[1], np.eye(6)[1], atol=1e-6)  # a2 tagged 불안
    np.testing.assert_allclose(tagged.vectors[3], np.eye(6)[5], atol=1e-6)  # a5 tagged Sad
    np.testing.assert_array_equal(tagged.vectors[2], plain.vectors[2])  # a3 untagged
    manifest = json.loads((tmp_path / "tagged" / MANIFEST).read_text())
    assert manifest["mood_tags"] == {"weight": 1.0, "column": "mood", "tagged": 3}
    assert "mood_tags" not in json.loads((tmp_path / "plain" / MANIFEST).read_text())


def test_reindexing_a_tagged_index_reads_the_lyrics_again(tmp_path: Path, fake_classifier):
    catalogue = write(tmp_path / "cat.jsonl", with_labels(LABELS))
    build_index(catalogue, tmp_path / "idx", fake_classifier, IndexOptions(tag_weight=1.0))
    summary = build_index(catalogue, tmp_path / "idx", fake_classifier)
    assert summary.reused == 0
    np.testing.assert_allclose(
        TrackIndex.load(tmp_path / "idx").vectors[1],
        fake_classifier.predict_proba([ROWS[1]["lyrics"]])[0],
    )


def test_build_index_refuses_bad_tags_before_classifying(tmp_path: Path, fake_classifier):
    catalogue = write(tmp_path / "cat.jsonl", with_labels(["happy", "meh", None, None, None]))
    with pytest.raises(CatalogueError, match="'meh' \\(tracks a2\\)"):
        build_index(catalogue, tmp_path / "idx", fake_classifier, IndexOptions(tag_weight=0.5))
    assert fake_classifier.calls == []
    assert not (tmp_path / "idx").exists()
