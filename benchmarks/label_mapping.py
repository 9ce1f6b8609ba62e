"""Which mapping of the open data's labels onto the six emotions transfers best to diary text.

    python benchmarks/label_mapping.py --data-dir ../shared/data [--diary-dir data/diary]

For each candidate mapping, the character n-gram TF-IDF + logistic regression baseline of
``model_quality.py`` is trained on the open training rows only (GoEmotions-ko train, the KOTE
training part, chatbot questions; no diary rows), mapped that way, and scored on the team's
diary *training* file, whose labels do not depend on any mapping. The diary test file is never
read. The baseline is a fast stand-in for the model: the mapping decides what every source
teaches, and a mapping that teaches diary emotions better should do so for both.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_quality import TfidfBaseline, add_data_arguments

from recommender.emotions import EMOTIONS
from recommender.evaluation import compute_metrics
from recommender.training import data as datasets

ROOT = Path(__file__).resolve().parents[1]

# KOTE label indices named in the candidates below (``../shared/data/README.md`` lists all 44).
KOTE_DISAPPOINTMENT = 10  # 안타까움/실망
KOTE_SELF_BLAME = (25, 30)  # 패배/자기혐오, 죄책감
KOTE_SURPRISE = (34, 39)  # 경악, 놀람


def _kote(changes: dict[int, tuple[str, ...] | None]) -> dict[int, tuple[str, ...]]:
    mapping = {**datasets.KOTE_MAP, **changes}
    return {i: classes for i, classes in mapping.items() if classes}


def _goemotions(changes: dict[str, tuple[str, ...] | None]) -> dict[str, tuple[str, ...]]:
    mapping = {**datasets.GOEMOTIONS_MAP, **changes}
    return {label: classes for label, classes in mapping.items() if classes}


def candidates() -> dict[str, dict[str, Any]]:
    """Name -> replacements for the module's mapping tables (absent ones stay as suggested)."""
    self_blame_sad = {
        "goemotions": _goemotions({"remorse": ("sad",)}),
        "kote": _kote({i: ("sad",) for i in KOTE_SELF_BLAME}),
    }
    disappointment_split = {
        "goemotions": _goemotions({"disappointment": ("heartache", "sad")}),
        "kote": _kote({KOTE_DISAPPOINTMENT: ("heartache", "sad")}),
    }
    return {
        "suggested (data README)": {},
        "chatbot breakups mostly sad (0.3 heartache / 0.7 sad)": {
            "chatbot": {1: {"heartache": 0.3, "sad": 0.7}, 2: {"happy": 1.0}}
        },
        "no chatbot rows": {"chatbot": {}},
        "guilt and self-blame -> sad (remorse, 패배/자기혐오, 죄책감)": self_blame_sad,
        "disappointment split heartache/sad": disappointment_split,
        "surprise unmapped (GoEmotions surprise, KOTE 경악/놀람)": {
            "goemotions": _goemotions({"surprise": None}),
            "kote": _kote({i: None for i in KOTE_SURPRISE}),
        },
    }


@contextlib.contextmanager
def mapping(replacements: dict[str, Any]) -> Iterator[None]:
    tables = {
        "goemotions": "GOEMOTIONS_MAP",
        "kote": "KOTE_MAP",
        "chatbot": "CHATBOT_TARGETS",
    }
    saved = {name: getattr(datasets, name) for name in tables.values()}
    try:
        for key, value in replacements.items():
            setattr(datasets, tables[key], value)
        yield
    finally:
        for name, value in saved.items():
            setattr(datasets, name, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--only", default=None, help="comma-separated candidate numbers (from 0)")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        parser.error("--data-dir or RECOMMENDER_DATA_DIR is required")
    diary = datasets.load_diary(args.diary_dir / datasets.DIARY_TRAIN).as_labelled()
    chosen = candidates()
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        chosen = {k: v for i, (k, v) in enumerate(chosen.items()) if i in keep}
    print(f"Scored on the diary training file ({len(diary)} rows; no diary rows trained on)\n")
    print("| mapping | open rows | macro-F1 | acc | " + " | ".join(EMOTIONS) + " | s |")
    print("|---" * (len(EMOTIONS) + 5) + "|")
    for name, replacements in chosen.items():
        start = time.perf_counter()
        with mapping(replacements):
            corpus = datasets.load_corpus(args.data_dir)
        baseline = TfidfBaseline().fit(corpus.train)
        report = compute_metrics(baseline.predict_proba(diary.texts), diary.labels)
        per_class = " | ".join(f"{m.f1:.3f}" for m in report.per_class)
        print(
            f"| {name} | {len(corpus.train):,} | {report.macro_f1:.3f} | {report.accuracy:.3f} "
            f"| {per_class} | {time.perf_counter() - start:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
