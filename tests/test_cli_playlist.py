"""The CLI's playlist, similar, sentence-detail and mood-tag options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.service import Recommender
from recommender.track_index import MANIFEST
from tests.catalogue import catalogue_rows, make_index, write_catalogue
from tests.test_cli import HAPPY_TEXT, assert_one_line_error, run

DAY = "아침엔 시험이 걱정됐다. 그런데 결과가 좋아서 행복했다!"


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory, tiny_classifier) -> Path:
    return make_index(tmp_path_factory.mktemp("cli-playlist-index"), tiny_classifier)


@pytest.fixture(scope="module")
def where(tiny_model_dir: Path, tiny_index: Path) -> list[str]:
    return ["--index", str(tiny_index), "--model", str(tiny_model_dir)]


@pytest.fixture(scope="module")
def service(tiny_model_dir: Path, tiny_index: Path) -> Recommender:
    return Recommender.load(str(tiny_model_dir), tiny_index, device="cpu")


def test_playlist_json_is_the_service_body(where: list[str], service: Recommender):
    result = run("playlist", HAPPY_TEXT, *where, "-n", "5", "--target", "sad", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body == service.playlist(HAPPY_TEXT, 5, target="sad").to_dict()
    assert [t["step"] for t in body["tracks"]] == [1, 2, 3, 4, 5]
    assert body["target"] == "sad" and body["mode"] == "target"


def test_playlist_table(where: list[str]):
    result = run("playlist", HAPPY_TEXT, *where, "-n", "4", "--per-artist", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("You: ") and lines[1].startswith("To: ")
    assert [line.split(".")[0].strip() for line in lines[2:]] == ["1", "2", "3", "4"]
    assert all(" goal " in line and " distance " in line for line in lines[2:])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-n", "2"], "2 is not in the range 3<=x<=50"),
        (["-n", "51"], "51 is not in the range 3<=x<=50"),
        (["--target", "joy"], "'joy' is not one of"),
    ],
)
def test_playlist_bad_options(where: list[str], args: list[str], fragment: str):
    result = run("playlist", HAPPY_TEXT, *where, *args)
    assert result.exit_code == 2 and fragment in result.stderr


def test_similar_json_and_table(where: list[str], service: Recommender):
    result = run("similar", "happy-0", *where, "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body == service.similar("happy-0", 3).to_dict()
    assert body["track"]["track_id"] == "happy-0"
    assert "happy-0" not in [t["track_id"] for t in body["tracks"]]
    table = run("similar", "happy-0", *where, "-k", "3").stdout.splitlines()
    assert table[0].startswith("happy song 0 — ") and len(table) == 4


def test_similar_unknown_track(where: list[str]):
    assert_one_line_error(run("similar", "no-such", *where), "no track with id 'no-such'")


def test_recommend_with_sentences_and_focus(where: list[str], service: Recommender):
    result = run(
        "recommend", DAY, *where, "-k", "2", "--detail", "sentences", "--focus", "end", "--json"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    expected = service.recommend(DAY, 2, detail="sentences", focus="end").to_dict()
    assert body == expected
    assert body["focus"] == "end" and len(body["sentences"]) == 2 and body["dominant"]
    table = run("recommend", DAY, *where, "-k", "2", "--detail", "sentences").stdout.splitlines()
    assert table[0].startswith("You: ") and "시험이 걱정됐다." in table[1]
    assert any(line.lstrip().startswith("*") for line in table[1:3])


def test_classify_with_sentences(tiny_model_dir: Path, service: Recommender):
    result = run("classify", DAY, "--model", str(tiny_model_dir), "--detail", "sentences", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert list(body) == ["text", "emotions", "sentences", "dominant"]
    assert [s["text"] for s in body["sentences"]] == [
        "아침엔 시험이 걱정됐다.",
        "그런데 결과가 좋아서 행복했다!",
    ]
    assert body["emotions"] == service.classify([DAY])[0]


def test_index_with_tag_weight(tmp_path: Path, tiny_model_dir: Path):
    rows = [{**row, "emotion": row["track_id"].split("-")[0]} for row in catalogue_rows()]
    catalogue = write_catalogue(tmp_path / "cat.jsonl", rows)
    output = tmp_path / "out"
    args = ["index", str(catalogue), "-o", str(output), "--model", str(tiny_model_dir)]
    result = run(*args, "--tag-weight", "0.5", "--tag-column", "emotion")
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / MANIFEST).read_text())
    assert manifest["mood_tags"] == {"weight": 0.5, "column": "emotion", "tagged": 18}


def test_index_with_bad_tags_fails_before_classifying(tmp_path: Path, tiny_model_dir: Path):
    rows = [{**row, "mood": "최고"} for row in catalogue_rows()]
    catalogue = write_catalogue(tmp_path / "cat.jsonl", rows)
    args = ["index", str(catalogue), "-o", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    result = run(*args, "--tag-weight", "1")
    assert_one_line_error(
        result, "'최고' (tracks angry-0, angry-1, angry-2, anxious-0, anxious-1 and 13 more)"
    )
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.work").exists()
    result = run(*args, "--tag-weight", "2")
    assert result.exit_code == 2 and "2.0 is not in the range 0.0<=x<=1.0" in result.stderr
