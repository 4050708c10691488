"""The true-class tubes (the localization-only method and the prior bound), the chance / prior /
ceiling bounds and the top-1 rate, on hand-made tubes."""

from __future__ import annotations

import numpy as np

from tests.test_tube_cache import make_tubes
from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo
from wsal.evaluation.bounds import true_class_detections
from wsal.structures import TubeDetections, Tubes


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
    dets = true_class_detections(index, ["v1", "v2"], tubes)
    assert len(dets) == 2 + 3 * 2
    np.testing.assert_array_equal(dets.label, [1, 1, 0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(dets.score[:2], tubes["v1"].scores)


# ------------------------------------------------------------------------------- bounds, top-1
GT_BOX = [0, 0, 10, 10]


def two_videos():
    """v1 (class 0) and v2 (class 1), 5 frames, one GT tube on GT_BOX each. Three tubes per
    video: 0 = the GT box throughout (st-IoU 1), 1 = far away (0), 2 = the GT box in one frame
    only (temporal IoU 1/5: st-IoU 0.2)."""
    F = 5
    gt = [[0, 0, 10, 10]] * F
    index = DatasetIndex(
        ["a", "b"],
        {"test": ["v1", "v2"]},
        {
            "v1": VideoInfo(F, [0], [GTTube(0, list(range(F)), gt)]),
            "v2": VideoInfo(F, [1], [GTTube(1, list(range(F)), gt)]),
        },
    )
    boxes = np.zeros((3, F, 4), np.float32)
    boxes[0] = GT_BOX
    boxes[1] = [50, 50, 60, 60]
    boxes[2, 0] = GT_BOX
    valid = np.ones((3, F), bool)
    valid[2, 1:] = False
    tubes = {
        "v1": Tubes(boxes, valid, np.full((3, F), -1), np.array([0.1, 0.9, 0.5], np.float32)),
        "v2": Tubes(boxes, valid, np.full((3, F), -1), np.array([0.8, 0.2, 0.3], np.float32)),
    }
    return index, tubes


def test_gt_overlap_by_hand():
    from wsal.evaluation import GroundTruth
    from wsal.evaluation.bounds import gt_overlap

    index, tubes = two_videos()
    gt = GroundTruth.from_index(index, "test")
    prior = true_class_detections(index, ["v1", "v2"], tubes)
    np.testing.assert_allclose(gt_overlap(gt, prior), [1, 0, 0.2, 1, 0, 0.2])
    wrong = TubeDetections.from_tubes("v1", tubes["v1"], labels=np.full(3, 1))  # class 1: no GT
    np.testing.assert_allclose(gt_overlap(gt, wrong), 0)
    other = TubeDetections.from_tubes("elsewhere", tubes["v1"], labels=np.zeros(3, int))
    np.testing.assert_allclose(gt_overlap(gt, other), 0)


def test_top1_rate_counts_the_top_true_class_tube():
    from wsal.evaluation import GroundTruth
    from wsal.evaluation.bounds import top1_rate

    index, tubes = two_videos()
    gt = GroundTruth.from_index(index, "test")
    prior = true_class_detections(index, ["v1", "v2"], tubes)
    # v1's top prior tube is the far one (0.9), v2's is the GT one (0.8)
    assert top1_rate(gt, prior) == 0.5
    # a higher-scored tube of a wrong class does not count, nor hide the true class's top tube
    wrong = TubeDetections.from_tubes(
        "v2", tubes["v2"].select(np.array([1])), labels=np.array([0]), scores=np.array([5.0])
    )
    assert top1_rate(gt, TubeDetections.concat([prior, wrong])) == 0.5
    # a video without any true-class detection is a miss
    assert top1_rate(gt, prior.select(np.nonzero(prior.video == "v2")[0])) == 0.5
    assert top1_rate(gt, prior, iou=0.1) == 0.5  # v1's 0.9 tube misses at any threshold


def test_bounds_chance_prior_ceiling_by_hand():
    from wsal.evaluation import GroundTruth, video_ap
    from wsal.evaluation.bounds import bounds

    index, tubes = two_videos()
    gt = GroundTruth.from_index(index, "test")
    prior = true_class_detections(index, ["v1", "v2"], tubes)
    b = bounds(gt, prior, [0.5], draws=3)
    assert b["ceiling"]["top1"] == 1.0 and b["ceiling"]["video_mAP"]["0.5"] == 1.0
    assert b["prior"]["top1"] == 0.5
    assert b["prior"]["video_mAP"]["0.5"] == video_ap(gt, prior, thresholds=[0.5]).map(0.5) < 1
    assert abs(b["chance"]["top1"] - 1 / 3) < 1e-12  # one hitting tube of three per video
    assert 0 < b["chance"]["video_mAP"]["0.5"] <= 1


def test_evaluate_reports_top1_and_bounds():
    from wsal.evaluation.results import EvaluationSpec, evaluate
    from wsal.linking.cache import tubes_to_detections

    index, tubes = two_videos()
    prior = true_class_detections(index, ["v1", "v2"], tubes)
    res = evaluate(
        index, prior, tubes_to_detections(["v1", "v2"], tubes), EvaluationSpec(iou=[0.5]), prior
    )
    assert res["top1"] == res["bounds"]["prior"]["top1"] == 0.5
    assert res["video_mAP"]["0.5"] == res["bounds"]["prior"]["video_mAP"]["0.5"]


def test_tube_length_stats_by_hand():
    from wsal.evaluation.results import tube_length_stats

    index, tubes = two_videos()  # 5-frame videos; tubes span 5, 5 and 1 frames
    prior = true_class_detections(index, ["v1", "v2"], tubes)
    st = tube_length_stats(index, prior)
    assert st["median"] == 5 and st["mean"] == (5 + 5 + 1) / 3 and st["median_fraction"] == 1.0
    assert st["p10"] == 1 and st["p90"] == 5
    assert np.isnan(tube_length_stats(index, TubeDetections.empty())["median"])
