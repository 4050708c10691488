"""tube_ops against naive loop twins on random inputs, plus hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from wsal.tube_ops import (
    TubeOrderError,
    box_iou,
    box_iou_paired,
    interpolate_gaps,
    st_iou,
    temporal_iou,
    tube_nms,
)


def iou_loop(a, b, plus_one):
    e = 1.0 if plus_one else 0.0
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            w = max(0.0, min(p[2] + e, q[2] + e) - max(p[0], q[0]))
            h = max(0.0, min(p[3] + e, q[3] + e) - max(p[1], q[1]))
            inter = w * h
            union = (
                (p[2] - p[0] + e) * (p[3] - p[1] + e)
                + (q[2] - q[0] + e) * (q[3] - q[1] + e)
                - inter
            )
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def st_iou_loop(a, b, plus_one):
    """Per-frame dictionary version of st-IoU (temporal IoU x mean IoU over common frames)."""
    fa = {int(r[0]): r[1:] for r in a}
    fb = {int(r[0]): r[1:] for r in b}
    common = sorted(set(fa) & set(fb))
    if not common:
        return 0.0
    union = max(max(fa), max(fb)) - min(min(fa), min(fb)) + 1
    ious = [iou_loop([fa[f]], [fb[f]], plus_one)[0, 0] for f in common]
    return len(common) / union * float(np.mean(ious))


def random_boxes(rng, n):
    xy = rng.uniform(0, 50, (n, 2))
    return np.c_[xy, xy + rng.uniform(0.5, 30, (n, 2))]


@pytest.mark.parametrize("plus_one", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_box_iou_matches_loop(seed, plus_one):
    rng = np.random.default_rng(seed)
    a, b = random_boxes(rng, 7), random_boxes(rng, 9)
    a = np.round(a) if seed % 2 else a
    a[0] = b[0]  # identical boxes -> 1
    np.testing.assert_allclose(box_iou(a, b, plus_one), iou_loop(a, b, plus_one), atol=1e-12)
    np.testing.assert_allclose(
        box_iou_paired(a[:7], b[:7], plus_one),
        np.diag(iou_loop(a[:7], b[:7], plus_one)),
        atol=1e-12,
    )
    assert box_iou(a[:1], b[:1], plus_one)[0, 0] == pytest.approx(1.0)


def test_temporal_iou_hand_computed():
    assert temporal_iou(0, 9, 5, 14) == pytest.approx(5 / 15)
    assert temporal_iou(0, 0, 0, 0) == 1.0
    assert temporal_iou(0, 4, 5, 9) == 0.0
    np.testing.assert_allclose(temporal_iou(np.array([0, 3]), np.array([9, 3]), 3, 3), [0.1, 1.0])


@pytest.mark.parametrize("seed", range(8))
def test_st_iou_matches_loop(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        s1, s2 = rng.integers(0, 20, 2)
        n1, n2 = int(rng.integers(1, 15)), int(rng.integers(1, 15))
        a = np.c_[np.arange(s1, s1 + n1), random_boxes(rng, n1)]
        b = np.c_[np.arange(s2, s2 + n2), random_boxes(rng, n2)]
        for plus_one in (False, True):
            assert st_iou(a, b, plus_one) == pytest.approx(st_iou_loop(a, b, plus_one), abs=1e-12)


def interpolate_loop(rows):
    out = [rows[0]]
    for prev, cur in zip(rows[:-1], rows[1:]):
        gap = int(cur[0] - prev[0])
        for k in range(1, gap):
            out.append(np.r_[prev[0] + k, prev[1:] + (cur[1:] - prev[1:]) * k / gap])
        out.append(cur)
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
def test_interpolate_gaps_matches_loop(seed):
    rng = np.random.default_rng(seed)
    tubes = []
    for _ in range(6):
        n = int(rng.integers(1, 8))
        frames = np.sort(rng.choice(40, n, replace=False))
        tubes.append(np.c_[frames, random_boxes(rng, n)])
    rows = np.concatenate(tubes)
    off = np.concatenate([[0], np.cumsum([len(t) for t in tubes])])
    got, got_off, filled = interpolate_gaps(rows, off)
    expected = [interpolate_loop(t) for t in tubes]
    assert filled == sum(len(e) for e in expected) - len(rows)
    for i, e in enumerate(expected):
        np.testing.assert_allclose(got[got_off[i] : got_off[i + 1]], e, atol=1e-9)


def test_interpolate_refuses_duplicates():
    rows = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1.0]])
    with pytest.raises(TubeOrderError, match="tube 0"):
        interpolate_gaps(rows, np.array([0, 2]))


def test_tube_nms_hand_computed():
    t = np.c_[np.arange(5), np.tile([0, 0, 10, 10], (5, 1))].astype(float)
    far = np.c_[np.arange(5), np.tile([50, 50, 60, 60], (5, 1))].astype(float)
    rows = np.concatenate([t, t, far])
    off = np.array([0, 5, 10, 15])
    # tubes 0 and 1 identical: the higher score survives; tube 2 is far away
    np.testing.assert_array_equal(tube_nms(rows, off, np.array([0.5, 0.9, 0.1]), 0.3), [1, 2])
    # separate groups never suppress each other
    np.testing.assert_array_equal(
        tube_nms(rows, off, np.array([0.5, 0.9, 0.1]), 0.3, groups=np.array([0, 1, 1])), [0, 1, 2]
    )
