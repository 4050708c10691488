"""A run's numbers: evaluate its TubeDetections against the split's GT (video-AP at every
threshold, AUC, mAP@0.5:0.95, proposal recall, classification accuracy) and print them with the
protocol next to every number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from wsal.data.annotations import DatasetIndex
from wsal.evaluation.protocol import (
    AUC_THRESHOLDS,
    GroundTruth,
    proposal_recall,
    video_ap,
    video_classification_accuracy,
)
from wsal.structures import TubeDetections

__all__ = ["EvaluationSpec", "evaluate", "print_summary"]


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
    index: DatasetIndex, results: TubeDetections, proposals: TubeDetections, spec: EvaluationSpec
) -> dict[str, Any]:
    """video-AP (+ AUC over 0.1-0.6, mAP@0.5:0.95), proposal recall and classification accuracy."""
    gt = GroundTruth.from_index(index, spec.split)
    taus = sorted({float(t) for t in spec.iou} | set(AUC_THRESHOLDS))
    vap = video_ap(gt, results, thresholds=taus, protocol=spec.protocol, nms=spec.nms)
    recall = proposal_recall(gt, proposals, thresholds=spec.recall_iou, protocol=spec.protocol)
    return {
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
        "eval_seconds": vap.seconds,
    }


def print_summary(res: dict[str, Any], title: str) -> None:
    table = Table(
        title=title,
        caption=(
            f"protocol={res['protocol']} (ACT/MOC videoAP)  nms={res['nms']:g}  split={res['split']}  "
            f"videos={res['num_videos']}  GT tubes={res['num_gt_tubes']}"
            if res["protocol"] == "act"
            else f"protocol={res['protocol']}  nms={res['nms']:g}  split={res['split']}"
        ),
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for t, m in res["video_mAP"].items():
        table.add_row(f"video-mAP@{t}", f"{m:.4f}")
    table.add_row("video-mAP@0.5:0.95", f"{res['mAP@0.5:0.95']:.4f}")
    table.add_row("AUC (mAP over st-IoU 0.1-0.6)", f"{res['AUC@0.1:0.6']:.4f}")
    for t, r in res["proposal_recall"].items():
        if r:
            table.add_row(
                f"proposal recall@{t} (1 / all {len(r)} tubes)", f"{r[0]:.3f} / {r[-1]:.3f}"
            )
    table.add_row("video accuracy (top tube's class)", f"{res['video_accuracy']:.3f}")
    Console().print(table)
