from __future__ import annotations

import numpy as np
import pytest

from recommender import sentences
from recommender.emotions import EMOTIONS
from recommender.sentences import END_DECAY, read_arcs, split

DAY = (
    "아침엔 시험이 걱정됐다. 그런데 결과가 좋아서 행복했다! 저녁엔 친구가 약속을 어겨서 화가 났다."
)


def pieces(text: str) -> list[str]:
    return [text[a:b] for a, b in split(text)]


def test_split_at_punctuation():
    assert pieces(DAY) == [
        "아침엔 시험이 걱정됐다.",
        "그런데 결과가 좋아서 행복했다!",
        "저녁엔 친구가 약속을 어겨서 화가 났다.",
    ]


def test_split_without_punctuation_by_sentence_endings():
    text = "오늘 아침에 늦잠을 잤다 그래서 지각했다 선생님께 혼났다"
    assert len(pieces(text)) >= 2
    assert "".join(pieces(text)).replace(" ", "") == text.replace(" ", "")


def test_offsets_count_code_points():
    text = "😀 오늘은 정말 좋았다. 🌧️ 그런데 밤엔 슬펐다."
    spans = split(text)
    assert [text[a:b] for a, b in spans] == ["😀 오늘은 정말 좋았다.", "🌧️ 그런데 밤엔 슬펐다."]
    assert spans[1][0] == text.index("🌧")


def test_text_without_a_sentence_is_one_piece():
    assert pieces("  ...  ") == ["..."]


def test_kiwi_is_loaded_once():
    sentences.warm()
    first = sentences.splitter()
    assert sentences.splitter() is first


def test_whole_focus_reads_the_text_as_before(fake_classifier):
    arc = read_arcs(fake_classifier, [DAY])[0]
    np.testing.assert_allclose(arc.reading, fake_classifier.predict_proba([DAY])[0], atol=1e-6)
    assert arc.focus == "whole"
    assert [s.text for s in arc.sentences] == pieces(DAY)
    for s in arc.sentences:
        assert DAY[s.start : s.end] == s.text
    tops = [max(s.emotions, key=s.emotions.__getitem__) for s in arc.sentences]
    assert tops == ["anxious", "happy", "angry"]
    lengths = np.array([len(s.text) for s in arc.sentences])
    np.testing.assert_allclose([s.weight for s in arc.sentences], lengths / lengths.sum())
    assert sum(s.share for s in arc.sentences) == pytest.approx(1.0)


def test_end_focus_weighs_the_last_sentences_most(fake_classifier):
    arc = read_arcs(fake_classifier, [DAY], focus="end")[0]
    weights = [s.weight for s in arc.sentences]
    assert weights == pytest.approx(np.array([END_DECAY**2, END_DECAY, 1]) / (1.75))
    vectors = fake_classifier.predict_proba(pieces(DAY)).astype(np.float64)
    np.testing.assert_allclose(arc.reading, np.array(weights) @ vectors, atol=1e-5)
    assert EMOTIONS[int(np.argmax(arc.reading))] == "angry"
    assert arc.dominant == [2]


def test_dominant_are_the_fewest_sentences_holding_half(fake_classifier):
    text = "정말 행복했다. 너무 행복하고 기쁘고 좋았다. 조금 걱정됐다."
    arc = read_arcs(fake_classifier, [text])[0]
    shares = np.array([s.share for s in arc.sentences])
    chosen = shares[arc.dominant].sum()
    assert chosen >= 0.5
    # no smaller set of sentences reaches half
    assert np.sort(shares)[::-1][: len(arc.dominant) - 1].sum() < 0.5
    assert 2 not in arc.dominant  # the worried sentence disagrees with a happy reading


def test_many_texts_in_one_call(fake_classifier):
    texts = [DAY, "비가 와서 슬프다", "당황했다. 민망했다."]
    arcs = read_arcs(fake_classifier, texts)
    assert [len(a.sentences) for a in arcs] == [3, 1, 2]
    assert len(fake_classifier.calls) == 1
    body = arcs[2].sentence_bodies()[1].model_dump()
    assert list(body) == ["text", "start", "end", "emotions", "weight", "share"]
    assert body["text"] == "민망했다." and (body["start"], body["end"]) == (6, 11)
