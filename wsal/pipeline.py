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
from typing import Any, Protocol

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
from wsal.structures import Detections, TubeDetections, Tubes, atomic_savez

log = logging.getLogger(__name__)

__all__ = ["EvaluationSpec", "link_cached", "tubes_to_detections", "run_localization"]


class Linker(Protocol):
    """A linker: ``link(dets) -> tubes``. One that needs the videos' frames (actor linking: the
    tracker looks at pixels) sets ``needs_frames = True`` and is called ``link(dets, index=index)``
    to decode them through ``index.video_path``."""

    name: str

    def cache_key(self) -> str: ...
    def link(self, dets: Mapping[str, Detections]) -> dict[str, Tubes]: ...


def link(linker: Linker, dets: Mapping[str, Detections], index: DatasetIndex) -> dict[str, Tubes]:
    """Run ``linker`` on ``dets``, handing it the index when it needs the videos' frames."""
    if getattr(linker, "needs_frames", False):
        return linker.link(dets, index=index)  # type: ignore[call-arg]
    return linker.link(dets)


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


# ------------------------------------------------------------------------------------ tube cache
def _save_tubes(path: Path, tubes: Mapping[str, Tubes]) -> None:
    videos, scores, lengths, rows, box_index = [], [], [], [], []
    for v, t in tubes.items():
        for k in range(t.num_tubes):
            f = np.nonzero(t.valid[k])[0]
            videos.append(v)
            scores.append(t.scores[k])
            lengths.append(f.size)
            rows.append(np.c_[f, t.boxes[k, f]])
            box_index.append(t.box_index[k, f])
    atomic_savez(
        path,
        video=np.array(videos, dtype=str),
        score=np.array(scores, np.float32),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        rows=np.concatenate(rows) if rows else np.zeros((0, 5)),
        box_index=np.concatenate(box_index) if box_index else np.zeros(0, np.int64),
        all_videos=np.array(list(tubes), dtype=str),
    )


def _load_tubes(path: Path, nframes: Mapping[str, int]) -> dict[str, Tubes]:
    with np.load(path, allow_pickle=False) as z:
        video, score, off, rows, bidx, all_videos = (
            z[k] for k in ("video", "score", "offsets", "rows", "box_index", "all_videos")
        )
    out: dict[str, Tubes] = {}
    order = np.argsort(video, kind="stable")  # tubes grouped by video, file order inside
    lo = np.searchsorted(video[order], all_videos, side="left")
    hi = np.searchsorted(video[order], all_videos, side="right")
    for v, a, b in zip(all_videos.tolist(), lo, hi):
        idx = order[a:b]
        k, f_total = idx.size, nframes[v]
        lengths = off[idx + 1] - off[idx]
        row = (
            np.concatenate([np.arange(off[i], off[i + 1]) for i in idx]) if k else np.zeros(0, int)
        )
        tube = np.repeat(np.arange(k), lengths)  # [n] tube of each row
        f = rows[row, 0].astype(np.int64)
        boxes = np.zeros((k, f_total, 4), np.float32)
        valid = np.zeros((k, f_total), bool)
        bi = np.full((k, f_total), -1, np.int64)
        boxes[tube, f] = rows[row, 1:]
        valid[tube, f] = True
        bi[tube, f] = bidx[row]
        out[v] = Tubes(boxes, valid, bi, score[idx])
    return out


def link_cached(
    prepared: PreparedDataset,
    detector: Any,
    linker: Linker,
    cache_dir: str | os.PathLike,
    videos: Sequence[str] | None = None,
) -> dict[str, Tubes]:
    """Tubes of every video (or of ``videos``), read from the cache or linked (and cached) on a
    miss.

    The cache key holds the dataset's, the detector's and the linker's keys (and the video list
    when given), so changing any parameter that shapes the tubes links again. Detections are only
    read on a miss.
    """
    import hashlib

    index = prepared.index
    key = (
        f"{prepared.cache_key}__{detector.name}-{detector.cache_key(prepared.detections)}__"
        f"{linker.name}-{linker.cache_key()}"
    )
    if videos is not None:
        key += "__v-" + hashlib.sha1("\n".join(videos).encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"tubes__{key}.npz"
    nframes = {v: info.nframes for v, info in index.videos.items()}
    if path.exists():
        log.info("tubes from cache %s", path)
        return _load_tubes(path, nframes)
    dets = detector.load(index, prepared.detections)
    if videos is not None:
        dets = {v: dets[v] for v in videos}
        nframes = {v: nframes[v] for v in videos}
    tubes = link(linker, dets, index)
    _save_tubes(path, tubes)
    return tubes


def tubes_to_detections(videos: Sequence[str], tubes: Mapping[str, Tubes]) -> TubeDetections:
    """Class-agnostic TubeDetections (label -1, score = tube score) of the given videos."""
    return TubeDetections.concat([TubeDetections.from_tubes(v, tubes[v]) for v in videos])


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
