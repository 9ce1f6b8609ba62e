"""Which similarity suits emotion distributions? Retrieval quality of several, side by side.

For every held-out diary text (labelled), retrieve the top-k catalogue tracks under each metric
and count how many carry the text's emotion (the catalogue's intended ``emotion`` field, never
used by the service). Bhattacharyya is the service's metric (inner product over sqrt(p)).

Then, per diary file: mood playlists (``recommender.playlist``) against the start's and the
end's nearest tracks glued together — how well the first track matches the text, the last the
target, and how large the steps between neighbours are (Hellinger distance) — and what blending
the catalogue's ``emotion`` column into the vectors (``recommender index --tag-weight W
--tag-column emotion``) does to precision@k. That column is also the label precision is scored
against, so the blend's gain is circular: it shows how strongly tags steer, not a better reading.

    python benchmarks/metric.py [--model DIR] [--diary FILE ...] [-k 10] [-n 12]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recommender import EMOTIONS, EmotionClassifier
from recommender.mood_tags import blend, read_tags
from recommender.playlist import destination, glued_nearest, make_playlist, steps_between
from recommender.track_index import ModelIdentity, TrackIndex

ROOT = Path(__file__).resolve().parent.parent
Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]
DIARY = [ROOT / "data" / "diary" / "test.tsv", ROOT / "data" / "diary" / "test2.tsv"]
TAG_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


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


def playlist_table(
    name: str, queries: np.ndarray, index: TrackIndex, n: int, target: str | None
) -> None:
    """Playlists against k-NN at the start and the end glued together, over these texts."""
    rows: dict[str, list[np.ndarray]] = {"playlist": [], "glued k-NN": []}
    for mood in queries.astype(np.float32):
        playlist = make_playlist(mood, index, n=n, target=target)
        _, _, end = destination(mood, target)
        ours = np.array([list(t.track.emotions.values()) for t in playlist.tracks])
        glued = index.vectors[glued_nearest(mood, end, index, n)].astype(np.float64)
        for label, path in (("playlist", ours), ("glued k-NN", glued)):
            steps = steps_between(path)
            start = float(np.sqrt(path[0] * mood).sum())
            finish = float(np.sqrt(path[-1] * end).sum())
            rows[label].append(np.array([start, finish, steps.max(), steps.mean(), len(path)]))
    smoother = np.mean(
        [a[2] <= b[2] + 1e-9 for a, b in zip(rows["playlist"], rows["glued k-NN"], strict=True)]
    )
    goal = target or "none (lift towards happy, or stay)"
    print(f"\n{name}: playlists of {n} to {goal}, {len(queries)} texts (means over texts)")
    print(
        f"{'path':<14}{'start match':>12}{'end match':>11}{'largest step':>14}"
        f"{'mean step':>11}{'tracks':>8}"
    )
    for label, values in rows.items():
        start, finish, largest, mean, length = np.mean(values, axis=0)
        print(
            f"{label:<14}{start:>12.3f}{finish:>11.3f}{largest:>14.3f}{mean:>11.3f}{length:>8.1f}"
        )
    print(f"largest step no larger than the baseline's in {smoother:.1%} of the playlists")


def tag_blend_table(
    queries: np.ndarray,
    truth: np.ndarray,
    catalogue: np.ndarray,
    tracks: pd.DataFrame,
    k: int,
) -> None:
    """The service's precision@k when the catalogue's ``emotion`` column is blended in."""
    tags = read_tags(tracks, "emotion")
    intended = tracks["emotion"].to_numpy()
    print(f"\ntag blend (--tag-weight W --tag-column emotion): precision@{k}, hit@1")
    print(f"{'W':<6}{'precision@k':>12}{'hit@1':>8}")
    for weight in TAG_WEIGHTS:
        vectors = blend(catalogue.astype(np.float32), tags, weight).astype(np.float64)
        scores = METRICS["bhattacharyya (service)"](queries, vectors)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        matches = intended[top] == truth[:, None]
        print(f"{weight:<6}{matches.mean():>12.3f}{matches[:, 0].mean():>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--diary", nargs="+", default=[str(p) for p in DIARY])
    parser.add_argument("--catalogue", default=str(ROOT / "catalog" / "sample.jsonl"))
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("-n", type=int, default=12, help="tracks per playlist")
    args = parser.parse_args()

    classifier = EmotionClassifier.from_pretrained(args.model, device="cpu")
    tracks = pd.read_json(args.catalogue, lines=True, dtype=False)
    tracks = tracks[tracks["emotion"].isin(EMOTIONS)].reset_index(drop=True)
    catalogue = classifier.predict_proba(tracks["lyrics"].tolist()).astype(np.float64)
    intended = tracks["emotion"].to_numpy()
    index = TrackIndex(
        catalogue.astype(np.float32),
        pa.Table.from_pandas(tracks[["track_id", "title", "artist"]], preserve_index=False),
        model=ModelIdentity(classifier.name, classifier.fingerprint),
        device="cpu",
    )
    for path in args.diary:
        diary = pd.read_csv(path, sep="\t")
        queries = classifier.predict_proba(diary["text"].tolist()).astype(np.float64)
        truth = diary["label"].to_numpy()
        print(
            f"\n== {Path(path).name}: model {classifier.name}; {len(diary)} diary texts; "
            f"{len(tracks)} labelled tracks; k={args.k}"
        )
        print(f"{'metric':<26}{'precision@k':>12}{'hit@1':>8}{'emotions in top-k':>19}")
        for name, metric in METRICS.items():
            scores = metric(queries, catalogue)
            top = np.argsort(-scores, axis=1, kind="stable")[:, : args.k]
            matches = intended[top] == truth[:, None]
            spread = np.mean([len(set(intended[row])) for row in top])
            print(f"{name:<26}{matches.mean():>12.3f}{matches[:, 0].mean():>8.3f}{spread:>19.2f}")
        for target in ("happy", None):
            playlist_table(Path(path).name, queries, index, args.n, target)
        tag_blend_table(queries, truth, catalogue, tracks, args.k)


if __name__ == "__main__":
    main()
