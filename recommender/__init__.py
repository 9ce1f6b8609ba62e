"""Emotion-based music recommendation for Korean text."""

from recommender.classifier import EmotionClassifier, EmotionModel, load_classifier
from recommender.emotions import EMOTIONS
from recommender.errors import (
    CatalogueError,
    ConfigurationError,
    DatasetError,
    IndexLoadError,
    InvalidInputError,
    ModelLoadError,
    RecommenderError,
)
from recommender.indexing import build_index, read_catalogue
from recommender.onnx_engine import OnnxEmotionClassifier
from recommender.onnx_export import export_onnx
from recommender.service import Recommendation, Recommender
from recommender.settings import Settings
from recommender.track_index import TrackIndex

__all__ = [
    "EMOTIONS",
    "CatalogueError",
    "ConfigurationError",
    "DatasetError",
    "EmotionClassifier",
    "EmotionModel",
    "IndexLoadError",
    "InvalidInputError",
    "ModelLoadError",
    "OnnxEmotionClassifier",
    "Recommendation",
    "Recommender",
    "RecommenderError",
    "Settings",
    "TrackIndex",
    "build_index",
    "export_onnx",
    "load_classifier",
    "read_catalogue",
]
