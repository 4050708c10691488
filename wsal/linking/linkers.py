"""Linker objects for the pipeline: hyperparameters + ``link(dets) -> tubes`` over many videos.

Thin wrappers over the linking functions (STYLE: the function does the work); they batch videos,
show progress and expose a ``cache_key`` of every parameter that shapes their output.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from wsal.data.annotations import DatasetIndex
from wsal.linking.batching import BatchedLinker, params_key
from wsal.linking.temporal_prim import temporal_prim_batch
from wsal.structures import Detections, Tubes

__all__ = ["ActorLinker", "TemporalPrimLinker"]


class TemporalPrimLinker(BatchedLinker):
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

    def params(self) -> dict[str, Any]:
        return {"num_tubes": self.num_tubes, "min_iou": self.min_iou, "min_score": self.min_score}

    def link_batch(self, dets: list[Detections], names: list[str]) -> list[Tubes]:
        return temporal_prim_batch(
            dets, self.num_tubes, self.min_iou, self.min_score, device=self.device
        )


class ActorLinker:
    """Actor linking ("Guess Where?" §3.1, Alg. 1): detector seeds tracked by SiamFC.

    ``snap_iou``: detector-tracker coordination (see :mod:`wsal.linking.actor`; None = pure
    tracker tubes). ``batch_seeds``: seeds per tracker call (None: 1 on CPU, 8 on CUDA; the tubes
    do not depend on it). ``tracker_config``: SiamFC inference settings over the checkpoint's.

    Needs the videos' frames: the pipeline calls ``link(dets, index=index)`` and each video is
    decoded through ``index.video_path``. The tracker is a :class:`wsal.linking.siamfc.SiamFCTracker`
    given directly, or loaded from ``checkpoint``; with neither, the default tracker is trained
    once on the SynthActors train split at ``tracker_data`` and reused (``ensure_tracker``).
    """

    name = "actor"
    needs_frames = True

    def __init__(
        self,
        num_tubes: int = 20,
        suppress_iou: float = 0.7,
        min_score: float = 0.0,
        batch_seeds: int | None = None,
        snap_iou: float | None = 0.5,
        tracker: Any = None,
        checkpoint: str | None = None,
        tracker_data: str | None = "data/synthactors",
        tracker_config: Mapping[str, Any] | None = None,
        device: str | None = None,
        progress: bool = True,
        backbone: str = "alexnet",
    ) -> None:
        if num_tubes < 1:
            raise ValueError(f"num_tubes must be >= 1, got {num_tubes}")
        if backbone not in ("alexnet", "efficientnet_lite0"):
            raise ValueError(
                f"backbone must be 'alexnet' or 'efficientnet_lite0', got {backbone!r}"
            )
        if not 0.0 <= suppress_iou <= 1.0:
            raise ValueError(f"suppress_iou must be in [0, 1], got {suppress_iou}")
        self.num_tubes = num_tubes
        self.suppress_iou = suppress_iou
        self.min_score = min_score
        self.batch_seeds = batch_seeds
        self.snap_iou = snap_iou
        self.tracker = tracker
        self._own_tracker = tracker is not None  # given in memory, not loaded from a checkpoint
        self.checkpoint = checkpoint
        self.tracker_data = tracker_data
        self.tracker_config = dict(tracker_config or {})
        if device == "auto":  # the GPU when there is one
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.progress = progress
        self.backbone = backbone

    def _checkpoint(self) -> Path:
        if self.checkpoint:
            path = Path(self.checkpoint)
            if not path.is_file():
                raise FileNotFoundError(
                    f"actor linker: tracker checkpoint {path} not found; train one with "
                    "`python -m wsal.models.tracker train --data DATA --out PATH` or leave "
                    "checkpoint unset to train the default tracker"
                )
            return path
        if not self.tracker_data:
            raise ValueError("actor linker: give a tracker, a checkpoint or tracker_data")
        if self.backbone == "efficientnet_lite0":
            return pretrained_tracker_checkpoint(Path(self.tracker_data).parent / "trackers")
        from wsal.models.tracker import ensure_tracker

        return Path(ensure_tracker(self.tracker_data))

    def get_tracker(self) -> Any:
        """The tracker, loaded (or trained once) on first use."""
        if self.tracker is None:
            from wsal.linking.siamfc import SiamFCTracker

            self.tracker = SiamFCTracker(
                checkpoint=str(self._checkpoint()),
                config=self.tracker_config or None,
                device=self.device,
            )
        return self.tracker

    def cache_key(self) -> str:
        if self._own_tracker and self.checkpoint is None:
            tracker_id = f"object:{id(self.tracker)}"  # an in-memory tracker: no reuse across runs
        else:
            tracker_id = hashlib.sha1(self._checkpoint().read_bytes()).hexdigest()
        params = {
            "linker": self.name,
            "num_tubes": self.num_tubes,
            "suppress_iou": self.suppress_iou,
            "min_score": self.min_score,
            "snap_iou": self.snap_iou,
            "tracker": tracker_id,
            "tracker_config": self.tracker_config,
        }
        return params_key(params)

    def link(
        self, dets: Mapping[str, Detections], index: DatasetIndex | None = None
    ) -> dict[str, Tubes]:
        """Actor tubes per video (same keys as ``dets``); frames decoded via ``index``."""
        if index is None:
            raise ValueError("actor linking needs the videos: call link(dets, index=index)")
        from wsal.data.video import read_frames
        from wsal.linking.actor import actor_link

        tracker = self.get_tracker()
        # On a CPU the tracker's cost is per crop, so batching seeds buys nothing and every seed
        # that an earlier one of its batch suppresses is wasted work: track one at a time there.
        batch = self.batch_seeds or (8 if str(self.device or "cpu").startswith("cuda") else 1)
        out: dict[str, Tubes] = {}
        for v in tqdm(dets, desc="linking (actor)", unit="video", disable=not self.progress):
            d = dets[v]
            frames = read_frames(index.video_path(v)) if len(d) else _no_frames(d.num_frames)
            out[v] = actor_link(
                frames,
                d,
                tracker,
                num_tubes=self.num_tubes,
                suppress_iou=self.suppress_iou,
                min_score=self.min_score,
                batch_seeds=batch,
                snap_iou=self.snap_iou,
                video=v,
            )
        return out


def _no_frames(num_frames: int) -> np.ndarray:
    """A video without detections needs no pixels (it gets no tubes): skip decoding it."""
    return np.zeros((num_frames, 1, 1, 3), np.uint8)


def pretrained_tracker_checkpoint(folder: str | os.PathLike) -> Path:
    """The SiamFC tracker with the frozen ImageNet EfficientNet-Lite0 embedding
    (``SiamFCConfig(**PRETRAINED_CONFIG)``, untrained: docs/real_footage.md) as a checkpoint file
    ``folder/siamfc_lite0_<hash>.pt``, written once (so tube caches key on it like any tracker)."""
    from wsal.linking.siamfc import PRETRAINED_CONFIG, SiamFCConfig, SiamFCNet, save_checkpoint

    cfg = SiamFCConfig(**PRETRAINED_CONFIG)
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    path = Path(folder) / f"siamfc_lite0_{digest}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, SiamFCNet(cfg), extra={"pretrained": "efficientnet_lite0 ImageNet"})
    return path
