from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.catalogue import CONTENT_HASH, catalogue_files
from recommender.errors import CatalogueError
from recommender.indexing import (
    IndexOptions,
    build_index,
    classify_parts,
    identity,
    plan_index,
    read_catalogue,
    scan_catalogue,
    work_dir,
)
from recommender.testing import FakeClassifier
from recommender.track_index import MANIFEST, ModelIdentity, TrackIndex

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


# --- sharded catalogues and resuming ---------------------------------------------------------


def shard_rows(shard: int, n: int = 4) -> list[dict]:
    """``n`` tracks of shard ``shard`` with distinct lyrics carrying the fake model's cues."""
    cues = ["행복", "걱정", "화가", "당황", "상처", "슬프"]
    return [
        {
            "track_id": f"s{shard}-{i}",
            "title": f"노래 {shard}-{i}",
            "artist": "가",
            "lyrics": f"{cues[(shard + i) % 6]} 노래 {shard} {i}",
        }
        for i in range(n)
    ]


def write_shards(directory: Path, count: int = 3, suffixes=(".jsonl", ".csv", ".parquet")):
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write(directory / f"part-{s}{suffixes[s % len(suffixes)]}", shard_rows(s))
        for s in range(count)
    ]


def test_directory_and_glob_catalogues(tmp_path: Path, fake_classifier):
    shards = write_shards(tmp_path / "shards")
    (tmp_path / "shards" / "README.md").write_text("not a catalogue")
    write(tmp_path / "shards" / ".hidden.jsonl", shard_rows(9))
    (tmp_path / "shards" / "more").mkdir()
    nested = write(tmp_path / "shards" / "more" / "part-3.jsonl", shard_rows(3))
    assert catalogue_files(tmp_path / "shards") == sorted([*shards, nested])
    assert catalogue_files(str(tmp_path / "shards" / "*.csv")) == [shards[1]]

    summary = build_index(tmp_path / "shards", tmp_path / "idx", fake_classifier)
    assert summary.tracks == summary.classified == 16
    ids = TrackIndex.load(tmp_path / "idx").tracks.column("track_id").to_pylist()
    assert ids == [f"s{s}-{i}" for s in (3, 0, 1, 2) for i in range(4)]  # "more/" sorts first
    assert not work_dir(tmp_path / "idx").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty-dir", "holds no .csv, .tsv, .parquet or .jsonl files"),
        ("no-match", "no .csv, .tsv, .parquet or .jsonl files match"),
        ("duplicates", r"duplicate track_id\(s\) across the catalogue's files: s0-1"),
    ],
)
def test_bad_sharded_catalogues(tmp_path: Path, fake_classifier, setup: str, message: str):
    source = tmp_path / "shards"
    source.mkdir()
    if setup == "no-match":
        source = source / "*.parquet"
    elif setup == "duplicates":
        write_shards(source, 2)
        write(source / "part-9.jsonl", shard_rows(0)[1:2])
    with pytest.raises(CatalogueError, match=message):
        build_index(source, tmp_path / "idx", fake_classifier)
    assert fake_classifier.calls == []


def test_shards_mixing_text_and_numbers_index_as_numbers(tmp_path: Path, fake_classifier):
    """A CSV reads ``year`` as text; Parquet and JSON Lines keep it a number (with a gap)."""
    source = tmp_path / "shards"
    shards = write_shards(source)  # .jsonl, .csv, .parquet
    for s, path in enumerate(shards):
        rows = [{**row, "year": 1990 + 10 * s + i} for i, row in enumerate(shard_rows(s))]
        rows[1]["year"] = None
        write(path, rows)
    summary = build_index(source, tmp_path / "idx", fake_classifier)
    assert summary.tracks == 12
    tracks = TrackIndex.load(tmp_path / "idx").tracks
    assert str(tracks.schema.field("year").type) == "int64"
    expected = [None if i == 1 else 1990 + 10 * s + i for s in range(3) for i in range(4)]
    assert tracks.column("year").to_pylist() == expected


def test_a_column_of_numbers_and_words_across_shards_is_refused(tmp_path: Path, fake_classifier):
    source = tmp_path / "shards"
    shards = write_shards(source, 2, suffixes=(".parquet", ".csv"))
    for s, path in enumerate(shards):
        write(path, [{**row, "year": 2000 + s} for row in shard_rows(s)])
    rows = [{**row, "year": "2001"} for row in shard_rows(1)]
    rows[2]["year"] = "unknown"
    write(shards[1], rows)
    with pytest.raises(CatalogueError) as error:
        build_index(source, tmp_path / "idx", fake_classifier)
    message = str(error.value)
    assert "\n" not in message
    numbers, text = (repr(str(path)) for path in shards)
    assert f"column 'year' holds numbers in {numbers} but text in {text}" in message
    assert "(row 3: 'unknown')" in message
    assert fake_classifier.calls == []


def test_parts_are_kept_and_a_rerun_resumes_from_them(tmp_path: Path, fake_classifier):
    write_shards(tmp_path / "shards")
    options = IndexOptions(part_size=3)
    shards = scan_catalogue(tmp_path / "shards")
    model = ModelIdentity("fake", fake_classifier.fingerprint, fake_classifier.source_fingerprint)
    plan = plan_index(tmp_path / "shards", shards, tmp_path / "idx", model, options)
    assert [len(p) for p in plan.todo] == [3, 1, 3, 1, 3, 1]  # parts never span two files
    first = plan.todo[0]
    plan.complete(first, fake_classifier.predict_proba(first.lyrics()))
    assert (work_dir(tmp_path / "idx") / f"{first.name}.npy").is_file()

    fake_classifier.calls.clear()
    summary = build_index(tmp_path / "shards", tmp_path / "idx", fake_classifier, options)
    assert summary.resumed == 3 and summary.classified == 9
    assert not any(t in first.lyrics() for call in fake_classifier.calls for t in call)
    assert not work_dir(tmp_path / "idx").exists()


def test_fresh_discards_kept_parts(tmp_path: Path, fake_classifier):
    write_shards(tmp_path / "shards", 2)
    work = work_dir(tmp_path / "idx")
    shards = scan_catalogue(tmp_path / "shards")
    model = ModelIdentity("fake", fake_classifier.fingerprint, fake_classifier.source_fingerprint)
    plan = plan_index(tmp_path / "shards", shards, tmp_path / "idx", model, IndexOptions())
    plan.complete(plan.todo[0], np.full((4, 6), 1 / 6, dtype=np.float32))
    summary = build_index(
        tmp_path / "shards", tmp_path / "idx", fake_classifier, IndexOptions(fresh=True)
    )
    assert summary.resumed == 0 and summary.classified == 8 and not work.exists()
    index = TrackIndex.load(tmp_path / "idx")
    assert not np.allclose(index.vectors[0], 1 / 6)


def test_a_file_edited_after_planning_is_refused(tmp_path: Path, fake_classifier):
    (shard,) = write_shards(tmp_path / "shards", 1)
    plan = plan_index(
        shard,
        scan_catalogue(shard),
        tmp_path / "idx",
        ModelIdentity("fake", "f", "f"),
        IndexOptions(),
    )
    rows = shard_rows(0)
    rows[2]["lyrics"] = "바뀐 가사"
    write(shard, rows)
    with pytest.raises(CatalogueError, match="changed while it was being indexed"):
        plan.todo[0].lyrics()


STALLING_RUN = """
import sys, time
from recommender.testing import FakeClassifier
from recommender.indexing import IndexOptions, build_index

class Stalling(FakeClassifier):
    # The first part is classified and kept; the run then hangs until it is killed.
    def predict_proba(self, texts):
        if self.calls:
            time.sleep(600)
        return super().predict_proba(texts)

build_index(sys.argv[1], sys.argv[2], Stalling(), IndexOptions(batch_size=100))
"""


def test_a_killed_run_resumes_with_the_remaining_shards(tmp_path: Path, fake_classifier):
    shards = write_shards(tmp_path / "shards")
    output = tmp_path / "idx"
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", STALLING_RUN, str(tmp_path / "shards"), str(output)], cwd=root
    )
    try:
        deadline = time.monotonic() + 120
        while not list(work_dir(output).glob("*.npy")):
            assert process.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "no part was kept within two minutes"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert not output.exists()

    summary = build_index(tmp_path / "shards", output, fake_classifier)
    assert summary.resumed == 4 and summary.classified == 8
    first_shard = {r["lyrics"] for r in shard_rows(0)}
    classified = [t for call in fake_classifier.calls for t in call]
    assert sorted(classified) == sorted(r["lyrics"] for s in (1, 2) for r in shard_rows(s)), (
        "only the shards after the first are classified again"
    )
    assert not first_shard & set(classified)

    uninterrupted = build_index(tmp_path / "shards", tmp_path / "again", FakeClassifier())
    assert uninterrupted.classified == 12
    resumed, again = TrackIndex.load(output), TrackIndex.load(tmp_path / "again")
    assert resumed.tracks.equals(again.tracks)
    np.testing.assert_allclose(resumed.vectors, again.vectors, atol=1e-7)
    assert len(shards) == 3


@pytest.mark.gpu
def test_parts_classified_on_cuda_match_the_cpu(tmp_path: Path, tiny_model_dir: Path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    write_shards(tmp_path / "shards", 2)
    vectors = {}
    for device in ("cpu", "cuda"):
        options = IndexOptions(model=str(tiny_model_dir), engine="torch", device=device)
        model = options.load_classifier()
        shards = scan_catalogue(tmp_path / "shards")
        plan = plan_index(tmp_path / "shards", shards, tmp_path / device, identity(model), options)
        classify_parts(plan, model, options)
        vectors[device] = np.stack([plan.known[h] for h in plan.tracks[CONTENT_HASH]])
    np.testing.assert_allclose(vectors["cuda"], vectors["cpu"], atol=1e-4)
