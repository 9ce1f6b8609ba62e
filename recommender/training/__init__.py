"""Training the bundled emotion model from the openly licensed data (see the model card)."""

from __future__ import annotations

from recommender.training.options import PRESETS, TrainOptions
from recommender.training.train import train

__all__ = ["PRESETS", "TrainOptions", "train"]
