"""A character n-gram reader whose probabilities are mixed into a checkpoint's.

A checkpoint directory may carry ``ngram_head.npz`` beside its encoder: a character 2–4-gram
TF-IDF + logistic regression model trained on the soft targets of every training row (also when
the encoder fine-tuned on a sample of them: the head is cheap to fit), and the share its
probabilities get in the mix (chosen on the development sets by ``recommender train``). The
small encoder carries meaning across domains; the n-grams catch the everyday wording of diary
text that it misses. Both engines apply it the same way, and it is part of the checkpoint's
fingerprint.

The mix is sharpened by a temperature fitted on the development sets too (averaging two calibrated
readings is under-confident). The file holds plain arrays (vocabulary, idf, coefficients,
intercepts, weight, temperature): loading it runs no pickled code.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recommender.emotions import EMOTIONS
from recommender.errors import ModelLoadError
from recommender.windowing import softmax

HEAD_FILE = "ngram_head.npz"
NGRAM_RANGE = (2, 4)
# An absent class (none of its rows in training) gets this logit: probability ~0.
ABSENT_LOGIT = -30.0


def _vectorizer(vocabulary: dict[str, int] | None = None, max_features: int | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAM_RANGE,
        sublinear_tf=True,
        min_df=1 if vocabulary is not None else 2,
        max_features=max_features,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


class NgramHead:
    """TF-IDF features, linear logits in canonical emotion order, and the mixing weight."""

    def __init__(
        self,
        vectorizer,
        coef: np.ndarray,
        intercept: np.ndarray,
        weight: float = 0.0,
        temperature: float = 1.0,
        digest: str | None = None,
    ) -> None:
        if coef.shape[0] != len(EMOTIONS) or intercept.shape != (len(EMOTIONS),):
            raise ModelLoadError(f"n-gram head has {coef.shape[0]} classes; need {len(EMOTIONS)}")
        self.vectorizer = vectorizer
        self.coef = coef.astype(np.float32)
        # (features, 6), contiguous: a sparse row times it reads it once, without a copy.
        self._by_feature = np.ascontiguousarray(self.coef.T)
        self.intercept = intercept.astype(np.float32)
        self.weight = float(weight)
        # Applied to the mix: mixing two calibrated readings leaves it under-confident.
        self.temperature = float(temperature)
        # sha256 of the file it was loaded from (part of the checkpoint's fingerprint).
        self.digest = digest

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        targets: np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        max_features: int = 300_000,
        seed: int = 13,
    ) -> NgramHead:
        """Fit on ``(n, 6)`` soft targets or ``(n,)`` canonical label indices (weight 0 until
        :meth:`with_weight`).

        A soft row counts once per class it has mass in, weighted by that share: the logistic
        regression then minimises the cross-entropy against the soft targets.
        """
        from sklearn.linear_model import LogisticRegression

        targets = np.asarray(targets)
        if targets.ndim == 1:
            targets = np.eye(len(EMOTIONS))[targets]
        weights = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight)
        rows, classes = np.nonzero(targets > 0)
        vectorizer = _vectorizer(max_features=max_features)
        features = vectorizer.fit_transform(list(texts))
        model = LogisticRegression(C=4.0, max_iter=3000, random_state=seed)
        model.fit(features[rows], classes, sample_weight=weights[rows] * targets[rows, classes])
        coef = np.zeros((len(EMOTIONS), features.shape[1]), dtype=np.float32)
        intercept = np.full(len(EMOTIONS), ABSENT_LOGIT, dtype=np.float32)
        if len(model.classes_) == 2:  # binary: one row of coefficients, for classes_[1]
            negative, positive = model.classes_
            coef[positive], intercept[positive] = model.coef_[0], model.intercept_[0]
            intercept[negative] = 0.0
        else:
            coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
        return cls(vectorizer, coef, intercept)

    def with_weight(self, weight: float, temperature: float = 1.0) -> NgramHead:
        """This head with its share of the mix, and the mix's temperature (see :meth:`mix`)."""
        return NgramHead(self.vectorizer, self.coef, self.intercept, weight, temperature)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 6)`` float64 probabilities of the n-gram model alone."""
        logits = self.vectorizer.transform(list(texts)) @ self._by_feature + self.intercept
        return softmax(np.asarray(logits, dtype=np.float64))

    def mix(self, probabilities: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``probabilities`` (the encoder's, canonical order) mixed with this head's:
        ``softmax(log((1 - w) p + w head) / T)``."""
        if not self.weight or not len(texts):
            return probabilities
        mixed = mix_probabilities(
            probabilities, self.predict_proba(texts), self.weight, self.temperature
        )
        return mixed.astype(probabilities.dtype)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        vocabulary = self.vectorizer.vocabulary_
        terms = np.array(sorted(vocabulary, key=vocabulary.__getitem__))
        path = Path(directory) / HEAD_FILE
        np.savez_compressed(
            path,
            terms=terms,
            idf=self.vectorizer.idf_.astype(np.float32),
            coef=self.coef.astype(np.float16),
            intercept=self.intercept,
            weight=np.float32(self.weight),
            temperature=np.float32(self.temperature),
        )
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> NgramHead | None:
        """The head saved in ``directory``, or ``None`` when it has none."""
        path = Path(directory) / HEAD_FILE
        if not path.is_file():
            return None
        try:
            data = path.read_bytes()  # read once: loaded and digested from the same bytes
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                terms, idf = arrays["terms"], arrays["idf"]
                coef, intercept = arrays["coef"], arrays["intercept"]
                weight = float(arrays["weight"])
                # Heads saved before the mix had a temperature: 1.
                temperature = float(arrays["temperature"]) if "temperature" in arrays else 1.0
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"cannot read the n-gram head {str(path)!r}: {error}") from None
        if coef.shape[1:] != terms.shape or idf.shape != terms.shape:
            raise ModelLoadError(f"n-gram head {str(path)!r}: arrays disagree in size")
        vectorizer = _vectorizer({str(t): i for i, t in enumerate(terms)})
        vectorizer.idf_ = idf
        return cls(
            vectorizer, coef, intercept, weight, temperature, hashlib.sha256(data).hexdigest()
        )


def mix_probabilities(
    encoder: np.ndarray, head: np.ndarray, weight: float, temperature: float = 1.0
) -> np.ndarray:
    """The encoder's and the head's probabilities mixed: ``softmax(log((1 - w) p + w h) / T)``
    (what :meth:`NgramHead.mix` serves, and what training chooses ``w`` and ``T`` on)."""
    return sharpen((1 - weight) * encoder + weight * head, temperature)


def sharpen(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row: sharper below 1, flatter above, argmax unchanged."""
    if temperature == 1.0:
        return probabilities
    return softmax(np.log(np.maximum(probabilities, 1e-12)) / temperature)


def combined_fingerprint(fingerprint: str, head: NgramHead | None) -> str:
    """A model's fingerprint extended by its head's file digest (unchanged without a head
    loaded from a file)."""
    if head is None or head.digest is None:
        return fingerprint
    return hashlib.sha256(f"{fingerprint}:{head.digest}".encode()).hexdigest()[:16]
