"""Reranking of tube scores after a method (DESIGN §2, STIL §3.4 and Figure 5).

A method gives every tube of a test video a score per class (one :class:`TubeDetections` row
per video, class and tube). STIL reranks them with two kinds of evidence:

- **contextual**: ``+ w * g_c(video)``, the score of class ``c`` from a *global* linear video
  classifier trained on the same training videos and labels (:func:`fit_video_classifier` on
  :func:`wsal.features.extract_video_descriptors`: frames at 2 fps, pooled features);
- **negative evidence**: ``- (max over the video's rows of the score - score)``: the maximum
  tube score of the video over all actions minus the tube's own score, so a tube loses what
  the best action of its video has over it (the video's top tube loses nothing).

``both`` adds the two terms, each computed from the method's own scores:
``s' = s + w * g_c(v) - (max_v s - s)``. STIL normalises neither score before adding (both
are margins of linear SVMs on L2-normalised features); ``context_weight`` (default 1) is there for
scores of another scale (e.g. softmax outputs). See docs/supervision.md.

Not in STIL: ``softmax`` (:func:`video_softmax`) turns each score into a log-probability of its
class given the video, ``s - log sum_c exp(best_c(v))`` with ``best_c(v)`` the video's best tube
score of class ``c``: inside a video and class the order is unchanged, across videos a class
scores low where another class has the stronger evidence (what actor attention's
``test_score=video`` does with its own pooled logits). Applied after the other terms.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from wsal.data.annotations import DatasetIndex
from wsal.features import extract_video_descriptors
from wsal.models.hinge import fit_linear_hinge
from wsal.structures import TubeDetections

__all__ = [
    "Reranking",
    "NoReranking",
    "negative_evidence",
    "video_softmax",
    "context_scores",
    "labels_matrix",
    "fit_video_classifier",
    "video_scores",
    "context_video_scores",
]


# ------------------------------------------------------------------------------ score functions
def negative_evidence(video: np.ndarray, score: np.ndarray) -> np.ndarray:
    """STIL's negative-evidence reranking: ``score - (max_video - score)``.

    ``video str[N]``, ``score float[N]`` (one row per video, class and tube) -> ``float64[N]``.
    ``max_video`` is the largest score among all rows of the same video, over every action.
    """
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    _, inv = np.unique(np.asarray(video).astype(str), return_inverse=True)  # [N] video group
    vmax = np.full(int(inv.max()) + 1 if inv.size else 0, -np.inf)  # [U]
    np.maximum.at(vmax, inv, score)
    return score - (vmax[inv] - score)


def video_softmax(video: np.ndarray, label: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``score - log sum_c exp(best_c)`` per video -> ``float64[N]``.

    ``video str[N]``, ``label int[N]``, ``score float[N]`` (one row per video, class and tube);
    ``best_c`` is the largest score of class ``c`` among the video's rows (classes without a row
    in the video do not count). Equal to ``log_softmax_c(best)[c] + (score - best_c)``: the
    video's class probability from its best tube per class, plus the tube's gap to that tube.
    """
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    label = np.asarray(label, dtype=np.int64).reshape(-1)
    if score.size == 0:
        return score.copy()
    if label.min() < 0:
        raise ValueError(f"video_softmax: class labels must be >= 0, got {int(label.min())}")
    _, inv = np.unique(np.asarray(video).astype(str), return_inverse=True)  # [N] video group
    best = np.full((int(inv.max()) + 1, int(label.max()) + 1), -np.inf)  # [U, L]
    np.maximum.at(best, (inv, label), score)
    top = best.max(axis=1)  # [U] finite: every video has a row
    lse = top + np.log(np.exp(best - top[:, None]).sum(axis=1))  # [U]
    return score - lse[inv]


def context_scores(
    video: np.ndarray, label: np.ndarray, scores: Mapping[str, np.ndarray]
) -> np.ndarray:
    """``scores[video[i]][label[i]]`` for every row -> ``float64[N]``.

    ``scores``: video id -> ``float[L]`` global classifier scores (:func:`video_scores`).
    """
    video = np.asarray(video).astype(str).reshape(-1)
    label = np.asarray(label, dtype=np.int64).reshape(-1)
    uniq, inv = np.unique(video, return_inverse=True)  # [U], [N]
    if uniq.size == 0:
        return np.zeros(0)
    missing = [v for v in uniq if v not in scores]
    if missing:
        raise KeyError(
            f"context reranking: no video classifier score for {len(missing)} video(s), "
            f"e.g. {missing[0]!r}"
        )
    table = np.stack([np.asarray(scores[v], dtype=np.float64).reshape(-1) for v in uniq])  # [U, L]
    if label.size and (label.min() < 0 or label.max() >= table.shape[1]):
        bad = int(np.nonzero((label < 0) | (label >= table.shape[1]))[0][0])
        raise ValueError(
            f"context reranking: video {video[bad]!r} has label {label[bad]} but the video "
            f"classifier scores {table.shape[1]} classes"
        )
    return table[inv, label]


# ------------------------------------------------------------------------------ rerankers
class Reranking:
    """Rerank tube scores with contextual and/or negative evidence (STIL §3.4).

    ``context``: add ``context_weight`` times the global video classifier's score of the row's
    class; ``negative``: apply :func:`negative_evidence`. Both terms come from the method's
    scores, then add up. ``softmax``: then :func:`video_softmax` (not in STIL). ``name`` is
    ``none``, ``context``, ``negative`` or ``both``, with ``+softmax`` (alone: ``softmax``).
    """

    def __init__(
        self,
        context: bool = False,
        negative: bool = False,
        context_weight: float = 1.0,
        softmax: bool = False,
    ):
        self.context = bool(context)
        self.negative = bool(negative)
        self.context_weight = float(context_weight)
        self.softmax = bool(softmax)

    @property
    def name(self) -> str:
        if self.context and self.negative:
            base = "both"
        else:
            base = "context" if self.context else "negative" if self.negative else "none"
        if self.softmax:
            return "softmax" if base == "none" else f"{base}+softmax"
        return base

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, context_weight={self.context_weight})"

    def __call__(
        self, dets: TubeDetections, video_scores: Mapping[str, np.ndarray] | None = None
    ) -> TubeDetections:
        """Rerank ``dets`` (rows, tubes and order unchanged; only ``score`` changes).

        ``video_scores``: video id -> ``float[L]`` global classifier scores; needed by
        ``context``/``both`` for every video of ``dets``, ignored otherwise.
        """
        if not (self.context or self.negative or self.softmax):
            return dets
        score = dets.score.astype(np.float64)  # [N]
        new = negative_evidence(dets.video, score) if self.negative else score.copy()
        if self.context:
            if video_scores is None:
                raise ValueError(
                    f"reranking={self.name} needs video_scores (the global video classifier's "
                    "scores per test video); none were given"
                )
            new += self.context_weight * context_scores(dets.video, dets.label, video_scores)
        if self.softmax:
            new = video_softmax(dets.video, dets.label, new)
        return TubeDetections(dets.video, dets.label, new, dets.offsets, dets.rows)


class NoReranking(Reranking):
    """The method's scores unchanged (``reranking=none``)."""

    def __init__(self) -> None:
        super().__init__(context=False, negative=False)


# ------------------------------------------------------------------------------ video classifier
def labels_matrix(index: DatasetIndex, videos: Sequence[str]) -> np.ndarray:
    """``bool[V, L]``: ``[i, c]`` is True when video ``videos[i]`` has class ``c``."""
    out = np.zeros((len(videos), len(index.labels)), dtype=bool)
    for i, v in enumerate(videos):
        out[i, index.videos[v].labels] = True
    return out


def fit_video_classifier(
    descriptors: np.ndarray, labels: np.ndarray, C: float = 10.0, loss: str = "squared_hinge"
) -> tuple[np.ndarray, np.ndarray]:
    """One linear classifier per class on whole-video descriptors (STIL §3.4, contextual).

    ``descriptors float[V, D]`` (:func:`wsal.features.extract_video_descriptors`), ``labels bool[V, L]``
    (:func:`labels_matrix`): each class is trained one-vs-rest on the same training videos as the
    localizer. Returns ``W float32[L, D]``, ``b float32[L]``; the score of a video is ``W x + b``.
    """
    X = np.asarray(descriptors, dtype=np.float32)
    Y = np.asarray(labels)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"fit_video_classifier: descriptors [V, D] and labels [V, L] expected, got "
            f"{X.shape} and {Y.shape}"
        )
    if not np.isin(Y, (0, 1)).all():
        raise ValueError("fit_video_classifier: labels must be boolean (0/1) [V, L]")
    y = np.where(Y.astype(bool), 1.0, -1.0).astype(np.float32)  # [V, L] one-vs-rest targets
    W, b = fit_linear_hinge(torch.from_numpy(X), torch.from_numpy(y), C=C, loss=loss, bias=True)
    return (
        np.asarray(torch.as_tensor(W).detach().cpu(), dtype=np.float32),
        np.asarray(torch.as_tensor(b).detach().cpu(), dtype=np.float32).reshape(-1),
    )


def video_scores(
    W: np.ndarray, b: np.ndarray, descriptors: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Global classifier scores ``{video: float64[L]} = W x + b`` for every descriptor ``x [D]``."""
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if not descriptors:
        return {}
    vids = list(descriptors)
    X = np.stack([np.asarray(descriptors[v], dtype=np.float64).reshape(-1) for v in vids])  # [V, D]
    if X.shape[1] != W.shape[1]:
        raise ValueError(f"video_scores: descriptors have D={X.shape[1]}, W has D={W.shape[1]}")
    S = X @ W.T + b  # [V, L]
    return {v: S[i] for i, v in enumerate(vids)}


def context_video_scores(
    extractor: Any,
    index: DatasetIndex,
    dataset_key: str,
    train: Sequence[str],
    test: Sequence[str],
    cache_dir: str | os.PathLike,
    C: float = 10.0,
) -> dict[str, np.ndarray]:
    """Global video classifier scores ``{test video: float[L]}`` for contextual reranking (§3.4).

    Whole-frame descriptors at 2 fps from the run's feature extractor (cached under
    ``dataset_key``), one linear classifier per class trained on the ``train`` videos' labels,
    applied to the ``test`` videos.
    """
    desc = extract_video_descriptors(
        extractor, index, cache_dir, dataset_key, videos=list(train) + list(test)
    )
    W, b = fit_video_classifier(
        np.stack([desc[v] for v in train]), labels_matrix(index, list(train)), C=C
    )
    return video_scores(W, b, {v: desc[v] for v in test})
