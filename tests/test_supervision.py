"""Supervision levels: STIL Eq. 5-7 on hand-made boxes, a naive twin, mixtures, the cost model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo
from wsal.structures import Detections
from wsal.supervision import (
    LEVELS,
    SupervisionSpec,
    annotated_frames,
    annotation_cost,
    assign_annotations,
    cost_table,
    frame_annotations,
    point_match,
    supervision_scores,
    temporal_score,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
G = [10.0, 10.0, 30.0, 50.0]  # the GT box of the hand-made videos


def one_video(nframes, tube_frames, det_frames, det_boxes, points=None, labels=(0,)):
    tubes = []
    if tube_frames is not None:
        n = len(tube_frames)
        tubes = [GTTube(0, tube_frames, np.tile(G, (n, 1)), points)]
    index = DatasetIndex(["a"], {"train": ["v"]}, {"v": VideoInfo(nframes, list(labels), tubes)})
    det_frames = np.asarray(det_frames)
    dets = Detections.from_unsorted(
        det_frames, np.asarray(det_boxes, np.float32), np.ones(len(det_frames)), nframes
    )
    return index, {"v": dets}


# ------------------------------------------------------------------------------ cost model
# STIL Table 3, columns UCF Sports (65 frames), J-HMDB (34), in LEVELS order
TABLE3 = {
    65: [5.00, 14.75, 53.75, 102.50, 102.50, 980.00],
    34: [5.00, 10.10, 30.50, 56.00, 56.00, 515.00],
}


@pytest.mark.parametrize("mean_frames", sorted(TABLE3))
def test_cost_table_reproduces_stil_table3(mean_frames):
    table = cost_table([mean_frames])
    assert list(table) == list(LEVELS)
    for level, expected in zip(LEVELS, TABLE3[mean_frames], strict=True):
        assert round(table[level], 2) == expected, level
        assert table[level] == pytest.approx(expected, abs=1e-9), level


def test_cost_table_ucf101_24_feature_stride():
    # Table 3's UCF101-24 column (27.50 / 117.50 / 230.00) implies 150 frames on average
    # (27.5 = 5 + 1.5 * 150 / 10); features every 5th frame leave the stride-1 levels out ("-").
    table = cost_table([150], feature_stride=5)
    assert table["labels"] == 5.0
    assert table["points_stride10"] == pytest.approx(27.5)
    assert table["mixture"] == pytest.approx(117.5)
    assert table["boxes_stride10"] == pytest.approx(230.0)
    assert math.isnan(table["points"]) and math.isnan(table["boxes"])


def test_cost_of_arbitrary_frame_counts_by_hand():
    nf = [40, 72, 55]  # mean 167/3 frames
    assert annotation_cost("boxes", nf) == pytest.approx(5 + 15 * 167 / 3)  # 840
    assert annotation_cost("points", nf) == pytest.approx(5 + 1.5 * 167 / 3)  # 88.5
    assert annotation_cost("boxes_stride10", nf) == pytest.approx(88.5)
    assert annotation_cost("points_stride10", nf) == pytest.approx(5 + 0.15 * 167 / 3)
    assert annotation_cost("mixture", nf) == pytest.approx((5 + 88.5) / 2)
    spec = SupervisionSpec("mixture", mixture_fraction=0.25)
    assert annotation_cost(spec, nf) == pytest.approx(0.75 * 5 + 0.25 * 88.5)
    assert annotation_cost(SupervisionSpec("boxes", stride=2), nf) == pytest.approx(
        5 + 15 * 167 / 6
    )
    # the frames really annotated: ceil(40/10) + ceil(72/10) + ceil(55/10) = 4 + 8 + 6 = 18
    assert annotation_cost("boxes_stride10", nf, exact=True) == pytest.approx(5 + 15 * 6)
    assert annotation_cost("boxes", nf, exact=True) == pytest.approx(840)
    # feature stride: stride 10 is a multiple of 2 (same cost), not of 3 (not possible)
    assert annotation_cost("boxes_stride10", nf, feature_stride=2) == pytest.approx(88.5)
    assert math.isnan(annotation_cost("boxes_stride10", nf, feature_stride=3))
    assert math.isnan(annotation_cost("points", nf, feature_stride=2))
    assert annotation_cost("labels", nf, feature_stride=3) == 5.0
    with pytest.raises(ValueError, match="at least one video"):
        annotation_cost("boxes", [])


# ------------------------------------------------------------------------------ spec
def test_spec_derives_stride_and_validates():
    assert SupervisionSpec().level == "labels" and SupervisionSpec().stride == 1
    assert SupervisionSpec("boxes_stride10").stride == 10
    assert SupervisionSpec("mixture").stride == 10
    assert SupervisionSpec("points").stride == 1
    assert SupervisionSpec("boxes", stride=5).name == "boxes_stride5"
    assert SupervisionSpec("boxes_stride10", stride=10).name == "boxes_stride10"
    assert SupervisionSpec("mixture").kind == "boxes"
    with pytest.raises(ValueError, match="unknown supervision level"):
        SupervisionSpec("scribbles")
    with pytest.raises(ValueError, match="every 10th frame"):
        SupervisionSpec("points_stride10", stride=5)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        SupervisionSpec("boxes", stride=0)
    with pytest.raises(ValueError, match="mixture_fraction"):
        SupervisionSpec("mixture", mixture_fraction=1.5)


# ------------------------------------------------------------------------------ Eq. 5-7
def test_temporal_score_eq6():
    np.testing.assert_allclose(temporal_score([0, 1, -1, 2, -2, 3]), [1, 0.5, 0.5, 0, 0, 0])


def test_point_match_eq7():
    box = [0.0, 0.0, 10.0, 20.0]  # centre (5, 10), half sizes (5, 10)
    pts = [[5, 10], [7.5, 10], [5, 15], [7.5, 17.5], [10, 10], [12, 10], [5, -1], [0, 0]]
    expected = [1.0, 0.5, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(point_match(pts, np.tile(box, (len(pts), 1))), expected)
    flat = np.array([[4.0, 0.0, 6.0, 0.0]] * 2)  # zero height: only its centre line matches
    np.testing.assert_allclose(point_match([[5, 0], [5, 1]], flat), [1.0, 0.0])


def test_box_iou_scores_at_the_annotated_frame():
    # one annotated frame inside the tube, three boxes on it: IoU 1, 1/3 and 0
    boxes = [G, [20.0, 10.0, 40.0, 50.0], [100.0, 100.0, 120.0, 140.0]]
    index, dets = one_video(1, [0], [0, 0, 0], boxes)
    s = supervision_scores(SupervisionSpec("boxes"), index, dets, ["v"])["v"]
    np.testing.assert_allclose(s, [1.0, 1 / 3, 0.0], rtol=1e-6)
    assert s.dtype == np.float32


def test_eq5_sums_neighbouring_annotations_and_empty_frames():
    # 6 frames, GT on frames 2..4; the GT box on every frame plus a far box on frames 0 and 3
    frames = [0, 1, 2, 3, 4, 5, 0, 3]
    boxes = [G] * 6 + [[100.0, 100.0, 110.0, 110.0]] * 2
    index, dets = one_video(6, [2, 3, 4], frames, boxes)
    s = supervision_scores(SupervisionSpec("boxes"), index, dets, ["v"])["v"]
    d = dets["v"]
    got = {(int(f), tuple(b)): float(x) for f, b, x in zip(d.frame, d.boxes, s, strict=True)}
    # frame f gets delta_s(f) + (delta_s(f-1) + delta_s(f+1)) / 2, delta_s = 1 on GT frames
    # (IoU of the GT box with itself) and -1 on the empty frames 0, 1, 5
    expected_gt = {0: -1.5, 1: -1.0, 2: 1.0, 3: 2.0, 4: 1.0, 5: -0.5}
    for f, e in expected_gt.items():
        assert got[(f, tuple(np.float32(G)))] == pytest.approx(e), f
    assert got[(0, (100.0, 100.0, 110.0, 110.0))] == pytest.approx(-1.5)  # empty: any box
    assert got[(3, (100.0, 100.0, 110.0, 110.0))] == pytest.approx(0.0)  # IoU 0 inside the tube


def test_points_use_pmatch_and_fall_back_to_box_centres():
    # GT box G = [10, 10, 30, 50]: centre (20, 30), half sizes (10, 20)
    pts = np.array([[25.0, 30.0]])  # annotated point: half-way to the right border
    index, dets = one_video(1, [0], [0, 0], [G, [20.0, 10.0, 40.0, 50.0]], points=pts)
    s = supervision_scores(SupervisionSpec("points"), index, dets, ["v"])["v"]
    # box G: |25-20|/10 = 0.5 -> 0.5; box [20,10,40,50] centre (30,30): |25-30|/10 -> 0.5
    np.testing.assert_allclose(s, [0.5, 0.5])
    index, dets = one_video(1, [0], [0, 0], [G, [20.0, 10.0, 40.0, 50.0]], points=None)
    s = supervision_scores(SupervisionSpec("points"), index, dets, ["v"])["v"]
    np.testing.assert_allclose(s, [1.0, 0.0])  # point = GT centre (20, 30): on the 2nd's border


def test_stride10_annotates_frames_0_10_20():
    np.testing.assert_array_equal(annotated_frames(25, 10), [0, 10, 20])
    np.testing.assert_array_equal(annotated_frames(20, 10), [0, 10])
    tube = GTTube(0, np.arange(8, 16), np.tile(G, (8, 1)))
    frame, kind, geom = frame_annotations([tube], 25, 10, "boxes")
    np.testing.assert_array_equal(frame, [0, 10, 20])
    np.testing.assert_array_equal(kind, [2, 0, 2])  # empty, box, empty
    np.testing.assert_allclose(geom[1], G)
    index, dets = one_video(25, np.arange(8, 16), np.arange(25), [G] * 25)
    s = supervision_scores(SupervisionSpec("boxes_stride10"), index, dets, ["v"])["v"]
    expected = np.zeros(25)
    expected[[0, 1, 9, 10, 11, 19, 20, 21]] = [-1, -0.5, 0.5, 1, 0.5, -0.5, -1, -0.5]
    np.testing.assert_allclose(s, expected)


def test_tube_gaps_are_interpolated():
    # GT stored on frames 0 and 2 only (boxes [0,0,10,10] and [10,0,20,10]): frame 1 is
    # annotated with the interpolated box [5, 0, 15, 10]
    tube = GTTube(0, [0, 2], [[0, 0, 10, 10], [10, 0, 20, 10]])
    frame, kind, geom = frame_annotations([tube], 3, 1, "boxes")
    np.testing.assert_array_equal(kind, [0, 0, 0])
    np.testing.assert_allclose(geom[1], [5, 0, 15, 10])


def test_labels_give_zeros():
    index, dets = one_video(6, [2, 3, 4], [0, 1, 2, 3], [G] * 4)
    s = supervision_scores(SupervisionSpec("labels"), index, dets, ["v"])
    np.testing.assert_array_equal(s["v"], np.zeros(4, np.float32))
    with pytest.raises(KeyError, match="'w' has no detections"):
        supervision_scores(SupervisionSpec("boxes"), index, dets, ["v", "w"])


# ------------------------------------------------------------------------------ naive twin
def naive_scores(index, dets, video, stride, kind):
    """Eq. 5-7 by the letter: loop over boxes x annotations."""
    info = index.videos[video]
    anns = []  # (frame, type, geometry)
    for a in range(0, info.nframes, stride):
        found = False
        for t in info.tubes:
            if t.frames[0] <= a <= t.frames[-1]:
                found = True
                box = [np.interp(a, t.frames, t.boxes[:, k]) for k in range(4)]
                pts = t.points if t.points is not None else (t.boxes[:, :2] + t.boxes[:, 2:]) / 2
                pt = [np.interp(a, t.frames, pts[:, k]) for k in range(2)]
                anns.append((a, kind, box if kind == "boxes" else pt))
        if not found:
            anns.append((a, "none", None))
    d = dets[video]
    out = []
    for f, b in zip(d.frame, d.boxes.astype(np.float64), strict=True):
        total = 0.0
        for a, typ, g in anns:
            dt = max(0.0, 1.0 - abs(int(f) - a) / 2.0)
            if typ == "none":
                ds = -1.0
            elif typ == "boxes":
                iw = max(0.0, min(g[2], b[2]) - max(g[0], b[0]))
                ih = max(0.0, min(g[3], b[3]) - max(g[1], b[1]))
                inter = iw * ih
                union = (g[2] - g[0]) * (g[3] - g[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                ds = inter / union if union > 0 else 0.0
            else:
                c = (b[:2] + b[2:]) / 2
                h = (b[2:] - b[:2]) / 2
                ds = max(0.0, 1.0 - max(abs(g[0] - c[0]) / h[0], abs(g[1] - c[1]) / h[1]))
            total += dt * ds
        out.append(total)
    return np.array(out)


def random_index(rng, n_videos=6):
    videos, dets = {}, {}
    for i in range(n_videos):
        nf = int(rng.integers(5, 40))
        tubes = []
        for _ in range(int(rng.integers(0, 3))):  # 0-2 tubes, possibly overlapping, with gaps
            s = int(rng.integers(0, nf))
            e = int(rng.integers(s, nf))
            fr = np.unique(np.concatenate([[s, e], rng.integers(s, e + 1, size=e - s)]))
            xy = rng.uniform(0, 50, size=(fr.size, 2))
            wh = rng.uniform(5, 30, size=(fr.size, 2))
            pts = xy + wh * rng.uniform(0.1, 0.9, size=(fr.size, 2))
            with_points = bool(rng.integers(0, 2))
            tubes.append(GTTube(0, fr, np.hstack([xy, xy + wh]), pts if with_points else None))
        v = f"v{i}"
        videos[v] = VideoInfo(nf, [0], tubes)
        n = int(rng.integers(0, 60))
        xy = rng.uniform(0, 60, size=(n, 2))
        wh = rng.uniform(2, 30, size=(n, 2))
        frame, boxes = [rng.integers(0, nf, size=n)], [np.hstack([xy, xy + wh])]
        for t in tubes:  # boxes near the GT, so that IoU and pmatch are often positive
            pick = rng.integers(0, t.frames.size, size=t.frames.size)
            frame.append(t.frames[pick])
            boxes.append(t.boxes[pick] + rng.normal(0, 3, size=(pick.size, 4)))
        frame, boxes = np.concatenate(frame), np.concatenate(boxes)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        dets[v] = Detections.from_unsorted(frame, boxes, rng.uniform(size=frame.size), nf)
    return DatasetIndex(["a"], {"train": list(videos)}, videos), dets


@pytest.mark.parametrize("level", ["boxes", "boxes_stride10", "points", "points_stride10"])
def test_matches_naive_loop(level):
    index, dets = random_index(np.random.default_rng(3))
    spec = SupervisionSpec(level)
    fast = supervision_scores(spec, index, dets, list(index.videos))
    every = np.concatenate(list(fast.values()))
    assert (every > 0).any() and (every < 0).any()  # the random case exercises both signs
    for v in index.videos:
        expected = naive_scores(index, dets, v, spec.stride, spec.kind)
        np.testing.assert_allclose(fast[v], expected, rtol=1e-5, atol=1e-5, err_msg=v)


# ------------------------------------------------------------------------------ mixture
def test_mixture_is_half_half_seeded_and_order_free():
    videos = [f"v{i:02d}" for i in range(20)]
    a = assign_annotations(SupervisionSpec("mixture", seed=0), videos)
    assert sorted(a.values()).count("boxes") == 10 and set(a.values()) == {"boxes", "labels"}
    assert a == assign_annotations(SupervisionSpec("mixture", seed=0), videos[::-1])
    b = assign_annotations(SupervisionSpec("mixture", seed=1), videos)
    assert a != b and list(b.values()).count("boxes") == 10
    odd = assign_annotations(SupervisionSpec("mixture"), videos[:7])
    assert list(odd.values()).count("boxes") == 4  # 3.5 rounds up
    assert set(assign_annotations(SupervisionSpec("boxes"), videos).values()) == {"boxes"}


def test_mixture_scores_are_boxes_stride10_or_zeros():
    index, dets = random_index(np.random.default_rng(5), n_videos=8)
    videos = list(index.videos)
    spec = SupervisionSpec("mixture", seed=2)
    mix = supervision_scores(spec, index, dets, videos)
    full = supervision_scores(SupervisionSpec("boxes_stride10"), index, dets, videos)
    kinds = assign_annotations(spec, videos)
    assert list(kinds.values()).count("boxes") == 4
    for v in videos:
        ref = full[v] if kinds[v] == "boxes" else np.zeros_like(full[v])
        np.testing.assert_array_equal(mix[v], ref)


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("option", [p.stem for p in sorted((CONF / "supervision").glob("*.yaml"))])
def test_supervision_configs_compose(option):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"supervision={option}"])
    spec = instantiate(cfg.supervision)
    assert isinstance(spec, SupervisionSpec) and spec.level == option == spec.name
    GlobalHydra.instance().clear()


def test_every_level_has_a_config():
    assert {p.stem for p in (CONF / "supervision").glob("*.yaml")} == set(LEVELS)
