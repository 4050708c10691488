"""The tube cache: tubes per (dataset, detector, linker), linked once and read back (DESIGN §2).

``link_cached(prepared, detector=..., linker=..., cache_dir=...)`` returns the tubes of a
prepared dataset, linking (and caching) them on a miss. Its keywords make it a picklable tube
source for the DataModule: ``functools.partial(link_cached, detector=d, linker=l,
cache_dir=c)`` is called with the prepared dataset (also in ``ddp_spawn`` workers).

File: ``<cache_dir>/tubes__<dataset key>__<detector name>-<key>__<linker name>-<key>.npz``,
columnar (one row per tube box): ``video str[K]``, ``score float32[K]``, ``offsets int64[K+1]``,
``rows float[M, 5]`` = ``[frame, x1, y1, x2, y2]`` (0-based frames, xyxy pixels), ``box_index
int64[M]`` (row in the video's Detections, -1 where a tracker made the box) and ``all_videos``
(videos without tubes too). Written to a temp name and renamed; a file that cannot be read (cut,
corrupt) is logged, deleted and linked again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsal.atomic import file_lock, remove_stale_temps
from wsal.data.datasets import PreparedDataset
from wsal.errors import UNREADABLE, discard_unreadable
from wsal.linking.base import Linker, link
from wsal.structures import TubeDetections, Tubes, atomic_savez

log = logging.getLogger(__name__)

__all__ = ["link_cached", "tubes_to_detections"]


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
    *,
    videos: Sequence[str] | None = None,
) -> dict[str, Tubes]:
    """Tubes of every video (or of ``videos``), read from the cache or linked (and cached) on a
    miss.

    ``detector`` is a detector backend (``name``, ``cache_key(default)``, ``load(index,
    default)``: :mod:`wsal.detection.backends`). The cache key holds the dataset's, the
    detector's and the linker's keys (and the video list when given), so changing any parameter
    that shapes the tubes links again. Detections are only read on a miss. Concurrent calls
    for one cache file link once (:func:`wsal.atomic.file_lock`): the others wait and read it.
    """
    index = prepared.index
    key = (
        f"{prepared.cache_key}__{detector.name}-{detector.cache_key(prepared.detections)}__"
        f"{linker.name}-{linker.cache_key()}"
    )
    if videos is not None:
        key += "__v-" + hashlib.sha1("\n".join(videos).encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"tubes__{key}.npz"
    nframes = {v: info.nframes for v, info in index.videos.items()}
    with file_lock(path, "tubes"):  # concurrent runs link once; the others wait and read it
        if path.exists():
            try:
                tubes = _load_tubes(path, nframes)
            except UNREADABLE as e:  # cut or corrupt (e.g. a disk full or a copy interrupted)
                discard_unreadable(path, e, "tube cache", log)
            else:
                log.info("tubes from cache %s", path)
                return tubes
        remove_stale_temps(path.parent, path.name)  # a killed write's leftovers
        dets = detector.load(index, prepared.detections)
        if videos is not None:
            dets = {v: dets[v] for v in videos}
        tubes = link(linker, dets, index)
        _save_tubes(path, tubes)
        return tubes


def tubes_to_detections(videos: Sequence[str], tubes: Mapping[str, Tubes]) -> TubeDetections:
    """Class-agnostic TubeDetections (label -1, score = tube score) of the given videos."""
    return TubeDetections.concat([TubeDetections.from_tubes(v, tubes[v]) for v in videos])
