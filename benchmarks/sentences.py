"""Korean sentence splitters on diary text, with and without punctuation.

Entries are made by joining five consecutive rows of the held-out diary files; the gold
sentences are the writers' own (each row cut after sentence-final punctuation: . ! ? …). The
unpunctuated version drops that punctuation, as people typing fast on a phone often do. A
boundary counts when it falls after the same non-space character as a gold boundary.

    python benchmarks/sentences.py [--rows 5] [--limit 0] [--no-kss]

Kiwi (kiwipiepy) is what the service uses; kss (``pip install -e ".[sentence-benchmark]"``)
and a regular expression on punctuation are the baselines.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
FINAL = re.compile(r"[.!?…]+(?=\s|$)")
Splitter = Callable[[str], list[str]]


def gold_sentences(row: str) -> list[str]:
    """A row cut after each run of sentence-final punctuation."""
    parts, start = [], 0
    for match in FINAL.finditer(row):
        parts.append(row[start : match.end()].strip())
        start = match.end()
    if row[start:].strip():
        parts.append(row[start:].strip())
    return [p for p in parts if p]


def boundaries(sentences: list[str]) -> set[int]:
    """Sentence ends as counts of non-space characters before them (the last one left out)."""
    ends, count = set(), 0
    for sentence in sentences[:-1]:
        count += len(re.sub(r"\s", "", sentence))
        ends.add(count)
    return ends


def unpunctuated(sentences: list[str]) -> list[str]:
    return [FINAL.sub("", s).strip() or s for s in sentences]


def entries(files: list[Path], rows: int, limit: int) -> list[list[str]]:
    """Gold sentences of each entry of ``rows`` consecutive diary rows."""
    texts = [t for f in files for t in pd.read_csv(f, sep="\t")["text"].tolist()]
    out = [
        [s for row in texts[i : i + rows] for s in gold_sentences(row)]
        for i in range(0, len(texts) - rows + 1, rows)
    ]
    return out[:limit] if limit else out


def kiwi_splitter() -> Splitter:
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    return lambda text: [s.text for s in kiwi.split_into_sents(text)]


def kss_splitter() -> Splitter:
    import kss

    split = kss.Kss("split_sentences")
    return lambda text: list(split(text))


def regex_splitter() -> Splitter:
    return lambda text: [p for p in re.split(r"(?<=[.!?…])\s+", text) if p.strip()]


def score(split: Splitter, golds: list[list[str]]) -> tuple[float, float, float, float]:
    """Precision, recall, F1 of boundaries over all entries, and seconds per entry."""
    hit = predicted = expected = 0
    started = time.perf_counter()
    for sentences in golds:
        found = boundaries(split(" ".join(sentences)))
        wanted = boundaries(sentences)
        hit += len(found & wanted)
        predicted += len(found)
        expected += len(wanted)
    seconds = (time.perf_counter() - started) / len(golds)
    precision = hit / predicted if predicted else 0.0
    recall = hit / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5, help="diary rows per entry")
    parser.add_argument("--limit", type=int, default=0, help="at most this many entries")
    parser.add_argument("--no-kss", action="store_true", help="skip kss (slow)")
    args = parser.parse_args()
    files = [ROOT / "data" / "diary" / "test.tsv", ROOT / "data" / "diary" / "test2.tsv"]
    golds = entries(files, args.rows, args.limit)
    bare = [unpunctuated(sentences) for sentences in golds]
    count = sum(len(g) - 1 for g in golds)
    print(f"{len(golds)} entries of {args.rows} diary rows; {count} gold boundaries")
    splitters: dict[str, Callable[[], Splitter]] = {"kiwi (service)": kiwi_splitter}
    if not args.no_kss:
        splitters["kss"] = kss_splitter
    splitters["regex on punctuation"] = regex_splitter
    header = f"{'splitter':<22}{'text':<16}{'precision':>10}{'recall':>8}{'F1':>7}{'s/entry':>9}"
    print(header)
    for name, make in splitters.items():
        split = make()
        for label, texts in (("punctuated", golds), ("no punctuation", bare)):
            p, r, f1, seconds = score(split, texts)
            print(f"{name:<22}{label:<16}{p:>10.3f}{r:>8.3f}{f1:>7.3f}{seconds:>9.3f}")


if __name__ == "__main__":
    main()
