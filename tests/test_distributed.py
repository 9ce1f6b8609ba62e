"""Indexing on a local Ray instance (2 CPUs) gives the in-process index, and resumes it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender.cli import main
from recommender.emotions import EMOTIONS
from recommender.errors import CatalogueError, RecommenderError
from recommender.indexing import IndexOptions, build_index, plan_index, scan_catalogue, work_dir
from recommender.track_index import MANIFEST, TrackIndex
from tests.test_indexing import shard_rows, write, write_shards


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture()
def options(tiny_model_dir: Path) -> IndexOptions:
    return IndexOptions(model=str(tiny_model_dir), engine="torch", device="cpu", part_size=3)


def manifest(index: Path) -> dict:
    found = json.loads((index / MANIFEST).read_text())
    # Written at different times; vectors.npy (so its checksum and the rows' digest, which
    # covers the vectors' bytes) may differ in the last bits between thread counts.
    return {k: v for k, v in found.items() if k not in {"created_at", "files", "rows_digest"}}


@pytest.mark.slow
def test_ray_and_in_process_indexes_agree(tmp_path: Path, local_ray, options: IndexOptions):
    from recommender.distributed import RayOptions, build_index_on_ray

    write_shards(tmp_path / "shards")
    here = build_index(tmp_path / "shards", tmp_path / "here", options=options)
    there = build_index_on_ray(
        tmp_path / "shards", tmp_path / "there", options, RayOptions(actors=2)
    )
    assert there.classified == here.classified == 12
    assert local_ray.is_initialized(), "an instance the command did not start stays up"
    a, b = TrackIndex.load(tmp_path / "here"), TrackIndex.load(tmp_path / "there")
    assert a.tracks.equals(b.tracks)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    assert manifest(tmp_path / "here") == manifest(tmp_path / "there")
    assert not work_dir(tmp_path / "there").exists()


@pytest.mark.slow
def test_ray_and_in_process_blend_mood_tags_alike(tmp_path: Path, local_ray, options: IndexOptions):
    from dataclasses import replace

    from recommender.distributed import RayOptions, build_index_on_ray

    # Probability tags in a JSONL and a Parquet shard; the first track of each untagged.
    (tmp_path / "shards").mkdir()
    for s, suffix in enumerate([".jsonl", ".parquet"]):
        rows = shard_rows(s)
        for i, row in enumerate(rows):
            tag = [0.0] * 6 if i else [float("nan")] * 6
            if i:
                tag[(s + i) % 6], tag[(s + i + 1) % 6] = 0.75, 0.25
            row.update(zip([f"mood_{e}" for e in EMOTIONS], tag, strict=True))
        write(tmp_path / "shards" / f"part-{s}{suffix}", rows)
    tagged = replace(options, tag_weight=0.5)
    build_index(tmp_path / "shards", tmp_path / "here", options=tagged)
    build_index_on_ray(tmp_path / "shards", tmp_path / "there", tagged, RayOptions(actors=1))
    build_index(tmp_path / "shards", tmp_path / "plain", options=options)
    here, there = TrackIndex.load(tmp_path / "here"), TrackIndex.load(tmp_path / "there")
    plain = TrackIndex.load(tmp_path / "plain")
    np.testing.assert_allclose(here.vectors, there.vectors, atol=1e-5)
    assert manifest(tmp_path / "here") == manifest(tmp_path / "there")
    assert manifest(tmp_path / "here")["mood_tags"] == {
        "weight": 0.5, "column": "mood_*", "tagged": 6,
    }  # fmt: skip
    untagged = [here.rows_of([f"s{s}-0"])[0] for s in range(2)]
    np.testing.assert_allclose(here.vectors[untagged], plain.vectors[untagged], atol=1e-6)
    moved = np.abs(here.vectors - plain.vectors).sum(axis=1) > 1e-3
    assert moved.sum() == 6


@pytest.mark.slow
def test_ray_resumes_the_parts_an_in_process_run_kept(
    tmp_path: Path, local_ray, options: IndexOptions
):
    from recommender.distributed import RayOptions, build_index_on_ray
    from recommender.indexing import identity

    write_shards(tmp_path / "shards", 2)
    model = options.load_classifier()
    plan = plan_index(
        tmp_path / "shards",
        scan_catalogue(tmp_path / "shards"),
        tmp_path / "idx",
        identity(model),
        options,
    )
    first = plan.todo[0]
    plan.complete(first, model.predict_proba(first.lyrics()))
    summary = build_index_on_ray(tmp_path / "shards", tmp_path / "idx", options, RayOptions(1))
    assert (summary.resumed, summary.classified, summary.tracks) == (3, 5, 8)


@pytest.mark.slow
def test_errors_in_ray_workers_are_the_library_errors(
    tmp_path: Path, local_ray, options: IndexOptions
):
    from recommender.distributed import build_index_on_ray

    write_shards(tmp_path / "shards", 1)
    rows = [{k: v for k, v in r.items() if k != "artist"} for r in shard_rows(5)]
    write(tmp_path / "shards" / "part-5.jsonl", rows)
    with pytest.raises(CatalogueError, match="part-5.jsonl' lacks column.*artist") as error:
        build_index_on_ray(tmp_path / "shards", tmp_path / "idx", options)
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)


def test_ray_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    write_shards(tmp_path / "shards", 1)
    result = CliRunner().invoke(
        main, ["index", str(tmp_path / "shards"), "-o", str(tmp_path / "idx"), "--ray"]
    )
    assert result.exit_code == 1
    assert result.stderr == ("Error: indexing on Ray needs Ray: pip install 'recommender[ray]'\n")


def test_ray_options_need_ray(tmp_path: Path):
    result = CliRunner().invoke(main, ["index", "x.jsonl", "-o", str(tmp_path), "--actors", "2"])
    assert result.exit_code == 1
    assert "--ray-address, --actors and --gpus-per-actor need --ray" in result.stderr


def test_ray_options_are_checked():
    from recommender.distributed import RayOptions

    with pytest.raises(RecommenderError, match="actors must be at least 1; got 0"):
        RayOptions(actors=0)
    with pytest.raises(RecommenderError, match="gpus_per_actor must not be negative"):
        RayOptions(gpus_per_actor=-1)
