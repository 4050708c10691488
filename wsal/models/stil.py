"""Spatio-Temporal Instance Learning (STIL, Mettes & Snoek): latent subtubes + max-margin boxes.

Conventions: frames are 0-based; boxes ``xyxy`` float pixels; one row per detector box. Training
data is columnar (:class:`wsal.models.stil_data.STILData`, built by ``build_stil_data``).

The method (STIL §3, Eq. 1-3), as implemented here:

- **Model**: one linear scorer ``<w_c, x> + b_c`` per class over L2-normalised box features
  (§4: "We l2-normalize each box representation"); all classes in one ``[L, D]`` matrix.
- **Objective** (Eq. 1 with the latent ``h`` fixed): an l2-regularised max-margin problem solved
  for all classes (and all fold models) at once by :func:`wsal.models.hinge.fit_linear_hinge`
  (``C`` = 10, §4). The default ``loss="hinge"`` is Eq. 1's; ``"squared_hinge"`` (the L2-loss SVM
  of LIBLINEAR/LinearSVC, "standard l2-regularized max-margin solvers [9]") is faster but leaves
  the selected boxes just below the margin 1, which Eq. 3's penalty of 1 per box then trims away
  (docs/stil.md, "The planted toy").
- **Examples of class c**: positives = the boxes of the selected subtube of each video labelled c
  (Eq. 2: one tube per video, one contiguous run of boxes in it); negatives = every box of every
  video not labelled c (Condition 3; ``negatives="selected"`` keeps only the boxes the same
  selection picks in those videos, the literal "top scoring boxes of negative videos" of §3.1)
  plus, with ``background_negatives``, the *background boxes* of each positive video (§4,
  following [7]): the boxes in a frame of the selected subtube whose IoU with the selected box of
  that frame is below ``background_iou`` (0.3, R-CNN's negative threshold; STIL does not give one).
  Boxes of frames outside the selected subtube are not used: the action may extend beyond it.
- **E-step** (Eq. 3): for every tube of a positive video, the best contiguous subtube
  ``argmax_{k,s} sum_{l=k}^{k+s} (<w,x_l> + b) - s`` — a maximum-subarray problem solved for all
  tubes at once by :func:`best_subtubes` — then the best tube of the video.
  The first E-step uses the boxes' prior scores (detector scores, plus the supervision scores of
  Eq. 5-7 when given) in place of the model scores (§3.1, last sentence).
- **Folds** (§4, "following [7]": multi-fold MIL): the videos are split into ``folds`` folds; the
  latent choice of a video in fold k is made by the model ``w_{-k}`` trained on the other folds'
  selections, which avoids a model re-selecting the very boxes it was trained on. The final model
  is trained on all videos' selections. The ``folds + 1`` models are one batched solve.
- **Epochs**: ``em_epochs`` = 5 E/M rounds (§4: "train for 5 epochs").
- **Inference** (§3.4): score every box of a test video for every class (one matmul), link per
  class with Temporal Prim on the model scores, only boxes with a positive score (so tubes stop
  where no box supports the action), several tubes per video and class; tube score = mean box
  score. (§3.4 divides the sum by ``|t_end - t_start|``; the mean over the tube's boxes is meant.)

Selections (``selection``), same solver and examples otherwise (Table 1):

- ``"stil"``: the subtube above, on Temporal Prim tubes;
- ``"stil_noprim"``: STIL without Temporal Prim: all boxes of each positive video are positives
  (§5.1: "using all box proposals in each training video"; no latent variable is left);
- ``"mil"``: the single highest-scoring box of each positive video (among all its boxes);
- ``"gmil"``: generalised MIL, the ``mu`` highest-scoring boxes (µ = 5, 10, 40 in the paper).

The paper initialises the (G)MIL baselines with a random box selection (``init="random"``);
STIL and STIL without Temporal Prim start from the priors (``init="prior"``).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from tqdm import tqdm

from wsal.linking.temporal_prim import temporal_prim_batch
from wsal.models.hinge import LOSSES, fit_linear_hinge
from wsal.models.stil_data import STILData, assign_folds, check_features, l2_normalize
from wsal.structures import Detections, TubeDetections, Tubes
from wsal.tube_ops import box_iou_paired

__all__ = [
    "TEST_TUBES",
    "TUBE_SCORES",
    "score_proposals",
    "SELECTIONS",
    "STIL",
    "Selection",
    "background_boxes",
    "balanced_weights",
    "best_subtubes",
    "predict_tubes",
    "select_latent",
]

SELECTIONS = ("stil", "stil_noprim", "mil", "gmil")
_NEGATIVES = ("all", "selected")
_INITS = ("prior", "random")
_CLASS_WEIGHTS = (None, "balanced")
TEST_TUBES = ("link", "proposals")
TUBE_SCORES = ("mean", "coverage")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- E-step parts
def best_subtubes(
    scores: Tensor, valid: Tensor, penalty: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 3 for K tubes at once: the best run of contiguous valid boxes of each row.

    Args:
        scores: float[K, S] box scores of each tube, in time order (model or prior scores).
        valid: bool[K, S] True where the tube has a box; a subtube never crosses an invalid entry.
        penalty: the length weight. Eq. 3 scores the subtube of boxes k..k+s as
            ``sum_{l=k}^{k+s} score_l - s``: s is the *number of steps* (boxes - 1) and the weight
            is 1 (``penalty=1``). It counts boxes, not frames: with features every n-th frame
            (UCF-101: every 5th) a step is n frames.

    Returns:
        ``(value float64[K], start int64[K], end int64[K])``: ``value = max over start <= end of
        sum(scores[start:end+1]) - penalty * (end - start)``, the subtube inclusive, at least one
        box (Eq. 2: length >= 1). Rows without a valid entry: ``-inf, -1, -1``.

    A maximum-subarray problem solved in O(S) per row: with ``a = score - penalty`` and ``P`` its
    prefix sums, the best subtube ending at j starts at the argmin of ``P[start-1]`` over its run
    (a segmented running minimum, ``cummin``), value ``P[j] - P[start-1] + penalty``.
    """
    if scores.shape != valid.shape or scores.ndim != 2:
        raise ValueError(f"scores and valid must both be [K, S], got {scores.shape}, {valid.shape}")
    K, S = scores.shape
    dev = scores.device
    if S == 0:
        neg = torch.full((K,), -1, dtype=torch.int64, device=dev)
        return torch.full((K,), -math.inf, dtype=torch.float64, device=dev), neg, neg.clone()
    valid = valid.bool()
    a = torch.where(
        valid, scores.double() - penalty, torch.zeros((), dtype=torch.float64, device=dev)
    )
    P = a.cumsum(dim=1)  # [K, S] sum of a[0..j]
    before = P - a  # [K, S] sum of a[0..j-1]: subtracted when the subtube starts at j
    prev = torch.nn.functional.pad(valid[:, :-1], (1, 0), value=False)  # [K, S] valid[j-1]
    run = (valid & ~prev).cumsum(dim=1)  # [K, S] index of the valid run each entry lies in
    # Segmented cummin: shifting run r down by r * big (big > twice any |prefix|) makes every
    # entry of run r smaller than all entries of earlier runs, so the running minimum restarts
    # at each run; the value itself is re-read from `before` (no precision lost to the shift).
    big = 2.0 * a.abs().sum(dim=1, keepdim=True) + 1.0  # [K, 1]
    key = torch.where(valid, before - big * run, torch.full_like(before, math.inf))
    _, arg = torch.cummin(key, dim=1)  # [K, S] best start for a subtube ending at each j
    val = torch.where(valid, P - before.gather(1, arg) + penalty, torch.full_like(P, -math.inf))
    value, end = val.max(dim=1)  # [K]
    start = arg.gather(1, end[:, None]).squeeze(1)
    none = ~valid.any(dim=1)
    start = torch.where(none, -1, start)
    end = torch.where(none, -1, end)
    return value, start, end


def _expand(counts: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
    """Ragged expansion: for group g, the items ``starts[g] .. starts[g] + counts[g] - 1``.

    Returns ``(group int64[Q], item int64[Q])``, grouped by g in order.
    """
    g = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)  # [Q]
    first = torch.cumsum(counts, 0) - counts  # [G] position of group g's first item
    item = starts[g] + torch.arange(len(g), device=counts.device) - first[g]
    return g, item


def _rank_in_group(group: Tensor, key: Tensor) -> Tensor:
    """int64[Q] rank of each item within its group by ``key`` descending (ties: earlier first)."""
    order = torch.argsort(key, descending=True, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # [Q] by group, then key desc
    counts = torch.bincount(group, minlength=int(group.max()) + 1 if len(group) else 0)
    first = torch.cumsum(counts, 0) - counts  # [G]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=group.device) - first[group[order]]
    return rank


@dataclass
class Selection:
    """The latent choice for P (video, class) pairs (the ``h`` of Eq. 1-2).

    Fields: ``pair_video``/``pair_class`` int64[P]; ``box`` int64[Q] selected global box rows,
    grouped by pair, with ``box_pair`` int64[Q]; for ``"stil"``: ``tube`` int64[P] (global tube
    index), ``start``/``end`` int64[P] (inclusive positions along the tube), ``value`` float64[P]
    (Eq. 3); other selections: tube/start/end = -1 and value = the sum of the selected scores.
    A pair that could not select anything (a video without tubes under ``"stil"``) has tube -1
    and no boxes.
    """

    pair_video: Tensor
    pair_class: Tensor
    box: Tensor
    box_pair: Tensor
    tube: Tensor
    start: Tensor
    end: Tensor
    value: Tensor

    def mask(self, num_boxes: int, num_classes: int) -> Tensor:
        """bool[N, L]: box i is selected for class c (by a pair of class c)."""
        m = torch.zeros(num_boxes, num_classes, dtype=torch.bool, device=self.box.device)
        m[self.box, self.pair_class[self.box_pair]] = True
        return m

    def subset(self, keep: Tensor) -> Selection:
        """The pairs where ``keep bool[P]`` holds (their boxes renumbered)."""
        newid = torch.cumsum(keep.long(), 0) - 1  # [P]
        kb = keep[self.box_pair]
        return Selection(
            self.pair_video[keep],
            self.pair_class[keep],
            self.box[kb],
            newid[self.box_pair[kb]],
            self.tube[keep],
            self.start[keep],
            self.end[keep],
            self.value[keep],
        )


def select_latent(
    data: STILData,
    scores: Tensor,
    selection: str = "stil",
    mu: int = 5,
    penalty: float = 1.0,
    pairs: tuple[Tensor, Tensor] | None = None,
) -> Selection:
    """The E-step: per (video, class) pair, the boxes that act as the video's instance of c.

    Args:
        data: the training boxes and tubes.
        scores: float[N, L] box scores per class (model scores, or priors broadcast to L).
        selection: ``"stil"`` (best tube and subtube, Eq. 3), ``"stil_noprim"`` (all boxes),
            ``"mil"`` (the best box), ``"gmil"`` (the ``mu`` best boxes; all if fewer).
        mu: boxes per video for ``"gmil"``. penalty: Eq. 3's length weight (see
            :func:`best_subtubes`).
        pairs: ``(video int64[P], class int64[P])``; default: every (video, label) pair.

    Ties: the lowest tube index, and for (G)MIL the lowest box row, wins.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose one of {SELECTIONS}")
    if scores.shape != (data.num_boxes, data.num_classes):
        raise ValueError(
            f"scores must be [N={data.num_boxes}, L={data.num_classes}], got {tuple(scores.shape)}"
        )
    dev = scores.device
    if pairs is None:
        pv, pc = torch.nonzero(data.labels.to(dev), as_tuple=True)
    else:
        pv, pc = pairs[0].to(dev), pairs[1].to(dev)
    P = len(pv)
    none = torch.full((P,), -1, dtype=torch.int64, device=dev)
    box_off = data.box_offsets.to(dev)
    if selection == "stil":
        tube_off = data.tube_offsets.to(dev)
        tube_boxes = data.tube_boxes.to(dev)
        kp, kt = _expand(tube_off[pv + 1] - tube_off[pv], tube_off[pv])  # [K] pair, tube
        idx = tube_boxes[kt]  # [K, S]
        ok = idx >= 0
        s = scores[idx.clamp_min(0), pc[kp][:, None]]  # [K, S] class-pc scores along each tube
        value, start, end = best_subtubes(s, ok, penalty)  # [K]
        best = torch.full((P,), -math.inf, dtype=torch.float64, device=dev)
        best = best.scatter_reduce(0, kp, value, "amax")  # [P]
        K = len(kp)
        hit = (value == best[kp]) & (value > -math.inf)
        kbest = torch.full((P,), K, dtype=torch.int64, device=dev)
        kbest = kbest.scatter_reduce(0, kp[hit], torch.arange(K, device=dev)[hit], "amin")
        has = kbest < K  # [P] pairs whose video has a tube
        kb = kbest.clamp_max(max(K - 1, 0))
        tube = torch.where(has, kt[kb] if K else none, none)
        st = torch.where(has, start[kb] if K else none, none)
        en = torch.where(has, end[kb] if K else none, none)
        val = torch.where(has, best, torch.full_like(best, -math.inf))
        lens = torch.where(has, en - st + 1, torch.zeros_like(en))
        bp, posn = _expand(lens, st.clamp_min(0))
        box = tube_boxes[tube[bp], posn]
        return Selection(pv, pc, box, bp, tube, st, en, val)
    bp, box = _expand(box_off[pv + 1] - box_off[pv], box_off[pv])  # [Q] every box of each pair
    s = scores[box, pc[bp]]  # [Q]
    if selection != "stil_noprim":
        keep = _rank_in_group(bp, s) < (1 if selection == "mil" else int(mu))
        bp, box, s = bp[keep], box[keep], s[keep]
    val = torch.zeros(P, dtype=torch.float64, device=dev).index_add_(0, bp, s.double())
    return Selection(pv, pc, box, bp, none, none.clone(), none.clone(), val)


def background_boxes(
    data: STILData, sel: Selection, iou_threshold: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Background boxes of each selected pair (extra negatives, STIL §4 following [7]).

    A box of the pair's video is background when its frame holds a selected box of the pair, it
    is not selected itself, and its IoU (continuous coordinates) with every selected box of that
    frame is ``< iou_threshold``. Returns ``(box int64[B], pair int64[B])``.
    """
    if data.boxes is None:
        raise ValueError(
            "background negatives need the boxes' coordinates: build the STILData with dets=..."
        )
    dev = sel.box.device
    frame = data.frame.to(dev)
    fkey = data.box_video.to(dev) * (int(frame.max()) + 1) + frame  # [N] sorted (video, frame)
    qk = fkey[sel.box]  # [Q]
    lo = torch.searchsorted(fkey, qk, right=False)
    hi = torch.searchsorted(fkey, qk, right=True)
    cq, ci = _expand(hi - lo, lo)  # [R] (selected box, candidate box of the same frame)
    sb = sel.box[cq]
    boxes = data.boxes.to(dev)
    iou = torch.from_numpy(
        box_iou_paired(boxes[ci].cpu().numpy(), boxes[sb].cpu().numpy(), plus_one=False)
    ).to(dev)
    iou = torch.where(ci == sb, torch.ones_like(iou), iou)  # a selected box is never background
    P = len(sel.pair_video)
    flat = ci * max(P, 1) + sel.box_pair[cq]  # [R] (candidate, pair)
    uniq, inv = torch.unique(flat, return_inverse=True)
    best = torch.zeros(len(uniq), dtype=iou.dtype, device=dev).scatter_reduce(
        0, inv, iou, "amax", include_self=False
    )
    bg = uniq[best < iou_threshold]
    return bg // max(P, 1), bg % max(P, 1)


def balanced_weights(Y: Tensor) -> Tensor:
    """float32[N, L] per-example loss weights that balance the classes of each column of ``Y``.

    LinearSVC's ``class_weight="balanced"``: with ``n`` used rows (``Y != 0``) of which ``n_pos``
    are +1 and ``n_neg`` are -1, a positive weighs ``n / (2 n_pos)`` and a negative
    ``n / (2 n_neg)``, so both classes carry half of the loss. Unused rows weigh 0.
    """
    pos = Y == 1
    neg = Y == -1
    n_pos = pos.sum(dim=0).float()  # [L]
    n_neg = neg.sum(dim=0).float()
    n = n_pos + n_neg
    w_pos = torch.where(n_pos > 0, n / (2 * n_pos.clamp_min(1)), torch.zeros_like(n))
    w_neg = torch.where(n_neg > 0, n / (2 * n_neg.clamp_min(1)), torch.zeros_like(n))
    return pos.float() * w_pos + neg.float() * w_neg


# ------------------------------------------------------------------------------------- inference
def predict_tubes(
    W: Tensor | np.ndarray,
    b: Tensor | np.ndarray,
    features: Mapping[str, np.ndarray],
    dets: Mapping[str, Detections],
    num_tubes_per_class: int = 5,
    min_iou: float = 0.1,
    normalize: bool = True,
    device: str | torch.device | None = None,
    batch_items: int = 256,
    progress: bool = False,
) -> TubeDetections:
    """STIL inference (§3.4): tubes per test video and class from box scores.

    Args:
        W, b: float[L, D], float[L] the class models. features: video -> float[N_v, D] rows
            aligned with ``dets[v]`` (L2-normalised here when ``normalize``, as in training).
        dets: video -> Detections (0-based frames, xyxy boxes); the videos and order of the result.
        num_tubes_per_class: most tubes per video and class. min_iou: Eq. 4's edge threshold.
        device: where the scoring matmul runs (default: W's device).
        batch_items: (video, class) linkings per Temporal Prim call (bounds its padded table).

    Every box is scored for every class in one matmul; per class, Temporal Prim (Eq. 4) links
    only boxes with a positive score (``min_score=0``: a tube stops where no box of the next
    frame supports the action), up to ``num_tubes_per_class`` tubes; tube score = mean box score.
    Returns TubeDetections with ``label`` = class index. Raises ``ValueError`` naming the video
    for missing, misaligned, NaN/inf or all-zero features (as :func:`build_stil_data`).
    """
    W = torch.as_tensor(W)
    b = torch.as_tensor(b)
    dev = torch.device(device) if device is not None else W.device
    L, D = W.shape
    videos = list(dets)
    feats = []
    for v in videos:
        if v not in features:
            raise ValueError(f"video {v!r} has detections but no features")
        f = (
            check_features(v, features[v], len(dets[v]), D)
            if len(dets[v])
            else np.zeros((0, D), np.float32)
        )
        feats.append(l2_normalize(f) if normalize else f)
    counts = np.array([len(f) for f in feats], dtype=np.int64)
    X = torch.from_numpy(np.concatenate(feats) if feats else np.zeros((0, D), np.float32))
    S = (X.to(dev) @ W.to(dev, torch.float32).T + b.to(dev, torch.float32)).cpu().numpy()  # [N, L]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    # Only boxes with a positive score can join a tube, so each (video, class) links the subset
    # of its boxes scoring > 0: the same tubes, a much smaller padded table.
    items: list[tuple[str, int, Detections, np.ndarray]] = []
    for i, v in enumerate(videos):
        s_v = S[offsets[i] : offsets[i + 1]]  # [N_v, L]
        for c in np.nonzero((s_v > 0).any(axis=0))[0]:
            keep = s_v[:, c] > 0
            items.append((v, int(c), dets[v].select(keep), s_v[keep, c]))
    parts = []
    for i in tqdm(range(0, len(items), batch_items), desc="STIL linking", disable=not progress):
        chunk = items[i : i + batch_items]
        tubes = temporal_prim_batch(
            [it[2] for it in chunk], num_tubes_per_class, min_iou, 0.0, [it[3] for it in chunk]
        )
        for (v, cls, _, _), t in zip(chunk, tubes):
            if t.num_tubes:  # t.scores = mean linking (= model) score of each tube's boxes
                parts.append(TubeDetections.from_tubes(v, t, labels=np.full(t.num_tubes, cls)))
    return TubeDetections.concat(parts)


def score_proposals(
    W: Tensor | np.ndarray,
    b: Tensor | np.ndarray,
    features: Mapping[str, np.ndarray],
    dets: Mapping[str, Detections],
    tubes: Mapping[str, Tubes],
    normalize: bool = True,
    tube_score: str = "mean",
) -> TubeDetections:
    """Score given tubes instead of linking new ones (e.g. the Temporal Prim proposals on the
    detector's priors): one detection per (tube, class), spanning the whole tube.

    ``tube_score`` says how a tube's box scores ``s_k`` (``box_index >= 0``; tracker-made boxes
    have no features and are skipped) make its class score:

    - ``"mean"``: ``mean_k s_k`` (§3.4's tube score). It ignores how much of the video the tube
      covers, so a short fragment of the performer with a few confident boxes outranks the
      performer's whole tube.
    - ``"coverage"``: ``sum_k sigmoid(s_k) / F`` with ``F`` the video's frame count: the share of
      the video's frames the tube holds the action in, each box counted by its squashed score
      (bounded, so no single box dominates; frames the tube lacks count 0). Not in the paper
      (docs/stil.md has the measurement that chose it).

    A tube with no detector box cannot be scored and is left out. Same feature checks as
    :func:`predict_tubes`.
    """
    if tube_score not in TUBE_SCORES:
        raise ValueError(f"tube_score must be one of {TUBE_SCORES}, got {tube_score!r}")
    W = torch.as_tensor(W).float()
    b = torch.as_tensor(b).float()
    L, D = W.shape
    parts = []
    for v in dets:
        if v not in features:
            raise ValueError(f"video {v!r} has detections but no features")
        t = tubes.get(v)
        if t is None or t.num_tubes == 0 or len(dets[v]) == 0:
            continue
        f = check_features(v, features[v], len(dets[v]), D)
        f = l2_normalize(f) if normalize else f
        logits = torch.from_numpy(f) @ W.T + b  # [N_v, L]
        S = (logits.double().sigmoid() if tube_score == "coverage" else logits).numpy()
        bi = t.box_index  # [K, F]
        ok = bi >= 0
        n = ok.sum(axis=1)  # [K]
        sums = np.zeros((t.num_tubes, L))
        np.add.at(sums, np.nonzero(ok)[0], S[bi[ok]])
        keep = np.nonzero(n > 0)[0]
        if keep.size == 0:
            continue
        if tube_score == "mean":
            score = sums[keep] / n[keep, None]  # [K', L]
        else:
            score = sums[keep] / max(dets[v].num_frames, 1)
        sub = t.select(keep)
        for c in range(L):
            parts.append(
                TubeDetections.from_tubes(v, sub, labels=np.full(keep.size, c), scores=score[:, c])
            )
    return TubeDetections.concat(parts)


# ------------------------------------------------------------------------------------ the system
class STIL(pl.LightningModule):
    """STIL training system: EM over latent subtubes with a batched linear max-margin M-step.

    Args:
        num_classes: L.
        C: loss weight of Eq. 1 (paper: 10). loss: "hinge" (Eq. 1, default) | "squared_hinge"
            (faster; see the module doc).
        selection: "stil" | "stil_noprim" | "mil" | "gmil" (Table 1's variants); mu: boxes per
            video for "gmil".
        folds: multi-fold training (paper: 3); 1 = every video selected by the model trained on
            it. The data's fold assignment is used when it has the same number of folds, else
            the folds are re-dealt with :func:`assign_folds` (``seed``).
        em_epochs: E/M rounds (paper: 5); training stops after them.
        penalty: Eq. 3's length weight (1 in the paper); prior_penalty: the weight for the first
            E-step on prior scores (None = ``penalty``; with priors in [0, 1] and weight 1 the
            first subtube is a single box).
        init: first E-step scores: "prior" (priors, the paper's STIL) or "random" (uniform
            random box scores, the paper's initialisation of the (G)MIL baselines).
        negatives: "all" (every box of a video without the class) or "selected" (only the boxes
            the selection picks there, §3.1's "top scoring boxes of negative videos").
        background_negatives / background_iou / max_background: background boxes of positive
            videos as extra negatives (see :func:`background_boxes`), at most ``max_background``
            per (video, class) (a seeded random subset; None = all).
        normalize: the features are L2-normalised (must match the :class:`STILData`).
        num_tubes_per_class / min_iou: inference (see :func:`predict_tubes`).
        max_iter / tol: M-step solver (see :func:`fit_linear_hinge`).
        feature_dim: D, if known (lets a state dict load before any data is seen).
        class_weight: None (Eq. 1: every example weighs C) or "balanced" (per column of the
            M-step, positives weigh ``C n / (2 n_pos)`` and negatives ``C n / (2 n_neg)``, as
            LinearSVC's ``class_weight="balanced"``; see :func:`balanced_weights`). Not in the
            paper; without it, a few hundred positives against ~30k negatives per class drive
            almost every test box score below 0, and §3.4's linking (boxes > 0) yields 1-2 frame
            tubes (docs/stil.md, "SynthActors").
        test_tubes: "link" (§3.4: Temporal Prim on the boxes' model scores, boxes > 0 only) or
            "proposals" (score the prior-linked proposals, each by its boxes' mean model score;
            not in the paper: whole tubes instead of the runs of positive boxes, see docs/stil.md).
        tube_score: with ``test_tubes="proposals"``, "mean" (§3.4) or "coverage" (the squashed
            box scores summed over the video's frames; see :func:`score_proposals`).
        pca_dim: None (the features as given) or k: project the L2-normalised box features on
            the k principal axes of the training boxes (fitted once in :meth:`attach`, kept in
            the state dict, applied again at test), then L2-normalise. Plays the part of the
            paper's fc6/fc7 on the flattened ROI grid: it keeps the box's spatial layout
            (``features.pooling=flatten``) at a size the EM solves quickly (docs/stil.md).

    Use: ``trainer.fit(STIL(L), datamodule=STILDataModule(data))`` with ``max_epochs >=
    em_epochs``, or without Lightning ``STIL(L).fit_em(data)``; then ``predict_tubes(features,
    dets)``. Full-batch on one device (the model's): use a single-device Trainer.
    """

    models_weight: Tensor  # float32[M, L, D] buffers: fold models 0..M-2, the final model M-1
    models_bias: Tensor  # float32[M, L]
    proj_mean: Tensor  # float32[D] (pca_dim; empty until fitted)
    proj: Tensor  # float32[D, k]

    def __init__(
        self,
        num_classes: int,
        C: float = 10.0,
        selection: str = "stil",
        mu: int = 5,
        folds: int = 3,
        em_epochs: int = 5,
        loss: str = "hinge",
        penalty: float = 1.0,
        prior_penalty: float | None = None,
        init: str = "prior",
        negatives: str = "all",
        background_negatives: bool = True,
        background_iou: float = 0.3,
        max_background: int | None = None,
        normalize: bool = True,
        num_tubes_per_class: int = 5,
        min_iou: float = 0.1,
        max_iter: int = 100,
        tol: float = 1e-4,
        seed: int = 0,
        feature_dim: int | None = None,
        class_weight: str | None = None,
        test_tubes: str = "link",
        pca_dim: int | None = None,
        tube_score: str = "mean",
    ) -> None:
        super().__init__()
        if pca_dim is not None and int(pca_dim) < 1:
            raise ValueError(f"pca_dim must be None or >= 1, got {pca_dim!r}")
        if test_tubes not in TEST_TUBES:
            raise ValueError(f"test_tubes must be one of {TEST_TUBES}, got {test_tubes!r}")
        if tube_score not in TUBE_SCORES:
            raise ValueError(f"tube_score must be one of {TUBE_SCORES}, got {tube_score!r}")
        if tube_score != "mean" and test_tubes != "proposals":
            raise ValueError(
                f"tube_score={tube_score!r} scores whole proposals: set test_tubes='proposals' "
                "(test_tubes='link' keeps §3.4's mean over the linked positive boxes)"
            )
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; choose one of {SELECTIONS}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
        if negatives not in _NEGATIVES:
            raise ValueError(f"negatives must be one of {_NEGATIVES}, got {negatives!r}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        if class_weight not in _CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {_CLASS_WEIGHTS}, got {class_weight!r}")
        if num_classes < 1 or em_epochs < 1 or mu < 1:
            raise ValueError("num_classes, em_epochs and mu must be >= 1")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.name = {"gmil": f"gmil{mu}"}.get(selection, selection)
        M = self.num_models
        self.register_buffer("models_weight", torch.zeros(M, num_classes, int(feature_dim or 0)))
        self.register_buffer("models_bias", torch.zeros(M, num_classes))
        # the pca_dim projection (empty until fitted): x -> l2(l2(x) - proj_mean) @ proj
        self.register_buffer("proj_mean", torch.zeros(0))
        self.register_buffer("proj", torch.zeros(0, 0))
        self._data: STILData | None = None
        self._Y: Tensor | None = None  # int8[N, M, L] examples of the current M-step
        self._prev_mask: Tensor | None = None  # bool[N, L] last positives
        self._fold_has_pos: Tensor | None = None  # bool[M, L]
        self._stats: dict[str, float] = {}
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------- inference
    @property
    def num_models(self) -> int:
        """The fold models plus the final one (1 without folds)."""
        f = int(self.hparams["folds"])
        return f + 1 if f > 1 else 1

    @property
    def last_selection(self) -> Tensor | None:
        """bool[N, L]: the last E-step's positives (box row, class) of the attached data, or None
        before the first E-step (reporting: ``stil_data.selection_quality``)."""
        return self._prev_mask

    @property
    def weight(self) -> Tensor:
        """float[L, D] the final class models (trained on every video)."""
        return self.models_weight[-1]

    @property
    def bias(self) -> Tensor:
        return self.models_bias[-1]

    def forward(self, x: Tensor) -> Tensor:
        """Box scores ``[N, L]`` of (normalised) box features ``x [N, D]``."""
        return x.to(self.weight.dtype) @ self.weight.T + self.bias

    def project_features(self, features: np.ndarray) -> np.ndarray:
        """float32[N, k] box features as the model sees them: with ``pca_dim``, L2-normalised,
        centred, projected on the fitted axes and L2-normalised again; else unchanged."""
        if self.proj.numel() == 0:
            if self.hparams.get("pca_dim") is not None:
                raise RuntimeError("pca_dim is set but the projection was never fitted (attach)")
            return features
        mean = self.proj_mean.detach().cpu().numpy()
        proj = self.proj.detach().cpu().numpy()
        x = l2_normalize(features) - mean
        return l2_normalize(x @ proj)

    def predict_tubes(
        self,
        features: Mapping[str, np.ndarray],
        dets: Mapping[str, Detections],
        num_tubes_per_class: int | None = None,
        progress: bool = False,
        proposals: Mapping[str, Tubes] | None = None,
    ) -> TubeDetections:
        """:func:`predict_tubes` with this model's weights and hyperparameters, or with
        ``test_tubes="proposals"`` :func:`score_proposals` of ``proposals`` (then required)."""
        hp = self.hparams
        if self.proj.numel():
            features = {v: self.project_features(np.asarray(f)) for v, f in features.items()}
        if hp.get("test_tubes", "link") == "proposals":
            if proposals is None:
                raise ValueError("test_tubes='proposals' needs the proposals (tubes) to score")
            return score_proposals(
                self.weight.detach(),
                self.bias.detach(),
                features,
                dets,
                proposals,
                hp["normalize"],
                hp.get("tube_score", "mean"),
            )
        return predict_tubes(
            self.weight.detach(),
            self.bias.detach(),
            features,
            dets,
            num_tubes_per_class or hp["num_tubes_per_class"],
            hp["min_iou"],
            hp["normalize"],
            progress=progress,
        )

    # -------------------------------------------------------------------------------- training
    def attach(self, data: STILData) -> None:
        """Use ``data`` for training (checked against the hyperparameters)."""
        hp = self.hparams
        if data.num_classes != hp["num_classes"]:
            raise ValueError(f"data has {data.num_classes} classes, the model {hp['num_classes']}")
        if data.normalized != hp["normalize"]:
            raise ValueError(
                f"data.normalized={data.normalized} but the model's normalize={hp['normalize']}"
            )
        if data.folds != max(int(hp["folds"]), 1):
            fold = assign_folds(data.labels.cpu().numpy(), hp["folds"], hp["seed"])
            data = replace(data, fold=torch.from_numpy(fold), folds=max(int(hp["folds"]), 1))
        if hp["background_negatives"] and hp["selection"] != "stil_noprim" and data.boxes is None:
            raise ValueError(
                "background_negatives needs box coordinates: build the STILData with dets=... "
                "(or set background_negatives=False)"
            )
        if hp["selection"] == "stil":
            has_tube = torch.zeros(data.num_videos, dtype=torch.bool)
            has_tube[data.tube_video.cpu()] = True
            lab = data.labels.cpu()
            no_tube = [
                data.videos[i] for i in torch.nonzero(lab.any(1) & ~has_tube).flatten().tolist()
            ]
            if no_tube:
                warnings.warn(
                    f"{len(no_tube)} labelled training video(s) have no tube and give STIL no "
                    f"positive: {no_tube[:5]}",
                    stacklevel=2,
                )
            dead = torch.nonzero(~(lab & has_tube[:, None]).any(0)).flatten().tolist()
            if dead:
                raise ValueError(f"class(es) {dead} have no positive training video with a tube")
        if hp.get("pca_dim") is not None:
            data = self._project_data(data, int(hp["pca_dim"]))
        D = data.dim
        if self.models_weight.shape[-1] != D:
            M, L = self.num_models, hp["num_classes"]
            self.models_weight = torch.zeros(M, L, D, device=self.models_weight.device)
        self._data = data
        self._prev_mask = None

    def _project_data(self, data: STILData, k: int) -> STILData:
        """Fit the principal axes of the training boxes (once: a resumed or reloaded model keeps
        its own) and return ``data`` with projected, re-normalised features."""
        if not data.normalized:
            raise ValueError("pca_dim needs L2-normalised training features (normalize=True)")
        x = data.features.to(torch.float64)
        if k > x.shape[1]:
            raise ValueError(f"pca_dim={k} exceeds the box feature size {x.shape[1]}")
        if self.proj.numel() == 0 or self.proj.shape != (x.shape[1], k):
            mean = x.mean(0)
            xc = x - mean
            cov = xc.T @ xc / max(x.shape[0] - 1, 1)  # [D, D]: every box, no sampling
            evals, evecs = torch.linalg.eigh(cov)  # ascending
            axes = evecs[:, -k:].flip(1)  # [D, k] the k largest, largest first
            # a sign per axis (largest |loading| positive) so the projection is reproducible
            sign = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
            axes = axes * torch.where(sign == 0, 1.0, sign)
            self.proj_mean = mean.to(torch.float32).to(self.models_weight.device)
            self.proj = axes.to(torch.float32).to(self.models_weight.device)
            kept = float(evals[-k:].sum() / evals.sum().clamp_min(1e-12))
            log.info("STIL pca_dim=%d keeps %.3f of the box features' variance", k, kept)
        mean, proj = self.proj_mean.to(data.features), self.proj.to(data.features)
        feats = torch.nn.functional.normalize((data.features - mean) @ proj, dim=1)
        return replace(data, features=feats.contiguous())

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and dm is not None and hasattr(dm, "stil_data"):
            self.attach(dm.stil_data)
        if stage == "fit" and self._data is None:
            raise RuntimeError("STIL needs data: use STILDataModule(data) or model.attach(data)")

    def _device_data(self) -> STILData:
        if self._data is None:
            raise RuntimeError("no data attached (model.attach(data))")
        if self._data.device != self.models_weight.device:
            self._data = self._data.to(self.models_weight.device)
        return self._data

    def e_step(self, epoch: int) -> dict[str, float]:
        """Select the latent boxes (Eq. 3) and build the examples of the next M-step."""
        hp = self.hparams
        data = self._device_data()
        dev = data.device
        N, L, V, M = data.num_boxes, data.num_classes, data.num_videos, self.num_models
        if epoch == 0:
            if hp["init"] == "random":
                gen = torch.Generator().manual_seed(int(hp["seed"]))
                s = torch.rand(N, generator=gen).to(dev)
            else:
                s = data.priors
            scores = s[:, None].expand(N, L)  # [N, L] class-agnostic first scores
            penalty = hp["prior_penalty"] if hp["prior_penalty"] is not None else hp["penalty"]
        else:
            Wf = self.models_weight.reshape(M * L, -1)  # [M*L, D]
            S = data.features @ Wf.T + self.models_bias.reshape(-1)  # [N, M*L]
            if M == 1:
                scores = S
            else:
                fb = data.fold[data.box_video]  # [N] fold of each box's video
                # A fold model with no positive for c cannot choose for c: the final model does.
                # (Unknown after resuming from a checkpoint: trust the fold models.)
                has = self._fold_has_pos
                if has is None:
                    has = torch.ones(M, L, dtype=torch.bool, device=dev)
                has = has.to(dev)
                m = torch.where(has[fb], fb[:, None], M - 1)  # [N, L]
                scores = S.view(N, M, L).gather(1, m[:, None, :]).squeeze(1)  # [N, L]
            penalty = hp["penalty"]
        lab = data.labels
        pv, pc = torch.nonzero(lab, as_tuple=True)  # positive pairs
        if hp["negatives"] == "selected":
            nv, nc = torch.nonzero(~lab, as_tuple=True)
            pv, pc = torch.cat([pv, nv]), torch.cat([pc, nc])
        sel = select_latent(data, scores, hp["selection"], hp["mu"], penalty, (pv, pc))
        is_pos = lab[sel.pair_video, sel.pair_class]  # [P]
        pos_sel = sel.subset(is_pos)
        pos = pos_sel.mask(N, L)  # [N, L]
        if hp["negatives"] == "all":
            neg = ~lab[data.box_video]  # [N, L]
        else:
            neg = sel.subset(~is_pos).mask(N, L)
        n_bg = 0
        if hp["background_negatives"] and hp["selection"] != "stil_noprim":
            bb, bp = background_boxes(data, pos_sel, hp["background_iou"])
            if hp["max_background"] is not None and len(bb):
                gen = torch.Generator().manual_seed(int(hp["seed"]) * 1000 + epoch)
                key = torch.rand(len(bb), generator=gen).to(dev)
                keep = _rank_in_group(bp, key) < int(hp["max_background"])
                bb, bp = bb[keep], bp[keep]
            neg = neg.clone()
            neg[bb, pos_sel.pair_class[bp]] = True
            n_bg = len(bb)
        # Which models see each video: fold model m < folds not fold m's videos; the last all.
        inm = torch.ones(V, M, dtype=torch.bool, device=dev)
        if M > 1:
            inm[:, : M - 1] = data.fold[:, None] != torch.arange(M - 1, device=dev)[None, :]
        inb = inm[data.box_video][:, :, None]  # [N, M, 1]
        Y = torch.zeros(N, M, L, dtype=torch.int8, device=dev)
        Y[neg[:, None, :] & inb] = -1
        Y[pos[:, None, :] & inb] = 1  # [N, M, L]
        self._Y = Y
        self._fold_has_pos = (Y == 1).any(dim=0)  # [M, L]
        missing = torch.nonzero(~self._fold_has_pos[: M - 1]).tolist() if M > 1 else []
        if missing and epoch == 0:
            warnings.warn(
                f"fold models without a positive for some class ((fold, class): {missing[:5]}); "
                "those folds' videos are re-selected by the final model for that class",
                stacklevel=2,
            )
        change = float("nan")
        if self._prev_mask is not None:
            prev = self._prev_mask.to(dev)
            union = (pos | prev).sum()
            change = float(1.0 - (pos & prev).sum() / union.clamp_min(1))
        self._prev_mask = pos
        npos = int(is_pos.sum())
        return {
            "selection_change": change,
            "positives": float(pos.sum()),
            "background": float(n_bg),
            "boxes_per_video": float(pos.sum()) / max(npos, 1),
        }

    def m_step(self) -> dict[str, float]:
        """Fit every fold model and the final model on the current examples (one batched solve)."""
        hp = self.hparams
        data = self._device_data()
        if self._Y is None:
            raise RuntimeError("m_step before e_step")
        N, M, L = self._Y.shape
        Y = self._Y.reshape(N, M * L)
        weight = balanced_weights(Y) if hp.get("class_weight") == "balanced" else None
        info: dict[str, Any] = {}
        W, b = fit_linear_hinge(
            data.features,
            Y,
            hp["C"],
            hp["loss"],
            max_iter=hp["max_iter"],
            tol=hp["tol"],
            W0=self.models_weight.reshape(M * L, -1).to(data.features.dtype),
            b0=self.models_bias.reshape(-1).to(data.features.dtype),
            info=info,
            weight=weight,
        )
        self.models_weight = W.reshape(M, L, -1).to(self.models_weight.dtype)
        self.models_bias = b.reshape(M, L).to(self.models_bias.dtype)
        final = self._Y[:, -1]  # [N, L]
        return {
            "objective": float(info["objective"].reshape(M, L)[-1].mean()),
            "num_pos": float((final == 1).sum()),
            "num_neg": float((final == -1).sum()),
            "newton_iters": float(info["iterations"]),
            "converged": float(info["converged"].float().mean()),
        }

    def fit_em(
        self, data: STILData | None = None, progress: bool = False
    ) -> list[dict[str, float]]:
        """Train without Lightning: ``em_epochs`` rounds of E-step then M-step; returns the stats."""
        if data is not None:
            self.attach(data)
        for epoch in tqdm(range(self.hparams["em_epochs"]), desc="STIL EM", disable=not progress):
            stats = {"epoch": float(epoch), **self.e_step(epoch), **self.m_step()}
            self.history.append(stats)
        return self.history

    def on_fit_start(self) -> None:
        if (
            self.trainer.max_epochs is not None
            and 0 <= self.trainer.max_epochs < self.hparams["em_epochs"]
        ):
            warnings.warn(
                f"trainer.max_epochs={self.trainer.max_epochs} < em_epochs="
                f"{self.hparams['em_epochs']}: STIL will stop early",
                stacklevel=2,
            )

    def on_train_epoch_start(self) -> None:
        if self.current_epoch < self.hparams["em_epochs"]:
            start = time.perf_counter()
            self._stats = self.e_step(self.current_epoch)
            self._stats["e_step_s"] = time.perf_counter() - start

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        if self.current_epoch >= self.hparams["em_epochs"]:
            return None
        start = time.perf_counter()
        stats = {**self._stats, **self.m_step()}
        stats["m_step_s"] = time.perf_counter() - start
        log.info(
            "STIL EM round %d/%d: E-step %.0f s, M-step %.0f s, objective %.4g, %.1f boxes per "
            "positive video and class, selection change %.3f",
            self.current_epoch + 1,
            self.hparams["em_epochs"],
            stats["e_step_s"],
            stats["m_step_s"],
            stats.get("objective", math.nan),
            stats.get("boxes_per_video", math.nan),
            stats.get("selection_change", math.nan),
        )
        self.history.append({"epoch": float(self.current_epoch), **stats})
        for k, v in stats.items():
            if not math.isnan(v):
                # per epoch: one M-step per epoch never reaches the trainer's log_every_n_steps
                self.log(f"train/{k}", v, batch_size=1, on_step=False, on_epoch=True)
        return None

    def on_train_epoch_end(self) -> None:
        if self.current_epoch + 1 >= self.hparams["em_epochs"]:
            self.trainer.should_stop = True

    def configure_optimizers(self) -> None:  # type: ignore[override]
        """No torch optimiser: the M-step is a closed full-batch solve (``fit_linear_hinge``)."""
        return None

    # ------------------------------------------------------------------------------ resume
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The EM state beyond the models (in ``state_dict``): which fold models have a positive
        per class (the next E-step's choice of model), the last selection (its change statistic)
        and the history, so a resumed run continues exactly where it was killed."""
        checkpoint["stil_em"] = {
            "fold_has_pos": None if self._fold_has_pos is None else self._fold_has_pos.cpu(),
            "prev_mask": None if self._prev_mask is None else self._prev_mask.cpu(),
            "history": [dict(h) for h in self.history],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        em = checkpoint.get("stil_em")
        if em is None:  # a checkpoint from before the EM state was saved: trust the fold models
            return
        self._fold_has_pos = em["fold_has_pos"]
        self._prev_mask = em["prev_mask"]
        self.history = [dict(h) for h in em["history"]]

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # D is only known once data is seen: size the buffers to the checkpoint's.
        for name in ("models_weight", "models_bias", "proj_mean", "proj"):
            t = state_dict.get(prefix + name)
            if t is not None and t.shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros_like(t, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
