"""A torchmetrics ``VideoAP`` whose detection states merge across DDP ranks.

Each rank ``update``s with its own videos' TubeDetections; states are concatenated (``cat``) on
``compute``, so the result is the same as evaluating all detections in one process (STYLE 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from wsal.evaluation.protocol import GroundTruth, VideoAPResult, video_ap
from wsal.structures import TubeDetections


class VideoAP(Metric):
    """Video-AP over the videos of ``gt``; ``compute()`` returns ``{"mAP@0.5": ..., ...}``.

    ``update(dets)`` takes a :class:`TubeDetections` whose videos are in ``gt.videos``. Tubes are
    stored as flat tensors: video position, label and score per detection (float64 scores), rows
    ``[M, 5]`` and per-detection lengths (lengths, not offsets, so that rank-wise concatenation
    stays valid).
    """

    full_state_update = False

    def __init__(
        self,
        gt: GroundTruth,
        thresholds: Sequence[float] = (0.2, 0.5, 0.75),
        protocol: str = "act",
        nms: float = 0.3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.gt = gt
        self.thresholds = tuple(float(t) for t in thresholds)
        self.protocol = protocol
        self.nms = nms
        self._pos = {v: i for i, v in enumerate(gt.videos)}
        for name in ("video", "label", "score", "lengths", "rows"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.last_result: VideoAPResult | None = None

    def update(self, dets: TubeDetections) -> None:  # type: ignore[override]
        unknown = {str(v) for v in dets.video} - set(self._pos)
        if unknown:
            raise ValueError(
                f"VideoAP.update: videos not in the evaluated split: {sorted(unknown)[:3]}"
            )
        self.video.append(
            torch.tensor(
                [self._pos[str(v)] for v in dets.video], dtype=torch.long, device=self.device
            )
        )
        self.label.append(torch.as_tensor(dets.label, dtype=torch.long, device=self.device))
        self.score.append(torch.as_tensor(dets.score, dtype=torch.float64, device=self.device))
        self.lengths.append(torch.as_tensor(dets.lengths(), dtype=torch.long, device=self.device))
        self.rows.append(torch.as_tensor(dets.rows, dtype=torch.float64, device=self.device))

    def compute(self) -> dict[str, float]:
        if isinstance(self.video, list) and not self.video:
            dets = TubeDetections.empty()
        else:
            lengths = dim_zero_cat(self.lengths).cpu().numpy()
            dets = TubeDetections(
                np.asarray(self.gt.videos, dtype=object)[dim_zero_cat(self.video).cpu().numpy()],
                dim_zero_cat(self.label).cpu().numpy(),
                dim_zero_cat(self.score).cpu().numpy(),
                np.concatenate([[0], np.cumsum(lengths)]),
                dim_zero_cat(self.rows).cpu().numpy(),
            )
        res = video_ap(self.gt, dets, self.thresholds, self.protocol, self.nms)
        self.last_result = res
        out = {f"mAP@{t:g}": res.map(t) for t in self.thresholds}
        out["mAP@0.5:0.95"] = res.map_50_95
        return out
