"""Emotion-based music recommendation for Korean text."""

from recommender.classifier import EmotionClassifier, EmotionModel
from recommender.emotions import EMOTIONS
from recommender.errors import (
    CatalogueError,
    DatasetError,
    IndexLoadError,
    InvalidInputError,
    ModelLoadError,
    RecommenderError,
)
from recommender.indexing import build_index, read_catalogue
from recommender.service import Recommendation, Recommender
from recommender.track_index import TrackIndex

__all__ = [
    "EMOTIONS",
    "CatalogueError",
    "DatasetError",
    "EmotionClassifier",
    "EmotionModel",
    "IndexLoadError",
    "InvalidInputError",
    "ModelLoadError",
    "Recommendation",
    "Recommender",
    "RecommenderError",
    "TrackIndex",
    "build_index",
    "read_catalogue",
]
