"""Which similarity suits emotion distributions? Retrieval quality of several, side by side.

For every held-out diary text (labelled), retrieve the top-k catalogue tracks under each metric
and count how many carry the text's emotion (the catalogue's intended ``emotion`` field, never
used by the service). Bhattacharyya is the service's metric (inner product over sqrt(p)).

    python benchmarks/metric.py [--model DIR] [--diary data/diary/test.tsv] [-k 10]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recommender import EMOTIONS, EmotionClassifier

ROOT = Path(__file__).resolve().parent.parent
Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _kl(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    eps = 1e-6
    return -(q[:, None, :] * np.log((q[:, None, :] + eps) / (c[None, :, :] + eps))).sum(-1)


METRICS: dict[str, Metric] = {
    "bhattacharyya (service)": lambda q, c: np.sqrt(q) @ np.sqrt(c).T,
    "cosine": lambda q, c: (
        (q / np.linalg.norm(q, axis=1, keepdims=True))
        @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T
    ),
    "inner product": lambda q, c: q @ c.T,
    "negative L2": lambda q, c: -np.linalg.norm(q[:, None, :] - c[None, :, :], axis=-1),
    "negative KL(q||c)": _kl,
    "same argmax": lambda q, c: (q.argmax(1)[:, None] == c.argmax(1)[None, :]) + c.max(1)[None, :],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--diary", default=str(ROOT / "data" / "diary" / "test.tsv"))
    parser.add_argument("--catalogue", default=str(ROOT / "catalog" / "sample.jsonl"))
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    classifier = EmotionClassifier.from_pretrained(args.model, device="cpu")
    diary = pd.read_csv(args.diary, sep="\t")
    tracks = pd.read_json(args.catalogue, lines=True, dtype=False)
    tracks = tracks[tracks["emotion"].isin(EMOTIONS)].reset_index(drop=True)
    queries = classifier.predict_proba(diary["text"].tolist()).astype(np.float64)
    catalogue = classifier.predict_proba(tracks["lyrics"].tolist()).astype(np.float64)
    truth = diary["label"].to_numpy()
    intended = tracks["emotion"].to_numpy()

    print(
        f"model {classifier.name}; {len(diary)} diary texts; {len(tracks)} labelled tracks; "
        f"k={args.k}"
    )
    print(f"{'metric':<26}{'precision@k':>12}{'hit@1':>8}{'emotions in top-k':>19}")
    for name, metric in METRICS.items():
        scores = metric(queries, catalogue)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : args.k]
        matches = intended[top] == truth[:, None]
        spread = np.mean([len(set(intended[row])) for row in top])
        print(f"{name:<26}{matches.mean():>12.3f}{matches[:, 0].mean():>8.3f}{spread:>19.2f}")


if __name__ == "__main__":
    main()
