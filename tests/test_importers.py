"""Importers of the standard datasets' native annotation files, on the real files in
``shared/data`` and on tiny fixtures written in the native layouts.

Conventions under test: UCF Sports per-frame boxes (frame = sorted position, ``x y w h``, the
split list's frame counts) give exactly ``UCFSports-GT.pkl``; ``finalAnnots.mat`` (1-based
inclusive ``sf``/``ef``, 1-based ``class``) gives exactly what pyannot (``sf`` 0-based, ``ef``
exclusive, 0-based ``label``) gives for the same content; ACT export round-trips; J-HMDB's ACT
layout check reports every departure.
"""

from __future__ import annotations

import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.datasets.layouts import act_index, write_finalannots_mat, write_ucfsports_native
from wsal.data.annotations import (
    JHMDB_LABELS,
    UCF101_24_LABELS,
    DatasetIndex,
    check_jhmdb_layout,
    load_index,
    read_act_pkl,
    read_split_list,
    read_ucf101_finalannots_mat,
    read_ucf101_pyannot,
    read_ucfsports_txt,
    safe_pickle_load,
    write_act_pkl,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PYANNOT = DATA / "ucf101-24" / "pyannot_with_class_names.pkl"
SPORTS_PKL = DATA / "ucfsports" / "UCFSports-GT.pkl"
SPORTS_TAR = DATA / "ucfsports" / "per-frame-boxes.tar.gz"
SPORTS_LIST = DATA / "ucfsports" / "UCF-Sports_videos.txt"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.is_file():
            pytest.skip(f"real annotation file {p} is absent (see shared/data/README.md)")


def assert_same_index(a: DatasetIndex, b: DatasetIndex, sizes: bool = True) -> None:
    assert a.labels == b.labels
    assert a.splits == b.splits
    assert list(a.videos) == list(b.videos)
    for v in a.videos:
        x, y = a.videos[v], b.videos[v]
        assert (x.nframes, x.labels, x.path) == (y.nframes, y.labels, y.path), v
        if sizes:
            assert (x.width, x.height) == (y.width, y.height), v
        assert len(x.tubes) == len(y.tubes), v
        for s, t in zip(x.tubes, y.tubes):
            assert s.label == t.label
            np.testing.assert_array_equal(s.frames, t.frames)
            np.testing.assert_array_equal(s.boxes, t.boxes)
            assert s.frames.dtype == np.int64 and s.boxes.dtype == np.float32


# ------------------------------------------------------------------ UCF Sports per-frame boxes


@pytest.fixture(scope="module")
def sports_txt() -> DatasetIndex:
    _need(SPORTS_TAR, SPORTS_LIST)
    with pytest.warns(UserWarning, match="Walk-Front/017.*101 box files.*100 frames"):
        return read_ucfsports_txt(SPORTS_TAR, SPORTS_LIST)


def test_real_ucfsports_txt_equals_act_pkl(sports_txt: DatasetIndex) -> None:
    """The per-frame txt files + split list and UCFSports-GT.pkl are the same dataset: same
    labels, splits (file order), nframes, one tube per video, frames and xyxy boxes."""
    _need(SPORTS_PKL)
    assert_same_index(sports_txt, read_act_pkl(SPORTS_PKL))


def test_real_ucfsports_txt_counts(sports_txt: DatasetIndex) -> None:
    s = sports_txt.summary()
    assert (s["videos"], s["labels"], s["tubes"]) == (150, 10, 150)
    assert s["splits"] == {"train": 103, "test": 47}
    assert s["degenerate_boxes"] == 4  # shared/data/README.md: 4 zero-width/height boxes
    assert s["mean_tube_length"] == pytest.approx(63.9, abs=0.05)
    # every tube starts at frame 0 and is contiguous (one file per frame)
    for info in sports_txt.videos.values():
        (t,) = info.tubes
        np.testing.assert_array_equal(t.frames, np.arange(t.frames.size))
    # hand-picked: the first file of Diving-Side/001 (sorted) holds "330 66 195 307 ..."
    t = sports_txt.videos["Diving-Side/001"].tubes[0]
    np.testing.assert_array_equal(t.boxes[0], [330, 66, 525, 373])
    assert sports_txt.videos["Walk-Front/017"].nframes == 101


def test_real_ucfsports_folder_equals_tar(tmp_path: Path, sports_txt: DatasetIndex) -> None:
    with tarfile.open(SPORTS_TAR) as t:
        t.extractall(tmp_path, filter="data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_root = read_ucfsports_txt(tmp_path, SPORTS_LIST)  # folder above Annotations/
        from_ann = read_ucfsports_txt(tmp_path / "Annotations", SPORTS_LIST)
    assert_same_index(from_root, sports_txt)
    assert_same_index(from_ann, sports_txt)


def test_real_split_list() -> None:
    _need(SPORTS_LIST)
    rows = read_split_list(SPORTS_LIST)
    assert len(rows) == 150
    assert rows[0].video == "Diving-Side/001" and rows[0].split == "test"
    assert rows[7].video == "Diving-Side/008" and rows[7].path == "Diving-Side/008"  # no .avi
    assert sum(r.split == "train" for r in rows) == 103


def _sports_videos() -> dict:
    a = np.array([[10, 20, 30, 40], [12, 22, 30, 41], [250, 200, 10, 0]])  # last: zero height
    b = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    return {
        "Run-Side/001": ("Run", "train", 3, a),
        "Diving-Side/002": ("Diving", "test", 4, b),  # list says 4 frames, 2 annotated
    }


@pytest.mark.parametrize("tar", [False, True], ids=["folder", "tar.gz"])
def test_ucfsports_txt_tiny(tmp_path: Path, tar: bool) -> None:
    ann, split_list = write_ucfsports_native(tmp_path, _sports_videos(), tar=tar)
    idx = read_ucfsports_txt(ann, split_list, root=tmp_path / "Frames")
    assert idx.labels == ["Diving", "Run"]  # sorted class names
    assert idx.splits == {"train": ["Run-Side/001"], "test": ["Diving-Side/002"]}
    assert list(idx.videos) == ["Diving-Side/002", "Run-Side/001"]
    run = idx.videos["Run-Side/001"]
    assert run.nframes == 3 and run.labels == [1] and run.path == "Run-Side/001"
    np.testing.assert_array_equal(run.tubes[0].frames, [0, 1, 2])
    np.testing.assert_array_equal(
        run.tubes[0].boxes, [[10, 20, 40, 60], [12, 22, 42, 63], [250, 200, 260, 200]]
    )
    div = idx.videos["Diving-Side/002"]
    assert div.nframes == 4  # the list's count, annotations cover frames 0..1
    np.testing.assert_array_equal(div.tubes[0].frames, [0, 1])
    assert idx.video_path("Run-Side/001") == tmp_path / "Frames" / "Run-Side/001"
    # load_index dispatches on the folder / tar, finding the split list beside it
    assert_same_index(load_index(ann), idx, sizes=False)


def test_ucfsports_frame_index_is_sorted_position(tmp_path: Path) -> None:
    """Files are read in sorted name order whatever order the file system lists them in."""
    ann, split_list = write_ucfsports_native(tmp_path, _sports_videos())
    gt = ann / "Run-Side/001/gt"
    files = sorted(gt.iterdir())
    # rename so that the names sort differently from creation order: a_ < b_ < c_
    for new, f in zip(["c_9.txt", "a_5.txt", "b_1.txt"], files):
        f.rename(gt / new)
    t = read_ucfsports_txt(ann, split_list).videos["Run-Side/001"].tubes[0]
    # sorted: a_5 (2nd box), b_1 (3rd), c_9 (1st)
    np.testing.assert_array_equal(t.boxes[:, 0], [12, 250, 10])


def test_ucfsports_txt_errors(tmp_path: Path) -> None:
    ann, split_list = write_ucfsports_native(tmp_path, _sports_videos())
    # a partial download: videos of the list without box files are all named
    with split_list.open("a") as fh:
        fh.write("003   Walk   test   5   1  1  Walk-Front/009/x.avi\n")
        fh.write("004   Walk   test   5   1  1  Walk-Front/010/y.avi\n")
    with pytest.raises(ValueError, match=r"2 of 4 videos.*Walk-Front/009.*Walk-Front/010"):
        read_ucfsports_txt(ann, split_list)
    ann2, list2 = write_ucfsports_native(tmp_path / "b", _sports_videos())
    # more files than the list says: nframes raised, with a warning
    list2.write_text(list2.read_text().replace("train   3", "train   2"))
    with pytest.warns(UserWarning, match="Run-Side/001.*3 box files.*2 frames"):
        assert read_ucfsports_txt(ann2, list2).videos["Run-Side/001"].nframes == 3
    bad = sorted((ann2 / "Diving-Side/002/gt").iterdir())[0]
    bad.write_text("1 2 3 4 Walk\n5 6 7 8 Walk\n")
    with pytest.raises(ValueError, match=rf"Diving-Side/002/gt/{bad.name}.*2 lines"):
        read_ucfsports_txt(ann2, list2)
    bad.write_text("1 2 x 4 Walk")
    with pytest.raises(ValueError, match="not numbers"):
        read_ucfsports_txt(ann2, list2)
    list2.write_text("001 Run train\n")
    with pytest.raises(ValueError, match=r"UCF-Sports_videos.txt:1: expected 7 columns"):
        read_ucfsports_txt(ann2, list2)
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        read_ucfsports_txt(tmp_path / "broken.tar.gz", split_list)


# ------------------------------------------------------------------ UCF101-24 finalAnnots.mat


def _mat_and_pyannot() -> tuple[list[dict], dict]:
    """The same three videos as finalAnnots.mat content and as pyannot content."""
    b1 = np.array([[10, 20, 30, 40], [11, 21, 30, 40], [250, 200, 70, 40]])  # 250 + 70 > 255
    b2 = np.array([[1, 1, 5, 5]])
    b3 = np.array([[5, 6, 7, 8], [5, 6, 7, 8]])
    mat = [
        {"name": "Biking/v_Biking_g01_c01", "num_imgs": 10,
         "tubes": [{"sf": 3, "ef": 5, "class": 3, "boxes": b1}]},
        {"name": "Basketball/v_Basketball_g02_c01", "num_imgs": 4,
         "tubes": [{"sf": 1, "ef": 1, "class": 1, "boxes": b2},
                   {"sf": 3, "ef": 4, "class": 1, "boxes": b3}]},
        {"name": "Skiing/v_Skiing_g03_c02", "num_imgs": 6, "tubes": []},
    ]  # fmt: skip
    db = {
        "Biking/v_Biking_g01_c01": {"label": 2, "numf": 10, "annotations": [
            {"label": 2, "sf": 2, "ef": 5, "boxes": b1.astype(np.uint8)}]},
        "Basketball/v_Basketball_g02_c01": {"label": 0, "numf": 4, "annotations": [
            {"label": 0, "sf": 0, "ef": 1, "boxes": b2.astype(np.uint8)},
            {"label": 0, "sf": 2, "ef": 4, "boxes": b3.astype(np.uint8)}]},
        "Skiing/v_Skiing_g03_c02": {"label": 16, "numf": 6, "annotations": []},
    }  # fmt: skip
    pyannot = {"db": db, "classes": list(UCF101_24_LABELS),
               "trainvideos": ["Biking/v_Biking_g01_c01", "Skiing/v_Skiing_g03_c02"]}  # fmt: skip
    return mat, pyannot


def test_finalannots_mat_matches_pyannot(tmp_path: Path) -> None:
    mat, pyannot = _mat_and_pyannot()
    write_finalannots_mat(tmp_path / "finalAnnots.mat", mat)
    (tmp_path / "pyannot.pkl").write_bytes(pickle.dumps(pyannot))
    m = read_ucf101_finalannots_mat(
        tmp_path / "finalAnnots.mat", testlist=["Basketball/v_Basketball_g02_c01"]
    )
    p = read_ucf101_pyannot(tmp_path / "pyannot.pkl")
    assert_same_index(m, p)
    # hand-computed: 1-based inclusive sf=3, ef=5 -> 0-based frames 2, 3, 4; x2 = 250 + 70 = 320
    t = m.videos["Biking/v_Biking_g01_c01"].tubes[0]
    np.testing.assert_array_equal(t.frames, [2, 3, 4])
    np.testing.assert_array_equal(t.boxes[2], [250, 200, 320, 240])
    assert m.videos["Skiing/v_Skiing_g03_c02"].labels == [16]  # from the name, no tubes
    assert (
        m.videos["Biking/v_Biking_g01_c01"].width,
        m.videos["Biking/v_Biking_g01_c01"].height,
    ) == (320, 240)


def test_finalannots_mat_real_content_cross_check(tmp_path: Path) -> None:
    """Real pyannot videos (multi-tube ones included) written as finalAnnots.mat (sf + 1, ef,
    label + 1, same boxes) read back identical to the pyannot reader's index."""
    _need(PYANNOT)
    raw = safe_pickle_load(PYANNOT)
    ref = read_ucf101_pyannot(PYANNOT)
    db = {str(k): v for k, v in raw["db"].items()}
    multi = [v for v in sorted(db) if len(db[v]["annotations"]) >= 3][:6]
    pick = sorted(set(sorted(db)[:6] + multi + ref.splits["test"][:6]))
    mat = [
        {"name": v, "num_imgs": int(db[v]["numf"]), "tubes": [
            {"sf": int(a["sf"]) + 1, "ef": int(a["ef"]), "class": int(a["label"]) + 1,
             "boxes": a["boxes"]} for a in db[v]["annotations"]]}
        for v in pick
    ]  # fmt: skip
    write_finalannots_mat(tmp_path / "finalAnnots.mat", mat)
    (tmp_path / "testlist01.txt").write_text("\n".join(ref.splits["test"]) + "\n")
    with pytest.warns(UserWarning, match="test-list videos have no annotation"):
        got = load_index(tmp_path / "finalAnnots.mat")  # testlist01.txt found beside it
    sub = DatasetIndex(
        ref.labels,
        {s: [v for v in vs if v in pick] for s, vs in ref.splits.items()},
        {v: ref.videos[v] for v in pick},
    )
    assert_same_index(got, sub)
    assert sum(len(i.tubes) for i in got.videos.values()) >= 18


@pytest.mark.parametrize(
    ("tube", "match"),
    [
        (
            {"sf": 0, "ef": 2, "class": 1, "boxes": np.ones((3, 4))},
            r"sf=0, ef=2 not within 1..num_imgs",
        ),
        ({"sf": 2, "ef": 11, "class": 1, "boxes": np.ones((10, 4))}, r"sf=2, ef=11 not within"),
        (
            {"sf": 1, "ef": 3, "class": 1, "boxes": np.ones((2, 4))},
            r"boxes of shape \(2, 4\), expected ef - sf \+ 1 = 3",
        ),
        ({"sf": 1, "ef": 1, "class": 0, "boxes": np.ones((1, 4))}, r"class 0 outside 1..24"),
        ({"sf": 1, "ef": 1, "class": 25, "boxes": np.ones((1, 4))}, r"class 25 outside"),
    ],
)
def test_finalannots_mat_errors(tmp_path: Path, tube: dict, match: str) -> None:
    write_finalannots_mat(
        tmp_path / "a.mat", [{"name": "Biking/v_x", "num_imgs": 10, "tubes": [tube]}]
    )
    with pytest.raises(ValueError, match=rf"a.mat: video 'Biking/v_x': tube 0: {match}"):
        read_ucf101_finalannots_mat(tmp_path / "a.mat", testlist=[])


def test_finalannots_mat_file_errors(tmp_path: Path) -> None:
    write_finalannots_mat(tmp_path / "a.mat", [{"name": "Biking/v_x", "num_imgs": 3, "tubes": []}])
    with pytest.raises(ValueError, match="put testlist01.txt beside it or pass testlist="):
        read_ucf101_finalannots_mat(tmp_path / "a.mat")
    from scipy.io import savemat

    savemat(str(tmp_path / "b.mat"), {"other": np.zeros(3)})
    with pytest.raises(ValueError, match=r"no 'annot' variable \(has \['other'\]\)"):
        read_ucf101_finalannots_mat(tmp_path / "b.mat", testlist=[])
    (tmp_path / "c.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(ValueError, match="not a readable MATLAB file"):
        read_ucf101_finalannots_mat(tmp_path / "c.mat", testlist=[])
    with pytest.raises(FileNotFoundError):
        read_ucf101_finalannots_mat(tmp_path / "missing.mat")


# ------------------------------------------------------------------ ACT export, J-HMDB layout


def _jhmdb_index() -> DatasetIndex:
    vids = {
        f"{c}/{c}_clip{i}": (li, 5 + i, 10 * li + i)
        for li, c in enumerate(JHMDB_LABELS[:3])
        for i in range(2)
    }
    names = list(vids)
    splits = {}
    for s in (1, 2, 3):
        test = names[s - 1 :: 3]
        suffix = "" if s == 1 else str(s)
        splits[f"train{suffix}"] = [v for v in names if v not in test]
        splits[f"test{suffix}"] = test
    return act_index(JHMDB_LABELS, vids, splits)


def test_write_act_pkl_round_trip(tmp_path: Path) -> None:
    idx = _jhmdb_index()
    write_act_pkl(idx, tmp_path / "JHMDB-GT.pkl")
    raw = safe_pickle_load(tmp_path / "JHMDB-GT.pkl")
    # 1-based frames in the file, 3 splits as lists, resolution (h, w)
    first = next(iter(raw["gttubes"].values()))
    assert next(iter(first.values()))[0][0, 0] == 1.0
    assert len(raw["train_videos"]) == 3 and raw["resolution"]["brush_hair/brush_hair_clip0"] == (
        240,
        320,
    )
    back = read_act_pkl(tmp_path / "JHMDB-GT.pkl")
    for v in idx.videos:
        idx.videos[v].path = v  # ACT's reader sets path = video id
    assert_same_index(back, idx)
    assert check_jhmdb_layout(back) == []


def test_jhmdb_layout_reports_every_problem() -> None:
    idx = _jhmdb_index()
    del idx.splits["train3"]
    idx.splits["train2"].append(idx.splits["test2"][0])  # in train and test
    idx.splits["test"] = idx.splits["test"][1:]  # a video in neither
    v = "catch/catch_clip1"
    idx.videos[v].tubes[0].label = 0  # brush_hair tube in a catch video
    idx.videos["clap/clap_clip0"].tubes.append(idx.videos["clap/clap_clip0"].tubes[0])
    problems = check_jhmdb_layout(idx)
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    assert "split 3: missing train3/test3" in text
    assert "split 2: 1 videos in train and test" in text
    assert "split 1: 1 videos in neither" in text
    assert f"video {v!r}: tube label 'brush_hair' is not its folder's class 'catch'" in text
    assert "'clap/clap_clip0': 2 tubes" in text
    idx.labels = list(JHMDB_LABELS[:20])
    assert any("not J-HMDB's 21 classes" in p for p in check_jhmdb_layout(idx))
