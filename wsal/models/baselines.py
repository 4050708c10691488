"""Methods that need no training; the reference points every learned method is compared with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from wsal.data.annotations import DatasetIndex
from wsal.structures import TubeDetections, Tubes

__all__ = ["oracle_label_detections"]


def oracle_label_detections(
    index: DatasetIndex, videos: Sequence[str], tubes: Mapping[str, Tubes]
) -> TubeDetections:
    """Localization only: every tube of a video is labelled with that video's true class(es) and
    scored by its linking score (e.g. mean detector prior).

    Its video-mAP measures how well the proposals *localize* actions when the class is given:
    what ranking the tubes by their linking score achieves, not what the proposals allow (a
    method that ranks better can beat it). Not a weakly-supervised result: it reads test labels.
    """
    parts = []
    for v in videos:
        t = tubes[v]
        for lab in index.videos[v].labels:
            parts.append(TubeDetections.from_tubes(v, t, labels=np.full(t.num_tubes, lab)))
    return TubeDetections.concat(parts)
