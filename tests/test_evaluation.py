"""Evaluator tests: hand-computed cases and the slow twin (tests/act_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import act_reference as ref
from wsal.evaluation.protocol import (
    GroundTruth,
    auc,
    frame_ap,
    pr_to_ap_act,
    pr_to_ap_voc,
    proposal_recall,
    video_ap,
    video_classification_accuracy,
)
from wsal.structures import TubeDetections
from wsal.tube_ops import box_iou, st_iou, st_iou_pairs, tube_nms


def tube(f0, f1, box):
    frames = np.arange(f0, f1 + 1, dtype=np.float64)
    return np.concatenate([frames[:, None], np.tile(np.asarray(box, float), (len(frames), 1))], 1)


def make_gt(videos, labels, items):
    """items: (video, label, rows)."""
    vpos = {v: i for i, v in enumerate(videos)}
    rows = [r for _, _, r in items]
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    vl = [sorted({lab for v2, lab, _ in items if v2 == v}) for v in videos]
    return GroundTruth(
        list(videos),
        list(labels),
        np.array([vpos[v] for v, _, _ in items], np.int64),
        np.array([lab for _, lab, _ in items], np.int64),
        np.concatenate(rows) if rows else np.zeros((0, 5)),
        off,
        vl,
    )


# ----------------------------------------------------------------------------- hand-computed cases
def test_plus_one_iou_exactly_half():
    # 10x10 box (+1: 11x11 = 121 px... choose boxes whose +1 IoU is exactly 0.5)
    # a = [0,0,9,9] -> 100 px with +1; b = [0,0,9,19] -> 200 px; overlap 100 -> IoU 0.5
    a = np.array([[0, 0, 9, 9]], float)
    b = np.array([[0, 0, 9, 19]], float)
    assert box_iou(a, b, plus_one=True)[0, 0] == 0.5
    assert box_iou(a, b, plus_one=False)[0, 0] == pytest.approx(81 / 171)
    gt = make_gt(["v"], ["c"], [("v", 0, tube(0, 4, b[0]))])
    dets = TubeDetections.from_list([("v", 0, 0.9, tube(0, 4, a[0]))])
    r = video_ap(gt, dets, thresholds=[0.5], with_coco=False)
    assert r.map(0.5) == pytest.approx(1.0)  # >= 0.5 counts
    r = video_ap(gt, dets, thresholds=[0.5], protocol="voc", with_coco=False)
    assert r.map(0.5) == 0.0  # continuous IoU 0.47 < 0.5


def test_one_frame_temporal_overlap_counts():
    a = tube(0, 4, [0, 0, 9, 9])
    b = tube(4, 8, [0, 0, 9, 9])
    # inclusive counts: 1 common frame over 9 frames, spatial IoU 1
    assert st_iou(a, b, plus_one=True) == pytest.approx(1 / 9)
    assert st_iou(a, tube(5, 8, [0, 0, 9, 9]), plus_one=True) == 0.0


def test_trapezoid_ap_hand_computed():
    # 2 GT, detections TP, FP, TP -> pr rows (1,0),(1,.5),(.5,.5),(2/3,1)
    # trapezoids: .5*(1+1)/2 + 0 + .5*(.5+2/3)/2 = .5 + .291666...
    ap = pr_to_ap_act(np.array([True, False, True]), 2)
    assert ap == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2, abs=1e-7)
    # VOC all-point: envelope precision 1 up to recall .5, 2/3 up to 1 -> .5 + .5*2/3
    assert pr_to_ap_voc(np.array([True, False, True]), 2) == pytest.approx(0.5 + 1 / 3)


def test_gt_matched_once_and_missing_gt_class():
    g = tube(0, 9, [10, 10, 50, 50])
    gt = make_gt(["v1", "v2"], ["a", "b"], [("v1", 0, g)])
    dets = TubeDetections.from_list(
        [
            ("v1", 0, 0.9, g),
            ("v1", 0, 0.8, tube(0, 9, [12, 10, 52, 50])),  # duplicate of the GT
            ("v2", 0, 0.7, g),  # video with no GT of its class -> FP
            ("v1", 1, 0.5, g),  # class with detections but no GT anywhere -> AP 0, no crash
        ]
    )
    with pytest.warns(UserWarning, match="no ground truth"):
        r = video_ap(gt, dets, thresholds=[0.5], nms=0)
    # class a: TP, FP, FP -> AP = 1 (recall reaches 1 at precision 1)
    assert r.ap[0.5][0] == pytest.approx(1.0)
    assert r.ap[0.5][1] == 0.0
    assert r.map(0.5) == pytest.approx(0.5)
    assert np.isfinite(r.map_50_95)


def test_nms_removes_overlapping_duplicates_first():
    g = tube(0, 9, [10, 10, 50, 50])
    gt = make_gt(["v"], ["a"], [("v", 0, g), ("v", 0, tube(0, 9, [100, 100, 140, 140]))])
    dets = TubeDetections.from_list(
        [
            ("v", 0, 0.9, g),
            ("v", 0, 0.8, tube(0, 9, [11, 10, 51, 50])),
            ("v", 0, 0.1, tube(0, 9, [100, 100, 140, 140])),
        ]
    )
    # without NMS: TP, FP, TP -> .5 + .5*(.5+2/3)/2 ; with NMS the duplicate goes: TP, TP -> 1
    assert video_ap(gt, dets, [0.5], nms=0, with_coco=False).map(0.5) == pytest.approx(
        0.5 + 0.5 * (0.5 + 2 / 3) / 2, abs=1e-6
    )
    assert video_ap(gt, dets, [0.5], nms=0.3, with_coco=False).map(0.5) == pytest.approx(1.0)


def test_tubes_with_gaps_are_interpolated():
    g = tube(0, 10, [0, 0, 10, 10])
    gt = make_gt(["v"], ["a"], [("v", 0, g)])
    gappy = g[[0, 5, 10]]  # same boxes at frames 0, 5, 10 only
    r = video_ap(gt, TubeDetections.from_list([("v", 0, 1.0, gappy)]), [0.9], with_coco=False)
    assert r.map(0.9) == pytest.approx(1.0)


def test_bad_label_and_unsorted_frames_raise():
    gt = make_gt(["v"], ["a"], [("v", 0, tube(0, 3, [0, 0, 5, 5]))])
    with pytest.raises(ValueError, match="'v'.*label 3"):
        video_ap(gt, TubeDetections.from_list([("v", 3, 1.0, tube(0, 3, [0, 0, 5, 5]))]))
    bad = tube(0, 3, [0, 0, 5, 5])[[0, 2, 1, 3]]
    with pytest.raises(ValueError, match="'v'.*strictly increasing"):
        video_ap(gt, TubeDetections.from_list([("v", 0, 1.0, bad)]))


def test_auc_and_accuracy_and_recall():
    assert auc({0.1: 1.0, 0.6: 0.0}) == pytest.approx(0.5)
    g1 = tube(0, 9, [0, 0, 10, 10])
    g2 = tube(0, 9, [50, 50, 60, 60])
    gt = make_gt(["v1", "v2"], ["a", "b"], [("v1", 0, g1), ("v2", 1, g2)])
    dets = TubeDetections.from_list(
        [("v1", 0, 0.9, g1), ("v1", 1, 0.5, g1), ("v2", 0, 0.8, g2), ("v2", 1, 0.7, g2)]
    )
    assert video_classification_accuracy(gt, dets) == 0.5
    props = TubeDetections.from_list(
        [("v1", -1, 0.9, tube(0, 9, [30, 30, 40, 40])), ("v1", -1, 0.5, g1), ("v2", -1, 0.3, g2)]
    )
    rec = proposal_recall(gt, props, thresholds=[0.5])[0.5]
    np.testing.assert_allclose(rec, [0.5, 1.0])  # v2's GT found by its 1st, v1's by its 2nd


def test_frame_ap_hand_computed():
    g = tube(0, 1, [0, 0, 9, 9])
    gt = make_gt(["v"], ["a"], [("v", 0, g)])
    d = tube(0, 2, [0, 0, 9, 9])  # 2 TP frames + 1 FP frame, same score
    ap = frame_ap(gt, TubeDetections.from_list([("v", 0, 1.0, d)]))
    assert ap[0] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ slow twin
def random_case(rng, n_videos=6, n_labels=3, integer=True, max_dets=12):
    videos = [f"vid{i}" for i in range(n_videos)]
    gttubes, gt_items = {}, []
    for v in videos:
        nf = int(rng.integers(5, 25))
        gttubes[v] = {}
        for _ in range(int(rng.integers(0, 6))):
            lab = int(rng.integers(0, n_labels))
            f0 = int(rng.integers(0, nf - 2))
            f1 = int(rng.integers(f0, nf))
            x, y = rng.uniform(0, 100, 2)
            w, h = rng.uniform(10, 60, 2)
            base = np.array([x, y, x + w, y + h])
            rows = tube(f0, f1, base)
            rows[:, 1:] += rng.normal(0, 2, (len(rows), 4))
            if integer:
                rows = np.round(rows)
            rows = rows.astype(np.float32)
            gttubes[v].setdefault(lab, []).append(rows)
            gt_items.append((v, lab, rows.astype(np.float64)))
    dets, det_items = {}, []
    for v in videos:
        dets[v] = {}
        for _ in range(int(rng.integers(0, max_dets))):
            lab = int(rng.integers(0, n_labels))
            src = gttubes[v].get(lab)
            if src and rng.random() < 0.7:
                g = src[int(rng.integers(0, len(src)))]
                a = int(rng.integers(0, len(g)))
                b = int(rng.integers(a, len(g)))
                rows = g[a : b + 1].astype(np.float64) + rng.normal(
                    0, rng.uniform(0, 8), (b - a + 1, 5)
                ) * [0, 1, 1, 1, 1]
                # jitter may swap the sides of a thin box; the evaluator refuses x2 < x1
                rows[:, [1, 3]] = np.sort(rows[:, [1, 3]], axis=1)
                rows[:, [2, 4]] = np.sort(rows[:, [2, 4]], axis=1)
            else:
                f0 = int(rng.integers(0, 20))
                rows = tube(f0, f0 + int(rng.integers(0, 10)), rng.uniform(0, 150, 4))
                rows[:, 3:5] = rows[:, 1:3] + rng.uniform(5, 60, (len(rows), 2))
            if integer:
                rows = np.round(rows)
            # coarse scores create ties on purpose
            score = float(rng.integers(0, 5)) / 4 if rng.random() < 0.5 else float(rng.random())
            rows = rows.astype(np.float32)
            dets[v].setdefault(lab, []).append((rows, score))
            det_items.append((v, lab, score, rows.astype(np.float64)))
    # our items must list each (video, label) group in the same order as the reference's lists
    det_items.sort(key=lambda t: (videos.index(t[0]), t[1]))
    order_lists = {}
    for v in videos:
        for lab, lst in dets[v].items():
            order_lists[(v, lab)] = lst
    det_items = [
        (v, lab, s, r.astype(np.float64)) for (v, lab), lst in order_lists.items() for r, s in lst
    ]
    gt_items.sort(key=lambda t: (videos.index(t[0]), t[1]))
    return videos, gttubes, gt_items, dets, det_items


@pytest.mark.parametrize("seed", range(40))
def test_video_ap_matches_reference_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n_labels = 3
    videos, gttubes, gt_items, dets, det_items = random_case(
        rng, n_labels=n_labels, integer=seed % 2 == 0, max_dets=80 if seed % 4 == 1 else 12
    )
    # gt_items order inside a (video,label) must match gttubes list order: built in that order
    gt = make_gt(videos, [f"c{i}" for i in range(n_labels)], gt_items)
    td = TubeDetections.from_list(det_items)
    nms = 0.3 if seed % 3 else 0.0
    taus = [0.1, 0.2, 0.5, 0.75]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = video_ap(gt, td, thresholds=taus, nms=nms, with_coco=False)
    for t in taus:
        with np.errstate(all="ignore"):
            expected = ref.video_ap(videos, n_labels, dets, gttubes, t, nms=nms)
        np.testing.assert_allclose(ours.ap[round(t, 6)], expected, atol=1e-6, err_msg=f"tau={t}")


@pytest.mark.parametrize("seed", range(10))
def test_st_iou_and_nms_match_reference(seed):
    rng = np.random.default_rng(100 + seed)
    _, _, _, dets, _ = random_case(rng, n_videos=3)
    lst = [d for v in dets.values() for ds in v.values() for d in ds]
    if len(lst) < 2:
        return
    rows = [r.astype(np.float64) for r, _ in lst]
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    allr = np.concatenate(rows)
    ii, jj = np.meshgrid(np.arange(len(lst)), np.arange(len(lst)), indexing="ij")
    fast = st_iou_pairs(allr, off, ii.ravel(), allr, off, jj.ravel(), plus_one=True)
    slow = [
        ref.iou3dt(lst[i][0].astype(np.float64), lst[j][0].astype(np.float64))
        for i, j in zip(ii.ravel(), jj.ravel())
    ]
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    keep = tube_nms(allr, off, np.array([s for _, s in lst]), 0.3, plus_one=True)
    np.testing.assert_array_equal(
        keep, ref.nms3dt([(r.astype(np.float64), s) for r, s in lst], 0.3)
    )


# ------------------------------------------------------------------------ VOC and frame-AP twins
def voc_video_ap_loop(videos, n_labels, dets, gttubes, th, nms):
    """Loop twin of protocol='voc': continuous IoU, best GT over all, duplicates are FP."""
    from wsal.tube_ops import st_iou

    out = []
    for c in range(n_labels):
        det_list = []
        for v in videos:
            lt = dets.get(v, {}).get(c, [])
            keep = (
                tube_nms(
                    np.concatenate([r for r, _ in lt]) if lt else np.zeros((0, 5)),
                    np.concatenate([[0], np.cumsum([len(r) for r, _ in lt])]).astype(np.int64),
                    np.array([s for _, s in lt]),
                    nms,
                )
                if lt
                else []
            )
            det_list += [(v, lt[i][1], lt[i][0].astype(np.float64)) for i in keep]
        order = np.argsort(-np.array([d[1] for d in det_list]))
        gts = {v: gttubes.get(v, {}).get(c, []) for v in videos}
        taken = {v: [False] * len(g) for v, g in gts.items()}
        npos = sum(len(g) for g in gts.values())
        tp = []
        for j in order:
            v, _, tube_rows = det_list[j]
            ious = [st_iou(g.astype(np.float64), tube_rows, plus_one=False) for g in gts[v]]
            if ious and max(ious) >= th and not taken[v][int(np.argmax(ious))]:
                taken[v][int(np.argmax(ious))] = True
                tp.append(True)
            else:
                tp.append(False)
        if npos == 0 or not tp:
            out.append(0.0)
            continue
        ctp = np.cumsum(tp)
        rec, prec = ctp / npos, ctp / np.arange(1, len(tp) + 1)
        ap = 0.0  # all-point interpolation, written as the classic loop
        prev_r = 0.0
        for i in range(len(tp)):
            if rec[i] > prev_r:
                ap += (rec[i] - prev_r) * max(prec[i:])
                prev_r = rec[i]
        out.append(ap)
    return np.array(out)


@pytest.mark.parametrize("seed", range(12))
def test_voc_protocol_matches_loop_twin(seed):
    rng = np.random.default_rng(500 + seed)
    videos, gttubes, gt_items, dets, det_items = random_case(rng, integer=False)
    gt = make_gt(videos, ["c0", "c1", "c2"], gt_items)
    nms = 0.3 if seed % 2 else 0.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = video_ap(
            gt,
            TubeDetections.from_list(det_items),
            [0.2, 0.5],
            protocol="voc",
            nms=nms,
            with_coco=False,
        )
    for t in (0.2, 0.5):
        np.testing.assert_allclose(
            ours.ap[t], voc_video_ap_loop(videos, 3, dets, gttubes, t, nms), atol=1e-9
        )


def frame_ap_loop(videos, n_labels, det_items, gt_items, th=0.5):
    """Loop twin of frame_ap (ACT frameAP matching and trapezoid AP)."""
    out = []
    for c in range(n_labels):
        fd = [(v, int(r[0]), s, r[1:]) for v, lab, s, rows in det_items if lab == c for r in rows]
        gt = {}
        for v, lab, rows in gt_items:
            if lab == c:
                for r in rows:
                    gt.setdefault((v, int(r[0])), []).append(r[1:])
        npos = sum(len(b) for b in gt.values())
        tp = []
        for j in np.argsort(-np.array([d[2] for d in fd])) if fd else []:
            v, f, _, box = fd[j]
            ok = False
            if (v, f) in gt:
                ious = ref.iou2d(np.array(gt[(v, f)]), box)
                a = int(np.argmax(ious))
                if ious[a] >= th:
                    ok = True
                    del gt[(v, f)][a]
                    if not gt[(v, f)]:
                        del gt[(v, f)]
            tp.append(ok)
        out.append(pr_to_ap_act(np.array(tp, bool), npos))
    return np.array(out)


@pytest.mark.parametrize("seed", range(8))
def test_frame_ap_matches_loop_twin(seed):
    rng = np.random.default_rng(900 + seed)
    videos, _, gt_items, _, det_items = random_case(rng)
    gt = make_gt(videos, ["c0", "c1", "c2"], gt_items)
    ours = frame_ap(gt, TubeDetections.from_list(det_items))
    np.testing.assert_allclose(ours, frame_ap_loop(videos, 3, det_items, gt_items), atol=1e-6)
