"""Methods that need no training; the reference points every learned method is compared with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from wsal.data.annotations import DatasetIndex
from wsal.structures import TubeDetections, Tubes

__all__ = ["OracleLabelTubes"]


class OracleLabelTubes:
    """Localization only: every tube of a video is labelled with that video's true class(es) and
    scored by its linking score (e.g. mean detector prior).

    Its video-mAP measures how well the proposals *localize* actions, independent of
    classification: the ceiling a weakly-supervised classifier over the same tubes could reach
    only if it always picked the right class. Not a weakly-supervised result: it reads test labels.
    """

    name = "oracle_label"
    trainable = False

    def predict(
        self, index: DatasetIndex, videos: Sequence[str], tubes: Mapping[str, Tubes]
    ) -> TubeDetections:
        parts = []
        for v in videos:
            t = tubes[v]
            for lab in index.videos[v].labels:
                parts.append(TubeDetections.from_tubes(v, t, labels=np.full(t.num_tubes, lab)))
        return TubeDetections.concat(parts)
