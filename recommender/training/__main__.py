"""``python -m recommender.training ...`` is ``recommender train ...``."""

from recommender.cli import train

train(prog_name="python -m recommender.training")
