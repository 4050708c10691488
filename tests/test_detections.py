"""The detections store (wsal/data/detections.py): round trips and refusal of malformed files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from wsal.data.detections import (
    DetectionsFormatError,
    load_detections,
    save_detections,
    video_file_name,
)
from wsal.structures import Detections


def _dets(seed: int = 0, features: bool = True) -> dict[str, Detections]:
    rng = np.random.default_rng(seed)
    out = {}
    for vid, nf in (("walk/a", 5), ("jump/b__c", 3), ("x", 1)):
        n = int(rng.integers(1, 9))
        xy = rng.uniform(0, 50, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (n, 2))], axis=1)
        out[vid] = Detections.from_unsorted(
            rng.integers(0, nf, n),
            boxes,
            rng.uniform(0, 1, n),
            nf,
            labels=rng.integers(-1, 3, n),
            features=rng.normal(size=(n, 3)) if features else None,
        )
    return out


def _assert_same(a: dict[str, Detections], b: dict[str, Detections]) -> None:
    assert list(a) == list(b)
    for v in a:
        for key in ("frame", "boxes", "scores", "labels", "features"):
            x, y = getattr(a[v], key), getattr(b[v], key)
            assert (x is None) == (y is None), (v, key)
            if x is not None:
                np.testing.assert_array_equal(x, y, err_msg=f"{v} {key}")
        assert a[v].num_frames == b[v].num_frames


@pytest.mark.parametrize("form", ["file", "folder"])
def test_round_trip(tmp_path, form: str) -> None:
    dets = _dets()
    nf = {v: d.num_frames for v, d in dets.items()}
    path = tmp_path / ("dets.npz" if form == "file" else "dets")
    save_detections(path, dets)
    assert path.is_file() if form == "file" else (path / video_file_name("walk/a")).is_file()
    back = load_detections(path, num_frames=nf)
    _assert_same(dict(sorted(dets.items())), back)
    # Without an index the frame count is max frame + 1.
    for d in load_detections(path).values():
        assert d.num_frames == int(d.frame.max()) + 1


def test_folder_without_video_column_and_sorting(tmp_path) -> None:
    # Rows out of frame order; the stable sort keeps the file order within a frame.
    folder = tmp_path / "dets"
    folder.mkdir()
    np.savez(
        folder / video_file_name("cls/v1"),
        frame=np.array([2, 0, 2, 1]),
        boxes=np.tile(np.arange(4, dtype=np.float32), (4, 1)) + np.arange(4)[:, None],
        scores=np.array([0.1, 0.2, 0.3, 0.4], np.float32),
    )
    d = load_detections(folder)["cls/v1"]
    np.testing.assert_array_equal(d.frame, [0, 1, 2, 2])
    np.testing.assert_array_equal(d.scores, np.float32([0.2, 0.4, 0.1, 0.3]))
    assert d.num_frames == 3 and d.labels is None and d.features is None


def _write(path, **cols) -> None:
    base = {
        "video": np.array(["a", "a", "b"]),
        "frame": np.array([0, 1, 0]),
        "boxes": np.array([[0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 4, 4]], np.float32),
        "scores": np.array([0.5, 0.6, 0.7], np.float32),
    }
    base.update(cols)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    "cols, index, pattern",
    [
        ({"scores": np.array([0.5, 0.6], np.float32)}, None, r"'scores'.*row 2 \(video 'b'\)"),
        ({"boxes": np.zeros((3, 3), np.float32)}, None, r"'boxes'.*shape"),
        (
            {"boxes": np.array([[0, 0, 5, 5], [1, 1, np.nan, 6], [2, 2, 4, 4]], np.float32)},
            None,
            r"row 1 \(video 'a'\).*not finite",
        ),
        (
            {"scores": np.array([0.5, 0.6, np.inf], np.float32)},
            None,
            r"row 2 \(video 'b'\).*score inf is not finite",
        ),
        ({"frame": np.array([0, -1, 0])}, None, r"row 1 \(video 'a'\).*negative frame -1"),
        ({"frame": np.array([0, 1, 4])}, {"a": 2, "b": 4}, r"row 2 \(video 'b'\).*frame 4 >= .* 4"),
        (
            {"boxes": np.array([[0, 0, 5, 5], [1, 1, 6, 6], [4, 2, 2, 4]], np.float32)},
            None,
            r"row 2 \(video 'b'\).*x2 < x1",
        ),
        (
            {"boxes": np.array([[0, 5, 5, 4], [1, 1, 6, 6], [2, 2, 4, 4]], np.float32)},
            None,
            r"row 0 \(video 'a'\).*y2 < y1",
        ),
        ({}, {"a": 2}, r"row 2 \(video 'b'\): unknown video id"),
        ({"frame": np.array([0.0, 1.5, 0.0])}, None, r"row 1 \(video 'a'\).*not an integer"),
        ({"video": np.array(["a", "a", "b"], dtype=object)}, None, r"cannot read.*[Oo]bject"),
        ({"scores": None}, None, r"missing arrays \['scores'\]"),
    ],
    ids=[
        "length",
        "box-shape",
        "nan-box",
        "inf-score",
        "neg-frame",
        "frame-count",
        "x2<x1",
        "y2<y1",
        "unknown-video",
        "float-frame",
        "object",
        "missing",
    ],
)
def test_malformed_refused(tmp_path, cols, index, pattern) -> None:
    path = tmp_path / "bad.npz"
    _write(path, **cols)
    with pytest.raises(DetectionsFormatError, match=pattern) as info:
        load_detections(path, num_frames=index)
    assert str(path) in str(info.value)


def test_malformed_in_folder_names_the_file(tmp_path) -> None:
    folder = tmp_path / "dets"
    folder.mkdir()
    _write(folder / "ok.npz", video=None, frame=np.array([0, 1, 2]))
    bad = folder / "cls__v2.npz"
    _write(bad, video=None, scores=np.array([0.5, np.nan, 0.1], np.float32))
    with pytest.raises(DetectionsFormatError, match=r"row 1 \(video 'cls/v2'\)") as info:
        load_detections(folder)
    assert str(bad) in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_detections(tmp_path / "nope.npz")


def test_duplicate_video_across_files(tmp_path) -> None:
    folder = tmp_path / "dets"
    folder.mkdir()
    _write(folder / "one.npz")
    _write(folder / "two.npz")
    with pytest.raises(DetectionsFormatError, match="also in"):
        load_detections(folder)


def test_clipping_warns_once_per_file(tmp_path) -> None:
    path = tmp_path / "dets.npz"
    boxes = np.array([[-3, 0, 5, 5], [1, 1, 6, 6], [2, 2, 14, 4], [0, 0, 3, 12]], np.float32)
    _write(
        path,
        video=np.array(["a", "a", "b", "b"]),
        frame=np.array([0, 1, 0, 1]),
        boxes=boxes,
        scores=np.ones(4, np.float32),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dets = load_detections(path, frame_size={"a": (10, 10), "b": (10, 10)})
    assert len(caught) == 1
    assert "clipped 3 boxes" in str(caught[0].message) and str(path) in str(caught[0].message)
    np.testing.assert_array_equal(dets["a"].boxes, [[0, 0, 5, 5], [1, 1, 6, 6]])
    np.testing.assert_array_equal(dets["b"].boxes, [[2, 2, 10, 4], [0, 0, 3, 10]])
    inside = tmp_path / "inside.npz"
    _write(inside)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every box inside the frame: no warning
        load_detections(inside, frame_size={"a": (10, 10), "b": (10, 10)})


def test_grouping_fast_path_equals_the_sort():
    from wsal.data.detections import _group_rows

    rng = np.random.default_rng(0)
    video = np.array(["b"] * 5 + ["a"] * 4 + ["c"] * 3)  # contiguous runs, not sorted by name
    frame = np.array([0, 0, 1, 3, 3, 2, 0, 2, 1, 0, 1, 1])  # "a" has unsorted frames
    fast = _group_rows(video, frame)
    assert list(fast) == ["a", "b", "c"]
    for v, rows in fast.items():
        want = np.nonzero(video == v)[0]
        want = want[np.argsort(frame[want], kind="stable")]
        np.testing.assert_array_equal(rows, want)
    mixed = rng.permutation(12)  # interleaved videos: the sorting fallback, same answer
    slow = _group_rows(video[mixed], frame[mixed])
    for v, rows in slow.items():
        want = np.nonzero(video[mixed] == v)[0]
        np.testing.assert_array_equal(rows, want[np.argsort(frame[mixed][want], kind="stable")])
    assert _group_rows(np.zeros(0, "U1"), np.zeros(0, int)) == {}
