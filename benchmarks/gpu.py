"""The GPU path measured: classification, indexing and FAISS on CUDA (run by gpu_check.sh).

    python benchmarks/gpu.py classify [--device cuda] [--texts 512] [--small]
    python benchmarks/gpu.py index [--device cuda] [--tracks 10000]
    python benchmarks/gpu.py faiss [--vectors 1000000]

``classify``: texts/s of the bundled model and of a checkpoint of KoELECTRA-base's shape
(12×768, random weights) on the device, the project's batched path beside the model card's
one-text loop on the same device and texts (the card loop on every 4th text). ``--small``
builds a 2-layer stand-in instead of the base shape (for a dry run on a CPU).

``index``: synthetic tracks in four shards indexed in-process on the device with the bundled
PyTorch checkpoint, timed by stage (read and check, model load, classification, index write);
the write needs FAISS and is reported as not measured without it.

``faiss``: a flat index of random emotion vectors searched on the GPU and on the CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
from classify import _model_card_loop, benchmark_texts, bundled_tokenizer
from index import synthetic_shards

from recommender.testing import build_reference_architecture, save_random_electra

TARGET = 1700  # tracks/s: a million tracks in ten minutes


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _timed(predict, texts: list[str], device: str) -> tuple[float, np.ndarray]:
    predict(texts[:8])  # warm-up: kernels, allocator
    _sync(device)
    start = time.perf_counter()
    probs = predict(texts)
    _sync(device)
    return len(texts) / (time.perf_counter() - start), probs


def classify(args: argparse.Namespace) -> None:
    from recommender.classifier import BUNDLED_MODEL, load_classifier

    texts = benchmark_texts(args.texts)
    card_texts = texts[::4]
    with tempfile.TemporaryDirectory(prefix="gpu-classify-") as scratch:
        other = Path(scratch) / "other"
        if args.small:
            save_random_electra(
                other,
                bundled_tokenizer(),
                vocab_size=35000,
                embedding_size=64,
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=128,
                max_position_embeddings=512,
            )
            other_name = "2-layer stand-in (dry run)"
        else:
            build_reference_architecture(other, tokenizer=bundled_tokenizer())
            other_name = "KoELECTRA-base shape (12×768, random weights)"
        print(f"\n{len(texts)} texts (card loop: {len(card_texts)}); device {args.device}")
        print(
            "\n| checkpoint | path | texts/s | × card loop | argmax agreement with the card |"
            "\n|---|---|---:|---:|---:|"
        )
        for name, checkpoint in (("bundled model", BUNDLED_MODEL), (other_name, other)):
            card_rate, card_probs = _timed(
                _model_card_loop(str(checkpoint), args.device), card_texts, args.device
            )
            model = load_classifier(
                checkpoint, engine="torch", device=args.device, batch_size=args.batch_size
            )
            rate, probs = _timed(model.predict_proba, texts, args.device)
            agree = float(np.mean(probs[::4].argmax(1) == card_probs.argmax(1)))
            print(f"| {name} | model card loop (1 text a call) | {card_rate:.1f} | 1.00× | — |")
            print(
                f"| {name} | project (windows, batches of {args.batch_size}) | {rate:.1f} "
                f"| {rate / card_rate:.2f}× | {agree:.1%} |",
                flush=True,
            )


def index(args: argparse.Namespace) -> None:
    from recommender.classifier import BUNDLED_MODEL
    from recommender.indexing import (
        IndexOptions,
        classify_parts,
        finish_index,
        identity,
        plan_index,
        scan_catalogue,
    )

    with tempfile.TemporaryDirectory(prefix="gpu-index-") as scratch:
        work = Path(scratch)
        catalogue = synthetic_shards(work / "catalogue", args.tracks, 4)
        options = IndexOptions(
            model=str(BUNDLED_MODEL),
            engine="torch",
            device=args.device,
            batch_size=args.batch_size,
            index_type="flat",
        )
        stages: dict[str, float] = {}
        start = time.perf_counter()
        shards = scan_catalogue(catalogue)
        stages["read and check"] = time.perf_counter() - start
        start = time.perf_counter()
        model = options.load_classifier()
        stages["model load"] = time.perf_counter() - start
        start = time.perf_counter()
        plan = plan_index(catalogue, shards, work / "index", identity(model), options)
        classify_parts(plan, model, options)
        _sync(args.device)
        stages["classification"] = time.perf_counter() - start
        if importlib.util.find_spec("faiss") is None:
            print("faiss is not installed here: the index write is not measured")
        else:
            start = time.perf_counter()
            finish_index(plan, options)
            stages["index write"] = time.perf_counter() - start
    print(f"\n{args.tracks} synthetic tracks, bundled model (PyTorch) on {args.device}")
    print("\n| stage | s | tracks/s |\n|---|---:|---:|")
    for stage, seconds in stages.items():
        print(f"| {stage} | {seconds:.2f} | {args.tracks / seconds:,.0f} |")
    per_track = sum(s for k, s in stages.items() if k != "model load") / args.tracks
    slowest = max((k for k in stages if k != "model load"), key=stages.__getitem__)
    print(
        f"\nwithout the model load: {1 / per_track:,.0f} tracks/s, a million in "
        f"{per_track * 1e6 / 60:.1f} min (target {TARGET:,} tracks/s: "
        f"{'met' if 1 / per_track >= TARGET else 'missed'}; the slowest stage is {slowest})"
    )


def faiss_on_gpu(args: argparse.Namespace) -> None:
    if importlib.util.find_spec("faiss") is None:
        print("faiss is not installed here: FAISS on the GPU not measured")
        return
    from recommender.placement import faiss_gpus
    from recommender.track_index import ModelIdentity, TrackIndex

    if not faiss_gpus():
        print("this faiss build sees no GPU (faiss-cpu): FAISS on the GPU not measured")
        return
    import pyarrow as pa

    rng = np.random.default_rng(0)
    vectors = rng.dirichlet(np.full(6, 0.3), size=args.vectors).astype(np.float32)
    tracks = pa.table({"track_id": [str(i) for i in range(args.vectors)]})
    model = ModelIdentity("random", "x", "x")
    queries = rng.dirichlet(np.full(6, 0.3), size=1000).astype(np.float32)
    print(f"\nflat index of {args.vectors:,} vectors, 1,000 queries, k=10")
    print("\n| device | build (s) | search (ms a query, batch of 1,000) |\n|---|---:|---:|")
    for device in ("cpu", "cuda"):
        start = time.perf_counter()
        built = TrackIndex(vectors, tracks, model=model, device=device, index_type="flat")
        build = time.perf_counter() - start
        built.search(queries[:10], 10)
        start = time.perf_counter()
        built.search(queries, 10)
        print(f"| {device} | {build:.2f} | {(time.perf_counter() - start):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["classify", "index", "faiss"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--tracks", type=int, default=10000)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--small", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    {"classify": classify, "index": index, "faiss": faiss_on_gpu}[args.step](args)


if __name__ == "__main__":
    main()
