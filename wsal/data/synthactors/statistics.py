"""Statistics of a generated SynthActors dataset, computed from its files on disk, and the regime
statistics of any annotated dataset (:func:`gt_statistics`), so that a preset and the real dataset
it imitates are measured by the same code (``python -m wsal.data.synthactors --compare``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.data.annotations import DatasetIndex, load_index, read_wsal_json
from wsal.data.synthactors.config import CLASSES, SCENES
from wsal.tube_ops import box_iou

__all__ = ["stats", "format_stats", "gt_statistics", "format_comparison", "load_any_index"]

#: Score thresholds at which :func:`stats` measures the detector's recall.
SCORE_THRESHOLDS: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)


def gt_statistics(index: DatasetIndex) -> dict[str, Any]:
    """Regime statistics of a dataset's ground truth (all splits), the same for real and synthetic.

    Returns ``videos``; ``frames_median`` (frames per video); ``tubes_per_video`` (mean) and
    ``multi_tube_share`` (share of videos with more than one GT tube); ``coverage_*``: the share of
    a video's frames inside any of its GT tubes (union over its tubes), as ``median``, ``mean``,
    ``p10`` (10th percentile) and ``ge_0.9`` (share of videos with coverage >= 0.9);
    ``tube_share_median`` / ``tube_share_mean``: the same per tube; ``box_height_median``: GT box
    height / frame height (``None`` when the index has no frame heights). Videos without GT
    tubes count with coverage 0.
    """
    cov, tube_share, ntubes, heights = [], [], [], []
    for info in index.videos.values():
        ntubes.append(len(info.tubes))
        frames = [t.frames for t in info.tubes]
        union = np.unique(np.concatenate(frames)).size if frames else 0
        cov.append(union / max(info.nframes, 1))
        tube_share += [len(f) / max(info.nframes, 1) for f in frames]
        if info.height:
            for t in info.tubes:
                b = t.boxes.astype(np.float64)  # uint8/uint16 in some files: cast first
                heights.append((b[:, 3] - b[:, 1]) / info.height)
    c, n = np.asarray(cov), np.asarray(ntubes)
    nf = np.array([v.nframes for v in index.videos.values()])
    return {
        "videos": len(index.videos),
        "frames_median": float(np.median(nf)) if nf.size else 0.0,
        "tubes_per_video": float(n.mean()) if n.size else 0.0,
        "multi_tube_share": float(np.mean(n > 1)) if n.size else 0.0,
        "coverage_median": float(np.median(c)) if c.size else 0.0,
        "coverage_mean": float(c.mean()) if c.size else 0.0,
        "coverage_p10": float(np.percentile(c, 10)) if c.size else 0.0,
        "coverage_ge_0.9": float(np.mean(c >= 0.9)) if c.size else 0.0,
        "tube_share_median": float(np.median(tube_share)) if tube_share else 0.0,
        "tube_share_mean": float(np.mean(tube_share)) if tube_share else 0.0,
        "box_height_median": float(np.median(np.concatenate(heights))) if heights else None,
    }


_ROWS: tuple[tuple[str, str, str], ...] = (
    ("videos", "videos", "{:.0f}"),
    ("frames_median", "frames per video (median)", "{:.0f}"),
    ("tubes_per_video", "GT tubes per video (mean)", "{:.2f}"),
    ("multi_tube_share", "videos with > 1 GT tube", "{:.0%}"),
    ("coverage_median", "GT coverage of the video: median", "{:.0%}"),
    ("coverage_mean", "GT coverage: mean", "{:.0%}"),
    ("coverage_p10", "GT coverage: 10th percentile", "{:.0%}"),
    ("coverage_ge_0.9", "videos with GT coverage >= 90 %", "{:.0%}"),
    ("tube_share_median", "one tube's share of its video: median", "{:.0%}"),
    ("tube_share_mean", "one tube's share: mean", "{:.0%}"),
    ("box_height_median", "GT box height / frame height (median)", "{:.2f}"),
)


def format_comparison(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table of :func:`gt_statistics` results, one column per dataset."""
    names = list(columns)
    lines = ["| statistic | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, title, fmt in _ROWS:
        cells = [
            fmt.format(columns[n][key]) if columns[n].get(key) is not None else "—" for n in names
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_any_index(path: str | os.PathLike) -> DatasetIndex:
    """The DatasetIndex of an annotation file (:func:`load_index`) or of a dataset folder holding
    ``annotations.json`` (a generated SynthActors)."""
    p = Path(path)
    return load_index(p / "annotations.json" if p.is_dir() else p)


def stats(
    root: str | os.PathLike,
    iou: float = 0.5,
    thresholds: Sequence[float] = SCORE_THRESHOLDS,
) -> dict[str, Any]:
    """Summary of a generated dataset, computed from its files on disk.

    Returns ``videos`` (per split), ``tubes``, ``mean_tube_length`` (frames),
    ``mean_action_fraction`` (tube length / video length), ``frames``, ``detections``,
    ``detections_per_frame``, ``detections_file_bytes``, ``recall`` (fraction of GT boxes with a
    detection of IoU >= ``iou``, continuous areas, in the same frame), ``recall_per_class``,
    ``recall_at_score`` ({threshold: the same recall counting only detections with score >=
    threshold}) and ``recall_per_class_at_score`` ({threshold: {class: recall}}), ``gt`` (:func:`gt_statistics`), and from ``meta.json`` when known:
    ``true_miss_rate`` (share of simulated (actor, frame) pairs with no box at all),
    ``context_rate`` (fraction of videos in their class's scene) and ``wall_time_s``.
    """
    root = Path(root)
    index = read_wsal_json(root / "annotations.json")
    with np.load(root / "detections.npz") as z:
        dv, df, db, ds = z["video"], z["frame"], z["boxes"], z["scores"]
    # rows are grouped by video: one slice per video
    uniq, first, cnt = np.unique(dv, return_index=True, return_counts=True)
    rows = {str(v): slice(int(s), int(s + c)) for v, s, c in zip(uniq, first, cnt)}
    ths = [float(t) for t in thresholds]
    hit = np.zeros(len(index.labels))
    hit_at = np.zeros((len(ths), len(index.labels)))  # [thresholds, classes]
    tot = np.zeros(len(index.labels))
    lengths, fracs = [], []
    for vid, info in index.videos.items():
        sl = rows.get(vid, slice(0, 0))
        vf, vb, vs = df[sl], db[sl].astype(np.float64), ds[sl]
        for tube in info.tubes:
            lengths.append(len(tube.frames))
            fracs.append(len(tube.frames) / info.nframes)
            if len(vf):
                ious = box_iou(tube.boxes.astype(np.float64), vb)  # [n,N]
                ious[tube.frames[:, None] != vf[None, :]] = 0  # only detections of that frame
                found = ious >= iou  # [n,N]
                hit[tube.label] += int(np.sum(found.any(axis=1)))
                for i, t in enumerate(ths):
                    hit_at[i, tube.label] += int(np.sum((found & (vs >= t)[None, :]).any(axis=1)))
            tot[tube.label] += len(tube.frames)
    frames = sum(v.nframes for v in index.videos.values())
    out: dict[str, Any] = {
        "videos": {k: len(v) for k, v in index.splits.items()},
        "classes": list(index.labels),
        "tubes": len(lengths),
        "mean_tube_length": round(float(np.mean(lengths)), 2) if lengths else 0.0,
        "mean_action_fraction": round(float(np.mean(fracs)), 3) if fracs else 0.0,
        "frames": int(frames),
        "detections": len(df),
        "detections_per_frame": round(len(df) / max(frames, 1), 3),
        "detections_file_bytes": (root / "detections.npz").stat().st_size,
        "recall": round(float(hit.sum() / max(tot.sum(), 1)), 4),
        "recall_per_class": {
            lab: round(float(h / t), 4) if t else None for lab, h, t in zip(index.labels, hit, tot)
        },
        "recall_at_score": {
            f"{t:g}": round(float(h.sum() / max(tot.sum(), 1)), 4) for t, h in zip(ths, hit_at)
        },
        "recall_per_class_at_score": {
            f"{t:g}": {
                lab: round(float(x / n), 4) if n else None
                for lab, x, n in zip(index.labels, h, tot)
            }
            for t, h in zip(ths, hit_at)
        },
        "iou": iou,
        "gt": gt_statistics(index),
    }
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    sim = meta.get("detector_sim")
    if sim and sim.get("actor_frames"):
        out["true_miss_rate"] = round(sim["true_misses"] / sim["actor_frames"], 4)
    scenes = meta.get("scenes")
    if scenes:
        ok = [
            scenes.get(v) == SCENES[CLASSES.index(index.labels[info.tubes[0].label])]
            for v, info in index.videos.items()
            if info.tubes
        ]
        out["context_rate"] = round(float(np.mean(ok)), 3) if ok else None
    if "wall_time_s" in meta:
        out["wall_time_s"] = meta["wall_time_s"]
    return out


def format_stats(st: dict[str, Any]) -> str:
    """Human-readable lines of :func:`stats` output (what the CLI prints)."""
    per = ", ".join(f"{k} {v:.3f}" for k, v in st["recall_per_class"].items() if v is not None)
    at = ", ".join(f">= {t}: {r:.3f}" for t, r in st["recall_at_score"].items())
    gt = st["gt"]
    lines = [
        "  videos:       " + ", ".join(f"{k} {v}" for k, v in st["videos"].items()),
        f"  GT tubes:     {st['tubes']} (mean length {st['mean_tube_length']:.1f} frames, "
        f"{100 * st['mean_action_fraction']:.1f} % of the video; "
        f"{gt['tubes_per_video']:.2f} per video)",
        f"  frames:       {st['frames']}",
        f"  detections:   {st['detections']} ({st['detections_per_frame']:.2f} per frame, "
        f"{st['detections_file_bytes'] / 2**20:.1f} MiB)",
        f"  detector recall @ IoU {st['iou']}: {st['recall']:.3f}",
        f"    per class:  {per}",
        f"    by score:   {at}",
    ]
    if st.get("true_miss_rate") is not None:
        lines.append(f"  true misses:  {100 * st['true_miss_rate']:.2f} % of (actor, frame) pairs")
    if st.get("context_rate") is not None:
        lines.append(f"  in-context scenes: {100 * st['context_rate']:.1f} % of videos")
    return "\n".join(lines)
