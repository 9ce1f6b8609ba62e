from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recommender.classifier import EmotionClassifier, EmotionModel, load_classifier
from recommender.cli import main
from recommender.errors import ConfigurationError, InvalidInputError, ModelLoadError
from recommender.onnx_backend import METADATA_FILE, is_onnx_dir
from recommender.onnx_engine import OnnxEmotionClassifier
from recommender.onnx_export import export_onnx

from .conftest import BAD_TEXTS, SENTENCES

ARIRANG = "아리랑 아리랑 아라리요 아리랑 고개로 넘어간다"
LONG_TEXT = " ".join([ARIRANG] * 20) + " 비가 와서 슬프다" * 9
TEXTS = [*SENTENCES, "행복", "비", "내일 시험이 걱정된다 정말 많이 걱정된다", LONG_TEXT]


@pytest.fixture(scope="session")
def onnx_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {
        "fp32": export_onnx(tiny_model_dir, root / "fp32"),
        "int8": export_onnx(tiny_model_dir, root / "int8", quantize=True),
        "int8-unfused": export_onnx(
            tiny_model_dir, root / "int8-unfused", quantize=True, fuse=False
        ),
    }


@pytest.fixture(scope="session")
def onnx_models(onnx_dirs: dict[str, Path]) -> dict[str, EmotionClassifier]:
    return {
        precision: EmotionClassifier.from_pretrained(path, backend="onnx", batch_size=4)
        for precision, path in onnx_dirs.items()
    }


def test_export_dir_holds_model_tokenizer_config_and_metadata(onnx_dirs, tiny_classifier):
    for precision, path in onnx_dirs.items():
        assert is_onnx_dir(path)
        assert (path / "config.json").is_file()
        assert (path / "tokenizer.json").is_file()
        metadata = json.loads((path / METADATA_FILE).read_text())
        assert metadata["precision"] == precision.partition("-")[0]
        assert metadata["source_fingerprint"] == tiny_classifier.fingerprint
        assert metadata["opset"] >= 17
    import onnx

    def op_types(path: Path) -> set[str]:
        return {node.op_type for node in onnx.load(str(path / "model.onnx")).graph.node}

    layers = 1  # the tiny checkpoint's
    for precision in ("fp32", "int8"):
        fused = json.loads((onnx_dirs[precision] / METADATA_FILE).read_text())["fused"]
        assert fused["Attention"] == layers and fused["SkipLayerNormalization"] == 2 * layers
    assert {"Attention", "SkipLayerNormalization"} <= op_types(onnx_dirs["fp32"])
    assert "MatMulInteger" not in op_types(onnx_dirs["fp32"])
    # Fused attention is quantized whole; the feed-forward matrices as integer MatMuls.
    assert {"QAttention", "MatMulInteger"} <= op_types(onnx_dirs["int8"])
    unfused = onnx_dirs["int8-unfused"]
    assert json.loads((unfused / METADATA_FILE).read_text())["fused"] == {}
    assert "MatMulInteger" in op_types(unfused) and "Attention" not in op_types(unfused)


def test_long_text_spans_several_windows(onnx_models):
    model = onnx_models["fp32"]
    assert len(model.tokenizer(LONG_TEXT)["input_ids"]) > 2 * model.window


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_output_contract(onnx_models, precision):
    probs = onnx_models[precision].predict_proba(TEXTS)
    assert isinstance(onnx_models[precision], EmotionModel)
    assert probs.shape == (len(TEXTS), 6)
    assert probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert onnx_models[precision].predict_proba([]).shape == (0, 6)


@pytest.mark.parametrize(
    ("precision", "max_delta", "min_agreement"),
    # The tiny model's weights are random and large (initializer_range 0.6), a harsher test of
    # int8 than a trained model; the benchmark measures agreement on a real-size model.
    [("fp32", 1e-4, 1.0), ("int8", 0.15, 0.9), ("int8-unfused", 0.15, 0.9)],
)
def test_agrees_with_pytorch(onnx_models, tiny_classifier, precision, max_delta, min_agreement):
    reference = tiny_classifier.predict_proba(TEXTS)
    probs = onnx_models[precision].predict_proba(TEXTS)
    assert np.abs(probs - reference).max() <= max_delta
    assert (probs.argmax(axis=1) == reference.argmax(axis=1)).mean() >= min_agreement


def test_batched_results_match_one_at_a_time(onnx_models):
    model = onnx_models["fp32"]
    single = np.vstack([model.predict_proba([t]) for t in TEXTS])
    np.testing.assert_allclose(model.predict_proba(TEXTS), single, atol=1e-5)


def test_fingerprints_differ_by_engine_and_precision(onnx_models, onnx_dirs, tiny_classifier):
    fingerprints = {
        "torch": tiny_classifier.fingerprint,
        "fp32": onnx_models["fp32"].fingerprint,
        "int8": onnx_models["int8"].fingerprint,
    }
    assert len(set(fingerprints.values())) == 3
    again = EmotionClassifier.from_pretrained(onnx_dirs["fp32"])
    assert again.fingerprint == fingerprints["fp32"]


@pytest.mark.parametrize(
    ("texts", "message"),
    BAD_TEXTS,
)
def test_bad_texts_are_refused_as_by_pytorch(onnx_models, texts, message):
    with pytest.raises(InvalidInputError, match=message):
        onnx_models["fp32"].predict_proba(texts)


def backend_of(classifier: EmotionClassifier) -> str:
    return classifier.backend.name


def test_loader_picks_backend_from_directory_option_and_environment(
    monkeypatch, tiny_model_dir, onnx_dirs
):
    monkeypatch.delenv("RECOMMENDER_ENGINE", raising=False)
    assert backend_of(load_classifier(tiny_model_dir, device="cpu")) == "torch"
    assert backend_of(load_classifier(onnx_dirs["int8"])) == "onnx"
    assert (
        backend_of(EmotionClassifier.from_pretrained(onnx_dirs["fp32"], backend="onnx")) == "onnx"
    )
    monkeypatch.setenv("RECOMMENDER_ENGINE", "onnx")
    assert backend_of(EmotionClassifier.from_pretrained(onnx_dirs["fp32"])) == "onnx"
    monkeypatch.setenv("RECOMMENDER_MODEL", str(onnx_dirs["fp32"]))
    assert load_classifier().name == str(onnx_dirs["fp32"])
    assert EmotionClassifier.from_pretrained().name == str(onnx_dirs["fp32"])
    # An explicit option wins over the environment.
    monkeypatch.setenv("RECOMMENDER_ENGINE", "torch")
    assert backend_of(load_classifier(onnx_dirs["fp32"], engine="onnx")) == "onnx"
    assert backend_of(EmotionClassifier.from_pretrained(tiny_model_dir, device="cpu")) == "torch"


def test_loader_refuses_mismatched_or_unknown_backends(monkeypatch, tiny_model_dir, onnx_dirs):
    monkeypatch.delenv("RECOMMENDER_ENGINE", raising=False)
    with pytest.raises(ModelLoadError, match="not an ONNX export.*export-onnx"):
        EmotionClassifier.from_pretrained(tiny_model_dir, backend="onnx")
    with pytest.raises(ModelLoadError, match="is an ONNX export.*engine 'onnx'"):
        EmotionClassifier.from_pretrained(onnx_dirs["fp32"], backend="torch")
    with pytest.raises(ConfigurationError, match="setting 'engine'='tf'.*'torch' or 'onnx'"):
        load_classifier(tiny_model_dir, engine="tf")  # type: ignore[arg-type]
    monkeypatch.setenv("RECOMMENDER_ENGINE", "tensorrt")
    with pytest.raises(ConfigurationError, match="^RECOMMENDER_ENGINE='tensorrt' is not usable"):
        EmotionClassifier.from_pretrained(tiny_model_dir)


def test_onnx_classifier_name_still_loads_with_a_deprecation_warning(onnx_dirs, onnx_models):
    with pytest.warns(DeprecationWarning, match="backend='onnx'"):
        old = OnnxEmotionClassifier.from_pretrained(onnx_dirs["int8"], batch_size=4)
    assert isinstance(old, OnnxEmotionClassifier) and old.precision == "int8"
    assert old.fingerprint == onnx_models["int8"].fingerprint
    np.testing.assert_array_equal(
        old.predict_proba(TEXTS), onnx_models["int8"].predict_proba(TEXTS)
    )


def test_cuda_request_without_cuda_provider_is_refused(onnx_dirs):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(ModelLoadError, match="no CUDA provider"):
        EmotionClassifier.from_pretrained(onnx_dirs["fp32"], backend="onnx", device="cuda")


def test_cli_exports_and_classifies_with_the_onnx_engine(tmp_path, tiny_model_dir, onnx_models):
    runner = CliRunner()
    out = tmp_path / "exported"
    result = runner.invoke(main, ["export-onnx", str(tiny_model_dir), "-o", str(out), "--int8"])
    assert result.exit_code == 0, result.output
    assert "int8" in result.output
    assert json.loads((out / METADATA_FILE).read_text())["precision"] == "int8"
    result = runner.invoke(
        main, ["classify", "오늘은 정말 행복한 하루였다", "--model", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    emotions = json.loads(result.output)["emotions"]
    expected = onnx_models["int8"].predict_proba(["오늘은 정말 행복한 하루였다"])[0]
    np.testing.assert_allclose(list(emotions.values()), expected, atol=1e-3)
    result = runner.invoke(main, ["classify", "안녕", "--model", str(out), "--engine", "torch"])
    assert result.exit_code == 1
    assert "is an ONNX export" in result.output


def test_cli_export_of_a_missing_checkpoint_fails_cleanly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["export-onnx", str(empty), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "cannot load model from" in result.output
