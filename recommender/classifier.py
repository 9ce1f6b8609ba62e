"""Where a text becomes an emotion vector: one classifier, its backend a parameter.

:class:`EmotionClassifier` owns the tokenizer, the label order, the windows of long texts, the
batches, the softmax and the n-gram head; its backend (:mod:`recommender.torch_backend` or
:mod:`recommender.onnx_backend`) only turns a padded batch into logits.
:meth:`EmotionClassifier.from_pretrained` is the one loader every entry point uses.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recommender import hub, onnx_backend, torch_backend
from recommender.backends import Backend
from recommender.emotions import label_order
from recommender.errors import ModelLoadError
from recommender.model_safety import check_model_dir
from recommender.ngram_head import NgramHead, combined_fingerprint
from recommender.onnx_backend import is_onnx_dir
from recommender.placement import Placement, decide, torch_cuda
from recommender.settings import Backend as BackendName
from recommender.settings import Settings
from recommender.texts import validate_texts
from recommender.windowing import predict_windowed, predict_windows, window_limit

log = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).parent / "bundled_model"
# The bundled checkpoint exported by `recommender export-onnx --int8`: what runs by default on a
# CPU (same checkpoint, so the same indexes serve both backends).
BUNDLED_ONNX = BUNDLED_MODEL / "onnx-int8"
# The old name of a backend, kept in signatures that had it.
Engine = BackendName


@runtime_checkable
class ProbabilityModel(Protocol):
    """Texts in, ``(n, 6)`` probabilities out: what scoring needs (baselines included)."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class EmotionModel(ProbabilityModel, Protocol):
    """What everything downstream depends on: a named model with fingerprints, reading texts
    as ``(n, 6)`` probabilities."""

    name: str

    @property
    def fingerprint(self) -> str:
        """The exact weights: an index reuses vectors only from the same ones."""
        ...

    @property
    def source_fingerprint(self) -> str:
        """The checkpoint the weights come from: an index serves any backend of the checkpoint
        it was built with."""
        ...


def public_name(name: str | os.PathLike[str]) -> str:
    """How a model is named where others see it (manifests, ``/ready``): a hub id as it is,
    the bundled model as ``bundled``, any other directory by its own name, never its path."""
    path = Path(name)
    if not path.exists():
        return str(name)
    resolved, bundled = path.resolve(), BUNDLED_MODEL.resolve()
    if resolved.is_relative_to(bundled):
        inner = resolved.relative_to(bundled).as_posix()
        return "bundled" if inner == "." else f"bundled/{inner}"
    return resolved.name


def resolve_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    engine: BackendName | None = None,
    device: str | None = None,
    settings: Settings | None = None,
) -> tuple[str, BackendName]:
    """The model (directory or hub id) and backend that :meth:`EmotionClassifier.from_pretrained`
    would use.

    The backend is ``engine``, else the ``engine`` setting (``RECOMMENDER_ENGINE``), else ONNX
    Runtime for an ONNX export directory and PyTorch otherwise. With no model named (nor
    ``RECOMMENDER_MODEL``) the bundled model runs on its ONNX int8 export on a CPU and on its
    PyTorch checkpoint on a GPU, unless a backend is chosen.
    """
    settings = (settings or Settings.from_env()).replace(engine=engine, device=device)
    chosen = settings.engine
    name = str(name_or_path) if name_or_path is not None else settings.model
    if name is None:
        if chosen is None:
            on_gpu = (settings.device or ("cuda" if torch_cuda() else "cpu")) != "cpu"
            chosen = "onnx" if not on_gpu and is_onnx_dir(BUNDLED_ONNX) else "torch"
        return str(BUNDLED_ONNX if chosen == "onnx" else BUNDLED_MODEL), chosen
    return name, chosen or ("onnx" if is_onnx_dir(name) else "torch")


class EmotionClassifier:
    """A six-emotion checkpoint read as probability vectors, on a PyTorch or ONNX backend.

    Texts longer than the model's window are split into overlapping token windows; each
    window's softmax is weighted by its number of tokens and the weighted mean is the text's
    vector, so every part of a long lyric counts in proportion to its length.
    """

    def __init__(
        self,
        backend: Backend,
        tokenizer: Any,
        config: Any,
        *,
        name: str,
        batch_size: int = 32,
        window: int | None = None,
        stride: int | None = None,
        head: NgramHead | None = None,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"model {name!r} has no fast tokenizer, needed for windowing")
        self.backend = backend
        self.tokenizer = tokenizer
        self.config = config
        self.name = name
        self.batch_size = batch_size
        self.columns = label_order(config.id2label)
        self.window = window_limit(config, tokenizer, window)
        self.stride = stride if stride is not None else self.window // 4
        self.head = head

    @property
    def placement(self) -> Placement:
        return self.backend.placement

    @property
    def device(self) -> str:
        return self.backend.placement.device

    @property
    def precision(self) -> str:
        return self.backend.precision

    @property
    def model(self) -> Any:
        """The PyTorch module of a PyTorch-backed classifier."""
        if not isinstance(self.backend, torch_backend.TorchBackend):
            raise AttributeError(f"the {self.backend.name} backend has no PyTorch model")
        return self.backend.model

    @functools.cached_property
    def fingerprint(self) -> str:
        return combined_fingerprint(self.backend.fingerprint(self.tokenizer), self.head)

    @functools.cached_property
    def source_fingerprint(self) -> str:
        return self.backend.source_fingerprint or self.fingerprint

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        backend: BackendName | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        settings: Settings | None = None,
    ) -> EmotionClassifier:
        """Load a checkpoint directory, an ONNX export directory or a hub id.

        ``None`` means the configured default (``RECOMMENDER_MODEL``, else the bundled model);
        the backend is chosen as :func:`resolve_model` says; the device and threads are
        decided once (:func:`recommender.placement.decide`); arguments win over ``settings``
        (default: read from the environment).
        """
        settings = (settings or Settings.from_env()).replace(
            engine=backend, device=device, threads=threads
        )
        name, chosen = resolve_model(name_or_path, settings=settings)
        # Path mistakes are reported before the slow imports.
        local = Path(name).is_dir()
        if not local and Path(name).exists():
            raise ModelLoadError(f"model path {name!r} is a file; pass the checkpoint directory")
        if not local and (name.startswith(("/", ".", "~")) or name.count("/") > 1):
            raise ModelLoadError(f"no model directory at {name!r}")
        if chosen == "onnx" and not is_onnx_dir(name):
            raise ModelLoadError(
                f"{name!r} is not an ONNX export (no {onnx_backend.ONNX_FILE}); make one with "
                f"`recommender export-onnx CHECKPOINT -o DIR`"
            )
        if chosen == "torch" and is_onnx_dir(name):
            raise ModelLoadError(
                f"{name!r} is an ONNX export; load it with engine 'onnx', or pass its source "
                f"checkpoint to use the PyTorch engine"
            )
        if local:  # models are data: refused before anything in the directory is read
            check_model_dir(name)
        if chosen == "torch":
            torch_backend.require_torch()
        placement = decide(settings.device, settings.threads, backend=chosen)
        if not local:  # a hub id: from the local cache, or the network when it answers
            hub.check_available(name)
        tokenizer, config = _tokenizer_and_config(name)
        if chosen == "onnx":
            engine: Backend = onnx_backend.load(name, placement)
        else:
            with quiet_transformers():
                try:
                    engine = torch_backend.load(name, config, placement)
                except (OSError, ValueError) as error:
                    raise hub.load_error(name, error) from None
        log.info("emotion model %s (%s, %s) on %s", name, chosen, engine.precision, placement)
        return cls(
            engine,
            tokenizer,
            config,
            name=name,
            batch_size=batch_size,
            head=NgramHead.load(name) if local else None,
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 6)`` float32 probabilities in canonical order, rows summing to 1 (the
        encoder's, mixed with the checkpoint's n-gram head where it has one)."""
        texts = validate_texts(texts)
        probabilities = predict_windowed(
            texts,
            self.tokenizer,
            self.backend.logits,
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
            self.backend.logits,
            columns=self.columns,
            batch_size=self.batch_size,
            pad_id=self.tokenizer.pad_token_id or 0,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, backend={self.backend.name!r}, "
            f"precision={self.precision!r}, device={self.device!r})"
        )


def load_classifier(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    engine: BackendName | None = None,
    device: str | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    settings: Settings | None = None,
) -> EmotionClassifier:
    """:meth:`EmotionClassifier.from_pretrained` under its earlier name (``engine`` is its
    ``backend``)."""
    return EmotionClassifier.from_pretrained(
        name_or_path,
        backend=engine,
        device=device,
        batch_size=batch_size,
        threads=threads,
        settings=settings,
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while a model loads (restored after)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _tokenizer_and_config(name: str) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoTokenizer

    with quiet_transformers():
        try:
            # Never the checkpoint's own code, and never a prompt asking whether to run it.
            tokenizer = AutoTokenizer.from_pretrained(name, use_fast=True, trust_remote_code=False)
            return tokenizer, AutoConfig.from_pretrained(name, trust_remote_code=False)
        except (OSError, ValueError) as error:
            raise hub.load_error(name, error) from None
