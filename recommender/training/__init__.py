"""Training the bundled emotion model from the openly licensed data (see the model card)."""

from __future__ import annotations

from typing import Any

from recommender.training.options import PRESETS, TrainOptions

__all__ = ["PRESETS", "TrainOptions", "train"]


def __getattr__(name: str) -> Any:
    # ``train`` pulls in torch, pandas and scikit-learn: load it only when it is used, so that
    # the CLI can read TrainOptions for its --help without that cost.
    if name == "train":
        from recommender.training.train import train

        return train
    raise AttributeError(name)
