"""Image detectors over video datasets: torchvision models by name, run as a sharded, resumable
Lightning predict whose per-video shards merge into one detections store (docs/detectors.md)."""

from wsal.detection.model import (
    ResolvedWeights,
    WeightsNotFoundError,
    build_detector,
    class_ids,
    filter_detections,
    resolve_weights,
)
from wsal.detection.predict import (
    DetectionDataModule,
    DetectorModule,
    FrameChunks,
    ShardWriter,
    VideoJob,
    completed_videos,
    dataset_key,
    jobs_from_index,
    merge_shards,
    run_detection,
    shard_videos,
)

__all__ = [
    "DetectionDataModule",
    "DetectorModule",
    "FrameChunks",
    "ResolvedWeights",
    "ShardWriter",
    "VideoJob",
    "WeightsNotFoundError",
    "build_detector",
    "class_ids",
    "completed_videos",
    "dataset_key",
    "filter_detections",
    "jobs_from_index",
    "merge_shards",
    "resolve_weights",
    "run_detection",
    "shard_videos",
]
