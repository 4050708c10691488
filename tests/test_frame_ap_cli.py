"""Frame-AP from the CLI: frame-detections files (JSON and .npz), tube detections under
--frame-ap, MultiSports-style GT pickles (test split only), hand-computed APs under both
protocols, a brute-force twin, and bad input named."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from wsal.data.annotations import load_index
from wsal.evaluation.__main__ import main
from wsal.evaluation.frame_detections import load_frame_detections
from wsal.evaluation.protocol import GroundTruth, frame_map
from wsal.tube_ops import box_iou

LABELS = ["a", "b", "c"]  # class c has no GT: left out of the frame-mAP


def multisports_gt(path, tubes: dict, nframes: dict) -> None:
    """A GT pickle in MultiSports' layout: ACT keys, 1-based frames, only ``test_videos``."""
    gttubes = {
        v: {lab: [np.asarray(rows, np.float32) for rows in arrays] for lab, arrays in t.items()}
        for v, t in tubes.items()
    }
    data = {
        "labels": LABELS,
        "gttubes": gttubes,
        "nframes": nframes,
        "resolution": {v: (100, 100) for v in nframes},
        "test_videos": [sorted(nframes)],
    }
    with open(path, "wb") as fh:
        pickle.dump(data, fh)


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / "multisports_GT.pkl"
    multisports_gt(
        path,
        {
            # class a: one tube on frames 0 and 1 (1-based 1, 2); class b: frame 0
            "v": {0: [[[1, 0, 0, 10, 10], [2, 0, 0, 10, 10]]], 1: [[[1, 20, 20, 30, 30]]]},
        },
        {"v": 3},
    )
    return path


FRAME_DETS = [
    {"video": "v", "frame": 0, "box": [0, 0, 10, 10], "label": 0, "score": 0.9},  # TP
    {"video": "v", "frame": 1, "box": [50, 50, 60, 60], "label": "a", "score": 0.8},  # FP
    {"video": "v", "frame": 1, "box": [0, 0, 10, 10], "label": 0, "score": 0.7},  # TP
    {"video": "v", "frame": 0, "box": [20, 20, 30, 30], "label": "b", "score": 0.5},  # TP
]
# class a: TP, FP, TP of 2 GT boxes -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
ACT_A = 0.5 * (1 + 1) / 2 + 0.0 + 0.5 * (0.5 + 2 / 3) / 2  # trapezoids from (r 0, p 1)
VOC_A = 0.5 * 1 + 0.5 * (2 / 3)  # all-point interpolated
WANT = {"act": (ACT_A + 1.0) / 2, "voc": (VOC_A + 1.0) / 2}


def run_cli(tmp_path, gt, dets, *extra) -> tuple[int, dict]:
    out = tmp_path / "out.json"
    rc = main(["--gt", str(gt), "--detections", str(dets), "--json", str(out), *extra])
    return rc, (json.loads(out.read_text()) if out.exists() else {})


@pytest.mark.parametrize("protocol", ["act", "voc"])
def test_frame_ap_by_hand_json_and_npz(tmp_path, gt_file, protocol):
    js = tmp_path / "dets.json"
    js.write_text(json.dumps({"frame_detections": FRAME_DETS}))
    rc, res = run_cli(tmp_path, gt_file, js, "--frame-ap", "--protocol", protocol)
    assert rc == 0
    assert res["frame_AP"]["0.5"]["a"] == pytest.approx(ACT_A if protocol == "act" else VOC_A)
    assert res["frame_AP"]["0.5"]["b"] == pytest.approx(1.0)
    assert res["frame_AP"]["0.5"]["c"] == 0.0
    assert res["frame_mAP"]["0.5"] == pytest.approx(WANT[protocol])  # over a and b only
    # the same columns as .npz, labels by name
    npz = tmp_path / "dets.npz"
    np.savez(
        npz,
        video=np.array([d["video"] for d in FRAME_DETS]),
        frame=np.array([d["frame"] for d in FRAME_DETS]),
        boxes=np.array([d["box"] for d in FRAME_DETS], np.float32),
        label=np.array(["a", "a", "a", "b"]),
        score=np.array([d["score"] for d in FRAME_DETS]),
    )
    rc, res2 = run_cli(tmp_path, gt_file, npz, "--frame-ap", "--protocol", protocol)
    assert rc == 0 and res2["frame_AP"] == res["frame_AP"]
    # tube detections under --frame-ap: every tube box with its tube's score
    tubes = load_frame_detections(js, LABELS)
    tube_file = tmp_path / "tubes.npz"
    tubes.save(tube_file)
    rc, res3 = run_cli(tmp_path, gt_file, tube_file, "--frame-ap", "--protocol", protocol)
    assert rc == 0 and res3["frame_mAP"] == res["frame_mAP"]
    # two thresholds: at 0.99 the identical boxes still match
    rc, res4 = run_cli(tmp_path, gt_file, js, "--frame-ap", "--iou", "0.5", "0.99")
    assert list(res4["frame_mAP"]) == ["0.5", "0.99"]


def test_multisports_pickle_without_train_split(gt_file):
    index = load_index(gt_file)
    assert index.split("test") == ["v"] and index.split("train") == []
    assert [t.frames.tolist() for t in index.videos["v"].tubes] == [[0, 1], [0]]


def brute_frame_ap(gt_boxes, dets, thr: float, protocol: str) -> float:
    """One class: per detection by descending score, the best still-unmatched GT box of its
    (video, frame) with IoU >= thr is a TP (ACT), or the best GT box at all, a duplicate being a
    FP (VOC); then the protocol's AP."""
    plus_one = protocol == "act"
    used = set()
    tp = []
    for v, f, box, _ in sorted(dets, key=lambda d: -d[3]):
        cands = [(i, g) for i, g in enumerate(gt_boxes) if g[0] == v and g[1] == f]
        best, best_iou = None, -1.0
        for i, g in cands:
            if protocol == "act" and i in used:
                continue
            iou = float(box_iou(np.array([box]), np.array([g[2]]), plus_one)[0, 0])
            if iou > best_iou:
                best, best_iou = i, iou
        ok = best is not None and best_iou >= thr and best not in used
        if ok:
            used.add(best)
        tp.append(ok)
    tp = np.array(tp, bool)
    n = len(gt_boxes)
    prec = np.cumsum(tp) / np.arange(1, tp.size + 1)
    rec = np.cumsum(tp) / n
    if protocol == "act":
        p = np.concatenate([[1.0], prec])
        r = np.concatenate([[0.0], rec])
        return float(np.sum((r[1:] - r[:-1]) * (p[1:] + p[:-1]) / 2))
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(mpre.size - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@pytest.mark.parametrize("protocol", ["act", "voc"])
def test_frame_map_equals_a_brute_force_twin(tmp_path, protocol):
    rng = np.random.default_rng(0)
    nframes = {"v0": 6, "v1": 5}
    tubes: dict = {}
    gt_boxes: dict[int, list] = {0: [], 1: []}
    for v, n in nframes.items():
        tubes[v] = {}
        for lab in (0, 1):
            f0 = int(rng.integers(0, 2))
            xy = rng.uniform(0, 40, 2)
            rows = [[f + 1, *xy, *(xy + 20)] for f in range(f0, n)]
            tubes[v][lab] = [rows]
            gt_boxes[lab] += [(v, r[0] - 1, np.array(r[1:], np.float64)) for r in rows]
    path = tmp_path / "gt.pkl"
    multisports_gt(path, tubes, nframes)
    gt = GroundTruth.from_index(load_index(path), "test")
    dets = []
    for lab in (0, 1):
        for v, f, box in gt_boxes[lab]:
            for _ in range(2):  # near and far copies, some duplicates
                jitter = rng.normal(0, 4, 4)
                dets.append((v, f, box + jitter, float(rng.random()), lab))
    cols = {
        "video": np.array([d[0] for d in dets]),
        "frame": np.array([d[1] for d in dets]),
        "box": np.array([d[2] for d in dets]),
        "label": np.array([d[4] for d in dets]),
        "score": np.array([d[3] for d in dets]),
    }
    np.savez(tmp_path / "d.npz", **cols)
    got = frame_map(gt, load_frame_detections(tmp_path / "d.npz", LABELS), [0.3, 0.5], protocol)
    for thr in (0.3, 0.5):
        for lab, name in ((0, "a"), (1, "b")):
            mine = [(d[0], d[1], d[2], d[3]) for d in dets if d[4] == lab]
            want = brute_frame_ap(gt_boxes[lab], mine, thr, protocol)
            assert got["frame_AP"][str(thr)][name] == pytest.approx(want, abs=1e-6)  # float32 boxes


def test_bad_frame_detections_are_named(tmp_path, gt_file, capsys):
    js = tmp_path / "dets.json"
    js.write_text(json.dumps({"frame_detections": FRAME_DETS}))
    assert main(["--gt", str(gt_file), "--detections", str(js)]) == 2  # no --frame-ap
    assert "--frame-ap" in capsys.readouterr().err
    cases = {
        "x2 < x1": {**FRAME_DETS[0], "box": [10, 0, 0, 10]},
        "integer >= 0": {**FRAME_DETS[0], "frame": -1},
        "not in the GT's classes": {**FRAME_DETS[0], "label": "zebra"},
        "lacks ['score']": {k: v for k, v in FRAME_DETS[0].items() if k != "score"},
    }
    for what, bad in cases.items():
        js.write_text(json.dumps({"frame_detections": [FRAME_DETS[1], bad]}))
        assert main(["--gt", str(gt_file), "--detections", str(js), "--frame-ap"]) == 2
        err = capsys.readouterr().err
        assert str(js) in err and what in err, (what, err)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="trunc.npz"):
        load_frame_detections(trunc, LABELS)


def test_only_frame_detection_files_are_taken_for_them(tmp_path):
    from wsal.evaluation.frame_detections import is_frame_detections

    store = tmp_path / "store.npz"  # a detector's store: scores/labels, not frame detections
    np.savez(
        store,
        video=np.array(["v"]),
        frame=np.array([0]),
        boxes=np.zeros((1, 4)),
        scores=np.ones(1),
        labels=np.zeros(1, int),
    )
    frames = tmp_path / "frames.npz"
    np.savez(
        frames,
        video=np.array(["v"]),
        frame=np.array([0]),
        box=np.zeros((1, 4)),
        score=np.ones(1),
        label=np.zeros(1, int),
    )
    tubes = tmp_path / "tubes.json"
    tubes.write_text(json.dumps({"detections": []}))
    assert not is_frame_detections(store) and is_frame_detections(frames)
    assert not is_frame_detections(tubes)
