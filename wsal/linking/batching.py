"""What the batched linkers share: linking many videos a chunk at a time, and cache keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tqdm import tqdm

from wsal.structures import Detections, Tubes

__all__ = ["BatchedLinker", "link_in_batches", "params_key"]


def params_key(params: Mapping[str, Any]) -> str:
    """12 hex characters of the SHA-1 of the parameters that shape a linker's tubes."""
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def link_in_batches(
    dets: Mapping[str, Detections],
    batch_videos: int,
    desc: str,
    progress: bool,
    link_batch: Callable[[list[Detections], list[str]], Sequence[Tubes]],
) -> dict[str, Tubes]:
    """Tubes per video (same keys as ``dets``): ``link_batch(dets, names)`` on ``batch_videos``
    videos per call, with a progress bar."""
    videos = list(dets)
    out: dict[str, Tubes] = {}
    with tqdm(total=len(videos), desc=desc, unit="video", disable=not progress) as bar:
        for i in range(0, len(videos), batch_videos):
            chunk = videos[i : i + batch_videos]
            out.update(zip(chunk, link_batch([dets[v] for v in chunk], chunk)))
            bar.update(len(chunk))
    return out


class BatchedLinker:
    """Base of the linkers that link ``batch_videos`` videos per vectorised call (Temporal Prim,
    Viterbi). Subclasses set ``name`` and define ``params()`` (every parameter that shapes the
    tubes: the cache key) and ``link_batch(dets, names)``."""

    name: str
    batch_videos: int
    progress: bool

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def link_batch(self, dets: list[Detections], names: list[str]) -> Sequence[Tubes]:
        raise NotImplementedError

    def cache_key(self) -> str:
        return params_key({"linker": self.name, **self.params()})

    def link(self, dets: Mapping[str, Detections]) -> dict[str, Tubes]:
        """Tubes per video (same keys as ``dets``), linked ``batch_videos`` videos per call."""
        return link_in_batches(
            dets, self.batch_videos, f"linking ({self.name})", self.progress, self.link_batch
        )
