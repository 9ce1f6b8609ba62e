"""The one settings reader and the one placement decision."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from recommender import placement
from recommender.cli import main
from recommender.errors import ConfigurationError, ModelLoadError
from recommender.placement import Placement, decide
from recommender.settings import Settings


@pytest.fixture()
def clean_env(monkeypatch):
    for field in Settings.model_fields:
        monkeypatch.delenv(Settings.env_name(field), raising=False)
    return monkeypatch


def test_settings_come_from_the_environment_with_typed_values(clean_env):
    assert Settings.from_env() == Settings()
    assert Settings.from_env().model is None and Settings.from_env().max_texts == 64
    clean_env.setenv("RECOMMENDER_MAX_TEXTS", "7")
    clean_env.setenv("RECOMMENDER_ENGINE", "onnx")
    clean_env.setenv("RECOMMENDER_DATA_DIR", "/data")
    clean_env.setenv("RECOMMENDER_DEVICE", "")  # empty means unset
    settings = Settings.from_env()
    assert (settings.max_texts, settings.engine, settings.device) == (7, "onnx", None)
    assert settings.data_dir == Path("/data")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "RECOMMENDER_ENGINE",
            "tensorrt",
            "RECOMMENDER_ENGINE='tensorrt' is not usable: .*'torch'",
        ),
        ("RECOMMENDER_DEVICE", "gpu", "RECOMMENDER_DEVICE='gpu' is not usable: .*cpu, cuda"),
        ("RECOMMENDER_THREADS", "0", "RECOMMENDER_THREADS='0' is not usable: .*greater than"),
        ("RECOMMENDER_MAX_TEXTS", "many", "RECOMMENDER_MAX_TEXTS='many' is not usable"),
        ("RECOMMENDER_DEFAULT_K", "500", "default_k \\(500\\) is above max_k \\(100\\)"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(clean_env, variable, value, message):
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message) as caught:
        Settings.from_env()
    assert "\n" not in str(caught.value)
    # The CLI says the same in one line, exit code 1.
    result = CliRunner().invoke(main, ["classify", "안녕"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert variable.removeprefix("RECOMMENDER_").lower() in result.output.lower()


def test_replace_lets_given_values_win_and_names_a_bad_one(clean_env):
    clean_env.setenv("RECOMMENDER_MODEL", "/env/model")
    settings = Settings.from_env()
    assert settings.replace(model=None).model == "/env/model"
    assert settings.replace(model="/given").model == "/given"
    with pytest.raises(ConfigurationError, match="setting 'max_k'=0 is not usable"):
        settings.replace(max_k=0)


def test_cli_help_shows_every_variable_of_an_option():
    runner = CliRunner()
    for command, variables in {
        "classify": ["MODEL", "ENGINE", "DEVICE"],
        "recommend": ["INDEX", "MODEL", "ENGINE", "DEVICE"],
        "serve": ["INDEX", "MODEL", "ENGINE", "DEVICE"],
        "index": ["MODEL", "ENGINE", "DEVICE"],
        "evaluate": ["MODEL", "ENGINE", "DEVICE"],
        "train": ["DATA_DIR", "DIARY_DIR", "DEVICE"],
    }.items():
        result = runner.invoke(main, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        for variable in variables:
            assert f"RECOMMENDER_{variable}" in result.output, (command, variable)


def test_cli_option_wins_over_its_variable(clean_env, tiny_model_dir):
    clean_env.setenv("RECOMMENDER_MODEL", "/no/such/model")
    runner = CliRunner()
    result = runner.invoke(main, ["classify", "안녕", "--json"])
    assert result.exit_code == 1 and "no model directory at '/no/such/model'" in result.output
    result = runner.invoke(main, ["classify", "안녕", "--json", "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output


def test_train_without_a_data_dir_says_which_option_or_variable(clean_env, tmp_path):
    result = CliRunner().invoke(main, ["train", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--data-dir" in result.output and "RECOMMENDER_DATA_DIR" in result.output


def test_placement_on_this_cpu_is_decided_and_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(placement, "_logged", set())
    monkeypatch.setattr(placement, "onnx_cuda", lambda: False)
    with caplog.at_level(logging.INFO, logger="recommender.placement"):
        first = decide(None, 3, backend="onnx")
        again = decide("cpu", 3, backend="onnx")
    assert first == again == Placement(device="cpu", threads=3, faiss_gpu=False)
    assert [r.getMessage() for r in caplog.records] == [
        "placement: onnx backend on cpu, 3 thread(s), FAISS on CPU"
    ]
    assert decide(None, None, backend="onnx").threads == placement.available_cores()
    with pytest.raises(ModelLoadError, match="'cuda' requested but onnxruntime here has no CUDA"):
        decide("cuda", 1, backend="onnx")
    with pytest.raises(ConfigurationError, match="cpu, cuda or cuda:N; got 'tpu'"):
        decide("tpu", 1, backend="onnx")


def test_placement_asks_torch_only_where_an_nvidia_driver_is(monkeypatch):
    monkeypatch.setattr(placement, "nvidia_driver", lambda: False)
    placement.torch_cuda.cache_clear()
    try:
        script = "import sys; from recommender import placement; print('torch' in sys.modules)"
        assert not placement.torch_cuda()
        with pytest.raises(ModelLoadError, match="CUDA is not available here"):
            decide("cuda", 1, backend="torch")
    finally:
        placement.torch_cuda.cache_clear()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


NO_TORCH = textwrap.dedent(
    """
    import importlib.machinery, sys

    _find = importlib.machinery.PathFinder.find_spec.__func__

    def find_spec(cls, name, path=None, target=None):  # torch is not installed, as it were
        if name == "torch" or name.startswith("torch."):
            return None
        return _find(cls, name, path, target)

    importlib.machinery.PathFinder.find_spec = classmethod(find_spec)
    import json
    from recommender import EmotionClassifier, Recommender
    from recommender.errors import ModelLoadError

    service = Recommender.load()
    result = service.recommend("오늘은 정말 행복한 하루였다", 3)
    try:
        EmotionClassifier.from_pretrained(backend="torch")
        refused = ""
    except ModelLoadError as error:
        refused = str(error)
    print(json.dumps({
        "backend": service.classifier.backend.name,
        "top": max(result.emotions, key=result.emotions.get),
        "tracks": len(result.tracks),
        "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
        "refused": refused,
    }))
    """
)


@pytest.mark.slow
def test_classify_and_recommend_work_without_torch(clean_env):
    import json

    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["backend"] == "onnx" and answer["torch"] == []
    assert answer["top"] == "happy" and answer["tracks"] == 3
    assert "pip install 'recommender[torch]'" in answer["refused"]
