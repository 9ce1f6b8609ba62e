from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from recommender.emotions import EMOTIONS
from recommender.errors import DatasetError
from recommender.training import data as datasets

GOEMOTIONS_LABELS = [
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
]
# One GoEmotions id per class (anger, fear, embarrassment, joy, remorse, sadness) and neutral.
GOEMOTIONS_IDS = {"angry": 2, "anxious": 14, "embarrassed": 12, "happy": 17, "heartache": 24}
GOEMOTIONS_IDS["sad"] = 25
WORDS = {
    "angry": "정말 화가 난다 짜증",
    "anxious": "시험이 너무 걱정된다 불안",
    "embarrassed": "갑자기 당황 스러웠다",
    "happy": "오늘은 정말 행복한 하루",
    "heartache": "친구에게 배신 당해 상처",
    "sad": "비가 와서 슬프고 우울",
}


def make_data_dir(root: Path, rows_per_class: int = 6) -> Path:
    """A miniature copy of the shared data directory, in the same formats."""
    emotion = root / "emotion"
    corpus = root / "corpus"
    emotion.mkdir(parents=True)
    corpus.mkdir()
    (emotion / "goemotions_ko_labels.txt").write_text("\n".join(GOEMOTIONS_LABELS) + "\n")
    for split in ("train", "dev", "test"):
        lines = [
            f"{WORDS[e]} {split} {i}\t{GOEMOTIONS_IDS[e]}"
            for i in range(rows_per_class)
            for e in EMOTIONS
        ]
        lines.append(f"그냥 평범한 문장 {split}\t27")
        (emotion / f"goemotions_ko_{split}.tsv").write_text("\n".join(lines) + "\n")
    kote_ids = {"angry": "6,22", "anxious": "41", "embarrassed": "33", "happy": "40,42"}
    kote_ids |= {"heartache": "36", "sad": "5,19"}
    kote = [
        f"{n}\t{WORDS[e]} 댓글 {n}\t{kote_ids[e]},24"
        for n, e in enumerate(EMOTIONS[i % 6] for i in range(60))
    ]
    (emotion / "kote_val.tsv").write_text("\n".join(kote) + "\n")
    chatbot = ["Q,A,label", "헤어졌어 상처,힘내요,1", "좋아하는 사람 생겼어,축하해요,2"]
    chatbot += ["점심 뭐 먹지,맛있는 거요,0"] * 3
    (emotion / "chatbot_data.csv").write_text("\n".join(chatbot) + "\n")
    reviews = ["review_id\tmovie_id\trating\treview"]
    reviews += [f"{i}\t1\t{i % 10 + 1}\t{WORDS[EMOTIONS[i % 6]]} 영화 {i}" for i in range(60)]
    with gzip.open(corpus / "nsmc_reviews.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(reviews) + "\n")
    return root


def make_diary_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, n in (("train.tsv", 8), ("test.tsv", 2), ("test2.tsv", 3)):
        rows = [f"{WORDS[e]} {name} 일기 {i}\t{e}" for i in range(n) for e in EMOTIONS]
        (root / name).write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_mapped_target_splits_shared_labels() -> None:
    assert datasets.mapped_target([("happy",), ("happy",), ("sad",)]).tolist() == pytest.approx(
        [0, 0, 0, 2 / 3, 0, 1 / 3]
    )
    # grief maps to heartache and sad: half a unit each.
    grief = datasets.mapped_target([datasets.GOEMOTIONS_MAP["grief"]])
    assert grief.tolist() == pytest.approx([0, 0, 0, 0, 0.5, 0.5])
    assert datasets.mapped_target([]).sum() == 0


def test_goemotions_row_maps_to_soft_target(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    # anger + joy + sadness; neutral only (dropped); remorse.
    path.write_text("섞인 감정\t2,17,25\n평범\t27\n미안해\t24\n", encoding="utf-8")
    data = datasets.load_goemotions(path, GOEMOTIONS_LABELS)
    assert data.texts == ["섞인 감정", "미안해"]
    assert data.targets[0].tolist() == pytest.approx([1 / 3, 0, 0, 1 / 3, 0, 1 / 3])
    assert data.targets[1].tolist() == pytest.approx([0, 0, 0, 0, 1, 0])


def test_kote_row_maps_to_soft_target(tmp_path: Path) -> None:
    path = tmp_path / "k.tsv"
    # 화남/분노, 짜증 -> angry x2; 서러움 -> heartache; 존경 and 없음 unmapped.
    path.write_text("1\t어이없네\t6,22,36,7,24\n2\t없음\t24\n", encoding="utf-8")
    data = datasets.load_kote(path)
    assert data.texts == ["어이없네"]
    assert data.targets[0].tolist() == pytest.approx([2 / 3, 0, 0, 0, 1 / 3, 0])


def test_chatbot_rows_map_to_soft_targets(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Q,A,label\n밥 먹자,네,0\n헤어졌어,힘내요,1\n설레,좋겠다,2\n", encoding="utf-8")
    data = datasets.load_chatbot(path, weight=0.5)
    assert data.texts == ["헤어졌어", "설레"]
    assert data.targets[0].tolist() == pytest.approx([0, 0, 0, 0, 0.6, 0.4])
    assert data.targets[1].tolist() == pytest.approx([0, 0, 0, 1, 0, 0])
    assert data.weights.tolist() == [0.5, 0.5]


def test_as_labelled_drops_ties(tmp_path: Path) -> None:
    soft = datasets.SoftSet(
        texts=["a", "b"],
        targets=np.array([[0, 0, 0, 0, 0.5, 0.5], [0.2, 0, 0, 0.8, 0, 0]], dtype=np.float32),
        weights=np.ones(2, dtype=np.float32),
    )
    labelled = soft.as_labelled()
    assert labelled.texts == ["b"] and labelled.labels.tolist() == [3]


def test_splits_are_fixed_and_disjoint(tmp_path: Path) -> None:
    data_dir = make_data_dir(tmp_path / "data")
    first = datasets.kote_splits(data_dir)
    second = datasets.kote_splits(data_dir)
    assert [s.texts for s in first] == [s.texts for s in second]
    train, dev, test = (set(s.texts) for s in first)
    assert not (train & dev or train & test or dev & test)
    assert len(train) + len(dev) + len(test) == 60


def test_diary_test_files_are_held_out(tmp_path: Path) -> None:
    corpus = datasets.load_corpus(
        make_data_dir(tmp_path / "data"), make_diary_dir(tmp_path / "diary")
    )
    assert {name: len(s) for name, s in corpus.test.items() if name.startswith("diary")} == {
        "diary": 12,
        "diary2": 18,
    }
    held_out = set(corpus.test["diary"].texts) | set(corpus.test["diary2"].texts)
    assert all("test" in text for text in held_out)
    assert not held_out & set(corpus.train.texts)
    assert not held_out & set(corpus.dev["diary"].texts)
    assert sum("train.tsv" in t for t in corpus.train.texts + corpus.dev["diary"].texts) == 48


def test_sampled_open_rows_leave_the_full_training_set_whole(tmp_path: Path) -> None:
    data_dir, diary_dir = make_data_dir(tmp_path / "data"), make_diary_dir(tmp_path / "diary")
    whole = datasets.load_corpus(data_dir, diary_dir)
    sampled = datasets.load_corpus(data_dir, diary_dir, max_open_rows=10, seed=1)
    diary_rows = 48 - len(sampled.dev["diary"])  # the diary training part, all of it
    assert len(sampled.train) == 10 + diary_rows
    assert sampled.full_train.texts == whole.train.texts == whole.full_train.texts
    assert set(sampled.train.texts) < set(sampled.full_train.texts)
    assert sampled.train.texts[-diary_rows:] == whole.train.texts[-diary_rows:]


def test_tiny_preset_trains_a_loadable_checkpoint(tmp_path: Path) -> None:
    """Through the CLI, so every TrainOptions field reaching `recommender train` is covered."""
    torch = pytest.importorskip("torch")
    from click.testing import CliRunner
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from recommender.cli import main

    data_dir = make_data_dir(tmp_path / "data")
    diary_dir = make_diary_dir(tmp_path / "diary")
    explicit_dir, lyrics_dir = make_team_dirs(tmp_path / "team")
    threads = torch.get_num_threads()
    output = tmp_path / "model"
    arguments = train_arguments(
        data_dir,
        output,
        "--diary-dir",
        str(diary_dir),
        "--diary-weight",
        "2.5",
        "--explicit-dir",
        str(explicit_dir),
        "--lyrics-dir",
        str(lyrics_dir),
        "--lyrics-join",
        "2",
    )
    result = CliRunner().invoke(main, arguments)
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert f"Model saved to {output}" in result.output
    assert (output / "model.safetensors").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert [model.config.id2label[i] for i in range(6)] == list(EMOTIONS)
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    batch = tokenizer(["오늘은 정말 행복한 하루", "걱정"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (2, 6)
    record = json.loads((output / "training_args.json").read_text())
    assert record["options"]["preset"] == "tiny"
    assert record["options"]["seed"] == 13
    assert record["options"]["diary_weight"] == 2.5
    assert set(record["data_files"]) >= {"goemotions_train", "kote", "chatbot", "diary_train"}
    assert all(len(f["sha256"]) == 64 for f in record["data_files"].values())
    assert record["temperature"] > 0
    assert set(record["dev_macro_f1"]) == {"goemotions", "kote", "diary", "explicit", "lyrics"}
    assert record["options"]["lyrics_dir"] == str(lyrics_dir)
    assert {"explicit_train", "explicit_train2", "lyrics_train"} <= set(record["data_files"])
    # The n-gram head reads the cue words perfectly, so the dev sets give it a share.
    from recommender.classifier import EmotionClassifier
    from recommender.training.train import HEAD_WEIGHTS

    head = record["ngram_head"]
    assert head["weight"] in HEAD_WEIGHTS and head["weight"] > 0
    assert set(head["dev_score_by_weight"]) == {str(w) for w in HEAD_WEIGHTS}
    loaded = EmotionClassifier.from_pretrained(output, device="cpu")
    assert loaded.head is not None and loaded.head.weight == pytest.approx(head["weight"])
    assert head["temperature"] > 0
    assert loaded.head.temperature == pytest.approx(head["temperature"], abs=1e-4)
    assert loaded.predict_proba(["정말 화가 난다 짜증"]).argmax() == EMOTIONS.index("angry")
    # Without the head, training into the same directory leaves no stale head behind.
    result = CliRunner().invoke(main, [*arguments, "--no-ngram-head"])
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert not (output / "ngram_head.npz").exists()
    assert json.loads((output / "training_args.json").read_text())["ngram_head"] is None


def train_arguments(data_dir: Path, output: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(output),
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--num-threads",
        "1",
        "--no-progress",
        *extra,
    ]


def one_line_error(arguments: list[str]) -> str:
    from click.testing import CliRunner

    from recommender.cli import main

    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    return result.output


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "emotion" / "goemotions_ko_labels.txt").unlink(), "not found: .*labels"),
        (lambda d: (d / "emotion" / "kote_val.tsv").unlink(), "not found: .*kote_val.tsv"),
        (
            lambda d: (d / "emotion" / "chatbot_data.csv").write_text("질문,답\n안녕,네\n"),
            "lacks columns Q and label; found: \\['질문', '답'\\]",
        ),
        (
            lambda d: (d / "emotion" / "goemotions_ko_train.tsv").write_bytes(b"\xff\xfe\x00bad"),
            "cannot read .*goemotions_ko_train.tsv",
        ),
    ],
)
def test_unusable_training_data_is_one_line(tmp_path: Path, damage, message) -> None:
    pytest.importorskip("torch")
    data_dir = make_data_dir(tmp_path / "data")
    damage(data_dir)
    output = one_line_error(train_arguments(data_dir, tmp_path / "out"))
    assert re.search(message, output), output
    assert not (tmp_path / "out").exists()


def test_a_diary_file_with_unknown_labels_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    data_dir, diary_dir = make_data_dir(tmp_path / "data"), make_diary_dir(tmp_path / "diary")
    (diary_dir / "train.tsv").write_text("text\tlabel\n오늘 좋다\tjoyful\n", encoding="utf-8")
    arguments = train_arguments(data_dir, tmp_path / "out", "--diary-dir", str(diary_dir))
    assert "label(s) outside the six emotions: 'joyful'" in one_line_error(arguments)


def test_init_from_failures_are_one_line_and_come_first(tmp_path: Path, tiny_model_dir) -> None:
    pytest.importorskip("torch")
    from recommender.testing import save_tiny_checkpoint

    data_dir = make_data_dir(tmp_path / "data")
    (data_dir / "emotion" / "kote_val.tsv").unlink()  # the checkpoint is checked before the data
    missing = tmp_path / "no-such-model"
    output = one_line_error(train_arguments(data_dir, tmp_path / "o", "--init-from", str(missing)))
    assert f"cannot start training from {missing}: no such directory" in output
    empty = tmp_path / "empty"
    empty.mkdir()
    output = one_line_error(train_arguments(data_dir, tmp_path / "o", "--init-from", str(empty)))
    assert f"cannot start training from {empty}: " in output
    korean = save_tiny_checkpoint(
        tmp_path / "korean",
        id2label={0: "슬픔", 1: "행복", 2: "분노", 3: "불안", 4: "당황", 5: "상처"},
    )
    output = one_line_error(train_arguments(data_dir, tmp_path / "o", "--init-from", str(korean)))
    assert "has labels ['슬픔', '행복'" in output and "in that order" in output


def test_dev_sets_are_scored_as_the_shipped_classifier_reads_them(
    tmp_path: Path, tiny_model_dir
) -> None:
    """Stage by stage from a checkpoint, with a dev set holding a text longer than the window:
    the training's dev probabilities are the saved model's, loaded by the one loader."""
    pytest.importorskip("torch")
    from dataclasses import replace

    from recommender.classifier import EmotionClassifier
    from recommender.evaluation import compute_metrics
    from recommender.training import TrainOptions
    from recommender.training import train as stages

    data_dir, diary_dir = make_data_dir(tmp_path / "data"), make_diary_dir(tmp_path / "diary")
    corpus = datasets.load_corpus(data_dir, diary_dir)
    long_text = " ".join(WORDS[e] for e in EMOTIONS) * 6 + " " + WORDS["sad"] * 8
    extra = datasets.SoftSet(
        [long_text, WORDS["happy"]],
        np.eye(6, dtype=np.float32)[[5, 3]],
        np.ones(2, dtype=np.float32),
    )
    corpus = replace(corpus, dev={**corpus.dev, "long": extra})
    options = TrainOptions(
        data_dir=data_dir,
        output_dir=tmp_path / "model",
        preset="tiny",
        device="cpu",
        init_from=tiny_model_dir,
        epochs=1,
        num_threads=1,
        progress=False,
    )
    run = stages.start(options, corpus)
    for stage in (stages.build_model, stages.pretrain, stages.fine_tune, stages.calibrate):
        stage(run)
    stages.fit_head(run)
    output = stages.save(run)
    assert run.pretrain_steps_done == 0 and run.unlabelled == []
    shipped = EmotionClassifier.from_pretrained(output, backend="torch", device="cpu")
    assert len(shipped.tokenizer(long_text)["input_ids"]) > shipped.window  # windowed, not cut
    # The saved head holds its coefficients as float16: read with the saved head, the model in
    # training is the shipped model; with its own, it is within that rounding.
    assert shipped.head is not None and run.head is not None
    as_shipped, own_head = run.dev_probabilities(shipped.head), run.dev_probabilities(run.head)
    for name, data in run.dev_sets.items():
        expected = shipped.predict_proba(data.texts)
        np.testing.assert_allclose(as_shipped[name], expected, atol=1e-5)
        np.testing.assert_allclose(own_head[name], expected, atol=1e-3)
    record = json.loads((output / "training_args.json").read_text())
    encoder = run.dev_probabilities()
    assert record["dev_macro_f1"] == {
        name: round(compute_metrics(encoder[name], data.labels).macro_f1, 4)
        for name, data in run.dev_sets.items()
    }
    assert record["options"]["init_from"] == str(tiny_model_dir)


def make_team_dirs(root: Path) -> tuple[Path, Path]:
    """A miniature explicit set (TSV) and lyrics set (JSONL stanzas, two labellers)."""
    explicit, lyrics = root / "explicit", root / "lyrics"
    explicit.mkdir(parents=True)
    lyrics.mkdir()
    for name, n in (("train.tsv", 8), ("train2.tsv", 4), ("test.tsv", 2)):
        rows = [f"{WORDS[e]} {name} 문장 {i}\t{e}" for i in range(n) for e in EMOTIONS]
        (explicit / name).write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stanzas = [{"text": f"{WORDS[e]}\n노래 {i}", "label": e} for i in range(8) for e in EMOTIONS]
    (lyrics / "train.jsonl").write_text(
        "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in stanzas), encoding="utf-8"
    )
    held = [{"id": f"s{i}", "text": f"{WORDS[EMOTIONS[i % 6]]}\n시험 연 {i}"} for i in range(12)]
    (lyrics / "stanzas.jsonl").write_text(
        "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in held), encoding="utf-8"
    )
    first = [f"s{i}\t{EMOTIONS[i % 6]}" for i in range(12)]
    # The second labeller differs on s0 and s1 and never labelled s11.
    second = ["s0\tsad", "s1\thappy"] + [f"s{i}\t{EMOTIONS[i % 6]}" for i in range(2, 11)]
    (lyrics / "labels_a.tsv").write_text("\n".join(first) + "\n", encoding="utf-8")
    (lyrics / "labels_b.tsv").write_text("\n".join(second) + "\n", encoding="utf-8")
    return explicit, lyrics


def test_lyrics_test_keeps_the_stanzas_both_labellers_agree_on(tmp_path: Path) -> None:
    _, lyrics = make_team_dirs(tmp_path)
    agreed = datasets.load_lyrics_test(lyrics)
    assert agreed.stanzas == 11  # labelled by both
    assert len(agreed.data) == 9
    assert agreed.agreement == pytest.approx(9 / 11)
    assert 0 < agreed.kappa < agreed.agreement
    (lyrics / "labels_b.tsv").write_bytes((lyrics / "labels_a.tsv").read_bytes())
    unanimous = datasets.load_lyrics_test(lyrics)
    assert unanimous.agreement == 1.0 and unanimous.kappa == pytest.approx(1.0)
    assert agreed.data.texts[0].endswith("시험 연 2")
    assert agreed.data.targets.argmax(axis=1).tolist() == [i % 6 for i in range(2, 11)]


def test_stanza_rows_need_a_text_and_one_of_the_six_labels(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "노래", "label": "joy"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad.jsonl: row 1 lacks a text or one of"):
        datasets.load_stanzas(path)
    path.write_text('{"text": "노래", \n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad.jsonl:1 is not JSON"):
        datasets.load_stanzas(path)


def test_explicit_and_lyrics_sets_are_split_per_file_and_weighted(tmp_path: Path) -> None:
    explicit, lyrics = make_team_dirs(tmp_path / "team")
    corpus = datasets.load_corpus(
        make_data_dir(tmp_path / "data"),
        weights={"explicit": 2.0, "lyrics": 5.0},
        explicit_dir=explicit,
        lyrics_dir=lyrics,
    )
    # Each training file cut 85/15 per class on its own: 48 -> 42 + 6, 24 -> 18 + 6 (one a
    # class each: round(0.85 * 4) = 3), 48 stanzas -> 42 + 6.
    assert len(corpus.dev["explicit"]) == 12 and len(corpus.dev["lyrics"]) == 6
    explicit_rows = [i for i, t in enumerate(corpus.train.texts) if "train" in t and "문장" in t]
    assert len(explicit_rows) == 60
    assert set(corpus.train.weights[explicit_rows].tolist()) == {2.0}
    lyric_rows = [i for i, t in enumerate(corpus.train.texts) if "노래" in t]
    assert len(lyric_rows) == 42 and set(corpus.train.weights[lyric_rows].tolist()) == {5.0}
    assert corpus.full_train.texts[-42:] == corpus.train.texts[-42:]
    assert not set(corpus.dev["explicit"].texts) & set(corpus.train.texts)
    assert len(corpus.test["explicit"]) == 12 and len(corpus.test["lyrics"]) == 9
    assert {"explicit_train", "explicit_train2", "lyrics_train"} <= set(corpus.files)
    assert not set(corpus.test["explicit"].texts) & set(corpus.train.texts)


def test_a_team_dir_without_training_files_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "explicit"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no explicit training file \(train\*\.tsv\) in"):
        datasets.load_corpus(make_data_dir(tmp_path / "data"), explicit_dir=empty)


def test_joined_stanzas_are_song_length_rows_of_one_class() -> None:
    stanzas = datasets.SoftSet(
        texts=[f"{e} {i}" for e in ("happy", "sad") for i in range(5)],
        targets=np.repeat(np.eye(6, dtype=np.float32)[[3, 5]], 5, axis=0),
        weights=np.arange(10, dtype=np.float32),
    )
    songs = datasets.joined(stanzas, 2)
    # Five rows a class: two songs of two stanzas each, the fifth left out.
    assert len(songs) == 4
    assert songs.targets.argmax(axis=1).tolist() == [3, 3, 5, 5]
    for text, target, weight in zip(songs.texts, songs.targets, songs.weights, strict=True):
        parts = text.split("\n\n")
        assert len(parts) == 2
        assert {p.split()[0] for p in parts} == {EMOTIONS[int(target.argmax())]}
        assert weight == pytest.approx(
            np.mean([int(p.split()[1]) for p in parts]) + 5 * (target.argmax() == 5)
        )
    assert datasets.joined(stanzas, 2).texts == songs.texts  # fixed seed
