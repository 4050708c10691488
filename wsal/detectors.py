"""Detector backends that produce per-video :class:`Detections` for a dataset.

``StoredDetections`` reads a detections store (DESIGN §4): a file given by path, or the dataset's
own detections (SynthActors' simulated actor detector) when ``path`` is None. Image detectors
(torchvision, HOG) that write such files come with the actor-proposals issue.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from wsal.data.annotations import DatasetIndex
from wsal.data.detections import load_detections
from wsal.structures import Detections

__all__ = ["StoredDetections"]


class StoredDetections:
    """Detections read from a store; frames are checked against the index, boxes clipped to the
    frame when the index knows its size."""

    def __init__(self, path: str | None = None, name: str = "file") -> None:
        self.path = Path(path) if path else None
        self.name = name

    def resolve(self, default: Path | None) -> Path:
        path = self.path or default
        if path is None:
            raise ValueError(
                f"detector {self.name!r}: no detections file given and the dataset ships none; "
                "set detector.path=/path/to/detections.npz"
            )
        return path

    def cache_key(self, default: Path | None) -> str:
        p = self.resolve(default)
        st = p.stat()
        return hashlib.sha1(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[
            :12
        ]

    def load(self, index: DatasetIndex, default: Path | None = None) -> dict[str, Detections]:
        """Detections of every video of ``index`` (a video without a row gets an empty set)."""
        path = self.resolve(default)
        nframes = {v: info.nframes for v, info in index.videos.items()}
        sizes = {
            v: (info.width, info.height)
            for v, info in index.videos.items()
            if info.width and info.height
        }
        dets = load_detections(
            path, num_frames=nframes, frame_size=sizes if len(sizes) == len(nframes) else None
        )
        return {v: dets.get(v, Detections.empty(nframes[v])) for v in index.videos}
