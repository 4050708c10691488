"""The bounds every result is printed next to (DESIGN §5), all on the run's own tubes:

- **chance**: each tube of a test video labelled with the video's true class and scored at random
  (mAP averaged over a few seeded draws; top-1 rate = its expectation, exact);
- **prior**: true class, tubes ranked by their linking score (no learning);
- **ceiling**: true class, each video's best tube first (score = st-IoU with the GT): what the
  proposals allow;

and the **top-1 rate** of any result: the fraction of test videos whose highest-scored tube of a
true class lies on a GT tube of that class (st-IoU >= 0.5). A method that learned which actor acts
puts it far above chance and prior; one that only classifies the video does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from wsal.data.annotations import DatasetIndex
from wsal.evaluation.protocol import GroundTruth, _det_gt_ious, video_ap
from wsal.structures import TubeDetections, Tubes
from wsal.tube_ops import interpolate_gaps

__all__ = ["bounds", "gt_overlap", "top1_rate", "true_class_detections"]


def true_class_detections(
    index: DatasetIndex, videos: Sequence[str], tubes: Mapping[str, Tubes]
) -> TubeDetections:
    """Every tube of each video labelled with each of the video's true classes, scored by its
    linking score (the prior: e.g. the mean detector score). Reads the labels of ``videos``."""
    parts = []
    for v in videos:
        t = tubes[v]
        for lab in index.videos[v].labels:
            parts.append(TubeDetections.from_tubes(v, t, labels=np.full(t.num_tubes, lab)))
    return TubeDetections.concat(parts)


def gt_overlap(gt: GroundTruth, dets: TubeDetections, protocol: str = "act") -> np.ndarray:
    """float64[N]: each detection's best st-IoU with a GT tube of its video and label (0 where
    there is none, or the video is not evaluated)."""
    out = np.zeros(len(dets))
    if len(dets) == 0 or gt.num_tubes == 0:
        return out
    pos_of = {v: i for i, v in enumerate(gt.videos)}
    vpos = np.array([pos_of.get(str(v), -1) for v in dets.video], np.int64)
    inside = np.nonzero((vpos >= 0) & (dets.label >= 0))[0]
    sub = dets.select(inside)
    rows, offsets, _ = interpolate_gaps(sub.rows, sub.offsets)
    sub = TubeDetections(sub.video, sub.label, sub.score, offsets, rows)
    keep = np.arange(len(sub))
    _, ious, _ = _det_gt_ious(gt, sub, keep, vpos[inside], protocol == "act")
    out[inside] = np.maximum(ious.max(axis=1), 0.0)
    return out


def _top_rows(gt: GroundTruth, dets: TubeDetections) -> tuple[np.ndarray, np.ndarray]:
    """(row of the highest-scored true-class detection of each evaluated video, or -1; mask of
    the videos that have a GT tube)."""
    pos_of = {v: i for i, v in enumerate(gt.videos)}
    V = len(gt.videos)
    vpos = np.array([pos_of.get(str(v), -1) for v in dets.video], np.int64)
    true = np.array(
        [p >= 0 and int(lab) in gt.video_labels[p] for p, lab in zip(vpos, dets.label)], bool
    )
    idx = np.nonzero(true)[0]
    best = np.full(V, -1, np.int64)
    if idx.size:
        order = idx[np.lexsort((-dets.score[idx], vpos[idx]))]  # by video, best score first
        first = np.unique(vpos[order], return_index=True)[1]
        best[vpos[order][first]] = order[first]
    has_gt = np.zeros(V, bool)
    has_gt[gt.video_idx] = True
    return best, has_gt


def top1_rate(
    gt: GroundTruth, dets: TubeDetections, iou: float = 0.5, protocol: str = "act"
) -> float:
    """Fraction of the evaluated videos with a GT tube whose highest-scored detection of one of
    their true classes has st-IoU >= ``iou`` with a GT tube of that class (no such detection: a
    miss). Ties go to the first row."""
    best, has_gt = _top_rows(gt, dets)
    if not has_gt.any():
        return float("nan")
    ov = gt_overlap(gt, dets, protocol)
    hit = (best >= 0) & (ov[np.maximum(best, 0)] >= iou)
    return float(hit[has_gt].mean())


def _expected_top1(gt: GroundTruth, dets: TubeDetections, iou: float, protocol: str) -> float:
    """Top-1 rate of a uniformly random ranking of each video's true-class tubes: the mean over
    videos of the fraction of those tubes that hit."""
    pos_of = {v: i for i, v in enumerate(gt.videos)}
    vpos = np.array([pos_of.get(str(v), -1) for v in dets.video], np.int64)
    ok = vpos >= 0
    hits = gt_overlap(gt, dets, protocol) >= iou
    n = np.bincount(vpos[ok], minlength=len(gt.videos)).astype(float)
    h = np.bincount(vpos[ok], weights=hits[ok], minlength=len(gt.videos))
    has_gt = np.zeros(len(gt.videos), bool)
    has_gt[gt.video_idx] = True
    if not has_gt.any():
        return float("nan")
    frac = np.divide(h, n, out=np.zeros_like(h), where=n > 0)
    return float(frac[has_gt].mean())


def bounds(
    gt: GroundTruth,
    prior: TubeDetections,
    thresholds: Sequence[float],
    protocol: str = "act",
    nms: float = 0.3,
    draws: int = 5,
    seed: int = 0,
    top1_iou: float = 0.5,
) -> dict[str, dict[str, object]]:
    """``{"chance" | "prior" | "ceiling": {"video_mAP": {tau: mAP}, "top1": rate}}`` of the
    true-class tubes ``prior`` (:func:`true_class_detections`), evaluated like any result."""
    taus = [float(t) for t in thresholds]

    def maps(dets: TubeDetections) -> dict[str, float]:
        r = video_ap(gt, dets, thresholds=taus, protocol=protocol, nms=nms)
        return {f"{t:g}": r.map(t) for t in taus}

    ov = gt_overlap(gt, prior, protocol)
    ceiling = TubeDetections(prior.video, prior.label, ov, prior.offsets, prior.rows)
    rng = np.random.default_rng(seed)
    chance_maps = []
    for _ in range(draws):
        noise = rng.random(len(prior))
        chance_maps.append(
            maps(TubeDetections(prior.video, prior.label, noise, prior.offsets, prior.rows))
        )
    chance = {k: float(np.mean([m[k] for m in chance_maps])) for k in chance_maps[0]}
    return {
        "chance": {
            "video_mAP": chance,
            "top1": _expected_top1(gt, prior, top1_iou, protocol),
            "draws": draws,
        },
        "prior": {"video_mAP": maps(prior), "top1": top1_rate(gt, prior, top1_iou, protocol)},
        "ceiling": {
            "video_mAP": maps(ceiling),
            "top1": top1_rate(gt, ceiling, top1_iou, protocol),
        },
    }
