"""Annotation readers on the real files in ``shared/data`` and on small hand-made files.

Conventions under test (DESIGN §4): frames 0-based int64, boxes xyxy float32; ACT pickles are
1-based; UCF101-24 pyannot has ``sf`` inclusive / ``ef`` exclusive and ``[x, y, w, h]`` uint8/16
boxes; pickles go through the restricted unpickler.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from wsal.data.annotations import (
    DatasetIndex,
    GTTube,
    UnsafePickleError,
    VideoInfo,
    load_index,
    read_act_pkl,
    read_ucf101_pyannot,
    read_wsal_json,
    safe_pickle_load,
    write_wsal_json,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PYANNOT = DATA / "ucf101-24" / "pyannot_with_class_names.pkl"
TESTLIST = DATA / "ucf101-24" / "testlist01.txt"
SPORTS = DATA / "ucfsports" / "UCFSports-GT.pkl"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.is_file():
            pytest.skip(f"real annotation file {p} is absent (see shared/data/README.md)")


@pytest.fixture(scope="module")
def pyannot_raw() -> dict:
    _need(PYANNOT)
    return safe_pickle_load(PYANNOT)


@pytest.fixture(scope="module")
def ucf24() -> DatasetIndex:
    _need(PYANNOT)
    return read_ucf101_pyannot(PYANNOT)


@pytest.fixture(scope="module")
def sports() -> DatasetIndex:
    _need(SPORTS)
    return read_act_pkl(SPORTS)


def _dump(path: Path, obj: object, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


# --------------------------------------------------------------------------- restricted unpickler


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo hacked",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_safe_pickle_refuses_os_system(tmp_path: Path, protocol: int) -> None:
    path = _dump(tmp_path / "evil.pkl", _Evil(), protocol)
    with pytest.raises(UnsafePickleError) as err:
        safe_pickle_load(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"{os.system.__module__}.system" in msg  # ``posix.system`` on Linux


@pytest.mark.parametrize(
    "raw",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"c__builtin__\ngetattr\n(c__builtin__\nobject\nS'x'\ntR.",
        b"cnumpy\nload\n(S'x.npy'\ntR.",
        b"c_codecs\ndecode\n(S'x'\ntR.",
    ],
)
def test_safe_pickle_refuses_other_globals(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(raw)
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        safe_pickle_load(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_pickle_loads_containers_and_numpy(tmp_path: Path, protocol: int) -> None:
    obj = {
        "list": [1, 2.5, "a", None, True, b"\x00\xff", (3, 4)],
        "set": {1, 2},
        "frozen": frozenset({"x"}),
        "complex": 1 + 2j,
        "ordered": collections.OrderedDict(a=1, b=2),
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "u8": np.array([[250, 10]], dtype=np.uint8),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "str_arr": np.array(["ab", "c"]),
        "obj_arr": np.array([1, "a", None], dtype=object),
        "struct": np.zeros(2, dtype=[("a", "f4"), ("b", "i8")]),
        "empty": np.zeros((0, 5)),
        "scalars": [np.float32(1.5), np.int64(7), np.uint16(900), np.bool_(True), np.str_("v")],
        "dtype": np.dtype("<U7"),
    }
    back = safe_pickle_load(_dump(tmp_path / "ok.pkl", obj, protocol))
    assert back.keys() == obj.keys()
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
            assert back[k].tolist() == v.tolist(), k
        else:
            assert back[k] == v and type(back[k]) is type(v), k
    assert [type(x) for x in back["scalars"]] == [type(x) for x in obj["scalars"]]


def test_safe_pickle_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        safe_pickle_load(tmp_path / "nope.pkl")
    path = tmp_path / "garbage.pkl"
    path.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(pickle.UnpicklingError, match="garbage.pkl"):
        safe_pickle_load(path)


def test_real_numpy1_pickle_loads_without_deprecation_warning(pyannot_raw: dict) -> None:
    # The pyannot file names ``numpy.core.multiarray``; numpy 2 warns when that shim is touched.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = safe_pickle_load(PYANNOT)
    assert len(data["db"]) == len(pyannot_raw["db"])


# --------------------------------------------------------------------------- UCF101-24 pyannot


def test_ucf24_counts(ucf24: DatasetIndex) -> None:
    s = ucf24.summary()
    assert s["videos"] == 3194 and s["labels"] == 24 and s["tubes"] == 4458
    assert s["splits"] == {"train": 2284, "test": 910}
    assert s["split_tubes"] == {"train": 4458 - 1315, "test": 1315}
    assert s["degenerate_boxes"] == 0
    assert ucf24.labels[0] == "Basketball" and ucf24.labels[-1] == "WalkingWithDog"
    assert all(type(v) is str for v in ucf24.videos)  # the file's keys are np.str_
    assert all(
        info.labels and (info.width, info.height) == (320, 240) for info in ucf24.videos.values()
    )
    assert ucf24.root is None and ucf24.split(1) is ucf24.splits["test"]


def test_ucf24_test_split_is_testlist01(ucf24: DatasetIndex) -> None:
    _need(TESTLIST)
    # One ``Class/v_Class_gXX_cYY`` per line, no extension or label column, sorted, no final newline.
    lines = TESTLIST.read_text().splitlines()
    assert len(lines) == 910 and lines[0] == "Basketball/v_Basketball_g01_c01"
    assert ucf24.splits["test"] == lines  # same videos, same order
    assert not set(ucf24.splits["train"]) & set(lines)


def test_ucf24_handpicked_tube(pyannot_raw: dict, ucf24: DatasetIndex) -> None:
    vid = "Basketball/v_Basketball_g13_c01"
    # Raw values, read from the file by hand: annotation 1 of this video.
    ann = pyannot_raw["db"][vid]["annotations"][1]
    assert (ann["sf"], ann["ef"], ann["label"]) == (183, 231, 0)
    assert ann["boxes"].dtype == np.uint8 and ann["boxes"].shape == (48, 4)
    assert ann["boxes"][0].tolist() == [221, 94, 43, 70]  # x + w = 264 wraps to 8 in uint8
    assert ann["boxes"][-1].tolist() == [196, 98, 33, 71]
    assert int(pyannot_raw["db"][vid]["numf"]) == 300

    info = ucf24.videos[vid]
    assert info.nframes == 300 and info.labels == [0] and len(info.tubes) == 2
    tube = info.tubes[1]
    assert tube.label == 0
    assert tube.frames.dtype == np.int64 and tube.boxes.dtype == np.float32
    np.testing.assert_array_equal(tube.frames, np.arange(183, 231))  # sf..ef-1, 0-based
    np.testing.assert_array_equal(tube.boxes[0], [221, 94, 264, 164])
    np.testing.assert_array_equal(tube.boxes[-1], [196, 98, 229, 169])
    assert vid in ucf24.splits["train"]


def test_ucf24_no_overflow_anywhere(ucf24: DatasetIndex) -> None:
    boxes = np.concatenate([t.boxes for _, t in ucf24.gt_tubes()])
    assert np.all(boxes[:, 2:] > boxes[:, :2])  # a wrapped uint8 sum would break this
    assert boxes.min() >= 1 and boxes[:, 2].max() <= 320 and boxes[:, 3].max() <= 240


def _pyannot(**tube: object) -> dict:
    ann = {"label": 1, "sf": 2, "ef": 5, "boxes": np.array([[1, 2, 3, 4]] * 3, dtype=np.uint8)}
    ann.update(tube)
    return {
        "db": {"B/v_b": {"label": 1, "numf": np.uint8(6), "annotations": [ann]}},
        "classes": ["A", "B"],
        "trainvideos": ["B/v_b", "B/v_not_annotated"],
    }


def test_pyannot_small_file(tmp_path: Path) -> None:
    idx = read_ucf101_pyannot(
        _dump(tmp_path / "p.pkl", _pyannot(), 2), root=tmp_path, resolution=None
    )
    assert idx.splits == {"train": ["B/v_b"], "test": []}  # unknown train videos are dropped
    info = idx.videos["B/v_b"]
    assert (info.nframes, info.width, info.height, info.labels) == (6, None, None, [1])
    np.testing.assert_array_equal(info.tubes[0].frames, [2, 3, 4])
    np.testing.assert_array_equal(info.tubes[0].boxes, [[1, 2, 4, 6]] * 3)
    assert idx.video_path("B/v_b") == tmp_path / "B/v_b"


@pytest.mark.parametrize(
    ("tube", "match"),
    [
        ({"ef": 6}, "do not match ef - sf = 4"),
        ({"boxes": np.zeros((3, 5), np.uint8)}, "do not match"),
        ({"sf": 4, "ef": 7, "boxes": np.ones((3, 4), np.uint8)}, "not within"),
        ({"label": 9}, "label index 9 out of range"),
    ],
)
def test_pyannot_errors(tmp_path: Path, tube: dict, match: str) -> None:
    path = _dump(tmp_path / "p.pkl", _pyannot(**tube))
    with pytest.raises(ValueError, match=match) as err:
        read_ucf101_pyannot(path)
    assert str(path) in str(err.value) and "'B/v_b'" in str(err.value)


# --------------------------------------------------------------------------- ACT *-GT.pkl


def test_ucfsports_counts(sports: DatasetIndex) -> None:
    s = sports.summary()
    assert s["videos"] == 150 and s["labels"] == 10 and s["tubes"] == 150
    assert s["splits"] == {"train": 103, "test": 47}
    assert s["mean_tube_length"] == pytest.approx(63.9, abs=0.05)
    assert s["degenerate_boxes"] == 4  # as README says; kept, not dropped
    assert sports.labels[:2] == ["Diving", "Golf"]
    assert sports.splits["train"][0] == "Diving-Side/005"  # file order
    assert sports.splits["test"][0] == "Diving-Side/001"


def test_ucfsports_handpicked_tubes(sports: DatasetIndex) -> None:
    # Raw rows read from the file by hand (1-based frame, x1, y1, x2, y2):
    # Diving-Side/001, label 0, 55 frames: first [1, 330, 66, 525, 373], last [55, 302, 123, 434, 314].
    info = sports.videos["Diving-Side/001"]
    assert info.nframes == 55 and info.labels == [0] and len(info.tubes) == 1
    assert (info.width, info.height, info.path) == (None, None, "Diving-Side/001")
    tube = info.tubes[0]
    np.testing.assert_array_equal(tube.frames, np.arange(55))  # 1..55 -> 0..54
    np.testing.assert_array_equal(tube.boxes[0], [330, 66, 525, 373])
    np.testing.assert_array_equal(tube.boxes[-1], [302, 123, 434, 314])
    # Run-Side/002, label 5 ("Run"): 1-based frame 45 is the degenerate [388, 126, 388, 126].
    run = sports.videos["Run-Side/002"].tubes[0]
    assert sports.labels[run.label] == "Run"
    assert run.frames[44] == 44
    np.testing.assert_array_equal(run.boxes[44], [388, 126, 388, 126])


def _act(**over: object) -> dict:
    data = {
        "labels": ["a", "b"],
        "gttubes": {
            "v1": {1: [np.array([[1, 0, 0, 5, 5], [2, 1, 1, 6, 6]], np.float32)]},
            "v2": {},
        },
        "nframes": {"v1": 3, "v2": 4},
        "resolution": {"v1": (240, 320), "v2": (10, 20)},
        "train_videos": [["v1"], ["v2"], ["v1", "v2"]],
        "test_videos": [["v2"], ["v1"], []],
    }
    data.update(over)
    return data


def test_act_small_file_three_splits(tmp_path: Path) -> None:
    idx = read_act_pkl(_dump(tmp_path / "J-GT.pkl", _act(), 2))
    assert idx.splits == {
        "train": ["v1"],
        "test": ["v2"],
        "train2": ["v2"],
        "test2": ["v1"],
        "train3": ["v1", "v2"],
        "test3": [],
    }
    assert idx.split(2) == ["v1"] and idx.split("test3") == []
    v1, v2 = idx.videos["v1"], idx.videos["v2"]
    assert (v1.height, v1.width, v1.labels) == (240, 320, [1])
    assert (v2.nframes, v2.labels, v2.tubes) == (4, [], [])
    np.testing.assert_array_equal(v1.tubes[0].frames, [0, 1])


def _tube(*rows: list[float]) -> dict:
    return {"v1": {1: [np.array(rows, np.float32)]}}


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"gttubes": _tube([2, 0, 0, 1, 1], [1, 0, 0, 1, 1])}, "not strictly increasing"),
        ({"gttubes": _tube([1, 0, 0, 1, 1], [1, 0, 0, 1, 1])}, "not strictly increasing"),
        ({"gttubes": _tube([3, 0, 0, 1, 1], [4, 0, 0, 1, 1])}, r"outside \[1, nframes=3\]"),
        ({"gttubes": _tube([0, 0, 0, 1, 1])}, r"outside \[1, nframes=3\]"),
        ({"gttubes": _tube([1.5, 0, 0, 1, 1])}, "not integers"),
        ({"gttubes": {"v1": {1: [np.zeros((2, 4), np.float32)]}}}, r"\(n, 5\)"),
        ({"gttubes": {"v1": {7: []}}}, "label index 7 out of range"),
    ],
)
def test_act_tube_errors(tmp_path: Path, over: dict, match: str) -> None:
    path = _dump(tmp_path / "X-GT.pkl", _act(**over))
    with pytest.raises(ValueError, match=match) as err:
        read_act_pkl(path)
    assert str(path) in str(err.value) and "'v1'" in str(err.value)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"train_videos": [["v1", "ghost"]], "test_videos": [[]]}, "unknown video 'ghost'"),
        ({"train_videos": ["v1"], "test_videos": ["v2"]}, "one list of video ids per split"),
        ({"gttubes": {"ghost": {}}}, "'ghost' has gttubes but no nframes"),
    ],
)
def test_act_index_errors(tmp_path: Path, over: dict, match: str) -> None:
    path = _dump(tmp_path / "X-GT.pkl", _act(**over))
    with pytest.raises(ValueError, match=match) as err:
        read_act_pkl(path)
    assert str(path) in str(err.value)


def test_act_missing_keys(tmp_path: Path) -> None:
    data = _act()
    del data["nframes"]
    with pytest.raises(ValueError, match=r"missing keys \['nframes'\]"):
        read_act_pkl(_dump(tmp_path / "X-GT.pkl", data))


# --------------------------------------------------------------------------- load_index, round trip


def test_load_index_dispatch(tmp_path: Path) -> None:
    act = load_index(_dump(tmp_path / "a.pkl", _act()))
    assert act.labels == ["a", "b"] and "train3" in act.splits
    py = load_index(_dump(tmp_path / "b.pickle", _pyannot()))
    assert py.labels == ["A", "B"] and py.videos["B/v_b"].width == 320
    write_wsal_json(act, tmp_path / "c.json")
    js = load_index(tmp_path / "c.json")
    assert js.splits == act.splits and js.root == tmp_path
    with pytest.raises(ValueError, match=r"unknown pickle layout.*'foo'"):
        load_index(_dump(tmp_path / "d.pkl", {"foo": 1}))
    (tmp_path / "e.txt").write_text("x")
    with pytest.raises(ValueError, match=r"e.txt: unknown annotation format '.txt'"):
        load_index(tmp_path / "e.txt")
    with pytest.raises(FileNotFoundError, match="f.json"):
        load_index(tmp_path / "f.json")


def _assert_same(a: DatasetIndex, b: DatasetIndex) -> None:
    assert a.labels == b.labels and a.splits == b.splits and list(a.videos) == list(b.videos)
    for vid, x in a.videos.items():
        y = b.videos[vid]
        assert (x.nframes, x.labels, x.width, x.height, x.path) == (
            y.nframes,
            y.labels,
            y.width,
            y.height,
            y.path,
        ), vid
        assert len(x.tubes) == len(y.tubes), vid
        for s, t in zip(x.tubes, y.tubes):
            assert s.label == t.label
            assert s.frames.dtype == t.frames.dtype and s.boxes.dtype == t.boxes.dtype
            np.testing.assert_array_equal(s.frames, t.frames)
            np.testing.assert_array_equal(s.boxes, t.boxes)


@pytest.mark.parametrize("which", ["sports", "ucf24"])
def test_round_trip_real(tmp_path: Path, request: pytest.FixtureRequest, which: str) -> None:
    idx = request.getfixturevalue(which)
    write_wsal_json(idx, tmp_path / "x.json")
    _assert_same(idx, read_wsal_json(tmp_path / "x.json"))


# --------------------------------------------------------------------------- wsal JSON errors


def _wsal() -> dict:
    return {
        "labels": ["run", "jump"],
        "splits": {"train": ["v1"], "test": ["v2"]},
        "videos": {
            "v1": {
                "path": "v1.mp4",
                "nframes": 4,
                "labels": ["run"],
                "tubes": [
                    {"label": "run", "frames": [1, 2], "boxes": [[0, 0, 2, 2], [1, 1, 3, 3]]}
                ],
            },
            "v2": {"path": "v2.mp4", "nframes": 3, "labels": [1], "tubes": []},
        },
    }


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_wsal_json_small_file(tmp_path: Path) -> None:
    idx = read_wsal_json(_write(tmp_path, _wsal()))
    assert idx.videos["v2"].labels == [1]
    assert idx.video_path("v1") == tmp_path / "v1.mp4"
    np.testing.assert_array_equal(idx.videos["v1"].tubes[0].boxes[1], [1, 1, 3, 3])


def _bad(edit: str) -> dict:
    data = copy.deepcopy(_wsal())
    tube = data["videos"]["v1"]["tubes"][0]
    if edit == "label":
        tube["label"] = "swim"
    elif edit == "beyond":
        tube["frames"] = [3, 4]
    elif edit == "mismatch":
        tube["boxes"] = tube["boxes"][:1]
    elif edit == "split":
        data["splits"]["test"] = ["v2", "v9"]
    return data


@pytest.mark.parametrize(
    ("edit", "match", "video"),
    [
        ("label", "label 'swim' is not in labels", "'v1'"),
        ("beyond", "frame 4 >= nframes 4", "'v1'"),
        ("mismatch", "2 frames but 1 boxes", "'v1'"),
        ("split", "split 'test' names unknown videos", "'v9'"),
    ],
)
def test_wsal_json_errors(tmp_path: Path, edit: str, match: str, video: str) -> None:
    path = _write(tmp_path, _bad(edit))
    with pytest.raises(ValueError, match=match) as err:
        read_wsal_json(path)
    assert str(path) in str(err.value) and video in str(err.value)


def test_wsal_json_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_wsal_json(tmp_path / "absent.json")
    path = tmp_path / "broken.json"
    path.write_text('{"labels": [')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        read_wsal_json(path)


# --------------------------------------------------------------------------- summary


def test_summary_empty_and_tiny() -> None:
    empty = DatasetIndex(labels=[], splits={}, videos={})
    assert empty.summary()["mean_tube_length"] == 0.0 and empty.summary()["tubes"] == 0
    tube = GTTube(0, [0, 2], [[0, 0, 1, 1], [5, 5, 5, 9]])
    idx = DatasetIndex(
        ["a"], {"train": ["v"]}, {"v": VideoInfo(nframes=3, labels=[0], tubes=[tube])}
    )
    s = idx.summary()
    assert s["mean_tube_length"] == 2.0 and s["degenerate_boxes"] == 1
    assert s["split_tubes"] == {"train": 1}
