"""Reranking (STIL §3.4): known answers on a 2-video x 2-class toy, a naive twin, the context
classifier on a separable toy, video descriptors, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from wsal.data.annotations import DatasetIndex, VideoInfo
from wsal.reranking import (
    NoReranking,
    Reranking,
    context_scores,
    fit_video_classifier,
    labels_matrix,
    negative_evidence,
    video_scores,
    video_softmax,
)
from wsal.structures import TubeDetections

CONF = Path(__file__).resolve().parents[1] / "conf"


def toy() -> TubeDetections:
    """Video a: class 0 scores 3 and 2, class 1 scores 1; video b: class 0 0.5, class 1 4."""
    video = ["a", "a", "b", "a", "b"]
    label = [0, 1, 0, 0, 1]
    score = [3.0, 1.0, 0.5, 2.0, 4.0]
    rows = np.array([[i, 0, 0, 10, 10] for i in range(5)], dtype=np.float64)
    return TubeDetections(video, label, score, np.arange(6), rows)


SCORES = {"a": np.array([1.0, -1.0]), "b": np.array([-2.0, 2.0])}


def test_known_answers_on_toy():
    d = toy()
    # negative: a's max is 3, b's is 4 -> s - (max - s)
    neg = [3.0, 1 - 2, 0.5 - 3.5, 2 - 1, 4.0]
    # context: + g_label(video)
    ctx = [3 + 1, 1 - 1, 0.5 - 2, 2 + 1, 4 + 2]
    both = [n + c - s for n, c, s in zip(neg, ctx, d.score, strict=True)]
    np.testing.assert_allclose(Reranking(negative=True)(d).score, neg)
    np.testing.assert_allclose(Reranking(context=True)(d, video_scores=SCORES).score, ctx)
    np.testing.assert_allclose(Reranking(True, True)(d, video_scores=SCORES).score, both)
    np.testing.assert_allclose(both, [4.0, -2.0, -5.0, 2.0, 6.0])
    half = Reranking(context=True, context_weight=0.5)(d, SCORES).score
    np.testing.assert_allclose(half, [3.5, 0.5, -0.5, 2.5, 5.0])
    # rows, order and tubes unchanged
    out = Reranking(True, True)(d, SCORES)
    np.testing.assert_array_equal(out.video, d.video)
    np.testing.assert_array_equal(out.label, d.label)
    np.testing.assert_array_equal(out.rows, d.rows)
    np.testing.assert_array_equal(out.offsets, d.offsets)


def test_none_and_names():
    d = toy()
    assert NoReranking()(d) is d and NoReranking().name == "none"
    assert Reranking(negative=True)(d).score.shape == (5,)  # no video scores needed
    names = [Reranking(c, n).name for c, n in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    assert names == ["none", "context", "negative", "both"]


def test_context_errors_name_the_problem():
    d = toy()
    with pytest.raises(ValueError, match="needs video_scores"):
        Reranking(context=True)(d)
    with pytest.raises(KeyError, match="'b'"):
        Reranking(context=True)(d, {"a": SCORES["a"]})
    with pytest.raises(ValueError, match="label 1 but the video classifier scores 1 classes"):
        context_scores(d.video, d.label, {"a": [0.0], "b": [0.0]})


def test_negative_evidence_matches_naive_loop():
    rng = np.random.default_rng(0)
    video = rng.choice(["x", "y", "z", "w"], size=200)
    score = rng.normal(size=200)
    expected = [s - (max(score[video == v]) - s) for v, s in zip(video, score, strict=True)]
    np.testing.assert_allclose(negative_evidence(video, score), expected)
    assert negative_evidence(np.array([], dtype=str), np.array([])).shape == (0,)
    # the best tube of each video keeps its score, the rest only go down
    out = negative_evidence(video, score)
    for v in "xyzw":
        m = video == v
        assert out[m].max() == pytest.approx(score[m].max())
    assert np.all(out <= score + 1e-12)


def test_context_classifier_separates_a_separable_toy():
    rng = np.random.default_rng(0)
    L, D, per = 3, 8, 10
    centres = 3.0 * np.eye(L, D)  # class c lives around 3 * e_c
    y = np.repeat(np.arange(L), per)  # [V]
    X = centres[y] + rng.normal(0, 0.3, size=(L * per, D))
    labels = np.eye(L, dtype=bool)[y]  # [V, L]
    W, b = fit_video_classifier(X, labels, C=10.0)
    assert W.shape == (L, D) and b.shape == (L,) and W.dtype == np.float32
    desc = {f"v{i}": X[i] for i in range(len(X))}
    S = video_scores(W, b, desc)
    pred = np.array([int(np.argmax(S[f"v{i}"])) for i in range(len(X))])
    np.testing.assert_array_equal(pred, y)
    margins = np.stack([S[f"v{i}"] for i in range(len(X))]) * np.where(labels, 1, -1)
    assert np.all(margins > 0)  # every one-vs-rest decision right
    np.testing.assert_allclose(S["v0"], X[0] @ W.T.astype(np.float64) + b, rtol=1e-6)
    with pytest.raises(ValueError, match="boolean"):
        fit_video_classifier(X, labels * 2)


def test_labels_matrix():
    index = DatasetIndex(
        ["p", "q", "r"], {}, {"u": VideoInfo(5, [2]), "v": VideoInfo(5, [0, 1]), "w": VideoInfo(5)}
    )
    np.testing.assert_array_equal(
        labels_matrix(index, ["v", "u", "w"]), [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    )


@pytest.mark.parametrize("option", ["none", "context", "negative", "both", "softmax"])
def test_reranking_configs_compose(option):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"reranking={option}"])
    GlobalHydra.instance().clear()
    reranker = instantiate(cfg.reranking)
    assert reranker.name == option
    assert {p.stem for p in (CONF / "reranking").glob("*.yaml")} == {
        "none",
        "context",
        "negative",
        "both",
        "softmax",
    }


def test_video_softmax_by_hand():
    """Toy: video a's best tube per class scores 3 (class 0) and 1 (class 1), so each of its rows
    loses log(e^3 + e^1); video b's 0.5 and 4 lose log(e^0.5 + e^4)."""
    d = toy()
    out = video_softmax(d.video, d.label, d.score)
    la, lb = np.log(np.exp(3.0) + np.exp(1.0)), np.log(np.exp(0.5) + np.exp(4.0))
    np.testing.assert_allclose(out, [3 - la, 1 - la, 0.5 - lb, 2 - la, 4 - lb])
    # = log_softmax over the classes of the best tubes + the gap to the class's best tube
    np.testing.assert_allclose(out[3], (3 - la) + (2.0 - 3.0))
    # a class without a row in a video does not count; single-row video: log-probability 0
    np.testing.assert_allclose(
        video_softmax(["x", "y", "y"], [2, 0, 2], [5.0, 1.0, 1.0]),
        [0.0, -np.log(2.0), -np.log(2.0)],
    )
    assert video_softmax([], [], []).shape == (0,)
    with pytest.raises(ValueError, match=">= 0"):
        video_softmax(["a"], [-1], [1.0])
    r = Reranking(softmax=True)
    assert r.name == "softmax" and Reranking(negative=True, softmax=True).name == "negative+softmax"
    np.testing.assert_allclose(r(d).score, out)
    # after negative evidence: the softmax of the reranked scores
    both = Reranking(negative=True, softmax=True)(d).score
    np.testing.assert_allclose(
        both, video_softmax(d.video, d.label, negative_evidence(d.video, d.score))
    )
    # large scores do not overflow
    assert np.isfinite(video_softmax(["a", "a"], [0, 1], [1e4, -1e4])).all()
