"""Training options and the presets that fill in what the options leave unset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

Preset = Literal["tiny", "small"]


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``train`` needs. ``None`` means "the preset's value".

    ``tiny`` is for tests (seconds on a CPU); ``small`` is the bundled model.
    """

    data_dir: Path
    output_dir: Path
    diary_dir: Path | None = None
    # The team's explicit-vocabulary set (train*.tsv) and lyric-register stanzas
    # (train*.jsonl): each training file cut 85/15 into train and dev on its own.
    explicit_dir: Path | None = None
    lyrics_dir: Path | None = None
    seed: int = 13
    device: str | None = None
    preset: Preset = "small"
    # Start from an existing checkpoint (its tokenizer and weights): no tokenizer training and
    # no pre-training, only fine-tuning and calibration.
    init_from: Path | None = None
    # Cap on the open-data rows the encoder fine-tunes on (a seeded sample); the diary rows are
    # always kept, and the n-gram head always fits on every row.
    max_open_rows: int | None = None
    # Model shape.
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    max_positions: int | None = None
    # Masked-LM pre-training on the unlabelled reviews (0 skips it).
    pretrain_steps: int | None = None
    pretrain_batch_size: int | None = None
    pretrain_max_length: int | None = None
    pretrain_learning_rate: float | None = None
    pretrain_time_budget_s: float | None = None
    # Length of the learning-rate schedule when it differs from the steps/epochs run (to replay
    # a run that a time budget stopped early); None means the same as pretrain_steps/epochs.
    pretrain_schedule_steps: int | None = None
    max_reviews: int | None = None
    # Fine-tuning.
    epochs: int | None = None
    batch_size: int | None = None
    max_length: int | None = None
    learning_rate: float | None = None
    finetune_time_budget_s: float | None = None
    schedule_epochs: int | None = None
    patience: int = 2
    class_weight_power: float = 0.5
    # A character n-gram TF-IDF + logistic regression head fitted on every training row's soft
    # target, mixed into the encoder's probabilities with the weight that scores best on the dev
    # sets.
    ngram_head: bool = True
    diary_weight: float = 3.0
    explicit_weight: float = 3.0
    lyrics_weight: float = 3.0
    # Also train on song-length rows of this many same-label training stanzas joined (1: off):
    # stanzas are short, the catalogue's songs are not.
    lyrics_join: int = 1
    chatbot_weight: float = 0.5
    num_threads: int | None = None
    progress: bool = True

    def resolved(self) -> TrainOptions:
        """These options with every ``None`` taken from the preset."""
        preset = PRESETS[self.preset]
        values = {
            f.name: preset[f.name]
            for f in fields(self)
            if getattr(self, f.name) is None and f.name in preset
        }
        return replace(self, **values)

    def hyperparameters(self) -> Hyperparameters:
        """The preset-filled model and optimisation sizes, none of them None."""
        resolved = self.resolved()
        return Hyperparameters(
            **{f.name: getattr(resolved, f.name) for f in fields(Hyperparameters)}
        )

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Hyperparameters:
    vocab_size: int
    hidden_size: int
    num_layers: int
    max_positions: int
    pretrain_steps: int
    pretrain_batch_size: int
    pretrain_max_length: int
    pretrain_learning_rate: float
    epochs: int
    batch_size: int
    max_length: int
    learning_rate: float


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "vocab_size": 400,
        "hidden_size": 32,
        "num_layers": 2,
        "max_positions": 64,
        "pretrain_steps": 4,
        "pretrain_batch_size": 8,
        "pretrain_max_length": 32,
        "pretrain_learning_rate": 1e-3,
        "max_reviews": 200,
        "epochs": 2,
        "batch_size": 8,
        "max_length": 32,
        "learning_rate": 1e-3,
    },
    "small": {
        "vocab_size": 20000,
        "hidden_size": 256,
        "num_layers": 6,
        "max_positions": 256,
        "pretrain_steps": 8000,
        "pretrain_batch_size": 512,
        "pretrain_max_length": 64,
        "pretrain_learning_rate": 5e-4,
        "epochs": 10,
        "batch_size": 64,
        "max_length": 128,
        "learning_rate": 2e-4,
    },
}
