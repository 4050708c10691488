"""Containers check their shapes; results files round-trip; atomic writes keep normal modes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from wsal.atomic import atomic_write_text
from wsal.structures import Detections, TubeDetections, Tubes


def test_detections_sorted_csr_and_checks():
    d = Detections.from_unsorted([3, 1, 1], [[0, 0, 1, 1]] * 3, [0.5, 0.2, 0.3], num_frames=5)
    np.testing.assert_array_equal(d.frame, [1, 1, 3])
    np.testing.assert_allclose(d.scores, [0.2, 0.3, 0.5])  # stable within a frame
    np.testing.assert_array_equal(d.frame_ptr, [0, 0, 2, 2, 3, 3])
    assert d.in_frame(1) == slice(0, 2)
    with pytest.raises(ValueError, match="sorted"):
        Detections([2, 1], np.zeros((2, 4)), [1, 1], 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        Detections([0, 3], np.zeros((2, 4)), [1, 1], 3)
    with pytest.raises(ValueError, match="scores"):
        Detections([0, 1], np.zeros((2, 4)), [1], 3)


def test_tubes_contiguity_and_extent():
    valid = np.array([[0, 1, 1, 0], [1, 1, 1, 1]], bool)
    t = Tubes(np.ones((2, 4, 4)), valid, -np.ones((2, 4)), [0.5, 0.7])
    s, e = t.extent()
    np.testing.assert_array_equal(s, [1, 0])
    np.testing.assert_array_equal(e, [2, 3])
    with pytest.raises(ValueError, match="contiguous"):
        Tubes(np.ones((1, 4, 4)), np.array([[1, 0, 1, 0]], bool), -np.ones((1, 4)), [1])


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_tube_detections_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    items = [
        (
            f"v{i % 3}",
            i % 2,
            float(rng.random()),
            np.c_[np.arange(i, i + 4), rng.uniform(0, 50, (4, 4))],
        )
        for i in range(7)
    ]
    td = TubeDetections.from_list(items)
    td.save(tmp_path / f"r{suffix}", label_names=["a", "b"])
    back = TubeDetections.load(tmp_path / f"r{suffix}", label_names=["a", "b"])
    np.testing.assert_array_equal(back.video, td.video)
    np.testing.assert_array_equal(back.label, td.label)
    np.testing.assert_allclose(back.score, td.score)
    np.testing.assert_array_equal(back.offsets, td.offsets)
    np.testing.assert_allclose(back.rows, td.rows)
    sel = td.select(np.array([1, 4]))
    np.testing.assert_allclose(sel.tube(1), td.tube(4))


def test_tube_detections_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match="offsets"):
        TubeDetections(["v"], [0], [1.0], [0, 3], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="'v'.*non-finite"):
        TubeDetections(["v"], [0], [1.0], [0, 1], np.full((1, 5), np.nan))
    (tmp_path / "x.json").write_text('{"nope": 1}')
    with pytest.raises(ValueError, match="x.json"):
        TubeDetections.load(tmp_path / "x.json")


def test_atomic_write_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "hi")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hi"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
