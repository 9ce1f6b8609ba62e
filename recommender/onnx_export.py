"""Exporting a checkpoint to ONNX (fp32, or dynamic int8) for the ONNX Runtime backend.

Needs PyTorch and the onnx package (``recommender[torch]``); reading an export does not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, cast

from recommender.errors import ModelLoadError
from recommender.ngram_head import HEAD_FILE
from recommender.onnx_backend import METADATA_FILE, ONNX_FILE

log = logging.getLogger(__name__)

OPSET = 17


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
    import onnxruntime

    from recommender.classifier import EmotionClassifier
    from recommender.torch_backend import TorchBackend, require_torch

    torch = require_torch()
    try:
        import onnx
    except ImportError:
        raise ModelLoadError(
            "exporting needs the onnx package: pip install 'recommender[torch]'"
        ) from None
    source = EmotionClassifier.from_pretrained(checkpoint_dir, device="cpu", backend="torch")
    model = cast(TorchBackend, source.backend).model
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
                    # Per-tensor scales: per-channel ones moved the probabilities further
                    # from the fp32 model's (benchmarks/README.md).
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
