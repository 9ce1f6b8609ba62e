"""Errors a user can fix. The CLI prints them as one line; the API returns them as 4xx JSON."""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class for problems caused by input, configuration or files, not by bugs."""

    code = "recommender_error"
    status = 400


class InvalidInputError(RecommenderError, ValueError):
    """Texts, parameters or request fields that are not valid."""

    code = "invalid_input"


class ConfigurationError(RecommenderError, ValueError):
    """A ``RECOMMENDER_*`` environment variable (or setting) whose value cannot be used."""

    code = "invalid_configuration"


class TrackNotFoundError(InvalidInputError):
    """A track id that the loaded index does not hold."""

    code = "track_not_found"
    status = 404


class ModelLoadError(RecommenderError):
    """A model that cannot be found, downloaded or mapped onto the six emotions."""

    code = "model_unavailable"
    status = 503


class CatalogueError(RecommenderError):
    """A catalogue file that cannot be read or lacks what indexing needs."""

    code = "invalid_catalogue"


class IndexLoadError(RecommenderError):
    """An index directory that is missing, corrupt, or built with another model."""

    code = "index_unavailable"
    status = 503


class IndexWriteError(RecommenderError):
    """An index directory that cannot be written now (another run is writing it)."""

    code = "index_busy"
    status = 409


class DatasetError(RecommenderError):
    """A labelled data file for training or evaluation that cannot be used."""

    code = "invalid_dataset"
