"""Checks on the texts a model is asked to read: a list of non-blank, valid Unicode strings."""

from __future__ import annotations

from collections.abc import Sequence

from recommender.errors import InvalidInputError


def check_text(text: object, name: str = "text") -> str:
    """One text, or InvalidInputError naming it: not a string, blank, or not valid Unicode."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} is {type(text).__name__}, not a string")
    if not text.strip():
        raise InvalidInputError(f"{name} is empty or whitespace only")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON "\ud800", undecodable argv bytes
        raise InvalidInputError(
            f"{name} is not valid Unicode: it contains a lone surrogate"
        ) from None
    return text


def validate_texts(texts: Sequence[str], *, max_texts: int | None = None) -> list[str]:
    """The texts as a list, or InvalidInputError saying which one is unusable and why."""
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError("expected a list of texts, got a single string; wrap it: [text]")
    if not isinstance(texts, Sequence):
        raise InvalidInputError(f"expected a list of texts, got {type(texts).__name__}")
    if max_texts is not None and len(texts) > max_texts:
        raise InvalidInputError(f"too many texts: {len(texts)} (at most {max_texts})")
    for i, text in enumerate(texts):
        check_text(text, f"text {i}")
    return list(texts)
