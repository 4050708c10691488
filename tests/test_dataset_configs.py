"""The dataset and evaluation configs of the standard datasets, composed with Hydra against
``conf/`` and instantiated against tiny fixtures in each dataset's native layout; the
per-dataset evaluation protocols and the J-HMDB average over splits."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from tests.fixtures.datasets.layouts import act_index, write_finalannots_mat, write_ucfsports_native
from wsal.data.annotations import (
    JHMDB_LABELS,
    UCF101_24_LABELS,
    UCFSPORTS_LABELS,
    write_act_pkl,
    write_wsal_json,
)
from wsal.data.datasets import AnnotatedDataset, StandardDataset
from wsal.data.protocols import PROTOCOLS, average_over_splits, get_protocol

CONF = Path(__file__).resolve().parents[1] / "conf"


def _cfg(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _dataset(name: str, root: Path, *extra: str):
    cfg = _cfg([f"dataset={name}", f"dataset.root={root}", *extra])
    return instantiate(cfg.dataset)


def _sports_index():
    vids = {
        "Diving-Side/001": (0, 5, 1),
        "Golf-Swing-Back/002": (1, 4, 2),
        "Walk-Front/003": (9, 3, 3),
    }
    splits = {"train": ["Golf-Swing-Back/002", "Walk-Front/003"], "test": ["Diving-Side/001"]}
    return act_index(UCFSPORTS_LABELS, vids, splits)


def _jhmdb_index():
    names = [f"{c}/{c}_{i}" for c in JHMDB_LABELS[:2] for i in range(3)]
    vids = {v: (JHMDB_LABELS.index(v.split("/")[0]), 4, k) for k, v in enumerate(names)}
    splits = {}
    for s in (1, 2, 3):
        test = [names[s - 1], names[s + 2]]
        sfx = "" if s == 1 else str(s)
        splits[f"train{sfx}"], splits[f"test{sfx}"] = [v for v in names if v not in test], test
    return act_index(JHMDB_LABELS, vids, splits)


def test_ucfsports_config(tmp_path: Path) -> None:
    write_act_pkl(_sports_index(), tmp_path / "UCFSports-GT.pkl")
    ds = _dataset("ucfsports", tmp_path)
    assert isinstance(ds, StandardDataset) and ds.actors == ("person",)
    assert ds.frame_pattern == "{:05d}.jpg"
    p = ds.prepare()
    assert p.name == "ucfsports" and p.index.root == tmp_path / "Frames"
    assert p.index.splits["test"] == ["Diving-Side/001"] == p.index.splits["test1"]
    assert p.index.video_path("Walk-Front/003") == tmp_path / "Frames" / "Walk-Front/003"
    # the per-frame boxes + split list, and video files instead of frame folders
    ann, _ = write_ucfsports_native(
        tmp_path,
        {"Run-Side/001": ("Run", "test", 2, np.array([[1, 2, 3, 4], [1, 2, 3, 4]]))},
        tar=True,
    )
    ds = _dataset("ucfsports", tmp_path, f"dataset.annotations={ann}", "dataset.video_ext=.avi",
                  "dataset.media_dir=videos")  # fmt: skip
    with pytest.raises(ValueError, match=r"has labels \['Run'\], expected the 10 UCF Sports"):
        ds.prepare()


def test_jhmdb_config_splits(tmp_path: Path) -> None:
    idx = _jhmdb_index()
    write_act_pkl(idx, tmp_path / "JHMDB-GT.pkl")
    p1 = _dataset("jhmdb", tmp_path).prepare()
    p2 = _dataset("jhmdb", tmp_path, "dataset.split=2").prepare()
    assert p1.index.splits["test"] == idx.splits["test"]
    assert (
        p2.index.splits["test"] == idx.splits["test2"]
        and p2.index.splits["train"] == idx.splits["train2"]
    )
    assert p2.index.splits["test1"] == idx.splits["test"]  # every split stays available
    assert p2.name == "jhmdb2" and p1.cache_key != p2.cache_key
    assert _dataset("jhmdb", tmp_path).frame_pattern == "{:05d}.png"
    for bad in ("4", "0"):
        with pytest.raises(
            InstantiationException,
            match=rf"split {bad} is out of range; this dataset has splits 1..3",
        ):
            _dataset("jhmdb", tmp_path, f"dataset.split={bad}")
    with pytest.raises(InstantiationException, match="only split 1"):
        _dataset("ucfsports", tmp_path, "dataset.split=2")
    # not J-HMDB's layout: every problem listed
    idx.splits["test3"] = idx.splits["test3"][1:]
    write_act_pkl(idx, tmp_path / "JHMDB-GT.pkl")
    with pytest.raises(
        ValueError, match=r"not in J-HMDB's ACT layout:\n  split 3: 1 videos in neither"
    ):
        _dataset("jhmdb", tmp_path).prepare()


def test_ucf101_24_config(tmp_path: Path) -> None:
    b = np.array([[10, 20, 30, 40]] * 3, np.uint8)
    db = {"Biking/v_Biking_g01_c01": {"label": 2, "numf": 5, "annotations": [
              {"label": 2, "sf": 1, "ef": 4, "boxes": b}]},
          "Diving/v_Diving_g02_c01": {"label": 5, "numf": 3, "annotations": []}}  # fmt: skip
    raw = {"db": db, "classes": list(UCF101_24_LABELS), "trainvideos": ["Biking/v_Biking_g01_c01"]}
    (tmp_path / "pyannot_with_class_names.pkl").write_bytes(pickle.dumps(raw))
    p = _dataset("ucf101_24", tmp_path).prepare()
    assert p.index.splits == {"train": ["Biking/v_Biking_g01_c01"], "test": ["Diving/v_Diving_g02_c01"],
                              "train1": ["Biking/v_Biking_g01_c01"], "test1": ["Diving/v_Diving_g02_c01"]}  # fmt: skip
    np.testing.assert_array_equal(
        p.index.videos["Biking/v_Biking_g01_c01"].tubes[0].frames, [1, 2, 3]
    )
    # finalAnnots.mat + testlist01.txt beside it: the same index
    write_finalannots_mat(tmp_path / "finalAnnots.mat", [
        {"name": "Biking/v_Biking_g01_c01", "num_imgs": 5,
         "tubes": [{"sf": 2, "ef": 4, "class": 3, "boxes": b}]},
        {"name": "Diving/v_Diving_g02_c01", "num_imgs": 3, "tubes": []}])  # fmt: skip
    (tmp_path / "testlist01.txt").write_text("Diving/v_Diving_g02_c01\n")
    q = _dataset(
        "ucf101_24", tmp_path, f"dataset.annotations={tmp_path / 'finalAnnots.mat'}"
    ).prepare()
    assert q.index.splits == p.index.splits
    t, u = (
        p.index.videos["Biking/v_Biking_g01_c01"].tubes[0],
        q.index.videos["Biking/v_Biking_g01_c01"].tubes[0],
    )
    np.testing.assert_array_equal(t.boxes, u.boxes)
    np.testing.assert_array_equal(t.frames, u.frames)


def test_custom_config_root_only(tmp_path: Path) -> None:
    write_wsal_json(act_index(["a", "b"], {"x": (0, 3, 0), "y": (1, 4, 1)}, {"train": ["x"], "test": ["y"]}),
                    tmp_path / "annotations.json")  # fmt: skip
    ds = _dataset("custom", tmp_path)
    assert isinstance(ds, AnnotatedDataset)
    p = ds.prepare()
    assert p.name == "custom" and p.index.root == tmp_path and p.index.splits["test"] == ["y"]
    with pytest.raises(InstantiationException, match="give dataset.root"):
        instantiate(_cfg(["dataset=custom"]).dataset)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_evaluation_configs_match_protocols(name: str) -> None:
    from wsal.evaluation.results import EvaluationSpec

    node = _cfg([f"evaluation={name}"]).evaluation
    default = _cfg([]).evaluation
    assert set(node) == set(default)  # same keys as conf/evaluation/default.yaml
    EvaluationSpec(**node)
    assert dict(node) == PROTOCOLS[name].evaluation_config()


def test_protocol_headlines() -> None:
    res = {
        "video_mAP": {"0.2": 0.9, "0.5": 0.7, "0.75": 0.3},
        "AUC@0.1:0.6": 0.6,
        "mAP@0.5:0.95": 0.25,
    }
    assert get_protocol("ucfsports").headline_numbers(res) == {
        "video_mAP@0.5": 0.7,
        "AUC@0.1:0.6": 0.6,
    }
    assert list(get_protocol("ucf101_24").headline_numbers(res).values()) == [0.9, 0.7, 0.3, 0.25]
    assert get_protocol("jhmdb3") is PROTOCOLS["jhmdb"]
    assert PROTOCOLS["jhmdb"].splits == ("test", "test2", "test3")
    assert "0.1-0.6" in PROTOCOLS["ucfsports"].statement
    with pytest.raises(KeyError, match="no evaluation protocol"):
        get_protocol("kinetics")


def _res(split: str, m5: float, n: int, recall: list[float], ap_a: float) -> dict:
    return {"protocol": "act", "nms": 0.3, "split": split, "num_videos": n, "num_gt_tubes": n,
            "video_mAP": {"0.2": m5 + 0.1, "0.5": m5}, "AP": {"0.5": {"a": ap_a, "b": m5}},
            "mAP@0.5:0.95": float("nan") if split == "test3" else m5 / 2, "AUC@0.1:0.6": m5,
            "proposal_recall": {"0.5": recall}, "video_accuracy": 0.5, "timings": {"x": 1.0}}  # fmt: skip


def test_average_over_splits_hand_computed() -> None:
    rs = [_res("test", 0.3, 268, [0.2, 0.4], 0.1), _res("test2", 0.6, 270, [0.4, 0.6], 0.2),
          _res("test3", 0.0, 265, [0.0, 0.2], 0.6)]  # fmt: skip
    avg = average_over_splits(rs)
    assert avg["video_mAP"]["0.5"] == pytest.approx(0.3)
    assert avg["video_mAP"]["0.2"] == pytest.approx(0.4)
    assert avg["AP"]["0.5"]["a"] == pytest.approx(0.3)
    assert avg["proposal_recall"]["0.5"] == pytest.approx([0.2, 0.4])
    assert avg["num_videos"] == 803 and avg["num_splits"] == 3
    assert avg["split"] == "test+test2+test3" and avg["protocol"] == "act" and avg["nms"] == 0.3
    assert math.isnan(avg["mAP@0.5:0.95"])
    assert "timings" not in avg and [p["split"] for p in avg["per_split"]] == [
        "test",
        "test2",
        "test3",
    ]
    assert PROTOCOLS["jhmdb"].headline_numbers(avg) == {"video_mAP@0.5": pytest.approx(0.3)}
    one = average_over_splits(rs[:1])
    assert one["video_mAP"] == rs[0]["video_mAP"]
    with pytest.raises(ValueError, match="no results"):
        average_over_splits([])
    with pytest.raises(ValueError, match="different protocols"):
        average_over_splits([rs[0], {**rs[1], "protocol": "voc"}])
    with pytest.raises(ValueError, match="video_mAP differ in keys"):
        average_over_splits([rs[0], {**rs[1], "video_mAP": {"0.5": 0.1}}])
