"""Where a text becomes an emotion vector: any transformers checkpoint with the six labels."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

import numpy as np

from recommender.emotions import label_order
from recommender.errors import InvalidInputError, ModelLoadError
from recommender.ngram_head import NgramHead, combined_fingerprint
from recommender.windowing import predict_windowed, predict_windows, window_limit

log = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).parent / "bundled_model"
# The bundled checkpoint exported by `recommender export-onnx --int8`: what runs by default on a
# CPU (about 3.5 times faster per short text than PyTorch there; same checkpoint, so the same
# indexes serve both).
BUNDLED_ONNX = BUNDLED_MODEL / "onnx-int8"
REFERENCE_MODEL = "Jinuuuu/KoELECTRA_fine_tunning_emotion"


@runtime_checkable
class EmotionModel(Protocol):
    """What everything downstream depends on: texts in, ``(n, 6)`` probabilities out."""

    name: str
    # The exact weights (an index reuses vectors only from the same ones) and the checkpoint
    # they come from (an index serves any engine of the checkpoint it was built with).
    fingerprint: str
    source_fingerprint: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def default_model() -> str:
    """The model used when none is named: ``RECOMMENDER_MODEL``, else the bundled one."""
    return os.environ.get("RECOMMENDER_MODEL") or str(BUNDLED_MODEL)


Engine = Literal["torch", "onnx"]
ENGINES: tuple[Engine, ...] = ("torch", "onnx")


def resolve_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    engine: Engine | None = None,
    device: str | None = None,
) -> tuple[str, Engine]:
    """The model (directory or hub id) and engine that :func:`load_classifier` would use.

    The engine is ``engine``, else ``RECOMMENDER_ENGINE``, else ONNX Runtime for an ONNX export
    directory (one with ``model.onnx``) and PyTorch otherwise. With no model named (nor
    ``RECOMMENDER_MODEL``), the bundled model runs on its ONNX int8 export on a CPU and on its
    PyTorch checkpoint on a GPU, unless an engine is chosen.
    """
    from recommender.onnx_engine import is_onnx_dir

    requested = engine or os.environ.get("RECOMMENDER_ENGINE") or None
    if requested is not None and requested not in ENGINES:
        raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}; got {requested!r}")
    chosen = cast(Engine | None, requested)
    if name_or_path is None and not os.environ.get("RECOMMENDER_MODEL"):
        if chosen is None:
            on_cpu = resolve_device(device) == "cpu"
            chosen = "onnx" if on_cpu and is_onnx_dir(BUNDLED_ONNX) else "torch"
        return str(BUNDLED_ONNX if chosen == "onnx" else BUNDLED_MODEL), chosen
    name = str(name_or_path) if name_or_path is not None else default_model()
    return name, chosen or ("onnx" if is_onnx_dir(name) else "torch")


def load_classifier(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    engine: Engine | None = None,
    device: str | None = None,
    batch_size: int = 32,
) -> EmotionModel:
    """Load a model with the engine :func:`resolve_model` picks."""
    from recommender.onnx_engine import OnnxEmotionClassifier, is_onnx_dir

    name, chosen = resolve_model(name_or_path, engine=engine, device=device)
    if chosen == "onnx":
        return OnnxEmotionClassifier.from_pretrained(name, device=device, batch_size=batch_size)
    if is_onnx_dir(name):
        raise ModelLoadError(
            f"{name!r} is an ONNX export; load it with engine 'onnx', or pass its source "
            f"checkpoint to use the PyTorch engine"
        )
    return EmotionClassifier.from_pretrained(name, device=device, batch_size=batch_size)


def check_text(text: object, name: str = "text") -> str:
    """One text, or InvalidInputError naming it: not a string, blank, or not valid Unicode."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} is {type(text).__name__}, not a string")
    if not text.strip():
        raise InvalidInputError(f"{name} is empty or whitespace only")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON "\ud800", undecodable argv bytes
        raise InvalidInputError(
            f"{name} is not valid Unicode: it contains a lone surrogate"
        ) from None
    return text


def validate_texts(texts: Sequence[str], *, max_texts: int | None = None) -> list[str]:
    """The texts as a list, or InvalidInputError saying which one is unusable and why."""
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError("expected a list of texts, got a single string; wrap it: [text]")
    if not isinstance(texts, Sequence):
        raise InvalidInputError(f"expected a list of texts, got {type(texts).__name__}")
    if max_texts is not None and len(texts) > max_texts:
        raise InvalidInputError(f"too many texts: {len(texts)} (at most {max_texts})")
    for i, text in enumerate(texts):
        check_text(text, f"text {i}")
    return list(texts)


def resolve_device(device: str | None = None) -> str:
    """``device`` as given, else CUDA when present, else CPU."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available here")
    return device


def _fingerprint(model: Any, tokenizer: Any) -> str:
    """Identity of the weights and vocabulary: the vectors an index holds depend on both."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()[:16]


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid hub id
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect, so an offline load fails at once."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _load_error(name: str, error: Exception | None) -> ModelLoadError:
    if Path(name).exists():
        return ModelLoadError(f"cannot load model from {name!r}: {error}")
    reason = "the hub could not be reached" if error is None else "no such model on the hub"
    return ModelLoadError(
        f"model {name!r} is not a local directory and could not be fetched from the Hugging Face "
        f"hub ({reason}). On a machine with network access run "
        f"`huggingface-cli download {name} --local-dir DIR`, then pass --model DIR "
        f"(or set RECOMMENDER_MODEL=DIR)"
    )


class WindowedClassifier:
    """What every engine shares: label order, window size, and the windowed batch path.

    Texts longer than the model's window are split into overlapping token windows; each
    window's softmax is weighted by its number of tokens and the weighted mean is the text's
    vector, so every part of a long lyric counts in proportion to its length. An engine
    supplies ``_logits`` (one padded batch in, the checkpoint's logits out).
    """

    name: str
    tokenizer: Any
    columns: np.ndarray
    window: int
    stride: int
    batch_size: int

    head: NgramHead | None = None

    def _init_windowing(
        self,
        tokenizer: Any,
        config: Any,
        *,
        name: str,
        batch_size: int,
        window: int | None,
        stride: int | None,
        head: NgramHead | None = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"model {name!r} has no fast tokenizer, needed for windowing")
        self.name = name
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.columns = label_order(config.id2label)
        self.window = window_limit(config, tokenizer, window)
        self.stride = stride if stride is not None else self.window // 4
        self.head = head

    def _logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 6)`` float32 probabilities in canonical order, rows summing to 1 (the
        encoder's, mixed with the checkpoint's n-gram head where it has one)."""
        texts = validate_texts(texts)
        probabilities = predict_windowed(
            texts,
            self.tokenizer,
            self._logits,
            columns=self.columns,
            window=self.window,
            stride=self.stride,
            batch_size=self.batch_size,
        )
        return probabilities if self.head is None else self.head.mix(probabilities, texts)

    def _predict_windows(self, windows: list[list[int]]) -> np.ndarray:
        """Softmax of every window, batched longest first and padded to each batch's longest."""
        return predict_windows(
            windows,
            self._logits,
            columns=self.columns,
            batch_size=self.batch_size,
            pad_id=self.tokenizer.pad_token_id or 0,
        )


class EmotionClassifier(WindowedClassifier):
    """A sequence-classification checkpoint read as six-emotion probability vectors (PyTorch)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        device: str = "cpu",
        batch_size: int = 32,
        window: int | None = None,
        stride: int | None = None,
        head: NgramHead | None = None,
    ) -> None:
        self._init_windowing(
            tokenizer,
            model.config,
            name=name,
            batch_size=batch_size,
            window=window,
            stride=stride,
            head=head,
        )
        self.model = model.to(device).eval()
        self.device = device
        self.fingerprint = self.source_fingerprint = combined_fingerprint(
            _fingerprint(model, tokenizer), head
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
    ) -> EmotionClassifier:
        """Load a local checkpoint directory or a hub id; ``None`` means the default model."""
        name = str(name_or_path) if name_or_path is not None else default_model()
        # Path mistakes are reported before the slow torch and transformers imports.
        local = Path(name).is_dir()
        if not local and Path(name).exists():
            raise ModelLoadError(f"model path {name!r} is a file; pass the checkpoint directory")
        if not local and (name.startswith(("/", ".", "~")) or name.count("/") > 1):
            raise ModelLoadError(f"no model directory at {name!r}")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        device = resolve_device(device)
        log.info("emotion model %s on %s", name, device)
        # A hub id is read from the local cache first; the network is tried only when it answers.
        offline = not local and not _in_hub_cache(name) and not _hub_reachable()
        if offline:
            raise _load_error(name, None)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, use_fast=True)
            model = AutoModelForSequenceClassification.from_pretrained(name)
        except (OSError, ValueError) as error:
            raise _load_error(name, error) from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        return cls(
            model,
            tokenizer,
            name=name,
            device=device,
            batch_size=batch_size,
            head=NgramHead.load(name) if local else None,
        )

    def _logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(attention_mask).to(self.device),
            ).logits
            return logits.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"EmotionClassifier(name={self.name!r}, device={self.device!r})"
