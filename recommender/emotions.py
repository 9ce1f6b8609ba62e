"""The six emotions, their canonical order, and mapping a checkpoint's labels onto them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from recommender.errors import InvalidInputError, ModelLoadError

EMOTIONS: tuple[str, ...] = ("angry", "anxious", "embarrassed", "happy", "heartache", "sad")
KOREAN_NAMES: dict[str, str] = {
    "angry": "분노",
    "anxious": "불안",
    "embarrassed": "당황",
    "happy": "행복",
    "heartache": "상처",
    "sad": "슬픔",
}

# Names a checkpoint's id2label may use for each emotion (compared case-insensitively).
_ALIASES: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "분노", "화남"),
    "anxious": ("anxious", "anxiety", "fear", "불안", "걱정"),
    "embarrassed": ("embarrassed", "embarrassment", "당황", "놀람"),
    "happy": ("happy", "happiness", "joy", "행복", "기쁨", "행복/기쁨", "기쁨/행복"),
    "heartache": ("heartache", "hurt", "상처"),
    "sad": ("sad", "sadness", "슬픔"),
}
_LOOKUP = {alias.casefold(): emotion for emotion, names in _ALIASES.items() for alias in names}
_GENERIC = re.compile(r"label_(\d+)")


def canonical_name(label: str) -> str | None:
    """The canonical emotion a label names, or None if it names none."""
    return _LOOKUP.get(label.strip().casefold())


def label_order(id2label: Mapping[int, str] | Mapping[str, str]) -> np.ndarray:
    """Logit column of each canonical emotion, so that ``logits[:, order]`` is canonical.

    Accepts English or Korean names in any case, or generic ``LABEL_0..5`` read in the
    reference model's order. Anything else is refused with a message naming what was found.
    """
    labels = {int(i): str(name) for i, name in id2label.items()}
    found = ", ".join(f"{i}: {labels[i]!r}" for i in sorted(labels))
    if sorted(labels) != list(range(len(EMOTIONS))):
        raise ModelLoadError(
            f"the checkpoint has {len(labels)} labels ({found}); "
            f"an emotion model needs exactly six: {', '.join(EMOTIONS)}"
        )
    generic = [_GENERIC.fullmatch(labels[i].strip().casefold()) for i in sorted(labels)]
    column: dict[str, int] = {}
    for i, name in labels.items():
        match = generic[i] if all(generic) else None
        if match is not None:
            emotion = EMOTIONS[int(match.group(1))] if int(match.group(1)) < len(EMOTIONS) else None
        else:
            emotion = canonical_name(name)
        if emotion is not None:
            column.setdefault(emotion, i)
    if len(column) != len(EMOTIONS) or len(set(column.values())) != len(labels):
        missing = [e for e in EMOTIONS if e not in column]
        raise ModelLoadError(
            f"cannot map the checkpoint's labels ({found}) onto {', '.join(EMOTIONS)}; "
            f"unmapped: {', '.join(missing)}"
        )
    return np.array([column[emotion] for emotion in EMOTIONS])


def as_mapping(vector: Sequence[float] | np.ndarray, digits: int = 4) -> dict[str, float]:
    """A probability vector as ``{emotion: probability}`` in canonical order."""
    return {emotion: round(float(p), digits) for emotion, p in zip(EMOTIONS, vector, strict=True)}


def parse_emotion(name: str) -> str:
    """A canonical emotion from an English or Korean name, or InvalidInputError."""
    emotion = canonical_name(name) if isinstance(name, str) else None
    if emotion is None:
        raise InvalidInputError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
    return emotion


def strongest(vector: Sequence[float] | np.ndarray) -> str:
    """The strongest emotion of a distribution in Korean with its share: "행복 83%"."""
    i = int(np.argmax(vector))
    return f"{KOREAN_NAMES[EMOTIONS[i]]} {float(vector[i]):.0%}"
