from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recommender.errors import IndexLoadError, InvalidInputError
from recommender.track_index import (
    FAISS_INDEX,
    MANIFEST,
    ModelIdentity,
    TrackIndex,
    check_vectors,
)

MODEL = ModelIdentity("tiny", "abc123")


def softmax_rows(n: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(scale=3.0, size=(n, 6))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def make_index(n: int = 200, seed: int = 0, model: ModelIdentity = MODEL) -> TrackIndex:
    tracks = pa.table(
        {
            "track_id": [f"t{i}" for i in range(n)],
            "title": [f"song {i}" for i in range(n)],
            "artist": [f"artist {i % 7}" for i in range(n)],
        }
    )
    return TrackIndex(softmax_rows(n, seed), tracks, model=model, device="cpu")


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int):
    similarity = np.sqrt(queries[:, None, :] * vectors[None, :, :]).sum(axis=-1)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(similarity, order, axis=1), order


def test_search_matches_brute_force_bhattacharyya():
    index = make_index()
    queries = softmax_rows(25, seed=7)
    result = index.search(queries, 10)
    expected_scores, expected_ids = brute_force(index.vectors, queries, 10)
    np.testing.assert_allclose(result.scores, expected_scores, atol=1e-5)
    # Ids agree except where scores tie within float error.
    agree = (result.ids == expected_ids) | np.isclose(result.scores, expected_scores, atol=1e-6)
    assert agree.all()
    assert result.ids.dtype == np.int64 and result.scores.dtype == np.float32


def test_identical_distribution_scores_one_and_ranks_first():
    index = make_index()
    result = index.search(index.vectors[[3, 42]], 1)
    assert result.ids[:, 0].tolist() == [3, 42]
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=1e-5)


def test_k_larger_than_index_pads_with_minus_one():
    index = make_index(n=3)
    result = index.search(index.vectors[:1], 5)
    assert result.ids[0, 3:].tolist() == [-1, -1]
    assert np.isneginf(result.scores[0, 3:]).all()


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        (np.ones((2, 5)) / 5, r"shape \(n, 6\); got \(2, 5\)"),
        (np.ones(6) / 6, r"got \(6,\)"),
        (np.full((1, 6), np.nan), "NaN"),
        (np.array([[-0.5, 0.5, 0.5, 0.5, 0, 0]]), "negative"),
        (np.array([[0.5, 0.5, 0.5, 0, 0, 0]]), "sum to 1; row 0 sums to 1.5"),
        (np.array([["a"] * 6]), "numeric"),
    ],
)
def test_bad_queries_are_refused_before_faiss(queries, message):
    with pytest.raises(InvalidInputError, match=message):
        make_index().search(queries, 3)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k_is_refused(k):
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        make_index().search(softmax_rows(1), k)


def test_check_vectors_converts_to_contiguous_float32():
    array = np.asfortranarray(softmax_rows(4).astype(np.float64))
    checked = check_vectors(array)
    assert checked.dtype == np.float32 and checked.flags["C_CONTIGUOUS"]


def test_save_load_round_trip(tmp_path: Path):
    index = make_index()
    index.save(tmp_path / "idx")
    loaded = TrackIndex.load(tmp_path / "idx", checkpoint=MODEL.checkpoint, device="cpu")
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert loaded.tracks.equals(index.tracks)
    queries = softmax_rows(5, seed=3)
    np.testing.assert_array_equal(loaded.search(queries, 5).ids, index.search(queries, 5).ids)
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    assert manifest["metric"] == "bhattacharyya" and manifest["count"] == 200
    assert manifest["model"] == {"name": "tiny", "fingerprint": "abc123", "source": None}
    assert set(manifest["files"]) == {"vectors.npy", "index.faiss", "tracks.parquet"}


def test_saving_over_an_existing_index_replaces_it(tmp_path: Path):
    make_index(n=10).save(tmp_path / "idx")
    make_index(n=20, seed=1).save(tmp_path / "idx")
    assert len(TrackIndex.load(tmp_path / "idx")) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_interrupted_save_leaves_no_loadable_half_index(tmp_path: Path, monkeypatch):
    import pyarrow.parquet as pq

    make_index(n=10).save(tmp_path / "idx")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(KeyboardInterrupt):
        make_index(n=20).save(tmp_path / "idx")
    assert len(TrackIndex.load(tmp_path / "idx")) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]
    with pytest.raises(KeyboardInterrupt):
        make_index(n=20).save(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_load_refuses_other_model(tmp_path: Path):
    make_index().save(tmp_path / "idx")
    with pytest.raises(IndexLoadError, match="built with model 'tiny' .*fingerprint abc123.*zzz"):
        TrackIndex.load(tmp_path / "idx", checkpoint="zzz")


def test_load_matches_models_by_source_checkpoint(tmp_path: Path):
    # An index built by an export of checkpoint abc123 serves that checkpoint and its other
    # exports, and nothing else; an older manifest without "source" matches by fingerprint.
    export = ModelIdentity("tiny-int8", "def456", source="abc123")
    make_index(model=export).save(tmp_path / "idx")
    assert TrackIndex.load(tmp_path / "idx", checkpoint="abc123").model == export
    with pytest.raises(IndexLoadError, match="checkpoint fingerprint abc123.*def456"):
        TrackIndex.load(tmp_path / "idx", checkpoint="def456")
    manifest_path = tmp_path / "idx" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = {"name": "old", "fingerprint": "abc123"}
    manifest_path.write_text(json.dumps(manifest))
    assert TrackIndex.load(tmp_path / "idx", checkpoint="abc123").model.checkpoint == "abc123"


def test_load_refuses_corrupt_file(tmp_path: Path):
    make_index().save(tmp_path / "idx")
    with (tmp_path / "idx" / FAISS_INDEX).open("ab") as file:
        file.write(b"garbage")
    with pytest.raises(IndexLoadError, match="index.faiss fails its checksum"):
        TrackIndex.load(tmp_path / "idx")


def test_load_refuses_other_dimension(tmp_path: Path):
    make_index().save(tmp_path / "idx")
    path = tmp_path / "idx" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["dimension"] = 8
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="holds 8-d vectors"):
        TrackIndex.load(tmp_path / "idx")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no index directory"),
        (lambda p: p.mkdir(), "has no manifest.json"),
        (lambda p: (p.mkdir(), (p / MANIFEST).write_text("{not json")), "cannot read"),
        (lambda p: (p.mkdir(), (p / MANIFEST).write_text('{"format_version": 99}')), "version 99"),
    ],
)
def test_load_refuses_missing_or_broken_directories(tmp_path: Path, setup, message):
    setup(tmp_path / "idx")
    with pytest.raises(IndexLoadError, match=message):
        TrackIndex.load(tmp_path / "idx")


def test_load_refuses_missing_file(tmp_path: Path):
    make_index().save(tmp_path / "idx")
    (tmp_path / "idx" / "vectors.npy").unlink()
    with pytest.raises(IndexLoadError, match="missing vectors.npy"):
        TrackIndex.load(tmp_path / "idx")


def test_cuda_index_without_gpu_faiss_is_refused():
    from recommender.placement import faiss_gpus

    if faiss_gpus():
        pytest.skip("a GPU is present")
    with pytest.raises(InvalidInputError, match="sees no GPU"):
        TrackIndex(softmax_rows(3), make_index(3).tracks, model=MODEL, device="cuda")


@pytest.mark.gpu
def test_gpu_index_matches_cpu_index():
    from recommender.placement import faiss_gpus

    if not faiss_gpus():
        pytest.skip("needs faiss-gpu and a CUDA GPU")
    cpu = make_index(n=1000)
    gpu = TrackIndex(cpu.vectors, cpu.tracks, model=MODEL, device="cuda")
    assert gpu.device == "cuda"
    queries = softmax_rows(50, seed=9)
    np.testing.assert_allclose(
        gpu.search(queries, 10).scores, cpu.search(queries, 10).scores, atol=1e-4
    )


# --- index types: exact flat, IVF-Flat and HNSW-Flat ------------------------------------------


def corner_rows(n: int, seed: int = 0) -> np.ndarray:
    """Softmax-like rows: mostly near a corner, some sparse, a tenth exact or near duplicates."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 6))
    logits[np.arange(n), rng.integers(0, 6, size=n)] += rng.uniform(2.0, 8.0, size=n)
    rows = np.exp(logits - logits.max(axis=1, keepdims=True))
    sparse = rng.random(n) < 0.2
    rows[sparse] = rng.dirichlet(np.full(6, 0.15), size=int(sparse.sum()))
    dup = rng.random(n) < 0.1
    rows[dup] = rows[rng.integers(0, n, size=int(dup.sum()))] * (
        1.0
        + rng.normal(0.0, 1e-4, size=(int(dup.sum()), 6)) * (rng.random((int(dup.sum()), 1)) < 0.5)
    )
    return (rows / rows.sum(axis=1, keepdims=True)).astype(np.float32)


def tracks_for(n: int) -> pa.Table:
    return pa.table(
        {
            "track_id": [f"t{i}" for i in range(n)],
            "title": [f"song {i}" for i in range(n)],
            "artist": [f"artist {i % 97}" for i in range(n)],
            "genre": ["rare" if i % 50 == 0 else "common" for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def corner_set() -> tuple[np.ndarray, np.ndarray]:
    return corner_rows(4000, seed=1), corner_rows(200, seed=2)


def tie_aware_recall(scores: np.ndarray, exact_scores: np.ndarray) -> float:
    """Share of returned rows at least as similar as the exact k-th best (ties count as hits)."""
    return float((scores >= exact_scores[:, -1:] - 1e-5).mean())


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
def test_each_index_type_finds_the_brute_force_neighbours(corner_set, index_type):
    vectors, queries = corner_set
    index = TrackIndex(
        vectors, tracks_for(len(vectors)), model=MODEL, device="cpu", index_type=index_type
    )
    assert index.index_type == index_type
    result = index.search(queries, 10)
    exact_scores, _ = brute_force(vectors, queries, 10)
    assert tie_aware_recall(result.scores, exact_scores) >= 0.99
    # Returned scores are the true similarities of the returned rows, best first.
    true = np.sqrt(queries[:, None, :] * vectors[result.ids]).sum(axis=-1)
    np.testing.assert_allclose(result.scores, true, atol=1e-5)
    assert (np.diff(result.scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_exact_search_in_an_approximate_index_matches_brute_force(corner_set, index_type):
    vectors, queries = corner_set
    index = TrackIndex(
        vectors,
        tracks_for(len(vectors)),
        model=MODEL,
        device="cpu",
        index_type=index_type,
        index_params={"nprobe": 1} if index_type == "ivf" else {"ef_search": 16},
    )
    exact_scores, _ = brute_force(vectors, queries, 20)
    np.testing.assert_allclose(
        index.search(queries, 20, exact=True).scores, exact_scores, atol=1e-5
    )


def test_ivf_returns_k_results_even_for_large_k(corner_set):
    vectors, queries = corner_set
    index = TrackIndex(
        vectors,
        tracks_for(len(vectors)),
        model=MODEL,
        device="cpu",
        index_type="ivf",
        index_params={"nprobe": 1},
    )
    result = index.search(queries[:5], 500)
    assert (result.ids >= 0).all()


def test_auto_picks_flat_below_the_threshold_and_ivf_above(monkeypatch):
    from recommender import faiss_indexes

    small = TrackIndex(
        corner_rows(300), tracks_for(300), model=MODEL, device="cpu", auto_threshold=1000
    )
    large = TrackIndex(
        corner_rows(1500), tracks_for(1500), model=MODEL, device="cpu", auto_threshold=1000
    )
    assert (small.index_type, large.index_type) == ("flat", "ivf")
    assert small.manifest["index_type"] == "flat" and large.manifest["index_type"] == "ivf"
    monkeypatch.setattr(faiss_indexes, "AUTO_THRESHOLD", 1000)
    default = TrackIndex(corner_rows(1500), tracks_for(1500), model=MODEL, device="cpu")
    assert default.index_type == "ivf"
    assert make_index().index_type == "flat"


def test_unknown_index_type_is_refused():
    with pytest.raises(InvalidInputError, match="unknown index type 'annoy'; choose one of auto"):
        TrackIndex(softmax_rows(3), make_index(3).tracks, model=MODEL, index_type="annoy")


def test_explicit_parameters_are_kept_not_tuned(corner_set):
    vectors, _ = corner_set
    index = TrackIndex(
        vectors,
        tracks_for(len(vectors)),
        model=MODEL,
        device="cpu",
        index_type="ivf",
        index_params={"nlist": 16, "nprobe": 3},
    )
    import faiss

    ivf = faiss.extract_index_ivf(index.index)
    assert (ivf.nlist, ivf.nprobe) == (16, 3)
    assert index.index_params == {"nlist": 16, "nprobe": 3}


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
def test_index_type_and_parameters_round_trip_through_the_manifest(
    tmp_path: Path, corner_set, index_type
):
    import faiss

    vectors, queries = corner_set
    index = TrackIndex(
        vectors, tracks_for(len(vectors)), model=MODEL, device="cpu", index_type=index_type
    )
    index.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    assert manifest["index_type"] == index_type
    assert manifest["index_params"] == index.index_params
    if index_type == "ivf":
        assert {"nlist", "nprobe"} <= set(manifest["index_params"])
    if index_type == "hnsw":
        assert {"m", "ef_construction", "ef_search"} <= set(manifest["index_params"])
    loaded = TrackIndex.load(tmp_path / "idx", device="cpu")
    assert loaded.index_type == index_type and loaded.index_params == index.index_params
    assert "index_params" not in loaded.extra
    if index_type == "ivf":
        assert faiss.extract_index_ivf(loaded.index).nprobe == manifest["index_params"]["nprobe"]
    if index_type == "hnsw":
        hnsw = faiss.downcast_index(loaded.index).hnsw
        assert hnsw.efSearch == manifest["index_params"]["ef_search"]
    np.testing.assert_array_equal(loaded.search(queries, 10).ids, index.search(queries, 10).ids)


def test_load_refuses_an_unknown_index_type(tmp_path: Path):
    make_index().save(tmp_path / "idx")
    path = tmp_path / "idx" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["index_type"] = "lsh"
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="unknown index type 'lsh'"):
        TrackIndex.load(tmp_path / "idx")


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_ranking_overfetch_with_a_rare_filter_matches_exact_search(corner_set, index_type):
    from recommender.ranking import RankingOptions, rank

    vectors, queries = corner_set
    tracks = tracks_for(len(vectors))
    flat = TrackIndex(vectors, tracks, model=MODEL, device="cpu", index_type="flat")
    approximate = TrackIndex(
        vectors,
        tracks,
        model=MODEL,
        device="cpu",
        index_type=index_type,
        index_params={"nprobe": 1} if index_type == "ivf" else {"ef_search": 16},
    )
    options = RankingOptions(k=10, per_artist=None, filters={"genre": "rare"})
    for query in queries[:5]:
        want = [t.track_id for t in rank(query, flat, options)]
        got = [t.track_id for t in rank(query, approximate, options)]
        assert len(got) == 10 and got == want


def test_cli_index_type_option_is_recorded(tmp_path: Path, tiny_model_dir: Path):
    from click.testing import CliRunner

    from recommender.cli import main

    rows = [
        {"track_id": f"t{i}", "title": f"song {i}", "artist": "a", "lyrics": f"행복한 하루 {i}"}
        for i in range(60)
    ]
    catalogue = tmp_path / "catalogue.jsonl"
    catalogue.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    for index_type in ("hnsw", "flat"):
        out = tmp_path / index_type
        result = CliRunner().invoke(
            main,
            [
                "index",
                str(catalogue),
                "-o",
                str(out),
                "--model",
                str(tiny_model_dir),
                "--engine",
                "torch",
                "--index-type",
                index_type,
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        assert json.loads((out / MANIFEST).read_text())["index_type"] == index_type
    result = CliRunner().invoke(
        main, ["index", str(catalogue), "-o", str(tmp_path / "x"), "--index-type", "annoy"]
    )
    assert result.exit_code == 2 and "annoy" in result.output
