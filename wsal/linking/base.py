"""What every linker is and what the batched ones share (DESIGN §2: Detections -> Tubes).

- :class:`Linker`: the protocol: ``name``, ``cache_key()`` (every parameter that shapes the
  tubes) and ``link(dets) -> {video: Tubes}``; :func:`link` calls one, handing it the dataset
  index when it needs the videos' frames.
- :class:`BatchedLinker`: base of the linkers that link many videos per vectorised call
  (Temporal Prim, Viterbi), with :func:`link_in_batches` and the :func:`params_key` cache key.

Conventions: frames 0-based, boxes ``xyxy`` float pixels; ``link`` returns one :class:`Tubes`
per video of ``dets``, same keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from tqdm import tqdm

from wsal.data.annotations import DatasetIndex
from wsal.structures import Detections, Tubes

__all__ = ["BatchedLinker", "Linker", "link", "link_in_batches", "params_key"]


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
