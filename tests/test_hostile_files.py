"""Hostile and corrupted files: models are data never code, indexes are verified not trusted.

Rows of issue 11's table: 6 (remote code in a model directory), 7 and 8 (corrupted manifests and
files), 11 (machine paths in manifests), 12 (two writers, stale staging) and 14 (reordered rows).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from recommender.cli import main
from recommender.digest import sha256_file
from recommender.errors import IndexLoadError, IndexWriteError, InvalidInputError, ModelLoadError
from recommender.index_manifest import FAISS_INDEX, MANIFEST, TRACKS, VECTORS
from recommender.indexing import build_index, index_writer, lock_path
from recommender.model_safety import check_model_dir
from recommender.track_index import ModelIdentity, TrackIndex
from tests.catalogue import make_index, write_catalogue

EVIL_CODE = """
from pathlib import Path
Path({marker!r}).write_text("the model directory's code ran")
from transformers import ElectraConfig as EvilConfig
"""

# Nested past the json module's recursion limit: it raises RecursionError, not ValueError.
DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.fixture()
def evil_model(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path]:
    """The tiny checkpoint with an ``auto_map`` to ``evil.py`` and an unknown model type."""
    model = shutil.copytree(tiny_model_dir, tmp_path / "evil-model")
    marker = tmp_path / "ran"
    (model / "evil.py").write_text(EVIL_CODE.format(marker=str(marker)))
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "evil"
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModelForSequenceClassification": "evil.EvilModel",
    }
    (model / "config.json").write_text(json.dumps(config))
    return model, marker


def run_cli(*args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, fragment: str) -> None:
    lines = output.strip().splitlines()
    assert code == 1 and len(lines) == 1, output
    assert lines[0].startswith("Error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in output and "Error:" not in lines[0][7:].split(":")[0]


# --- row 6: models are data, never code -----------------------------------------------------


def test_remote_code_in_a_model_directory_never_runs_and_nothing_prompts(evil_model):
    model, marker = evil_model
    code, output = run_cli("classify", "오늘은 행복했다", "--model", str(model), stdin="y\n")
    assert_one_line_error(code, output, "asks for the directory's own code (auto_map)")
    assert not marker.exists()


def test_loaders_pass_trust_remote_code_false_even_past_the_check(evil_model, monkeypatch):
    # Without the directory check, transformers itself refuses: no prompt, no code.
    from recommender.classifier import EmotionClassifier

    model, marker = evil_model
    monkeypatch.setattr("recommender.classifier.check_model_dir", lambda path: None)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        EmotionClassifier.from_pretrained(model, device="cpu")
    assert not marker.exists()


def test_an_unknown_model_type_is_refused(tmp_path: Path, tiny_model_dir: Path):
    model = shutil.copytree(tiny_model_dir, tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "not-a-transformers-type"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="model_type 'not-a-transformers-type', not one"):
        check_model_dir(model)


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        (lambda m, out: (m / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01."), "pickled file"),
        (lambda m, out: (m / "training_args.bin").write_bytes(b"\x80\x04."), "pickled file"),
        (
            lambda m, out: np.savez(m / "ngram_head.npz", w=np.array([{"a": 1}], dtype=object)),
            "ngram_head.npz holds an object array",
        ),
        (
            lambda m, out: np.save(m / "extra.npy", np.array([1, "x"], dtype=object)),
            "extra.npy holds an object array",
        ),
        (lambda m, out: (m / "vocab.txt").symlink_to(out), "vocab.txt is a symlink leading out"),
        (
            lambda m, out: (m / "sub").symlink_to(out.parent, target_is_directory=True),
            "sub is a symlink leading outside",
        ),
        (lambda m, out: (m / "tokenizer_config.json").write_text('{"auto_map": {}}'), "auto_map"),
        (lambda m, out: (m / "config.json").write_text("[1, 2]"), "not a JSON object"),
        (lambda m, out: (m / "config.json").write_text(DEEP_JSON), "config.json is not valid JSON"),
    ],
)
def test_hostile_model_directories_are_refused_in_one_line(
    tmp_path: Path, tiny_model_dir: Path, plant, message
):
    model = shutil.copytree(tiny_model_dir, tmp_path / "m")
    outside = tmp_path / "secret.txt"
    outside.write_text("not the model's")
    plant(model, outside)
    with pytest.raises(ModelLoadError, match=message) as error:
        check_model_dir(model)
    assert "\n" not in str(error.value) and str(tmp_path) not in str(error.value)
    code, output = run_cli("classify", "안녕", "--model", str(model))
    assert_one_line_error(code, output, message.split(" ")[-1])


def test_clean_directories_pass(tiny_model_dir: Path):
    from recommender.classifier import BUNDLED_MODEL, BUNDLED_ONNX

    for directory in (tiny_model_dir, BUNDLED_MODEL, BUNDLED_ONNX):
        check_model_dir(directory)


def test_a_symlink_inside_the_directory_is_allowed(tmp_path: Path, tiny_model_dir: Path):
    model = shutil.copytree(tiny_model_dir, tmp_path / "m")
    (model / "config-link.json").symlink_to(model / "config.json")
    check_model_dir(model)


# --- rows 7, 8 and 14: indexes are verified, not trusted --------------------------------------


@pytest.fixture()
def index_dir(tmp_path: Path, fake_classifier) -> Path:
    return make_index(tmp_path, fake_classifier)


def edit_manifest(index: Path, change) -> None:
    manifest = json.loads((index / MANIFEST).read_text())
    change(manifest)
    (index / MANIFEST).write_text(json.dumps(manifest))


def rerecord(index: Path, *names: str) -> None:
    """Re-record files' checksums, as someone covering a change would."""
    edit_manifest(index, lambda m: m["files"].update({n: sha256_file(index / n) for n in names}))


def flip_byte(file: Path, offset: int = -5) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x01
    file.write_bytes(bytes(data))


def load(index: Path) -> TrackIndex:
    return TrackIndex.load(index, device="cpu")


def test_an_empty_file_list_and_a_flipped_byte_are_refused(index_dir: Path):
    flip_byte(index_dir / VECTORS)
    with pytest.raises(IndexLoadError, match="vectors.npy fails its checksum"):
        load(index_dir)
    edit_manifest(index_dir, lambda m: m.update(files={}))
    with pytest.raises(IndexLoadError, match="files: .*checksum for exactly.*missing vectors.npy"):
        load(index_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("count"), "count: Field required"),
        (lambda m: m.pop("rows_digest"), "rows_digest: Field required"),
        (lambda m: m.update(count="18"), "count: Input should be a valid integer"),
        (lambda m: m.update(model="fake"), "model: Input should be a valid dictionary"),
        (lambda m: m["model"].update(fingerprint=7), "model.fingerprint: Input should be a valid"),
        (lambda m: m.update(index_params=[1]), "index_params: Input should be a valid dictionary"),
        (lambda m: m["files"].update({"../../etc/passwd": "0" * 64}), "unknown '../../etc/passwd'"),
        (lambda m: m["files"].update({VECTORS: "not hex"}), "not a sha256 hex digest"),
        (lambda m: m["model"].update(name="/home/builder/model"), "public name, not a path"),
        (lambda m: m.update(index_type="lsh"), "unknown index type 'lsh'"),
    ],
)
def test_manifest_schema_errors_are_one_line(index_dir: Path, change, message):
    edit_manifest(index_dir, change)
    with pytest.raises(IndexLoadError, match=message) as error:
        load(index_dir)
    assert "\n" not in str(error.value) and str(index_dir) not in str(error.value)
    code, output = run_cli("recommend", "행복", "--index", str(index_dir))
    assert_one_line_error(code, output, message.split(": ")[-1][:20])


@pytest.mark.parametrize(
    ("name", "garbage", "message"),
    [
        (VECTORS, b"\x93NUMPY garbage", "vectors.npy is not usable"),
        (VECTORS, None, "vectors.npy is not usable: vectors must have shape"),
        (FAISS_INDEX, b"IxF2 not a faiss index at all" * 10, "index.faiss is not a FAISS index"),
        (TRACKS, b"PAR1 not parquet PAR1", "tracks.parquet is not a readable Parquet table"),
    ],
)
def test_garbage_files_with_rerecorded_checksums_are_refused_plainly(
    index_dir: Path, name: str, garbage: bytes | None, message: str
):
    if garbage is None:  # a real .npy of the wrong shape
        np.save(index_dir / name, np.ones((18, 4), dtype=np.float32))
    else:
        (index_dir / name).write_bytes(garbage)
    rerecord(index_dir, name)
    with pytest.raises(IndexLoadError, match=message) as error:
        load(index_dir)
    text = str(error.value)
    assert "\n" not in text and "Error" not in text and ".cpp" not in text and "faiss/" not in text


def test_an_object_array_in_vectors_is_refused_without_unpickling(index_dir: Path):
    np.save(index_dir / VECTORS, np.array([[{"x": 1}] * 6] * 18, dtype=object))
    rerecord(index_dir, VECTORS)
    with pytest.raises(IndexLoadError, match="vectors.npy is not usable: .*allow_pickle"):
        load(index_dir)


def test_reordered_track_rows_with_rerecorded_checksums_are_refused(index_dir: Path):
    table = pq.read_table(index_dir / TRACKS)
    pq.write_table(table.take(list(range(table.num_rows))[::-1]), index_dir / TRACKS)
    rerecord(index_dir, TRACKS)
    with pytest.raises(IndexLoadError, match="track rows do not match the vector rows"):
        load(index_dir)


def test_a_manifest_nested_too_deep_is_refused_in_one_line(index_dir: Path):
    (index_dir / MANIFEST).write_text(DEEP_JSON)
    with pytest.raises(IndexLoadError, match="cannot read index .*json: maximum recursion"):
        load(index_dir)
    code, output = run_cli("recommend", "행복", "--index", str(index_dir))
    assert_one_line_error(code, output, "manifest.json")


def test_an_older_format_asks_for_a_rebuild(index_dir: Path):
    edit_manifest(index_dir, lambda m: m.update(format_version=1))
    with pytest.raises(IndexLoadError, match="format version 1; this version reads 2: rebuild"):
        load(index_dir)


# --- row 11: no machine paths in manifests ----------------------------------------------------


def test_manifests_name_the_model_not_its_path(tmp_path: Path, tiny_model_dir: Path):
    from recommender.classifier import BUNDLED_ONNX, public_name
    from recommender.service import SAMPLE_INDEX

    assert public_name(BUNDLED_ONNX) == "bundled/onnx-int8"
    assert public_name(str(tiny_model_dir)) == tiny_model_dir.name
    assert public_name("Jinuuuu/KoELECTRA_fine_tunning_emotion") == (
        "Jinuuuu/KoELECTRA_fine_tunning_emotion"
    )
    sample = json.loads((SAMPLE_INDEX / MANIFEST).read_text())
    assert sample["model"]["name"] == "bundled/onnx-int8"
    assert "/" not in json.dumps({k: v for k, v in sample.items() if k != "model"})

    code, output = run_cli(
        "index", str(write_catalogue(tmp_path / "c.jsonl")), "-o", str(tmp_path / "idx"),
        "--model", str(tiny_model_dir), "--json",
    )  # fmt: skip
    assert code == 0, output
    written = (tmp_path / "idx" / MANIFEST).read_text()
    assert str(tmp_path) not in written and str(tiny_model_dir) not in written
    assert json.loads(written)["model"]["name"] == tiny_model_dir.name


def test_saving_with_a_path_for_a_name_is_refused(tmp_path: Path, fake_classifier):
    index = load(make_index(tmp_path, fake_classifier))
    index.model = ModelIdentity("/srv/models/mine", "abc", None)
    with pytest.raises(InvalidInputError, match="model.name: .*public name, not a path"):
        index.save(tmp_path / "other")
    assert not (tmp_path / "other").exists()


# --- row 12: one writer at a time, no stale staging -------------------------------------------


def test_a_second_writer_fails_at_once(tmp_path: Path, fake_classifier):
    catalogue = write_catalogue(tmp_path / "c.jsonl")
    output = tmp_path / "idx"
    with index_writer(output):
        with pytest.raises(IndexWriteError, match=f"pid {os.getpid()}.* is writing"):
            build_index(catalogue, output, fake_classifier)
        code, out = run_cli("index", str(catalogue), "-o", str(output), "--model", "x")
        assert_one_line_error(code, out, "is writing")
    assert fake_classifier.calls == [] and not output.exists()
    build_index(catalogue, output, fake_classifier)  # released
    assert len(load(output)) == 18


def test_the_ray_path_takes_the_same_lock_before_starting_ray(tmp_path: Path):
    pytest.importorskip("ray")
    from recommender.distributed import build_index_on_ray

    catalogue = write_catalogue(tmp_path / "c.jsonl")
    with index_writer(tmp_path / "idx"), pytest.raises(IndexWriteError, match="is writing"):
        build_index_on_ray(catalogue, tmp_path / "idx")


def test_stale_staging_is_removed_and_an_interrupted_swap_undone(tmp_path: Path, fake_classifier):
    catalogue = write_catalogue(tmp_path / "c.jsonl")
    output = tmp_path / "idx"
    build_index(catalogue, output, fake_classifier)
    # Killed between the swap's two renames: the previous index waits under .old-.
    output.rename(tmp_path / ".idx.old-1234abcd")
    (tmp_path / ".idx.tmp-deadbeef").mkdir()
    (tmp_path / ".idx.tmp-deadbeef" / VECTORS).write_bytes(b"half written")
    (tmp_path / ".other.tmp-deadbeef").mkdir()  # another index's: left alone
    fake_classifier.calls.clear()
    summary = build_index(catalogue, output, fake_classifier)
    assert summary.reused == 18 and fake_classifier.calls == []  # the previous one was put back
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == [".idx.lock", ".other.tmp-deadbeef"]
    assert lock_path(output).name == ".idx.lock"
