from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from recommender.api import create_app
from recommender.cli import main
from recommender.emotions import EMOTIONS
from recommender.service import Recommender
from tests.catalogue import catalogue_rows, make_index, write_catalogue

HAPPY_TEXT = "오늘은 정말 행복한 하루였다"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory, tiny_classifier) -> Path:
    return make_index(tmp_path_factory.mktemp("cli-index"), tiny_classifier)


# --- classify -------------------------------------------------------------------------------


def test_classify_json(tiny_model_dir: Path, tiny_classifier):
    texts = [HAPPY_TEXT, "내일 시험이 걱정된다"]
    result = run("classify", *texts, "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert HAPPY_TEXT in lines[0]  # UTF-8, not \uXXXX escapes
    expected = tiny_classifier.predict_proba(texts)
    for line, text, row in zip(lines, texts, expected, strict=True):
        obj = json.loads(line)
        assert obj["text"] == text
        assert list(obj["emotions"]) == list(EMOTIONS)
        assert sum(obj["emotions"].values()) == pytest.approx(1.0, abs=1e-3)
        assert list(obj["emotions"].values()) == pytest.approx(row.tolist(), abs=1e-4)


def test_classify_table(tiny_model_dir: Path, tiny_classifier):
    texts = [HAPPY_TEXT, "비가 와서 마음이 슬프다"]
    result = run("classify", *texts, "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, text, row in zip(lines, texts, tiny_classifier.predict_proba(texts), strict=True):
        assert line.split()[0] == EMOTIONS[int(row.argmax())]
        assert line.endswith(text)
        for emotion in EMOTIONS:
            assert f"{emotion} " in line


# --- index ----------------------------------------------------------------------------------


def test_index_writes_an_index_and_reports_skipped_rows(tmp_path: Path, tiny_model_dir: Path):
    rows = catalogue_rows() + [
        {"track_id": "blank", "title": "빈", "artist": "가", "lyrics": "  "},
        {"track_id": "none", "title": "없음", "artist": "가", "lyrics": None},
    ]
    catalogue = write_catalogue(tmp_path / "cat.jsonl", rows)
    output = tmp_path / "out"
    result = run("index", str(catalogue), "-o", str(output), "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"Indexed 18 tracks into {output} (18 classified, 0 reused from the previous index)"
    )
    assert lines[1] == "Skipped 2 without lyrics: blank (empty lyrics), none (missing lyrics)"
    assert (output / "manifest.json").is_file()

    # Indexing again reuses every vector; --json prints the summary as one object.
    result = run(
        "index", str(catalogue), "-o", str(output), "--model", str(tiny_model_dir), "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "catalogue": str(catalogue),
        "output": str(output),
        "tracks": 18,
        "classified": 0,
        "reused": 18,
        "skipped": [
            {"track_id": "blank", "reason": "empty lyrics"},
            {"track_id": "none", "reason": "missing lyrics"},
        ],
        "resumed": 0,
    }


def test_index_csv_without_skipped_rows(tmp_path: Path, tiny_model_dir: Path):
    catalogue = write_catalogue(tmp_path / "cat.csv")
    result = run(
        "index", str(catalogue), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Indexed 18 tracks into {tmp_path / 'out'} (18 classified, 0 reused from the previous "
        "index)"
    ]


# --- recommend ------------------------------------------------------------------------------


def test_recommend_json_is_the_api_body(tiny_model_dir: Path, tiny_index: Path):
    result = run(
        "recommend", HAPPY_TEXT, "--index", str(tiny_index), "--model", str(tiny_model_dir),
        "-k", "4", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    service = Recommender.load(str(tiny_model_dir), tiny_index, device="cpu")
    client = create_app(service=service).test_client()
    assert body == client.post("/recommend", json={"text": HAPPY_TEXT, "k": 4}).get_json()
    assert list(body) == ["emotions", "tracks"] and len(body["tracks"]) == 4
    assert "발라드" in result.stdout or "록" in result.stdout or "인디" in result.stdout


def test_recommend_json_with_dates_in_the_catalogue(tmp_path: Path, tiny_model_dir: Path):
    # Parquet keeps timestamps; they must print as JSON, the same as the API sends them.
    import pandas as pd

    frame = pd.DataFrame(catalogue_rows())
    frame["released"] = pd.Timestamp("2020-01-02")
    frame.to_parquet(tmp_path / "cat.parquet")
    index = tmp_path / "index"
    model = str(tiny_model_dir)
    assert (
        run("index", str(tmp_path / "cat.parquet"), "-o", str(index), "--model", model).exit_code
        == 0
    )
    result = run(
        "recommend", HAPPY_TEXT, "--index", str(index), "--model", model, "-k", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert all(t["released"] == "2020-01-02T00:00:00" for t in body["tracks"])
    service = Recommender.load(model, index, device="cpu")
    client = create_app(service=service).test_client()
    assert body == client.post("/recommend", json={"text": HAPPY_TEXT, "k": 2}).get_json()


def test_recommend_with_target_and_genre(tiny_model_dir: Path, tiny_index: Path):
    result = run(
        "recommend", HAPPY_TEXT, "--index", str(tiny_index), "--model", str(tiny_model_dir),
        "-k", "3", "--target", "sad", "--genre", "록", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["target"] == "sad"
    assert body["tracks"] and all(t["genre"] == "록" for t in body["tracks"])


def test_recommend_table(tiny_model_dir: Path, tiny_index: Path):
    result = run(
        "recommend", HAPPY_TEXT, "--index", str(tiny_index), "--model", str(tiny_model_dir),
        "-k", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("You: angry ")
    assert len(lines) == 4
    for rank, line in enumerate(lines[1:], 1):
        assert line.startswith(f"{rank:>3}. ")
        assert " song " in line and " — " in line


# --- errors ---------------------------------------------------------------------------------


def test_bad_catalogue_path(tmp_path: Path, tiny_model_dir: Path):
    result = run("index", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "does not exist")


def test_catalogue_missing_columns(tmp_path: Path):
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("track_id,title\n1,a\n")
    result = run("index", str(catalogue), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "lacks column(s) artist, lyrics; found: track_id, title")


def test_unwritable_output(tmp_path: Path, tiny_model_dir: Path):
    catalogue = write_catalogue(tmp_path / "cat.jsonl")
    (tmp_path / "a-file").write_text("")
    output = tmp_path / "a-file" / "index"
    result = run(
        "index", str(catalogue), "-o", str(output), "--model", str(tiny_model_dir), "--json"
    )
    assert_one_line_error(result, "a-file")


def test_missing_index(tmp_path: Path, tiny_model_dir: Path):
    result = run(
        "recommend", HAPPY_TEXT, "--index", str(tmp_path / "nope"), "--model", str(tiny_model_dir)
    )
    assert_one_line_error(result, "no index directory at")


def test_index_built_with_another_model(tmp_path: Path, tiny_model_dir: Path, fake_classifier):
    index = make_index(tmp_path, fake_classifier)
    result = run("recommend", HAPPY_TEXT, "--index", str(index), "--model", str(tiny_model_dir))
    assert_one_line_error(result, "was built with model 'fake'")


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("missing", "no model directory at"),
        ("empty", "cannot load model from"),
        ("file", "is a file; pass the checkpoint directory"),
    ],
)
def test_unloadable_model(tmp_path: Path, setup: str, fragment: str):
    model = tmp_path / "model"
    if setup == "empty":
        model.mkdir()
        (model / "config.json").write_text("{}")
    elif setup == "file":
        model.write_text("not a model")
    result = run("classify", HAPPY_TEXT, "--model", str(model))
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text(tiny_model_dir: Path, tiny_index: Path, text: str):
    result = run("classify", text, "--model", str(tiny_model_dir))
    assert_one_line_error(result, "empty or whitespace only")
    result = run("recommend", text, "--index", str(tiny_index), "--model", str(tiny_model_dir))
    assert_one_line_error(result, "'text' is empty; write a few words about your day")


def test_undecodable_argument(tiny_model_dir: Path):
    # A byte that is not UTF-8 in argv reaches Python as a lone surrogate.
    result = run("classify", "행복 \udcff", "--model", str(tiny_model_dir))
    assert_one_line_error(result, "not valid Unicode")


def test_module_help_in_a_subprocess():
    completed = subprocess.run(
        [sys.executable, "-m", "recommender", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Usage: recommender ")
    for command in ("classify", "index", "recommend", "serve", "train", "evaluate"):
        assert command in completed.stdout
