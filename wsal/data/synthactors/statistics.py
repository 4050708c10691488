"""Statistics of a generated SynthActors dataset, computed from its files on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from wsal.data.annotations import read_wsal_json
from wsal.data.synthactors.config import CLASSES, SCENES
from wsal.tube_ops import box_iou


def stats(root: str | os.PathLike, iou: float = 0.5) -> dict[str, Any]:
    """Summary of a generated dataset, computed from its files on disk.

    Returns ``videos`` (per split), ``tubes``, ``mean_tube_length`` (frames),
    ``mean_action_fraction`` (tube length / video length), ``frames``, ``detections``,
    ``detections_per_frame``, ``recall`` (fraction of GT boxes with a detection of IoU >= ``iou``,
    continuous areas, in the same frame), ``recall_per_class``, ``context_rate`` (fraction of
    videos in their class's scene, from ``meta.json``) and ``wall_time_s`` when known.
    """
    root = Path(root)
    index = read_wsal_json(root / "annotations.json")
    with np.load(root / "detections.npz") as z:
        dv, df, db = z["video"], z["frame"], z["boxes"]
    # rows are grouped by video: one slice per video
    uniq, first, cnt = np.unique(dv, return_index=True, return_counts=True)
    rows = {str(v): slice(int(s), int(s + c)) for v, s, c in zip(uniq, first, cnt)}
    hit = np.zeros(len(index.labels))
    tot = np.zeros(len(index.labels))
    lengths, fracs = [], []
    for vid, info in index.videos.items():
        sl = rows.get(vid, slice(0, 0))
        vf, vb = df[sl], db[sl].astype(np.float64)
        for tube in info.tubes:
            lengths.append(len(tube.frames))
            fracs.append(len(tube.frames) / info.nframes)
            if len(vf):
                ious = box_iou(tube.boxes.astype(np.float64), vb)  # [n,N]
                ious[tube.frames[:, None] != vf[None, :]] = 0  # only detections of that frame
                hit[tube.label] += int(np.sum(ious.max(axis=1) >= iou))
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
        "recall": round(float(hit.sum() / max(tot.sum(), 1)), 4),
        "recall_per_class": {
            lab: round(float(h / t), 4) if t else None for lab, h, t in zip(index.labels, hit, tot)
        },
        "iou": iou,
    }
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
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
    lines = [
        "  videos:       " + ", ".join(f"{k} {v}" for k, v in st["videos"].items()),
        f"  GT tubes:     {st['tubes']} (mean length {st['mean_tube_length']:.1f} frames, "
        f"{100 * st['mean_action_fraction']:.1f} % of the video)",
        f"  frames:       {st['frames']}",
        f"  detections:   {st['detections']} ({st['detections_per_frame']:.2f} per frame)",
        f"  detector recall @ IoU {st['iou']}: {st['recall']:.3f}",
        f"    per class:  {per}",
    ]
    if st.get("context_rate") is not None:
        lines.append(f"  in-context scenes: {100 * st['context_rate']:.1f} % of videos")
    return "\n".join(lines)
