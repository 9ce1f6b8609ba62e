from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender.cli import main
from recommender.errors import DatasetError
from recommender.training.heldout import filter_file, filter_near, read_texts, stanzas

HELD_OUT = "약속을 또 어기다니 정말 짜증난다."


def test_near_rows_are_marked_and_distant_rows_kept() -> None:
    texts = [HELD_OUT, "약속을 또 어기다니 진짜 짜증난다!", "바다를 보며 조용히 웃었다"]
    result = filter_near(texts, [HELD_OUT, "전혀 다른 문장"])
    assert result.keep.tolist() == [False, False, True]
    assert result.removed == 2
    assert result.closest[0] == pytest.approx(1.0)
    assert result.closest[2] < 0.45 < result.closest[1]


def test_a_stanza_copied_from_a_long_song_is_caught() -> None:
    verse = "너를 처음 만난 그 봄날의 거리\n꽃잎이 흩날리던 골목길"
    song = "\n\n".join(
        [verse, "바람이 불어오면 생각이 나\n그 노래 그 웃음", "이제는 멀어진 이름\n다시는 못 볼 너"]
        + [f"후렴 {i}\n라라라 라라 {i}" for i in range(6)]
    )
    assert stanzas(song)[1] == verse and len(stanzas(song)) == 10
    assert stanzas("한 줄\n두 줄") == ["한 줄\n두 줄"]
    result = filter_near([verse], [song])
    assert not result.keep[0]


def test_nothing_held_out_keeps_everything() -> None:
    result = filter_near(["가", "나다"], [])
    assert result.keep.all() and np.all(result.closest == 0)


def test_read_texts_reads_tsv_jsonl_and_catalogue_lyrics(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("text\tlabel\n하나\thappy\n둘\tsad\n", encoding="utf-8")
    rows = [{"text": "셋", "label": "sad"}, {"track_id": "t", "lyrics": "넷\n\n다섯"}]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert read_texts(tmp_path / "a.tsv") == ["하나", "둘"]
    assert read_texts(tmp_path / "b.jsonl") == ["셋", "넷\n\n다섯"]
    (tmp_path / "c.jsonl").write_text('{"title": "x"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"c.jsonl:1 has no 'text' \(or 'lyrics'\) string"):
        read_texts(tmp_path / "c.jsonl")
    (tmp_path / "d.tsv").write_text("sentence\tlabel\n하나\thappy\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"d.tsv has no 'text' column; found: \['sentence'"):
        read_texts(tmp_path / "d.tsv")


def test_filter_file_keeps_the_header_and_surviving_lines_as_written(tmp_path: Path) -> None:
    source = tmp_path / "train.tsv"
    source.write_text(
        f"text\tlabel\n{HELD_OUT}\tangry\n바다를 보며 조용히 웃었다\thappy\n", encoding="utf-8"
    )
    (tmp_path / "held.txt").write_text(HELD_OUT + "\n", encoding="utf-8")
    result = filter_file(source, tmp_path / "out" / "train.tsv", [tmp_path / "held.txt"])
    assert result.removed == 1
    assert (tmp_path / "out" / "train.tsv").read_text(encoding="utf-8") == (
        "text\tlabel\n바다를 보며 조용히 웃었다\thappy\n"
    )


def test_holdout_filter_command(tmp_path: Path) -> None:
    source = tmp_path / "train.jsonl"
    rows = [{"text": HELD_OUT, "label": "angry"}, {"text": "햇살 아래 춤을 춰", "label": "happy"}]
    source.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    held = tmp_path / "test.tsv"
    held.write_text(f"text\tlabel\n{HELD_OUT}\tangry\n", encoding="utf-8")
    output = tmp_path / "kept.jsonl"
    args = ["holdout-filter", str(source), "-o", str(output), "--held-out", str(held)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "kept 1 of 2 rows (1 within cosine 0.45 of a held-out text)" in result.output
    assert [json.loads(line)["label"] for line in output.read_text().splitlines()] == ["happy"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\n하나\n", encoding="utf-8")
    result = CliRunner().invoke(main, [*args[:4], "--held-out", str(bad)])
    assert result.exit_code == 1
    assert "bad.tsv has no 'text' column" in result.output
    assert "Traceback" not in result.output
