"""The optimisation loops: masked-LM pre-training, soft-target fine-tuning, temperature fitting.

Predictions on development sets are not made here: they go through the shipped classifier
(:mod:`recommender.training.train`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def autocast(device: torch.device) -> AbstractContextManager[object]:
    """bf16 autocast on CUDA; full precision on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest; returns (input_ids, attention_mask)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of similar length: shuffle, sort within pools of 50 batches, shuffle."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def linear_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.06
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from ``1 / warm`` of the rate, then linear decay to 0. Fine-tuning keeps
    this one rather than transformers' (which starts at 0) so that the bundled model's
    fine-tuning stages replay as they ran."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def pretrain_mlm(
    model: nn.Module,
    sequences: list[list[int]],
    *,
    tokenizer: Any,
    steps: int,
    batch_size: int,
    learning_rate: float,
    device: torch.device,
    seed: int,
    schedule_steps: int | None = None,
    time_budget_s: float | None = None,
    progress: bool = True,
) -> int:
    """Masked-LM training on ``sequences`` (BERT masking by transformers' collator, linear
    warm-up and decay by its schedule); returns the number of steps taken."""
    from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    total = schedule_steps or steps
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, int(total * 0.06)), total)
    lengths = [len(s) for s in sequences]
    batches: list[np.ndarray] = []
    model.train()
    start = time.monotonic()
    bar = tqdm(total=steps, desc="pre-training", disable=not progress, mininterval=5)
    step = 0
    while step < steps:
        if not batches:
            batches = length_batches(lengths, batch_size, rng)
        batch = collate([{"input_ids": sequences[i]} for i in batches.pop()])
        if not (batch["labels"] != -100).any():
            continue
        with autocast(device):
            out = model(**{k: v.to(device) for k, v in batch.items()})
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        if step % 200 == 0:
            bar.set_postfix(loss=f"{out.loss.item():.3f}")
            logger.info("pre-training step %d/%d loss %.4f", step, steps, out.loss.item())
        if time_budget_s is not None and time.monotonic() - start > time_budget_s:
            logger.warning("pre-training stopped by its time budget after %d steps", step)
            break
    bar.close()
    return step


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, class_weights: torch.Tensor
) -> torch.Tensor:
    """Row-weighted mean of -sum_c w_c t_c log p_c."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    per_row = -(targets * class_weights * log_p).sum(dim=-1)
    return (per_row * weights).sum() / weights.sum()


def fine_tune(
    model: nn.Module,
    sequences: list[list[int]],
    targets: np.ndarray,
    weights: np.ndarray,
    *,
    class_weights: np.ndarray,
    epochs: int,
    schedule_epochs: int | None = None,
    batch_size: int,
    learning_rate: float,
    patience: int,
    pad_id: int,
    device: torch.device,
    seed: int,
    score: Callable[[nn.Module], float],
    time_budget_s: float | None = None,
    progress: bool = True,
) -> tuple[int, float, list[float]]:
    """Soft-target fine-tuning with early stopping on ``score`` (higher is better).

    Restores the best epoch's weights; returns (best epoch, best score, score per epoch).
    """
    rng = np.random.default_rng(seed)
    lengths = [len(s) for s in sequences]
    steps_per_epoch = math.ceil(len(sequences) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    scheduler = linear_schedule(
        optimizer, steps_per_epoch * (schedule_epochs or epochs), warmup=0.1
    )
    cw = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_epoch, best_score, history = 0, -math.inf, []
    start = time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        batches = length_batches(lengths, batch_size, rng)
        for rows in tqdm(batches, desc=f"epoch {epoch}", disable=not progress, mininterval=5):
            ids, attention = pad([sequences[i] for i in rows], pad_id)
            with autocast(device):
                logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
            loss = soft_cross_entropy(
                logits,
                torch.as_tensor(targets[rows], device=device),
                torch.as_tensor(weights[rows], device=device),
                cw,
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        current = score(model)
        history.append(current)
        logger.info("epoch %d: dev score %.4f", epoch, current)
        if current > best_score:
            best_epoch, best_score = epoch, current
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= patience:
            logger.info("early stopping after epoch %d (best %d)", epoch, best_epoch)
            break
        if time_budget_s is not None and time.monotonic() - start > time_budget_s:
            logger.warning("fine-tuning stopped by its time budget after epoch %d", epoch)
            break
    model.load_state_dict(best_state)
    return best_epoch, best_score, history


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising soft-target cross-entropy of ``logits / T`` (grid search)."""
    logits = logits.astype(np.float64)

    def loss(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-(targets * log_p).sum(axis=1).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 141))
    best = min(grid, key=loss)
    fine = np.linspace(best / 1.03, best * 1.03, 41)
    return float(min(fine, key=loss))
