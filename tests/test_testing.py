"""The models tests and benchmarks are built on."""

from __future__ import annotations

import numpy as np

from recommender.classifier import EmotionClassifier, EmotionModel
from recommender.testing import FAKE_CUES, FakeClassifier, save_tiny_checkpoint


def test_fake_classifier_satisfies_the_model_protocol_and_reads_its_cues():
    fake = FakeClassifier()
    assert isinstance(fake, EmotionModel)
    probs = fake.predict_proba([FAKE_CUES["sad"][0], FAKE_CUES["happy"][0], "아무 말"])
    assert probs.shape == (3, 6) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert probs[:2].argmax(axis=1).tolist() == [5, 3]
    np.testing.assert_array_equal(fake.predict_proba(["아무 말"])[0], probs[2])


def test_tiny_checkpoint_weights_are_seeded_and_it_loads_as_the_model_protocol(
    tmp_path, tiny_classifier
):
    import torch

    again = EmotionClassifier.from_pretrained(
        save_tiny_checkpoint(tmp_path / "again"), device="cpu"
    )
    assert isinstance(again, EmotionModel)
    # The weights repeat; the WordPiece vocabulary's ids may not (ties in its training).
    for name, tensor in tiny_classifier.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor), name
