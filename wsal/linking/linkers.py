"""Linker objects for the pipeline: hyperparameters + ``link(dets) -> tubes`` over many videos.

Thin wrappers over the linking functions (STYLE: the function does the work); they batch videos,
show progress and expose a ``cache_key`` of every parameter that shapes their output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from tqdm import tqdm

from wsal.linking.temporal_prim import temporal_prim_batch
from wsal.structures import Detections, Tubes

__all__ = ["TemporalPrimLinker"]


class TemporalPrimLinker:
    """Temporal Prim (STIL §3.2): ``num_tubes`` tubes per video from the boxes' prior scores."""

    name = "temporal_prim"

    def __init__(
        self,
        num_tubes: int = 10,
        min_iou: float = 0.1,
        min_score: float = 0.0,
        batch_videos: int = 64,
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        if num_tubes < 1:
            raise ValueError(f"num_tubes must be >= 1, got {num_tubes}")
        self.num_tubes = num_tubes
        self.min_iou = min_iou
        self.min_score = min_score
        self.batch_videos = batch_videos
        self.device = device
        self.progress = progress

    def cache_key(self) -> str:
        params = {
            "linker": self.name,
            "num_tubes": self.num_tubes,
            "min_iou": self.min_iou,
            "min_score": self.min_score,
        }
        return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]

    def link(self, dets: Mapping[str, Detections]) -> dict[str, Tubes]:
        """Tubes per video (same keys as ``dets``), linked ``batch_videos`` videos per call."""
        videos = list(dets)
        out: dict[str, Tubes] = {}
        bar = tqdm(
            total=len(videos),
            desc="linking (temporal_prim)",
            unit="video",
            disable=not self.progress,
        )
        for i in range(0, len(videos), self.batch_videos):
            chunk = videos[i : i + self.batch_videos]
            tubes = temporal_prim_batch(
                [dets[v] for v in chunk],
                self.num_tubes,
                self.min_iou,
                self.min_score,
                device=self.device,
            )
            out.update(zip(chunk, tubes))
            bar.update(len(chunk))
        bar.close()
        return out
