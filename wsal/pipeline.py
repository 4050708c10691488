"""The localization pipeline: detections -> linking -> tubes -> method -> reranking -> evaluation.

Plain functions over already-built stage objects (``train.py`` builds them from the Hydra config);
usable from a notebook. Tubes are cached per (dataset, detector, linker) under ``cache_dir``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsal.atomic import atomic_write_json
from wsal.data.annotations import DatasetIndex
from wsal.data.datasets import PreparedDataset
from wsal.evaluation import (
    AUC_THRESHOLDS,
    GroundTruth,
    proposal_recall,
    video_ap,
    video_classification_accuracy,
)
from wsal.linking.base import Linker
from wsal.linking.cache import link_cached, tubes_to_detections
from wsal.structures import TubeDetections, Tubes

log = logging.getLogger(__name__)

__all__ = ["EvaluationSpec", "link_cached", "tubes_to_detections", "run_localization"]


@dataclass
class EvaluationSpec:
    """How results are evaluated (printed next to every number)."""

    split: str = "test"
    protocol: str = "act"
    iou: Sequence[float] = (0.2, 0.5, 0.75)
    nms: float = 0.3
    recall_iou: Sequence[float] = (0.2, 0.5)
    num_pictures: int = 4
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- evaluation
def evaluate(
    index: DatasetIndex, results: TubeDetections, proposals: TubeDetections, spec: EvaluationSpec
) -> dict[str, Any]:
    """video-AP (+ AUC over 0.1-0.6, mAP@0.5:0.95), proposal recall and classification accuracy."""
    gt = GroundTruth.from_index(index, spec.split)
    taus = sorted({float(t) for t in spec.iou} | set(AUC_THRESHOLDS))
    vap = video_ap(gt, results, thresholds=taus, protocol=spec.protocol, nms=spec.nms)
    recall = proposal_recall(gt, proposals, thresholds=spec.recall_iou, protocol=spec.protocol)
    return {
        "protocol": spec.protocol,
        "nms": spec.nms,
        "split": spec.split,
        "num_videos": len(gt.videos),
        "num_gt_tubes": gt.num_tubes,
        "num_detections": vap.num_detections,
        "video_mAP": {f"{t:g}": vap.map(t) for t in spec.iou},
        "AP": {f"{t:g}": dict(zip(gt.labels, map(float, vap.ap[round(t, 6)]))) for t in spec.iou},
        "mAP@0.5:0.95": vap.map_50_95,
        "AUC@0.1:0.6": vap.auc(),
        "mAP_curve": {f"{t:g}": vap.map(t) for t in taus},
        "proposal_recall": {f"{t:g}": [float(x) for x in r] for t, r in recall.items()},
        "video_accuracy": video_classification_accuracy(gt, results),
        "eval_seconds": vap.seconds,
    }


def print_summary(res: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=title,
        caption=(
            f"protocol={res['protocol']} (ACT/MOC videoAP)  nms={res['nms']:g}  split={res['split']}  "
            f"videos={res['num_videos']}  GT tubes={res['num_gt_tubes']}"
            if res["protocol"] == "act"
            else f"protocol={res['protocol']}  nms={res['nms']:g}  split={res['split']}"
        ),
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for t, m in res["video_mAP"].items():
        table.add_row(f"video-mAP@{t}", f"{m:.4f}")
    table.add_row("video-mAP@0.5:0.95", f"{res['mAP@0.5:0.95']:.4f}")
    table.add_row("AUC (mAP over st-IoU 0.1-0.6)", f"{res['AUC@0.1:0.6']:.4f}")
    for t, r in res["proposal_recall"].items():
        if r:
            table.add_row(
                f"proposal recall@{t} (1 / all {len(r)} tubes)", f"{r[0]:.3f} / {r[-1]:.3f}"
            )
    table.add_row("video accuracy (top tube's class)", f"{res['video_accuracy']:.3f}")
    Console().print(table)


def run_localization(
    prepared: PreparedDataset,
    detector: Any,
    linker: Linker,
    method: Any,
    reranker: Any,
    spec: EvaluationSpec,
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    run_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Link, predict, rerank, evaluate; write ``detections.npz``, ``results.json`` and pictures
    into ``out_dir``; return the results dict."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    tubes = link_cached(prepared, detector, linker, cache_dir)
    timings["detections+linking_s"] = time.perf_counter() - t
    index = prepared.index
    videos = index.split(spec.split)
    t = time.perf_counter()
    results = reranker(method.predict(index, videos, tubes))
    timings["method_s"] = time.perf_counter() - t
    info = {"num_tubes": int(sum(tb.num_tubes for tb in tubes.values())), **(run_info or {})}
    return report(prepared.name, index, videos, tubes, results, spec, out_dir, info, timings)


def report(
    dataset_name: str,
    index: DatasetIndex,
    videos: Sequence[str],
    tubes: Mapping[str, Tubes],
    results: TubeDetections,
    spec: EvaluationSpec,
    out_dir: str | os.PathLike,
    run_info: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Save ``detections.npz``, evaluate against the split's GT (proposal recall from ``tubes``),
    write ``results.json`` and the pictures into ``out_dir``; return the results dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results.save(out / "detections.npz")
    proposals = tubes_to_detections(videos, tubes)
    res = evaluate(index, results, proposals, spec)
    res["timings"] = timings or {}
    res["dataset"] = dataset_name
    res.update(run_info or {})
    atomic_write_json(out / "results.json", res, indent=1)
    try:
        save_pictures(index, videos, results, res, out, spec.num_pictures)
    except Exception as e:  # pictures must never cost a researcher the numbers above
        log.warning("could not draw pictures: %s", e)
    return res


def save_pictures(
    index: DatasetIndex,
    videos: Sequence[str],
    results: TubeDetections,
    res: dict[str, Any],
    out: Path,
    num: int,
) -> None:
    """``tubes.png``: a few test videos with GT (blue) and the top detection (red);
    ``recall.png``: proposal recall against the number of tubes per video; ``pr.png``: per-class
    precision-recall curves at st-IoU 0.5."""
    from wsal import viz

    if num > 0:
        # spread the pictures over classes: the first test video of each of `num` classes
        chosen: list[str] = []
        seen: set[int] = set()
        for v in videos:
            labs = index.videos[v].labels
            if labs and labs[0] not in seen:
                chosen.append(v)
                seen.add(labs[0])
            if len(chosen) == num:
                break
        strips = [
            viz.video_strip(index, v, results, num_frames=6, top_k=1, label_names=index.labels)
            for v in chosen
        ]
        viz.save_strips(out / "tubes.png", strips)
    curves = {f"st-IoU {t}": np.asarray(r) for t, r in res["proposal_recall"].items()}
    viz.plot_recall(curves, out / "recall.png", title=f"proposal recall ({res['protocol']})")
    # pr.png: per-class precision-recall at st-IoU 0.5 (the W&B / TensorBoard media of the run)
    from wsal.evaluation import GroundTruth, pr_curves

    pr = pr_curves(
        GroundTruth.from_index(index, res["split"]), results, 0.5, res["protocol"], res["nms"]
    )
    viz.plot_pr_curves(
        {f"{c} AP={ap:.3f}": (p, r) for c, (p, r, ap) in pr.items()},
        out / "pr.png",
        title=f"video PR at st-IoU 0.5 ({res['protocol']}, nms {res['nms']:g})",
    )


def tube_scores_to_detections(
    videos: Sequence[str], tubes: Mapping[str, Tubes], predictions: Sequence[Mapping[str, Any]]
) -> TubeDetections:
    """TubeDetections from per-tube class scores (e.g. ``trainer.predict`` batches).

    Each batch holds ``video_index int[B]`` (position in ``videos``), ``tube_scores float[B, K, L]``
    and ``tube_mask bool[B, K]``. Every scored tube gives one detection per class, with the tube's
    full extent (all its frames, not only the sampled ones). Tubes that had no box at any sampled
    frame (mask False) cannot be scored and are left out.
    """
    parts = []
    for batch in predictions:
        vidx = np.asarray(batch["video_index"])
        scores = np.asarray(batch["tube_scores"], dtype=np.float64)  # [B, K, L]
        mask = np.asarray(batch["tube_mask"], dtype=bool)  # [B, K]
        for b, vi in enumerate(vidx):
            v = videos[int(vi)]
            t = tubes[v]
            ks = np.nonzero(mask[b, : t.num_tubes])[0]
            if ks.size == 0:
                continue
            L = scores.shape[2]
            sub = t.select(ks)
            for c in range(L):
                parts.append(
                    TubeDetections.from_tubes(
                        v, sub, labels=np.full(ks.size, c), scores=scores[b, ks, c]
                    )
                )
    return TubeDetections.concat(parts)
