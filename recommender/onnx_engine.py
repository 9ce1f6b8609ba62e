"""The ONNX Runtime engine: a checkpoint exported to ONNX (fp32 or dynamic int8), read with the
same windowing, batching and label order as the PyTorch engine.

An export directory holds ``model.onnx``, the tokenizer, ``config.json`` (so ``id2label``
travels) and ``onnx_export.json`` naming the source checkpoint, its fingerprint and the precision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recommender.classifier import WindowedClassifier
from recommender.digest import sha256_file
from recommender.errors import ModelLoadError
from recommender.ngram_head import HEAD_FILE, NgramHead, combined_fingerprint

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
METADATA_FILE = "onnx_export.json"
OPSET = 17
Precision = Literal["fp32", "int8"]


def is_onnx_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ONNX export directory (it holds ``model.onnx``)."""
    return (Path(path) / ONNX_FILE).is_file()


def _fingerprint(onnx_digest: str, tokenizer: Any) -> str:
    """Identity of the exported graph's weights and the vocabulary. It differs from the source
    checkpoint's and between fp32 and int8: their vectors differ slightly, so re-indexing never
    reuses one's vectors for another (indexes match models by source checkpoint instead)."""
    digest = hashlib.sha256(b"onnx:" + onnx_digest.encode())
    digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()[:16]


def _onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
    except ImportError:
        raise ModelLoadError(
            "the onnx engine needs onnx and onnxruntime: pip install 'recommender[onnx]'"
        ) from None
    return onnxruntime


def default_threads() -> int:
    """Intra-op threads: PyTorch's setting where torch is loaded (the server splits the cores
    among its workers that way), else every core this process may run on."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, torch.get_num_threads())
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class OnnxEmotionClassifier(WindowedClassifier):
    """An ONNX export read as six-emotion probability vectors; same contract as
    :class:`~recommender.classifier.EmotionClassifier`."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        config: Any,
        *,
        name: str,
        fingerprint: str,
        source_fingerprint: str | None = None,
        precision: str = "fp32",
        batch_size: int = 32,
        window: int | None = None,
        stride: int | None = None,
        head: NgramHead | None = None,
    ) -> None:
        self._init_windowing(
            tokenizer,
            config,
            name=name,
            batch_size=batch_size,
            window=window,
            stride=stride,
            head=head,
        )
        self.session = session
        self.fingerprint = fingerprint
        self.source_fingerprint = source_fingerprint or fingerprint
        self.precision = precision
        self.device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> OnnxEmotionClassifier:
        """Load an export directory made by :func:`export_onnx`."""
        from transformers import AutoConfig, AutoTokenizer

        ort = _onnxruntime()

        root = Path(path)
        if not is_onnx_dir(root):
            raise ModelLoadError(
                f"{str(root)!r} is not an ONNX export (no {ONNX_FILE}); make one with "
                f"`recommender export-onnx CHECKPOINT -o DIR`"
            )
        available = ort.get_available_providers()
        if device is None:
            device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise ModelLoadError(
                    f"device {device!r} requested but onnxruntime here has no CUDA provider"
                )
            providers: list[Any] = [
                ("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}),
                "CPUExecutionProvider",
            ]
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            metadata = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
            tokenizer = AutoTokenizer.from_pretrained(root, use_fast=True)
            config = AutoConfig.from_pretrained(root)
            session = ort.InferenceSession(
                str(root / ONNX_FILE), sess_options=options, providers=providers
            )
            head = NgramHead.load(root)
        except Exception as error:  # onnxruntime, transformers and json raise many types
            raise ModelLoadError(f"cannot load ONNX model from {str(root)!r}: {error}") from None
        log.info("ONNX model %s (%s) on %s", root, metadata.get("precision"), device)
        return cls(
            session,
            tokenizer,
            config,
            name=str(root),
            fingerprint=combined_fingerprint(
                _fingerprint(sha256_file(root / ONNX_FILE), tokenizer), head
            ),
            source_fingerprint=metadata.get("source_fingerprint"),
            precision=str(metadata.get("precision", "fp32")),
            batch_size=batch_size,
            head=head,
        )

    def _logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(
            ["logits"], {"input_ids": input_ids, "attention_mask": attention_mask}
        )
        return np.asarray(logits)

    def __repr__(self) -> str:
        return f"OnnxEmotionClassifier(name={self.name!r}, precision={self.precision!r})"


def _logits_only(model: Any) -> Any:
    """The model as a module with one output, so the exported graph returns only logits."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits().eval()


# Encoders whose graphs onnxruntime's transformer optimizer fuses as BERT's (attention, skip
# layer-norm, bias-GELU, embedding layer-norm).
FUSABLE_MODEL_TYPES = ("bert", "electra", "roberta", "xlm-roberta", "distilbert")


def _fuse(path: Path, config: Any) -> dict[str, int]:
    """Fuse the transformer layers of the graph at ``path`` in place; the fused-op counts.

    Fused attention is also what int8 quantization turns into one ``QAttention`` op per layer.
    Nothing changes (and ``{}`` is returned) for other architectures.
    """
    model_type = getattr(config, "model_type", "")
    if model_type not in FUSABLE_MODEL_TYPES:
        return {}
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(path),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    if not fused.get("Attention"):
        log.warning("no attention layers fused in the %s graph; kept it unfused", model_type)
        return {}
    optimized.save_model_to_file(str(path))
    return fused


def export_onnx(
    checkpoint_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    quantize: bool = False,
    fuse: bool = True,
) -> Path:
    """Export a checkpoint to ``output_dir`` as ONNX (dynamic batch and sequence axes): with its
    transformer layers fused where the architecture is BERT-like (unless ``fuse`` is false), and
    with dynamic int8 quantization of the matrix-multiplication weights when ``quantize``."""
    import onnx
    import torch

    onnxruntime = _onnxruntime()

    from recommender.classifier import EmotionClassifier

    source = EmotionClassifier.from_pretrained(checkpoint_dir, device="cpu")
    model = source.model
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # traces to plain ONNX ops, no SDPA masks
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    example = source.tokenizer(
        ["오늘은 정말 행복한 하루였다", "내일 시험이 걱정된다 정말 많이"],
        padding=True,
        return_tensors="pt",
        return_token_type_ids=False,
    )
    axes = {0: "batch", 1: "sequence"}
    with tempfile.TemporaryDirectory(dir=output) as scratch:
        fp32 = Path(scratch) / ONNX_FILE
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python code
            torch.onnx.export(
                _logits_only(model),
                (example["input_ids"], example["attention_mask"]),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        fused = _fuse(fp32, model.config) if fuse else {}
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(scratch) / "model.int8.onnx"
            logging.disable(logging.WARNING)  # its advice to pre-process does not apply here
            try:
                quantize_dynamic(
                    fp32,
                    quantized,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Attention"],
                    # Per-tensor scales: per-channel ones moved the bundled model's
                    # probabilities four times as far (max 0.11 against 0.03) on AVX2.
                    per_channel=False,
                    # Fused ops (contrib domain) have no inferred output types.
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
            finally:
                logging.disable(logging.NOTSET)
            fp32 = quantized
        shutil.move(str(fp32), output / ONNX_FILE)
    source.tokenizer.save_pretrained(output)
    model.config.save_pretrained(output)
    if source.head is not None:  # the n-gram head travels with the export, unchanged
        shutil.copyfile(Path(checkpoint_dir) / HEAD_FILE, output / HEAD_FILE)
    metadata = {
        "source": str(checkpoint_dir),
        "source_fingerprint": source.fingerprint,
        "precision": "int8" if quantize else "fp32",
        "fused": fused,
        "opset": OPSET,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    (output / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s to %s (%s)", checkpoint_dir, output, metadata["precision"])
    return output
