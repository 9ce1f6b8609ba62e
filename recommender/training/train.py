"""``train``: named stages (start, build_model, pretrain, fine_tune, calibrate, fit_head, save)
that fill a :class:`Run`, whose record is saved beside the checkpoint.

Development sets are scored through the shipped :class:`~recommender.classifier.EmotionClassifier`
wrapping the model in training, so early stopping, the temperature and the head's share optimise
what users get (windows of long texts, batching, softmax, the head mix).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.classifier import EmotionClassifier, quiet_transformers
from recommender.digest import sha256_file
from recommender.emotions import EMOTIONS
from recommender.errors import ModelLoadError
from recommender.evaluation import LabelledData, compute_metrics
from recommender.ngram_head import HEAD_FILE, NgramHead, mix_probabilities
from recommender.placement import Placement, decide
from recommender.torch_backend import TorchBackend, require_torch
from recommender.training import data as datasets
from recommender.training.options import Hyperparameters, TrainOptions

logger = logging.getLogger(__name__)


def _seed_everything(seed: int, device: str) -> None:
    import torch

    if device.startswith("cuda"):
        # Deterministic cuBLAS needs this before the first CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_config(hp: Hyperparameters, vocab_size: int, pad_id: int):  # -> ElectraConfig
    from transformers import ElectraConfig

    hidden = hp.hidden_size
    return ElectraConfig(  # type: ignore[call-arg]
        vocab_size=vocab_size,
        embedding_size=min(128, hidden),
        hidden_size=hidden,
        num_hidden_layers=hp.num_layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=hidden * 4,
        max_position_embeddings=hp.max_positions,
        pad_token_id=pad_id,
        num_labels=len(EMOTIONS),
        id2label=dict(enumerate(EMOTIONS)),
        label2id={e: i for i, e in enumerate(EMOTIONS)},
        problem_type="single_label_classification",
    )


def class_weights(targets: np.ndarray, weights: np.ndarray, power: float) -> np.ndarray:
    """(mean class mass / class mass) ** power, so thin classes count more in the loss."""
    mass = (targets * weights[:, None]).sum(axis=0)
    mass = np.maximum(mass, mass.sum() * 1e-3)
    return ((mass.mean() / mass) ** power).astype(np.float32)


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


# Dev texts per batch when the model in training reads them (windows, as the shipped classifier).
DEV_BATCH_SIZE = 64


@dataclass
class Run:
    """A training run: its options, and what each stage has made so far (the record's source)."""

    options: TrainOptions
    hp: Hyperparameters
    placement: Placement
    corpus: datasets.Corpus
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    tokenizer: Any = None
    # The ElectraForSequenceClassification being trained (set by `start` with --init-from).
    model: Any = None
    unlabelled: list[str] = field(default_factory=list)
    pretrain_steps_done: int = 0
    class_weights: np.ndarray | None = None
    best_epoch: int = 0
    best_score: float = float("nan")
    history: list[float] = field(default_factory=list)
    temperature: float = 1.0
    dev_macro_f1: dict[str, float] = field(default_factory=dict)
    head: NgramHead | None = None
    head_record: dict[str, Any] | None = None

    @functools.cached_property
    def dev_sets(self) -> dict[str, LabelledData]:
        return {name: rows.as_labelled() for name, rows in self.corpus.dev.items()}

    def reader(self, head: NgramHead | None = None) -> EmotionClassifier:
        """The model in training read exactly as the shipped classifier reads a checkpoint:
        windows, length-sorted batches, softmax, label order and (given one) the n-gram head."""
        return EmotionClassifier(
            TorchBackend(self.model, self.placement),
            self.tokenizer,
            self.model.config,
            name="(in training)",
            batch_size=DEV_BATCH_SIZE,
            head=head,
        )

    def dev_probabilities(self, head: NgramHead | None = None) -> dict[str, np.ndarray]:
        reader = self.reader(head)
        return {name: reader.predict_proba(data.texts) for name, data in self.dev_sets.items()}

    def dev_scores(self, head: NgramHead | None = None) -> dict[str, float]:
        dev_sets = self.dev_sets
        return {
            name: compute_metrics(probabilities, dev_sets[name].labels).macro_f1
            for name, probabilities in self.dev_probabilities(head).items()
        }


def train(options: TrainOptions, *, corpus: datasets.Corpus | None = None) -> Path:
    """Train the emotion model described by ``options`` and save it in ``options.output_dir``.

    ``corpus`` replaces the data that ``options.data_dir`` and ``options.diary_dir`` name.
    """
    run = start(options, corpus)
    build_model(run)
    pretrain(run)
    fine_tune(run)
    calibrate(run)
    fit_head(run)
    return save(run)


def start(options: TrainOptions, corpus: datasets.Corpus | None = None) -> Run:
    """Placement, seeds, the checkpoint to start from (checked first: it fails fast) and the
    training data."""
    options = options.resolved()
    placement = decide(options.device, options.num_threads, backend="torch")
    torch = require_torch()
    if options.num_threads is not None:
        torch.set_num_threads(options.num_threads)
    _seed_everything(options.seed, placement.device)
    initial = _load_initial(options.init_from) if options.init_from is not None else None
    if corpus is None:
        corpus = datasets.load_corpus(
            options.data_dir,
            options.diary_dir,
            weights={
                "diary": options.diary_weight,
                "chatbot": options.chatbot_weight,
                "explicit": options.explicit_weight,
                "lyrics": options.lyrics_weight,
            },
            max_open_rows=options.max_open_rows,
            seed=options.seed,
            explicit_dir=options.explicit_dir,
            lyrics_dir=options.lyrics_dir,
            lyrics_join=options.lyrics_join,
        )
    run = Run(options, options.hyperparameters(), placement, corpus)
    if initial is not None:
        run.tokenizer, run.model = initial
    return run


def build_model(run: Run) -> None:
    """A WordPiece tokenizer trained on the reviews and training texts, and a new model of the
    preset's shape (nothing to build when starting from a checkpoint)."""
    if run.model is not None:
        return
    import torch
    from transformers import ElectraForSequenceClassification

    from recommender.training.tokenizer import train_tokenizer

    options, hp = run.options, run.hp
    logger.info("reading unlabelled reviews from %s", options.data_dir / datasets.REVIEWS)
    reviews = list(datasets.iter_reviews(options.data_dir, options.max_reviews))
    run.unlabelled = reviews + run.corpus.train.texts
    logger.info("%d unlabelled texts, %d training rows", len(run.unlabelled), len(run.corpus.train))
    run.tokenizer = train_tokenizer(
        run.unlabelled, vocab_size=hp.vocab_size, model_max_length=hp.max_positions
    )
    logger.info("tokenizer: %d tokens", len(run.tokenizer))
    config = build_config(hp, len(run.tokenizer), run.tokenizer.pad_token_id)
    torch.manual_seed(options.seed)
    run.model = ElectraForSequenceClassification(config)
    run.timings["tokenizer_s"] = time.monotonic() - run.started


def pretrain(run: Run) -> None:
    """Masked-LM pre-training of the encoder on the unlabelled texts (a new model only)."""
    if not run.hp.pretrain_steps or run.options.init_from is not None:
        run.model.to(run.placement.device)
        return
    import torch
    from transformers import ElectraForMaskedLM

    from recommender.training import loops

    device = torch.device(run.placement.device)
    mlm = ElectraForMaskedLM(run.model.config).to(device)  # type: ignore[arg-type]
    sequences = _encode(run.tokenizer, run.unlabelled, run.hp.pretrain_max_length)
    sequences = [s for s in sequences if len(s) > 3]
    t0 = time.monotonic()
    run.pretrain_steps_done = loops.pretrain_mlm(
        mlm,
        sequences,
        tokenizer=run.tokenizer,
        steps=run.hp.pretrain_steps,
        schedule_steps=run.options.pretrain_schedule_steps,
        batch_size=run.hp.pretrain_batch_size,
        learning_rate=run.hp.pretrain_learning_rate,
        device=device,
        seed=run.options.seed,
        time_budget_s=run.options.pretrain_time_budget_s,
        progress=run.options.progress,
    )
    run.timings["pretrain_s"] = time.monotonic() - t0
    run.model.electra.load_state_dict(mlm.electra.state_dict())
    run.model.to(device)


def fine_tune(run: Run) -> None:
    """Soft-target fine-tuning, early-stopped on the mean dev macro-F1 of the shipped reading."""
    import torch

    from recommender.training import loops

    options, hp, corpus = run.options, run.hp, run.corpus
    run.class_weights = class_weights(
        corpus.train.targets, corpus.train.weights, options.class_weight_power
    )
    logger.info(
        "class weights: %s",
        dict(zip(EMOTIONS, run.class_weights.round(3).tolist(), strict=True)),
    )

    def score(model: Any) -> float:
        scores = run.dev_scores()
        logger.info("dev macro-F1: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        return float(np.mean(list(scores.values())))

    t0 = time.monotonic()
    run.best_epoch, run.best_score, run.history = loops.fine_tune(
        run.model,
        _encode(run.tokenizer, corpus.train.texts, hp.max_length),
        corpus.train.targets,
        corpus.train.weights,
        class_weights=run.class_weights,
        epochs=hp.epochs,
        schedule_epochs=options.schedule_epochs,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        patience=options.patience,
        pad_id=run.tokenizer.pad_token_id,
        device=torch.device(run.placement.device),
        seed=options.seed,
        score=score,
        time_budget_s=options.finetune_time_budget_s,
        progress=options.progress,
    )
    run.timings["finetune_s"] = time.monotonic() - t0


def calibrate(run: Run) -> None:
    """A temperature fitted on every dev row's soft target against the windowed reading, folded
    into the output layer (so the checkpoint carries it)."""
    import torch

    from recommender.training.loops import fit_temperature

    every_dev_row = datasets.concat(run.corpus.dev.values())
    probabilities = run.reader().predict_proba(every_dev_row.texts)
    run.temperature = fit_temperature(
        np.log(np.maximum(probabilities, 1e-12)), every_dev_row.targets
    )
    logger.info("temperature %.3f", run.temperature)
    with torch.no_grad():
        run.model.classifier.out_proj.weight.div_(run.temperature)
        run.model.classifier.out_proj.bias.div_(run.temperature)
    run.dev_macro_f1 = run.dev_scores()


def fit_head(run: Run) -> None:
    """The n-gram head, its share of the mix and the mix's temperature (when enabled)."""
    if not run.options.ngram_head:
        return
    t0 = time.monotonic()
    run.head, run.head_record = fit_ngram_head(
        run.corpus.full_train, run.dev_sets, run.dev_probabilities(), seed=run.options.seed
    )
    run.timings["ngram_head_s"] = time.monotonic() - t0


def save(run: Run) -> Path:
    """The checkpoint, tokenizer, head and training record in ``options.output_dir``."""
    import torch
    import transformers

    from recommender.training.tokenizer import save_tokenizer

    options = run.options
    output = options.output_dir
    output.mkdir(parents=True, exist_ok=True)
    run.model.to("cpu").to(torch.float32)
    run.model.save_pretrained(output)
    save_tokenizer(run.tokenizer, output)
    (output / HEAD_FILE).unlink(missing_ok=True)  # from an earlier run into the same directory
    if run.head is not None:
        run.head.save(output)
    run.timings["total_s"] = time.monotonic() - run.started
    device = run.placement.device
    cw = run.class_weights if run.class_weights is not None else np.ones(len(EMOTIONS))
    record = {
        "options": options.to_json(),
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if run.placement.on_gpu else "cpu",
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pretrain_steps_done": run.pretrain_steps_done,
        "epochs_done": len(run.history),
        "best_epoch": run.best_epoch,
        "dev_score_history": [round(s, 4) for s in run.history],
        "dev_macro_f1": {k: round(v, 4) for k, v in run.dev_macro_f1.items()},
        "ngram_head": run.head_record,
        "dev_score": round(run.best_score, 4),
        "temperature": round(run.temperature, 4),
        "class_weights": dict(zip(EMOTIONS, cw.round(4).tolist(), strict=True)),
        "training_rows": len(run.corpus.train),
        "unlabelled_texts": len(run.unlabelled),
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "data_files": {
            name: {"path": path.name, "sha256": sha256_file(path)}
            for name, path in {
                **run.corpus.files,
                "reviews": options.data_dir / datasets.REVIEWS,
            }.items()
            if path.is_file()
        },
    }
    (output / "training_args.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    logger.info("saved %s in %.0f s", output, run.timings["total_s"])
    return output


HEAD_WEIGHTS = tuple(round(w, 2) for w in np.arange(0.0, 0.81, 0.05))


def fit_ngram_head(
    train_rows: datasets.SoftSet,
    dev_sets: dict[str, LabelledData],
    encoder_dev: dict[str, np.ndarray],
    *,
    seed: int,
) -> tuple[NgramHead | None, dict]:
    """Fit the n-gram head on the training rows' soft targets, choose its mixing weight by
    mean dev macro-F1 (ties: the smaller weight) and fit the mix's temperature; ``None`` when no
    weight above 0 helps."""
    from recommender.training.loops import fit_temperature

    head = NgramHead.fit(train_rows.texts, train_rows.targets, train_rows.weights, seed=seed)
    head_dev = {name: head.predict_proba(data.texts) for name, data in dev_sets.items()}
    by_weight: dict[float, dict[str, float]] = {}
    for weight in HEAD_WEIGHTS:
        by_weight[weight] = {
            name: compute_metrics(
                mix_probabilities(encoder_dev[name], head_dev[name], weight), data.labels
            ).macro_f1
            for name, data in dev_sets.items()
        }
    best = max(HEAD_WEIGHTS, key=lambda w: (round(np.mean(list(by_weight[w].values())), 6), -w))
    # Two calibrated readings averaged are under-confident: a temperature for the mix, fitted
    # like the encoder's on every dev row's soft target (argmax, so macro-F1, unchanged).
    mixed = np.concatenate(
        [mix_probabilities(encoder_dev[name], head_dev[name], best) for name in dev_sets]
    )
    targets = np.concatenate(
        [
            np.eye(len(EMOTIONS))[data.labels] if data.targets is None else data.targets
            for data in dev_sets.values()
        ]
    )
    temperature = fit_temperature(np.log(np.maximum(mixed, 1e-12)), targets)
    logger.info(
        "n-gram head: weight %.2f, temperature %.3f, dev macro-F1 %s",
        best,
        temperature,
        by_weight[best],
    )
    record = {
        "weight": best,
        "temperature": round(temperature, 4),
        "features": int(head.coef.shape[1]),
        "training_rows": len(train_rows),
        "dev_macro_f1": {k: round(v, 4) for k, v in by_weight[best].items()},
        "dev_score_by_weight": {
            str(w): round(float(np.mean(list(v.values()))), 4) for w, v in by_weight.items()
        },
    }
    return (head.with_weight(best, temperature) if best > 0 else None), record


def _load_initial(directory: Path) -> tuple[Any, Any]:
    """The tokenizer and model of the checkpoint training starts from, or ModelLoadError."""
    from transformers import AutoTokenizer, ElectraForSequenceClassification

    from recommender.model_safety import check_model_dir

    if not directory.is_dir():
        raise ModelLoadError(f"cannot start training from {directory}: no such directory")
    check_model_dir(directory)
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
            model = ElectraForSequenceClassification.from_pretrained(
                directory, trust_remote_code=False
            )
    except (OSError, ValueError) as exc:
        message = " ".join(str(exc).split())
        raise ModelLoadError(f"cannot start training from {directory}: {message}") from None
    id2label = {int(i): str(name) for i, name in (model.config.id2label or {}).items()}
    labels = [id2label.get(i) for i in range(len(id2label))]
    if labels != list(EMOTIONS):
        raise ModelLoadError(
            f"{directory} has labels {labels}; training needs {', '.join(EMOTIONS)} in that order"
        )
    return tokenizer, model
