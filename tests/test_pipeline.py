"""The localization-only method."""

from __future__ import annotations

import numpy as np

from tests.test_tube_cache import make_tubes
from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo
from wsal.models.baselines import oracle_label_detections


def test_oracle_label_gives_every_tube_the_video_class():
    rng = np.random.default_rng(1)
    index = DatasetIndex(
        ["x", "y"],
        {"test": ["v1", "v2"]},
        {
            "v1": VideoInfo(10, [1], [GTTube(1, [0], [[0, 0, 1, 1]])]),
            "v2": VideoInfo(10, [0, 1], []),
        },
    )
    tubes = {"v1": make_tubes(rng, 2, 10), "v2": make_tubes(rng, 3, 10)}
    dets = oracle_label_detections(index, ["v1", "v2"], tubes)
    assert len(dets) == 2 + 3 * 2
    np.testing.assert_array_equal(dets.label, [1, 1, 0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(dets.score[:2], tubes["v1"].scores)
