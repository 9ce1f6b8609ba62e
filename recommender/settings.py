"""Every ``RECOMMENDER_*`` setting, read from the environment in this one place.

The API, the CLI and the library take a :class:`Settings` object and pass it down; nothing else
reads these variables. A value that cannot be used is a one-line :class:`ConfigurationError`
naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recommender.errors import ConfigurationError

ENV_PREFIX = "RECOMMENDER_"
Backend = Literal["torch", "onnx"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx")
LogFormat = Literal["text", "json"]


class Settings(BaseSettings):
    """The service's configuration; ``None`` means "decide from the machine or the files"."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    # The model: a checkpoint directory, an ONNX export directory or a hub id (None: bundled).
    model: str | None = None
    # The backend (None: ONNX Runtime for an export directory and for the bundled model on a
    # CPU, PyTorch otherwise).
    engine: Backend | None = None
    device: str | None = None
    # Intra-op threads for the model and FAISS (None: every core this process may use).
    threads: int | None = Field(default=None, ge=1, le=1024)
    index: str | None = None
    # HTTP limits.
    max_content_length: int = Field(default=64 * 1024, ge=1)
    max_text_length: int = Field(default=5000, ge=1)
    max_texts: int = Field(default=64, ge=1)
    max_k: int = Field(default=100, ge=1)
    default_k: int = Field(default=10, ge=1)
    # The sentence splitter (Kiwi, ~0.5 GB): "warm" loads it with the model, "lazy" on the first
    # request with sentence detail or focus "end" (which then waits a few seconds).
    sentences: Literal["warm", "lazy"] = "warm"
    # Characters one /classify request may hold in all texts (413 too_much_work above).
    classify_budget: int = Field(default=20_000, ge=1)
    # Serving (`recommender serve`; README, "Operating it"): seconds from a request's first
    # byte to its last (408 after), requests computing at once in each worker, seconds between
    # looks at the index's manifest for a rebuilt index (0: never), and the log format.
    read_timeout: float = Field(default=10.0, gt=0, le=600)
    compute_slots: int = Field(default=1, ge=1, le=64)
    reload_interval: float = Field(default=5.0, ge=0, le=3600)
    log_format: LogFormat = "text"
    # Training data (`recommender train`).
    data_dir: Path | None = None
    diary_dir: Path | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        from recommender.placement import check_device

        return None if value is None else check_device(value)

    @model_validator(mode="after")
    def _default_k_within_max_k(self) -> Settings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) is above max_k ({self.max_k})")
        return self

    @classmethod
    def from_env(cls) -> Settings:
        """The settings the environment gives, or ConfigurationError naming the variable."""
        try:
            return cls()
        except ValidationError as error:
            raise ConfigurationError(describe(error, ENV_PREFIX)) from None

    def replace(self, **overrides: Any) -> Settings:
        """These settings with the values in ``overrides`` that are not ``None`` (an option
        given on the command line or in code wins over the environment)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        try:
            return type(self).model_validate({**self.model_dump(), **given})
        except ValidationError as error:
            raise ConfigurationError(describe(error)) from None

    def as_config(self) -> dict[str, Any]:
        """Upper-case keys, as Flask's configuration holds them."""
        return {name.upper(): value for name, value in self.model_dump().items()}

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of a setting."""
        if field not in cls.model_fields:
            raise KeyError(field)
        return ENV_PREFIX + field.upper()


def describe(error: ValidationError, prefix: str = "") -> str:
    """One line naming each unusable setting (as its variable when read from the environment)."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if not field:  # a check across settings
            parts.append(message)
            continue
        name = prefix + field.upper() if prefix else f"setting {field!r}"
        parts.append(f"{name}={item['input']!r} is not usable: {message}")
    return "; ".join(parts)
