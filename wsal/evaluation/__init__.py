"""Evaluation: video-AP (ACT/MOC protocol or VOC), AUC, frame-AP, proposal recall, accuracy."""

from wsal.evaluation.protocol import (
    AUC_THRESHOLDS,
    COCO_THRESHOLDS,
    PROTOCOLS,
    GroundTruth,
    VideoAPResult,
    auc,
    frame_ap,
    pr_curves,
    proposal_recall,
    video_ap,
    video_classification_accuracy,
)

__all__ = [
    "AUC_THRESHOLDS",
    "COCO_THRESHOLDS",
    "PROTOCOLS",
    "GroundTruth",
    "VideoAPResult",
    "auc",
    "frame_ap",
    "pr_curves",
    "proposal_recall",
    "video_ap",
    "video_classification_accuracy",
]
