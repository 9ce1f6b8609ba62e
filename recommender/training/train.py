"""``train``: tokenizer, masked-LM pre-training, fine-tuning, calibration, checkpoint."""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import time
from pathlib import Path

import numpy as np

from recommender.digest import sha256_file
from recommender.emotions import EMOTIONS
from recommender.evaluation import LabelledData, compute_metrics
from recommender.ngram_head import HEAD_FILE, NgramHead
from recommender.placement import decide
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


def _encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


def train(options: TrainOptions) -> Path:
    """Train the emotion model described by ``options`` and save it in ``options.output_dir``."""
    import torch
    from transformers import ElectraForMaskedLM, ElectraForSequenceClassification

    from recommender.training import loops
    from recommender.training.tokenizer import save_tokenizer, train_tokenizer

    options = options.resolved()
    hp = options.hyperparameters()
    placement = decide(options.device, options.num_threads, backend="torch")
    device_name = placement.device
    device = torch.device(device_name)
    if options.num_threads is not None:
        torch.set_num_threads(options.num_threads)
    _seed_everything(options.seed, device_name)
    started = time.monotonic()
    timings: dict[str, float] = {}

    corpus = datasets.load_corpus(
        options.data_dir,
        options.diary_dir,
        weights={"diary": options.diary_weight, "chatbot": options.chatbot_weight},
        max_open_rows=options.max_open_rows,
        seed=options.seed,
    )
    if options.init_from is not None:
        tokenizer, classifier = _load_initial(options.init_from)
        unlabelled: list[str] = []
        pad_id = tokenizer.pad_token_id
    else:
        logger.info("reading unlabelled reviews from %s", options.data_dir / datasets.REVIEWS)
        reviews = list(datasets.iter_reviews(options.data_dir, options.max_reviews))
        unlabelled = reviews + corpus.train.texts
        logger.info("%d unlabelled texts, %d training rows", len(unlabelled), len(corpus.train))
        tokenizer = train_tokenizer(
            unlabelled, vocab_size=hp.vocab_size, model_max_length=hp.max_positions
        )
        logger.info("tokenizer: %d tokens", len(tokenizer))
        pad_id = tokenizer.pad_token_id
        config = build_config(hp, len(tokenizer), pad_id)
        torch.manual_seed(options.seed)
        classifier = ElectraForSequenceClassification(config)
    timings["tokenizer_s"] = time.monotonic() - started
    pretrain_steps_done = 0
    if hp.pretrain_steps and options.init_from is None:
        mlm = ElectraForMaskedLM(config).to(device)  # type: ignore[arg-type]
        sequences = _encode(tokenizer, unlabelled, hp.pretrain_max_length)
        sequences = [s for s in sequences if len(s) > 3]
        t0 = time.monotonic()
        pretrain_steps_done = loops.pretrain_mlm(
            mlm,
            sequences,
            steps=hp.pretrain_steps,
            schedule_steps=options.pretrain_schedule_steps,
            batch_size=hp.pretrain_batch_size,
            learning_rate=hp.pretrain_learning_rate,
            pad_id=pad_id,
            mask_id=tokenizer.mask_token_id,
            special_ids=[tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens],
            vocab_size=len(tokenizer),
            device=device,
            seed=options.seed,
            time_budget_s=options.pretrain_time_budget_s,
            progress=options.progress,
        )
        timings["pretrain_s"] = time.monotonic() - t0
        classifier.electra.load_state_dict(mlm.electra.state_dict())
        del mlm, sequences
    classifier.to(device)

    train_ids = _encode(tokenizer, corpus.train.texts, hp.max_length)
    dev_sets = {name: s.as_labelled() for name, s in corpus.dev.items()}
    dev_ids = {name: _encode(tokenizer, s.texts, hp.max_length) for name, s in dev_sets.items()}

    def dev_probabilities(model) -> dict[str, np.ndarray]:
        return {
            name: _softmax(loops.predict_logits(model, ids, pad_id=pad_id, device=device))
            for name, ids in dev_ids.items()
        }

    def dev_scores(model) -> dict[str, float]:
        return {
            name: compute_metrics(probs, dev_sets[name].labels).macro_f1
            for name, probs in dev_probabilities(model).items()
        }

    def score(model) -> float:
        scores = dev_scores(model)
        logger.info("dev macro-F1: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        return float(np.mean(list(scores.values())))

    cw = class_weights(corpus.train.targets, corpus.train.weights, options.class_weight_power)
    logger.info("class weights: %s", dict(zip(EMOTIONS, cw.round(3).tolist(), strict=True)))
    t0 = time.monotonic()
    best_epoch, best_score, history = loops.fine_tune(
        classifier,
        train_ids,
        corpus.train.targets,
        corpus.train.weights,
        class_weights=cw,
        epochs=hp.epochs,
        schedule_epochs=options.schedule_epochs,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        patience=options.patience,
        pad_id=pad_id,
        device=device,
        seed=options.seed,
        score=score,
        time_budget_s=options.finetune_time_budget_s,
        progress=options.progress,
    )
    timings["finetune_s"] = time.monotonic() - t0

    # Calibrate on every dev row's soft target, then fold 1/T into the output layer.
    all_dev = datasets.concat(corpus.dev.values())
    dev_logits = loops.predict_logits(
        classifier,
        _encode(tokenizer, all_dev.texts, hp.max_length),
        pad_id=pad_id,
        device=device,
    )
    temperature = loops.fit_temperature(dev_logits, all_dev.targets)
    logger.info("temperature %.3f", temperature)
    with torch.no_grad():
        classifier.classifier.out_proj.weight.div_(temperature)
        classifier.classifier.out_proj.bias.div_(temperature)
    final_scores = dev_scores(classifier)
    head, head_record = None, None
    if options.ngram_head:
        t0 = time.monotonic()
        head, head_record = fit_ngram_head(
            corpus.full_train, dev_sets, dev_probabilities(classifier), seed=options.seed
        )
        timings["ngram_head_s"] = time.monotonic() - t0

    output = options.output_dir
    output.mkdir(parents=True, exist_ok=True)
    classifier.to("cpu").to(torch.float32)
    classifier.save_pretrained(output)
    save_tokenizer(tokenizer, output)
    (output / HEAD_FILE).unlink(missing_ok=True)  # from an earlier run into the same directory
    if head is not None:
        head.save(output)
    timings["total_s"] = time.monotonic() - started
    record = {
        "options": options.to_json(),
        "device": device_name,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "pretrain_steps_done": pretrain_steps_done,
        "epochs_done": len(history),
        "best_epoch": best_epoch,
        "dev_score_history": [round(s, 4) for s in history],
        "dev_macro_f1": {k: round(v, 4) for k, v in final_scores.items()},
        "ngram_head": head_record,
        "dev_score": round(best_score, 4),
        "temperature": round(temperature, 4),
        "class_weights": dict(zip(EMOTIONS, cw.round(4).tolist(), strict=True)),
        "training_rows": len(corpus.train),
        "unlabelled_texts": len(unlabelled),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "data_files": {
            name: {"path": path.name, "sha256": sha256_file(path)}
            for name, path in {
                **corpus.files,
                "reviews": options.data_dir / datasets.REVIEWS,
            }.items()
        },
    }
    (output / "training_args.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    logger.info("saved %s in %.0f s", output, timings["total_s"])
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
                (1 - weight) * encoder_dev[name] + weight * head_dev[name], data.labels
            ).macro_f1
            for name, data in dev_sets.items()
        }
    best = max(HEAD_WEIGHTS, key=lambda w: (round(np.mean(list(by_weight[w].values())), 6), -w))
    # Two calibrated readings averaged are under-confident: a temperature for the mix, fitted
    # like the encoder's on every dev row's soft target (argmax, so macro-F1, unchanged).
    mixed = np.concatenate(
        [(1 - best) * encoder_dev[name] + best * head_dev[name] for name in dev_sets]
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


def _load_initial(directory: Path):  # -> (tokenizer, ElectraForSequenceClassification)
    from transformers import AutoTokenizer, ElectraForSequenceClassification

    from recommender.errors import ModelLoadError
    from recommender.model_safety import check_model_dir

    check_model_dir(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
        model = ElectraForSequenceClassification.from_pretrained(directory, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot start training from {directory}: {exc}") from exc
    id2label = {int(i): str(name) for i, name in (model.config.id2label or {}).items()}
    labels = [id2label.get(i) for i in range(len(id2label))]
    if labels != list(EMOTIONS):
        raise ModelLoadError(
            f"{directory} has labels {labels}; training needs {', '.join(EMOTIONS)} in that order"
        )
    return tokenizer, model


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
