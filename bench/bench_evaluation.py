"""Benchmark: video-AP on the UCF101-24 test split (910 videos) with ~180k detected tubes.

Builds a realistic detection file from the shared UCF101-24 GT (jittered, temporally cropped copies
of GT tubes with high scores for the true class, the same tubes with lower scores for other classes,
plus random tubes), ~100 frames per tube, then times ``python -m wsal.evaluation`` end to end (a
fresh process: imports, loading the pickle and the .npz, NMS, 3 thresholds + 0.5:0.95) and, with
``--reference-videos N``, the literal slow twin (tests/act_reference.py) on the first N videos, to
extrapolate the reference's time and check that both give the same APs there.

    .venv/bin/python bench/bench_evaluation.py [--tubes-per-class 8] [--reference-videos 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GT = ROOT.parent / "shared" / "data" / "ucf101-24" / "pyannot_with_class_names.pkl"


def build_case(index, videos, tubes_per_class, seed=0, length=100):
    from wsal.structures import TubeDetections

    rng = np.random.default_rng(seed)
    L = len(index.labels)
    vid_col, lab_col, score_col, lens, rows = [], [], [], [], []
    for v in videos:
        info = index.videos[v]
        nf = info.nframes
        gts = info.tubes
        for c in range(L):
            for k in range(tubes_per_class):
                n = int(min(nf, max(10, rng.normal(length, 20))))
                f0 = int(rng.integers(0, nf - n + 1))
                if gts and k < 4:  # around a GT tube (any class: detectors confuse classes)
                    g = gts[k % len(gts)]
                    f0 = int(np.clip(g.frames[0] + rng.integers(-15, 15), 0, max(nf - n, 0)))
                    idx = np.clip(np.arange(f0, f0 + n) - g.frames[0], 0, len(g.frames) - 1)
                    b = g.boxes[idx].astype(np.float64) + rng.normal(0, 4, (n, 4))
                    # jitter may swap a thin box's sides; the evaluator refuses x2 < x1
                    b[:, [0, 2]] = np.sort(b[:, [0, 2]], axis=1)
                    b[:, [1, 3]] = np.sort(b[:, [1, 3]], axis=1)
                    s = rng.uniform(0.5, 1.0) if c == g.label else rng.uniform(0.0, 0.6)
                else:
                    xy = rng.uniform(0, 240, 2)
                    wh = rng.uniform(20, 100, 2)
                    b = np.tile(np.r_[xy, xy + wh], (n, 1)) + rng.normal(0, 2, (n, 4))
                    s = rng.uniform(0, 0.5)
                vid_col.append(v)
                lab_col.append(c)
                score_col.append(s)
                lens.append(n)
                rows.append(np.c_[np.arange(f0, f0 + n), np.round(b, 1)])
    offsets = np.concatenate([[0], np.cumsum(lens)])
    return TubeDetections(
        np.array(vid_col, dtype=object), lab_col, score_col, offsets, np.concatenate(rows)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tubes-per-class", type=int, default=8)
    ap.add_argument("--reference-videos", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    from wsal.data.annotations import load_index

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = load_index(GT)
    videos = index.split("test")
    # v2: boxes with x2 >= x1, y2 >= y1 (the evaluator refuses inverted boxes)
    dets_path = out / f"ucf101_dets_{args.tubes_per_class}_v2.npz"
    if not dets_path.exists():
        t = time.perf_counter()
        dets = build_case(index, videos, args.tubes_per_class)
        dets.save(dets_path)
        print(f"built {len(dets)} tubes, {len(dets.rows)} boxes in {time.perf_counter() - t:.1f}s")
    from wsal.structures import TubeDetections

    dets = TubeDetections.load(dets_path)
    print(
        f"case: {len(videos)} test videos, {len(dets)} tubes, mean length "
        f"{dets.lengths().mean():.1f} frames, file {dets_path.stat().st_size / 2**20:.0f} MiB"
    )
    res_json = out / "eval.json"
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wsal.evaluation",
            "--gt",
            str(GT),
            "--detections",
            str(dets_path),
            "--iou",
            "0.2",
            "0.5",
            "0.75",
            "--json",
            str(res_json),
        ],
        check=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t
    res = json.loads(res_json.read_text())
    print(
        f"wsal.evaluation CLI: {wall:.2f} s wall (process start to exit), "
        f"{res['seconds']:.2f} s inside; mAP@0.2/0.5/0.75 = "
        + " / ".join(f"{res['iou'][k]['mAP']:.4f}" for k in ("0.2", "0.5", "0.75"))
        + f", mAP@0.5:0.95 = {res['mAP@0.5:0.95']:.4f}"
    )
    if args.reference_videos:
        sub_videos = videos[: args.reference_videos]
        from tests import act_reference as ref
        from wsal.evaluation import GroundTruth, video_ap

        sub = dets.select(np.isin(dets.video, sub_videos))
        ref_dets: dict = {}
        for v, lab, s, r in sub:
            ref_dets.setdefault(v, {}).setdefault(lab, []).append((r.astype(np.float32), s))
        ref_gt = {v: {} for v in sub_videos}
        for v in sub_videos:
            for g in index.videos[v].tubes:
                ref_gt[v].setdefault(g.label, []).append(g.rows().astype(np.float32))
        gt = GroundTruth.from_index(index, "test")
        gt_sub = GroundTruth(sub_videos, gt.labels, *_sub_gt(gt, len(sub_videos)))
        taus = (0.2, 0.5, 0.75)
        t = time.perf_counter()
        ref_ap = {
            tau: ref.video_ap(sub_videos, len(index.labels), ref_dets, ref_gt, tau) for tau in taus
        }
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        ours = video_ap(gt_sub, sub, thresholds=taus, with_coco=False)
        t_ours = time.perf_counter() - t
        diff = max(float(np.abs(ours.ap[tau] - ref_ap[tau]).max()) for tau in taus)
        scale = len(dets) / max(len(sub), 1)
        print(
            f"slow twin on {len(sub_videos)} videos ({len(sub)} tubes), 3 thresholds: {t_ref:.1f} s "
            f"(x{scale:.0f} -> ~{t_ref * scale:.0f} s for the full split, 3 thresholds); "
            f"wsal on the same subset {t_ours:.2f} s; max |AP difference| = {diff:.2e}"
        )


def _sub_gt(gt, n):
    keep = np.nonzero(gt.video_idx < n)[0]
    lens = np.diff(gt.offsets)[keep]
    rows = np.concatenate([gt.rows[gt.offsets[i] : gt.offsets[i + 1]] for i in keep])
    return (
        gt.video_idx[keep],
        gt.label[keep],
        rows,
        np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        gt.video_labels[:n],
    )


if __name__ == "__main__":
    main()
