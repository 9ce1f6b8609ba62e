"""The open data sets mapped onto the six emotions as soft targets, with fixed-seed splits.

Each source label is mapped to one or more of the six classes; a label mapped to several
classes splits its unit weight evenly between them, and a row's target is the normalised sum
over its mapped labels ("the share of its mapped labels in each class"). Rows with no mapped
label carry no target and are used only as unlabelled text.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.emotions import EMOTIONS
from recommender.errors import DatasetError
from recommender.evaluation import LabelledData, load_labelled

logger = logging.getLogger(__name__)

# Splits of KOTE and of the diary training file never move with the training seed, so the
# held-out parts stay held out across runs.
SPLIT_SEED = 20261128

GOEMOTIONS_TRAIN = "emotion/goemotions_ko_train.tsv"
GOEMOTIONS_DEV = "emotion/goemotions_ko_dev.tsv"
GOEMOTIONS_TEST = "emotion/goemotions_ko_test.tsv"
GOEMOTIONS_LABELS = "emotion/goemotions_ko_labels.txt"
KOTE = "emotion/kote_val.tsv"
CHATBOT = "emotion/chatbot_data.csv"
REVIEWS = "corpus/nsmc_reviews.tsv.gz"
DIARY_TRAIN = "train.tsv"
# Held-out diary files, each by a writer whose texts are in no training file: the test-set name
# each is reported under, and its file.
DIARY_TESTS: dict[str, str] = {"diary": "test.tsv", "diary2": "test2.tsv"}
# The team's explicit-vocabulary set (TSV like the diary set) and lyric-register stanzas (JSON
# Lines with ``text`` and ``label``): every training file matching these patterns, and the
# held-out check set of each.
EXPLICIT_TRAIN = "train*.tsv"
EXPLICIT_TEST = "test.tsv"
LYRICS_TRAIN = "train*.jsonl"
# The held-out stanzas and the two labellers' independent labels (``id<TAB>label``).
LYRICS_STANZAS = "stanzas.jsonl"
LYRICS_LABELS = ("labels_a.tsv", "labels_b.tsv")

GOEMOTIONS_MAP: dict[str, tuple[str, ...]] = {
    "anger": ("angry",),
    "annoyance": ("angry",),
    "disgust": ("angry",),
    "fear": ("anxious",),
    "nervousness": ("anxious",),
    "embarrassment": ("embarrassed",),
    "confusion": ("embarrassed",),
    "surprise": ("embarrassed",),
    "joy": ("happy",),
    "amusement": ("happy",),
    "excitement": ("happy",),
    "gratitude": ("happy",),
    "love": ("happy",),
    "optimism": ("happy",),
    "pride": ("happy",),
    "relief": ("happy",),
    "admiration": ("happy",),
    "grief": ("heartache", "sad"),
    "remorse": ("heartache",),
    "sadness": ("sad",),
    "disappointment": ("sad",),
}

_KOTE_CLASSES: dict[str, tuple[int, ...]] = {
    "angry": (0, 3, 6, 21, 22, 31),
    "anxious": (18, 35, 41),
    "embarrassed": (17, 33, 34, 39),
    "happy": (1, 2, 4, 13, 14, 28, 32, 40, 42, 43),
    "heartache": (25, 30, 36),
    "sad": (5, 10, 19, 27, 38),
}
KOTE_MAP: dict[int, tuple[str, ...]] = {
    i: tuple(e for e, ids in _KOTE_CLASSES.items() if i in ids)
    for ids in _KOTE_CLASSES.values()
    for i in ids
}

# Chatbot Q column: label 1 (breakup / negative) is mostly heartache, partly sadness;
# label 2 (love / positive) is a weak happy signal; label 0 (everyday) carries no emotion.
CHATBOT_TARGETS: dict[int, dict[str, float]] = {
    1: {"heartache": 0.6, "sad": 0.4},
    2: {"happy": 1.0},
}

# How much a row of each source counts in the loss, relative to GoEmotions.
SOURCE_WEIGHTS: dict[str, float] = {
    "goemotions": 1.0,
    "kote": 1.0,
    "chatbot": 0.5,
    "diary": 3.0,
    "explicit": 3.0,
    "lyrics": 3.0,
}


@dataclass(frozen=True)
class SoftSet:
    """Texts with (n, 6) soft targets and per-row loss weights."""

    texts: list[str]
    targets: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def as_labelled(self) -> LabelledData:
        """Rows whose target has a single largest class, labelled with that class."""
        top = self.targets.max(axis=1, keepdims=True)
        unique = (np.isclose(self.targets, top).sum(axis=1) == 1) & (top[:, 0] > 0)
        keep = np.flatnonzero(unique)
        return LabelledData(
            texts=[self.texts[i] for i in keep],
            labels=self.targets[keep].argmax(axis=1).astype(np.int64),
            targets=self.targets[keep].astype(np.float32),
        )


def concat(sets: Iterable[SoftSet]) -> SoftSet:
    sets = list(sets)
    return SoftSet(
        texts=[t for s in sets for t in s.texts],
        targets=np.concatenate([s.targets for s in sets]).astype(np.float32),
        weights=np.concatenate([s.weights for s in sets]).astype(np.float32),
    )


def mapped_target(classes: Iterable[Iterable[str]]) -> np.ndarray:
    """Soft target from the classes of each mapped label (zeros when nothing maps)."""
    target = np.zeros(len(EMOTIONS), dtype=np.float64)
    for label_classes in classes:
        label_classes = tuple(label_classes)
        for emotion in label_classes:
            target[EMOTIONS.index(emotion)] += 1.0 / len(label_classes)
    total = target.sum()
    return (target / total if total > 0 else target).astype(np.float32)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"training data file not found: {path}")
    return path


def _soft_set(texts: list[str], targets: list[np.ndarray], weight: float) -> SoftSet:
    array = np.stack(targets) if targets else np.zeros((0, len(EMOTIONS)), dtype=np.float32)
    keep = [i for i, t in enumerate(array) if t.sum() > 0 and texts[i].strip()]
    return SoftSet(
        texts=[texts[i].strip() for i in keep],
        targets=array[keep].astype(np.float32),
        weights=np.full(len(keep), weight, dtype=np.float32),
    )


def read_goemotions_labels(data_dir: Path) -> list[str]:
    path = _require(data_dir / GOEMOTIONS_LABELS)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_tsv(path: Path, names: list[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(
            _require(path),
            sep="\t",
            header=None,
            names=names,
            dtype=str,
            keep_default_na=False,
            quoting=3,
        )
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _ids(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip().isdigit()]


def load_goemotions(path: Path, label_names: list[str], weight: float = 1.0) -> SoftSet:
    """A GoEmotions-ko split (``text<TAB>ids``), rows with a mapped label only."""
    frame = _read_tsv(path, ["text", "labels"])
    targets = [
        mapped_target(
            GOEMOTIONS_MAP[label_names[i]]
            for i in _ids(ids)
            if i < len(label_names) and label_names[i] in GOEMOTIONS_MAP
        )
        for ids in frame["labels"]
    ]
    return _soft_set(frame["text"].tolist(), targets, weight)


def load_kote(path: Path, weight: float = 1.0) -> SoftSet:
    """KOTE (``id<TAB>text<TAB>ids``): the union of raters' labels as a soft distribution."""
    frame = _read_tsv(path, ["id", "text", "labels"])
    targets = [
        mapped_target(KOTE_MAP[i] for i in _ids(ids) if i in KOTE_MAP) for ids in frame["labels"]
    ]
    return _soft_set(frame["text"].tolist(), targets, weight)


def load_chatbot(path: Path, weight: float = 1.0) -> SoftSet:
    """The chatbot Q column, labels 1 and 2 mapped as in ``CHATBOT_TARGETS``."""
    try:
        frame = pd.read_csv(_require(path), dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not {"Q", "label"} <= set(frame.columns):
        raise DatasetError(f"{path} lacks columns Q and label; found: {list(frame.columns)}")
    targets = []
    for label in frame["label"]:
        target = np.zeros(len(EMOTIONS), dtype=np.float32)
        for emotion, share in CHATBOT_TARGETS.get(
            int(label) if label.isdigit() else -1, {}
        ).items():
            target[EMOTIONS.index(emotion)] = share
        targets.append(target)
    return _soft_set(frame["Q"].tolist(), targets, weight)


def load_diary(path: Path, weight: float = 1.0) -> SoftSet:
    """The team's diary texts (``text<TAB>label``) as one-hot targets."""
    return _one_hot(load_labelled(path), weight)


def _one_hot(data: LabelledData, weight: float) -> SoftSet:
    targets = np.eye(len(EMOTIONS), dtype=np.float32)[data.labels]
    return SoftSet(data.texts, targets, np.full(len(data), weight, dtype=np.float32))


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(_require(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number} is not JSON: {exc.msg}") from None
    return rows


def load_stanzas(path: Path, weight: float = 1.0) -> SoftSet:
    """Lyric stanzas (JSON Lines with ``text`` and an emotion ``label``) as one-hot targets."""
    texts, labels = [], []
    for number, row in enumerate(_read_jsonl(path), 1):
        label = row.get("label")
        if label not in EMOTIONS or not str(row.get("text", "")).strip():
            raise DatasetError(f"{path}: row {number} lacks a text or one of {EMOTIONS}")
        texts.append(str(row["text"]).strip())
        labels.append(EMOTIONS.index(label))
    return _one_hot(LabelledData(texts, np.array(labels, dtype=np.int64)), weight)


def joined(data: SoftSet, size: int, seed: int = SPLIT_SEED) -> SoftSet:
    """Song-length rows: within each class, shuffled one-hot rows joined ``size`` at a time
    with a blank line (a last group of one is left out), each at the mean weight of its part."""
    labels = data.targets.argmax(axis=1)
    rng = np.random.default_rng(seed)
    texts, targets, weights = [], [], []
    for c in range(len(EMOTIONS)):
        rows = rng.permutation(np.flatnonzero(labels == c))
        for start in range(0, len(rows), size):
            group = rows[start : start + size]
            if len(group) > 1:
                texts.append("\n\n".join(data.texts[i] for i in group))
                targets.append(data.targets[group[0]])
                weights.append(float(data.weights[group].mean()))
    return SoftSet(
        texts,
        np.array(targets, dtype=np.float32).reshape(-1, len(EMOTIONS)),
        np.array(weights, dtype=np.float32),
    )


@dataclass(frozen=True)
class LyricsTest:
    """The held-out stanzas both labellers agree on, and how far they agreed."""

    data: SoftSet
    stanzas: int
    agreement: float
    kappa: float


def load_lyrics_test(lyrics_dir: Path) -> LyricsTest:
    """The stanzas of ``stanzas.jsonl`` (``id``, ``text``) whose two independent labels agree."""
    from sklearn.metrics import cohen_kappa_score

    stanzas = {
        str(row["id"]): str(row["text"]).strip() for row in _read_jsonl(lyrics_dir / LYRICS_STANZAS)
    }
    labels = [
        dict(zip(*(frame[c].str.strip() for c in ("id", "label")), strict=True))
        for frame in (_read_tsv(lyrics_dir / name, ["id", "label"]) for name in LYRICS_LABELS)
    ]
    ids = [i for i in stanzas if all(i in each for each in labels)]
    first, second = ([each[i] for i in ids] for each in labels)
    bad = sorted({v for v in first + second if v not in EMOTIONS})
    if bad:
        raise DatasetError(f"{lyrics_dir}: labels outside the six emotions: {bad[:5]}")
    agreed = [i for i, a, b in zip(ids, first, second, strict=True) if a == b]
    test = _one_hot(
        LabelledData(
            [stanzas[i] for i in agreed],
            np.array([EMOTIONS.index(labels[0][i]) for i in agreed], dtype=np.int64),
        ),
        1.0,
    )
    return LyricsTest(
        data=test,
        stanzas=len(ids),
        agreement=len(agreed) / max(1, len(ids)),
        kappa=float(cohen_kappa_score(first, second)),
    )


def iter_reviews(data_dir: Path, limit: int | None = None) -> Iterator[str]:
    """Unlabelled NSMC review texts, in file order."""
    path = _require(data_dir / REVIEWS)
    count = 0
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        next(handle, None)
        for line in handle:
            parts = line.rstrip("\n").split("\t", 3)
            if len(parts) == 4 and parts[3].strip():
                yield parts[3].strip()
                count += 1
                if limit is not None and count >= limit:
                    return


def split_indices(n: int, fractions: tuple[float, ...], seed: int = SPLIT_SEED) -> list[np.ndarray]:
    """Shuffle ``range(n)`` with a fixed seed and cut it into parts of the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([round(f * n) for f in fractions[:-1]])
    return [np.sort(part) for part in np.split(order, cuts)]


def subset(data: SoftSet, index: np.ndarray) -> SoftSet:
    return SoftSet([data.texts[i] for i in index], data.targets[index], data.weights[index])


@dataclass(frozen=True)
class Corpus:
    """Training rows, development sets (early stopping, temperature) and held-out test sets."""

    train: SoftSet
    dev: dict[str, SoftSet]
    test: dict[str, SoftSet]
    files: dict[str, Path]
    # Every training row: ``train`` itself unless the open rows were sampled.
    full_train: SoftSet


def kote_splits(data_dir: Path, weight: float = 1.0) -> tuple[SoftSet, SoftSet, SoftSet]:
    """KOTE cut 80/10/10 into train, dev and test with ``SPLIT_SEED``."""
    kote = load_kote(data_dir / KOTE, weight)
    train, dev, test = split_indices(len(kote), (0.8, 0.1, 0.1))
    return subset(kote, train), subset(kote, dev), subset(kote, test)


def diary_splits(diary_dir: Path, weight: float = 1.0) -> tuple[SoftSet, SoftSet]:
    """The diary training file cut 85/15 into train and dev, stratified, with ``SPLIT_SEED``."""
    return stratified_split(load_diary(diary_dir / DIARY_TRAIN, weight))


def stratified_split(diary: SoftSet) -> tuple[SoftSet, SoftSet]:
    """One-hot rows cut 85/15 into train and dev within each class, with ``SPLIT_SEED``."""
    labels = diary.targets.argmax(axis=1)
    train: list[int] = []
    dev: list[int] = []
    for c in range(len(EMOTIONS)):
        rows = np.flatnonzero(labels == c)
        first, second = split_indices(len(rows), (0.85, 0.15), seed=SPLIT_SEED + c)
        train += rows[first].tolist()
        dev += rows[second].tolist()
    return subset(diary, np.array(sorted(train))), subset(diary, np.array(sorted(dev), dtype=int))


def load_corpus(
    data_dir: Path,
    diary_dir: Path | None = None,
    weights: Mapping[str, float] | None = None,
    max_open_rows: int | None = None,
    seed: int = SPLIT_SEED,
    *,
    explicit_dir: Path | None = None,
    lyrics_dir: Path | None = None,
    lyrics_join: int = 1,
) -> Corpus:
    """Everything labelled that training uses, with its fixed splits.

    Test sets (GoEmotions test, the KOTE test part, the diary test files, the explicit check
    set, the lyrics labellers' agreed stanzas) are loaded for evaluation only; training never
    reads them.
    """
    weights = {**SOURCE_WEIGHTS, **(weights or {})}
    names = read_goemotions_labels(data_dir)
    files = {
        "goemotions_train": data_dir / GOEMOTIONS_TRAIN,
        "goemotions_dev": data_dir / GOEMOTIONS_DEV,
        "goemotions_labels": data_dir / GOEMOTIONS_LABELS,
        "kote": data_dir / KOTE,
        "chatbot": data_dir / CHATBOT,
    }
    kote_train, kote_dev, kote_test = kote_splits(data_dir, weights["kote"])
    open_rows = concat(
        [
            load_goemotions(files["goemotions_train"], names, weights["goemotions"]),
            load_chatbot(files["chatbot"], weights["chatbot"]),
            kote_train,
        ]
    )
    sampled = open_rows
    if max_open_rows is not None and max_open_rows < len(open_rows):
        # A random sample of the open-data rows (diary rows are always all kept).
        keep = np.sort(np.random.default_rng(seed).permutation(len(open_rows))[:max_open_rows])
        sampled = subset(open_rows, keep)
    dev = {
        "goemotions": load_goemotions(files["goemotions_dev"], names),
        "kote": kote_dev,
    }
    test = {
        "goemotions": load_goemotions(data_dir / GOEMOTIONS_TEST, names),
        "kote": kote_test,
    }
    train, full_train = [sampled], [open_rows]
    if diary_dir is not None and (diary_dir / DIARY_TRAIN).is_file():
        files["diary_train"] = diary_dir / DIARY_TRAIN
        diary_train, diary_dev = diary_splits(diary_dir, weights["diary"])
        train.append(diary_train)
        full_train.append(diary_train)
        dev["diary"] = diary_dev
    elif diary_dir is not None:
        logger.warning("no diary training file at %s; training without it", diary_dir / DIARY_TRAIN)
    for name, filename in DIARY_TESTS.items():
        if diary_dir is not None and (diary_dir / filename).is_file():
            test[name] = load_diary(diary_dir / filename)
    team = {
        "explicit": (explicit_dir, EXPLICIT_TRAIN, load_diary),
        "lyrics": (lyrics_dir, LYRICS_TRAIN, load_stanzas),
    }
    for name, (directory, pattern, load) in team.items():
        if directory is None:
            continue
        paths = sorted(directory.glob(pattern))
        if not paths:
            raise DatasetError(f"no {name} training file ({pattern}) in {directory}")
        parts = [stratified_split(load(path, weights[name])) for path in paths]
        files.update({f"{name}_{path.stem}": path for path in paths})
        train.append(concat(part for part, _ in parts))
        if name == "lyrics" and lyrics_join > 1:
            train[-1] = concat([train[-1], joined(train[-1], lyrics_join, seed=SPLIT_SEED)])
        full_train.append(train[-1])
        dev[name] = concat(part for _, part in parts)
    if explicit_dir is not None and (explicit_dir / EXPLICIT_TEST).is_file():
        test["explicit"] = load_diary(explicit_dir / EXPLICIT_TEST)
    if lyrics_dir is not None and all(
        (lyrics_dir / name).is_file() for name in (LYRICS_STANZAS, *LYRICS_LABELS)
    ):
        test["lyrics"] = load_lyrics_test(lyrics_dir).data
    corpus = Corpus(
        train=concat(train), dev=dev, test=test, files=files, full_train=concat(full_train)
    )
    logger.info(
        "training rows: %d; dev: %s",
        len(corpus.train),
        ", ".join(f"{k}={len(v)}" for k, v in dev.items()),
    )
    return corpus
