"""A run's numbers: evaluate its TubeDetections against the split's GT (video-AP at every
threshold, AUC, mAP@0.5:0.95, proposal recall, classification accuracy) and print them with the
protocol next to every number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from wsal.data.annotations import DatasetIndex
from wsal.evaluation.bounds import bounds, top1_rate
from wsal.evaluation.protocol import (
    AUC_THRESHOLDS,
    GroundTruth,
    proposal_recall,
    video_ap,
    video_classification_accuracy,
)
from wsal.structures import TubeDetections

__all__ = ["TOP1_IOU", "EvaluationSpec", "evaluate", "print_summary", "tube_length_stats"]

#: st-IoU at which a video's top tube counts as on the performer (the top-1 rate)
TOP1_IOU = 0.5


@dataclass
class EvaluationSpec:
    """How results are evaluated (printed next to every number)."""

    split: str = "test"
    protocol: str = "act"
    iou: Sequence[float] = (0.2, 0.5, 0.75)
    nms: float = 0.3
    recall_iou: Sequence[float] = (0.2, 0.5)
    num_pictures: int = 4
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate(
    index: DatasetIndex,
    results: TubeDetections,
    proposals: TubeDetections,
    spec: EvaluationSpec,
    prior: TubeDetections | None = None,
) -> dict[str, Any]:
    """video-AP (+ AUC over 0.1-0.6, mAP@0.5:0.95), proposal recall, classification accuracy and
    the top-1 rate; with ``prior`` (the true-class tubes scored by their linking score,
    :func:`wsal.evaluation.bounds.true_class_detections`) also the chance, prior and ceiling
    bounds on the same tubes (:func:`wsal.evaluation.bounds.bounds`)."""
    gt = GroundTruth.from_index(index, spec.split)
    taus = sorted({float(t) for t in spec.iou} | set(AUC_THRESHOLDS))
    vap = video_ap(gt, results, thresholds=taus, protocol=spec.protocol, nms=spec.nms)
    recall = proposal_recall(gt, proposals, thresholds=spec.recall_iou, protocol=spec.protocol)
    out: dict[str, Any] = {
        "protocol": spec.protocol,
        "nms": spec.nms,
        "split": spec.split,
        "num_videos": len(gt.videos),
        "num_gt_tubes": gt.num_tubes,
        "num_detections": vap.num_detections,
        "video_mAP": {f"{t:g}": vap.map(t) for t in spec.iou},
        "AP": {f"{t:g}": dict(zip(gt.labels, map(float, vap.ap[round(t, 6)]))) for t in spec.iou},
        "mAP@0.5:0.95": vap.map_50_95,
        "AUC@0.1:0.6": vap.auc(),
        "mAP_curve": {f"{t:g}": vap.map(t) for t in taus},
        "proposal_recall": {f"{t:g}": [float(x) for x in r] for t, r in recall.items()},
        "video_accuracy": video_classification_accuracy(gt, results),
        "top1": top1_rate(gt, results, TOP1_IOU, spec.protocol),
        "tube_length": tube_length_stats(index, results),
        "eval_seconds": vap.seconds,
    }
    if prior is not None:
        out["bounds"] = bounds(gt, prior, spec.iou, spec.protocol, spec.nms, top1_iou=TOP1_IOU)
    return out


def tube_length_stats(index: DatasetIndex, dets: TubeDetections) -> dict[str, float]:
    """Lengths of the detected tubes (first to last frame, inclusive) in frames and as a fraction
    of their video: median, mean, 10th and 90th percentile (NaN without detections). A method whose
    tubes are a frame or two long cannot reach st-IoU 0.5 on trimmed videos."""
    if len(dets) == 0:
        return {k: float("nan") for k in ("median", "mean", "p10", "p90", "median_fraction")}
    first = dets.rows[dets.offsets[:-1], 0]
    last = dets.rows[dets.offsets[1:] - 1, 0]
    n = last - first + 1  # [N] frames spanned
    nframes = np.array([index.videos[str(v)].nframes for v in dets.video], np.float64)
    return {
        "median": float(np.median(n)),
        "mean": float(n.mean()),
        "p10": float(np.percentile(n, 10)),
        "p90": float(np.percentile(n, 90)),
        "median_fraction": float(np.median(n / nframes)),
    }


def print_summary(res: dict[str, Any], title: str) -> None:
    """The results table, with the bounds (chance: a random tube of the video, prior: linking
    score, ceiling: the best tube first; all with the true class) beside the method's numbers."""
    nan = float("nan")
    table = Table(
        title=title,
        caption=(
            f"protocol={res['protocol']} (ACT/MOC videoAP)  nms={res['nms']:g}  split={res['split']}  "
            f"videos={res['num_videos']}  GT tubes={res['num_gt_tubes']}"
            if res["protocol"] == "act"
            else f"protocol={res['protocol']}  nms={res['nms']:g}  split={res['split']}"
        ),
    )
    b = res.get("bounds") or {}
    names = [n for n in ("chance", "prior", "ceiling") if n in b]
    table.add_column("metric")
    table.add_column("value", justify="right")
    for n in names:
        table.add_column(n, justify="right", style="dim")
    for t, m in res["video_mAP"].items():
        table.add_row(
            f"video-mAP@{t}", f"{m:.4f}", *(f"{b[n]['video_mAP'].get(t, nan):.4f}" for n in names)
        )
    if "top1" in res:
        table.add_row(
            f"top-1 tube on the performer (st-IoU >= {TOP1_IOU:g})",
            f"{res['top1']:.3f}",
            *(f"{b[n]['top1']:.3f}" for n in names),
        )
    table.add_row("video-mAP@0.5:0.95", f"{res['mAP@0.5:0.95']:.4f}")
    table.add_row("AUC (mAP over st-IoU 0.1-0.6)", f"{res['AUC@0.1:0.6']:.4f}")
    for t, r in res["proposal_recall"].items():
        if r:
            table.add_row(
                f"proposal recall@{t} (1 / all {len(r)} tubes)", f"{r[0]:.3f} / {r[-1]:.3f}"
            )
    table.add_row("video accuracy (top tube's class)", f"{res['video_accuracy']:.3f}")
    tl = res.get("tube_length")
    if tl and np.isfinite(tl["median"]):
        table.add_row(
            "detected tube length, median (frames / of video)",
            f"{tl['median']:g} / {tl['median_fraction']:.2f}",
        )
    Console().print(table)
