from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.errors import CatalogueError
from recommender.indexing import build_index, read_catalogue
from recommender.track_index import MANIFEST, TrackIndex

ROWS = [
    {
        "track_id": "a1",
        "title": "기쁜 날",
        "artist": "가",
        "lyrics": "오늘은 정말 행복한 날",
        "genre": "인디",
    },
    {
        "track_id": "a2",
        "title": "시험 전날",
        "artist": "가",
        "lyrics": "내일 시험이 걱정돼",
        "genre": "록",
    },
    {
        "track_id": "a3",
        "title": "분노",
        "artist": "나",
        "lyrics": "짜증나고 화가 나",
        "genre": "록",
    },
    {"track_id": "a4", "title": "빈 노래", "artist": "나", "lyrics": "   ", "genre": "록"},
    {
        "track_id": "a5",
        "title": "눈물",
        "artist": "다",
        "lyrics": "눈물이 나고 슬프다",
        "genre": "발라드",
    },
]


def write(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_reads_every_format(tmp_path: Path, suffix: str):
    frame = read_catalogue(write(tmp_path / f"cat{suffix}", ROWS))
    assert frame["track_id"].tolist() == ["a1", "a2", "a3", "a4", "a5"]
    assert "genre" in frame.columns


def test_missing_columns_are_named(tmp_path: Path):
    rows = [{k: v for k, v in r.items() if k not in {"artist", "lyrics"}} for r in ROWS]
    with pytest.raises(CatalogueError, match="lacks column.*artist, lyrics; found: track_id"):
        read_catalogue(write(tmp_path / "cat.csv", rows))


def test_duplicate_ids_are_listed(tmp_path: Path):
    rows = ROWS + [dict(ROWS[0]), dict(ROWS[2])]
    with pytest.raises(CatalogueError, match="duplicate track_id.*a1, a3"):
        read_catalogue(write(tmp_path / "cat.jsonl", rows))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cat.csv", None, "does not exist"),
        ("cat.xlsx", b"x", "cannot tell the format"),
        ("cat.parquet", b"not parquet at all", "cannot read catalogue"),
        ("cat.jsonl", b"{broken json\n", "cannot read catalogue"),
    ],
)
def test_unreadable_files(tmp_path: Path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CatalogueError, match=message):
        read_catalogue(path)


def test_build_skips_and_reports_empty_lyrics(tmp_path: Path, fake_classifier):
    rows = ROWS + [{"track_id": "a6", "title": "없음", "artist": "다", "lyrics": None}]
    summary = build_index(write(tmp_path / "cat.jsonl", rows), tmp_path / "idx", fake_classifier)
    assert summary.tracks == 4 and summary.classified == 4 and summary.reused == 0
    assert summary.skipped == [
        {"track_id": "a4", "reason": "empty lyrics"},
        {"track_id": "a6", "reason": "missing lyrics"},
    ]
    index = TrackIndex.load(tmp_path / "idx", checkpoint=fake_classifier.source_fingerprint)
    assert index.tracks.column("track_id").to_pylist() == ["a1", "a2", "a3", "a5"]
    assert "lyrics" not in index.tracks.column_names
    np.testing.assert_allclose(
        index.vectors,
        fake_classifier.predict_proba(
            [r["lyrics"] for r in ROWS if r["track_id"] in {"a1", "a2", "a3", "a5"}]
        ),
    )
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    assert manifest["skipped"] == 2 and manifest["model"]["name"] == "fake"


def test_reindexing_classifies_only_changed_rows(tmp_path: Path, fake_classifier):
    catalogue = write(tmp_path / "cat.csv", ROWS)
    build_index(catalogue, tmp_path / "idx", fake_classifier)
    changed = [dict(r) for r in ROWS]
    changed[1]["lyrics"] = "내일 면접이 너무 불안해"
    changed.append({"track_id": "a7", "title": "새 노래", "artist": "라", "lyrics": "기쁘다 좋다"})
    fake_classifier.calls.clear()
    summary = build_index(write(catalogue, changed), tmp_path / "idx", fake_classifier)
    assert summary.classified == 2 and summary.reused == 3
    assert sorted(t for call in fake_classifier.calls for t in call) == sorted(
        ["내일 면접이 너무 불안해", "기쁘다 좋다"]
    )
    index = TrackIndex.load(tmp_path / "idx")
    row = index.rows_of(["a2"])[0]
    np.testing.assert_allclose(
        index.vectors[row], fake_classifier.predict_proba(["내일 면접이 너무 불안해"])[0]
    )


def test_reindexing_with_another_model_classifies_everything(tmp_path: Path, fake_classifier):
    catalogue = write(tmp_path / "cat.csv", ROWS)
    build_index(catalogue, tmp_path / "idx", fake_classifier)
    fake_classifier.fingerprint = "another"
    summary = build_index(catalogue, tmp_path / "idx", fake_classifier)
    assert summary.classified == 4 and summary.reused == 0


def test_index_with_real_tiny_model(tmp_path: Path, tiny_classifier):
    long_lyrics = "아리랑 아리랑 아라리요 " * 80
    rows = ROWS[:3] + [
        {"track_id": "long", "title": "긴 노래", "artist": "라", "lyrics": long_lyrics}
    ]
    build_index(write(tmp_path / "cat.jsonl", rows), tmp_path / "idx", tiny_classifier)
    index = TrackIndex.load(tmp_path / "idx", checkpoint=tiny_classifier.source_fingerprint)
    np.testing.assert_allclose(
        index.vectors[3], tiny_classifier.predict_proba([long_lyrics])[0], atol=1e-6
    )


def test_whole_number_columns_with_gaps_stay_integers(tmp_path: Path, fake_classifier):
    rows = [dict(r, year=2001 + i) for i, r in enumerate(ROWS)]
    rows[0]["year"] = None
    build_index(write(tmp_path / "cat.jsonl", rows), tmp_path / "idx", fake_classifier)
    years = TrackIndex.load(tmp_path / "idx").tracks.column("year").to_pylist()
    assert years == [None, 2002, 2003, 2005]


def test_unwritable_output_fails_before_classifying(tmp_path: Path, fake_classifier):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CatalogueError, match="cannot write the index"):
        build_index(write(tmp_path / "cat.csv", ROWS), blocker / "idx", fake_classifier)
    assert fake_classifier.calls == []
