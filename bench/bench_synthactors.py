"""Benchmark SynthActors' presets against the real regimes they imitate.

    .venv/bin/python bench/bench_synthactors.py --out bench/out/synthactors \\
        --real "UCF Sports=../shared/data/ucfsports/UCFSports-GT.pkl" \\
               "UCF101-24=../shared/data/ucf101-24/pyannot_with_class_names.pkl"

For each preset (``--presets``, default ``trimmed,untrimmed``) at the default size (override with
``--videos-per-class-train/-test``), it generates the dataset from scratch with ``--workers``
processes (timed), then measures from the files on disk:

- the regime statistics (:func:`wsal.data.synthactors.gt_statistics`), side by side with those of
  the ``--real`` annotation files (same function);
- the simulated detector: boxes per frame, recall of GT boxes (IoU >= 0.5, same frame) counting
  only boxes scoring >= 0, 0.1, 0.3, 0.5, the true-miss rate ((actor, frame) pairs without any
  box, from ``meta.json``), the detections file size;
- Temporal Prim (STIL §3.2, 10 tubes, ``conf/linker/temporal_prim.yaml``'s parameters) on the
  test split: proposal recall at st-IoU 0.5 (ACT protocol) with 1 and 10 tubes, and the **prior
  top-1 rate**: the share of test videos whose highest-scoring tube (the no-learning prior) has
  st-IoU >= 0.5 with one of its GT tubes, next to the share whose top tube is spatially on a
  performer (mean box IoU >= 0.5 over the GT frames, ignoring time) and the bound of a perfect
  video-length tube (share of GT tubes covering >= 50 % of their video).

Prints two markdown tables and writes them, with every number, to ``--out`` (``report.md``,
``report.json``). Timings depend on the machine's load: the load average is printed with them.
No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from wsal.data.datasets import SynthActors
from wsal.data.synthactors import (
    PRESETS,
    SynthConfig,
    format_comparison,
    generate,
    gt_statistics,
    stats,
)
from wsal.data.synthactors.statistics import load_any_index
from wsal.detection.backends import StoredDetections
from wsal.evaluation import GroundTruth, proposal_recall
from wsal.linking import TemporalPrimLinker
from wsal.linking.cache import link_cached, tubes_to_detections
from wsal.tube_ops import box_iou_paired, st_iou


def prior_top1(index: Any, tubes: dict[str, Any], videos: list[str]) -> dict[str, float]:
    """Share of ``videos`` whose highest-scoring tube has st-IoU >= 0.5 (ACT, +1 areas) with one
    of its GT tubes (``st_iou``), and share whose top tube is spatially on a GT tube (mean box IoU
    >= 0.5 over the GT frames, 0 where the tube has no box: ``spatial``)."""
    st_ok, sp_ok = [], []
    for v in videos:
        t = tubes[v]
        if len(t.scores) == 0:
            st_ok.append(False)
            sp_ok.append(False)
            continue
        k = int(np.argmax(t.scores))  # the prior's first choice (ties: linking order)
        f = np.flatnonzero(t.valid[k])
        rows = np.concatenate([f[:, None], t.boxes[k, f]], axis=1).astype(np.float64)  # [n,5]
        best_st, best_sp = 0.0, 0.0
        for g in index.videos[v].tubes:
            best_st = max(best_st, st_iou(rows, g.rows(), plus_one=True))
            iou = box_iou_paired(t.boxes[k, g.frames].astype(np.float64), g.boxes.astype(float))
            best_sp = max(best_sp, float(np.mean(iou * t.valid[k, g.frames])))
        st_ok.append(best_st >= 0.5)
        sp_ok.append(best_sp >= 0.5)
    return {"st_iou": float(np.mean(st_ok)), "spatial": float(np.mean(sp_ok))}


def run_preset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    sizes = {
        k: v
        for k, v in (
            ("videos_per_class_train", args.videos_per_class_train),
            ("videos_per_class_test", args.videos_per_class_test),
            ("seed", args.seed),
        )
        if v is not None
    }
    cfg = SynthConfig.preset(name, **sizes)
    root = Path(args.out) / f"synth_{name}"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    generate(root, cfg, workers=args.workers, progress=False)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    st = stats(root)
    prepared = SynthActors(root=str(root), preset=name, progress=False, **sizes).prepare()
    index = prepared.index
    test = index.split("test")
    linker = TemporalPrimLinker(num_tubes=10, progress=False)
    t1 = time.perf_counter()
    tubes = link_cached(
        prepared, StoredDetections(None, name="dataset"), linker, root / "cache", videos=test
    )
    link_s = time.perf_counter() - t1
    gt = GroundTruth.from_index(index, "test")
    rec = proposal_recall(gt, tubes_to_detections(test, tubes), thresholds=(0.5,), max_proposals=10)
    cov = [len(t.frames) / index.videos[v].nframes for v in test for t in index.videos[v].tubes]
    return {
        "preset": name,
        "config_hash": json.loads((root / "meta.json").read_text())["config_hash"],
        "generation_s": round(wall, 1),
        "workers": args.workers,
        "load_average": [round(load0, 2), round(load1, 2)],
        "stats": st,
        "temporal_prim": {
            "recall@0.5_1": float(rec[0.5][0]),
            "recall@0.5_10": float(rec[0.5][9]),
            "prior_top1": prior_top1(index, tubes, test),
            "bound_video_length_tube@0.5": float(np.mean(np.asarray(cov) >= 0.5)),
            "link_s": round(link_s, 2),
            "test_videos": len(test),
        },
    }


def detector_table(results: list[dict[str, Any]]) -> str:
    names = [r["preset"] for r in results]
    rows: list[tuple[str, list[str]]] = [
        ("boxes per frame", [f"{r['stats']['detections_per_frame']:.1f}" for r in results]),
    ]
    for t in results[0]["stats"]["recall_at_score"]:
        rows.append(
            (
                f"recall of GT boxes (IoU >= 0.5), boxes scoring >= {t}",
                [f"{r['stats']['recall_at_score'][t]:.3f}" for r in results],
            )
        )
    rows += [
        ("true-miss rate (actor-frames without any box)",
         [f"{100 * r['stats'].get('true_miss_rate', float('nan')):.2f} %" for r in results]),
        ("detections file", [f"{r['stats']['detections_file_bytes'] / 2**20:.1f} MiB"
                             for r in results]),
        ("frames (all splits)", [str(r["stats"]["frames"]) for r in results]),
        ("generation, wall time", [f"{r['generation_s']:.1f} s ({r['workers']} workers, load "
                                   f"{r['load_average'][0]:.1f}-{r['load_average'][1]:.1f})"
                                   for r in results]),
        ("Temporal Prim recall@0.5, 10 tubes",
         [f"{r['temporal_prim']['recall@0.5_10']:.3f}" for r in results]),
        ("Temporal Prim recall@0.5, 1 tube",
         [f"{r['temporal_prim']['recall@0.5_1']:.3f}" for r in results]),
        ("prior top-1 on a performer (st-IoU >= 0.5)",
         [f"{r['temporal_prim']['prior_top1']['st_iou']:.3f}" for r in results]),
        ("prior top-1 spatially on a performer (box IoU >= 0.5)",
         [f"{r['temporal_prim']['prior_top1']['spatial']:.3f}" for r in results]),
        ("bound: GT tubes covering >= 50 % of the video",
         [f"{r['temporal_prim']['bound_video_length_tube@0.5']:.3f}" for r in results]),
        ("test videos", [str(r["temporal_prim"]["test_videos"]) for r in results]),
    ]  # fmt: skip
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {title} | " + " | ".join(cells) + " |" for title, cells in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/out/synthactors")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--real", nargs="*", default=[], metavar="NAME=PATH")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--videos-per-class-train", type=int, default=None)
    ap.add_argument("--videos-per-class-test", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    columns = {}
    for item in args.real:
        name, _, path = item.partition("=")
        columns[name] = gt_statistics(load_any_index(path))
    results = [run_preset(p.strip(), args) for p in args.presets.split(",") if p.strip()]
    for r in results:
        columns[r["preset"]] = r["stats"]["gt"]
    text = (
        "Regime statistics (all splits)\n\n"
        + format_comparison(columns)
        + "\nSimulated detector and Temporal Prim (test split)\n\n"
        + detector_table(results)
    )
    print(text)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({"real": columns, "presets": results}, indent=1))


if __name__ == "__main__":
    main()
