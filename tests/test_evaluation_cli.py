"""The evaluation CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsal.data.annotations import DatasetIndex, GTTube, VideoInfo, write_wsal_json
from wsal.evaluation import GroundTruth, video_ap
from wsal.evaluation.__main__ import main
from wsal.structures import TubeDetections

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tube(f0, f1, box):
    frames = np.arange(f0, f1 + 1, dtype=np.float64)
    return np.c_[frames, np.tile(np.asarray(box, float), (len(frames), 1))]


def small_index(n_videos=8, labels=("a", "b", "c"), seed=0):
    rng = np.random.default_rng(seed)
    videos, splits = {}, {"train": [], "test": []}
    for i in range(n_videos):
        lab = i % len(labels)
        f0 = int(rng.integers(0, 10))
        g = tube(f0, f0 + int(rng.integers(5, 20)), rng.uniform(0, 80, 2).tolist() * 2)
        g[:, 3:5] += 30
        vid = f"{labels[lab]}/v{i}"
        videos[vid] = VideoInfo(
            nframes=40,
            labels=[lab],
            tubes=[GTTube(lab, g[:, 0].astype(int), g[:, 1:])],
            width=160,
            height=120,
            fps=25.0,
            path=f"videos/{vid}.mp4",
        )
        splits["test" if i % 2 else "train"].append(vid)
    return DatasetIndex(list(labels), splits, videos)


def noisy_dets(index, split="test", seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for v in index.split(split):
        for t in index.videos[v].tubes:
            for lab in range(len(index.labels)):
                for _ in range(3):
                    r = t.rows().copy()
                    r[:, 1:] += rng.normal(0, 6, (len(r), 4))
                    # jitter may swap a box's sides; the evaluator refuses x2 < x1
                    r[:, [1, 3]] = np.sort(r[:, [1, 3]], axis=1)
                    r[:, [2, 4]] = np.sort(r[:, [2, 4]], axis=1)
                    items.append((v, lab, float(rng.random()), r))
    return TubeDetections.from_list(items)


def test_cli_json_layout_and_npz_json_agree(tmp_path, capsys):
    index = small_index()
    write_wsal_json(index, tmp_path / "gt.json")
    dets = noisy_dets(index)
    dets.save(tmp_path / "d.npz")
    dets.save(tmp_path / "d.json", label_names=index.labels)
    assert (
        main(
            [
                "--gt",
                str(tmp_path / "gt.json"),
                "--detections",
                str(tmp_path / "d.npz"),
                "--iou",
                "0.2",
                "0.50",
                "--json",
                str(tmp_path / "r1.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--gt",
                str(tmp_path / "gt.json"),
                "--detections",
                str(tmp_path / "d.json"),
                "--iou",
                "0.2",
                "0.50",
                "--json",
                str(tmp_path / "r2.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "protocol=act" in out and "nms=0.3" in out
    r1 = json.loads((tmp_path / "r1.json").read_text())
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert set(r1) == {"protocol", "nms", "iou", "mAP@0.5:0.95", "num_detections", "seconds"}
    assert list(r1["iou"]) == ["0.2", "0.50"]  # keys as given on the command line
    assert set(r1["iou"]["0.2"]["AP"]) == set(index.labels)
    assert all(0 <= a <= 1 for a in r1["iou"]["0.2"]["AP"].values())
    assert r1["iou"] == r2["iou"] and r1["mAP@0.5:0.95"] == r2["mAP@0.5:0.95"]
    gt = GroundTruth.from_index(index, "test")
    assert r1["iou"]["0.50"]["mAP"] == pytest.approx(video_ap(gt, dets, [0.5]).map(0.5))


def test_cli_errors_name_the_problem(tmp_path, capsys):
    index = small_index()
    write_wsal_json(index, tmp_path / "gt.json")
    assert (
        main(["--gt", str(tmp_path / "gt.json"), "--detections", str(tmp_path / "nope.npz")]) == 2
    )
    assert "nope.npz" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(
        '{"detections": [{"video": "a/v1", "label": "zzz", "score": 1, "tube": [[0,1,2,3,4]]}]}'
    )
    assert (
        main(["--gt", str(tmp_path / "gt.json"), "--detections", str(tmp_path / "bad.json")]) == 2
    )
    err = capsys.readouterr().err
    assert "bad.json" in err and "zzz" in err


@pytest.mark.skipif(
    not (SHARED / "ucfsports" / "UCFSports-GT.pkl").exists(), reason="shared data absent"
)
def test_cli_on_real_ucfsports_gt_perfect_detections(tmp_path):
    from wsal.data.annotations import load_index

    gt_path = SHARED / "ucfsports" / "UCFSports-GT.pkl"
    index = load_index(gt_path)
    items = [
        (v, t.label, 1.0, t.rows()) for v in index.split("test") for t in index.videos[v].tubes
    ]
    TubeDetections.from_list(items).save(tmp_path / "d.npz")
    assert (
        main(
            [
                "--gt",
                str(gt_path),
                "--detections",
                str(tmp_path / "d.npz"),
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    r = json.loads((tmp_path / "r.json").read_text())
    # every class present in the test split is found perfectly
    present = {index.labels[t.label] for v in index.split("test") for t in index.videos[v].tubes}
    for name, ap in r["iou"]["0.75"]["AP"].items():
        assert ap == pytest.approx(1.0 if name in present else 0.0)
