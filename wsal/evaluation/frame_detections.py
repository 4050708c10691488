"""Frame detections (a box on one frame, with a label and a score: what a frame-level detector
such as a per-frame action detector outputs) read from a file, for frame-AP.

File forms:
- JSON ``{"frame_detections": [{"video", "frame", "box": [x1, y1, x2, y2], "label", "score"},
  ...]}`` with 0-based frames and labels as class indices or names;
- ``.npz`` with the same columns: ``video`` (str[N]), ``frame`` (int[N]), ``box`` or ``boxes``
  (float[N, 4]), ``label`` (int[N] or str[N]), ``score`` (float[N]).

They are returned as :class:`~wsal.structures.TubeDetections` whose tubes are one frame long, so
:func:`wsal.evaluation.protocol.frame_ap` evaluates them exactly as it evaluates the boxes of
tubes (every tube box, with its tube's score). Bad rows raise ``ValueError`` naming the file and
the row.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsal.structures import TubeDetections

__all__ = ["frame_detections_to_tubes", "is_frame_detections", "load_frame_detections"]

_COLUMNS = ("video", "frame", "label", "score")


def is_frame_detections(path: str | os.PathLike) -> bool:
    """True when ``path`` holds frame detections (JSON key ``frame_detections``, or an ``.npz``
    with the columns ``video``, ``frame``, ``label``, ``score`` and ``box``/``boxes``)."""
    path = Path(path)
    if path.suffix == ".json":
        with open(path, "rb") as fh:
            head = fh.read(4096)
        return b'"frame_detections"' in head
    try:
        with np.load(path, allow_pickle=False) as z:
            cols = set(z.files)
        # not a detector store (``scores``/``labels``) nor tubes (``offsets``/``rows``)
        return set(_COLUMNS) <= cols and bool({"box", "boxes"} & cols)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def frame_detections_to_tubes(
    video: np.ndarray,
    frame: np.ndarray,
    boxes: np.ndarray,
    label: np.ndarray,
    score: np.ndarray,
    source: str = "frame detections",
) -> TubeDetections:
    """Columns of N frame detections -> N one-frame tubes (checked: integer frames >= 0, finite
    boxes with x2 >= x1 and y2 >= y1, finite scores)."""
    n = len(video)
    frame = np.asarray(frame, np.float64).reshape(-1)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    score = np.asarray(score, np.float64).reshape(-1)
    label = np.asarray(label).reshape(-1)
    if not (frame.size == boxes.shape[0] == score.size == label.size == n):
        raise ValueError(
            f"{source}: columns have different lengths (video {n}, frame {frame.size}, box "
            f"{boxes.shape[0]}, label {label.size}, score {score.size})"
        )

    def fail(mask: np.ndarray, what: str) -> None:
        bad = np.nonzero(mask)[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{source}: row {i} (video {str(video[i])!r}, frame {frame[i]:g}): {what} "
                f"({bad.size} such rows)"
            )

    fail(
        ~np.isfinite(frame) | (frame != np.round(frame)) | (frame < 0),
        "frame must be an integer >= 0",
    )
    fail(~np.isfinite(boxes).all(axis=1), "box is not finite")
    fail((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]), "box has x2 < x1 or y2 < y1")
    fail(~np.isfinite(score), "score is not finite")
    rows = np.concatenate([frame[:, None], boxes], axis=1)  # [N, 5]
    return TubeDetections(
        np.asarray(video).astype(str),
        label.astype(np.int64),
        score,
        np.arange(n + 1, dtype=np.int64),
        rows,
    )


def _label_indices(labels: np.ndarray, names: Sequence[str] | None, path: Path) -> np.ndarray:
    """Class indices of a label column of ints or names."""
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f":
        if np.all(labels == np.round(labels)):
            return labels.astype(np.int64)
        raise ValueError(f"{path}: labels must be class indices or names, got non-integer numbers")
    lookup = {n: i for i, n in enumerate(names or [])}
    out = np.empty(len(labels), np.int64)
    for i, lab in enumerate(labels.astype(str).tolist()):
        if lab.lstrip("-").isdigit():
            out[i] = int(lab)
        elif lab in lookup:
            out[i] = lookup[lab]
        else:
            raise ValueError(f"{path}: row {i}: label {lab!r} is not in the GT's classes")
    return out


def load_frame_detections(
    path: str | os.PathLike, label_names: Sequence[str] | None = None
) -> TubeDetections:
    """Read a frame-detections file (module docstring) as one-frame TubeDetections; label names
    are looked up in ``label_names`` (the GT's classes)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"frame-detections file not found: {path}")
    if path.suffix == ".json":
        try:
            with open(path) as fh:
                data = json.load(fh)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(data, dict) or not isinstance(data.get("frame_detections"), list):
            raise ValueError(f'{path}: expected an object with a "frame_detections" list')
        items = data["frame_detections"]
        cols: dict[str, list] = {k: [] for k in (*_COLUMNS, "box")}
        for i, d in enumerate(items):
            if not isinstance(d, dict):
                raise ValueError(f"{path}: frame detection {i} is not an object")
            missing = [k for k in (*_COLUMNS, "box") if k not in d]
            if missing:
                raise ValueError(f"{path}: frame detection {i} lacks {missing}")
            box = d["box"]
            if not isinstance(box, (list, tuple)) or len(box) != 4:
                raise ValueError(f"{path}: frame detection {i}: box must be [x1, y1, x2, y2]")
            for k in _COLUMNS:
                cols[k].append(d[k])
            cols["box"].append(box)
        try:
            labels = np.array(cols["label"], dtype=object)
            kinds = {type(x) for x in cols["label"]}
            lab_arr = np.array(cols["label"], np.int64) if kinds <= {int} else labels.astype(str)
            return frame_detections_to_tubes(
                np.array(cols["video"], dtype=str),
                np.array(cols["frame"], np.float64),
                np.array(cols["box"], np.float64).reshape(-1, 4),
                _label_indices(lab_arr, label_names, path),
                np.array(cols["score"], np.float64),
                str(path),
            )
        except TypeError as e:
            raise ValueError(f"{path}: {e}") from e
    try:
        with np.load(path, allow_pickle=False) as z:
            box_key = "box" if "box" in z.files else "boxes"
            missing = [k for k in (*_COLUMNS, box_key) if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing} (have {sorted(z.files)})")
            return frame_detections_to_tubes(
                z["video"],
                z["frame"],
                z[box_key],
                _label_indices(z["label"], label_names, path),
                z["score"],
                str(path),
            )
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, ValueError) and str(path) in str(e):
            raise
        raise ValueError(f"{path}: unreadable frame-detections file ({e})") from e
