"""The detections store: per-dataset columnar ``.npz`` files of boxes (DESIGN §2, §4).

File form (one file for a whole dataset), arrays of equal length N:

- ``video``    str[N]      video id of each row;
- ``frame``    int64[N]    **0-based** frame number;
- ``boxes``    float32[N, 4] ``xyxy`` pixels (``x2``/``y2`` are the right/bottom edges);
- ``scores``   float32[N]  detector (prior) score;
- ``labels``   int64[N]    optional class per box (-1 = class-agnostic);
- ``features`` [N, D]      optional per-box features.

Folder form: a folder of such files, one per video, named ``<video id with "/" replaced by
"__">.npz``. A file may carry its own ``video`` column (then the ids come from it and the file name
is not interpreted); ``save_detections`` always writes that column so ids survive the round trip.

Everything is read with ``allow_pickle=False`` and checked row by row: a malformed file is refused
with a message that names the file, the video and the row.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from wsal.errors import InputError
from wsal.structures import Detections, atomic_savez

__all__ = ["DetectionsFormatError", "load_detections", "save_detections", "video_file_name"]

_REQUIRED = ("frame", "boxes", "scores")
_OPTIONAL = ("labels", "features")


class DetectionsFormatError(InputError):
    """A detections file is malformed (the message names the file, video and row)."""


def video_file_name(video: str) -> str:
    """File name of ``video`` in the folder form: ``/`` becomes ``__``, plus ``.npz``."""
    return video.replace("/", "__") + ".npz"


# ------------------------------------------------------------------------------------------ load
def load_detections(
    path: str | os.PathLike,
    num_frames: Mapping[str, int] | None = None,
    frame_size: Mapping[str, tuple[int, int]] | None = None,
    ignore: Collection[str] = (),
) -> dict[str, Detections]:
    """Read a detections file or folder into one :class:`Detections` per video.

    Args:
        path: a ``.npz`` file (all videos) or a folder of per-video ``.npz`` files.
        num_frames: video id -> frame count F. When given, every frame must be ``< F`` and every
            video id must be a key (an unknown id is an error). When absent, F = max frame + 1.
        frame_size: video id -> ``(width, height)`` in pixels. When given, boxes are clipped to
            ``[0, width] x [0, height]`` (one warning per file says how many rows were clipped) and
            an unknown video id is an error.
        ignore: video ids whose rows are left out (videos the dataset check dropped:
            :attr:`DatasetIndex.excluded`); not an unknown id, their frames not checked.

    Returns:
        video id -> Detections, ordered by video id; the rows of each video sorted by frame
        (stable, so rows of the same frame keep their file order). Videos without any row are
        not included, even when they are in ``num_frames``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DetectionsFormatError: a malformed file (missing or object columns, mismatched column
            lengths, non-finite boxes/scores, negative or too-large frames, ``x2 < x1`` or
            ``y2 < y1``, unknown video ids); the message names the file, the video and the row.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detections not found: {path}")
    out: dict[str, Detections] = {}
    source: dict[str, Path] = {}
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    for file in files:
        default_video = file.name[: -len(".npz")].replace("__", "/") if path.is_dir() else None
        loaded = _load_file(file, default_video, num_frames, frame_size, frozenset(ignore))
        for video, dets in loaded.items():
            if video in out:
                raise DetectionsFormatError(
                    f"{file}: video {video!r} is also in {source[video]} (one file per video)"
                )
            out[video] = dets
            source[video] = file
    return dict(sorted(out.items()))


def _load_file(
    file: Path,
    default_video: str | None,
    num_frames: Mapping[str, int] | None,
    frame_size: Mapping[str, tuple[int, int]] | None,
    ignore: frozenset[str] = frozenset(),
) -> dict[str, Detections]:
    """Read and check one file; ``default_video`` names its rows when it has no video column;
    the rows of the videos in ``ignore`` are left out."""
    try:
        with np.load(file, allow_pickle=False) as z:
            names = set(z.files)
            missing = [k for k in _REQUIRED if k not in names]
            if "video" not in names and default_video is None:
                missing.insert(0, "video")
            if missing:
                raise DetectionsFormatError(f"{file}: missing arrays {missing}")
            cols = {k: z[k] for k in ("video", *_REQUIRED, *_OPTIONAL) if k in names}
    except DetectionsFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays, cut zip
        raise DetectionsFormatError(f"{file}: cannot read ({e})") from e

    if "video" in cols:
        video = cols["video"]
        if video.dtype.kind == "S":
            video = np.char.decode(video, "utf-8")
        if video.dtype.kind != "U" or video.ndim != 1:
            raise DetectionsFormatError(
                f"{file}: 'video' must be a 1-d string array, got {video.dtype}{list(video.shape)}"
            )
    else:
        frame_col = cols["frame"]
        video = np.full(frame_col.shape[0] if frame_col.ndim else 0, default_video)
    n = video.shape[0]

    def where(row: int) -> str:
        return f"{file}: row {row} (video {str(video[row])!r})"

    # ---- shapes: every column has N rows; boxes [N, 4]; features [N, D]
    expect = {"frame": (n,), "boxes": (n, 4), "scores": (n,), "labels": (n,)}
    for key, arr in cols.items():
        if key == "video":
            continue
        if arr.dtype.kind not in "biuf":
            raise DetectionsFormatError(f"{file}: column {key!r} must be numeric, got {arr.dtype}")
        ok = arr.shape == expect[key] if key in expect else arr.ndim == 2 and arr.shape[0] == n
        if not ok:
            want = expect.get(key, (n, "D"))
            rows = arr.shape[0] if arr.ndim else 0
            first = min(rows, n)
            detail = (
                f"; {where(first)} is the first row without a complete {key!r}" if first < n else ""
            )
            raise DetectionsFormatError(
                f"{file}: column {key!r} has shape {list(arr.shape)}, expected {list(want)} "
                f"(N = {n} rows in 'video'){detail}"
            )

    frame = _integral(cols["frame"], "frame", where)
    labels = _integral(cols["labels"], "labels", where) if "labels" in cols else None
    boxes = cols["boxes"].astype(np.float32)
    scores = cols["scores"].astype(np.float32)
    features = cols.get("features")

    # ---- values
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        r = int(np.argmax(bad))
        raise DetectionsFormatError(f"{where(r)}: box {boxes[r].tolist()} is not finite")
    bad = ~np.isfinite(scores)
    if bad.any():
        r = int(np.argmax(bad))
        raise DetectionsFormatError(f"{where(r)}: score {scores[r]} is not finite")
    if n and frame.min() < 0:
        r = int(np.argmax(frame < 0))
        raise DetectionsFormatError(f"{where(r)}: negative frame {frame[r]} (frames are 0-based)")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        r = int(np.argmax(bad))
        raise DetectionsFormatError(
            f"{where(r)}: box {boxes[r].tolist()} has x2 < x1 or y2 < y1 (expected xyxy)"
        )

    # ---- group rows by video, each sorted by frame (stable)
    groups = _group_rows(video, frame)  # {video: original rows sorted by frame}, ids sorted
    for v in ignore:
        groups.pop(v, None)
    index = num_frames if num_frames is not None else frame_size
    if index is not None:
        unknown = [v for v in groups if v not in index]
        if unknown:
            r = int(groups[unknown[0]].min())
            raise DetectionsFormatError(f"{where(r)}: unknown video id (not in the dataset index)")

    out: dict[str, Detections] = {}
    clipped = 0
    for vid, rows in groups.items():
        f = frame[rows]
        if num_frames is not None:
            nf = int(num_frames[vid])
            if f[-1] >= nf:
                r = int(rows[np.argmax(f >= nf)])
                raise DetectionsFormatError(
                    f"{where(r)}: frame {frame[r]} >= the video's frame count {nf}"
                )
        else:
            nf = int(f[-1]) + 1
        b = boxes[rows]  # [n, 4] copy
        if frame_size is not None and vid in frame_size:
            w, h = (float(x) for x in frame_size[vid])
            lim = np.array([w, h, w, h], np.float32)  # [4] boxes clip to [0, w] x [0, h]
            c = np.clip(b, 0, lim)
            clipped += int(np.any(c != b, axis=1).sum())
            b = c
        out[vid] = Detections(
            f,
            b,
            scores[rows],
            nf,
            None if labels is None else labels[rows],
            None if features is None else features[rows],
        )
    if clipped:
        warnings.warn(
            f"{file}: clipped {clipped} boxes to the frame (rows outside [0, width] x [0, height])",
            stacklevel=3,
        )
    return out


def _group_rows(video: np.ndarray, frame: np.ndarray) -> dict[str, np.ndarray]:
    """``{video id: its row numbers sorted by frame (stable)}``, ids in sorted order.

    Stores are usually written video by video (each video one contiguous run of rows, frames
    ascending): then the runs are found with one neighbour comparison, O(N), instead of sorting
    N strings (``np.unique`` on 3M video ids takes seconds); other layouts fall back to a sort.
    """
    n = video.shape[0]
    if n == 0:
        return {}
    starts = np.concatenate([[0], np.flatnonzero(video[1:] != video[:-1]) + 1])  # [R]
    names = video[starts].tolist()
    if len(set(names)) == len(names):  # one contiguous run per video
        ends = np.append(starts[1:], n)
        out: dict[str, np.ndarray] = {}
        for name, a, b in sorted(zip(names, starts.tolist(), ends.tolist())):
            f = frame[a:b]
            rows = np.arange(a, b)
            out[str(name)] = rows if np.all(f[1:] >= f[:-1]) else a + np.argsort(f, kind="stable")
        return out
    ids, inverse = np.unique(video, return_inverse=True)
    order = np.lexsort((frame, inverse))  # by video, then frame; stable for equal keys
    bounds = np.searchsorted(inverse[order], np.arange(len(ids) + 1))
    return {str(v): order[bounds[i] : bounds[i + 1]] for i, v in enumerate(ids.tolist())}


def _integral(arr: np.ndarray, name: str, where: object) -> np.ndarray:
    """int64 copy of ``arr``; float columns are accepted only when every value is an integer."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            r = int(np.argmax(bad))
            raise DetectionsFormatError(f"{where(r)}: {name} {arr[r]} is not an integer")  # type: ignore[operator]
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------------ save
def save_detections(
    path: str | os.PathLike,
    dets: Mapping[str, Detections],
    per_video: bool | None = None,
) -> None:
    """Write ``dets`` (video id -> Detections) in the file or the folder form.

    Args:
        path: a ``.npz`` file, or a folder for the per-video form.
        dets: Detections per video; frames 0-based, boxes xyxy pixels.
        per_video: write one file per video into the folder ``path`` (named by
            :func:`video_file_name`, each with its own ``video`` column). Default: True unless
            ``path`` ends with ``.npz``.

    Every file is written to a temp name and renamed (``atomic_savez``). Frame counts are not
    stored: they come from the dataset index (or max frame + 1) when reading back. Optional
    columns (``labels``, ``features``) are written only when every video has them.
    """
    path = Path(path)
    if per_video is None:
        per_video = path.suffix != ".npz"
    if per_video:
        path.mkdir(parents=True, exist_ok=True)
        for video, d in dets.items():
            atomic_savez(path / video_file_name(video), **_columns({video: d}))
    else:
        atomic_savez(path, **_columns(dets))


def _columns(dets: Mapping[str, Detections]) -> dict[str, np.ndarray]:
    items = list(dets.items())
    cols: dict[str, np.ndarray] = {
        "video": np.array([v for v, d in items for _ in range(len(d))], dtype=str),
        "frame": np.concatenate([d.frame for _, d in items] or [np.zeros(0, np.int64)]),
        "boxes": np.concatenate([d.boxes for _, d in items] or [np.zeros((0, 4), np.float32)]),
        "scores": np.concatenate([d.scores for _, d in items] or [np.zeros(0, np.float32)]),
    }
    if items and all(d.labels is not None for _, d in items):
        cols["labels"] = np.concatenate([d.labels for _, d in items])  # type: ignore[misc]
    if items and all(d.features is not None for _, d in items):
        cols["features"] = np.concatenate([d.features for _, d in items])  # type: ignore[misc]
    return cols
